//! Mesos' `--credentials` file: the principals that may authenticate and their secrets.
//!
//! Two formats, as Mesos accepts (`docs/authentication.md`, `src/credentials/credentials.hpp`):
//!
//! - JSON: `{"credentials": [{"principal": "p", "secret": "s"}, ...]}`
//! - text: one `principal secret` pair a line, separated by whitespace; blank lines and lines
//!   starting with `#` are skipped.
//!
//! A file is JSON when its first non-blank character is `{`. The same format (one entry) is
//! what an agent's `--credential` holds, read with [`Credential::load_one`].
//!
//! Secrets are compared in constant time ([`ring::constant_time`]-style, via
//! [`constant_time_eq`]) so a caller cannot learn a secret byte by byte from response times.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A principal and its secret (Mesos' `Credential`).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    pub principal: String,
    #[serde(default)]
    pub secret: String,
}

impl fmt::Debug for Credential {
    // The secret never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a credentials file could not be used. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("failed to read credentials file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid JSON in credentials file {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("credentials file {path}, {location}: {reason}")]
    Entry {
        path: PathBuf,
        /// `line N` (text format) or `entry N` (JSON format), counted from 1.
        location: String,
        reason: String,
    },
    #[error("credentials file {path} holds no credential")]
    Empty { path: PathBuf },
    #[error("credential file {path} must hold exactly one credential, it holds {count}")]
    NotOne { path: PathBuf, count: usize },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonFile {
    credentials: Vec<Credential>,
}

/// The credentials a master (or agent) accepts, by principal.
#[derive(Clone, Default)]
pub struct Credentials {
    by_principal: BTreeMap<String, String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("principals", &self.by_principal.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Credentials {
    /// Reads a credentials file (JSON or text, see the module documentation).
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let list = parse(path, &text)?;
        if list.is_empty() {
            return Err(CredentialsError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self::from_list(list))
    }

    /// Parses the contents of a credentials file; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, CredentialsError> {
        parse(path, text).map(Self::from_list)
    }

    /// The credentials given in code (tests, `strata up`).
    pub fn from_list(list: impl IntoIterator<Item = Credential>) -> Self {
        Credentials {
            by_principal: list.into_iter().map(|c| (c.principal, c.secret)).collect(),
        }
    }

    /// Whether `principal` is known and `secret` is its secret. The comparison of secrets takes
    /// the same time wherever they differ.
    pub fn verify(&self, principal: &str, secret: &str) -> bool {
        match self.by_principal.get(principal) {
            Some(expected) => constant_time_eq(expected.as_bytes(), secret.as_bytes()),
            None => {
                // Spend about the same time on an unknown principal as on a known one.
                let _ = constant_time_eq(secret.as_bytes(), secret.as_bytes());
                false
            }
        }
    }

    /// Whether `principal` has an entry.
    pub fn contains(&self, principal: &str) -> bool {
        self.by_principal.contains_key(principal)
    }

    pub fn len(&self) -> usize {
        self.by_principal.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_principal.is_empty()
    }
}

impl Credential {
    /// Reads a file that holds exactly one credential (an agent's or a framework's
    /// `--credential`), in either format.
    pub fn load_one(path: &Path) -> Result<Self, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut list = parse(path, &text)?;
        if list.len() != 1 {
            return Err(CredentialsError::NotOne {
                path: path.to_path_buf(),
                count: list.len(),
            });
        }
        Ok(list.remove(0))
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<Credential>, CredentialsError> {
    let entry_error = |location: String, reason: &str| CredentialsError::Entry {
        path: path.to_path_buf(),
        location,
        reason: reason.to_string(),
    };
    let list = if text.trim_start().starts_with('{') {
        let file: JsonFile =
            serde_json::from_str(text).map_err(|source| CredentialsError::Json {
                path: path.to_path_buf(),
                source,
            })?;
        for (i, c) in file.credentials.iter().enumerate() {
            if c.principal.is_empty() {
                return Err(entry_error(format!("entry {}", i + 1), "empty principal"));
            }
        }
        file.credentials
    } else {
        let mut list = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(principal), Some(secret), None) = (words.next(), words.next(), words.next())
            else {
                return Err(entry_error(
                    format!("line {}", i + 1),
                    "expected `principal secret`",
                ));
            };
            list.push(Credential {
                principal: principal.to_string(),
                secret: secret.to_string(),
            });
        }
        list
    };
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        if !seen.insert(c.principal.as_str()) {
            return Err(entry_error(
                format!("entry {}", i + 1),
                &format!("principal {:?} appears twice", c.principal),
            ));
        }
    }
    Ok(list)
}

/// Compares two byte strings in time that depends only on their lengths (Mesos compares
/// secrets with `==`; we do not want a timing oracle).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // `ring::constant_time::verify_slices_are_equal` is deprecated in ring 0.17; this is the
    // same fold over every byte, kept out of the optimiser's reach with `black_box`.
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("/etc/strata/credentials")
    }

    #[test]
    fn parses_json() {
        let c = Credentials::parse(
            p(),
            r#"{"credentials":[{"principal":"a","secret":"s1"},{"principal":"b","secret":"s2"}]}"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.verify("a", "s1"));
        assert!(c.verify("b", "s2"));
        assert!(!c.verify("a", "s2"));
        assert!(!c.verify("c", "s1"));
        assert!(!c.verify("a", ""));
    }

    #[test]
    fn parses_text_lines() {
        let c = Credentials::parse(p(), "# ops\n\nalice  secret1\n\tbob secret2 \n").unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.verify("alice", "secret1"));
        assert!(c.verify("bob", "secret2"));
    }

    #[test]
    fn bad_text_line_names_file_and_line() {
        let err = Credentials::parse(p(), "alice s\nbob\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "credentials file /etc/strata/credentials, line 2: expected `principal secret`"
        );
        let err = Credentials::parse(p(), "alice s x\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn bad_json_names_file_and_entry() {
        let err = Credentials::parse(
            p(),
            r#"{"credentials":[{"principal":"a","secret":"s"},{"principal":"","secret":"s"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "credentials file /etc/strata/credentials, entry 2: empty principal"
        );
        let err = Credentials::parse(
            p(),
            r#"{"credentials":[{"principal":"a","secret":"s","x":1}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/strata/credentials") && err.contains("`x`"),
            "{err}"
        );
        let err = Credentials::parse(
            p(),
            r#"{"credentials":[{"principal":"a","secret":"s"},{"principal":"a","secret":"t"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("entry 2") && err.contains("twice"), "{err}");
    }

    #[test]
    fn load_reads_files_and_rejects_empty_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "# nothing\n").unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("holds no credential"), "{err}");
        std::fs::write(&path, "p s\n").unwrap();
        assert!(Credentials::load(&path).unwrap().verify("p", "s"));
        let one = Credential::load_one(&path).unwrap();
        assert_eq!(one.principal, "p");
        assert!(format!("{one:?}").contains("<redacted>"));
        std::fs::write(&path, "p s\nq t\n").unwrap();
        assert!(Credential::load_one(&path).is_err());
        let err = Credentials::load(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("failed to read credentials file"), "{err}");
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
