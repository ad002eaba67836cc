//! HTTP `Authorization` headers: Basic (against [`Credentials`]) and Bearer (an HS256 token
//! signed with [`TokenKey`], whose `sub` is the principal), and the answers that refuse a
//! request (401 with the challenges, 403 naming the ACL). Shared by the master and agents.

use crate::acl::Decision;
use crate::credentials::Credentials;
use crate::token::TokenKey;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::json;
use tracing::warn;

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

/// What a daemon's `--credentials` (`--http-credentials`), `--jwt-secret-key` and `--acls` files
/// hold; a file that cannot be read or parsed is an error naming it.
pub struct AuthFiles {
    pub credentials: Option<Credentials>,
    pub token_key: Option<TokenKey>,
    pub acls: crate::acl::Acls,
}

impl AuthFiles {
    pub fn load(
        credentials: Option<&std::path::Path>,
        token_key: Option<&std::path::Path>,
        acls: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        Ok(AuthFiles {
            credentials: credentials
                .map(Credentials::load)
                .transpose()
                .map_err(|e| e.to_string())?,
            token_key: token_key
                .map(TokenKey::load)
                .transpose()
                .map_err(|e| e.to_string())?,
            acls: acls
                .map(crate::acl::Acls::load)
                .transpose()
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
        })
    }
}

/// What a daemon authenticates HTTP callers against.
#[derive(Debug, Clone, Copy)]
pub struct Verifier<'a> {
    pub credentials: Option<&'a Credentials>,
    pub token_key: Option<&'a TokenKey>,
}

impl Verifier<'_> {
    /// The principal a request's `Authorization` header proves: `Ok(None)` without the header,
    /// an error (for a 401) when it is malformed or its credentials are wrong.
    pub fn principal_of(&self, headers: &HeaderMap) -> Result<Option<String>, String> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Ok(None);
        };
        let value = value
            .to_str()
            .map_err(|_| "the Authorization header is not text".to_string())?;
        principal_of(value, self.credentials, self.token_key).map(Some)
    }

    /// The caller of a request to `path`, or the 401 that refuses it: wrong credentials, or none
    /// where `required`. Both are logged at warn.
    pub fn caller(
        &self,
        headers: &HeaderMap,
        path: &str,
        required: bool,
    ) -> Result<Option<String>, Box<Response>> {
        let principal = match self.principal_of(headers) {
            Ok(p) => p,
            Err(why) => {
                warn!(%path, %why, "authentication failed");
                return Err(Box::new(unauthorized(&why)));
            }
        };
        if principal.is_none() && required {
            warn!(%path, "request without credentials refused");
            return Err(Box::new(unauthorized(
                "this endpoint needs credentials (Basic or Bearer)",
            )));
        }
        Ok(principal)
    }
}

/// 401 with the challenges Strata accepts.
pub fn unauthorized(why: &str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "error": format!("authentication required: {why}") })),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"strata\""),
    );
    headers.append(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"strata\""),
    );
    response
}

/// Logs a denial at warn: principal, action, object and the rule.
pub fn denied(principal: Option<&str>, decision: &Decision, object: Option<&str>) {
    warn!(
        principal = principal.unwrap_or("<none>"),
        action = %decision.action,
        object = object.unwrap_or("<any>"),
        %decision,
        "request denied"
    );
}

/// 403 naming what was denied and by which ACL.
pub fn forbidden(decision: &Decision, object: Option<&str>) -> Response {
    (
        StatusCode::FORBIDDEN,
        Json(json!({
            "error": format!(
                "not authorized to {} {}: {decision}",
                decision.action,
                object.unwrap_or("")
            )
        })),
    )
        .into_response()
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
