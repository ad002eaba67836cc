//! Bad input of every kind gets a clear error naming what was wrong, and nothing accepted is lost.

use std::process::Command;
use std::time::Duration;
use strata_client::Operation;
use strata_schema::{CommandInfo, OfferId, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{bin, Cluster};

const T: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_offers_and_tasks_are_refused_with_reasons() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "bad")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:2", T).await.unwrap();
    let a = offer.agent_id.clone();

    // An offer id the master never made: the call fails naming it, and the real offer is kept
    // out of it (it was not named).
    let bogus = OfferId::new("no-such-offer").unwrap();
    let err = fw
        .driver
        .accept(
            vec![bogus],
            vec![Operation::Launch(vec![task("x", &a, "cpus:1", "true")])],
            0.0,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("offer no-such-offer is unknown"),
        "{err}"
    );

    // One accept with: too many resources, an empty command, a duplicate id, and one good task.
    let mut empty = task("empty", &a, "cpus:0.1;mem:32", "true");
    empty.command = CommandInfo::shell("   ");
    let tasks = vec![
        task("greedy", &a, "cpus:64;mem:32", "true"),
        empty,
        task("good", &a, "cpus:0.5;mem:64", "sleep 1000"),
        task("good", &a, "cpus:0.5;mem:64", "true"),
    ];
    fw.launch(&offer, tasks).await.unwrap();
    let greedy = fw.wait_terminal("greedy", T).await.unwrap();
    assert_eq!(greedy.state, TaskState::Error);
    assert!(
        greedy.message.contains("needs") && greedy.message.contains("cpus:64"),
        "{}",
        greedy.message
    );
    let empty = fw.wait_terminal("empty", T).await.unwrap();
    assert_eq!(empty.state, TaskState::Error);
    assert!(
        empty.message.contains("command is empty"),
        "{}",
        empty.message
    );
    fw.wait_for("good", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    // The duplicate got TASK_ERROR; the first "good" keeps running.
    let dup = fw
        .updates
        .iter()
        .find(|s| s.task_id.as_str() == "good" && s.state == TaskState::Error)
        .cloned();
    let dup = dup.expect("the duplicate task id got TASK_ERROR");
    assert!(dup.message.contains("already in use"), "{}", dup.message);

    // The same offer again: it was used, so it is stale now.
    let err = fw
        .driver
        .accept(vec![offer.id.clone()], vec![], 0.0)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no longer valid"), "{err}");

    // A live task id can not be reused either.
    let offer = fw.offer_with("cpus:1", T).await.unwrap();
    fw.launch(&offer, vec![task("good", &a, "cpus:0.5;mem:32", "true")])
        .await
        .unwrap();
    let state = cluster
        .wait_state(T, |s| {
            s["frameworks"][0]["tasks"].as_array().map(|t| t.len()) == Some(1)
        })
        .unwrap();
    assert_eq!(
        state["frameworks"][0]["tasks"][0]["state"], "TASK_RUNNING",
        "the accepted task is not lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_that_cannot_start_fail_with_the_cause() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "bad")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:2", T).await.unwrap();
    let a = offer.agent_id.clone();
    let mut missing = task("missing", &a, "cpus:0.5;mem:32", "");
    missing.command = CommandInfo::argv(vec!["/no/such/binary".into(), "arg".into()]);
    let mut nouser = task("nouser", &a, "cpus:0.5;mem:32", "true");
    nouser.command.user = Some("no-such-user-xyz".into());
    let mut nobody = task("nobody", &a, "cpus:0.5;mem:32", "id -u");
    nobody.command.user = Some("nobody".into());
    fw.launch(&offer, vec![missing, nouser, nobody])
        .await
        .unwrap();
    let s = fw.wait_terminal("missing", T).await.unwrap();
    assert_eq!(s.state, TaskState::Failed);
    assert!(s.message.contains("/no/such/binary"), "{}", s.message);
    let s = fw.wait_terminal("nouser", T).await.unwrap();
    assert_eq!(s.state, TaskState::Failed);
    assert!(s.message.contains("no-such-user-xyz"), "{}", s.message);
    let s = fw.wait_terminal("nobody", T).await.unwrap();
    assert_eq!(s.state, TaskState::Finished, "{s:?}");
    let out = crate::read_sandbox(
        &cluster,
        0,
        fw.driver.framework_id().as_str(),
        "nobody",
        "stdout",
    );
    assert_eq!(out.trim(), "65534", "the task ran as nobody");
}

