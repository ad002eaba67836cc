//! `cgroups/cpu`: a CPU share proportional to the task's `cpus`, and optionally a hard cap.
//!
//! - `cpu.weight` = [`shares_to_weight`]`(`[`cpu_shares`]`(cpus))`: Mesos gives 1024 `cpu.shares`
//!   per CPU (at least 2); the shares become a cgroup2 weight by the standard formula. 0.5 cpus →
//!   20, 1 → 39, 3 → 118, 4 → 157: two busy tasks with 1 and 3 cpus share a core about 1:3.
//! - `cpu.max` = `<cpus × 100000> 100000` (a CFS quota per 100 ms period, at least 1 ms) when the
//!   agent runs with `--cgroups-enable-cfs`, as Mesos' `--cgroups_enable_cfs`. Without the flag
//!   `cpu.max` is left at `max`: a task may use idle CPUs beyond its share.
//!
//! `usage` adds `cpus_nr_periods`, `cpus_nr_throttled` and `cpus_throttled_time_secs` from
//! `cpu.stat` (those keys exist only with the cpu controller enabled).

use super::{cpu_shares, shares_to_weight, write};
use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use crate::statistics::{parse_flat_keyed, usec_to_secs, ResourceStatistics};
use strata_schema::Resources;

pub const NAME: &str = "cgroups/cpu";
/// Mesos' `CPU_SHARES_PER_CPU`.
pub const CPU_SHARES_PER_CPU: u64 = 1024;
/// Mesos' `MIN_CPU_SHARES`.
pub const MIN_CPU_SHARES: u64 = 2;
/// Mesos' `CPU_CFS_PERIOD` (100 ms), in microseconds.
pub const CFS_PERIOD_USEC: u64 = 100_000;
/// Mesos' `MIN_CPU_CFS_QUOTA` (1 ms), in microseconds.
pub const MIN_CFS_QUOTA_USEC: u64 = 1_000;

/// The `cpu.weight` of a task with `cpus`.
pub fn weight(cpus: f64) -> u64 {
    shares_to_weight(cpu_shares(cpus))
}

/// The `cpu.max` line of a task with `cpus` (> 0): `<quota> <period>`.
pub fn cpu_max(cpus: f64) -> String {
    let quota = ((cpus * CFS_PERIOD_USEC as f64) as u64).max(MIN_CFS_QUOTA_USEC);
    format!("{quota} {CFS_PERIOD_USEC}")
}

#[derive(Debug)]
pub struct CpuIsolator {
    /// `--cgroups-enable-cfs`: also cap the task at its cpus with `cpu.max`.
    pub enable_cfs: bool,
}

impl CpuIsolator {
    fn apply(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        let cpus = resources.cpus();
        write(
            NAME,
            container.cgroup,
            "cpu.weight",
            &weight(cpus).to_string(),
        )?;
        if self.enable_cfs {
            let max = if cpus > 0.0 {
                cpu_max(cpus)
            } else {
                format!("max {CFS_PERIOD_USEC}")
            };
            write(NAME, container.cgroup, "cpu.max", &max)?;
        }
        Ok(())
    }
}

