//! `cgroups/mem`: a hard memory limit of the task's `mem`, no swap, and OOM kills of the whole
//! container.
//!
//! - `memory.max` = `mem` MB in bytes (`max` when the task gives no `mem`);
//! - `memory.swap.max` = `0` where the file exists (swap accounting is on), so the limit cannot be
//!   dodged by swapping;
//! - `memory.oom.group` = `1` where the file exists (Linux 4.19+): when the task exceeds its
//!   limit, the OOM killer kills every process of the container together, as Mesos destroys a
//!   container that hit its memory limit.
//!
//! The supervisor reads `memory.events` ([`oom_kills`]) and `memory.max` ([`memory_max`]) before it
//! removes the cgroup, so the agent can report an OOM-killed task as TASK_FAILED with reason
//! `REASON_CONTAINER_LIMITATION_MEMORY`.
//!
//! `usage` reads `memory.current`, `memory.stat` and `memory.swap.current`.

use super::write;
use crate::cgroup2::Cgroup;
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::{flat_keyed_value, mb_to_bytes, parse_flat_keyed, ResourceStatistics};
use strata_schema::Resources;

pub const NAME: &str = "cgroups/mem";

/// The `memory.max` value of a task with `mem` MB.
pub fn memory_max_value(mem: f64) -> String {
    if mem > 0.0 {
        mb_to_bytes(mem).to_string()
    } else {
        "max".to_string()
    }
}

/// How many processes of the cgroup the OOM killer killed (`oom_kill` of `memory.events`);
/// `None` when the file does not exist (no memory controller) or cannot be read.
pub fn oom_kills(cgroup: &Cgroup) -> Option<u64> {
    let text = cgroup.read_optional("memory.events").ok()??;
    flat_keyed_value(&text, "oom_kill")
}

/// The cgroup's `memory.max` in bytes; `None` when unlimited or unknown.
pub fn memory_max(cgroup: &Cgroup) -> Option<u64> {
    cgroup
        .read_optional("memory.max")
        .ok()??
        .trim()
        .parse()
        .ok()
}

#[derive(Debug)]
pub struct MemIsolator;

impl MemIsolator {
    fn apply(&self, cgroup: &Cgroup, resources: &Resources) -> Result<(), IsolatorError> {
        if cgroup.has("memory.swap.max") {
            write(NAME, cgroup, "memory.swap.max", "0")?;
        }
        write(
            NAME,
            cgroup,
            "memory.max",
            &memory_max_value(resources.mem()),
        )
    }
}

impl Isolator for MemIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn controller(&self) -> Option<&'static str> {
        Some("memory")
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        if container.cgroup.has("memory.oom.group") {
            write(NAME, container.cgroup, "memory.oom.group", "1")?;
        }
        self.apply(container.cgroup, container.resources)
    }

    fn update(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        self.apply(container.cgroup, resources)
    }

    fn usage(
        &self,
        container: &Container,
        stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        let cgroup = container.cgroup;
        let read = |name: &str| {
            cgroup
                .read_optional(name)
                .map_err(IsolatorError::cgroup(NAME))
        };
        if let Some(current) = read("memory.current")?.and_then(|t| t.trim().parse().ok()) {
            stats.mem_total_bytes = Some(current);
        }
        if let Some(max) = read("memory.max")?.and_then(|t| t.trim().parse().ok()) {
            stats.mem_limit_bytes = Some(max);
        }
        if let Some(swap) = read("memory.swap.current")?.and_then(|t| t.trim().parse().ok()) {
            stats.mem_swap_bytes = Some(swap);
        }
        if let Some(text) = read("memory.stat")? {
            for (key, value) in parse_flat_keyed(&text) {
                match key {
                    // Mesos reports cgroup2's anonymous memory as both anon and rss, and its
                    // page cache ("file") as both file and cache.
                    "anon" => {
                        stats.mem_anon_bytes = Some(value);
                        stats.mem_rss_bytes = Some(value);
                    }
                    "file" => {
                        stats.mem_file_bytes = Some(value);
                        stats.mem_cache_bytes = Some(value);
                    }
                    "file_mapped" => stats.mem_mapped_file_bytes = Some(value),
                    "unevictable" => stats.mem_unevictable_bytes = Some(value),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    /// `memory.stat` of a 6.1 kernel (abridged).
    const MEMORY_STAT: &str = "\
anon 52428800
file 8388608
kernel 1048576
kernel_stack 32768
shmem 0
file_mapped 4194304
file_dirty 0
unevictable 0
pgfault 12000
";

    #[test]
    fn prepare_limits_memory_and_turns_swap_off_where_possible() {
        let fake = FakeCgroup::new(
            &[
                ("memory.max", ""),
                ("memory.swap.max", ""),
                ("memory.oom.group", ""),
            ],
            "cpus:1;mem:64",
        );
        MemIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("memory.max"), "67108864");
        assert_eq!(fake.file("memory.swap.max"), "0");
        assert_eq!(fake.file("memory.oom.group"), "1");

        // No swap accounting, an old kernel without oom.group: only memory.max.
        let fake = FakeCgroup::new(&[("memory.max", "")], "mem:0.5");
        MemIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("memory.max"), "524288");
        assert!(!fake.dir.path().join("memory.swap.max").exists());

        let fake = FakeCgroup::new(&[("memory.max", "")], "cpus:1");
        MemIsolator
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        assert_eq!(fake.file("memory.max"), "max");
    }

    #[test]
    fn update_rewrites_the_limit() {
        let fake = FakeCgroup::new(&[("memory.max", ""), ("memory.swap.max", "")], "mem:64");
        MemIsolator
            .update(&fake.container(), &Resources::parse("mem:128").unwrap())
            .unwrap();
        assert_eq!(fake.file("memory.max"), "134217728");
    }

    #[test]
    fn reads_oom_kills_and_the_limit() {
        let fake = FakeCgroup::new(
            &[
                (
                    "memory.events",
                    "low 0\nhigh 0\nmax 27\noom 1\noom_kill 1\noom_group_kill 1\n",
                ),
                ("memory.max", "67108864\n"),
            ],
            "mem:64",
        );
        assert_eq!(oom_kills(&fake.cgroup), Some(1));
        assert_eq!(memory_max(&fake.cgroup), Some(64 << 20));
        let fake = FakeCgroup::new(&[("memory.max", "max\n")], "");
        assert_eq!(oom_kills(&fake.cgroup), None);
        assert_eq!(memory_max(&fake.cgroup), None);
    }

    #[test]
    fn usage_reads_memory_figures() {
        let fake = FakeCgroup::new(
            &[
                ("memory.current", "62914560\n"),
                ("memory.max", "67108864\n"),
                ("memory.swap.current", "0\n"),
                ("memory.stat", MEMORY_STAT),
            ],
            "mem:64",
        );
        let mut stats = ResourceStatistics::default();
        MemIsolator.usage(&fake.container(), &mut stats).unwrap();
        assert_eq!(stats.mem_total_bytes, Some(62_914_560));
        assert_eq!(stats.mem_limit_bytes, Some(67_108_864));
        assert_eq!(stats.mem_anon_bytes, Some(52_428_800));
        assert_eq!(stats.mem_rss_bytes, Some(52_428_800));
        assert_eq!(stats.mem_cache_bytes, Some(8_388_608));
        assert_eq!(stats.mem_file_bytes, Some(8_388_608));
        assert_eq!(stats.mem_mapped_file_bytes, Some(4_194_304));
        assert_eq!(stats.mem_swap_bytes, Some(0));
    }
}
