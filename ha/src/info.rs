//! The MasterInfo JSON a contending master writes into its znode, in the layout Mesos masters
//! use (`json.info_NNNNNNNNNN`), so tools that find a Mesos leader in ZooKeeper find ours.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// `address` of Mesos' MasterInfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
}

/// Mesos' MasterInfo as JSON (`id`, `address.{ip,port,hostname}`, `hostname`, `port`,
/// `version`, and the legacy `ip` (IPv4 as Mesos' uint32) and `pid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub id: String,
    pub address: Address,
    pub hostname: String,
    pub port: u16,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
}

impl LeaderInfo {
    pub fn new(id: &str, ip: &str, port: u16, hostname: &str, version: &str) -> Self {
        // Mesos writes the IPv4 address as the in_addr's bytes read as a little-endian u32.
        let legacy_ip = ip
            .parse::<Ipv4Addr>()
            .ok()
            .map(|a| u32::from_le_bytes(a.octets()));
        LeaderInfo {
            id: id.to_string(),
            address: Address {
                hostname: hostname.to_string(),
                ip: ip.to_string(),
                port,
            },
            hostname: hostname.to_string(),
            port,
            version: version.to_string(),
            ip: legacy_ip,
            pid: Some(format!("master@{ip}:{port}")),
        }
    }

    /// `ip:port`, where the master's RPC and HTTP answer.
    pub fn endpoint(&self) -> String {
        if self.address.ip.contains(':') {
            format!("[{}]:{}", self.address.ip, self.address.port)
        } else {
            format!("{}:{}", self.address.ip, self.address.port)
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(data: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(data).map_err(|e| format!("not a MasterInfo JSON: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mesos_layout() {
        let info = LeaderInfo::new("m1", "10.0.0.1", 5050, "host-a", "0.1.0");
        let json: serde_json::Value = serde_json::from_slice(&info.to_json()).unwrap();
        assert_eq!(json["address"]["ip"], "10.0.0.1");
        assert_eq!(json["address"]["port"], 5050);
        assert_eq!(json["address"]["hostname"], "host-a");
        assert_eq!(json["hostname"], "host-a");
        assert_eq!(json["port"], 5050);
        assert_eq!(json["id"], "m1");
        assert_eq!(json["ip"], 16777226);
        assert_eq!(json["pid"], "master@10.0.0.1:5050");
        assert_eq!(info.endpoint(), "10.0.0.1:5050");
    }

    #[test]
    fn reads_what_a_mesos_master_writes() {
        let mesos = br#"{"address":{"hostname":"m","ip":"10.1.2.3","port":5050},"hostname":"m","id":"abc","ip":50462986,"pid":"master@10.1.2.3:5050","port":5050,"version":"1.11.0"}"#;
        let info = LeaderInfo::from_json(mesos).unwrap();
        assert_eq!(info.endpoint(), "10.1.2.3:5050");
        assert!(LeaderInfo::from_json(b"{}")
            .unwrap_err()
            .contains("MasterInfo"));
    }
}
