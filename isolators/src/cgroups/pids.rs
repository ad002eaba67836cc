//! `cgroups/pids`: a cap on the number of processes and threads in a container, so that a fork
//! bomb stays inside its container.
//!
//! `pids.max` = the task's `pids` scalar resource when it has one (the agent must offer it, e.g.
//! `--resources 'cpus:4;mem:8192;pids:10000'`), else the agent's `--container-pids-max`, else
//! `max` (`--container-pids-max 0`, the default, means unlimited).
//!
//! `usage` reports `threads` from `pids.current` (the kernel's exact count of the container's
//! tasks).

use super::write;
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::ResourceStatistics;
use strata_schema::Resources;

pub const NAME: &str = "cgroups/pids";
/// The scalar resource a task may limit its processes with.
pub const RESOURCE: &str = "pids";

#[derive(Debug)]
pub struct PidsIsolator {
    /// `--container-pids-max`; 0: unlimited.
    pub default_max: u64,
}

impl PidsIsolator {
    /// The `pids.max` value for a task with `resources`.
    pub fn limit(&self, resources: &Resources) -> String {
        let pids = resources.scalar(RESOURCE).floor();
        if pids >= 1.0 {
            (pids as u64).to_string()
        } else if self.default_max > 0 {
            self.default_max.to_string()
        } else {
            "max".to_string()
        }
    }

    fn apply(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        write(NAME, container.cgroup, "pids.max", &self.limit(resources))
    }
}

impl Isolator for PidsIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn controller(&self) -> Option<&'static str> {
        Some("pids")
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        self.apply(container, container.resources)
    }

    fn update(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        self.apply(container, resources)
    }

    fn usage(
        &self,
        container: &Container,
        stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        let current = container
            .cgroup
            .read_optional("pids.current")
            .map_err(IsolatorError::cgroup(NAME))?;
        if let Some(n) = current.and_then(|t| t.trim().parse().ok()) {
            stats.threads = Some(n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    fn pids_max(resources: &str, default_max: u64) -> String {
        let fake = FakeCgroup::new(&[("pids.max", "")], resources);
        PidsIsolator { default_max }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        fake.file("pids.max")
    }

    #[test]
    fn the_task_resource_wins_over_the_flag() {
        assert_eq!(pids_max("cpus:1;pids:100", 0), "100");
        assert_eq!(pids_max("cpus:1;pids:100", 500), "100");
        assert_eq!(pids_max("cpus:1", 500), "500");
        assert_eq!(pids_max("cpus:1", 0), "max");
        assert_eq!(pids_max("pids:64.9", 0), "64");
    }

    #[test]
    fn update_and_usage() {
        let fake = FakeCgroup::new(&[("pids.max", ""), ("pids.current", "7\n")], "pids:10");
        let iso = PidsIsolator { default_max: 0 };
        iso.update(&fake.container(), &Resources::parse("pids:2000").unwrap())
            .unwrap();
        assert_eq!(fake.file("pids.max"), "2000");
        let mut stats = ResourceStatistics::default();
        iso.usage(&fake.container(), &mut stats).unwrap();
        assert_eq!(stats.threads, Some(7));
    }
}
