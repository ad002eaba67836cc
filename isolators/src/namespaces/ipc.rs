//! `namespaces/ipc`: the task gets its own System V IPC objects and POSIX message queues, so
//! containers cannot reach each other's shared memory segments or semaphores.

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::selection::Host;

pub const NAME: &str = "namespaces/ipc";

pub fn available(host: &Host) -> Result<(), String> {
    super::require_namespace(host, "ipc")
}

#[derive(Debug)]
pub struct IpcIsolator;

impl Isolator for IpcIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.namespaces.ipc = true;
        Ok(())
    }
}
