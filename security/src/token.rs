//! Signed bearer tokens: JSON Web Tokens (RFC 7519) signed with HMAC-SHA256 (`HS256`).
//!
//! Two kinds, one format:
//!
//! - operator and framework tokens carry `sub` (the principal) and `exp`; `strata token` mints
//!   them from `--jwt-secret-key`;
//! - executor tokens carry Mesos' executor claims `fid`, `eid` and `cid` (framework, executor and
//!   container id: `src/slave/slave.cpp` sets exactly these three in the principal it hands to
//!   `JWTSecretGenerator`) and are passed to the executor as `MESOS_EXECUTOR_AUTHENTICATION_TOKEN`.
//!
//! Verification accepts only `{"alg":"HS256"}` headers (never `none`, never a key chosen by the
//! token), checks the signature in constant time (`ring::hmac::verify`) and rejects a token
//! whose `exp` has passed.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The claims Strata puts in and reads from a token. Unknown claims are kept out (ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal (operator and framework tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Executor tokens: framework id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fid: Option<String>,
    /// Executor tokens: executor id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eid: Option<String>,
    /// Executor tokens: container id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

impl Claims {
    /// Claims for an operator's or framework's token, valid for `ttl_secs` from now.
    pub fn principal(principal: &str, ttl_secs: u64) -> Self {
        let now = now_secs();
        Claims {
            sub: Some(principal.to_string()),
            iat: Some(now),
            exp: Some(now.saturating_add(ttl_secs)),
            ..Claims::default()
        }
    }

    /// Claims for an executor's token (no expiry: it lives as long as the executor, like Mesos').
    pub fn executor(framework_id: &str, executor_id: &str, container_id: &str) -> Self {
        Claims {
            iat: Some(now_secs()),
            fid: Some(framework_id.to_string()),
            eid: Some(executor_id.to_string()),
            cid: Some(container_id.to_string()),
            ..Claims::default()
        }
    }
}

/// Why a token was refused, or a key could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("unsupported token algorithm {0:?} (only HS256 is accepted)")]
    Algorithm(String),
    #[error("bad token signature")]
    Signature,
    #[error("token expired at {0}")]
    Expired(u64),
}

#[derive(Debug, thiserror::Error)]
#[error("failed to read JWT secret key {path}: {reason}")]
pub struct KeyError {
    pub path: PathBuf,
    pub reason: String,
}

/// An HS256 key: mints and verifies tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

