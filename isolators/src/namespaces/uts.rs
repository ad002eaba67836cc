//! `namespaces/uts`: the task gets its own hostname: the task's `hostname` when its TaskInfo
//! names one, else its task id (truncated to 64 bytes, the kernel's limit).

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::selection::Host;

pub const NAME: &str = "namespaces/uts";

pub fn available(host: &Host) -> Result<(), String> {
    super::require_namespace(host, "uts")
}

#[derive(Debug)]
pub struct UtsIsolator;

impl Isolator for UtsIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.namespaces.uts = true;
        launch.hostname = Some(container.hostname.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;
    use crate::namespaces::Namespaces;

    #[test]
    fn namespace_isolators_ask_for_their_namespaces() {
        let fake = FakeCgroup::new(&[], "cpus:1");
        let mut launch = Launch::default();
        assert_eq!(launch.namespaces, Namespaces::NONE);
        UtsIsolator.prepare(&fake.container(), &mut launch).unwrap();
        assert_eq!(launch.hostname.as_deref(), Some("task"));
        super::super::ipc::IpcIsolator
            .prepare(&fake.container(), &mut launch)
            .unwrap();
        super::super::pid::PidIsolator
            .prepare(&fake.container(), &mut launch)
            .unwrap();
        assert_eq!(launch.namespaces, Namespaces::default());
        assert!(launch.process.mounts.proc);
        assert!(launch.process.mounts.tmp.is_none());
    }
}
