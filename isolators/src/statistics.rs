//! A container's resource usage in Mesos' `ResourceStatistics` shape (what the agent serves at
//! `/monitor/statistics`), and parsers of the cgroup2 files it is read from.
//!
//! A figure whose file is absent (its controller is not enabled, or the kernel lacks it) stays
//! `None` and is left out of the JSON: "unknown" is never reported as zero.

use crate::cgroup2::{Cgroup, CgroupError};
use serde::Serialize;
use strata_schema::Resources;

/// One container's usage. Field names and units are Mesos' (`*_secs` in seconds, `*_bytes` in
/// bytes); every figure is optional.
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct ResourceStatistics {
    /// Seconds since the epoch when the figures were read.
    pub timestamp: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_user_time_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_system_time_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_nr_periods: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_nr_throttled: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_throttled_time_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_total_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_anon_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_file_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_cache_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_mapped_file_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_unevictable_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_swap_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blkio_statistics: Option<BlkioStatistics>,
    /// Bytes and packets the container received and sent (`network/accounting`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_rx_packets: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_tx_packets: Option<u64>,
    /// Binds to ports outside the container's allocation (`network/ports`; refused unless
    /// `--enforce-container-ports=false`). Not a Mesos field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_port_violations: Option<u64>,
}

/// Mesos' `CgroupInfo.Blkio.Statistics`, filled from cgroup2's `io.stat` into its `throttling`
/// list (one entry per device).
#[derive(Serialize, Debug, Clone, Default, PartialEq)]
pub struct BlkioStatistics {
    pub throttling: Vec<BlkioDeviceStatistics>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct BlkioDeviceStatistics {
    pub device: BlkioDevice,
    /// Bytes per operation (`READ`, `WRITE`, `DISCARD`, `TOTAL`).
    pub io_service_bytes: Vec<BlkioValue>,
    /// Operations per operation type.
    pub io_serviced: Vec<BlkioValue>,
}

#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlkioDevice {
    pub major_number: u32,
    pub minor_number: u32,
}

#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct BlkioValue {
    pub op: &'static str,
    pub value: u64,
}

/// The `key value` pairs of a flat-keyed cgroup file (`cpu.stat`, `memory.stat`,
/// `memory.events`); lines that are not a name and an integer are skipped.
pub fn parse_flat_keyed(text: &str) -> Vec<(&str, u64)> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.trim().split_once(' ')?;
            Some((key, value.trim().parse().ok()?))
        })
        .collect()
}

/// The value of `key` in a flat-keyed file.
pub fn flat_keyed_value(text: &str, key: &str) -> Option<u64> {
    parse_flat_keyed(text)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// One device's line of `io.stat`: `8:0 rbytes=… wbytes=… rios=… wios=… dbytes=… dios=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoStat {
    pub major: u32,
    pub minor: u32,
    pub rbytes: u64,
    pub wbytes: u64,
    pub rios: u64,
    pub wios: u64,
    pub dbytes: u64,
    pub dios: u64,
}

/// Parses `io.stat` (nested-keyed); unknown keys (e.g. iocost's `cost.*`) are ignored, and a
/// line without a `MAJ:MIN` device is skipped.
pub fn parse_io_stat(text: &str) -> Vec<IoStat> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = fields.next()?.split_once(':')?;
            let mut stat = IoStat {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ..IoStat::default()
            };
            for field in fields {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let Ok(value) = value.parse::<u64>() else {
                    continue;
                };
                match key {
                    "rbytes" => stat.rbytes = value,
                    "wbytes" => stat.wbytes = value,
                    "rios" => stat.rios = value,
                    "wios" => stat.wios = value,
                    "dbytes" => stat.dbytes = value,
                    "dios" => stat.dios = value,
                    _ => {}
                }
            }
            Some(stat)
        })
        .collect()
}

impl From<&[IoStat]> for BlkioStatistics {
    fn from(stats: &[IoStat]) -> Self {
        let values = |r: u64, w: u64, d: u64| {
            vec![
                BlkioValue {
                    op: "READ",
                    value: r,
                },
                BlkioValue {
                    op: "WRITE",
                    value: w,
                },
                BlkioValue {
                    op: "DISCARD",
                    value: d,
                },
                BlkioValue {
                    op: "TOTAL",
                    value: r.saturating_add(w).saturating_add(d),
                },
            ]
        };
        BlkioStatistics {
            throttling: stats
                .iter()
                .map(|s| BlkioDeviceStatistics {
                    device: BlkioDevice {
                        major_number: s.major,
                        minor_number: s.minor,
                    },
                    io_service_bytes: values(s.rbytes, s.wbytes, s.dbytes),
                    io_serviced: values(s.rios, s.wios, s.dios),
                })
                .collect(),
        }
    }
}

/// Microseconds (cgroup2's unit) as seconds.
pub fn usec_to_secs(usec: u64) -> f64 {
    usec as f64 / 1e6
}

/// The figures every container has, whatever isolators are active: CPU times from `cpu.stat`
/// (its `usage_usec`/`user_usec`/`system_usec` exist without the cpu controller), processes and
/// threads from `cgroup.procs`/`cgroup.threads` (the container's cgroup and its descendants), and
/// the limits the task asked for (`cpus_limit`, `mem_limit_bytes`; an enforcing isolator
/// overwrites them with what the kernel holds).
pub fn base_usage(
    cgroup: &Cgroup,
    resources: &Resources,
    stats: &mut ResourceStatistics,
) -> Result<(), CgroupError> {
    if let Some(text) = cgroup.read_optional("cpu.stat")? {
        for (key, value) in parse_flat_keyed(&text) {
            match key {
                "user_usec" => stats.cpus_user_time_secs = Some(usec_to_secs(value)),
                "system_usec" => stats.cpus_system_time_secs = Some(usec_to_secs(value)),
                _ => {}
            }
        }
    }
    let (mut processes, mut threads) = (0u64, 0u64);
    count_tasks(cgroup, &mut processes, &mut threads)?;
    stats.processes = Some(processes);
    stats.threads = Some(threads);
    let cpus = resources.cpus();
    if cpus > 0.0 {
        stats.cpus_limit = Some(cpus);
    }
    let mem = resources.mem();
    if mem > 0.0 {
        stats.mem_limit_bytes = Some(mb_to_bytes(mem));
    }
    Ok(())
}

