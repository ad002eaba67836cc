//! Nothing is lost: masters elected through a real ZooKeeper (Debian's package, started on a
//! free port), the registry, master failover with agents and frameworks following the leader, a
//! standalone master's registry file, and agents that do not come back.

use serde_json::Value;
use std::time::{Duration, Instant};
use strata_schema::{FrameworkInfo, TaskId, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::zookeeper::ZooKeeper;
use strata_tests::{bin, http_get, http_request, http_response, Cluster};

const T: Duration = Duration::from_secs(30);
/// The ZooKeeper session timeout the masters run with.
const SESSION: Duration = Duration::from_secs(2);

fn zk_path(name: &str) -> String {
    format!("/strata-{}-{name}", std::process::id())
}

/// The state of `task` in a master's `/state`, if listed.
fn task_state(state: &Value, task: &str) -> Option<String> {
    state["frameworks"].as_array()?.iter().find_map(|fw| {
        fw["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == task)
            .and_then(|t| t["state"].as_str().map(str::to_string))
    })
}

/// Framework info with a failover timeout, so that a failover keeps it.
fn framework(name: &str, failover_secs: f64) -> FrameworkInfo {
    FrameworkInfo {
        name: name.to_string(),
        user: "root".to_string(),
        failover_timeout_secs: failover_secs,
        ..FrameworkInfo::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_loses_nothing() {
    let zk = ZooKeeper::start().unwrap();
    let url = zk.url(&zk_path("failover"));
    let session = format!("{}ms", SESSION.as_millis());
    let mut cluster = Cluster::start_ha(
        &url,
        3,
        &["cpus:2;mem:512", "cpus:2;mem:512"],
        &["--zk-session-timeout", &session],
    )
    .unwrap();

    // ZooKeeper holds the leader's MasterInfo in Mesos' layout.
    let parsed: strata_ha::ZkUrl = url.parse().unwrap();
    let leader = strata_ha::zk::current_leader(&parsed, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("a leader in ZooKeeper");
    assert_eq!(leader.address.port, cluster.master.port);
    assert_eq!(leader.address.ip, "127.0.0.1");
    assert_eq!(
        leader.pid.as_deref(),
        Some(&*format!("master@127.0.0.1:{}", cluster.master.port))
    );
    // Standbys redirect to the leader; health is their own.
    for standby in &cluster.standbys {
        let (code, headers, body) = http_response(&standby.addr(), "GET", "/state").unwrap();
        assert_eq!(code, 307, "{body}");
        let location = format!("http://{}/state", cluster.master.addr());
        assert!(
            headers.contains(&("location".to_string(), location.clone())),
            "{headers:?}"
        );
        assert!(body.contains(&location), "{body}");
        assert_eq!(
            http_request(&standby.addr(), "GET", "/health").unwrap().0,
            200
        );
        // Their RPC refuses frameworks, naming the leader.
        let refused = TestFramework::subscribe_with(&standby.addr(), framework("stray", 0.0))
            .await
            .err()
            .expect("a standby refuses to subscribe a framework");
        assert!(
            refused.to_string().contains(&format!(
                "not the leading master; the leader is {}",
                cluster.master.addr()
            )),
            "{refused:#}"
        );
    }

    let mut fw = TestFramework::subscribe_with(&url, framework("ha", 300.0))
        .await
        .unwrap();
    // The registry znode holds the framework (with its failover timeout) and both agents.
    let client = strata_ha::zk::connect(&parsed, Duration::from_secs(5))
        .await
        .unwrap();
    let mut store = strata_ha::registry::Store::zk(client, &parsed.path);
    let registry: Value =
        serde_json::from_slice(&store.load().await.unwrap().expect("a registry znode")).unwrap();
    assert_eq!(
        registry["frameworks"][fw.driver.framework_id().as_str()]["failover_timeout_secs"],
        300.0,
        "{registry}"
    );
    assert_eq!(
        registry["agents"].as_object().map(|a| a.len()),
        Some(2),
        "{registry}"
    );
    let mut launched = Vec::new();
    for i in 0..2 {
        let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
        let id = format!("long-{i}");
        fw.launch(
            &offer,
            vec![task(&id, &offer.agent_id, "cpus:0.5;mem:64", "sleep 1000")],
        )
        .await
        .unwrap();
        launched.push(id);
    }
    for id in &launched {
        fw.wait_for(id, T, |s| s == TaskState::Running)
            .await
            .unwrap();
    }
    let pids_before: Vec<Vec<i32>> = (0..2).map(|i| cluster.container_pids(i)).collect();
    assert!(
        pids_before.iter().all(|pids| !pids.is_empty()),
        "{pids_before:?}"
    );
    let updates_before = fw.updates.len();
    // `strata run` through ZooKeeper, with a task that outlives the leader: it follows the
    // failover and still prints the task's output and exits with its code. (This framework
    // declines what it holds, so that the command's framework gets offers.)
    while fw.step(Duration::from_millis(300)).await.is_ok() {}
    let held: Vec<_> = fw.offers.drain(..).map(|o| o.id).collect();
    fw.driver.decline(held, 60.0).await.unwrap();
    let cli = std::process::Command::new(bin("strata"))
        .args(["--master", &url, "run", "--task-id", "across", "--"])
        .args(["sh", "-c", "sleep 8; echo across-the-failover; exit 7"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let cli = KillOnDrop(Some(cli));
    cluster
        .wait_state(T, |s| {
            task_state(s, "across").as_deref() == Some("TASK_RUNNING")
        })
        .unwrap();

    // kill -9 the leader.
    let killed = Instant::now();
    cluster.master.kill();
    let elected = cluster
        .promote_leader(SESSION + Duration::from_secs(15))
        .unwrap();
    eprintln!("new leader after {elected:?} (session timeout {SESSION:?})");
    // The session timeout plus a few seconds (generous: CI machines are small and busy; the
    // failover bench measures it properly).
    assert!(
        elected < SESSION + Duration::from_secs(6),
        "a new leader took {elected:?}"
    );
    // Agents re-register with their tasks: still running, nothing killed.
    let state = cluster
        .wait_state(T, |s| {
            launched
                .iter()
                .all(|t| task_state(s, t).as_deref() == Some("TASK_RUNNING"))
                && s["activated_slaves"] == 2
        })
        .unwrap();
    // Both frameworks, this one and `strata run`'s, are kept.
    let mut names: Vec<&str> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["ha", "strata-run"], "{state}");
    let ha_id = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "ha")
        .map(|f| f["id"].clone())
        .unwrap();
    for (i, before) in pids_before.iter().enumerate() {
        for pid in before {
            assert!(
                std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "task process {pid} on agent {i} survived"
            );
        }
    }
    // The framework re-subscribed with its id and gets offers and updates from the new leader.
    fw.wait_resubscribed(T).await.unwrap();
    assert_eq!(fw.driver.framework_id().to_string(), ha_id);
    let offer = fw.offer_with("cpus:0.5;mem:64", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task("after", &offer.agent_id, "cpus:0.5;mem:64", "exit 0")],
    )
    .await
    .unwrap();
    let after = fw.wait_terminal("after", T).await.unwrap();
    assert_eq!(after.state, TaskState::Finished);
    fw.driver
        .kill(TaskId::new("long-0").unwrap(), None)
        .await
        .unwrap();
    let killed_status = fw.wait_terminal("long-0", T).await.unwrap();
    assert_eq!(killed_status.state, TaskState::Killed);
    // No task was reported anything but RUNNING across the failover.
    for status in &fw.updates[updates_before..] {
        if status.task_id.as_str() == "long-1" {
            assert_eq!(status.state, TaskState::Running, "{status:?}");
        }
    }
    let out = cli.wait_with_output(T);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(7), "{stdout}\n{stderr}");
    assert!(stdout.contains("across-the-failover"), "{stdout}\n{stderr}");
    eprintln!("failover handled in {:?}", killed.elapsed());
}

/// A child process killed (and reaped) unless waited for.
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    /// Waits for it to exit within `timeout` (killing it after) and returns its output.
    fn wait_with_output(mut self, timeout: Duration) -> std::process::Output {
        let mut child = self.0.take().expect("not waited for yet");
        let deadline = Instant::now() + timeout;
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        child.wait_with_output().unwrap()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn zookeeper_restart_settles_on_one_leader() {
    let mut zk = ZooKeeper::start().unwrap();
    let url = zk.url(&zk_path("zkrestart"));
    let session = format!("{}ms", SESSION.as_millis());
    let mut cluster = Cluster::start_ha(&url, 3, &[], &["--zk-session-timeout", &session]).unwrap();
    let first_leader = cluster.master.addr();
    zk.stop();
    // Within a few seconds past the session timeout nobody leads: the leader stopped (it
    // exits) and the standbys, their sessions gone too, answer 503.
    std::thread::sleep(SESSION);
    let deadline = Instant::now() + SESSION + Duration::from_secs(10);
    loop {
        let mut all = vec![&cluster.master];
        all.extend(cluster.standbys.iter());
        let answers: Vec<(String, Option<u16>)> = all
            .iter()
            .map(|d| {
                let code = http_request(&d.addr(), "GET", "/state").ok().map(|r| r.0);
                (d.addr(), code)
            })
            .collect();
        let leading = answers.iter().any(|(_, code)| *code == Some(200));
        let unavailable = answers
            .iter()
            .filter(|(_, code)| *code == Some(503))
            .count();
        if !leading && unavailable >= 2 {
            let old = answers.iter().find(|(addr, _)| *addr == first_leader);
            // None: refused; 0: accepted and closed without an answer while it exits.
            assert!(
                matches!(old, Some((_, None | Some(0) | Some(503)))),
                "the old leader stopped leading: {answers:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "with ZooKeeper down a master still leads, or standbys do not answer 503: \
             {answers:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    zk.restart().unwrap();
    cluster.promote_leader(Duration::from_secs(30)).unwrap();
    // Settled: exactly one master leads, the others redirect to it.
    std::thread::sleep(Duration::from_secs(1));
    let mut leaders = 0;
    let mut all = vec![&cluster.master];
    all.extend(cluster.standbys.iter());
    for d in all {
        match http_request(&d.addr(), "GET", "/state") {
            Ok((200, _)) => leaders += 1,
            Ok((307, body)) => assert!(body.contains(&cluster.master.addr()), "{body}"),
            Ok((code, body)) => panic!("master {} answered {code}: {body}", d.addr()),
            Err(_) => {} // the old leader stopped (systemd would restart it as a standby)
        }
    }
    assert_eq!(leaders, 1, "{}", cluster.logs());
}

/// The registry znode is written with compare-and-set on its version: a writer that did not see
/// the latest version (a deposed leader) fails instead of overwriting its successor's registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_znode_is_compare_and_set() {
    let zk = ZooKeeper::start().unwrap();
    let url: strata_ha::ZkUrl = zk.url(&zk_path("cas")).parse().unwrap();
    let connect = || async {
        let client = strata_ha::zk::connect(&url, Duration::from_secs(5))
            .await
            .unwrap();
        strata_ha::zk::ensure_path(&client, &url.path)
            .await
            .unwrap();
        strata_ha::registry::Store::zk(client, &url.path)
    };
    let (mut old, mut new) = (connect().await, connect().await);
    assert_eq!(old.load().await.unwrap(), None);
    old.store(b"first").await.unwrap();
    assert_eq!(new.load().await.unwrap().as_deref(), Some(&b"first"[..]));
    new.store(b"second").await.unwrap();
    let err = old.store(b"stale").await.expect_err("a stale write fails");
    assert!(
        matches!(err, strata_ha::registry::RegistryError::Conflict { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("another master wrote it"), "{err}");
    assert_eq!(new.load().await.unwrap().as_deref(), Some(&b"second"[..]));
}

/// A standalone master keeps its registry in its work dir: after a restart it still knows the
/// framework (with its failover timeout) and the agent, and tears nothing down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_standalone_master_remembers_its_registry() {
    let mut cluster = Cluster::start("cpus:2;mem:512").unwrap();
    let mut fw = TestFramework::subscribe_with(&cluster.master.addr(), framework("reg", 120.0))
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let offer = fw.offer_with("cpus:1;mem:128", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task(
            "kept",
            &offer.agent_id,
            "cpus:0.5;mem:64",
            "sleep 1000",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("kept", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let registry: Value = serde_json::from_slice(
        &std::fs::read(cluster.dir.path().join("master/registry.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        registry["frameworks"][&fw_id]["failover_timeout_secs"], 120.0,
        "{registry}"
    );
    assert_eq!(
        registry["agents"].as_object().unwrap().len(),
        1,
        "{registry}"
    );

    drop(fw); // the framework goes away with the master
    cluster.restart_master().unwrap();
    // Past the one second after which a framework with no registry entry used to be torn down.
    std::thread::sleep(Duration::from_secs(3));
    let state = cluster
        .wait_state(T, |s| {
            task_state(s, "kept").as_deref() == Some("TASK_RUNNING")
        })
        .unwrap();
    let framework = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == fw_id.as_str())
        .unwrap_or_else(|| panic!("framework kept: {state}"));
    assert_eq!(framework["failover_timeout"], 120.0, "{framework}");
    assert_eq!(framework["active"], false);
    // It comes back under its id.
    let mut info = framework_info_with_id("reg", 120.0, &fw_id);
    info.id = Some(fw_id.parse().unwrap());
    let mut fw = TestFramework::subscribe_with(&cluster.master.addr(), info)
        .await
        .unwrap();
    assert_eq!(fw.driver.framework_id().to_string(), fw_id);
    fw.driver
        .kill(TaskId::new("kept").unwrap(), None)
        .await
        .unwrap();
    assert_eq!(
        fw.wait_terminal("kept", T).await.unwrap().state,
        TaskState::Killed
    );
}

fn framework_info_with_id(name: &str, failover: f64, id: &str) -> FrameworkInfo {
    FrameworkInfo {
        id: Some(id.parse().unwrap()),
        ..framework(name, failover)
    }
}

/// Agents the registry knows that do not re-register with a new master in time are marked
/// unreachable, in `/state` and in the registry.
#[test]
fn agents_that_do_not_come_back_become_unreachable() {
    let mut cluster = Cluster::start_with(
        &["cpus:1;mem:256"],
        &["--agent-reregister-timeout", "2secs"],
    )
    .unwrap();
    let agent_id = cluster.wait_agents(1).unwrap()["slaves"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    cluster.agent_mut(0).kill();
    cluster.restart_master().unwrap();
    let state = cluster
        .wait_state(T, |s| s["unreachable_slaves"] == 1)
        .unwrap();
    let agent = &state["slaves"][0];
    assert_eq!(agent["id"], agent_id.as_str(), "{state}");
    let registry: Value = serde_json::from_slice(
        &std::fs::read(cluster.dir.path().join("master/registry.json")).unwrap(),
    )
    .unwrap();
    assert!(
        registry["agents"][&agent_id]["unreachable_since"].is_number(),
        "{registry}"
    );
    // When it does come back, it is active again.
    cluster.start_agent(0).unwrap();
    cluster.wait_agents(1).unwrap();
    let _ = http_get(&cluster.master.addr(), "/state").unwrap();
}

/// A task on an agent that does not re-register with a new master in time: the new master never
/// heard of it, and explicit reconciliation answers TASK_UNREACHABLE (partition-aware) from the
/// agent's state; when the agent does come back, the task is running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_agent_does_not_come_back_reconciles_as_unreachable() {
    let mut cluster = Cluster::start_with(
        &["cpus:1;mem:256"],
        &["--agent-reregister-timeout", "2secs"],
    )
    .unwrap();
    let info = FrameworkInfo {
        partition_aware: true,
        ..framework("stranded", 120.0)
    };
    let mut fw = TestFramework::subscribe_with(&cluster.master.addr(), info.clone())
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let offer = fw.offer_with("cpus:0.5;mem:64", T).await.unwrap();
    let agent_id = offer.agent_id.clone();
    fw.launch(
        &offer,
        vec![task("stranded", &agent_id, "cpus:0.5;mem:64", "sleep 1000")],
    )
    .await
    .unwrap();
    fw.wait_for("stranded", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    drop(fw);
    cluster.agent_mut(0).kill();
    cluster.restart_master().unwrap();
    let mut fw = TestFramework::subscribe_with(
        &cluster.master.addr(),
        FrameworkInfo {
            id: Some(fw_id.parse().unwrap()),
            ..info
        },
    )
    .await
    .unwrap();
    cluster
        .wait_state(T, |s| s["unreachable_slaves"] == 1)
        .unwrap();
    fw.driver
        .reconcile(vec![(
            TaskId::new("stranded").unwrap(),
            Some(agent_id.clone()),
        )])
        .await
        .unwrap();
    let status = fw
        .wait_for("stranded", T, |s| s == TaskState::Unreachable)
        .await
        .unwrap();
    assert_eq!(status.reason.as_deref(), Some("REASON_RECONCILIATION"));
    assert_eq!(status.agent_id.as_ref(), Some(&agent_id));
    // The agent comes back with the task, which never stopped.
    cluster.start_agent(0).unwrap();
    let back = fw
        .wait_for("stranded", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    assert_eq!(back.reason.as_deref(), Some("REASON_AGENT_REREGISTERED"));
}

/// A network namespace joined to the host by a veth pair; removed on drop.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create() -> Netns {
        let tag = std::process::id() % 10000;
        let subnet = std::process::id() % 250 + 1;
        let ns = Netns {
            name: format!("strata-{tag}-part"),
            host_if: format!("stp{tag}h"),
            host_ip: format!("10.251.{subnet}.1"),
            ns_ip: format!("10.251.{subnet}.2"),
        };
        let ns_if = format!("stp{tag}n");
        ip(&["netns", "add", &ns.name]);
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/30", ns.host_ip),
            "dev",
            &ns.host_if,
        ]);
        ip(&["link", "set", &ns.host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "ip",
            "addr",
            "add",
            &format!("{}/30", ns.ns_ip),
            "dev",
            &ns_if,
        ]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", &ns_if, "up"]);
        ip(&["netns", "exec", &ns.name, "ip", "link", "set", "lo", "up"]);
        ns
    }

    fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Kills a daemon (by pid) and removes its cgroup subtree when dropped.
struct Spawned(std::process::Child, Option<std::path::PathBuf>);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(cgroup) = &self.1 {
            strata_tests::remove_cgroup_tree(cgroup);
        }
    }
}

/// An agent in a network namespace loses its link to the master: its tasks become
/// TASK_UNREACHABLE (partition-aware) or TASK_LOST; when the link returns the agent registers
/// again: the partition-aware task is RUNNING again, the lost one is reported GONE and killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_agent_comes_back() {
    let mount = strata_tests::require_root();
    let netns = Netns::create();
    let dir = tempfile::tempdir().unwrap();
    let bpffs = strata_tests::BpfFs::mount().unwrap();
    let master_port = strata_tests::free_port();
    let master_addr = format!("{}:{master_port}", netns.host_ip);
    let master = Spawned(
        std::process::Command::new(strata_tests::bin("strata-master"))
            .args(["--ip", &netns.host_ip, "--port", &master_port.to_string()])
            // Not loopback, and no TLS: the test's own veth pair.
            .arg("--insecure")
            .arg("--work-dir")
            .arg(dir.path().join("master"))
            .arg("--acls")
            .arg(strata_tests::allow_root_acls(dir.path()).unwrap())
            .args([
                "--agent-ping-timeout",
                "500ms",
                "--max-agent-ping-timeouts",
                "2",
            ])
            .stdout(std::fs::File::create(dir.path().join("master.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("master.err")).unwrap())
            .spawn()
            .unwrap(),
        None,
    );
    let root = format!("strata-e2e-{}-part", std::process::id());
    let agent = Spawned(
        // Only the network namespace: `ip netns exec` would also remount /sys, hiding cgroup2.
        std::process::Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", netns.name))
            .arg("--")
            .arg(strata_tests::bin("strata-agent"))
            .args([
                "--master",
                &master_addr,
                "--ip",
                &netns.ns_ip,
                "--port",
                "5051",
                "--insecure",
            ])
            .args(["--cgroups-root", &root, "--resources", "cpus:2;mem:512"])
            .arg("--work-dir")
            .arg(dir.path().join("agent"))
            .arg("--bpf-pin-dir")
            .arg(bpffs.path().join("agent"))
            .stdout(std::fs::File::create(dir.path().join("agent.log")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("agent.err")).unwrap())
            .spawn()
            .unwrap(),
        Some(mount.join(&root)),
    );
    let logs = || {
        format!(
            "--- master ---\n{}\n--- agent ---\n{}",
            std::fs::read_to_string(dir.path().join("master.err")).unwrap_or_default(),
            std::fs::read_to_string(dir.path().join("agent.err")).unwrap_or_default()
        )
    };
    let mut aware = None;
    let deadline = Instant::now() + T;
    while aware.is_none() {
        assert!(Instant::now() < deadline, "no master: {}", logs());
        aware = TestFramework::subscribe_with(
            &master_addr,
            FrameworkInfo {
                partition_aware: true,
                ..framework("aware", 300.0)
            },
        )
        .await
        .ok();
        if aware.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut aware = aware.unwrap();
    let mut unaware = TestFramework::subscribe_with(&master_addr, framework("unaware", 300.0))
        .await
        .unwrap();
    for (fw, id) in [(&mut aware, "stays"), (&mut unaware, "given-up")] {
        let offer = fw
            .offer_with("cpus:0.5;mem:64", T)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
        fw.launch(
            &offer,
            vec![task(id, &offer.agent_id, "cpus:0.5;mem:64", "sleep 1000")],
        )
        .await
        .unwrap();
        fw.wait_for(id, T, |s| s == TaskState::Running)
            .await
            .unwrap();
    }

    netns.link(false);
    let cut = aware
        .wait_for("stays", T, |s| s != TaskState::Running)
        .await
        .unwrap();
    assert_eq!(cut.state, TaskState::Unreachable, "{cut:?}\n{}", logs());
    let lost = unaware
        .wait_for("given-up", T, |s| s != TaskState::Running)
        .await
        .unwrap();
    assert_eq!(lost.state, TaskState::Lost, "{lost:?}");

    netns.link(true);
    let back = aware
        .wait_for("stays", T, |s| s == TaskState::Running)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert_eq!(back.reason.as_deref(), Some("REASON_AGENT_REREGISTERED"));
    let gone = unaware
        .wait_for("given-up", T, |s| s == TaskState::Gone)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", logs()));
    assert!(gone.message.contains("killed"), "{gone:?}");
    // Killed on the agent: only the partition-aware task's processes remain.
    let deadline = Instant::now() + T;
    loop {
        let containers: Vec<_> = std::fs::read_dir(mount.join(&root))
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter(|e| !strata_tests::procs(&e.path()).is_empty())
            .collect();
        if containers.len() == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} containers still run\n{}",
            containers.len(),
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(agent);
    drop(master);
}
