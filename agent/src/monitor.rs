//! Container usage for operators: `/monitor/statistics` in Mesos' JSON shape and the same
//! figures as Prometheus text on `/metrics`.

use crate::containerizer::{Containerizer, TaskCheckpoint};
use serde_json::{json, Value as Json};
use std::fmt::Write;
use strata_isolators::statistics::BlkioValue;
use strata_isolators::ResourceStatistics;
use strata_schema::Resources;
use tracing::debug;

/// A running container whose usage is wanted.
#[derive(Debug, Clone)]
pub struct UsageTarget {
    pub ckpt: TaskCheckpoint,
    pub resources: Resources,
}

/// One container's usage, as read.
#[derive(Debug, Clone)]
pub struct Usage {
    pub target: UsageTarget,
    pub statistics: ResourceStatistics,
}

/// Reads the usage of `targets` (blocking file reads); a container that ended meanwhile is
/// left out.
pub fn collect(containerizer: &Containerizer, targets: Vec<UsageTarget>) -> Vec<Usage> {
    targets
        .into_iter()
        .filter_map(
            |target| match containerizer.usage(&target.ckpt, &target.resources) {
                Ok(statistics) => Some(Usage { target, statistics }),
                Err(err) => {
                    debug!(container_id = %target.ckpt.container_id, cause = %err, "no usage");
                    None
                }
            },
        )
        .collect()
}

/// Mesos' name of a command executor.
fn executor_name(ckpt: &TaskCheckpoint) -> String {
    let command = &ckpt.task.command;
    let shown = if command.shell {
        format!("sh -c '{}'", command.value)
    } else if command.arguments.is_empty() {
        command.value.clone()
    } else {
        command.arguments.join(" ")
    };
    format!(
        "Command Executor (Task: {}) (Command: {shown})",
        ckpt.task.task_id
    )
}

/// `/monitor/statistics`: one entry per running container, as Mesos' agent answers.
pub fn statistics_json(usage: &[Usage]) -> Json {
    Json::Array(
        usage
            .iter()
            .map(|u| {
                let ckpt = &u.target.ckpt;
                json!({
                    "executor_id": ckpt.task.task_id,
                    "executor_name": executor_name(ckpt),
                    "framework_id": ckpt.framework.id,
                    "source": ckpt.task.task_id,
                    "statistics": u.statistics,
                })
            })
            .collect(),
    )
}

/// A number in Prometheus' text format.
enum Num {
    Int(u64),
    Float(f64),
}

type Figure = fn(&ResourceStatistics) -> Option<Num>;

/// The per-container families: name, type, help, figure.
const FAMILIES: &[(&str, &str, &str, Figure)] = &[
    (
        "strata_container_cpu_user_seconds_total",
        "counter",
        "CPU time the container spent in user mode.",
        |s| s.cpus_user_time_secs.map(Num::Float),
    ),
    (
        "strata_container_cpu_system_seconds_total",
        "counter",
        "CPU time the container spent in the kernel.",
        |s| s.cpus_system_time_secs.map(Num::Float),
    ),
    (
        "strata_container_cpu_limit",
        "gauge",
        "CPUs allocated to the container.",
        |s| s.cpus_limit.map(Num::Float),
    ),
    (
        "strata_container_cpu_periods_total",
        "counter",
        "CFS enforcement periods that elapsed (cpu.stat nr_periods).",
        |s| s.cpus_nr_periods.map(Num::Int),
    ),
    (
        "strata_container_cpu_throttled_periods_total",
        "counter",
        "CFS periods in which the container was throttled.",
        |s| s.cpus_nr_throttled.map(Num::Int),
    ),
    (
        "strata_container_cpu_throttled_seconds_total",
        "counter",
        "Time the container was throttled.",
        |s| s.cpus_throttled_time_secs.map(Num::Float),
    ),
    (
        "strata_container_network_receive_bytes_total",
        "counter",
        "Bytes the container received (network/accounting; net_rx_bytes).",
        |s| s.net_rx_bytes.map(Num::Int),
    ),
    (
        "strata_container_network_receive_packets_total",
        "counter",
        "Packets the container received (net_rx_packets).",
        |s| s.net_rx_packets.map(Num::Int),
    ),
    (
        "strata_container_network_transmit_bytes_total",
        "counter",
        "Bytes the container sent (net_tx_bytes).",
        |s| s.net_tx_bytes.map(Num::Int),
    ),
    (
        "strata_container_network_transmit_packets_total",
        "counter",
        "Packets the container sent (net_tx_packets).",
        |s| s.net_tx_packets.map(Num::Int),
    ),
    (
        "strata_container_port_violations_total",
        "counter",
        "Binds to ports outside the container's allocation (network/ports; refused when enforced).",
        |s| s.net_port_violations.map(Num::Int),
    ),
    (
        "strata_container_memory_limit_bytes",
        "gauge",
        "The container's memory limit.",
        |s| s.mem_limit_bytes.map(Num::Int),
    ),
    (
        "strata_container_memory_usage_bytes",
        "gauge",
        "Memory charged to the container (memory.current).",
        |s| s.mem_total_bytes.map(Num::Int),
    ),
    (
        "strata_container_memory_rss_bytes",
        "gauge",
        "Anonymous memory of the container.",
        |s| s.mem_rss_bytes.map(Num::Int),
    ),
    (
        "strata_container_memory_cache_bytes",
        "gauge",
        "Page cache charged to the container.",
        |s| s.mem_cache_bytes.map(Num::Int),
    ),
    (
        "strata_container_memory_mapped_file_bytes",
        "gauge",
        "Mapped file memory of the container.",
        |s| s.mem_mapped_file_bytes.map(Num::Int),
    ),
    (
        "strata_container_memory_swap_bytes",
        "gauge",
        "Swap used by the container.",
        |s| s.mem_swap_bytes.map(Num::Int),
    ),
    (
        "strata_container_processes",
        "gauge",
        "Processes in the container.",
        |s| s.processes.map(Num::Int),
    ),
    (
        "strata_container_threads",
        "gauge",
        "Threads (tasks) in the container.",
        |s| s.threads.map(Num::Int),
    ),
];

