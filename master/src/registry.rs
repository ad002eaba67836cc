//! The registry: what a newly elected master must know that agents and frameworks cannot tell it
//! — the agents it admitted (and which it found unreachable) and the frameworks it admitted with
//! their failover timeouts. The state machine keeps it current ([`crate::state::Master`]); the
//! actor commits every change before it acts on it, through a [`strata_ha::registry::Store`]
//! (ZooKeeper with compare-and-set, or an atomically written file when standalone).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use strata_schema::{AgentId, AgentInfo, FrameworkId, FrameworkInfo};

/// An admitted agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredAgent {
    pub info: AgentInfo,
    /// Seconds since the epoch when it was marked unreachable; `None` while reachable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_since: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Registry {
    #[serde(default)]
    pub agents: BTreeMap<AgentId, RegisteredAgent>,
    #[serde(default)]
    pub frameworks: BTreeMap<FrameworkId, FrameworkInfo>,
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
        assert_eq!(Registry::from_json(&reg.to_json()).unwrap(), reg);
        assert_eq!(Registry::from_json(b"{}").unwrap(), Registry::default());
        let err = Registry::from_json(b"{\"agents\": 3}").unwrap_err();
        assert!(err.contains("registry"), "{err}");
    }
}
