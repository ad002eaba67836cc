//! `strata-bench …` (run by `cargo xtask bench …`): benchmarks through the real binaries. Each
//! figure is printed beside a baseline measured in the same run, because these machines are noisy.
//! The daemons it starts are the release binaries in `STRATA_BIN_DIR` (xtask builds and sets it).

use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};
use strata_schema::{TaskId, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::Cluster;

/// Percentile of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Plain fork/exec of `/bin/true`, `n` times.
fn baseline(n: usize) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let status = Command::new("/bin/true")
            .status()
            .context("run /bin/true")?;
        if !status.success() {
            bail!("/bin/true failed");
        }
        out.push(t.elapsed());
    }
    out.sort();
    Ok(out)
}

struct Run {
    to_running: Vec<Duration>,
    to_finished: Vec<Duration>,
    wall: Duration,
}

/// Launches `n` `/bin/true` tasks keeping at most `window` in flight.
async fn launch_run(master: &str, n: usize, window: usize, label: &str) -> Result<Run> {
    let mut fw = TestFramework::subscribe(master, &format!("bench-{label}")).await?;
    let mut accepted: HashMap<TaskId, Instant> = HashMap::new();
    let mut running: HashMap<TaskId, Duration> = HashMap::new();
    let mut finished: Vec<Duration> = Vec::new();
    let mut to_running = Vec::new();
    let mut launched = 0usize;
    let mut seen = 0usize;
    let start = Instant::now();
    while finished.len() < n {
        let in_flight = launched - finished.len();
        if launched < n && in_flight < window {
            if let Some(offer) = fw.offers.pop() {
                let fits = ((offer.resources.cpus() / 0.1).floor() as usize)
                    .min(((offer.resources.mem() / 32.0).floor()) as usize);
                let k = (window - in_flight).min(n - launched).min(fits);
                let tasks: Vec<_> = (0..k)
                    .map(|i| {
                        task(
                            &format!("{label}-{}", launched + i),
                            &offer.agent_id,
                            "cpus:0.1;mem:32",
                            "/bin/true",
                        )
                    })
                    .map(|mut t| {
                        t.command = strata_schema::CommandInfo::argv(vec!["/bin/true".into()]);
                        t
                    })
                    .collect();
                let now = Instant::now();
                for t in &tasks {
                    accepted.insert(t.task_id.clone(), now);
                }
                launched += k;
                fw.launch(&offer, tasks).await?;
                continue;
            }
        }
        fw.step(Duration::from_secs(30)).await?;
        // Look at the updates that arrived.
        // Latencies end when an update arrived, not after its acknowledgement went out.
        for (s, arrived) in fw.updates[seen..].iter().zip(&fw.arrivals[seen..]) {
            let Some(t0) = accepted.get(&s.task_id) else {
                continue;
            };
            let d = arrived.duration_since(*t0);
            match s.state {
                TaskState::Running => {
                    running.insert(s.task_id.clone(), d);
                    to_running.push(d);
                }
                TaskState::Finished => finished.push(d),
                st if st.is_terminal() => bail!("task {} ended {st}: {}", s.task_id, s.message),
                _ => {}
            }
        }
        seen = fw.updates.len();
    }
    let wall = start.elapsed();
    let _ = fw.driver.teardown().await;
    to_running.sort();
    finished.sort();
    Ok(Run {
        to_running,
        to_finished: finished,
        wall,
    })
}

