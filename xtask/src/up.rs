//! `cargo xtask up`: from a fresh Debian 12 machine to a running single-node cluster. Installs the
//! Cap'n Proto compiler if missing, builds the release binaries, installs them into
//! /usr/local/bin (atomically, so running daemons keep their old inode) and runs `strata up`.

use crate::cmd::Cmd;
use anyhow::{bail, Context};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The binaries built and installed, with the packages that build them.
const BINARIES: [&str; 3] = ["strata-master", "strata-agent", "strata"];
const PACKAGES: [&str; 3] = ["strata-master", "strata-agent", "strata-cli"];
const INSTALL_DIR: &str = "/usr/local/bin";
const BUILD_PACKAGES: &[&str] = &["capnproto", "clang", "libbpf-dev"];

pub fn run(strata_up_args: &[String]) -> anyhow::Result<()> {
    crate::require_root(
        "cargo xtask up",
        "it installs packages and binaries, and the agent creates cgroups and namespaces",
    )?;
    // What the build needs: capnp for the schema, clang and libbpf's headers for the agent's
    // BPF programs.
    crate::apt::install_missing(BUILD_PACKAGES, true)?;
    let mut build = vec!["build", "--release"];
    for package in PACKAGES {
        build.extend(["-p", package]);
    }
    Cmd::cargo(&build).run()?;

    let release = target_dir()?.join("release");
    let install_dir = Path::new(INSTALL_DIR);
    for binary in BINARIES {
        let source = release.join(binary);
        let dest = install_dir.join(binary);
        // Replacing an identical binary would only make running daemons look outdated.
        if same_content(&source, &dest) {
            println!("{} is up to date", dest.display());
            continue;
        }
        install(&source, install_dir, binary)?;
        println!("installed {}", dest.display());
    }
    let strata = install_dir.join("strata");
    Err(Cmd::new(&strata, &["up"])
        .args(strata_up_args.iter().cloned())
        .exec())
}

/// The workspace's target directory, as cargo resolves it (`CARGO_TARGET_DIR`, config, default).
pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    let (ok, json) = Cmd::cargo(&["metadata", "--format-version", "1", "--no-deps"]).capture()?;
    if !ok {
        bail!("`cargo metadata` failed");
    }
    let metadata: serde_json::Value =
        serde_json::from_str(&json).context("cannot parse the output of `cargo metadata`")?;
    metadata
        .get("target_directory")
        .and_then(|dir| dir.as_str())
        .map(PathBuf::from)
        .context("`cargo metadata` names no target_directory")
}

/// Whether both files exist and hold the same bytes.
fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.len() == mb.len() => {
            matches!((fs::read(a), fs::read(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// Installs `source` as `dir/name` with mode 0755, replacing any old file atomically: a copy
/// next to it, fsync, rename.
fn install(source: &Path, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dest = dir.join(name);
    let tmp = dir.join(format!(".{name}.xtask-{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        fs::copy(source, &tmp)
            .with_context(|| format!("cannot copy {} to {}", source.display(), tmp.display()))?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot chmod {}", tmp.display()))?;
        fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        fs::rename(&tmp, &dest)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), dest.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| dest)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn installs_over_an_existing_binary() {
        let dir = std::env::temp_dir().join(format!("xtask-install-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let source = dir.join("built");
        fs::write(&source, "new").unwrap();
        let bin = dir.join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(bin.join("strata"), "old").unwrap();
        let old = fs::File::open(bin.join("strata")).unwrap();

        let dest = install(&source, &bin, "strata").unwrap();
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // the old inode is untouched (a running daemon keeps executing it)
        let mut content = String::new();
        std::io::Read::read_to_string(&mut &old, &mut content).unwrap();
        assert_eq!(content, "old");
        assert_eq!(
            fs::read_dir(&bin).unwrap().count(),
            1,
            "no temp file is left"
        );

        assert!(same_content(&source, &dest));
        assert!(!same_content(&source, &dir.join("missing")));
        fs::write(&source, "newer").unwrap();
        assert!(!same_content(&source, &dest));

        assert!(install(&dir.join("missing"), &bin, "strata").is_err());
        assert_eq!(fs::read_dir(&bin).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
