//! `strata certs ca|node`: a cluster CA and node certificates written to files
//! ([`strata_security::certs`] makes them).

use crate::args::{CertsAction, CertsArgs};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use strata_security::certs::{self, CertifiedKey, NodeSpec};

pub fn certs(args: &CertsArgs) -> Result<()> {
    match &args.action {
        CertsAction::Ca {
            dir,
            name,
            days,
            force,
        } => {
            let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
            refuse_existing(&[&cert, &key], *force)?;
            let ca = certs::create_ca(name, *days)?;
            write_pair(dir, &ca, &cert, &key)?;
            println!("wrote {} and {}", cert.display(), key.display());
            println!(
                "keep ca.key off the nodes; give every daemon and client --tls-ca {}",
                cert.display()
            );
        }
        CertsAction::Node {
            name,
            alt_names,
            ca_dir,
            out,
            days,
            force,
        } => {
            let ca = CertifiedKey {
                cert_pem: read(&ca_dir.join("ca.crt"))?,
                key_pem: read(&ca_dir.join("ca.key"))?,
            };
            let out = out.clone().unwrap_or_else(|| ca_dir.clone());
            let file_stem = file_stem(name)?;
            let (cert, key) = (
                out.join(format!("{file_stem}.crt")),
                out.join(format!("{file_stem}.key")),
            );
            refuse_existing(&[&cert, &key], *force)?;
            let node = certs::issue(
                &ca,
                &NodeSpec {
                    name: name.clone(),
                    alt_names: alt_names.clone(),
                    days: *days,
                },
            )?;
            write_pair(&out, &node, &cert, &key)?;
            println!("wrote {} and {}", cert.display(), key.display());
            println!(
                "use them with --tls-cert {} --tls-key {} --tls-ca {}",
                cert.display(),
                key.display(),
                ca_dir.join("ca.crt").display()
            );
        }
    }
    Ok(())
}

/// A node's name as a file name: it must not reach outside the output directory.
fn file_stem(name: &str) -> Result<&str> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        bail!("{name:?} cannot name a file: give a host name or an address");
    }
    Ok(name)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn refuse_existing(paths: &[&PathBuf], force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    for path in paths {
        if path.exists() {
            bail!("{} exists; pass --force to replace it", path.display());
        }
    }
    Ok(())
}

/// The certificate world-readable, the key readable by its owner only (created so: never a
/// moment with wider permissions).
fn write_pair(dir: &Path, pair: &CertifiedKey, cert: &Path, key: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write(key, pair.key_pem.as_bytes(), 0o600)?;
    write(cert, pair.cert_pem.as_bytes(), 0o644)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn ca(dir: &Path, force: bool) -> Result<()> {
        certs(&CertsArgs {
            action: CertsAction::Ca {
                dir: dir.to_path_buf(),
                name: "Test CA".to_string(),
                days: 10,
                force,
            },
        })
    }

    fn node(dir: &Path, name: &str, force: bool) -> Result<()> {
        certs(&CertsArgs {
            action: CertsAction::Node {
                name: name.to_string(),
                alt_names: vec!["127.0.0.1".to_string()],
                ca_dir: dir.to_path_buf(),
                out: Some(dir.join("nodes")),
                days: 10,
                force,
            },
        })
    }

    #[test]
    fn writes_ca_and_node_files_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path(), false).unwrap();
        node(dir.path(), "agent1", false).unwrap();
        for (file, mode) in [
            ("ca.crt", 0o644),
            ("ca.key", 0o600),
            ("nodes/agent1.crt", 0o644),
            ("nodes/agent1.key", 0o600),
        ] {
            let meta = std::fs::metadata(dir.path().join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
        }
        let cert = std::fs::read_to_string(dir.path().join("nodes/agent1.crt")).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn refuses_to_overwrite_without_force_and_names_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        ca(dir.path(), false).unwrap();
        let before = std::fs::read(dir.path().join("ca.key")).unwrap();
        let err = ca(dir.path(), false).unwrap_err().to_string();
        assert!(err.contains("ca.crt exists"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);
        ca(dir.path(), true).unwrap();
        assert_ne!(std::fs::read(dir.path().join("ca.key")).unwrap(), before);

        let err = node(dir.path(), "../evil", false).unwrap_err().to_string();
        assert!(err.contains("cannot name a file"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = node(empty.path(), "agent1", false).unwrap_err().to_string();
        assert!(err.contains("ca.crt"), "{err}");
    }
}