fn launch(n: usize) -> Result<()> {
    if std::env::var_os("STRATA_LOG").is_none() {
        std::env::set_var("STRATA_LOG", "warn");
    }
    let cluster = Cluster::start("cpus:64;mem:65536")?;
    let master = cluster.master.addr();
    let runtime = tokio::runtime::Runtime::new()?;
    let base = baseline(n)?;
    let seq = runtime.block_on(launch_run(&master, n, 1, "seq"))?;
    let par = runtime.block_on(launch_run(&master, n, 50, "par"))?;
    let base_after = baseline(n)?;
    println!("bench launch: {n} command tasks (/bin/true) on one agent, through the real master and agent");
    println!(
        "  baseline fork/exec of /bin/true: p50 {} p99 {} (again after the runs: p50 {})",
        ms(pct(&base, 0.5)),
        ms(pct(&base, 0.99)),
        ms(pct(&base_after, 0.5))
    );
    for (name, run) in [("sequential", &seq), ("50 at a time", &par)] {
        let p50 = pct(&run.to_running, 0.5);
        println!(
            "  {name:>12}: accept->RUNNING p50 {} p99 {} | accept->FINISHED p50 {} p99 {} | {:.0} tasks/s, all {n} in {:.2} s | RUNNING p50 = {:.1}x fork/exec",
            ms(p50),
            ms(pct(&run.to_running, 0.99)),
            ms(pct(&run.to_finished, 0.5)),
            ms(pct(&run.to_finished, 0.99)),
            n as f64 / run.wall.as_secs_f64(),
            run.wall.as_secs_f64(),
            p50.as_secs_f64() / pct(&base, 0.5).as_secs_f64().max(1e-9),
        );
    }
    println!("  reference: Mesos launches 1,000 containers on one agent in about 30 s; target: < 3 s, p50 accept->RUNNING < 5 ms");
    drop(cluster);
    Ok(())
}

/// Where the binaries under test are: `STRATA_BIN_DIR` (xtask sets it), else beside this one.
/// Not `strata_tests::bin_dir()`, which expects a test binary in target/*/deps.
fn bin_dir() -> Result<std::path::PathBuf> {
    match std::env::var_os("STRATA_BIN_DIR") {
        Some(dir) => Ok(std::path::PathBuf::from(dir)),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("strata-bench has no directory")?
            .to_path_buf()),
    }
}

/// Containers running /bin/true through the supervisor, beside fork/exec, crun and runc.
fn isolation(runs: usize) -> Result<()> {
    use strata_tests::isolation::Way;
    let bin_dir = bin_dir()?;
    let report = strata_tests::isolation::run(&bin_dir.join("strata-agent"), runs)?;
    println!(
        "bench isolation: create and start a container running /bin/true, and reap it; {} runs each way, in alternating blocks of {}, in {:.1} s",
        report.runs,
        strata_tests::isolation::BLOCK,
        report.wall.as_secs_f64()
    );
    println!("  cgroups: {}", report.cgroups);
    for m in &report.measured {
        println!("  - {}", m.what);
    }
    for way in Way::ALL {
        let times = report.get(way);
        println!(
            "  {:>9}: p50 {} p99 {}",
            way.name(),
            ms(pct(times, 0.5)),
            ms(pct(times, 0.99))
        );
    }
    let p = |way, q| pct(report.get(way), q).as_secs_f64();
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let overhead = p(Way::Strata, 0.5) - p(Way::ForkExec, 0.5);
    println!(
        "  strata over fork/exec: +{:.2} ms p50, +{:.2} ms p99 (target: < 2 ms p50, {})",
        overhead * 1e3,
        (p(Way::Strata, 0.99) - p(Way::ForkExec, 0.99)) * 1e3,
        verdict(overhead < 2e-3)
    );
    for (way, target, ok) in [
        (
            Way::Runc,
            "faster, < 1.00x",
            p(Way::Strata, 0.5) < p(Way::Runc, 0.5),
        ),
        (
            Way::Crun,
            "within 1.20x",
            p(Way::Strata, 0.5) <= 1.2 * p(Way::Crun, 0.5),
        ),
    ] {
        println!(
            "  strata / {}: {:.2}x p50, {:.2}x p99 (target: {target} p50, {})",
            way.name(),
            p(Way::Strata, 0.5) / p(way, 0.5).max(1e-9),
            p(Way::Strata, 0.99) / p(way, 0.99).max(1e-9),
            verdict(ok)
        );
    }
    Ok(())
}

