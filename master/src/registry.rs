//! The registry: what a newly elected master must know that agents and frameworks cannot tell it
//! — the agents it admitted (and which it found unreachable) and the frameworks it admitted with
//! their failover timeouts, the operator's weights and quotas, dynamic reservations and
//! persistent volumes, and agents being drained or taken down. The state machine keeps it current ([`crate::state::Master`]); the
//! actor commits every change before it acts on it, through a [`strata_ha::registry::Store`]
//! (ZooKeeper with compare-and-set, or an atomically written file when standalone).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_schema::{AgentId, AgentInfo, FrameworkId, FrameworkInfo, Resources};

/// An admitted agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredAgent {
    pub info: AgentInfo,
    /// Seconds since the epoch when it was marked unreachable; `None` while reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<f64>,
    /// Its dynamic reservations (and persistent volumes): items of its total moved from `*` to
    /// a role by RESERVE or `/reserve`. The agent itself reports only its static resources.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub reservations: Resources,
    /// Its persistent volumes (CREATE), carved out of reserved disk.
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub volumes: Resources,
    /// Persistent volumes destroyed while the agent was not connected: their data is deleted
    /// when it comes back (and their ids cannot be used again before).
    #[serde(default, skip_serializing_if = "Resources::is_empty")]
    pub destroyed: Resources,
    /// Set while it is being drained (no offers; its tasks killed) or drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainConfig>,
    /// Taken down by the operator (`/machine/down`): no offers, tasks killed, until `/machine/up`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub down: bool,
}

/// How an agent is drained (Mesos' DRAIN_AGENT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrainConfig {
    /// The kill grace period its tasks get at most; `None`: their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_grace_period_secs: Option<f64>,
    /// Whether its tasks end TASK_GONE_BY_OPERATOR rather than TASK_KILLED (`mark_gone`).
    #[serde(default)]
    pub mark_gone: bool,
}

/// A role's quota (Mesos 1.9's QuotaConfig): scalar quantities, unreserved.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QuotaConfig {
    /// Satisfied before fair share.
    #[serde(default)]
    pub guarantees: Resources,
    /// Never exceeded; a name absent is unlimited.
    #[serde(default)]
    pub limits: Resources,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub agents: BTreeMap<AgentId, RegisteredAgent>,
    #[serde(default)]
    pub frameworks: BTreeMap<FrameworkId, FrameworkInfo>,
    /// Role weights set by the operator (a role absent weighs 1).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, QuotaConfig>,
    /// The operator's maintenance schedule (`/maintenance/schedule`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<MaintenanceWindow>,
}

/// Machines that will be unavailable from `start` for `duration` (Mesos' maintenance Window).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceWindow {
    /// Hostnames (agents are matched by hostname).
    pub machines: Vec<String>,
    /// Seconds since the epoch.
    pub start: f64,
    /// Seconds; `None`: indefinitely.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
}

impl Registry {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored registry; an error names what is wrong (a master refuses to lead on a
    /// registry it cannot read rather than forget what it admitted).
    pub fn from_json(data: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(data).map_err(|e| format!("the registry is not valid: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trip_and_bad_input() {
        let mut reg = Registry::default();
        reg.agents.insert(
            AgentId::new("a-S1").unwrap(),
            RegisteredAgent {
                info: AgentInfo {
                    hostname: "h".into(),
                    port: 5051,
                    ..AgentInfo::default()
                },
                unreachable_since: Some(12.5),
                reservations: Resources::parse("cpus(ops):2").unwrap(),
                volumes: Resources::parse("disk(ops)[v1:data]:64").unwrap(),
                destroyed: Resources::parse("disk(ops)[v0:old]:8").unwrap(),
                drain: Some(DrainConfig {
                    max_grace_period_secs: Some(3.0),
                    mark_gone: false,
                }),
                down: true,
            },
        );
        reg.frameworks.insert(
            FrameworkId::new("fw-1").unwrap(),
            FrameworkInfo {
                name: "f".into(),
                failover_timeout_secs: 60.0,
                ..FrameworkInfo::default()
            },
        );
        reg.weights.insert("eng".into(), 2.0);
        reg.quotas.insert(
            "eng/backend".into(),
            QuotaConfig {
                guarantees: Resources::parse("cpus:1").unwrap(),
                limits: Resources::parse("cpus:4;mem:1024").unwrap(),
            },
        );
        assert_eq!(Registry::from_json(&reg.to_json()).unwrap(), reg);
        assert_eq!(Registry::from_json(b"{}").unwrap(), Registry::default());
        let err = Registry::from_json(b"{\"agents\": 3}").unwrap_err();
        assert!(err.contains("registry"), "{err}");
    }
}
