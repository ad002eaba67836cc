//! `cargo xtask bench …`: builds the release binaries and runs `strata-bench` (in the
//! `strata-tests` crate, which has the cluster harness) against them. Benchmarks print each
//! figure beside a baseline measured in the same run; they are never timed tests.

use crate::apt::{self, CI_PACKAGES};
use crate::cmd::Cmd;

pub fn run(bench: &str, tasks: usize) -> anyhow::Result<()> {
    crate::require_root(
        "cargo xtask bench",
        "the benchmarks start agents that create cgroups and namespaces",
    )?;
    apt::install_missing(CI_PACKAGES, true)?;
    let root = crate::workspace_root();
    Cmd::cargo(&[
        "build",
        "--release",
        "-p",
        "strata-master",
        "-p",
        "strata-agent",
        "-p",
        "strata-tests",
        "--bins",
    ])
    .dir(&root)
    .run()?;
    let release = root.join("target").join("release");
    Cmd::new(release.join("strata-bench"), &[bench, &tasks.to_string()])
        .env("STRATA_BIN_DIR", &release.to_string_lossy())
        .run()
}