impl Isolator for CpuIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn controller(&self) -> Option<&'static str> {
        Some("cpu")
    }

    fn prepare(&self, container: &Container, _launch: &mut Launch) -> Result<(), IsolatorError> {
        self.apply(container, container.resources)
    }

    fn update(&self, container: &Container, resources: &Resources) -> Result<(), IsolatorError> {
        self.apply(container, resources)
    }

    fn usage(
        &self,
        container: &Container,
        stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        let Some(text) = container
            .cgroup
            .read_optional("cpu.stat")
            .map_err(IsolatorError::cgroup(NAME))?
        else {
            return Ok(());
        };
        for (key, value) in parse_flat_keyed(&text) {
            match key {
                "nr_periods" => stats.cpus_nr_periods = Some(value),
                "nr_throttled" => stats.cpus_nr_throttled = Some(value),
                "throttled_usec" => stats.cpus_throttled_time_secs = Some(usec_to_secs(value)),
                _ => {}
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

    #[test]
    fn weights_follow_mesos_shares() {
        assert_eq!(cpu_shares(0.5), 512);
        assert_eq!(cpu_shares(0.0), 2);
        assert_eq!(cpu_shares(0.001), 2);
        assert_eq!(weight(0.5), 20);
        assert_eq!(weight(1.0), 39);
        assert_eq!(weight(3.0), 118);
        assert_eq!(weight(4.0), 157);
        assert_eq!(weight(0.0), 1);
        // The cgroup2 bounds.
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(weight(1000.0), 10_000);
    }

    #[test]
    fn quotas_are_cpus_times_the_period() {
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_max(1.0), "100000 100000");
        assert_eq!(cpu_max(4.0), "400000 100000");
        assert_eq!(cpu_max(0.001), "1000 100000");
    }

    fn prepare(cpus: &str, enable_cfs: bool) -> FakeCgroup {
        let fake = FakeCgroup::new(&[("cpu.weight", ""), ("cpu.max", "")], cpus);
        CpuIsolator { enable_cfs }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap();
        fake
    }

    #[test]
    fn prepare_writes_the_weight_and_with_cfs_the_quota() {
        for (cpus, weight) in [("cpus:0.5", "20"), ("cpus:1", "39"), ("cpus:4", "157")] {
            let fake = prepare(cpus, false);
            assert_eq!(fake.file("cpu.weight"), weight, "{cpus}");
            assert_eq!(
                fake.file("cpu.max"),
                "",
                "no quota without --cgroups-enable-cfs"
            );
        }
        let fake = prepare("cpus:0.5;mem:64", true);
        assert_eq!(fake.file("cpu.weight"), "20");
        assert_eq!(fake.file("cpu.max"), "50000 100000");
        let fake = prepare("mem:64", true);
        assert_eq!(fake.file("cpu.weight"), "1");
        assert_eq!(fake.file("cpu.max"), "max 100000");
    }

    #[test]
    fn update_rewrites_the_limits() {
        let fake = prepare("cpus:1", true);
        let cpu = CpuIsolator { enable_cfs: true };
        // The kernel's files hold only the latest write; the fake ones must be emptied.
        std::fs::write(fake.dir.path().join("cpu.max"), "").unwrap();
        std::fs::write(fake.dir.path().join("cpu.weight"), "").unwrap();
        cpu.update(&fake.container(), &Resources::parse("cpus:2").unwrap())
            .unwrap();
        assert_eq!(fake.file("cpu.weight"), "79");
        assert_eq!(fake.file("cpu.max"), "200000 100000");
    }

    #[test]
    fn a_missing_interface_file_is_an_error_naming_it() {
        let fake = FakeCgroup::new(&[], "cpus:1");
        let err = CpuIsolator { enable_cfs: false }
            .prepare(&fake.container(), &mut Launch::default())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("cgroups/cpu: failed to write \"39\" to "),
            "{text}"
        );
        assert!(text.contains("cpu.weight"), "{text}");
    }

    #[test]
    fn usage_reads_throttling() {
        let fake = FakeCgroup::new(
            &[(
                "cpu.stat",
                "usage_usec 10\nuser_usec 5\nsystem_usec 5\nnr_periods 7\nnr_throttled 3\nthrottled_usec 1500000\n",
            )],
            "cpus:1",
        );
        let mut stats = ResourceStatistics::default();
        CpuIsolator { enable_cfs: true }
            .usage(&fake.container(), &mut stats)
            .unwrap();
        assert_eq!(stats.cpus_nr_periods, Some(7));
        assert_eq!(stats.cpus_nr_throttled, Some(3));
        assert_eq!(stats.cpus_throttled_time_secs, Some(1.5));
        // Without the controller, cpu.stat has no throttling keys: the figures stay unknown.
        let fake = FakeCgroup::new(&[("cpu.stat", "usage_usec 10\n")], "cpus:1");
        let mut stats = ResourceStatistics::default();
        CpuIsolator { enable_cfs: true }
            .usage(&fake.container(), &mut stats)
            .unwrap();
        assert_eq!(stats.cpus_nr_periods, None);
    }
}
