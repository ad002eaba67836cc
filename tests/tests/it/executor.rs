//! Custom executors (a pymesos `MesosExecutorDriver`, `tests/python/executor.py`) through the
//! v1 executor API, and LAUNCH_GROUP with the default executor.

use crate::read_sandbox;
use std::time::Duration;
use strata_client::Operation;
use strata_schema::{
    AgentId, CommandInfo, ExecutorId, ExecutorInfo, ExecutorKind, Resources, TaskInfo, TaskState,
};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{python, Cluster};

const T: Duration = Duration::from_secs(60);
const EXECUTOR: &str = "pyexec";

fn custom_executor(id: &str) -> ExecutorInfo {
    let python = python::pymesos_python().expect("the pymesos environment");
    let script = python::scripts_dir().join("executor.py");
    let mut command = CommandInfo::shell(format!("exec {} {}", python.display(), script.display()));
    command
        .environment
        .push(("PYTHONUNBUFFERED".to_string(), "1".to_string()));
    ExecutorInfo {
        kind: ExecutorKind::Custom,
        executor_id: ExecutorId::new(id).unwrap(),
        name: "pymesos test executor".to_string(),
        command,
        resources: Resources::parse("cpus:0.2;mem:128").unwrap(),
        container: None,
        data: Vec::new(),
    }
}

/// A task for the test executor; `what` is its data (finish, hang, exit).
fn executor_task(id: &str, agent: &AgentId, executor: &ExecutorInfo, what: &str) -> TaskInfo {
    let mut t = task(id, agent, "cpus:0.1;mem:32", "");
    t.command = CommandInfo::default();
    t.executor = Some(Box::new(executor.clone()));
    t.data = what.as_bytes().to_vec();
    t
}

fn pid_alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'))
}

