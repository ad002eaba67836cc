//! `cgroups/cpuset`: optional pinning of a task to CPUs.
//!
//! Pinning is a set resource named `cpuset` whose items are CPU numbers. The agent offers the
//! CPUs it lets tasks pin (e.g. `--resources 'cpus:4;mem:8192;cpuset:{0,1,2,3}'`); a task that
//! takes `cpuset:{2,3}` runs on CPUs 2 and 3 only (`cpuset.cpus` = `2,3`), and since a set item
//! is allocated to one task at a time, pinned tasks never share a CPU. A task without a `cpuset`
//! resource is not pinned (`cpuset.cpus` stays empty: the parent's CPUs). Memory nodes are left
//! alone.

use super::write;
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use strata_schema::Resources;

pub const NAME: &str = "cgroups/cpuset";
/// The set resource naming the CPUs a task is pinned to.
pub const RESOURCE: &str = "cpuset";

/// The `cpuset.cpus` value of `resources` (sorted CPU numbers, comma-separated), `None` when the
/// task is not pinned.
pub fn cpus_value(resources: &Resources) -> Result<Option<String>, IsolatorError> {
    let set = resources.set(RESOURCE);
    if set.is_empty() {
        return Ok(None);
    }
    let mut cpus = set
        .iter()
        .map(|item| {
            item.trim()
                .parse::<u32>()
                .map_err(|_| IsolatorError::Invalid {
                    isolator: NAME,
                    message: format!("{item:?} in the cpuset resource is not a CPU number"),
                })
        })
        .collect::<Result<Vec<u32>, _>>()?;
    cpus.sort_unstable();
    cpus.dedup();
    Ok(Some(
        cpus.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ))
}

/// Whether the container's `cpuset.cpus` names CPUs (it is empty when not pinned).
fn pinned(container: &Container) -> bool {
    container
        .cgroup
        .read_optional("cpuset.cpus")
        .ok()
        .flatten()
        .is_some_and(|cpus| !cpus.trim().is_empty())
}

#[derive(Debug)]
pub struct CpusetIsolator;

impl CpusetIsolator {
    fn apply(
        &self,
        container: &Container,
        resources: &Resources,
        updating: bool,
    ) -> Result<(), IsolatorError> {
        match cpus_value(resources)? {
            Some(cpus) => write(NAME, container.cgroup, "cpuset.cpus", &cpus),
            // An empty cpuset.cpus means "the parent's CPUs": unpins an updated container.
            None if updating && pinned(container) => {
                write(NAME, container.cgroup, "cpuset.cpus", "\n")
            }
            None => Ok(()),
        }
    }
}

impl Isolator for CpusetIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn controller(&self) -> Option<&'static str> {
        Some("cpuset")
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        self.apply(container, container.resources, false)
    }

    fn update(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        self.apply(container, resources, true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    #[test]
    fn pins_to_the_cpus_of_the_set() {
        let fake = FakeCgroup::new(&[("cpuset.cpus", "")], "cpus:2;cpuset:{3,1}");
        CpusetIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("cpuset.cpus"), "1,3");

        let fake = FakeCgroup::new(&[("cpuset.cpus", "")], "cpus:2");
        CpusetIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("cpuset.cpus"), "", "not pinned");
        CpusetIsolator
            .update(&fake.container(), &Resources::parse("cpus:2").unwrap())
            .unwrap();
        assert_eq!(fake.file("cpuset.cpus"), "", "nothing to unpin");
        std::fs::write(fake.dir.path().join("cpuset.cpus"), "1").unwrap();
        CpusetIsolator
            .update(&fake.container(), &Resources::parse("cpus:2").unwrap())
            .unwrap();
        assert_eq!(fake.file("cpuset.cpus"), "\n", "unpinned on update");
    }

    #[test]
    fn rejects_items_that_are_not_cpus() {
        let fake = FakeCgroup::new(&[("cpuset.cpus", "")], "cpuset:{a}");
        let err = CpusetIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cgroups/cpuset: \"a\" in the cpuset resource is not a CPU number"
        );
    }
}