/// `cargo xtask bench image`: image pulls and unpacks (MB/s) from a local registry; accept ->
/// TASK_RUNNING of a busybox image task beside `crun run` and `runc run` of the same image.
fn image(runs: usize) -> Result<()> {
    let f = strata_tests::image_bench::run(&bin_dir()?, runs)?;
    let mb = |bytes: u64, d: Duration| bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9);
    println!("bench image: {runs} runs each; local docker-registry on loopback");
    println!(
        "  pull:   {:.1} MB in {} = {:.1} MB/s (compressed layer, digest checked while streamed to disk)",
        f.pull_bytes as f64 / 1e6,
        ms(f.pull),
        mb(f.pull_bytes, f.pull)
    );
    println!(
        "  unpack: {:.1} MB in {} = {:.1} MB/s (gunzip + tar, diff_id checked)",
        f.unpack_bytes as f64 / 1e6,
        ms(f.unpack),
        mb(f.unpack_bytes, f.unpack)
    );
    println!(
        "  provision into an empty store (manifest, config, 2 layers pulled and unpacked): {}",
        ms(f.provision)
    );
    let p = |v: &[Duration], q| pct(v, q);
    println!(
        "  strata, accept -> TASK_RUNNING (image in the store): p50 {} p99 {}",
        ms(p(&f.strata, 0.5)),
        ms(p(&f.strata, 0.99))
    );
    println!(
        "  {} run (create, start, exit, delete): p50 {} p99 {}",
        f.crun_version,
        ms(p(&f.crun, 0.5)),
        ms(p(&f.crun, 0.99))
    );
    println!(
        "  {} run (create, start, exit, delete): p50 {} p99 {}",
        f.runc_version,
        ms(p(&f.runc, 0.5)),
        ms(p(&f.runc, 0.99))
    );
    let ratio = |a: &[Duration], b: &[Duration]| {
        p(a, 0.5).as_secs_f64() / p(b, 0.5).as_secs_f64().max(1e-9)
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let vs_crun = ratio(&f.strata, &f.crun);
    let vs_runc = ratio(&f.strata, &f.runc);
    println!(
        "  strata / crun: {vs_crun:.2}x p50 (target: within 1.20x, {})",
        verdict(vs_crun <= 1.2)
    );
    println!(
        "  strata / runc: {vs_runc:.2}x p50 (target: < 1.00x, {})",
        verdict(vs_runc < 1.0)
    );
    Ok(())
}

/// `cargo xtask bench ebpf`: loopback TCP throughput and bind() latency of a process below the
/// agent's BPF programs, beside the same in a cgroup without them.
fn ebpf(rounds: usize) -> Result<()> {
    use strata_tests::network_bench::{median, run};
    const BYTES: u64 = 512 << 20;
    const BINDS: u32 = 20_000;
    let bin_dir = bin_dir()?;
    let started = Instant::now();
    let r = run(&bin_dir.join("strata-netprobe"), rounds, BYTES, BINDS)?;
    println!(
        "bench ebpf: {} rounds, sides alternating; each round per side: {} MiB over loopback TCP to a sink outside, then {} bind() calls; {:.1} s",
        r.rounds,
        r.bytes >> 20,
        r.binds,
        started.elapsed().as_secs_f64()
    );
    println!("  attached: bind4/bind6/post_bind4/post_bind6 (ports allowed) and cgroup_skb ingress/egress (counting), as the agent attaches them");
    let (on, off) = (median(&r.on.gbits), median(&r.off.gbits));
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  throughput, without programs (baseline): median {off:.2} Gbit/s [{}]",
        fmt(&r.off.gbits)
    );
    println!(
        "  throughput, with programs:               median {on:.2} Gbit/s [{}]",
        fmt(&r.on.gbits)
    );
    // Paired within each round (the two sides ran back to back), which cancels the drift of a
    // noisy machine better than comparing the two medians.
    let ratios: Vec<f64> =
        r.on.gbits
            .iter()
            .zip(&r.off.gbits)
            .map(|(on, off)| on / off.max(1e-9))
            .collect();
    let ratio = median(&ratios);
    println!(
        "  throughput with/without: median of per-round ratios {:.1}% (ratio of medians {:.1}%) (target: >= 97%, {})",
        ratio * 100.0,
        on / off.max(1e-9) * 100.0,
        if ratio >= 0.97 { "met" } else { "MISSED" }
    );
    let (bon, boff) = (median(&r.on.bind_ns), median(&r.off.bind_ns));
    println!(
        "  bind(), without programs (baseline): median {boff:.0} ns [{}]",
        fmt(&r.off.bind_ns)
    );
    println!(
        "  bind(), with programs:               median {bon:.0} ns [{}]",
        fmt(&r.on.bind_ns)
    );
    let overhead = bon - boff;
    println!(
        "  bind() overhead: {overhead:+.0} ns (target: < 2000 ns, {})",
        if overhead < 2000.0 { "met" } else { "MISSED" }
    );
    let expected = r.bytes * r.rounds as u64;
    println!(
        "  sanity: the accounting programs counted {} tx bytes for {} sent ({:+.2}%)",
        r.counted_tx,
        expected,
        (r.counted_tx as f64 / expected.max(1) as f64 - 1.0) * 100.0
    );
    Ok(())
}

