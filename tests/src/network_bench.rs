//! `cargo xtask bench ebpf`: what the agent's BPF programs cost a container's networking.
//!
//! Two sibling cgroups under a bench subtree of the cgroup2 mount: `on/c`, below the programs
//! attached at `on` exactly as the agent attaches them at its subtree (ports allowed for the
//! bind test, traffic counted), and `off/c`, with nothing attached. `strata-netprobe --cgroup`
//! moves itself into one of them and
//!
//! - sends `bytes` over loopback TCP to a sink in this process (outside both), and reports the
//!   time from connect to the sink's close: throughput;
//! - times `binds` bind() calls of fresh sockets to an allowed port: bind latency.
//!
//! The two sides alternate, starting side swapped each round, so drift on a noisy machine hits
//! both. Everything (cgroups, BPF filesystem with its pins) is removed on drop.

use crate::BpfFs;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use strata_ebpf::{NetworkBpf, Options};
use strata_isolators::cgroup2::Cgroup;

/// The port range the `on` container is allowed; the bind test binds its first port.
pub const PORTS: (u16, u16) = (39100, 39109);

/// One side's figures, one per round.
#[derive(Debug, Default)]
pub struct Side {
    /// Gbit/s of each transfer.
    pub gbits: Vec<f64>,
    /// Mean ns per bind() of each round.
    pub bind_ns: Vec<f64>,
}

#[derive(Debug)]
pub struct Report {
    pub rounds: usize,
    pub bytes: u64,
    pub binds: u32,
    pub on: Side,
    pub off: Side,
    /// What the accounting programs counted for the `on` container: tx bytes.
    pub counted_tx: u64,
}

/// The median of `values`.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Removes the bench's cgroups (killing what is left in them) when dropped.
struct Tree(PathBuf);

impl Drop for Tree {
    fn drop(&mut self) {
        for leaf in ["on/c", "off/c", "on", "off", ""] {
            crate::remove_cgroup_tree(&self.0.join(leaf));
        }
    }
}

pub fn run(netprobe: &Path, rounds: usize, bytes: u64, binds: u32) -> Result<Report> {
    let mount = crate::require_root();
    let base = mount.join(format!("strata-bench-ebpf-{}", std::process::id()));
    let tree = Tree(base.clone());
    let root = Cgroup::open(&mount)?;
    let on = root.create_child(base.join("on").strip_prefix(&mount)?)?;
    let on_c = on.create_child("c")?;
    let off = root.create_child(base.join("off").strip_prefix(&mount)?)?;
    let _off_c = off.create_child("c")?;
    let bpffs = BpfFs::mount()?;
    let level = u32::try_from(on_c.path().strip_prefix(&mount)?.components().count())?;
    let bpf = NetworkBpf::setup(&Options {
        pin_dir: &bpffs.path().join("strata"),
        cgroup: on.path(),
        container_level: level,
        ports: true,
        accounting: true,
    })
    .context("attach the BPF programs")?;
    let on_id = on_c.id()?;
    bpf.set_ports(on_id, &[PORTS], true)?;
    bpf.track_traffic(on_id)?;

    let mut report = Report {
        rounds,
        bytes,
        binds,
        on: Side::default(),
        off: Side::default(),
        counted_tx: 0,
    };
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for attached in order {
            let cgroup = base.join(if attached { "on/c" } else { "off/c" });
            let gbits = transfer(netprobe, &cgroup, bytes)?;
            let ns = bind_latency(netprobe, &cgroup, binds)?;
            let side = if attached {
                &mut report.on
            } else {
                &mut report.off
            };
            side.gbits.push(gbits);
            side.bind_ns.push(ns);
        }
    }
    report.counted_tx = bpf.traffic(on_id)?.map_or(0, |t| t.tx_bytes);
    drop(bpf);
    drop(bpffs);
    drop(tree);
    Ok(report)
}

/// Runs `netprobe --cgroup <cgroup> ARGS…` and returns its stdout.
fn probe(netprobe: &Path, cgroup: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(netprobe)
        .arg("--cgroup")
        .arg(cgroup)
        .args(args)
        .output()
        .with_context(|| format!("run {}", netprobe.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "strata-netprobe {args:?} in {} failed: {stdout}{}",
            cgroup.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Sends `bytes` from a process in `cgroup` to a sink here; Gbit/s.
fn transfer(netprobe: &Path, cgroup: &Path, bytes: u64) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let sink = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let out = probe(
        netprobe,
        cgroup,
        &["send", &format!("127.0.0.1:{port}"), &bytes.to_string()],
    )?;
    let received = sink
        .join()
        .map_err(|_| anyhow::anyhow!("the sink thread panicked"))??;
    if received != bytes {
        bail!("the sink received {received} of {bytes} bytes");
    }
    let secs: f64 = out
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("unexpected netprobe output {out:?}"))?;
    Ok(bytes as f64 * 8.0 / secs.max(1e-9) / 1e9)
}

/// Mean ns of `n` bind() calls in `cgroup` to an allowed port.
fn bind_latency(netprobe: &Path, cgroup: &Path, n: u32) -> Result<f64> {
    let out = probe(
        netprobe,
        cgroup,
        &[
            "bind-latency",
            "127.0.0.1",
            &PORTS.0.to_string(),
            &n.to_string(),
        ],
    )?;
    out.strip_prefix("bind_ns ")
        .and_then(|s| s.trim().parse().ok())
        .with_context(|| format!("unexpected netprobe output {out:?}"))
}
