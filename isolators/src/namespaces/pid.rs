//! `namespaces/pid`: the task sees only its container's processes. Init is cloned into a new pid
//! namespace (it is pid 1 there, reaps orphans, and its exit kills what is left) and a new mount
//! namespace with a fresh `/proc` of that pid namespace, so `ps` shows the container alone.

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::selection::Host;

pub const NAME: &str = "namespaces/pid";

/// Pid namespaces exist when the kernel lists one for the agent.
pub fn available(host: &Host) -> Result<(), String> {
    super::require_namespace(host, "pid")?;
    super::require_namespace(host, "mnt")
}

#[derive(Debug)]
pub struct PidIsolator;

impl Isolator for PidIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.namespaces.pid = true;
        launch.namespaces.mount = true;
        launch.process.mounts.proc = true;
        Ok(())
    }
}
