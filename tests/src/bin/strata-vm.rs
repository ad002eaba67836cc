//! `strata-vm`: the scenario runner of the VM test bed (`cargo xtask vm-test`). The guest's `/init`
//! starts it as root on a pure cgroup v2 host (a Debian kernel under QEMU); it runs each scenario
//! through a real master and agent (`Cluster`, binaries from `STRATA_BIN_DIR`) and reports one line
//! per scenario, which xtask reads from the guest's serial ports:
//!
//! ```text
//! STRATA-SCENARIO PASS <name>: <detail>
//! STRATA-SCENARIO FAIL <name>: <reason>
//! STRATA-LOG <name>: <a line of context for a failure>
//! STRATA-SCENARIOS DONE <passed> passed, <failed> failed
//! ```
//!
//! `STRATA_SCENARIOS` (comma-separated names) selects scenarios; the default is every scenario
//! but `selftest-fail`, which always fails and exists to show that a failure reaches the host.
//! Report lines go to stdout and, when `STRATA_VM_REPORT` names a file (the guest's second serial
//! port), there too, so that kernel messages on the console never split them.
//!
//! The tasks the scenarios launch run this same binary as their workload (`hog-mem`, `hog-cpu`,
//! `fork-bomb`), so that they need nothing but what the initramfs holds.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata_client::Offer;
use strata_schema::{ContainerInfo, ImageType, TaskId, TaskState, TaskStatus};
use strata_tests::framework::{task, TestFramework};
use strata_tests::images::{self, ImageSpec, Layer, TarBuilder};
use strata_tests::{cgroup2_mount, http_get, http_request, Cluster};

/// Patience for anything the cluster does, generous because the guest runs under emulation.
const T: Duration = Duration::from_secs(60);
/// The most one scenario may take, cluster start and cleanup included.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);
/// The isolators of the scenarios that test enforcement (Mesos names).
const ISOLATION: &str = "cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid,namespaces/ipc,\
                         namespaces/uts,filesystem/linux";
const MIB: u64 = 1024 * 1024;

type ScenarioFn =
    fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String>> + Send>>;

