//! Integration tests of the agent against the real kernel. They need root and a cgroup2 mount
//! and panic without them: a skip is never reported as a pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod supervisor;