/// The per-device I/O families: name, help, which list, which operation.
const IO_FAMILIES: &[(&str, &str, bool, &str)] = &[
    (
        "strata_container_io_read_bytes_total",
        "Bytes the container read from a block device.",
        true,
        "READ",
    ),
    (
        "strata_container_io_write_bytes_total",
        "Bytes the container wrote to a block device.",
        true,
        "WRITE",
    ),
    (
        "strata_container_io_read_ops_total",
        "Read operations of the container on a block device.",
        false,
        "READ",
    ),
    (
        "strata_container_io_write_ops_total",
        "Write operations of the container on a block device.",
        false,
        "WRITE",
    ),
];

/// A label value escaped for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(u: &Usage) -> String {
    let ckpt = &u.target.ckpt;
    format!(
        "task_id=\"{}\",framework_id=\"{}\"",
        escape(ckpt.task.task_id.as_str()),
        escape(
            &ckpt
                .framework
                .id
                .as_ref()
                .map(|f| f.to_string())
                .unwrap_or_default()
        )
    )
}

/// `/metrics`: the containers' usage and the active isolators, as Prometheus text (format
/// 0.0.4). A family appears only with at least one sample.
pub fn prometheus(isolation: &[&str], usage: &[Usage]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP strata_agent_isolator_active Isolators active on this agent (--isolation).\n\
         # TYPE strata_agent_isolator_active gauge"
    );
    for name in isolation {
        let _ = writeln!(
            out,
            "strata_agent_isolator_active{{isolator=\"{}\"}} 1",
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP strata_agent_containers_running Running containers.\n\
         # TYPE strata_agent_containers_running gauge\n\
         strata_agent_containers_running {}",
        usage.len()
    );
    for (name, kind, help, figure) in FAMILIES {
        let samples: Vec<(String, Num)> = usage
            .iter()
            .filter_map(|u| figure(&u.statistics).map(|n| (labels(u), n)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, n) in samples {
            let _ = match n {
                Num::Int(v) => writeln!(out, "{name}{{{labels}}} {v}"),
                Num::Float(v) => writeln!(out, "{name}{{{labels}}} {v}"),
            };
        }
    }
    for (name, help, bytes, op) in IO_FAMILIES {
        let mut samples = Vec::new();
        for u in usage {
            let Some(blkio) = &u.statistics.blkio_statistics else {
                continue;
            };
            for device in &blkio.throttling {
                let values: &[BlkioValue] = if *bytes {
                    &device.io_service_bytes
                } else {
                    &device.io_serviced
                };
                if let Some(v) = values.iter().find(|v| v.op == *op) {
                    samples.push(format!(
                        "{name}{{{},device=\"{}:{}\"}} {}",
                        labels(u),
                        device.device.major_number,
                        device.device.minor_number,
                        v.value
                    ));
                }
            }
        }
        if samples.is_empty() {
            continue;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for sample in samples {
            let _ = writeln!(out, "{sample}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::path::PathBuf;
    use strata_isolators::statistics::{parse_io_stat, BlkioStatistics};
    use strata_schema::{
        AgentId, CommandInfo, ContainerId, FrameworkId, FrameworkInfo, TaskId, TaskInfo,
    };

    fn usage(task: &str, statistics: ResourceStatistics) -> Usage {
        Usage {
            target: UsageTarget {
                ckpt: TaskCheckpoint {
                    container_id: ContainerId::random(),
                    agent_id: AgentId::new("a1").unwrap(),
                    framework: FrameworkInfo {
                        id: Some(FrameworkId::new("fw-1").unwrap()),
                        ..FrameworkInfo::default()
                    },
                    task: TaskInfo {
                        task_id: TaskId::new(task).unwrap(),
                        name: task.to_string(),
                        agent_id: AgentId::new("a1").unwrap(),
                        resources: Resources::parse("cpus:1").unwrap(),
                        command: CommandInfo::shell("sleep 10"),
                        kill_grace_period_secs: None,
                        hostname: None,
                        container: None,
                        executor: None,
                        data: Vec::new(),
                        labels: Vec::new(),
                    },
                    sandbox: PathBuf::from("/sandbox"),
                },
                resources: Resources::parse("cpus:1").unwrap(),
            },
            statistics,
        }
    }

    fn stats() -> ResourceStatistics {
        ResourceStatistics {
            timestamp: 1.5,
            processes: Some(2),
            threads: Some(3),
            cpus_user_time_secs: Some(1.25),
            cpus_system_time_secs: Some(0.5),
            cpus_limit: Some(1.0),
            mem_limit_bytes: Some(64 << 20),
            net_rx_bytes: Some(1000),
            net_tx_packets: Some(7),
            blkio_statistics: Some(BlkioStatistics::from(
                parse_io_stat("8:0 rbytes=100 wbytes=200 rios=1 wios=2\n").as_slice(),
            )),
            ..ResourceStatistics::default()
        }
    }

    #[test]
    fn statistics_have_mesos_shape() {
        let json = statistics_json(&[usage("web", stats())]);
        let entry = &json[0];
        assert_eq!(entry["executor_id"], "web");
        assert_eq!(entry["source"], "web");
        assert_eq!(
            entry["executor_name"],
            "Command Executor (Task: web) (Command: sh -c 'sleep 10')"
        );
        assert_eq!(entry["framework_id"], "fw-1");
        let s = &entry["statistics"];
        assert_eq!(s["timestamp"], 1.5);
        assert_eq!(s["cpus_user_time_secs"], 1.25);
        assert_eq!(s["mem_limit_bytes"], 64 << 20);
        assert!(s.get("mem_total_bytes").is_none(), "absent, not zero: {s}");
        assert_eq!(s["net_rx_bytes"], 1000);
        assert_eq!(s["net_tx_packets"], 7);
        assert!(s.get("net_tx_bytes").is_none(), "{s}");
        assert_eq!(
            s["blkio_statistics"]["throttling"][0]["device"]["major_number"],
            8
        );
    }

    #[test]
    fn prometheus_text_has_one_family_per_figure() {
        let text = prometheus(&["namespaces/pid"], &[usage("web", stats())]);
        assert!(text.contains("strata_agent_isolator_active{isolator=\"namespaces/pid\"} 1\n"));
        assert!(text.contains("strata_agent_containers_running 1\n"));
        assert!(
            text.contains(
                "# TYPE strata_container_cpu_user_seconds_total counter\n\
             strata_container_cpu_user_seconds_total{task_id=\"web\",framework_id=\"fw-1\"} 1.25\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "strata_container_memory_limit_bytes{task_id=\"web\",framework_id=\"fw-1\"} 67108864\n"
        ));
        assert!(text.contains(
            "strata_container_network_receive_bytes_total{task_id=\"web\",framework_id=\"fw-1\"} 1000\n"
        ));
        assert!(text.contains(
            "strata_container_network_transmit_packets_total{task_id=\"web\",framework_id=\"fw-1\"} 7\n"
        ));
        assert!(text.contains(
            "strata_container_io_write_bytes_total{task_id=\"web\",framework_id=\"fw-1\",device=\"8:0\"} 200\n"
        ));
        assert!(
            !text.contains("strata_container_memory_usage_bytes"),
            "no sample, no family: {text}"
        );
        assert_eq!(
            text.matches("# TYPE").count(),
            text.matches("# HELP").count()
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
