//! High availability: where the leading master is, and what a new leader must know.
//!
//! - [`MasterAddress`]: a `--master` value, `host:port` or `zk://h1:p1,h2:p2/path`.
//! - [`LeaderInfo`]: the MasterInfo JSON Mesos masters write into ZooKeeper
//!   (`<path>/json.info_NNNNNNNNNN`), so tools that find a Mesos leader find ours.
//! - [`zk::Contender`]: a master's candidacy (ephemeral sequential znode; the lowest leads).
//! - [`zk::Detector`]: followers of the leader (agents, frameworks, the CLI).
//! - [`registry`]: admitted agents and frameworks, stored in ZooKeeper with versioned
//!   compare-and-set writes, or in an atomically written file for a standalone master.

pub mod info;
pub mod registry;
pub mod url;
pub mod zk;

pub use info::LeaderInfo;
pub use url::{MasterAddress, ZkUrl};