fn count_tasks(cgroup: &Cgroup, processes: &mut u64, threads: &mut u64) -> Result<(), CgroupError> {
    let lines = |text: Option<String>| {
        text.map_or(0, |t| {
            t.lines().filter(|l| !l.trim().is_empty()).count() as u64
        })
    };
    *processes += lines(cgroup.read_optional("cgroup.procs")?);
    *threads += lines(cgroup.read_optional("cgroup.threads")?);
    for child in cgroup.children()? {
        count_tasks(&child, processes, threads)?;
    }
    Ok(())
}

/// Mesos' `mem` (MB) in bytes.
pub fn mb_to_bytes(mb: f64) -> u64 {
    (mb * 1024.0 * 1024.0).round() as u64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `cpu.stat` of a 6.1 kernel with the cpu controller enabled.
    pub const CPU_STAT: &str = "\
usage_usec 2500000
user_usec 2000000
system_usec 500000
core_sched.force_idle_usec 0
nr_periods 120
nr_throttled 45
throttled_usec 3250000
nr_bursts 0
burst_usec 0
";

    /// `io.stat` with iocost's extra keys on the second device.
    pub const IO_STAT: &str = "\
8:0 rbytes=1048576 wbytes=4096 rios=16 wios=1 dbytes=0 dios=0
259:0 rbytes=0 wbytes=8192 rios=0 wios=2 dbytes=512 dios=1 cost.vrate=100.00 cost.usage=12
junk line
";

    #[test]
    fn parses_flat_keyed_files() {
        let pairs = parse_flat_keyed(CPU_STAT);
        assert_eq!(pairs[0], ("usage_usec", 2_500_000));
        assert_eq!(pairs.len(), 9);
        assert_eq!(flat_keyed_value(CPU_STAT, "nr_throttled"), Some(45));
        assert_eq!(flat_keyed_value(CPU_STAT, "missing"), None);
        assert_eq!(
            flat_keyed_value("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "oom_kill"),
            Some(1)
        );
        assert!(parse_flat_keyed("x y\n\n").is_empty());
    }

    #[test]
    fn parses_io_stat_lines() {
        let stats = parse_io_stat(IO_STAT);
        assert_eq!(
            stats,
            vec![
                IoStat {
                    major: 8,
                    minor: 0,
                    rbytes: 1_048_576,
                    wbytes: 4096,
                    rios: 16,
                    wios: 1,
                    dbytes: 0,
                    dios: 0
                },
                IoStat {
                    major: 259,
                    minor: 0,
                    rbytes: 0,
                    wbytes: 8192,
                    rios: 0,
                    wios: 2,
                    dbytes: 512,
                    dios: 1
                },
            ]
        );
        let blkio = BlkioStatistics::from(stats.as_slice());
        assert_eq!(blkio.throttling[0].device.major_number, 8);
        assert_eq!(
            blkio.throttling[0].io_service_bytes[3],
            BlkioValue {
                op: "TOTAL",
                value: 1_048_576 + 4096
            }
        );
        assert_eq!(blkio.throttling[1].io_serviced[2].value, 1);
    }

    #[test]
    fn base_usage_reads_what_is_there_and_omits_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::unchecked(dir.path());
        std::fs::write(dir.path().join("cpu.stat"), CPU_STAT).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "10\n11\n").unwrap();
        std::fs::write(dir.path().join("cgroup.threads"), "10\n11\n12\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/cgroup.procs"), "13\n").unwrap();
        std::fs::write(dir.path().join("sub/cgroup.threads"), "13\n").unwrap();
        let mut stats = ResourceStatistics::default();
        let resources = Resources::parse("cpus:0.5;mem:64").unwrap();
        base_usage(&cg, &resources, &mut stats).unwrap();
        assert_eq!(stats.cpus_user_time_secs, Some(2.0));
        assert_eq!(stats.cpus_system_time_secs, Some(0.5));
        assert_eq!(stats.processes, Some(3));
        assert_eq!(stats.threads, Some(4));
        assert_eq!(stats.cpus_limit, Some(0.5));
        assert_eq!(stats.mem_limit_bytes, Some(64 << 20));
        // Throttling figures belong to cgroups/cpu; memory figures to cgroups/mem.
        assert_eq!(stats.cpus_nr_throttled, None);
        let json = serde_json::to_value(&stats).unwrap();
        assert!(json.get("mem_total_bytes").is_none(), "{json}");
        assert!(json.get("cpus_nr_periods").is_none(), "{json}");
        assert_eq!(json["processes"], 3);

        // No cpu.stat (an old kernel): no CPU times, and no error.
        std::fs::remove_file(dir.path().join("cpu.stat")).unwrap();
        let mut stats = ResourceStatistics::default();
        base_usage(&cg, &Resources::new(), &mut stats).unwrap();
        assert_eq!(stats.cpus_user_time_secs, None);
        assert_eq!(stats.cpus_limit, None);
    }
}
