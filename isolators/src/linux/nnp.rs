//! `linux/nnp`: the task runs with `no_new_privs` (`prctl(PR_SET_NO_NEW_PRIVS)`, set right before
//! `execve`): setuid/setgid bits and file capabilities grant nothing, so the task and its
//! descendants can never gain privileges it did not start with (`NoNewPrivs: 1` in
//! `/proc/<pid>/status`).

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;

pub const NAME: &str = "linux/nnp";

#[derive(Debug)]
pub struct NnpIsolator;

impl Isolator for NnpIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.process.no_new_privs = true;
        Ok(())
    }
}

/// Sets `no_new_privs` on the calling process (inherited across fork and execve, never unset).
pub fn set_no_new_privs() -> Result<(), nix::Error> {
    // SAFETY: prctl(2) with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(nix::Error::last())
    }
}
