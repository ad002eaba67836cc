//! Agent checkpointing and recovery: `kill -9` of an agent and a restart on the same work dir,
//! unacknowledged updates resent, exits while the agent is down, `--recover=cleanup`, and
//! damaged checkpoints refused.

use crate::sandbox_file;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata_schema::{TaskState, TaskStatus};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{http_get, Cluster};

const T: Duration = Duration::from_secs(30);

fn agent_state(cluster: &Cluster) -> Value {
    http_get(&cluster.agent(0).addr(), "/state").unwrap()
}

/// Waits until the agent's `/state` satisfies `pred`.
fn wait_agent(cluster: &Cluster, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    loop {
        if let Ok(state) = http_get(&cluster.agent(0).addr(), "/state") {
            if pred(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "the agent's state did not reach {what} in {T:?}: {state}\n{}",
                cluster.logs()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not answer\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every update the agent sent was acknowledged (so a `kill -9` now loses nothing
/// in flight, and nothing is resent).
fn wait_all_acknowledged(cluster: &Cluster) {
    wait_agent(cluster, "no pending updates", |s| {
        s["pending_status_updates"] == 0
    });
}

/// Task id → container id of the agent's live containers, and each task's state.
fn containers(state: &Value) -> HashMap<String, (String, String)> {
    let mut out = HashMap::new();
    for fw in state["frameworks"].as_array().into_iter().flatten() {
        for e in fw["executors"].as_array().into_iter().flatten() {
            out.insert(
                e["id"].as_str().unwrap_or_default().to_string(),
                (
                    e["container"].as_str().unwrap_or_default().to_string(),
                    e["tasks"][0]["state"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ),
            );
        }
    }
    out
}

/// Handles the framework's events for `time` (acknowledging updates unless it holds them).
async fn drain(fw: &mut TestFramework, time: Duration) {
    let deadline = tokio::time::Instant::now() + time;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return;
        }
        if fw.step(left).await.is_err() {
            tokio::time::sleep_until(deadline).await;
        }
    }
}

fn updates_of<'a>(fw: &'a TestFramework, task: &str) -> Vec<&'a TaskStatus> {
    fw.updates
        .iter()
        .filter(|s| s.task_id.as_str() == task)
        .collect()
}

/// The framework got exactly `states` for `task`, each once (distinct uuids).
fn assert_exactly_once(fw: &TestFramework, task: &str, states: &[TaskState], logs: &str) {
    let updates = updates_of(fw, task);
    assert_eq!(fw.states(task), states, "task {task}: {updates:#?}\n{logs}");
    let mut uuids: Vec<_> = updates.iter().map(|s| s.uuid).collect();
    uuids.sort_by_key(|u| u.map(|u| u.0));
    uuids.dedup();
    assert_eq!(uuids.len(), states.len(), "task {task}: {updates:#?}");
}

/// Every process of the containers before the restart is still in them.
fn assert_kept_running(cluster: &Cluster, before: &[i32]) {
    let now = cluster.container_pids(0);
    let cmdlines: Vec<String> = now
        .iter()
        .map(|p| {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            format!("{p}: {}", String::from_utf8_lossy(&cmd).replace('\0', " "))
        })
        .collect();
    for pid in before {
        assert!(
            now.contains(pid),
            "process {pid} of a task is gone after the restart; the containers hold {cmdlines:?}"
        );
    }
}

/// The checkpoint dirs of the agent's containers.
fn container_dirs(cluster: &Cluster) -> Vec<PathBuf> {
    let dir = cluster.agents[0].0.work_dir.join("meta/containers");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|st| {
            !st.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_and_restart_keeps_tasks_and_delivers_each_update_once() {
    let mut cluster = Cluster::start("cpus:4;mem:1024").unwrap();
    let agent_id = cluster.master_state().unwrap()["slaves"][0]["id"].clone();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:2;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![
            task("one", &a, "cpus:1;mem:64", "sleep 1000"),
            task("two", &a, "cpus:1;mem:64", "sleep 1000"),
        ],
    )
    .await
    .unwrap();
    for t in ["one", "two"] {
        fw.wait_for(t, T, |s| s == TaskState::Running)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    wait_all_acknowledged(&cluster);
    let before = containers(&agent_state(&cluster));
    assert_eq!(before.len(), 2, "{before:?}");
    let mut pids = cluster.container_pids(0);
    pids.sort();
    assert!(!pids.is_empty());

    cluster.agent_mut(0).kill();
    cluster.start_agent(0).unwrap();
    cluster
        .wait_state(T, |s| {
            s["slaves"][0]["active"] == true && s["slaves"][0]["id"] == agent_id
        })
        .unwrap();
    let after = wait_agent(&cluster, "connected", |s| s["connected"] == true);
    // Same tasks in the same containers, still running, same processes.
    assert_eq!(containers(&after), before);
    for (task, (_, state)) in &before {
        assert_eq!(state, "TASK_RUNNING", "{task}");
    }
    assert_kept_running(&cluster, &pids);
    assert_eq!(
        cluster.master_state().unwrap()["slaves"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Several retry intervals (1 s here): nothing acknowledged comes again.
    drain(&mut fw, Duration::from_secs(3)).await;
    let logs = cluster.logs();
    for t in ["one", "two"] {
        assert_exactly_once(&fw, t, &[TaskState::Starting, TaskState::Running], &logs);
    }
    // The restarted agent still controls them.
    fw.driver
        .kill(strata_schema::TaskId::new("one").unwrap(), Some(a))
        .await
        .unwrap();
    let s = fw.wait_terminal("one", T).await.unwrap();
    assert_eq!(s.state, TaskState::Killed, "{s:?}\n{}", cluster.logs());
    drain(&mut fw, Duration::from_secs(2)).await;
    assert_exactly_once(
        &fw,
        "one",
        &[TaskState::Starting, TaskState::Running, TaskState::Killed],
        &cluster.logs(),
    );
    assert_exactly_once(&fw, "two", &[TaskState::Starting, TaskState::Running], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unacknowledged_update_is_resent_after_kill_9_and_restart() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    fw.hold_acks = true;
    let offer = fw.offer_with("cpus:1;mem:64", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("held", &a, "cpus:1;mem:64", "sleep 1000")],
    )
    .await
    .unwrap();
    let starting = fw
        .wait_for("held", T, |s| s == TaskState::Starting)
        .await
        .unwrap();
    // RUNNING is generated (and checkpointed) behind the unacknowledged STARTING.
    wait_agent(&cluster, "two pending updates", |s| {
        s["pending_status_updates"] == 2
    });

    cluster.agent_mut(0).kill();
    let seen = fw.updates.len();
    cluster.start_agent(0).unwrap();
    // STARTING again, with its uuid, and nothing else before it is acknowledged.
    let deadline = tokio::time::Instant::now() + T;
    while fw.updates.len() == seen {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        fw.step(left)
            .await
            .unwrap_or_else(|e| panic!("no resend after the restart: {e}\n{}", cluster.logs()));
    }
    let resent = fw.updates[seen].clone();
    assert_eq!(resent.state, TaskState::Starting, "{resent:?}");
    assert_eq!(resent.uuid, starting.uuid, "the same update, not a new one");
    drain(&mut fw, Duration::from_millis(1500)).await;
    assert!(
        fw.updates[seen..]
            .iter()
            .all(|s| s.state == TaskState::Starting && s.uuid == starting.uuid),
        "only STARTING until it is acknowledged: {:#?}",
        &fw.updates[seen..]
    );
    // Acknowledged: RUNNING follows, and then nothing is pending any more.
    fw.hold_acks = false;
    fw.acknowledge_held().await.unwrap();
    let running = fw
        .wait_for("held", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    wait_all_acknowledged(&cluster);
    drain(&mut fw, Duration::from_secs(3)).await;
    let updates = updates_of(&fw, "held");
    // Each uuid always with one state; STARTING delivered again, RUNNING once.
    let mut by_uuid = HashMap::new();
    for s in &updates {
        let state = by_uuid.entry(s.uuid).or_insert(s.state);
        assert_eq!(*state, s.state, "one uuid, two states: {updates:#?}");
    }
    assert_eq!(by_uuid.len(), 2, "{updates:#?}");
    assert!(updates.iter().filter(|s| s.uuid == starting.uuid).count() >= 2);
    assert_eq!(
        updates.iter().filter(|s| s.uuid == running.uuid).count(),
        1,
        "{updates:#?}"
    );
    assert_ne!(running.uuid, starting.uuid);
    assert_eq!(updates.last().unwrap().state, TaskState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_ends_while_its_agent_is_down_is_reported_after_recovery() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:2;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    // Each waits in its sandbox for a file the test creates while the agent is down.
    let wait = "while [ ! -e go ]; do sleep 0.05; done;";
    fw.launch(
        &offer,
        vec![
            task("done", &a, "cpus:1;mem:64", &format!("{wait} exit 0")),
            task("failed", &a, "cpus:1;mem:64", &format!("{wait} exit 3")),
        ],
    )
    .await
    .unwrap();
    for t in ["done", "failed"] {
        fw.wait_for(t, T, |s| s == TaskState::Running)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    wait_all_acknowledged(&cluster);
    let fw_id = fw.driver.framework_id().to_string();

    cluster.agent_mut(0).kill();
    for t in ["done", "failed"] {
        let stdout = sandbox_file(&cluster, 0, &fw_id, t, "stdout").unwrap();
        std::fs::write(stdout.parent().unwrap().join("go"), b"").unwrap();
    }
    // Both supervisors write their task's status and exit while no agent runs.
    let deadline = Instant::now() + T;
    while container_dirs(&cluster)
        .iter()
        .any(|d| !d.join("status.json").exists())
    {
        assert!(Instant::now() < deadline, "the tasks did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.start_agent(0).unwrap();
    let done = fw.wait_terminal("done", T).await.unwrap();
    let failed = fw.wait_terminal("failed", T).await.unwrap();
    assert_eq!(
        done.state,
        TaskState::Finished,
        "{done:?}\n{}",
        cluster.logs()
    );
    assert_eq!(done.exit_code, Some(0));
    assert_eq!(failed.state, TaskState::Failed, "{failed:?}");
    assert_eq!(failed.exit_code, Some(3));
    assert!(failed.message.contains("status 3"), "{}", failed.message);
    drain(&mut fw, Duration::from_secs(3)).await;
    let logs = cluster.logs();
    assert_exactly_once(
        &fw,
        "done",
        &[TaskState::Starting, TaskState::Running, TaskState::Finished],
        &logs,
    );
    assert_exactly_once(
        &fw,
        "failed",
        &[TaskState::Starting, TaskState::Running, TaskState::Failed],
        &logs,
    );
    // Acknowledged: their checkpoints go, and the master freed their resources.
    let deadline = Instant::now() + T;
    while !container_dirs(&cluster).is_empty() {
        assert!(
            Instant::now() < deadline,
            "checkpoints left: {:?}",
            container_dirs(&cluster)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
}

/// Runs `strata-agent --recover=cleanup` for agent 0's work dir and cgroups; returns its exit
/// status and stderr.
fn run_cleanup(cluster: &Cluster) -> (std::process::ExitStatus, String) {
    let spec = &cluster.agents[0].0;
    let mut child = std::process::Command::new(strata_tests::bin("strata-agent"))
        .args(["--recover=cleanup", "--master", &cluster.master.addr()])
        .args(["--cgroups-root", &spec.cgroups_root, "--work-dir"])
        .arg(&spec.work_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("strata-agent --recover=cleanup did not exit within {T:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status, stderr)
}

fn supervisor_pids(cluster: &Cluster) -> Vec<i32> {
    container_dirs(cluster)
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("supervisor.pid")).ok())
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_cleanup_kills_what_was_left_and_exits_0() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:2;mem:128", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![
            task("left1", &a, "cpus:1;mem:64", "sleep 1000 & sleep 1000"),
            task("left2", &a, "cpus:1;mem:64", "sleep 1000"),
        ],
    )
    .await
    .unwrap();
    for t in ["left1", "left2"] {
        fw.wait_for(t, T, |s| s == TaskState::Running)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    }
    wait_all_acknowledged(&cluster);
    let pids = cluster.container_pids(0);
    let supervisors = supervisor_pids(&cluster);
    assert_eq!(supervisors.len(), 2);
    assert!(pids.len() >= 3, "{pids:?}");

    cluster.agent_mut(0).kill();
    let (status, stderr) = run_cleanup(&cluster);
    assert!(status.success(), "{status:?}\n{stderr}");
    for t in ["left1", "left2"] {
        assert!(
            stderr.contains(&format!("task {t} of framework")),
            "the log names what was killed:\n{stderr}"
        );
    }
    assert!(stderr.contains("killed the container"), "{stderr}");
    for pid in pids.iter().chain(&supervisors) {
        assert!(!alive(*pid), "process {pid} survived the clean-up");
    }
    assert!(
        container_dirs(&cluster).is_empty(),
        "{:?}",
        container_dirs(&cluster)
    );
    let children = std::fs::read_dir(cluster.agent_cgroup(0))
        .map(|e| e.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    assert_eq!(children, 0, "container cgroups are removed");
    let work_dir = cluster.agents[0].0.work_dir.clone();
    assert!(
        work_dir.join("meta/agent_id").exists(),
        "the agent id is kept"
    );
    // Nothing left to clean: a second run is fine too.
    let (status, stderr) = run_cleanup(&cluster);
    assert!(status.success(), "{stderr}");

    // The next agent re-registers as itself with no tasks: the master reports them lost.
    cluster.start_agent(0).unwrap();
    for t in ["left1", "left2"] {
        let s = fw.wait_terminal(t, T).await.unwrap();
        assert!(
            matches!(s.state, TaskState::Lost | TaskState::Gone),
            "{s:?}\n{}",
            cluster.logs()
        );
    }
    assert!(containers(&agent_state(&cluster)).is_empty());
}

/// Starts agent 0, expecting it to refuse: returns its log.
fn refused_start(cluster: &mut Cluster) -> String {
    assert!(
        cluster.start_agent(0).is_err(),
        "the agent started on a damaged checkpoint\n{}",
        cluster.logs()
    );
    let status = cluster.agent_mut(0).child.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    assert_eq!(
        status.code(),
        Some(1),
        "an error exit, not a crash: {status:?}"
    );
    let log = std::fs::read_to_string(&cluster.agent(0).log).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    log
}

fn the_error_line(log: &str) -> &str {
    log.lines()
        .find(|l| l.starts_with("strata-agent: error: "))
        .unwrap_or_else(|| panic!("no error line in the log:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_is_refused_naming_the_file() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:64", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("kept", &a, "cpus:1;mem:64", "sleep 1000")],
    )
    .await
    .unwrap();
    fw.wait_for("kept", T, |s| s == TaskState::Running)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    wait_all_acknowledged(&cluster);
    let pids = cluster.container_pids(0);
    cluster.agent_mut(0).kill();
    let [dir] = container_dirs(&cluster).try_into().unwrap();
    let dir: PathBuf = dir;

    // A truncated task.json.
    let task_json = dir.join("task.json");
    let good_task = std::fs::read(&task_json).unwrap();
    std::fs::write(&task_json, &good_task[..good_task.len() / 2]).unwrap();
    let log = refused_start(&mut cluster);
    let line = the_error_line(&log);
    assert!(
        line.contains(&format!("{}: invalid JSON", task_json.display())),
        "{line}"
    );
    assert!(line.contains("--recover=cleanup"), "{line}");
    std::fs::write(&task_json, &good_task).unwrap();

    // A corrupt record in the update log.
    let updates = dir.join("task.updates");
    let good_log = std::fs::read(&updates).unwrap();
    corrupt_first_record(&updates, &good_log);
    let log = refused_start(&mut cluster);
    let line = the_error_line(&log);
    assert!(
        line.contains(&format!(
            "{}: record 1 (at byte 0): checksum mismatch",
            updates.display()
        )),
        "{line}"
    );
    assert!(line.contains("--recover=cleanup"), "{line}");
    std::fs::write(&updates, &good_log).unwrap();

    // Repaired: the agent starts and still has its task, running.
    cluster.start_agent(0).unwrap();
    let state = wait_agent(&cluster, "connected", |s| s["connected"] == true);
    let found = containers(&state);
    assert_eq!(found["kept"].1, "TASK_RUNNING", "{state}");
    assert_kept_running(&cluster, &pids);
    drop(fw);
}

/// Flips one character inside the JSON of the log's first record.
fn corrupt_first_record(path: &Path, good: &[u8]) {
    let mut bad = good.to_vec();
    let i = 9 + bad[9..].iter().position(|b| *b == b'T').unwrap();
    bad[i] = b't';
    std::fs::write(path, bad).unwrap();
}
