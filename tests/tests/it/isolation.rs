//! Isolation on this host, end to end: `--isolation` selection and refusal, what a task sees
//! inside its container (private /tmp, fresh /proc, no_new_privs, bounded capabilities, rlimits,
//! read-only mounts), `/monitor/statistics`, `/metrics` and the live update endpoint.
//!
//! Where the outcome depends on the host's cgroup2 controllers (a hybrid host has none; a pure
//! cgroup2 host has them all), each test reads `cgroup.controllers` and asserts what must happen
//! there. Enforcement by the controllers themselves is proven in the VM (`cargo xtask vm-test`).

use crate::read_sandbox;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use strata_schema::{TaskId, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{http_get, http_request};
use strata_tests::{require_root, run_agent, AgentRun, Cluster};

const T: Duration = Duration::from_secs(30);

/// The controllers the host's cgroup2 root offers.
fn controllers() -> Vec<String> {
    let mount = require_root();
    std::fs::read_to_string(mount.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Runs `strata-agent` with `flags` until it exits or 15 s pass (see [`run_agent`]).
fn run(flags: &[&str]) -> (Option<std::process::ExitStatus>, String, AgentRun) {
    let mut run = run_agent(flags, &[], Duration::from_secs(15)).unwrap();
    (run.status, std::mem::take(&mut run.stderr), run)
}

#[test]
fn an_explicit_isolator_that_cannot_work_stops_the_agent() {
    let mount = require_root();
    let (status, stderr, _guard) = run(&["--isolation", "namespaces/pid,cgroups/mem"]);
    if controllers().iter().any(|c| c == "memory") {
        // A host with the memory controller runs it: the agent starts (and is stopped here).
        assert!(status.is_none(), "the agent exited: {status:?}\n{stderr}");
        return;
    }
    let status = status.expect("the agent should refuse to start");
    assert!(!status.success(), "{stderr}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("strata-agent: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let expected = format!(
        "strata-agent: error: cgroups/mem: the memory controller is not available in the cgroup2 \
         hierarchy at {} (controllers: ",
        mount.display()
    );
    assert!(lines[0].starts_with(&expected), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unknown_isolators_and_bad_isolation_flags_are_named() {
    let (status, stderr, _guard) = run(&["--isolation", "cgroups/cpu,posix/cpu"]);
    assert!(!status.expect("refused").success());
    assert!(
        stderr.contains(
            "unknown isolator \"posix/cpu\" (known: auto, none, cgroups/cpu, cgroups/mem"
        ),
        "{stderr}"
    );
    let (status, stderr, _guard) = run(&["--container-ro-mounts", "/no/such/dir"]);
    assert!(!status.expect("refused").success());
    assert!(
        stderr.contains("filesystem/linux: --container-ro-mounts: /no/such/dir does not exist"),
        "{stderr}"
    );
}

/// The agent's /state.
fn agent_state(cluster: &Cluster) -> Value {
    http_get(&cluster.agent(0).addr(), "/state").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_isolates_tasks_with_what_works_here() {
    // A host directory (below /tmp, like the work dir) to be seen read-only in the sandbox.
    let shared = tempfile::tempdir().unwrap();
    std::fs::write(shared.path().join("data.txt"), "shared data\n").unwrap();
    let ro = format!("{}:shared", shared.path().display());
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &[
            "--container-rlimits",
            "nofile=1000:2000,core=0",
            "--container-ro-mounts",
            &ro,
        ],
    )
    .unwrap();

    // /state lists what `auto` chose: everything but the controllers this host lacks.
    let state = agent_state(&cluster);
    let active: Vec<&str> = state["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for name in [
        "namespaces/pid",
        "namespaces/ipc",
        "namespaces/uts",
        "filesystem/linux",
        "linux/capabilities",
        "linux/nnp",
        "posix/rlimits",
    ] {
        assert!(active.contains(&name), "{name} missing from {active:?}");
    }
    let available = controllers();
    for (name, controller) in [
        ("cgroups/cpu", "cpu"),
        ("cgroups/mem", "memory"),
        ("cgroups/pids", "pids"),
    ] {
        assert_eq!(
            active.contains(&name),
            available.iter().any(|c| c == controller),
            "{name} with controllers {available:?}"
        );
    }

    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "iso")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    let probe = format!("strata-iso-probe-{}", std::process::id());
    let script = format!(
        "grep NoNewPrivs /proc/self/status; grep CapBnd /proc/self/status; \
         grep CapEff /proc/self/status; \
         echo nofile $(ulimit -Sn) $(ulimit -Hn) core $(ulimit -c); \
         grep ' /tmp ' /proc/self/mountinfo | grep -q ' - tmpfs ' && echo tmp-is-tmpfs; \
         touch /tmp/{probe} && echo tmp-writable; \
         echo procs $(ls /proc | grep -c '^[0-9]'); \
         tr '\\0' ' ' < /proc/1/cmdline; echo; \
         echo sandbox > \"$MESOS_SANDBOX/written\" && echo sandbox-writable; \
         cat shared/data.txt; touch shared/x 2>/dev/null || echo shared-read-only"
    );
    fw.launch(
        &offer,
        vec![task("probe", &offer.agent_id, "cpus:0.5;mem:64", &script)],
    )
    .await
    .unwrap();
    let s = fw.wait_terminal("probe", T).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(&cluster, 0, &fw_id, "probe", "stdout");
    let err = read_sandbox(&cluster, 0, &fw_id, "probe", "stderr");
    assert_eq!(s.state, TaskState::Finished, "{s:?}\n{out}\n{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "NoNewPrivs:\t1", "{out}");
    assert_eq!(
        lines[1], "CapBnd:\t00000000a80425fb",
        "Docker's default set: {out}"
    );
    assert_eq!(lines[2], "CapEff:\t00000000a80425fb", "a root task: {out}");
    assert_eq!(lines[3], "nofile 1000 2000 core 0", "{out}");
    assert_eq!(lines[4], "tmp-is-tmpfs", "{out}");
    assert_eq!(lines[5], "tmp-writable", "{out}");
    assert!(
        !Path::new("/tmp").join(&probe).exists(),
        "the task's /tmp is private"
    );
    let procs: u32 = lines[6].strip_prefix("procs ").unwrap().parse().unwrap();
    assert!(procs <= 5, "a fresh /proc shows the container only: {out}");
    assert!(
        lines[7].contains("supervise"),
        "pid 1 is the container's init: {out}"
    );
    assert_eq!(lines[8], "sandbox-writable", "{out}");
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "probe", "written"),
        "sandbox\n",
        "the sandbox below the host's /tmp stays reachable"
    );
    assert_eq!(lines[9], "shared data", "{out}");
    assert_eq!(lines[10], "shared-read-only", "{out}");
    assert!(!shared.path().join("x").exists());
}

/// The /monitor/statistics entry of `task`, if listed.
fn statistics_of(cluster: &Cluster, task: &str) -> Option<Value> {
    let all = http_get(&cluster.agent(0).addr(), "/monitor/statistics").unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["executor_id"] == task)
        .cloned()
}

/// Polls until `pred` holds for the task's statistics.
async fn wait_statistics(cluster: &Cluster, task: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        if let Some(entry) = statistics_of(cluster, task) {
            if pred(&entry["statistics"]) {
                return entry;
            }
        }
        assert!(
            Instant::now() < deadline,
            "statistics of {task} never matched: {:?}\n{}",
            statistics_of(cluster, task),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_metrics_follow_a_working_task() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "stats")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task(
            "hog",
            &offer.agent_id,
            "cpus:0.5;mem:64",
            "while :; do :; done",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("hog", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();

    let first = wait_statistics(&cluster, "hog", |s| {
        s["cpus_user_time_secs"].as_f64().is_some_and(|t| t > 0.0)
    })
    .await;
    assert_eq!(first["framework_id"], fw_id.as_str());
    assert_eq!(first["source"], "hog");
    assert!(
        first["executor_name"]
            .as_str()
            .unwrap()
            .starts_with("Command Executor (Task: hog)"),
        "{first}"
    );
    let stats = &first["statistics"];
    assert!(stats["timestamp"].as_f64().unwrap() > 1e9, "{stats}");
    assert_eq!(stats["cpus_limit"], 0.5);
    assert_eq!(stats["mem_limit_bytes"], 64 << 20);
    assert!(
        stats["processes"].as_u64().unwrap() >= 2,
        "init and the shell: {stats}"
    );
    assert!(stats["threads"].as_u64().unwrap() >= 2, "{stats}");
    assert!(stats["cpus_system_time_secs"].is_number(), "{stats}");
    // Figures of controllers this host lacks are absent, never zero.
    let has = |c: &str| controllers().iter().any(|x| x == c);
    assert_eq!(
        stats.get("mem_total_bytes").is_some(),
        has("memory"),
        "{stats}"
    );
    assert_eq!(
        stats.get("cpus_nr_periods").is_some(),
        has("cpu"),
        "{stats}"
    );

    // CPU time grows as the task works.
    let t1 = stats["cpus_user_time_secs"].as_f64().unwrap()
        + stats["cpus_system_time_secs"].as_f64().unwrap();
    let second = wait_statistics(&cluster, "hog", |s| {
        s["cpus_user_time_secs"].as_f64().unwrap_or(0.0)
            + s["cpus_system_time_secs"].as_f64().unwrap_or(0.0)
            > t1 + 0.2
    })
    .await;
    assert!(second["statistics"]["timestamp"].as_f64() > stats["timestamp"].as_f64());

    // The same figures for Prometheus.
    let (code, metrics) = http_request(&cluster.agent(0).addr(), "GET", "/metrics").unwrap();
    assert_eq!(code, 200, "{metrics}");
    let labels = format!("{{task_id=\"hog\",framework_id=\"{fw_id}\"}}");
    for family in [
        "strata_container_cpu_user_seconds_total",
        "strata_container_cpu_system_seconds_total",
        "strata_container_cpu_limit",
        "strata_container_memory_limit_bytes",
        "strata_container_processes",
    ] {
        assert!(
            metrics.contains(&format!("# TYPE {family} ")),
            "{family}: {metrics}"
        );
        assert!(
            metrics.contains(&format!("{family}{labels} ")),
            "{family}: {metrics}"
        );
    }
    assert!(metrics.contains("strata_agent_isolator_active{isolator=\"namespaces/pid\"} 1"));
    assert!(metrics.contains("strata_agent_containers_running 1"));

    // A task that is gone is not listed.
    fw.driver
        .kill(TaskId::new("hog").unwrap(), Some(offer.agent_id.clone()))
        .await
        .unwrap();
    fw.wait_terminal("hog", T).await.unwrap();
    let deadline = Instant::now() + T;
    while statistics_of(&cluster, "hog").is_some() {
        assert!(Instant::now() < deadline, "hog is still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// POSTs to the update endpoint; returns the code and the JSON body.
fn post_update(cluster: &Cluster, query: &str) -> (u16, Value) {
    let (code, body) = http_request(
        &cluster.agent(0).addr(),
        "POST",
        &format!("/containers/update{query}"),
    )
    .unwrap();
    let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (code, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_updates_change_a_running_containers_resources() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "update")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    let a = offer.agent_id.clone();
    // Ignores SIGTERM, so that it stays "being killed" for the kill grace period (2 s).
    fw.launch(
        &offer,
        vec![task(
            "sleeper",
            &a,
            "cpus:1;mem:64",
            "trap '' TERM; sleep 600 & wait",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("sleeper", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();

    let error = |v: &Value| v["error"].as_str().unwrap_or_default().to_string();
    let (code, body) = post_update(&cluster, "?resources=cpus:1");
    assert_eq!(
        (code, error(&body).as_str()),
        (400, "the task_id parameter is missing")
    );
    let (code, body) = post_update(&cluster, "?task_id=sleeper");
    assert_eq!(code, 400, "{body}");
    assert!(
        error(&body).starts_with("the resources parameter is missing"),
        "{body}"
    );
    let (code, body) = post_update(&cluster, "?task_id=sleeper&resources=cpus:abc");
    assert_eq!(code, 400, "{body}");
    assert!(error(&body).contains("cpus:abc"), "{body}");
    let (code, body) = post_update(&cluster, "?task_id=nope&resources=cpus:1");
    assert_eq!(
        (code, error(&body).as_str()),
        (404, "no task nope on this agent")
    );
    let (code, body) = post_update(
        &cluster,
        "?task_id=sleeper&framework_id=someone-else&resources=cpus:1",
    );
    assert_eq!(code, 404, "{body}");
    assert_eq!(
        error(&body),
        "no task sleeper of framework someone-else on this agent"
    );
    let (code, _) = http_request(&cluster.agent(0).addr(), "GET", "/containers/update").unwrap();
    assert_eq!(code, 405);

    // Success: the named resources change, the others stay; the isolators that work here apply
    // them (on a host with controllers, cgroups/cpu and cgroups/mem rewrite cpu.weight and
    // memory.max), and the container's statistics show the new limits.
    let (code, body) = post_update(
        &cluster,
        &format!("?task_id=sleeper&framework_id={fw_id}&resources=cpus:0.25%3Bmem:32"),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["task_id"], "sleeper");
    assert_eq!(body["resources"]["cpus"], 0.25);
    assert_eq!(body["resources"]["mem"], 32.0);
    let entry = wait_statistics(&cluster, "sleeper", |s| s["cpus_limit"] == 0.25).await;
    assert_eq!(entry["statistics"]["mem_limit_bytes"], 32 << 20);
    let (code, body) = post_update(&cluster, "?task_id=sleeper&resources=cpus:0.5");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["resources"]["cpus"], 0.5);
    assert_eq!(
        body["resources"]["mem"], 32.0,
        "mem was not named: it stays"
    );
    if controllers().iter().any(|c| c == "cpu") {
        let cg = std::fs::read_dir(cluster.agent_cgroup(0))
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .unwrap()
            .path();
        assert_eq!(
            std::fs::read_to_string(cg.join("cpu.weight"))
                .unwrap()
                .trim(),
            "20"
        );
    }

    // A container being killed cannot be updated.
    fw.driver
        .kill(TaskId::new("sleeper").unwrap(), Some(a))
        .await
        .unwrap();
    let deadline = Instant::now() + T;
    let (code, body) = loop {
        let (code, body) = post_update(&cluster, "?task_id=sleeper&resources=cpus:1");
        if code != 200 {
            break (code, body);
        }
        assert!(Instant::now() < deadline, "the update kept succeeding");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        error(&body),
        "task sleeper is being killed: only a running container can be updated"
    );
    fw.wait_terminal("sleeper", T).await.unwrap();
}
