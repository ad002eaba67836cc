//! `strata top`: every running task's usage, sampled from its agent's `/monitor/statistics`
//! (Mesos' shape) twice an interval apart: CPU as cores used over the interval against the
//! task's limit, memory against its limit, network rates. Redrawn in place in a terminal; with
//! `--once` one sample printed as a plain table.

use crate::args::TopArgs;
use crate::output::agent_address;
use crate::tables::{array, number, render, text};
use crate::units::{format_cpus, format_mem};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use strata_client::http;

pub const TOP_HEADERS: [&str; 8] = [
    "TASK",
    "FRAMEWORK",
    "AGENT",
    "CPU",
    "CPU LIMIT",
    "MEM",
    "MEM LIMIT",
    "NET RX/TX",
];

/// One task's counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub task: String,
    pub framework: String,
    pub agent: String,
    pub timestamp: f64,
    pub cpu_secs: f64,
    pub cpus_limit: Option<f64>,
    pub mem_bytes: Option<f64>,
    pub mem_limit_bytes: Option<f64>,
    pub net_rx: Option<f64>,
    pub net_tx: Option<f64>,
}

fn opt(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// The samples in one agent's `/monitor/statistics` answer.
pub fn samples(agent: &str, statistics: &Value) -> Vec<Sample> {
    statistics
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let s = entry.get("statistics").unwrap_or(&Value::Null);
            Sample {
                task: text(entry, "executor_id").to_string(),
                framework: text(entry, "framework_id").to_string(),
                agent: agent.to_string(),
                timestamp: number(s, "timestamp"),
                cpu_secs: number(s, "cpus_user_time_secs") + number(s, "cpus_system_time_secs"),
                cpus_limit: opt(s, "cpus_limit"),
                mem_bytes: opt(s, "mem_rss_bytes").or_else(|| opt(s, "mem_total_bytes")),
                mem_limit_bytes: opt(s, "mem_limit_bytes"),
                net_rx: opt(s, "net_rx_bytes"),
                net_tx: opt(s, "net_tx_bytes"),
            }
        })
        .collect()
}

fn rate(now: Option<f64>, before: Option<f64>, secs: f64) -> Option<f64> {
    Some((now? - before?).max(0.0) / secs)
}

fn human_rate(bytes_per_sec: Option<f64>) -> String {
    match bytes_per_sec {
        None => "-".to_string(),
        Some(b) if b < 1024.0 => format!("{b:.0} B/s"),
        Some(b) if b < 1024.0 * 1024.0 => format!("{:.1} KiB/s", b / 1024.0),
        Some(b) => format!("{:.1} MiB/s", b / 1024.0 / 1024.0),
    }
}

/// Rows for [`TOP_HEADERS`]: each task of `now` seen in `before` too, busiest first.
pub fn rows(before: &[Sample], now: &[Sample]) -> Vec<Vec<String>> {
    let earlier: HashMap<(&str, &str), &Sample> = before
        .iter()
        .map(|s| ((s.framework.as_str(), s.task.as_str()), s))
        .collect();
    let mut lines: Vec<(f64, Vec<String>)> = now
        .iter()
        .filter_map(|s| {
            let b = earlier.get(&(s.framework.as_str(), s.task.as_str()))?;
            let secs = s.timestamp - b.timestamp;
            if secs <= 0.0 {
                return None;
            }
            let cpu = (s.cpu_secs - b.cpu_secs).max(0.0) / secs;
            let mib =
                |bytes: Option<f64>| bytes.map_or("-".to_string(), |b| format_mem(b / 1048576.0));
            Some((
                cpu,
                vec![
                    s.task.clone(),
                    s.framework.clone(),
                    s.agent.clone(),
                    format_cpus((cpu * 100.0).round() / 100.0),
                    s.cpus_limit.map_or("-".to_string(), format_cpus),
                    mib(s.mem_bytes),
                    mib(s.mem_limit_bytes),
                    format!(
                        "{} / {}",
                        human_rate(rate(s.net_rx, b.net_rx, secs)),
                        human_rate(rate(s.net_tx, b.net_tx, secs))
                    ),
                ],
            ))
        })
        .collect();
    lines.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    lines.into_iter().map(|(_, row)| row).collect()
}

