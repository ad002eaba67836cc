//! POSIX isolators.

pub mod rlimits;
