//! `cargo xtask bench …`: builds the release binaries and runs `strata-bench` (in the
//! `strata-tests` crate, which has the cluster harness) against them. Benchmarks print each
//! figure beside a baseline measured in the same run; they are never timed tests.

use crate::apt::{self, CI_PACKAGES};
use crate::cmd::Cmd;

/// Packages a benchmark needs beyond CI's: `isolation` compares with Debian's OCI runtimes.
fn bench_packages(bench: &str) -> &'static [&'static str] {
    match bench {
        "isolation" => &["crun", "runc"],
        "image" => &["crun", "runc", "docker-registry", "openssl"],
        _ => &[],
    }
}

pub fn run(bench: &str, tasks: usize) -> anyhow::Result<()> {
    crate::require_root(
        "cargo xtask bench",
        "the benchmarks start agents that create cgroups and namespaces",
    )?;
    let packages: Vec<&str> = CI_PACKAGES
        .iter()
        .chain(bench_packages(bench))
        .copied()
        .collect();
    apt::install_missing(&packages, true)?;
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
    // Where cargo just built them (CARGO_TARGET_DIR when set: else stale binaries of an older
    // build in ./target would be measured).
    let release = crate::up::target_dir()?.join("release");
    Cmd::new(release.join("strata-bench"), &[bench, &tasks.to_string()])
        .env("STRATA_BIN_DIR", &release.to_string_lossy())
        .run()
}

/// The allocator benchmark: a plain `cargo bench` of the master's pure allocator, which needs
/// neither root nor the release binaries.
pub fn allocator() -> anyhow::Result<()> {
    Cmd::cargo(&["bench", "-p", "strata-master", "--bench", "allocator"]).run()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn isolation_needs_the_oci_runtimes() {
        assert_eq!(bench_packages("isolation"), ["crun", "runc"]);
        assert!(bench_packages("launch").is_empty());
    }

    #[test]
    fn isolation_runs_500_by_default() {
        let parsed = crate::Xtask::try_parse_from(["xtask", "bench", "isolation"]).unwrap();
        let crate::Task::Bench {
            bench: crate::Bench::Isolation { runs },
        } = parsed.task
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(runs, 500);
    }

    #[test]
    fn master_launches_100000_tasks_by_default() {
        let parsed = crate::Xtask::try_parse_from(["xtask", "bench", "master"]).unwrap();
        let crate::Task::Bench {
            bench: crate::Bench::Master { tasks },
        } = parsed.task
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(tasks, 100_000);
    }
}
