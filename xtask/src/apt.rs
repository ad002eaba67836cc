//! Debian packages: what is installed (`dpkg-query`), installing what is missing (`apt-get`).

use crate::cmd::Cmd;

/// The system packages the tests need.
/// `qemu-system-x86`, `busybox-static` and `cpio` are the VM test bed's (`cargo xtask vm-test`).
pub const CI_PACKAGES: &[&str] = &[
    "capnproto",
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "clang",
    "libbpf-dev",
    // The HA tests' ZooKeeper (run with the Java it pulls in), and the partition test's netns.
    "zookeeper",
    "iproute2",
    // The package test's (`cargo xtask package-test`): a Debian root for the guest, the .rpm
    // queries, the root's disk image.
    "debootstrap",
    "rpm",
    "e2fsprogs",
    // The image tests' local registry (`tests/src/registry.rs`) and its TLS and token keys.
    "docker-registry",
    "openssl",
    // pymesos' dependencies from Debian (tests/src/python.rs): PyPI's http-parser does not
    // build on Python 3.11.
    "python3-venv",
    "python3-http-parser",
    "python3-six",
    "python3-kazoo",
    // `strata top` is checked in a terminal (tests/tests/it/cli.rs).
    "tmux",
    // The web UI's tests drive a headless Chromium over WebDriver (tests/tests/it/webui.rs).
    "chromium",
    "chromium-driver",
];

/// Whether dpkg reports `package` as installed.
pub fn is_installed(package: &str) -> anyhow::Result<bool> {
    let (known, status) = Cmd::new("dpkg-query", &["-W", "-f=${Status}", package]).capture()?;
    Ok(known && status_is_installed(&status))
}

/// `dpkg-query -f='${Status}'` prints `want ok state`, e.g. `install ok installed`; a removed
/// package reads `deinstall ok config-files`.
pub fn status_is_installed(status: &str) -> bool {
    let words: Vec<&str> = status.split_whitespace().collect();
    matches!(words.as_slice(), [_, "ok", "installed"])
}

/// Installs those of `packages` that are missing; returns them (empty when nothing was missing,
/// in which case apt-get does not run at all).
pub fn install_missing(packages: &[&str], no_recommends: bool) -> anyhow::Result<Vec<String>> {
    let mut missing = Vec::new();
    for package in packages {
        if !is_installed(package)? {
            missing.push(package.to_string());
        }
    }
    if missing.is_empty() {
        return Ok(missing);
    }
    Cmd::new("apt-get", &["update"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    let mut args = vec!["install", "-y"];
    if no_recommends {
        args.push("--no-install-recommends");
    }
    Cmd::new("apt-get", &args)
        .args(missing.iter().cloned())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()?;
    Ok(missing)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_statuses() {
        assert!(status_is_installed("install ok installed"));
        assert!(status_is_installed("hold ok installed"));
        assert!(!status_is_installed("deinstall ok config-files"));
        assert!(!status_is_installed("unknown ok not-installed"));
        assert!(!status_is_installed(""));
    }
}
