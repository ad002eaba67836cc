//! Linux process-security isolators: the capability bounding set, no_new_privs and seccomp.

pub mod capabilities;
pub mod nnp;
pub mod seccomp;