impl TokenKey {
    pub fn new(secret: &[u8]) -> Self {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// A random key (an agent without `--jwt-secret-key` signs its executors' tokens with one).
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        // Generating a key only fails when the OS has no randomness; fall back to a fresh
        // HMAC key from the same RNG path via `generate`, which reports the same failure.
        match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(key) => TokenKey { key },
            Err(_) => {
                // Last resort: time and pid. Tokens then only resist guessing weakly; log it.
                tracing::error!("no OS randomness for the executor token key");
                let seed = format!("{:?}{}", SystemTime::now(), std::process::id());
                TokenKey::new(seed.as_bytes())
            }
        }
    }

    /// Reads `--jwt-secret-key`: the file's bytes, trailing newline(s) trimmed. An empty key is
    /// refused.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        if end == 0 {
            return Err(KeyError {
                path: path.to_path_buf(),
                reason: "the file is empty".into(),
            });
        }
        Ok(Self::new(&bytes[..end]))
    }

    /// A signed token carrying `claims`.
    pub fn mint(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "HS256".into(),
            typ: Some("JWT".into()),
        };
        // Serialising these plain structs cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let claims = serde_json::to_vec(claims).unwrap_or_default();
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let tag = hmac::sign(&self.key, signing_input.as_bytes());
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The claims of `token` when it is an HS256 token signed with this key and not expired.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verify_at(token, now_secs())
    }

    /// [`Self::verify`] at a given time (tests).
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let mut parts = token.trim().split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed("expected three dot-separated parts"));
        };
        let header = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| TokenError::Malformed("header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header)
            .map_err(|_| TokenError::Malformed("header is not a JSON object with alg"))?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed("signature is not base64url"))?;
        let signing_input_len = h.len() + 1 + c.len();
        let signing_input = &token.trim()[..signing_input_len];
        hmac::verify(&self.key, signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        let claims = URL_SAFE_NO_PAD
            .decode(c)
            .map_err(|_| TokenError::Malformed("claims are not base64url"))?;
        let claims: Claims = serde_json::from_slice(&claims)
            .map_err(|_| TokenError::Malformed("claims are not a JSON object"))?;
        match claims.exp {
            Some(exp) if now >= exp => Err(TokenError::Expired(exp)),
            _ => Ok(claims),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forge(header: &str, claims: &str, key: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    #[test]
    fn mints_and_verifies_principal_tokens() {
        let key = TokenKey::new(b"k1");
        let token = key.mint(&Claims::principal("ops", 60));
        let claims = key.verify(&token).unwrap();
        assert_eq!(claims.sub.as_deref(), Some("ops"));
        assert!(claims.fid.is_none());
        assert_eq!(
            TokenKey::new(b"k2").verify(&token),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn known_vector_verifies() {
        // Computed independently (Python's hmac + base64), key "secret".
        let key = TokenKey::new(b"secret");
        let token = forge(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"1234567890"}"#,
            b"secret",
        );
        assert_eq!(
            token,
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.\
             Rq8IxqeX7eA6GgYxlcHdPFVRNFFZc5rEI3MQTZZbK3I"
                .replace(' ', "")
        );
        assert_eq!(
            key.verify(&token).unwrap().sub.as_deref(),
            Some("1234567890")
        );
    }

    #[test]
    fn executor_claims_round_trip() {
        let key = TokenKey::random();
        let token = key.mint(&Claims::executor("f1", "e1", "c1"));
        let claims = key.verify(&token).unwrap();
        assert_eq!(
            (
                claims.fid.as_deref(),
                claims.eid.as_deref(),
                claims.cid.as_deref()
            ),
            (Some("f1"), Some("e1"), Some("c1"))
        );
    }

    #[test]
    fn rejects_other_algorithms_expired_and_tampered_tokens() {
        let key = TokenKey::new(b"k");
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"root"}"#)
        );
        assert_eq!(key.verify(&none), Err(TokenError::Algorithm("none".into())));
        let hs512 = forge(r#"{"alg":"HS512"}"#, r#"{"sub":"a"}"#, b"k");
        assert_eq!(
            key.verify(&hs512),
            Err(TokenError::Algorithm("HS512".into()))
        );

        let expired = forge(r#"{"alg":"HS256"}"#, r#"{"sub":"a","exp":100}"#, b"k");
        assert_eq!(key.verify_at(&expired, 100), Err(TokenError::Expired(100)));
        assert!(key.verify_at(&expired, 99).is_ok());

        let token = key.mint(&Claims::principal("alice", 60));
        let mut parts: Vec<&str> = token.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(r#"{"sub":"root"}"#);
        parts[1] = &evil;
        assert_eq!(key.verify(&parts.join(".")), Err(TokenError::Signature));
        assert!(matches!(key.verify("a.b"), Err(TokenError::Malformed(_))));
        assert!(matches!(key.verify("!.b.c"), Err(TokenError::Malformed(_))));
    }

    #[test]
    fn load_trims_newlines_and_refuses_empty_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt");
        std::fs::write(&path, "secret\n").unwrap();
        let key = TokenKey::load(&path).unwrap();
        let token = TokenKey::new(b"secret").mint(&Claims::principal("a", 10));
        assert!(key.verify(&token).is_ok());
        std::fs::write(&path, "\n").unwrap();
        let err = TokenKey::load(&path).unwrap_err().to_string();
        assert!(err.contains("jwt") && err.contains("empty"), "{err}");
    }
}
