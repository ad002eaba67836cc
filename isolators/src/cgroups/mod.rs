//! Isolators of cgroup2 resource controllers. Each writes its limit files into the container's
//! cgroup before the container's init is cloned into it (`prepare`), rewrites them on `update`,
//! and reads its controller's statistics (`usage`).
//!
//! | isolator        | controller | files written                                   |
//! |-----------------|------------|-------------------------------------------------|
//! | `cgroups/cpu`   | cpu        | `cpu.weight`; `cpu.max` with `--cgroups-enable-cfs` |
//! | `cgroups/mem`   | memory     | `memory.max`, `memory.swap.max`, `memory.oom.group` |
//! | `cgroups/pids`  | pids       | `pids.max`                                      |
//! | `cgroups/io`    | io         | `io.weight`; `io.max` for disk bandwidth resources |
//! | `cgroups/cpuset`| cpuset     | `cpuset.cpus` for a `cpuset` resource            |

pub mod cpu;
pub mod cpuset;
pub mod io;
pub mod mem;
pub mod pids;

use crate::cgroup2::Cgroup;
use crate::isolator::IsolatorError;

/// Writes `value` to `file` of `cgroup`, naming `isolator` in the error.
pub(crate) fn write(
    isolator: &'static str,
    cgroup: &Cgroup,
    file: &str,
    value: &str,
) -> Result<(), IsolatorError> {
    tracing::debug!(cgroup = %cgroup.path().display(), file, value, "cgroup write");
    cgroup
        .write(file, value)
        .map_err(IsolatorError::cgroup(isolator))
}

/// Mesos' conversion of a `cpus` amount into cgroup v1 `cpu.shares`: 1024 per CPU, at least 2.
pub fn cpu_shares(cpus: f64) -> u64 {
    ((cpus.max(0.0) * cpu::CPU_SHARES_PER_CPU as f64) as u64).max(cpu::MIN_CPU_SHARES)
}

/// The standard conversion of cgroup v1 shares (2..=262144) into a cgroup2 weight (1..=10000),
/// as runc and systemd do: `1 + ((shares - 2) * 9999) / 262142`.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + ((shares - 2) * 9999) / 262_142
}

#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]
    //! A fake container cgroup in a temp dir, holding the interface files the kernel would.

    use crate::cgroup2::Cgroup;
    use crate::isolator::Container;
    use std::path::Path;
    use strata_schema::Resources;

    pub struct FakeCgroup {
        pub dir: tempfile::TempDir,
        pub cgroup: Cgroup,
        pub resources: Resources,
    }

    impl FakeCgroup {
        /// A container cgroup with `files` (name, initial contents) and the task `resources`.
        pub fn new(files: &[(&str, &str)], resources: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            for (name, contents) in files {
                std::fs::write(dir.path().join(name), contents).unwrap();
            }
            let cgroup = Cgroup::unchecked(dir.path());
            Self {
                dir,
                cgroup,
                resources: Resources::parse(resources).unwrap(),
            }
        }

        pub fn container(&self) -> Container<'_> {
            Container {
                id: "c1",
                cgroup: &self.cgroup,
                sandbox: Path::new("/sandbox"),
                hostname: "task",
                resources: &self.resources,
            }
        }

        pub fn file(&self, name: &str) -> String {
            std::fs::read_to_string(self.dir.path().join(name)).unwrap()
        }
    }
}