fn run_fail(bin_name: &str, args: &[&str]) -> String {
    let out = Command::new(bin(bin_name)).args(args).output().unwrap();
    assert!(!out.status.success(), "{bin_name} {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn daemons_reject_bad_flags_naming_them() {
    let err = run_fail(
        "strata-agent",
        &["--master", "127.0.0.1:1", "--resources", "cpus:abc"],
    );
    assert!(err.contains("cpus:abc"), "{err}");
    let err = run_fail(
        "strata-agent",
        &["--master", "127.0.0.1:1", "--cgroups-root", "../escape"],
    );
    assert!(err.contains("--cgroups-root"), "{err}");
    let err = run_fail("strata-master", &["--agent-ping-timeout", "15"]);
    assert!(err.contains("unit"), "{err}");
    let err = run_fail("strata-master", &["--port", "notaport"]);
    assert!(err.contains("notaport"), "{err}");
    let err = run_fail("strata-master", &["--no-such-flag"]);
    assert!(err.contains("--no-such-flag"), "{err}");
    // ZooKeeper addresses are checked before anything connects.
    let err = run_fail("strata-master", &["--zk", "zk://127.0.0.1:2181"]);
    assert!(
        err.contains("zk://127.0.0.1:2181") && err.contains("path"),
        "{err}"
    );
    let err = run_fail("strata-master", &["--zk", "http://127.0.0.1:2181/strata"]);
    assert!(err.contains("zk://"), "{err}");
    let err = run_fail("strata-agent", &["--master", "zk://h:0/strata"]);
    assert!(err.contains("--master") && err.contains("h:0"), "{err}");
    let err = run_fail("strata-master", &["--zk-session-timeout", "100ms"]);
    assert!(err.contains("--zk-session-timeout"), "{err}");
    // A registry the master cannot read stops it (it never forgets what it admitted).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.json"), b"{\"agents\": [1,").unwrap();
    let port = strata_tests::free_port().to_string();
    let work_dir = dir.path().display().to_string();
    let err = run_fail(
        "strata-master",
        &[
            "--ip",
            "127.0.0.1",
            "--port",
            &port,
            "--work-dir",
            &work_dir,
        ],
    );
    assert!(
        err.contains("registry") && err.contains("registry.json"),
        "{err}"
    );
    // A port already taken is a clear start-up error, not a panic.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let err = run_fail(
        "strata-master",
        &[
            "--ip",
            "127.0.0.1",
            "--port",
            &port,
            "--work-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(err.contains("failed to listen"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `--help` is an operator's manual: every key the packaged config file documents is a flag there,
/// with its `STRATA_*` variable.
#[test]
fn daemons_help_lists_every_config_key_with_its_variable() {
    let packaging = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/etc");
    for daemon in ["master", "agent"] {
        let file = std::fs::read_to_string(packaging.join(format!("{daemon}.toml"))).unwrap();
        let keys: Vec<&str> = file
            .lines()
            .filter_map(|line| line.trim_start_matches('#').trim().split_once(" = "))
            .map(|(key, _)| key.trim())
            .filter(|key| {
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            })
            .collect();
        assert!(keys.len() >= 10, "{daemon}.toml documents {keys:?}");
        let out = Command::new(bin(&format!("strata-{daemon}")))
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "strata-{daemon} --help: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        for key in keys {
            let flag = format!("--{}", key.replace('_', "-"));
            let var = format!("STRATA_{}", key.to_ascii_uppercase());
            assert!(
                help.contains(&flag),
                "strata-{daemon} --help lacks {flag}:\n{help}"
            );
            assert!(
                help.contains(&var),
                "strata-{daemon} --help lacks {var}:\n{help}"
            );
        }
    }
}
