//! End-to-end tests through real `strata-master`, `strata-agent` and `strata` processes. They need
//! root and a cgroup2 mount and fail (never pass) without them.

#![allow(clippy::unwrap_used)] // reason: a failing unwrap is a failing test

mod allocation;
mod auth;
mod bad_input;
mod cli;
mod confinement;
mod executor;
mod ha;
mod hostile;
mod images;
mod isolation;
mod network;
mod operator_api;
mod recovery;
mod tasks;
mod tls;
mod v1_scheduler;
mod webui;

use std::path::PathBuf;
use strata_tests::Cluster;

/// The sandbox file `name` of `task` of framework `fw` on agent `i`.
pub fn sandbox_file(
    cluster: &Cluster,
    i: usize,
    fw: &str,
    task: &str,
    name: &str,
) -> Option<PathBuf> {
    let agents = cluster.agents[i].0.work_dir.join("agents");
    for agent in std::fs::read_dir(agents).ok()?.flatten() {
        let runs = agent
            .path()
            .join("frameworks")
            .join(fw)
            .join("executors")
            .join(task)
            .join("runs");
        if let Ok(entries) = std::fs::read_dir(runs) {
            for run in entries.flatten() {
                let p = run.path().join(name);
                if p.exists() {
                    return Some(p);
                }
            }
        }
    }
    None
}

pub fn read_sandbox(cluster: &Cluster, i: usize, fw: &str, task: &str, name: &str) -> String {
    sandbox_file(cluster, i, fw, task, name)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}
