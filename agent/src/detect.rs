//! Resource detection (cpus, mem, disk of the work dir, ports), merged with `--resources`.

use std::path::Path;
use strata_schema::{Range, Resources};

/// Memory and disk the agent leaves to the host: Mesos keeps `min(1 GB, 50%)` back.
fn leave_for_host(total_mb: f64) -> f64 {
    (total_mb / 2.0).min(1024.0)
}

fn mem_total_mb(meminfo: &str) -> Option<f64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn disk_total_mb(path: &Path) -> Option<f64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks() as f64 * stat.fragment_size() as f64 / 1024.0 / 1024.0)
}

/// What this host has to offer, with `given` taking precedence name by name.
pub fn detect(work_dir: &Path, given: Option<&Resources>) -> Resources {
    let given_names: Vec<String> = given
        .map(|g| g.names().into_iter().map(String::from).collect())
        .unwrap_or_default();
    let has = |name: &str| given_names.iter().any(|n| n == name);
    let mut out = given.cloned().unwrap_or_default();
    if !has("cpus") {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        out.add(&Resources::scalar_resource("cpus", cpus as f64));
    }
    if !has("mem") {
        if let Some(total) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(mem_total_mb)
        {
            out.add(&Resources::scalar_resource(
                "mem",
                (total - leave_for_host(total)).floor(),
            ));
        }
    }
    if !has("disk") {
        if let Some(total) = disk_total_mb(work_dir) {
            out.add(&Resources::scalar_resource(
                "disk",
                (total - leave_for_host(total)).floor(),
            ));
        }
    }
    if !has("ports") {
        out.add(&Resources::ranges_resource(
            "ports",
            vec![Range {
                begin: 31000,
                end: 32000,
            }],
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn given_resources_win() {
        let dir = tempfile::tempdir().unwrap();
        let given = Resources::parse("cpus:3;ports:[1-2]").unwrap();
        let r = detect(dir.path(), Some(&given));
        assert_eq!(r.cpus(), 3.0);
        assert_eq!(r.ranges("ports"), vec![Range { begin: 1, end: 2 }]);
        assert!(r.mem() > 0.0 && r.disk() > 0.0);
    }

    #[test]
    fn meminfo_parsing() {
        assert_eq!(
            mem_total_mb("MemTotal:  2048000 kB\nMemFree: 1 kB\n"),
            Some(2000.0)
        );
        assert_eq!(mem_total_mb("nonsense"), None);
        assert_eq!(leave_for_host(1000.0), 500.0);
        assert_eq!(leave_for_host(10000.0), 1024.0);
    }
}