/// One round of every agent's statistics; agents that do not answer are named in the result.
async fn sample_all(master: &str) -> anyhow::Result<(Vec<Sample>, Vec<String>)> {
    let state = crate::master::state(master).await?;
    let mut all = Vec::new();
    let mut failed = Vec::new();
    for agent in array(&state, "slaves") {
        let id = text(agent, "id");
        let Some(addr) = agent_address(&state, id) else {
            continue;
        };
        match http::get_json(&addr, "/monitor/statistics").await {
            Ok(stats) => all.extend(samples(text(agent, "hostname"), &stats)),
            Err(_) => failed.push(addr),
        }
    }
    Ok((all, failed))
}

pub async fn top(master: &str, args: TopArgs) -> anyhow::Result<u8> {
    let mut interrupts = crate::signals::Interrupts::new()?;
    let (mut before, _) = sample_all(master).await?;
    let mut out = std::io::stdout();
    if !args.once {
        // The alternate screen, cursor hidden: the terminal comes back as it was on exit.
        let _ = write!(out, "\x1b[?1049h\x1b[?25l");
    }
    let result = loop {
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            () = interrupts.recv() => break Ok(0),
        }
        let (now, failed) = match sample_all(master).await {
            Ok(sampled) => sampled,
            Err(err) if args.once => break Err(err),
            Err(err) => {
                let _ = writeln!(out, "\x1b[H\x1b[2Jstrata top: {err:#}");
                let _ = out.flush();
                continue;
            }
        };
        let table = render(&TOP_HEADERS, &rows(&before, &now));
        let mut screen = String::new();
        if !args.once {
            screen.push_str("\x1b[H\x1b[2J");
            screen.push_str(&format!(
                "strata top — {master} — {} tasks — every {:.1}s (Ctrl-C quits)\n\n",
                now.len(),
                args.interval.as_secs_f64()
            ));
        }
        screen.push_str(&table);
        for addr in &failed {
            screen.push_str(&format!("(agent {addr} did not answer)\n"));
        }
        let _ = out.write_all(screen.as_bytes());
        let _ = out.flush();
        before = now;
        if args.once {
            break Ok(0);
        }
    };
    if !args.once {
        let _ = write!(out, "\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
    }
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats(ts: f64, user: f64, sys: f64, rx: u64) -> Value {
        json!([{"executor_id": "t1", "framework_id": "F1", "statistics": {
            "timestamp": ts, "cpus_user_time_secs": user, "cpus_system_time_secs": sys,
            "cpus_limit": 0.5, "mem_rss_bytes": 10485760u64, "mem_limit_bytes": 67108864u64,
            "net_rx_bytes": rx, "net_tx_bytes": 0}},
            {"executor_id": "t2", "framework_id": "F1", "statistics": {"timestamp": ts}}])
    }

    #[test]
    fn usage_is_the_difference_over_the_interval() {
        let before = samples("node1", &stats(100.0, 1.0, 0.5, 0));
        let now = samples("node1", &stats(102.0, 1.6, 0.9, 4096));
        let rows = rows(&before, &now);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0][0], "t1");
        assert_eq!(rows[0][3], "0.5"); // (0.6 + 0.4) cpu-seconds over 2 s
        assert_eq!(rows[0][4], "0.5");
        assert_eq!(rows[0][5], "10 MiB");
        assert_eq!(rows[0][6], "64 MiB");
        assert_eq!(rows[0][7], "2.0 KiB/s / 0 B/s");
        assert_eq!(rows[1][0], "t2");
        assert_eq!(rows[1][5], "-");
    }

    #[test]
    fn tasks_not_seen_twice_are_left_out() {
        let now = samples("node1", &stats(102.0, 1.6, 0.9, 0));
        assert!(rows(&[], &now).is_empty());
        // a counter reset (a restarted task of the same id) does not go negative
        let before = samples("node1", &stats(100.0, 9.0, 9.0, 9999));
        let rows = rows(&before, &now);
        assert_eq!(rows[0][3], "0");
    }
}