/// Every scenario, in the order they run; the flag marks those that run by default.
fn scenarios() -> Vec<(&'static str, bool, ScenarioFn)> {
    vec![
        ("cgroup2-controllers", true, || {
            Box::pin(cgroup2_controllers())
        }),
        ("namespaces-hostname", true, || {
            Box::pin(namespaces_hostname())
        }),
        ("kill-empties-cgroup", true, || {
            Box::pin(kill_empties_cgroup())
        }),
        ("memory-oom", true, || Box::pin(memory_oom())),
        ("fork-bomb-pids", true, || Box::pin(fork_bomb_pids())),
        ("cpu-cfs-quota", true, || Box::pin(cpu_cfs_quota())),
        ("cpu-weight-1-3", true, || Box::pin(cpu_weight_1_3())),
        ("memory-update", true, || Box::pin(memory_update())),
        ("usage-statistics", true, || Box::pin(usage_statistics())),
        ("network-ports-accounting", true, || {
            Box::pin(network_ports_accounting())
        }),
        ("image-memory-oom", true, || Box::pin(image_memory_oom())),
        ("image-cpu-pids", true, || Box::pin(image_cpu_pids())),
        ("selftest-fail", false, || Box::pin(selftest_fail())),
    ]
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(),
        Some("list") => {
            for (name, default, _) in scenarios() {
                println!("{name}{}", if default { "" } else { " (only when named)" });
            }
            Ok(())
        }
        Some("hog-mem") => hog_mem(&args[1..]),
        Some("hog-cpu") => hog_cpu(&args[1..]),
        Some("fork-bomb") => fork_bomb(&args[1..]),
        _ => Err(anyhow!(
            "usage: strata-vm run | list | hog-mem MIB [--hold] | hog-cpu [--pin CPU] [--mem MIB] \
             | fork-bomb N  (any of them may take --tag WORD, which only marks the command line)"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata-vm: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

struct Reporter {
    file: Option<std::fs::File>,
}

impl Reporter {
    fn open() -> Self {
        let file = std::env::var_os("STRATA_VM_REPORT").and_then(|path| {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| eprintln!("strata-vm: cannot open {path:?}: {e}"))
                .ok()
        });
        Self { file }
    }

    /// Writes one line to stdout and the report file, each in one write.
    fn line(&mut self, text: &str) {
        let line = format!("{}\n", one_line(text));
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
        if let Some(file) = &mut self.file {
            let _ = file.write_all(line.as_bytes());
            let _ = file.flush();
        }
    }
}

/// `text` without line breaks or control characters, at most 400 characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    }
}

fn run() -> Result<()> {
    let wanted: Option<Vec<String>> = std::env::var("STRATA_SCENARIOS")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split(',').map(|n| n.trim().to_string()).collect());
    let all = scenarios();
    let mut reporter = Reporter::open();
    let mut selected: Vec<(&str, ScenarioFn)> = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    match &wanted {
        None => selected.extend(all.iter().filter(|s| s.1).map(|s| (s.0, s.2))),
        Some(names) => {
            for name in names {
                match all.iter().find(|s| s.0 == name) {
                    Some(s) => selected.push((s.0, s.2)),
                    None => {
                        reporter.line(&format!("STRATA-SCENARIO FAIL {name}: no such scenario"));
                        failed += 1;
                    }
                }
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    for (name, scenario) in selected {
        reporter.line(&format!("STRATA-START {name}"));
        let started = Instant::now();
        let outcome = runtime.block_on(async {
            let mut handle = tokio::spawn(scenario());
            match tokio::time::timeout(SCENARIO_TIMEOUT, &mut handle).await {
                Ok(Ok(result)) => result,
                Ok(Err(join)) => Err(anyhow!("the scenario panicked: {}", panic_text(join))),
                Err(_) => {
                    // Cancel it, so that its cluster is dropped (and cleaned up) before the next.
                    handle.abort();
                    let _ = tokio::time::timeout(Duration::from_secs(30), handle).await;
                    Err(anyhow!(
                        "the scenario did not end within {SCENARIO_TIMEOUT:?}"
                    ))
                }
            }
        });
        let secs = started.elapsed().as_secs_f64();
        match outcome {
            Ok(detail) => {
                passed += 1;
                reporter.line(&format!(
                    "STRATA-SCENARIO PASS {name}: {detail} ({secs:.1} s)"
                ));
            }
            Err(err) => {
                failed += 1;
                let text = format!("{err:#}");
                let mut lines = text.lines();
                let first = lines.next().unwrap_or("failed");
                reporter.line(&format!(
                    "STRATA-SCENARIO FAIL {name}: {first} ({secs:.1} s)"
                ));
                for line in lines.filter(|l| !l.trim().is_empty()).take(60) {
                    reporter.line(&format!("STRATA-LOG {name}: {line}"));
                }
            }
        }
    }
    reporter.line(&format!(
        "STRATA-SCENARIOS DONE {passed} passed, {failed} failed"
    ));
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

fn panic_text(join: tokio::task::JoinError) -> String {
    if join.is_cancelled() {
        return "cancelled".to_string();
    }
    let payload = join.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".to_string())
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the scenarios

/// A cluster of one master and one agent with `resources` and `flags`, a subscribed framework,
/// and an offer of at least `needed`.
async fn setup(
    resources: &str,
    flags: &[&str],
    needed: &str,
) -> Result<(Cluster, TestFramework, Offer)> {
    let cluster = Cluster::start_with_agent_flags(&[resources], &[], flags)?;
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "strata-vm").await?;
    let offer = fw.offer_with(needed, T).await?;
    Ok((cluster, fw, offer))
}

/// Launches `tasks` (id, resources, shell command) on `offer` and waits until each runs.
async fn launch_running(
    cluster: &Cluster,
    fw: &mut TestFramework,
    offer: &Offer,
    tasks: &[(&str, &str, &str)],
) -> Result<()> {
    let infos = tasks
        .iter()
        .map(|(id, res, cmd)| task(id, &offer.agent_id, res, cmd))
        .collect();
    fw.launch(offer, infos).await?;
    for (id, _, _) in tasks {
        let status = fw
            .wait_for(id, T, |s| s == TaskState::Running || s.is_terminal())
            .await?;
        if status.state != TaskState::Running {
            bail!(
                "task {id} did not start: {}\n{}",
                describe(&status),
                cluster.logs()
            );
        }
    }
    Ok(())
}

fn describe(status: &TaskStatus) -> String {
    format!(
        "{:?} reason {} message {:?} exit code {:?}",
        status.state,
        status.reason.as_deref().unwrap_or("none"),
        status.message,
        status.exit_code
    )
}

/// Processes of the agent's containers: (cgroup directory, pid), the whole subtree.
fn container_processes(cluster: &Cluster) -> Vec<(PathBuf, i32)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, i32)>) {
        for pid in strata_tests::procs(dir) {
            out.push((dir.to_path_buf(), pid));
        }
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(&entry.path(), out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(&cluster.agent_cgroup(0), &mut out);
    out
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .unwrap_or_default()
}

/// The process of a container whose command line holds `tag`, and the container's cgroup (the
/// directory right below the agent's subtree that holds it).
fn find_tagged(cluster: &Cluster, tag: &str) -> Option<(PathBuf, i32)> {
    let root = cluster.agent_cgroup(0);
    container_processes(cluster)
        .into_iter()
        .find(|(_, pid)| cmdline(*pid).contains(tag))
        .and_then(|(dir, pid)| {
            let rel = dir.strip_prefix(&root).ok()?;
            let first = rel.components().next()?;
            Some((root.join(first), pid))
        })
}

/// Waits until a container process whose command line holds `tag` exists.
async fn wait_tagged(cluster: &Cluster, tag: &str) -> Result<(PathBuf, i32)> {
    let deadline = Instant::now() + T;
    loop {
        if let Some(found) = find_tagged(cluster, tag) {
            return Ok(found);
        }
        if Instant::now() > deadline {
            bail!(
                "no process with {tag:?} in the agent's cgroups {} within {T:?}; have {:?}\n{}",
                cluster.agent_cgroup(0).display(),
                container_processes(cluster),
                cluster.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cgroup a process is in, on this host's cgroup2 mount.
fn cgroup_of(pid: i32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(cgroup2_mount()?.join(rel.trim_start_matches('/')))
}

fn read_trimmed(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .with_context(|| format!("cannot read {}", path.display()))
}

/// A value of a flat keyed file such as cpu.stat (`usage_usec 1234`).
fn keyed(path: &Path, key: &str) -> Result<u64> {
    let text = read_trimmed(path)?;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok()).flatten()
        })
        .ok_or_else(|| anyhow!("{} has no {key}: {text:?}", path.display()))
}

/// The tightest `file` limit (e.g. memory.max) from the process's cgroup up to `container`;
/// None when every level says `max` or has no such file.
fn effective_limit(pid: i32, container: &Path, file: &str) -> Option<u64> {
    let mut dir = cgroup_of(pid)?;
    let mut limit: Option<u64> = None;
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            if let Ok(v) = text.trim().parse::<u64>() {
                limit = Some(limit.map_or(v, |l| l.min(v)));
            }
        }
        if dir == container || !dir.pop() || !dir.starts_with(container) {
            return limit;
        }
    }
}

/// CPU time (seconds) the container used over `window`, after a short warm-up, as a share of
/// one CPU.
async fn cpu_share(containers: &[&Path], window: Duration) -> Result<Vec<f64>> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let read = || -> Result<Vec<u64>> {
        containers
            .iter()
            .map(|c| keyed(&c.join("cpu.stat"), "usage_usec"))
            .collect()
    };
    let (t0, u0) = (Instant::now(), read()?);
    tokio::time::sleep(window).await;
    let (t1, u1) = (Instant::now(), read()?);
    let wall = (t1 - t0).as_secs_f64();
    Ok(u0
        .iter()
        .zip(&u1)
        .map(|(a, b)| b.saturating_sub(*a) as f64 / 1e6 / wall)
        .collect())
}

/// The sandbox directory of `task` under the agent's work dir.
fn sandbox(cluster: &Cluster, task: &str) -> Option<PathBuf> {
    let agents = cluster.agents[0].0.work_dir.join("agents");
    for agent in std::fs::read_dir(agents).ok()?.flatten() {
        let frameworks = agent.path().join("frameworks");
        for fw in std::fs::read_dir(frameworks).ok()?.flatten() {
            let runs = fw.path().join("executors").join(task).join("runs");
            if let Ok(entries) = std::fs::read_dir(runs) {
                if let Some(run) = entries.flatten().find(|e| e.path().is_dir()) {
                    return Some(run.path());
                }
            }
        }
    }
    None
}

/// Waits until `task`'s sandbox stdout holds a line starting with `prefix`; returns that line.
async fn wait_stdout(cluster: &Cluster, task: &str, prefix: &str) -> Result<String> {
    let deadline = Instant::now() + T;
    loop {
        let out = sandbox(cluster, task)
            .and_then(|dir| std::fs::read_to_string(dir.join("stdout")).ok())
            .unwrap_or_default();
        if let Some(line) = out.lines().rev().find(|l| l.starts_with(prefix)) {
            return Ok(line.to_string());
        }
        if Instant::now() > deadline {
            bail!("task {task} printed no {prefix:?} line within {T:?}; stdout: {out:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An OCI image layout in a temporary directory (kept alive by the returned guard): the busybox
/// root filesystem of the host tests (built from the guest's own busybox-static) and a layer
/// with the marker `/etc/strata-vm-image`. Uncompressed layers: nothing to inflate under
/// emulation. Returns the image's name for a task (`oci:<dir>:v1`).
fn busybox_image() -> Result<(tempfile::TempDir, String)> {
    let dir = tempfile::Builder::new()
        .prefix("strata-vm-image-")
        .tempdir()?;
    let marker = TarBuilder::new()
        .dir("etc")
        .file("etc/strata-vm-image", b"strata-vm image rootfs\n")
        .finish();
    let spec = ImageSpec::new(vec![
        Layer::plain(images::busybox_layer()?.tar),
        Layer::plain(marker),
    ]);
    let layout = dir.path().join("layout");
    images::write_layout(&layout, &images::build(&spec), "v1")?;
    let name = format!("oci:{}:v1", layout.display());
    Ok((dir, name))
}

/// Launches image tasks (id, resources, shell command) from `image` on `offer` and waits until
/// each runs.
async fn launch_image_running(
    cluster: &Cluster,
    fw: &mut TestFramework,
    offer: &Offer,
    image: &str,
    tasks: &[(&str, &str, &str)],
) -> Result<()> {
    let infos = tasks
        .iter()
        .map(|(id, res, cmd)| {
            let mut t = task(id, &offer.agent_id, res, cmd);
            t.container = Some(ContainerInfo::image(ImageType::Oci, image));
            t
        })
        .collect();
    fw.launch(offer, infos).await?;
    for (id, _, _) in tasks {
        let status = fw
            .wait_for(id, T, |s| s == TaskState::Running || s.is_terminal())
            .await?;
        if status.state != TaskState::Running {
            bail!(
                "image task {id} did not start: {}\n{}",
                describe(&status),
                cluster.logs()
            );
        }
    }
    Ok(())
}

/// Kills `task` and waits for TASK_KILLED.
async fn kill_task(fw: &mut TestFramework, offer: &Offer, id: &str) -> Result<TaskStatus> {
    fw.driver
        .kill(TaskId::new(id)?, Some(offer.agent_id.clone()))
        .await?;
    let status = fw.wait_terminal(id, T).await?;
    if status.state != TaskState::Killed {
        bail!("killing {id} ended it {}", describe(&status));
    }
    Ok(status)
}

/// The task's entry in the agent's /monitor/statistics.
fn statistics(cluster: &Cluster, id: &str) -> Result<Value> {
    let all = http_get(&cluster.agent(0).addr(), "/monitor/statistics")?;
    let entries = all
        .as_array()
        .ok_or_else(|| anyhow!("/monitor/statistics is not an array: {all}"))?;
    entries
        .iter()
        .find(|e| e["executor_id"] == id)
        .map(|e| e["statistics"].clone())
        .ok_or_else(|| anyhow!("/monitor/statistics has no entry for {id}: {all}"))
}

fn stat_f64(stats: &Value, key: &str) -> Result<f64> {
    stats[key]
        .as_f64()
        .ok_or_else(|| anyhow!("statistics lack {key}: {stats}"))
}

// ---------------------------------------------------------------------------------------------
// Scenarios. Each returns a one-line detail when it passes.

/// The guest is a pure cgroup v2 host whose root offers the controllers the isolators need.
async fn cgroup2_controllers() -> Result<String> {
    let mount = cgroup2_mount().ok_or_else(|| anyhow!("no cgroup2 mount"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    if mountinfo.lines().any(|l| {
        l.split(" - ")
            .nth(1)
            .is_some_and(|r| r.starts_with("cgroup "))
    }) {
        bail!("a cgroup v1 hierarchy is mounted: not a pure v2 host");
    }
    let controllers = read_trimmed(&mount.join("cgroup.controllers"))?;
    let have: Vec<&str> = controllers.split_whitespace().collect();
    let missing: Vec<&str> = ["cpu", "cpuset", "io", "memory", "pids"]
        .into_iter()
        .filter(|c| !have.contains(c))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the cgroup2 root at {} lacks {missing:?}: {controllers:?}",
            mount.display()
        );
    }
    Ok(format!("{} offers {controllers}", mount.display()))
}

/// A task sees only its own processes and has its own hostname (agent with default isolation).
async fn namespaces_hostname() -> Result<String> {
    let (cluster, mut fw, offer) = setup("cpus:2;mem:1024", &[], "cpus:1;mem:64").await?;
    let guest = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    // Both daemons carry --work-dir on their command lines: the check below is not vacuous. (The
    // probe's pattern is written `--work-di[r]` so that it does not match its own command line.)
    let visible_here = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| cmdline(*pid).contains("--work-dir"))
        .count();
    if visible_here < 2 {
        bail!("the guest itself sees {visible_here} daemons with --work-dir, expected 2");
    }
    let cmd = "echo host=$(hostname); echo procs=$(ls /proc | grep -c '^[0-9]'); \
               echo daemons=$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' '\\n' | grep -c -e '--work-di[r]'); \
               echo done";
    let infos = vec![task("ns-probe", &offer.agent_id, "cpus:1;mem:64", cmd)];
    fw.launch(&offer, infos).await?;
    let status = fw.wait_terminal("ns-probe", T).await?;
    if status.state != TaskState::Finished {
        bail!("the probe ended {}\n{}", describe(&status), cluster.logs());
    }
    let out = sandbox(&cluster, "ns-probe")
        .and_then(|d| std::fs::read_to_string(d.join("stdout")).ok())
        .unwrap_or_default();
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the probe printed no {key}=: {out:?}"))
    };
    let host = field("host")?;
    let procs: u32 = field("procs")?.parse()?;
    let daemons: u32 = field("daemons")?.parse()?;
    if host != "ns-probe" || host == guest {
        bail!("the task's hostname is {host:?} (guest: {guest:?}), expected \"ns-probe\"");
    }
    if procs > 5 || daemons != 0 {
        bail!("the task sees {procs} processes, {daemons} of them the guest's daemons: {out:?}");
    }
    Ok(format!(
        "hostname {host:?} (guest {guest:?}), sees {procs} processes and none of the host's"
    ))
}

/// Killing a task that forks and ignores SIGTERM leaves its cgroup empty and removed.
async fn kill_empties_cgroup() -> Result<String> {
    let (cluster, mut fw, offer) = setup("cpus:2;mem:1024", &[], "cpus:1;mem:64").await?;
    let cmd = "trap '' TERM; (trap '' TERM; sleep 1001 & sleep 1001 & wait) & (sleep 1001 &) ; \
               sleep 1001 & wait";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[("forky", "cpus:1;mem:64", cmd)],
    )
    .await?;
    let (container, _) = wait_tagged(&cluster, "1001").await?;
    let deadline = Instant::now() + T;
    let pids = loop {
        let pids: Vec<i32> = container_processes(&cluster)
            .into_iter()
            .filter(|(dir, _)| dir.starts_with(&container))
            .map(|(_, pid)| pid)
            .collect();
        if pids.len() >= 6 {
            break pids;
        }
        if Instant::now() > deadline {
            bail!("the task's tree did not grow: {pids:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    kill_task(&mut fw, &offer, "forky").await?;
    let deadline = Instant::now() + T;
    loop {
        let alive: Vec<i32> = pids
            .iter()
            .copied()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/stat"))
                    .map(|s| !s.contains(") Z "))
                    .unwrap_or(false)
            })
            .collect();
        let left = strata_tests::procs(&container);
        if alive.is_empty() && left.is_empty() && !container.exists() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "after the kill: alive {alive:?}, cgroup {} holds {left:?} (exists: {})",
                container.display(),
                container.exists()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(format!(
        "{} processes gone, {} removed",
        pids.len(),
        container.display()
    ))
}

/// A memory hog is OOM-killed with the memory reason; its sibling keeps running.
async fn memory_oom() -> Result<String> {
    let flags = ["--isolation", ISOLATION];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:128").await?;
    let hog = "exec /bin/strata-vm hog-mem 256 --tag oom-hog";
    let sibling = "exec sleep 100001";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[
            ("sibling", "cpus:0.5;mem:64", sibling),
            ("oom-hog", "cpus:0.5;mem:64", hog),
        ],
    )
    .await?;
    let status = fw.wait_terminal("oom-hog", T).await?;
    if status.state != TaskState::Failed
        || status.reason.as_deref() != Some("REASON_CONTAINER_LIMITATION_MEMORY")
    {
        bail!(
            "the hog (256 MiB in a 64 MiB task) ended {}, expected TASK_FAILED with \
             REASON_CONTAINER_LIMITATION_MEMORY\n{}",
            describe(&status),
            cluster.logs()
        );
    }
    // The sibling is untouched: still running, its process alive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sib = fw.latest.get(&TaskId::new("sibling")?).cloned();
    if sib.as_ref().map(|s| s.state) != Some(TaskState::Running) {
        bail!("the sibling did not keep running: {sib:?}");
    }
    if find_tagged(&cluster, "100001").is_none() {
        bail!("the sibling's process is gone");
    }
    kill_task(&mut fw, &offer, "sibling").await?;
    Ok(format!(
        "hog TASK_FAILED {} ({:?}); sibling kept running",
        status.reason.as_deref().unwrap_or(""),
        status.message
    ))
}

/// An image task (overlay root filesystem, libcontainer) that outgrows its 64 MiB is OOM-killed
/// with the memory reason, after showing that its root is the image's; a sibling from the same
/// image keeps running.
async fn image_memory_oom() -> Result<String> {
    let flags = ["--isolation", ISOLATION];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:128").await?;
    let (_image_dir, image) = busybox_image()?;
    // The shell doubles a string until the kernel stops it (64 MiB: a few doublings).
    let hog = "cat /etc/strata-vm-image; test -e /bin/strata-vm || echo no-guest-binaries; \
               echo hogging; x=0123456789abcdef; while :; do x=$x$x; done";
    let sibling = "exec sleep 100004";
    launch_image_running(
        &cluster,
        &mut fw,
        &offer,
        &image,
        &[
            ("image-sibling", "cpus:0.5;mem:64", sibling),
            ("image-hog", "cpus:0.5;mem:64", hog),
        ],
    )
    .await?;
    let status = fw.wait_terminal("image-hog", T).await?;
    let out = sandbox(&cluster, "image-hog")
        .and_then(|dir| std::fs::read_to_string(dir.join("stdout")).ok())
        .unwrap_or_default();
    if status.state != TaskState::Failed
        || status.reason.as_deref() != Some("REASON_CONTAINER_LIMITATION_MEMORY")
    {
        bail!(
            "the image hog (mem:64) ended {}, expected TASK_FAILED with \
             REASON_CONTAINER_LIMITATION_MEMORY; stdout {out:?}\n{}",
            describe(&status),
            cluster.logs()
        );
    }
    let lines: Vec<&str> = out.lines().collect();
    if lines != ["strata-vm image rootfs", "no-guest-binaries", "hogging"] {
        bail!("the image hog's root filesystem is not the image's: stdout {out:?}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sib = fw.latest.get(&TaskId::new("image-sibling")?).cloned();
    if sib.as_ref().map(|s| s.state) != Some(TaskState::Running) {
        bail!("the sibling image task did not keep running: {sib:?}");
    }
    if find_tagged(&cluster, "100004").is_none() {
        bail!("the sibling image task's process is gone");
    }
    kill_task(&mut fw, &offer, "image-sibling").await?;
    Ok(format!(
        "image hog TASK_FAILED {} ({:?}) in the image's rootfs; sibling kept running",
        status.reason.as_deref().unwrap_or(""),
        status.message
    ))
}

/// An image task with cpus 0.5 under `--cgroups-enable-cfs` and `--container-pids-max 64`: its
/// fork bomb is held at pids.max, and its CPU loop gets half a CPU.
async fn image_cpu_pids() -> Result<String> {
    let flags = [
        "--isolation",
        ISOLATION,
        "--cgroups-enable-cfs",
        "--container-pids-max",
        "64",
    ];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:128").await?;
    let (_image_dir, image) = busybox_image()?;
    // The inner shell forks sleepers until fork fails (and the shell with it); the outer one
    // then reports and spins without forking.
    let cmd = "cat /etc/strata-vm-image; sh -c 'while :; do sleep 100005 & done' 2>/dev/null; \
               echo image-bomb-held; while :; do :; done";
    launch_image_running(
        &cluster,
        &mut fw,
        &offer,
        &image,
        &[("image-cpu-pids", "cpus:0.5;mem:64", cmd)],
    )
    .await?;
    wait_stdout(&cluster, "image-cpu-pids", "image-bomb-held").await?;
    let (container, pid) = wait_tagged(&cluster, "image-bomb-held").await?;
    let current = read_trimmed(&container.join("pids.current")).unwrap_or_default();
    let max = effective_limit(pid, &container, "pids.max");
    let refused = keyed(&container.join("pids.events"), "max").unwrap_or(0);
    let sleepers = container_processes(&cluster)
        .iter()
        .filter(|(dir, p)| dir.starts_with(&container) && cmdline(*p).contains("sleep 100005"))
        .count();
    let pids = format!(
        "{sleepers} sleepers, pids.current {current}, pids.max {max:?}, pids.events max {refused}"
    );
    if max.is_none_or(|m| m > 64) || refused == 0 || sleepers == 0 || sleepers > 64 {
        bail!(
            "the image task's fork bomb was not held: {pids}\n{}",
            cluster.logs()
        );
    }
    let share = cpu_share(&[&container], Duration::from_secs(6)).await?[0];
    let cpu_max = read_trimmed(&container.join("cpu.max")).unwrap_or_else(|_| "absent".into());
    let throttled = keyed(&container.join("cpu.stat"), "nr_throttled").unwrap_or(0);
    let detail = format!(
        "{pids}; the loop used {share:.2} CPU (cpu.max {cpu_max:?}, nr_throttled {throttled})"
    );
    if !(0.4..=0.6).contains(&share) {
        bail!("{detail}; expected 0.50 ± 0.10");
    }
    kill_task(&mut fw, &offer, "image-cpu-pids").await?;
    Ok(detail)
}

/// A fork bomb is held at pids.max; the agent stays healthy and launches another task.
async fn fork_bomb_pids() -> Result<String> {
    let flags = ["--isolation", ISOLATION, "--container-pids-max", "64"];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:2;mem:512").await?;
    let bomb = "exec /bin/strata-vm fork-bomb 1000 --tag fork-bomb";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[("bomb", "cpus:1;mem:256", bomb)],
    )
    .await?;
    let line = wait_stdout(&cluster, "bomb", "forked ").await?;
    let (container, pid) = wait_tagged(&cluster, "fork-bomb").await?;
    let current = read_trimmed(&container.join("pids.current")).unwrap_or_default();
    let max = effective_limit(pid, &container, "pids.max");
    // "forked N failed M errno E"
    let words: Vec<&str> = line.split_whitespace().collect();
    let forked: u64 = words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0);
    let failed: u64 = words.get(3).and_then(|w| w.parse().ok()).unwrap_or(0);
    if failed == 0 || max.is_none_or(|m| m > 64) || forked >= 64 {
        bail!(
            "the bomb was not held: {line:?}; pids.max {max:?}, pids.current {current:?}\n{}",
            cluster.logs()
        );
    }
    // The agent is healthy and still launches tasks.
    let (code, _) = http_request(&cluster.agent(0).addr(), "GET", "/health")?;
    if code != 200 {
        bail!("the agent's /health answered {code} during the fork bomb");
    }
    let offer2 = fw.offer_with("cpus:0.5;mem:32", T).await?;
    fw.launch(
        &offer2,
        vec![task(
            "after-bomb",
            &offer2.agent_id,
            "cpus:0.5;mem:32",
            "echo alive",
        )],
    )
    .await?;
    let after = fw.wait_terminal("after-bomb", T).await?;
    if after.state != TaskState::Finished {
        bail!("a task launched during the bomb ended {}", describe(&after));
    }
    kill_task(&mut fw, &offer, "bomb").await?;
    Ok(format!(
        "{line}; pids.max {}, pids.current {current}; agent healthy, next task finished",
        max.unwrap_or(0)
    ))
}

/// `--cgroups-enable-cfs` and cpus=0.5: a CPU hog gets half a CPU.
async fn cpu_cfs_quota() -> Result<String> {
    let flags = ["--isolation", ISOLATION, "--cgroups-enable-cfs"];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:64").await?;
    let hog = "exec /bin/strata-vm hog-cpu --tag cfs-hog";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[("cfs-hog", "cpus:0.5;mem:64", hog)],
    )
    .await?;
    let (container, pid) = wait_tagged(&cluster, "cfs-hog").await?;
    let share = cpu_share(&[&container], Duration::from_secs(6)).await?[0];
    let max = read_trimmed(&container.join("cpu.max")).unwrap_or_else(|_| "absent".into());
    let throttled = keyed(&container.join("cpu.stat"), "nr_throttled").unwrap_or(0);
    let detail = format!(
        "the hog used {share:.2} CPU (cpu.max {max:?}, nr_throttled {throttled}, pid {pid})"
    );
    if !(0.4..=0.6).contains(&share) {
        bail!("{detail}; expected 0.50 ± 0.10");
    }
    kill_task(&mut fw, &offer, "cfs-hog").await?;
    Ok(detail)
}

/// Two CPU hogs with cpus 1 and 3 pinned to one core share it about 1:3 (cpu.weight).
async fn cpu_weight_1_3() -> Result<String> {
    let flags = ["--isolation", ISOLATION];
    let (cluster, mut fw, offer) = setup("cpus:8;mem:1024", &flags, "cpus:4;mem:128").await?;
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[
            (
                "weight-1",
                "cpus:1;mem:64",
                "exec /bin/strata-vm hog-cpu --pin 0 --tag weight-1",
            ),
            (
                "weight-3",
                "cpus:3;mem:64",
                "exec /bin/strata-vm hog-cpu --pin 0 --tag weight-3",
            ),
        ],
    )
    .await?;
    let (c1, _) = wait_tagged(&cluster, "weight-1").await?;
    let (c3, _) = wait_tagged(&cluster, "weight-3").await?;
    let shares = cpu_share(&[&c1, &c3], Duration::from_secs(6)).await?;
    let w1 = read_trimmed(&c1.join("cpu.weight")).unwrap_or_else(|_| "absent".into());
    let w3 = read_trimmed(&c3.join("cpu.weight")).unwrap_or_else(|_| "absent".into());
    let ratio = shares[1] / shares[0].max(1e-6);
    let detail = format!(
        "cpus 1 got {:.2} CPU, cpus 3 got {:.2}: ratio {ratio:.2} (cpu.weight {w1} and {w3})",
        shares[0], shares[1]
    );
    if !(2.0..=4.5).contains(&ratio) {
        bail!("{detail}; expected a ratio in 2..4.5");
    }
    Ok(detail)
}

/// Raising a running container's memory limit rewrites memory.max; a hog that fits the new
/// limit (but not the old one) survives.
async fn memory_update() -> Result<String> {
    let flags = ["--isolation", ISOLATION];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:256").await?;
    let cmd = "while [ ! -e \"$MESOS_SANDBOX/go\" ]; do sleep 0.2; done; \
               exec /bin/strata-vm hog-mem 96 --hold --tag grow";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[("grow", "cpus:0.5;mem:64", cmd)],
    )
    .await?;
    let (container, pid) = wait_tagged(&cluster, "--tag grow").await?;
    let before = effective_limit(pid, &container, "memory.max");
    if before != Some(64 * MIB) {
        bail!("memory.max before the update is {before:?}, expected 64 MiB");
    }
    let path = "/containers/update?task_id=grow&resources=cpus:0.5%3Bmem:128";
    let (code, body) = http_request(&cluster.agent(0).addr(), "POST", path)?;
    if code != 200 {
        bail!("POST {path} answered {code}: {body}");
    }
    let deadline = Instant::now() + T;
    let after = loop {
        let now = effective_limit(pid, &container, "memory.max");
        if now == Some(128 * MIB) {
            break now;
        }
        if Instant::now() > deadline {
            bail!("memory.max is {now:?} after the update, expected 128 MiB");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let dir = sandbox(&cluster, "grow").ok_or_else(|| anyhow!("no sandbox for grow"))?;
    std::fs::write(dir.join("go"), "")?;
    let line = wait_stdout(&cluster, "grow", "holding ").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let latest = fw.latest.get(&TaskId::new("grow")?).cloned();
    if latest.as_ref().map(|s| s.state) != Some(TaskState::Running) {
        bail!("the grown task did not survive: {latest:?}");
    }
    kill_task(&mut fw, &offer, "grow").await?;
    Ok(format!(
        "memory.max {} -> {} MiB; the task then {line:?} and kept running",
        before.unwrap_or(0) / MIB,
        after.unwrap_or(0) / MIB
    ))
}

/// /monitor/statistics moves as a task works and shows its limits.
async fn usage_statistics() -> Result<String> {
    let flags = ["--isolation", ISOLATION];
    let (cluster, mut fw, offer) = setup("cpus:4;mem:1024", &flags, "cpus:1;mem:256").await?;
    let cmd = "exec /bin/strata-vm hog-cpu --mem 32 --tag busy";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[("busy", "cpus:0.5;mem:128", cmd)],
    )
    .await?;
    wait_tagged(&cluster, "--tag busy").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s0 = statistics(&cluster, "busy")?;
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let s1 = statistics(&cluster, "busy")?;
    let cpu = |s: &Value| -> Result<f64> {
        Ok(stat_f64(s, "cpus_user_time_secs")? + stat_f64(s, "cpus_system_time_secs")?)
    };
    let used = cpu(&s1)? - cpu(&s0)?;
    let rss = stat_f64(&s1, "mem_rss_bytes")?;
    let limit = stat_f64(&s1, "mem_limit_bytes")?;
    let cpus_limit = stat_f64(&s1, "cpus_limit")?;
    let detail = format!(
        "cpu time +{used:.2} s in {window:?}, rss {:.0} MiB, mem_limit {:.0} MiB, cpus_limit \
         {cpus_limit}",
        rss / MIB as f64,
        limit / MIB as f64
    );
    if used < 0.3 || rss < 24.0 * MIB as f64 || limit != 128.0 * MIB as f64 || cpus_limit != 0.5 {
        bail!(
            "{detail}; expected cpu time to grow by 0.3 s or more, rss of 24 MiB or more, a \
               128 MiB limit and cpus_limit 0.5"
        );
    }
    kill_task(&mut fw, &offer, "busy").await?;
    Ok(detail)
}

/// Debian's own kernel (the one operators run) accepts the BPF programs (the isolators are
/// selected explicitly, so a refusal stops the agent), binds outside a task's ports fail with
/// EPERM over IPv4 and IPv6, and a transfer between two tasks is counted on both ends.
async fn network_ports_accounting() -> Result<String> {
    const BYTES: u64 = 4 * MIB;
    let flags = ["--isolation", "network/ports,network/accounting"];
    let (cluster, mut fw, offer) = setup(
        "cpus:4;mem:1024;ports:[31000-31010]",
        &flags,
        "cpus:1;mem:256",
    )
    .await?;
    let probe = "/bin/strata-netprobe";
    launch_running(
        &cluster,
        &mut fw,
        &offer,
        &[
            (
                "binder",
                "cpus:0.1;mem:32;ports:[31000-31001]",
                &format!(
                    "{probe} binds 127.0.0.1 31000 8080 31002; {probe} binds ::1 31001 8080; \
                     echo binds-done; sleep 1000"
                ),
            ),
            (
                "sink",
                "cpus:0.1;mem:32;ports:[31005-31005]",
                &format!("{probe} sink 127.0.0.1 31005; sleep 1000"),
            ),
            (
                "sender",
                "cpus:0.1;mem:32",
                &format!(
                    "until {probe} send 127.0.0.1:31005 {BYTES}; do sleep 0.2; done; sleep 1000"
                ),
            ),
        ],
    )
    .await?;
    wait_stdout(&cluster, "binder", "binds-done").await?;
    let out = sandbox(&cluster, "binder")
        .and_then(|dir| std::fs::read_to_string(dir.join("stdout")).ok())
        .unwrap_or_default();
    let expected = [
        "bind 127.0.0.1 31000 ok 31000",
        "bind 127.0.0.1 8080 err EPERM",
        "bind 127.0.0.1 31002 err EPERM",
        "bind ::1 31001 ok 31001",
        "bind ::1 8080 err EPERM",
    ];
    let got: Vec<&str> = out.lines().filter(|l| l.starts_with("bind ")).collect();
    if got != expected {
        bail!("binds: expected {expected:?}, got {got:?}");
    }
    wait_stdout(&cluster, "sink", "received").await?;
    let tx = stat_f64(&statistics(&cluster, "sender")?, "net_tx_bytes")?;
    let rx = stat_f64(&statistics(&cluster, "sink")?, "net_rx_bytes")?;
    let within = |v: f64| v >= BYTES as f64 && v <= BYTES as f64 * 1.02;
    let detail = format!(
        "kernel accepted the programs; 8080/31002 EPERM (v4, v6); {BYTES} B sent: sender tx \
         {tx} B, sink rx {rx} B"
    );
    if !within(tx) || !within(rx) {
        bail!("{detail}: expected both within 2% above {BYTES}");
    }
    for id in ["binder", "sink", "sender"] {
        kill_task(&mut fw, &offer, id).await?;
    }
    Ok(detail)
}

/// Always fails: proves that a failing scenario fails `cargo xtask vm-test`.
async fn selftest_fail() -> Result<String> {
    bail!("this scenario fails on purpose (it runs only when named)")
}

// ---------------------------------------------------------------------------------------------
// Workloads the scenarios' tasks run

/// The value after `flag` in `args`.
fn flag_value(args: &[String], flag: &str) -> Result<Option<u64>> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => {
            let text = args
                .get(i + 1)
                .ok_or_else(|| anyhow!("{flag} needs a value"))?;
            Ok(Some(
                text.parse().with_context(|| format!("{flag} {text:?}"))?,
            ))
        }
    }
}

