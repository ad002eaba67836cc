//! HTTP `Authorization` headers: Basic (against [`Credentials`]) and Bearer (an HS256 token
//! signed with [`TokenKey`], whose `sub` is the principal). Shared by the master and agents.

use crate::credentials::Credentials;
use crate::token::TokenKey;
use base64::Engine;

/// The principal an `Authorization` header value proves, or why it proves none (for a 401).
pub fn principal_of(
    value: &str,
    credentials: Option<&Credentials>,
    token_key: Option<&TokenKey>,
) -> Result<String, String> {
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| "malformed Basic credentials".to_string())?;
        let (principal, secret) = decoded
            .split_once(':')
            .ok_or_else(|| "malformed Basic credentials (no ':')".to_string())?;
        if credentials.is_some_and(|c| c.verify(principal, secret)) {
            Ok(principal.to_string())
        } else {
            Err(format!("wrong credentials for principal {principal:?}"))
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let key = token_key
            .ok_or_else(|| "bearer tokens are not accepted (no --jwt-secret-key)".to_string())?;
        let claims = key.verify(rest).map_err(|e| e.to_string())?;
        claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "the token names no principal (sub)".to_string())
    } else {
        Err(format!("unsupported authorization scheme {scheme:?}"))
    }
}

/// `Basic <base64(principal:secret)>`.
pub fn basic_header(principal: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn basic_and_bearer() {
        let creds = Credentials::parse(Path::new("c"), "a s\n").unwrap();
        let key = TokenKey::new(b"k");
        assert_eq!(
            principal_of(&basic_header("a", "s"), Some(&creds), None).unwrap(),
            "a"
        );
        assert!(principal_of(&basic_header("a", "x"), Some(&creds), None).is_err());
        assert!(principal_of(&basic_header("a", "s"), None, None).is_err());
        let token = key.mint(&crate::token::Claims::principal("t", 60));
        assert_eq!(
            principal_of(&format!("Bearer {token}"), None, Some(&key)).unwrap(),
            "t"
        );
        // An executor token names no principal: no use as an operator's.
        let exec = key.mint(&crate::token::Claims::executor("f", "e", "c"));
        assert!(principal_of(&format!("Bearer {exec}"), None, Some(&key)).is_err());
        assert!(principal_of("Negotiate x", Some(&creds), Some(&key)).is_err());
    }
}
