//! Linux process-security isolators: the capability bounding set and no_new_privs.

pub mod capabilities;
pub mod nnp;
