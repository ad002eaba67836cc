//! The Isolator trait and its implementations (cgroup v2 controllers, namespaces).

pub mod cgroup2;
pub mod namespaces;
