//! `network/accounting`: bytes and packets a container sent and received, counted per CPU by
//! `cgroup_skb` programs and summed here into Mesos' `net_{rx,tx}_{bytes,packets}`. Counts live
//! in a pinned map, so they survive an agent restart and keep growing from where they were.

use super::{bpf_error, CgroupIds, NetworkBpf};
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::ResourceStatistics;
use std::sync::Arc;

pub const NAME: &str = "network/accounting";

#[derive(Debug)]
pub struct AccountingIsolator {
    pub bpf: Arc<NetworkBpf>,
    ids: CgroupIds,
}

impl AccountingIsolator {
    pub fn new(bpf: Arc<NetworkBpf>) -> Self {
        Self {
            bpf,
            ids: CgroupIds::default(),
        }
    }

    fn track(&self, container: &Container) -> Result<(), IsolatorError> {
        let id = self.ids.get(NAME, container)?;
        self.bpf.track_traffic(id).map_err(bpf_error(NAME))
    }
}

impl Isolator for AccountingIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        self.track(container)
    }

    /// Counting continues from the pinned counts; only a missing entry is created.
    fn recover(&self, container: &Container) -> Result<(), IsolatorError> {
        self.track(container)
    }

    fn usage(
        &self,
        container: &Container,
        stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        let id = self.ids.get(NAME, container)?;
        if let Some(traffic) = self.bpf.traffic(id).map_err(bpf_error(NAME))? {
            stats.net_rx_bytes = Some(traffic.rx_bytes);
            stats.net_rx_packets = Some(traffic.rx_packets);
            stats.net_tx_bytes = Some(traffic.tx_bytes);
            stats.net_tx_packets = Some(traffic.tx_packets);
        }
        Ok(())
    }

    fn cleanup(&self, container: &Container) -> Result<(), IsolatorError> {
        match self.ids.take(container) {
            Some(id) => self.bpf.untrack_traffic(id).map_err(bpf_error(NAME)),
            // Never prepared or recovered by this agent: the start-up sweep removed its entry.
            None => Ok(()),
        }
    }
}
