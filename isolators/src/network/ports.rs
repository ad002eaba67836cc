//! `network/ports`: a container may bind only the ports it was allocated (its `ports`
//! resource); any other bind() fails with EPERM in the kernel, at the moment of the call (Mesos'
//! isolator of the same name noticed violations by polling and then killed the task). Binding
//! port 0 works when the kernel's choice lands in the allocation and fails with EPERM otherwise.
//! With `--enforce-container-ports=false` such binds are allowed and only counted.

use super::{bpf_error, CgroupIds, NetworkBpf};
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::ResourceStatistics;
use std::sync::Arc;
use strata_schema::Resources;

pub const NAME: &str = "network/ports";

#[derive(Debug)]
pub struct PortsIsolator {
    pub bpf: Arc<NetworkBpf>,
    /// `--enforce-container-ports`.
    pub enforce: bool,
    ids: CgroupIds,
}

/// The `ports` ranges of `resources` as 16-bit ranges; a range beyond 65535 is an error.
pub fn port_ranges(resources: &Resources) -> Result<Vec<(u16, u16)>, String> {
    resources
        .ranges("ports")
        .into_iter()
        .map(|r| match (u16::try_from(r.begin), u16::try_from(r.end)) {
            (Ok(first), Ok(last)) => Ok((first, last)),
            _ => Err(format!("ports [{}-{}] are outside 0-65535", r.begin, r.end)),
        })
        .collect()
}

impl PortsIsolator {
    pub fn new(bpf: Arc<NetworkBpf>, enforce: bool) -> Self {
        Self {
            bpf,
            enforce,
            ids: CgroupIds::default(),
        }
    }

    fn apply(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        let ranges = port_ranges(resources).map_err(|message| IsolatorError::Invalid {
            isolator: NAME,
            message,
        })?;
        let id = self.ids.get(NAME, container)?;
        self.bpf
            .set_ports(id, &ranges, self.enforce)
            .map_err(bpf_error(NAME))
    }
}

impl Isolator for PortsIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    /// The entry exists before the container's first process, so no bind escapes the check.
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
        let id = self.ids.get(NAME, container)?;
        if let Some(ports) = self.bpf.ports(id).map_err(bpf_error(NAME))? {
            stats.net_port_violations = Some(ports.violations);
        }
        Ok(())
    }

    fn cleanup(&self, container: &Container) -> Result<(), IsolatorError> {
        match self.ids.take(container) {
            Some(id) => self.bpf.remove_ports(id).map_err(bpf_error(NAME)),
            // Never prepared or recovered by this agent: the start-up sweep removed its entry.
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges_come_from_the_ports_resource() {
        let r = Resources::parse("cpus:1;ports:[31000-31001,31005-31005]").unwrap();
        assert_eq!(
            port_ranges(&r).unwrap(),
            vec![(31000, 31001), (31005, 31005)]
        );
        assert_eq!(
            port_ranges(&Resources::parse("cpus:1").unwrap()).unwrap(),
            vec![]
        );
        let err = port_ranges(&Resources::parse("ports:[65000-70000]").unwrap()).unwrap_err();
        assert!(err.contains("65000-70000"), "{err}");
    }
}