fn executor_log(cluster: &Cluster, fw: &TestFramework) -> String {
    let id = fw.driver.framework_id().to_string();
    format!(
        "executor stdout:\n{}\nexecutor stderr:\n{}\n{}",
        read_sandbox(cluster, 0, &id, EXECUTOR, "stdout"),
        read_sandbox(cluster, 0, &id, EXECUTOR, "stderr"),
        cluster.logs()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_runs_tasks_relays_messages_and_shuts_down() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "executor")
        .await
        .unwrap();
    let executor = custom_executor(EXECUTOR);
    let offer = fw.offer_with("cpus:1;mem:512", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(&offer, vec![executor_task("t1", &a, &executor, "finish")])
        .await
        .unwrap();
    let t1 = fw.wait_terminal("t1", T).await.unwrap();
    assert_eq!(
        t1.state,
        TaskState::Finished,
        "{t1:?}\n{}",
        executor_log(&cluster, &fw)
    );
    assert_eq!(t1.message, "done by the executor");
    assert_eq!(fw.states("t1"), [TaskState::Running, TaskState::Finished]);
    // The framework's acknowledgements reach the executor (ACKNOWLEDGED), one per update.
    let fw_id = fw.driver.framework_id().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let acked = || {
        read_sandbox(&cluster, 0, &fw_id, EXECUTOR, "stdout")
            .matches("acknowledged t1")
            .count()
    };
    while acked() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(acked(), 2, "{}", executor_log(&cluster, &fw));

    // The executor's resources stay charged while it runs: the next offer lacks them.
    let offer = fw.offer_with("cpus:0.5;mem:128", T).await.unwrap();
    assert!(
        !offer
            .resources
            .contains(&Resources::parse("cpus:1.9").unwrap()),
        "{:?}",
        offer.resources
    );
    // A second task and a hanging one go to the same, running executor.
    fw.launch(
        &offer,
        vec![
            executor_task("t2", &a, &executor, "finish"),
            executor_task("hang", &a, &executor, "hang"),
        ],
    )
    .await
    .unwrap();
    let t2 = fw.wait_terminal("t2", T).await.unwrap();
    assert_eq!(t2.state, TaskState::Finished, "{t2:?}");
    fw.wait_for("hang", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    // The agent's /state lists the executor with its running task.
    let state = strata_tests::http_get(&cluster.agent(0).addr(), "/state").unwrap();
    let executors = state["frameworks"][0]["executors"]
        .as_array()
        .unwrap()
        .clone();
    let entry = executors
        .iter()
        .find(|e| e["id"] == EXECUTOR)
        .unwrap_or_else(|| panic!("no executor entry in {state}"));
    assert_eq!(entry["type"], "CUSTOM");
    assert_eq!(entry["subscribed"], true);
    assert_eq!(entry["tasks"][0]["id"], "hang", "{entry}");
    assert_eq!(entry["tasks"][0]["executor_id"], EXECUTOR);
    // An update for a task the executor does not have is refused, naming it.
    let update = serde_json::json!({
        "type": "UPDATE",
        "framework_id": {"value": fw_id},
        "executor_id": {"value": EXECUTOR},
        "update": {"status": {
            "task_id": {"value": "nope"},
            "state": "TASK_RUNNING",
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA==",
        }},
    });
    let (code, body) = strata_tests::http_send(
        &cluster.agent(0).addr(),
        "POST",
        "/api/v1/executor",
        &update,
    )
    .unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("task nope"), "{body}");
    let stdout = read_sandbox(&cluster, 0, &fw_id, EXECUTOR, "stdout");
    assert_eq!(
        stdout.matches("registered").count(),
        1,
        "one executor ran all the tasks:\n{stdout}"
    );
    // KILL goes to the executor, which answers TASK_KILLED.
    fw.driver
        .kill("hang".parse().unwrap(), Some(a.clone()))
        .await
        .unwrap();
    let hang = fw.wait_terminal("hang", T).await.unwrap();
    assert_eq!(hang.state, TaskState::Killed, "{hang:?}");
    assert_eq!(hang.message, "killed by the executor");

    // A framework message to the executor comes back through sendFrameworkMessage.
    let exec_id = ExecutorId::new(EXECUTOR).unwrap();
    fw.driver
        .message(a.clone(), exec_id.clone(), b"ping".to_vec())
        .await
        .unwrap();
    fw.wait_until("echoed message", T, |f| !f.messages.is_empty())
        .await
        .unwrap();
    assert_eq!(
        fw.messages[0],
        (a.clone(), exec_id.clone(), b"echo:ping".to_vec())
    );

    // SHUTDOWN: the executor goes, its processes die, the framework hears FAILURE.
    let pids = cluster.container_pids(0);
    assert!(!pids.is_empty());
    fw.driver
        .shutdown(a.clone(), exec_id.clone())
        .await
        .unwrap();
    fw.wait_until("executor failure", T, |f| !f.failures.is_empty())
        .await
        .unwrap();
    assert_eq!(fw.failures[0].0, a);
    assert_eq!(fw.failures[0].1.as_ref(), Some(&exec_id));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        assert!(!pid_alive(*pid), "executor process {pid} still alive");
    }
    let stdout = read_sandbox(&cluster, 0, &fw_id, EXECUTOR, "stdout");
    assert!(stdout.contains("shutdown"), "{stdout}");
    // Everything is released in the master.
    cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_exit_fails_its_unfinished_tasks() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "executor")
        .await
        .unwrap();
    let executor = custom_executor(EXECUTOR);
    let offer = fw.offer_with("cpus:1;mem:512", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(&offer, vec![executor_task("doomed", &a, &executor, "exit")])
        .await
        .unwrap();
    let doomed = fw.wait_terminal("doomed", T).await.unwrap();
    assert_eq!(
        doomed.state,
        TaskState::Failed,
        "{doomed:?}\n{}",
        executor_log(&cluster, &fw)
    );
    assert_eq!(doomed.reason.as_deref(), Some("REASON_EXECUTOR_TERMINATED"));
    assert_eq!(fw.states("doomed"), [TaskState::Running, TaskState::Failed]);
    fw.wait_until("executor failure", T, |f| !f.failures.is_empty())
        .await
        .unwrap();
    let (agent, executor_id, status) = fw.failures[0].clone();
    assert_eq!(agent, a);
    assert_eq!(executor_id.unwrap().as_str(), EXECUTOR);
    assert_eq!(status, Some(3 << 8), "exit status 3, as a wait status");
    cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_api_refuses_bad_calls() {
    let cluster = Cluster::start("cpus:1;mem:256").unwrap();
    let addr = cluster.agent(0).addr();
    let call = serde_json::json!({
        "type": "SUBSCRIBE",
        "framework_id": {"value": "nope"},
        "executor_id": {"value": "nope"},
        "subscribe": {},
    });
    let (code, body) = strata_tests::http_send(&addr, "POST", "/api/v1/executor", &call).unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("executor nope of framework nope"), "{body}");
    let bad = serde_json::json!({"type": "SUBSCRIBE"});
    let (code, body) = strata_tests::http_send(&addr, "POST", "/api/v1/executor", &bad).unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("framework_id.value"), "{body}");
    let (code, body) = strata_tests::http_request(&addr, "POST", "/api/v1/executor").unwrap();
    assert_eq!(code, 415, "{body}");
    assert!(body.contains("application/json"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_executor_group_kills_the_others_when_one_fails() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "group")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:256", T).await.unwrap();
    let a = offer.agent_id.clone();
    let executor = ExecutorInfo {
        kind: ExecutorKind::Default,
        executor_id: ExecutorId::new("group").unwrap(),
        name: String::new(),
        command: CommandInfo::default(),
        resources: Resources::new(),
        container: None,
        data: Vec::new(),
    };
    fw.driver
        .accept(
            vec![offer.id.clone()],
            vec![Operation::LaunchGroup {
                executor: Box::new(executor),
                tasks: vec![
                    task("sleeper", &a, "cpus:0.1;mem:32", "sleep 1000"),
                    task("failer", &a, "cpus:0.1;mem:32", "sleep 1; exit 1"),
                ],
            }],
            0.0,
        )
        .await
        .unwrap();
    let failer = fw.wait_terminal("failer", T).await.unwrap();
    assert_eq!(
        failer.state,
        TaskState::Failed,
        "{failer:?}\n{}",
        cluster.logs()
    );
    let sleeper = fw.wait_terminal("sleeper", T).await.unwrap();
    assert_eq!(sleeper.state, TaskState::Killed, "{sleeper:?}");
    assert!(fw.states("sleeper").contains(&TaskState::Running));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_executor_gets_task_groups_in_one_event() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "executor")
        .await
        .unwrap();
    let executor = custom_executor(EXECUTOR);
    let offer = fw.offer_with("cpus:1;mem:512", T).await.unwrap();
    let a = offer.agent_id.clone();
    let member = |id: &str| {
        let mut t = executor_task(id, &a, &executor, "finish");
        t.executor = None;
        t
    };
    fw.driver
        .accept(
            vec![offer.id.clone()],
            vec![Operation::LaunchGroup {
                executor: Box::new(executor.clone()),
                tasks: vec![member("g1"), member("g2")],
            }],
            0.0,
        )
        .await
        .unwrap();
    for t in ["g1", "g2"] {
        let s = fw.wait_terminal(t, T).await.unwrap();
        assert_eq!(
            s.state,
            TaskState::Finished,
            "{s:?}\n{}",
            executor_log(&cluster, &fw)
        );
    }
    let fw_id = fw.driver.framework_id().to_string();
    let stdout = read_sandbox(&cluster, 0, &fw_id, EXECUTOR, "stdout");
    assert!(stdout.contains("group g1,g2"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_kills_custom_executors_and_fails_their_tasks() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "executor")
        .await
        .unwrap();
    let executor = custom_executor(EXECUTOR);
    let offer = fw.offer_with("cpus:1;mem:512", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(&offer, vec![executor_task("hang", &a, &executor, "hang")])
        .await
        .unwrap();
    fw.wait_for("hang", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let pids = cluster.container_pids(0);
    assert!(!pids.is_empty());
    cluster.agent_mut(0).kill();
    cluster.start_agent(0).unwrap();
    // Not recovered, and said so: the task fails, the executor is killed and reported gone.
    let hang = fw.wait_terminal("hang", T).await.unwrap();
    assert_eq!(
        hang.state,
        TaskState::Failed,
        "{hang:?}\n{}",
        cluster.logs()
    );
    assert_eq!(hang.reason.as_deref(), Some("REASON_EXECUTOR_TERMINATED"));
    assert!(
        hang.message.contains("does not recover custom executors"),
        "{}",
        hang.message
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| pid_alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in &pids {
        assert!(!pid_alive(*pid), "executor process {pid} still alive");
    }
    fw.wait_until("executor failure", T, |f| !f.failures.is_empty())
        .await
        .unwrap();
    cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
    // The executor's checkpoint dir is gone; the agent's work dir holds no container.
    let containers = cluster.agents[0].0.work_dir.join("meta/containers");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&containers).map_or(0, |d| d.count()) > 0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        std::fs::read_dir(&containers).map_or(0, |d| d.count()),
        0,
        "{}",
        cluster.logs()
    );
}
