//! Tasks end to end: output, exit codes, many tasks, kills, agent restarts.

use crate::read_sandbox;
use std::time::Duration;
use strata_schema::{AgentId, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::Cluster;

const T: Duration = Duration::from_secs(30);

fn agent_id(offer: &strata_client::Offer) -> AgentId {
    offer.agent_id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_exit_code_and_environment() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1;mem:256", T).await.unwrap();
    let a = agent_id(&offer);
    fw.launch(
        &offer,
        vec![
            task(
                "hello",
                &a,
                "cpus:0.5;mem:64",
                "echo hello; echo oops >&2; echo \"$MESOS_TASK_ID $MESOS_SANDBOX\" ; pwd",
            ),
            task("three", &a, "cpus:0.5;mem:64", "exit 3"),
        ],
    )
    .await
    .unwrap();
    let hello = fw.wait_terminal("hello", T).await.unwrap();
    let three = fw.wait_terminal("three", T).await.unwrap();
    assert_eq!(
        hello.state,
        TaskState::Finished,
        "{hello:?}\n{}",
        cluster.logs()
    );
    assert_eq!(hello.exit_code, Some(0));
    assert_eq!(
        fw.states("hello"),
        [TaskState::Starting, TaskState::Running, TaskState::Finished]
    );
    assert_eq!(three.state, TaskState::Failed);
    assert_eq!(three.exit_code, Some(3));
    assert!(three.message.contains("status 3"), "{}", three.message);
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(&cluster, 0, &fw_id, "hello", "stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hello");
    let (tid, sandbox) = lines[1].split_once(' ').unwrap();
    assert_eq!(tid, "hello");
    assert_eq!(lines[2], sandbox, "the task runs in its sandbox");
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "hello", "stderr"),
        "oops\n"
    );
    // Resources come back: the master's state shows nothing used.
    let state = cluster
        .wait_state(T, |s| s["slaves"][0]["used_resources"]["cpus"] == 0.0)
        .unwrap();
    assert_eq!(
        state["frameworks"][0]["completed_tasks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_is_isolated_in_namespaces_and_cgroup() {
    let cluster = Cluster::start("cpus:1;mem:512").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    let a = agent_id(&offer);
    fw.launch(
        &offer,
        vec![task(
            "iso",
            &a,
            "cpus:1;mem:64",
            "hostname; ls /proc | grep -c '^[0-9]'; cat /proc/self/cgroup",
        )],
    )
    .await
    .unwrap();
    let s = fw.wait_terminal("iso", T).await.unwrap();
    assert_eq!(s.state, TaskState::Finished, "{s:?}");
    let out = read_sandbox(
        &cluster,
        0,
        fw.driver.framework_id().as_str(),
        "iso",
        "stdout",
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "iso", "hostname is the task id");
    let procs: u32 = lines[1].parse().unwrap();
    assert!(
        procs <= 5,
        "the task sees only its own processes, saw {procs}"
    );
    let cg = cluster.agent_cgroup(0);
    let cg_rel = cg
        .strip_prefix(strata_tests::cgroup2_mount().unwrap())
        .unwrap();
    assert!(
        out.contains(&format!("0::/{}/", cg_rel.display())),
        "task runs in the agent's cgroup subtree: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_tasks_on_one_agent() {
    let cluster = Cluster::start("cpus:50;mem:51200").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:50;mem:3200", T).await.unwrap();
    let a = agent_id(&offer);
    let tasks = (0..50)
        .map(|i| task(&format!("t{i}"), &a, "cpus:1;mem:64", "echo $MESOS_TASK_ID"))
        .collect();
    fw.launch(&offer, tasks).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    for i in 0..50 {
        let s = fw
            .wait_terminal(&format!("t{i}"), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(s.state, TaskState::Finished, "t{i}: {s:?}");
    }
    for i in 0..50 {
        assert_eq!(
            read_sandbox(&cluster, 0, &fw_id, &format!("t{i}"), "stdout"),
            format!("t{i}\n")
        );
    }
    // Every container's cgroup is gone once the updates are acknowledged.
    let deadline = std::time::Instant::now() + T;
    while std::fs::read_dir(cluster.agent_cgroup(0))
        .unwrap()
        .flatten()
        .any(|e| e.path().is_dir())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "container cgroups were not removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // /state goes out in parts with the whole length announced, not chunked.
    let (code, headers, body) =
        strata_tests::http_response(&cluster.master.addr(), "GET", "/state").unwrap();
    assert_eq!(code, 200, "{body}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-length"), Some(body.len().to_string()));
    assert_eq!(header("transfer-encoding"), None);
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let done = state["frameworks"][0]["completed_tasks"]
        .as_array()
        .unwrap();
    assert_eq!(done.len(), 50, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_empties_the_cgroup_of_a_forking_task() {
    let cluster = Cluster::start("cpus:1;mem:512").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    let a = agent_id(&offer);
    // A tree that ignores SIGTERM, so the kill must escalate to cgroup.kill.
    let cmd = "trap '' TERM; (trap '' TERM; sleep 1000 & sleep 1000 & wait) & (sleep 1000 &) ; sleep 1000 & wait";
    fw.launch(&offer, vec![task("forky", &a, "cpus:1;mem:64", cmd)])
        .await
        .unwrap();
    fw.wait_for("forky", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    // Wait until the tree has grown.
    let deadline = std::time::Instant::now() + T;
    let pids = loop {
        let pids = cluster.container_pids(0);
        if pids.len() >= 6 {
            break pids;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the task tree did not grow: {pids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    fw.driver
        .kill(strata_schema::TaskId::new("forky").unwrap(), Some(a))
        .await
        .unwrap();
    let s = fw.wait_terminal("forky", T).await.unwrap();
    assert_eq!(s.state, TaskState::Killed, "{s:?}");
    for pid in &pids {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|st| {
                !st.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
        assert!(!alive, "process {pid} of the killed task survived");
    }
    assert!(cluster.container_pids(0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_keeps_registration_and_tasks() {
    let mut cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let before = cluster.master_state().unwrap();
    let agent_id = before["slaves"][0]["id"].as_str().unwrap().to_string();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "e2e")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    let a = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("survivor", &a, "cpus:1;mem:64", "sleep 1000")],
    )
    .await
    .unwrap();
    fw.wait_for("survivor", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let pids = cluster.container_pids(0);
    assert!(!pids.is_empty());

    // kill -9 the agent and start it again with the same work dir.
    cluster.agent_mut(0).kill();
    cluster.start_agent(0).unwrap();
    let state = cluster
        .wait_state(T, |s| {
            s["slaves"][0]["active"] == true && s["slaves"].as_array().map(|a| a.len()) == Some(1)
        })
        .unwrap();
    assert_eq!(
        state["slaves"][0]["id"],
        agent_id.as_str(),
        "the agent kept its id"
    );
    assert_eq!(
        state["slaves"].as_array().unwrap().len(),
        1,
        "no second registration"
    );
    // The task kept running under its supervisor and the master still counts it.
    assert_eq!(cluster.container_pids(0), pids);
    assert_eq!(state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING");
    assert_eq!(state["slaves"][0]["used_resources"]["cpus"], 1.0);
    // The restarted agent can still kill it.
    fw.driver
        .kill(strata_schema::TaskId::new("survivor").unwrap(), Some(a))
        .await
        .unwrap();
    let s = fw.wait_terminal("survivor", T).await.unwrap();
    assert_eq!(s.state, TaskState::Killed, "{s:?}\n{}", cluster.logs());
    assert!(cluster.container_pids(0).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_that_goes_away_is_marked_unreachable() {
    let mut cluster = Cluster::start_with(
        &["cpus:1;mem:512"],
        &[
            "--agent-ping-timeout",
            "200ms",
            "--max-agent-ping-timeouts",
            "2",
        ],
    )
    .unwrap();
    // The agent has written down the id it was given (else it comes back as a new agent).
    let id_file = cluster.agents[0].0.work_dir.join("meta/agent_id");
    let deadline = std::time::Instant::now() + T;
    while !id_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no {}",
            id_file.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    cluster.agent_mut(0).kill();
    let state = cluster
        .wait_state(T, |s| s["slaves"][0]["state"] == "unreachable")
        .unwrap();
    assert_eq!(state["unreachable_slaves"], 1);
    // And it comes back when it re-registers.
    cluster.start_agent(0).unwrap();
    cluster
        .wait_state(T, |s| s["slaves"][0]["state"] == "active")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_updates_are_retried() {
    // A framework that does not acknowledge gets the same update again after the retry interval.
    let cluster = Cluster::start("cpus:1;mem:512").unwrap();
    let info = strata_schema::FrameworkInfo {
        name: "noack".into(),
        user: "root".into(),
        ..Default::default()
    };
    let (driver, mut events) =
        strata_client::SchedulerDriver::subscribe(&cluster.master.addr(), info)
            .await
            .unwrap();
    let offer = loop {
        match tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            strata_client::Event::Offers(mut o) => break o.remove(0),
            _ => continue,
        }
    };
    let t = task("noack", &offer.agent_id, "cpus:1;mem:64", "true");
    driver
        .accept(
            vec![offer.id.clone()],
            vec![strata_client::Operation::Launch(vec![t])],
            0.0,
        )
        .await
        .unwrap();
    let mut starting = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while starting.len() < 2 {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no retry within 60 s")
            .unwrap();
        if let strata_client::Event::Update(s) = ev {
            assert_eq!(
                s.state,
                TaskState::Starting,
                "nothing after STARTING until it is acknowledged"
            );
            starting.push(s);
        }
    }
    assert_eq!(
        starting[0].uuid, starting[1].uuid,
        "the retry is the same update"
    );
    driver.acknowledge(&starting[0]).await.unwrap();
    // Once acknowledged, the stream moves on.
    loop {
        let ev = tokio::time::timeout(T, events.recv())
            .await
            .unwrap()
            .unwrap();
        if let strata_client::Event::Update(s) = ev {
            if s.state != TaskState::Starting {
                assert_eq!(s.state, TaskState::Running);
                break;
            }
        }
    }
}
