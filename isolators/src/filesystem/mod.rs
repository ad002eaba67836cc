//! Filesystem isolators: what a container's mount namespace holds.

pub mod linux;
