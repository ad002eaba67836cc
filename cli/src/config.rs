//! `/etc/strata/cli.toml`: the CLI's defaults for a machine: the master's address, read when
//! neither `--master` nor `STRATA_MASTER` gives one, the TLS files (`tls_ca`, `tls_cert`,
//! `tls_key`) and the credentials (`principal` with `secret_file`, or `token`) when no flag or
//! variable gives them. `STRATA_CLI_CONFIG` names another file.

use crate::args::{parse_master, DEFAULT_MASTER};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/strata/cli.toml";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    master: Option<String>,
    // TLS to the master and agents.
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    /// Credentials (issue 11): `principal` with `secret_file`, or `token`.
    principal: Option<String>,
    secret_file: Option<PathBuf>,
    token: Option<String>,
}

/// The TLS files of the CLI's config file (`tls_ca`, `tls_cert`, `tls_key`).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The TLS files named in the config file (none when it is missing, unless `STRATA_CLI_CONFIG`
/// named it).
pub fn tls_files() -> anyhow::Result<TlsFiles> {
    let named = std::env::var_os("STRATA_CLI_CONFIG").is_some();
    tls_from(&path(), named)
}

fn read_file(path: &Path, must_exist: bool) -> anyhow::Result<Option<File>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    toml::from_str(&text)
        .map(Some)
        .map_err(|err| anyhow::anyhow!("{}: {}", path.display(), err.message()))
}

fn tls_from(path: &Path, must_exist: bool) -> anyhow::Result<TlsFiles> {
    Ok(read_file(path, must_exist)?
        .map(|file| TlsFiles {
            ca: file.tls_ca,
            cert: file.tls_cert,
            key: file.tls_key,
        })
        .unwrap_or_default())
}

/// The file to read: `STRATA_CLI_CONFIG`, else [`DEFAULT_PATH`].
pub fn path() -> PathBuf {
    std::env::var_os("STRATA_CLI_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// The master to use when none was given: the file's `master`, else [`DEFAULT_MASTER`]. A
/// missing file is no error (unless `STRATA_CLI_CONFIG` named it); a malformed one is, naming
/// the file and the key.
pub fn default_master() -> anyhow::Result<String> {
    let named = std::env::var_os("STRATA_CLI_CONFIG").is_some();
    master_from(&path(), named)
}

fn master_from(path: &Path, must_exist: bool) -> anyhow::Result<String> {
    match read_file(path, must_exist)?.and_then(|file| file.master) {
        None => Ok(DEFAULT_MASTER.to_string()),
        Some(master) => match parse_master(&master) {
            Ok(master) => Ok(master),
            Err(err) => bail!("{}: invalid `master`: {err}", path.display()),
        },
    }
}

/// The credentials the CLI sends: the flags' (or environment's), else the file's. A principal
/// needs a secret file; a token goes alone.
pub fn credentials(
    principal: Option<String>,
    secret_file: Option<PathBuf>,
    token: Option<String>,
) -> anyhow::Result<Option<strata_client::http::HttpAuth>> {
    let named = std::env::var_os("STRATA_CLI_CONFIG").is_some();
    credentials_from(&path(), named, principal, secret_file, token)
}

fn credentials_from(
    path: &Path,
    must_exist: bool,
    principal: Option<String>,
    secret_file: Option<PathBuf>,
    token: Option<String>,
) -> anyhow::Result<Option<strata_client::http::HttpAuth>> {
    use strata_client::http::HttpAuth;
    let file = if principal.is_some() || token.is_some() {
        File::default()
    } else {
        read_file(path, must_exist)?.unwrap_or_default()
    };
    if let Some(token) = token.or(file.token) {
        return Ok(Some(HttpAuth::Bearer(token.trim().to_string())));
    }
    let Some(principal) = principal.or(file.principal) else {
        return Ok(None);
    };
    let Some(secret_file) = secret_file.or(file.secret_file) else {
        bail!(
            "principal {principal:?} needs a secret: give --secret-file (or `secret_file` in {})",
            path.display()
        );
    };
    let secret = std::fs::read_to_string(&secret_file)
        .with_context(|| format!("cannot read the secret file {}", secret_file.display()))?;
    Ok(Some(HttpAuth::Basic {
        principal,
        secret: secret.trim_end_matches(['\n', '\r']).to_string(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_flags_or_the_file() {
        use strata_client::http::HttpAuth;
        let secret = file("s3cret\n");
        let f = file(&format!(
            "principal = \"ops\"\nsecret_file = \"{}\"\n",
            secret.path().display()
        ));
        match credentials_from(f.path(), true, None, None, None).unwrap() {
            Some(HttpAuth::Basic { principal, secret }) => {
                assert_eq!((principal.as_str(), secret.as_str()), ("ops", "s3cret"))
            }
            other => panic!("{other:?}"),
        }
        match credentials_from(f.path(), true, None, None, Some("tok".into())).unwrap() {
            Some(HttpAuth::Bearer(t)) => assert_eq!(t, "tok"),
            other => panic!("{other:?}"),
        }
        let err = credentials_from(f.path(), true, Some("dev".into()), None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--secret-file"), "{err}");
        let none = file("master = \"10.0.0.1:5050\"\n");
        assert!(credentials_from(none.path(), true, None, None, None)
            .unwrap()
            .is_none());
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn the_file_names_the_master() {
        let f = file("master = \"10.0.0.1\"\n");
        assert_eq!(master_from(f.path(), true).unwrap(), "10.0.0.1:5050");
        let f = file("# nothing set\n");
        assert_eq!(master_from(f.path(), true).unwrap(), DEFAULT_MASTER);
    }

    #[test]
    fn the_file_names_tls_files() {
        let f = file("master = \"https://m1\"\ntls_ca = \"/etc/strata/tls/ca.pem\"\n");
        assert_eq!(master_from(f.path(), true).unwrap(), "https://m1:5050");
        let tls = tls_from(f.path(), true).unwrap();
        assert_eq!(tls.ca, Some(PathBuf::from("/etc/strata/tls/ca.pem")));
        assert_eq!(tls.cert, None);
        let missing = Path::new("/nonexistent/strata-cli.toml");
        assert_eq!(tls_from(missing, false).unwrap(), TlsFiles::default());
    }

    #[test]
    fn a_missing_file_is_the_default_unless_named() {
        let missing = Path::new("/nonexistent/strata-cli.toml");
        assert_eq!(master_from(missing, false).unwrap(), DEFAULT_MASTER);
        let err = master_from(missing, true).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/strata-cli.toml"));
    }

    #[test]
    fn bad_files_name_the_file_and_key() {
        let f = file("master = \"https://x/state\"\n");
        let err = format!("{:#}", master_from(f.path(), true).unwrap_err());
        assert!(
            err.contains("invalid `master`") && err.contains("x/state"),
            "{err}"
        );
        let f = file("mastr = \"x\"\n");
        let err = format!("{:#}", master_from(f.path(), true).unwrap_err());
        assert!(err.contains("mastr"), "{err}");
        let f = file("master = [1]\n");
        assert!(master_from(f.path(), true).is_err());
    }
}