/// `cargo xtask bench failover`: kill -9 the leading master of two, with `agents` simulated
/// agents (real RPC, in this process) holding `tasks` tasks of one framework; time until a new
/// leader is elected, every agent has re-registered with it, and the framework has offers again.
fn failover(agents: usize, tasks: usize) -> Result<()> {
    use strata_tests::zookeeper::ZooKeeper;
    const SESSION: Duration = Duration::from_secs(2);
    let zk = ZooKeeper::start()?;
    let url = zk.url("/strata-bench");
    let session = format!("{}ms", SESSION.as_millis());
    let mut cluster = Cluster::start_ha(&url, 2, &[], &["--zk-session-timeout", &session])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let info = strata_schema::FrameworkInfo {
        name: "bench-failover".into(),
        user: "root".into(),
        failover_timeout_secs: 600.0,
        ..strata_schema::FrameworkInfo::default()
    };
    let mut fw = runtime.block_on(TestFramework::subscribe_with(&url, info.clone()))?;
    let framework = strata_schema::FrameworkInfo {
        id: Some(fw.driver.framework_id().clone()),
        ..info
    };
    let per_agent = tasks.div_ceil(agents.max(1));
    let sims = strata_tests::sim_agent::spawn(
        url.parse().map_err(anyhow::Error::msg)?,
        agents,
        per_agent,
        framework,
    )?;
    let registered = |since: Option<Instant>| {
        let s = sims.lock().map(|s| {
            s.registered_at
                .iter()
                .filter(|t| t.is_some_and(|t| since.is_none_or(|since| t >= since)))
                .count()
        });
        s.unwrap_or(0)
    };
    let started = Instant::now();
    while registered(None) < agents {
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {agents} simulated agents registered",
                registered(None)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let known = cluster.wait_state(Duration::from_secs(60), |s| {
        s["activated_slaves"].as_u64() == Some(agents as u64)
            && s["frameworks"][0]["tasks"].as_array().map(Vec::len) == Some(per_agent * agents)
    })?;
    println!(
        "bench failover: {agents} simulated agents (real RPC, in-process) with {} running tasks of one framework; 2 masters; ZooKeeper session timeout {SESSION:?}; set up in {:.1} s",
        known["frameworks"][0]["tasks"].as_array().map_or(0, Vec::len),
        started.elapsed().as_secs_f64()
    );
    // Let the framework drain what it was sent so far.
    runtime.block_on(async { while fw.step(Duration::from_millis(300)).await.is_ok() {} });
    let killed = Instant::now();
    cluster.master.kill();
    let elected = cluster.promote_leader(Duration::from_secs(60))?;
    let mut all_back = None;
    while all_back.is_none() {
        if registered(Some(killed)) >= agents {
            all_back = Some(killed.elapsed());
        } else if killed.elapsed() > Duration::from_secs(120) {
            bail!(
                "only {} of {agents} agents re-registered",
                registered(Some(killed))
            );
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let offers_at = runtime.block_on(async {
        fw.wait_resubscribed(Duration::from_secs(60)).await?;
        fw.offer_with("cpus:1", Duration::from_secs(60)).await?;
        anyhow::Ok(killed.elapsed())
    })?;
    let mut back: Vec<Duration> = sims
        .lock()
        .map(|s| {
            s.registered_at
                .iter()
                .filter_map(|t| t.map(|t| t.saturating_duration_since(killed)))
                .collect()
        })
        .unwrap_or_default();
    back.sort();
    let state = cluster.master_state()?;
    let tasks_after = state["frameworks"][0]["tasks"]
        .as_array()
        .map_or(0, Vec::len);
    println!(
        "  ZooKeeper session timeout (baseline: detection waits for it): {:.2} s",
        SESSION.as_secs_f64()
    );
    println!(
        "  kill -9 leader -> new leader elected:            {:.2} s",
        elected.as_secs_f64()
    );
    println!(
        "  kill -9 leader -> all {agents} agents re-registered: {:.2} s",
        all_back.unwrap_or_default().as_secs_f64()
    );
    println!(
        "  kill -9 leader -> framework offered again:       {:.2} s beside the {:.2} s session timeout (target: < 3 s end to end, {})",
        offers_at.as_secs_f64(),
        SESSION.as_secs_f64(),
        if offers_at < Duration::from_secs(3) {
            "met"
        } else {
            "MISSED"
        }
    );
    println!(
        "  agents re-registered (since the kill): first {:.2} s, p50 {:.2} s, p90 {:.2} s, last {:.2} s",
        back.first().copied().unwrap_or_default().as_secs_f64(),
        pct(&back, 0.5).as_secs_f64(),
        pct(&back, 0.9).as_secs_f64(),
        back.last().copied().unwrap_or_default().as_secs_f64()
    );
    let expected = per_agent * agents;
    println!(
        "  tasks known to the new leader: {tasks_after} of {expected} ({})",
        if tasks_after == expected {
            "none lost"
        } else {
            "SOME LOST"
        }
    );
    if tasks_after != expected {
        bail!("the new leader knows {tasks_after} of the {expected} running tasks");
    }
    println!("  reference: Mesos' default ZooKeeper session timeout alone is 10 s");
    drop(cluster);
    drop(zk);
    Ok(())
}

/// A count from the environment (`STRATA_BENCH_AGENTS` …), else `default`.
fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("invalid {name}={v:?}")),
        Err(_) => Ok(default),
    }
}

