//! pymesos (PyPI) for the Mesos-compatibility tests: a virtual environment made once per build
//! directory (`<bin_dir>/pymesos-venv`) from Debian's Python with its `python3-http-parser`,
//! `python3-six` and `python3-kazoo` (the PyPI http-parser does not build on Python 3.11), plus
//! `pymesos` and `addict` from PyPI. The scripts the tests run are in `tests/python/`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Debian's interpreter: its dist-packages hold the http-parser pymesos needs.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";
/// What pip installs into the environment.
const PACKAGES: &[&str] = &["pymesos==0.3.15", "addict"];

/// The directory of the test scripts.
pub fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// The environment's interpreter, making the environment first if it is missing or
/// incomplete. Concurrent callers (tests in parallel, several test binaries) wait on a lock.
pub fn pymesos_python() -> Result<PathBuf> {
    let dir = crate::bin_dir().join("pymesos-venv");
    let python = dir.join("bin/python");
    let done = dir.join(".complete");
    std::fs::create_dir_all(crate::bin_dir())?;
    let lock = std::fs::File::create(crate::bin_dir().join("pymesos-venv.lock"))?;
    // SAFETY: flock on a descriptor this function owns; released when `lock` is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("locking pymesos-venv.lock");
    }
    if done.exists() {
        return Ok(python);
    }
    for module in ["http_parser", "six", "kazoo"] {
        let ok = Command::new(SYSTEM_PYTHON)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!(
                "{SYSTEM_PYTHON} cannot import {module}: apt-get install python3-venv \
                 python3-http-parser python3-six python3-kazoo (cargo xtask ci installs them)"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(Command::new(SYSTEM_PYTHON)
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&dir))?;
    run(Command::new(dir.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(PACKAGES))?;
    std::fs::write(&done, "")?;
    Ok(python)
}

/// A command running `tests/python/<script>` with the environment's interpreter, unbuffered.
pub fn script(script: &str) -> Result<Command> {
    let mut cmd = Command::new(pymesos_python()?);
    cmd.arg(scripts_dir().join(script))
        .env("PYTHONUNBUFFERED", "1");
    Ok(cmd)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_environment_imports_pymesos() {
        let python = super::pymesos_python().unwrap();
        let out = std::process::Command::new(python)
            .args(["-c", "import pymesos, addict; print(pymesos.__name__)"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
