//! `cargo xtask …`: Strata's build automation, in Rust rather than shell scripts (as aya and
//! rust-analyzer do). Each subcommand lives in a file of its own.

mod apt;
mod bench;
mod ci;
mod cmd;
mod fuzz;
mod package;
mod package_test;
mod up;
mod vm;

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Build automation for Strata")]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

/// The tasks.
#[derive(Debug, Subcommand)]
enum Task {
    /// Set up this machine (Debian 12, root): install capnproto if missing, build the release
    /// binaries, install them into /usr/local/bin and run `strata up` (arguments after `--` go to
    /// `strata up`)
    Up {
        /// Arguments for `strata up`, e.g. `-- --foreground`
        #[arg(last = true, value_name = "STRATA_UP_ARGS")]
        args: Vec<String>,
    },
    /// The test command of CI (root): system packages, fmt, clippy, build, tests, VM test bed
    Ci,
    /// The VM test bed (root): boots Debian's kernel under QEMU from an initramfs with the built
    /// binaries and runs the enforcement scenarios there (console log in target/vm/)
    VmTest {
        /// Boot the release binaries (default: the debug ones, which `cargo xtask ci` builds anyway)
        #[arg(long)]
        release: bool,
        /// Run only this scenario (repeatable; `selftest-fail` runs only when named)
        #[arg(long = "scenario", value_name = "NAME")]
        scenarios: Vec<String>,
        /// Kill the VM after this many seconds
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
        /// The accelerator
        #[arg(long, value_enum, default_value_t = vm::Accel::Auto)]
        accel: vm::Accel,
        /// Guest memory in MiB
        #[arg(long, default_value_t = 2048)]
        memory_mib: u32,
    },
    /// The .deb and .rpm packages (strata-master, strata-agent, strata-cli) into
    /// target/packages/, built from the `dist` profile with cargo-deb and cargo-generate-rpm
    /// (installed from crates.io when missing)
    Package {
        /// The package revision (Debian revision, RPM Release)
        #[arg(long, default_value = "1")]
        revision: String,
    },
    /// The packages tested (root): builds and inspects them, installs the .debs into a fresh
    /// Debian root booted with systemd under QEMU, and runs install, start, a task, an agent
    /// restart, an upgrade, remove and purge there (logs in target/package-test/)
    PackageTest {
        /// Kill the VM after this many seconds
        #[arg(long, default_value_t = 900)]
        timeout_secs: u64,
        /// The accelerator
        #[arg(long, value_enum, default_value_t = vm::Accel::Auto)]
        accel: vm::Accel,
        /// Guest memory in MiB
        #[arg(long, default_value_t = 2048)]
        memory_mib: u32,
        /// Rebuild the cached Debian root (target/package-test/root.img) with debootstrap
        #[arg(long)]
        fresh_root: bool,
    },
    /// The cargo-fuzz targets (fuzz/, libFuzzer), each for a bounded time or number of runs;
    /// needs cargo-fuzz and nightly (or --stable); a target that cannot run is reported skipped,
    /// and fails the task (the test suite's smoke run, fuzzing/tests/smoke.rs, needs neither)
    Fuzz {
        /// Seconds per target (libFuzzer's -max_total_time); without it, --runs inputs
        #[arg(long, value_name = "SECONDS")]
        time: Option<u64>,
        /// Inputs per target when no --time is given (libFuzzer's -runs)
        #[arg(long, default_value_t = 2000)]
        runs: u64,
        /// Build with the stable toolchain and no sanitizer (cargo fuzz -s none)
        #[arg(long)]
        stable: bool,
        /// Only these targets (default: all of fuzz/fuzz_targets/)
        targets: Vec<String>,
    },
    /// Benchmarks through the real release binaries (root)
    Bench {
        #[command(subcommand)]
        bench: Bench,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Command tasks (/bin/true) on one agent through the real master and agent: sequential and
    /// 50 at a time; p50/p99 accept->RUNNING and accept->FINISHED, tasks/s, beside fork/exec
    Launch {
        /// How many tasks each run launches
        #[arg(long, default_value_t = 1000)]
        tasks: usize,
    },
    /// Containers running /bin/true, one at a time: create, start and reap through
    /// `strata-agent supervise` (cgroup, pid/mount/uts/ipc namespaces) beside fork/exec,
    /// `crun run` and `runc run` (installed with apt if missing), in alternating blocks; p50/p99
    /// and ratios
    Isolation {
        /// How many containers each way starts
        #[arg(long, default_value_t = 500)]
        runs: usize,
    },
    /// The agent's BPF programs (network/ports, network/accounting): loopback TCP throughput and
    /// bind() latency of a process in a cgroup below them, beside a cgroup without them, sides
    /// alternating; target >= 97% of the throughput and < 2 us more per bind()
    Ebpf {
        /// How many rounds (each: 512 MiB and 20,000 binds per side)
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Image tasks: pull and unpack MB/s from a local docker-registry; with the image in the
    /// store, p50/p99 accept->TASK_RUNNING of a busybox image task beside `crun run` and
    /// `runc run` of the same unpacked image (installs docker-registry, crun, runc if missing)
    Image {
        /// How many tasks (and crun/runc runs)
        #[arg(long, default_value_t = 100)]
        runs: usize,
    },
    /// Master failover through ZooKeeper (2 s session timeout): kill -9 the leader of two
    /// masters with simulated agents (real RPC) and 10,000 tasks; time to a new leader, to every
    /// agent re-registered and to offers again (installs Debian's zookeeper if missing)
    Failover {
        /// How many simulated agents
        #[arg(long, default_value_t = 1000)]
        agents: usize,
    },
    /// The allocator alone, in Mesos' DeclineOffers shape (10,000 agents and 1,000 frameworks,
    /// 50,000 and 6,000, and 3,000 roles under quota): p50/max per allocation cycle beside a
    /// floor and Mesos' figure (`cargo bench -p strata-master --bench allocator`; no root)
    Allocator,
    /// The whole master under load: a standalone master, 10,000 simulated agents (real RPC, in
    /// the bench process; STRATA_BENCH_AGENTS) and 10 frameworks (STRATA_BENCH_FRAMEWORKS)
    /// launching short tasks; launches/s, offer -> TASK_RUNNING p50/p99, the master's RSS and
    /// `GET /state` time with every task live, beside the same with no tasks
    Master {
        /// How many tasks the frameworks launch
        #[arg(long, default_value_t = 100_000)]
        tasks: usize,
    },
}

fn main() -> ExitCode {
    let xtask = Xtask::parse();
    let result = match xtask.task {
        Task::Up { args } => up::run(&args),
        Task::Ci => ci::run(),
        Task::VmTest {
            release,
            scenarios,
            timeout_secs,
            accel,
            memory_mib,
        } => vm::run(&vm::Options {
            release,
            scenarios,
            timeout: std::time::Duration::from_secs(timeout_secs),
            accel,
            memory_mib,
        }),
        Task::Package { revision } => {
            let root = workspace_root();
            package::run(&package::Options {
                revision: Some(revision),
                ..package::Options::new(&root)
            })
        }
        Task::PackageTest {
            timeout_secs,
            accel,
            memory_mib,
            fresh_root,
        } => package_test::run(&package_test::Options {
            timeout: std::time::Duration::from_secs(timeout_secs),
            accel,
            memory_mib,
            fresh_root,
        }),
        Task::Fuzz {
            time,
            runs,
            stable,
            targets,
        } => fuzz::run(&fuzz::Options {
            time,
            runs,
            targets,
            stable,
        }),
        Task::Bench {
            bench: Bench::Launch { tasks },
        } => bench::run("launch", tasks),
        Task::Bench {
            bench: Bench::Isolation { runs },
        } => bench::run("isolation", runs),
        Task::Bench {
            bench: Bench::Ebpf { rounds },
        } => bench::run("ebpf", rounds),
        Task::Bench {
            bench: Bench::Failover { agents },
        } => bench::run("failover", agents),
        Task::Bench {
            bench: Bench::Image { runs },
        } => bench::run("image", runs),
        Task::Bench {
            bench: Bench::Allocator,
        } => bench::allocator(),
        Task::Bench {
            bench: Bench::Master { tasks },
        } => bench::run("master", tasks),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask's parent directory).
fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Refuses to go on unless this process runs as root.
fn require_root(task: &str, why: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid(2) cannot fail and touches no memory of ours.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        anyhow::bail!("{task} must run as root: {why}");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn up_passes_the_rest_through() {
        let parsed =
            Xtask::try_parse_from(["xtask", "up", "--", "--foreground", "--ip", "0.0.0.0"]);
        let Ok(Xtask {
            task: Task::Up { args },
        }) = parsed
        else {
            panic!("{parsed:?}")
        };
        assert_eq!(args, ["--foreground", "--ip", "0.0.0.0"]);
    }
}