/// `cargo xtask bench master`: a standalone master, 10,000 simulated agents (real RPC, in this
/// process) and frameworks launching `tasks` tasks; launches/s, offer -> TASK_RUNNING, the
/// master's RSS and `GET /state` with everything live, beside the same with no tasks.
fn master(tasks: usize) -> Result<()> {
    use strata_tests::master_bench::{run, Options, Rss, StateTiming};
    let opts = Options {
        tasks,
        agents: env_count("STRATA_BENCH_AGENTS", 10_000)?,
        frameworks: env_count("STRATA_BENCH_FRAMEWORKS", 10)?,
        agent_resources: "cpus:24;mem:4096;disk:4096;ports:[31000-32000]".into(),
        task_resources: "cpus:0.1;mem:32".into(),
        timeout: Duration::from_secs(env_count("STRATA_BENCH_TIMEOUT_SECS", 600)? as u64),
    };
    // Other work on the machine shares the CPUs with the master: say how much there was.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: String = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let started = Instant::now();
    let r = run(&bin_dir()?, &opts)?;
    let mb = |r: Rss| {
        format!(
            "{:.1} MB (peak {:.1} MB)",
            r.rss_kb as f64 / 1024.0,
            r.hwm_kb as f64 / 1024.0
        )
    };
    let state = |t: &StateTiming| {
        format!(
            "p50 {} (min {}, max {}) of {}, {:.1} MB",
            ms(pct(&t.times, 0.5)),
            ms(t.times.first().copied().unwrap_or_default()),
            ms(t.times.last().copied().unwrap_or_default()),
            t.times.len(),
            t.bytes as f64 / 1e6
        )
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "bench master: {} simulated agents ({}, real RPC, one thread in the bench process), {} frameworks, {tasks} tasks ({}, at most {} per offer); standalone release master; {:.1} s in all",
        opts.agents,
        opts.agent_resources,
        opts.frameworks,
        opts.task_resources,
        opts.per_offer(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "  baseline: master RSS just started, no agents: {}",
        mb(r.rss_started)
    );
    println!(
        "  baseline: {} agents registered in {:.2} s; master RSS {}",
        opts.agents,
        r.agents_registered_in.as_secs_f64(),
        mb(r.rss_agents)
    );
    println!(
        "  baseline: GET /state with the agents, no tasks: {}",
        state(&r.state_agents)
    );
    let rate = tasks as f64 / r.launch_wall.as_secs_f64().max(1e-9);
    println!(
        "  launches: {tasks} TASK_RUNNING in {:.2} s from the first accept = {rate:.0} tasks/s (target: 20,000/s, {}); {} offers received, {} declined",
        r.launch_wall.as_secs_f64(),
        verdict(rate >= 20_000.0),
        r.offers_received,
        r.offers_declined
    );
    println!(
        "  offer -> launch (offer received by the framework -> its task's TASK_RUNNING received by it): p50 {} p99 {} max {}",
        ms(pct(&r.offer_to_running, 0.5)),
        ms(pct(&r.offer_to_running, 0.99)),
        ms(r.offer_to_running.last().copied().unwrap_or_default())
    );
    let p = |v: &[Duration]| format!("p50 {} p99 {}", ms(pct(v, 0.5)), ms(pct(v, 0.99)));
    println!(
        "    where it goes: offer -> launch at the agent {}; launch at the agent -> RUNNING at the framework {}",
        p(&r.offer_to_agent),
        p(&r.agent_to_running)
    );
    println!(
        "    round trips answered by the master's state machine: accept {} ({} calls); agent statusUpdate {} ({} calls)",
        p(&r.accept_rtt),
        r.accept_rtt.len(),
        p(&r.update_rtt),
        r.update_rtt.len()
    );
    println!(
        "    CPU from the frameworks' subscribing to the last TASK_RUNNING: master {:.2} s, bench process (agents, frameworks) {:.2} s; this machine has {} CPUs, load average at the start {}",
        r.master_cpu_launch.as_secs_f64(),
        r.bench_cpu_launch.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.trim()
    );
    println!(
        "    master CPU per thread over the same span: {}",
        r.master_threads_launch
            .iter()
            .take(4)
            .map(|(name, cpu)| format!("{name} {:.2} s", cpu.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  master RSS with {} agents and {} live tasks, at rest ({:.1} s after the acknowledgements drained): {} (target: < 500 MB, {})",
        r.state_loaded_agents,
        r.state_loaded_tasks,
        r.rest_after.as_secs_f64(),
        mb(r.rss_loaded),
        verdict(r.rss_loaded.rss_kb < 500 * 1024)
    );
    let loaded = pct(&r.state_loaded.times, 0.5);
    println!(
        "  GET /state with them, at rest (the body read and dropped, as curl -o /dev/null): {} (target: < 200 ms, {})",
        state(&r.state_loaded),
        verdict(loaded < Duration::from_millis(200))
    );
    println!(
        "    the same just after the acknowledgements drained (the frameworks still declining offers): {}",
        state(&r.state_busy)
    );
    println!(
        "  all {tasks} TASK_FINISHED (asked of the agents at once) in {:.2} s = {:.0} tasks/s; master RSS after (acknowledgements drained): {}",
        r.finish_wall.as_secs_f64(),
        tasks as f64 / r.finish_wall.as_secs_f64().max(1e-9),
        mb(r.rss_finished)
    );
    println!(
        "  sanity: {} acknowledgements reached the agents for {} updates; {} updates refused by the master",
        r.acknowledged_at_agents,
        2 * tasks,
        r.update_errors
    );
    println!(
        "  reference: Nomad C1M placed about 3,750 containers/s across 5,000 hosts (5 servers)"
    );
    println!("  reference: Kubernetes scheduler_perf floors are 680-1,100 pods/s");
    println!("  reference: Mesos serves /state for a cluster this size in about 3 s");
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = |default: usize| -> Result<usize> {
        match args.get(1) {
            Some(n) => n.parse().with_context(|| format!("invalid count {n:?}")),
            None => Ok(default),
        }
    };
    match args.first().map(String::as_str) {
        Some("launch") => launch(count(1000)?),
        Some("isolation") => isolation(count(500)?),
        Some("ebpf") => ebpf(count(20)?),
        Some("failover") => failover(count(1000)?, 10_000),
        Some("image") => image(count(100)?),
        Some("master") => master(count(100_000)?),
        Some("image-oci-runtimes") => {
            let layers: Vec<std::path::PathBuf> = args[2..].iter().map(Into::into).collect();
            strata_tests::image_bench::oci_runtimes_child(count(100)?, &layers)
        }
        _ => bail!("usage: strata-bench launch [TASKS] | isolation [RUNS] | ebpf [ROUNDS] | failover [AGENTS] | image [RUNS] | master [TASKS]"),
    }
}