/// Allocates and touches `mib` MiB (1 MiB at a time, printing progress); with `--hold` keeps it
/// forever, otherwise exits 5 s later.
fn hog_mem(args: &[String]) -> Result<()> {
    let mib: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("hog-mem needs a size in MiB"))?;
    let chunks = touch(mib);
    println!("holding {mib} MiB");
    if args.iter().any(|a| a == "--hold") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
            std::hint::black_box(&chunks);
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    std::hint::black_box(&chunks);
    Ok(())
}

fn touch(mib: usize) -> Vec<Vec<u8>> {
    let mut chunks = Vec::with_capacity(mib);
    for i in 1..=mib {
        chunks.push(vec![1u8; MIB as usize]);
        if i % 8 == 0 {
            println!("allocated {i} MiB");
        }
    }
    chunks
}

/// Spins forever, optionally pinned to one CPU and holding `--mem` MiB.
fn hog_cpu(args: &[String]) -> Result<()> {
    if let Some(cpu) = flag_value(args, "--pin")? {
        let cpu = usize::try_from(cpu)?;
        // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads the set we pass.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            bail!(
                "cannot pin to CPU {cpu}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    let chunks = touch(usize::try_from(flag_value(args, "--mem")?.unwrap_or(0))?);
    println!("spinning");
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        std::hint::black_box(&chunks);
    }
}

/// Forks up to `n` children that only wait, counting the forks the kernel refuses; prints
/// `forked N failed M errno E` and then waits too.
fn fork_bomb(args: &[String]) -> Result<()> {
    let n: u64 = args
        .first()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| anyhow!("fork-bomb needs a count"))?;
    let (mut forked, mut failed, mut errno) = (0u64, 0u64, 0i32);
    for _ in 0..n {
        // SAFETY: this process is single-threaded (no runtime has started), and the child only
        // calls pause(2), which is async-signal-safe.
        match unsafe { libc::fork() } {
            0 => loop {
                // SAFETY: pause(2) has no preconditions.
                unsafe { libc::pause() };
            },
            -1 => {
                failed += 1;
                errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => forked += 1,
        }
    }
    println!("forked {forked} failed {failed} errno {errno}");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
