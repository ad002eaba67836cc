//! The shared vocabulary of Strata: the Cap'n Proto wire schemas (generated), ids, task states and
//! `Resources` math with the Mesos `--resources` / `--attributes` syntax. No I/O happens here.
//!
//! Only this crate knows the wire format: [`wire`] converts between the generated Cap'n Proto
//! readers/builders and the domain types the rest of the workspace uses.

pub mod attributes;
pub mod container;
pub mod duration;
pub mod ids;
pub mod info;
pub mod mesos_json;
pub mod resources;
pub mod task;
pub mod v1;
pub mod wire;

pub use attributes::{Attribute, AttributeValue, Attributes, AttributesError};
pub use container::{ContainerInfo, ContainerType, Image, ImageType, Volume, VolumeMode};
pub use duration::{parse_duration, DurationError};
pub use ids::{AgentId, ContainerId, ExecutorId, FrameworkId, OfferId, TaskId};
pub use info::{AgentInfo, MasterInfo};
pub use resources::{
    validate_role, DiskInfo, Range, Resource, Resources, ResourcesError, Value, DEFAULT_ROLE,
};
pub use task::{
    CommandInfo, ExecutorInfo, ExecutorKind, FrameworkInfo, Operation, StatusSource, TaskInfo,
    TaskState, TaskStatus, UpdateUuid,
};

/// The version every Strata binary reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[allow(clippy::all, clippy::unwrap_used, unused, missing_docs)]
pub mod common_capnp {
    include!(concat!(env!("OUT_DIR"), "/common_capnp.rs"));
}
#[allow(clippy::all, clippy::unwrap_used, unused, missing_docs)]
pub mod agent_capnp {
    include!(concat!(env!("OUT_DIR"), "/agent_capnp.rs"));
}
#[allow(clippy::all, clippy::unwrap_used, unused, missing_docs)]
pub mod scheduler_capnp {
    include!(concat!(env!("OUT_DIR"), "/scheduler_capnp.rs"));
}
