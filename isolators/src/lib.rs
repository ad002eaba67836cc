//! The [`Isolator`] trait and its implementations: cgroup v2 controllers (`cgroups/*`),
//! namespaces (`namespaces/*`), the container's filesystem (`filesystem/linux`), capabilities,
//! no_new_privs and seccomp (`linux/*`), resource limits (`posix/rlimits`), bind() confined to the allocated
//! ports and traffic counters through BPF (`network/*`); their selection with
//! `--isolation` ([`selection`]); usage statistics ([`statistics`]); and the small direct cgroup v2
//! layer they stand on ([`cgroup2`]).

pub mod cgroup2;
pub mod cgroups;
pub mod filesystem;
pub mod isolator;
pub mod launch;
pub mod linux;
pub mod namespaces;
pub mod network;
pub mod posix;
pub mod selection;
pub mod statistics;

pub use isolator::{Container, Isolator, IsolatorError};
pub use launch::{Launch, ProcessIsolation};
pub use selection::{Host, Isolation, IsolationConfig, IsolationError, Kind, Selection};
pub use statistics::ResourceStatistics;
