//! Descriptions of agents and masters as they register and announce themselves.

use crate::{AgentId, Attributes, Resources};
use serde::{Deserialize, Serialize};

/// What an agent tells the master about itself when it (re-)registers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentInfo {
    /// `None` on first registration; the id the master gave it afterwards.
    pub id: Option<AgentId>,
    pub hostname: String,
    /// The agent's HTTP port.
    pub port: u16,
    pub resources: Resources,
    pub attributes: Attributes,
}

/// What a master tells agents and frameworks about itself.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub port: u16,
    pub version: String,
}
