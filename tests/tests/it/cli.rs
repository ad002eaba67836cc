//! The `strata` command against a real cluster.

use std::process::{Command, Output};
use std::time::Duration;
use strata_schema::TaskState;
use strata_tests::framework::{task, TestFramework};
use strata_tests::{bin, Cluster};

fn strata(master: &str, args: &[&str]) -> Output {
    Command::new(bin("strata"))
        .arg("--master")
        .arg(master)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn run_prints_stdout_and_exits_with_the_task_code() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let m = cluster.master.addr();
    let out = strata(
        &m,
        &[
            "run",
            "--cpus",
            "0.5",
            "--mem",
            "64",
            "--",
            "echo hello from strata",
        ],
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        cluster.logs()
    );
    assert_eq!(text(&out.stdout), "hello from strata\n");
    assert!(
        text(&out.stderr).contains("TASK_RUNNING"),
        "states are streamed: {}",
        text(&out.stderr)
    );

    let out = strata(
        &m,
        &[
            "run",
            "--name",
            "seven",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    assert!(text(&out.stderr).contains("err"));

    // Both runs are visible afterwards.
    let out = strata(&m, &["tasks", "--all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    assert!(
        listing.contains("TASK_FINISHED") && listing.contains("TASK_FAILED"),
        "{listing}"
    );
    let out = strata(&m, &["agents"]);
    assert!(out.status.success());
    let state = cluster.master_state().unwrap();
    assert!(text(&out.stdout).contains(state["slaves"][0]["id"].as_str().unwrap()));
}

/// A host without system CA certificates (a minimal Debian install): the CLI talks plain HTTP
/// to a cluster without TLS and needs none (the package test's guest once saw it panic in
/// reqwest's client builder instead).
#[test]
fn the_cli_needs_no_system_ca_certificates() {
    let cluster = Cluster::start("cpus:1;mem:256").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new(bin("strata"))
        .arg("--master")
        .arg(cluster.master.addr())
        .arg("agents")
        .env("SSL_CERT_FILE", &empty)
        .env("SSL_CERT_DIR", dir.path().join("none"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
}

#[test]
fn run_asking_too_much_fails_clearly() {
    let cluster = Cluster::start("cpus:1;mem:512").unwrap();
    let out = strata(
        &cluster.master.addr(),
        &["run", "--cpus", "64", "--offer-timeout", "2", "--", "true"],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("error:"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_list_a_running_task() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let m = cluster.master.addr();
    let mut fw = TestFramework::subscribe(&m, "cli").await.unwrap();
    let offer = fw
        .offer_with("cpus:1", Duration::from_secs(30))
        .await
        .unwrap();
    fw.launch(
        &offer,
        vec![task("long", &offer.agent_id, "cpus:1;mem:64", "sleep 1000")],
    )
    .await
    .unwrap();
    fw.wait_for("long", Duration::from_secs(30), |s| s == TaskState::Running)
        .await
        .unwrap();
    let m2 = m.clone();
    let out = tokio::task::spawn_blocking(move || strata(&m2, &["tasks"]))
        .await
        .unwrap();
    assert!(text(&out.stdout).contains("long"), "{}", text(&out.stdout));
    let m2 = m.clone();
    let out = tokio::task::spawn_blocking(move || strata(&m2, &["kill", "long"]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = fw
        .wait_terminal("long", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.state, TaskState::Killed);
    let m2 = m.clone();
    let out = tokio::task::spawn_blocking(move || strata(&m2, &["kill", "nope"]))
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

#[test]
fn errors_are_one_line_and_nonzero() {
    // Master unreachable.
    let port = strata_tests::free_port();
    let out = strata(&format!("127.0.0.1:{port}"), &["run", "--", "true"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: ") && err.contains("cannot reach the master"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let out = strata(&format!("127.0.0.1:{port}"), &["tasks"]);
    assert_eq!(out.status.code(), Some(1));
    // A bad flag.
    let out = strata("127.0.0.1:5050", &["run", "--cpus", "lots", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("lots"));
    // `strata up` as a user other than root.
    strata_tests::require_root();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin("strata"))
        .args(["up", "--work-dir", "/nonexistent/strata-test"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("must run as root"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn quota_weights_roles_reservations_and_draining_from_the_cli() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let m = cluster.master.addr();
    let state = cluster.wait_agents(1).unwrap();
    let agent = state["slaves"][0]["id"].as_str().unwrap().to_string();
    let ok = |args: &[&str]| {
        let out = strata(&m, args);
        assert!(
            out.status.success(),
            "strata {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    ok(&[
        "quota",
        "set",
        "eng",
        "--guarantee",
        "cpus:1",
        "--limit",
        "cpus:2;mem:512",
    ]);
    ok(&["weights", "set", "eng", "2"]);
    ok(&["reserve", &agent, "cpus(eng):1;mem(eng):128"]);
    let roles = ok(&["roles"]);
    let line = roles
        .lines()
        .find(|l| l.starts_with("eng"))
        .unwrap_or_else(|| panic!("{roles}"));
    assert!(line.contains('2'), "{roles}");
    let quota: serde_json::Value = serde_json::from_str(&ok(&["quota", "--json"])).unwrap();
    assert_eq!(quota[0]["limits"]["mem"]["value"], 512.0, "{quota}");
    // The master's refusal reaches the operator.
    let out = strata(&m, &["unreserve", &agent, "cpus(eng):5"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("not dynamically reserved"),
        "{}",
        text(&out.stderr)
    );
    ok(&["unreserve", &agent, "cpus(eng):1;mem(eng):128"]);
    ok(&["drain", &agent, "--grace", "1secs"]);
    cluster
        .wait_state(Duration::from_secs(30), |s| {
            s["slaves"][0]["drain_info"]["state"] == "DRAINED"
        })
        .unwrap();
    ok(&["reactivate", &agent]);
    ok(&["quota", "remove", "eng"]);
    let state = cluster.master_state().unwrap();
    assert_eq!(state["quota"], serde_json::json!([]), "{state}");
    assert_eq!(state["slaves"][0]["deactivated"], false, "{state}");
}

/// `strata` without `--master`: from `STRATA_CLI_CONFIG` (the tests' stand-in for
/// `/etc/strata/cli.toml`) only.
fn strata_configured(config: &std::path::Path, args: &[&str]) -> Output {
    Command::new(bin("strata"))
        .env_remove("STRATA_MASTER")
        .env("STRATA_CLI_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ps_frameworks_logs_and_top_of_a_running_task() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let m = cluster.master.addr();
    let mut fw = TestFramework::subscribe(&m, "cli-watch").await.unwrap();
    let offer = fw
        .offer_with("cpus:1", Duration::from_secs(30))
        .await
        .unwrap();
    let talker = "i=0; while true; do echo line$i; echo err$i >&2; i=$((i+1)); sleep 0.2; done";
    fw.launch(
        &offer,
        vec![task("talker", &offer.agent_id, "cpus:0.5;mem:64", talker)],
    )
    .await
    .unwrap();
    fw.wait_for("talker", Duration::from_secs(30), |s| {
        s == TaskState::Running
    })
    .await
    .unwrap();
    let run = |args: Vec<&'static str>| {
        let m = m.clone();
        tokio::task::spawn_blocking(move || strata(&m, &args))
    };
    let out = run(vec!["ps"]).await.unwrap();
    assert!(
        text(&out.stdout).contains("talker"),
        "{}",
        text(&out.stdout)
    );

    let out = run(vec!["frameworks"]).await.unwrap();
    let listing = text(&out.stdout);
    let line = listing
        .lines()
        .find(|l| l.contains("cli-watch"))
        .unwrap_or_else(|| panic!("{listing}"));
    assert!(line.contains("active") && line.contains("0.5"), "{listing}");
    let out = run(vec!["frameworks", "--json"]).await.unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["name"], "cli-watch", "{list}");

    // Logs so far; one stream only.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let out = run(vec!["logs", "talker"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("line0\nline1\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).starts_with("err0\n"),
        "{}",
        text(&out.stderr)
    );
    let out = run(vec!["logs", "--stderr", "talker"]).await.unwrap();
    assert!(out.stdout.is_empty() && text(&out.stderr).contains("err1"));
    let out = run(vec!["logs", "nosuchtask"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no task has id nosuchtask"));

    // Usage: one sample as a table, and live in a terminal.
    let out = run(vec!["top", "--once", "--interval", "0.5"])
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.starts_with("TASK"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("talker"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("64 MiB"), "the memory limit: {table}");
    let session = format!("strata-top-{}", std::process::id());
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .args(args)
            .output()
            .expect("tmux (apt-get install tmux; cargo xtask ci installs it)")
    };
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "40",
        &format!(
            "{} --master {m} top --interval 0.5",
            bin("strata").display()
        ),
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let mut screen = String::new();
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        screen = text(&tmux(&["capture-pane", "-p", "-t", &session]).stdout);
        if screen.contains("talker") {
            break;
        }
    }
    tmux(&["send-keys", "-t", &session, "C-c"]);
    let mut ended = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if !tmux(&["has-session", "-t", &session]).status.success() {
            ended = true;
            break;
        }
    }
    if !ended {
        tmux(&["kill-session", "-t", &session]);
    }
    assert!(
        screen.contains("strata top") && screen.contains("talker") && screen.contains("CPU"),
        "{screen}"
    );
    assert!(ended, "Ctrl-C ends strata top");

    // Following: new lines keep coming until the task ends, then it returns by itself.
    let m2 = m.clone();
    let follower = tokio::task::spawn_blocking(move || {
        Command::new(bin("strata"))
            .args(["--master", &m2, "logs", "-f", "--stdout", "talker"])
            .output()
            .unwrap()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let out = run(vec!["kill", "talker"]).await.unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("logs -f returns once the task ended")
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines = text(&out.stdout).lines().count();
    assert!(
        lines >= 10,
        "followed for 2 s at 5 lines/s: {}",
        text(&out.stdout)
    );
    // Logs of the ended task stay readable.
    let out = run(vec!["logs", "talker"]).await.unwrap();
    assert!(text(&out.stdout).lines().count() >= lines);
}

#[test]
fn completions_and_the_cli_config_file() {
    let out = Command::new(bin("strata"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = text(&out.stdout);
    assert!(
        script.contains("_strata") && script.contains("logs"),
        "{script}"
    );
    let out = Command::new(bin("strata"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("tcsh"));

    let cluster = Cluster::start("cpus:1;mem:256").unwrap();
    let state = cluster.wait_agents(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cli.toml");
    std::fs::write(&config, format!("master = \"{}\"\n", cluster.master.addr())).unwrap();
    let out = strata_configured(&config, &["agents"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(state["slaves"][0]["id"].as_str().unwrap()));
    std::fs::write(&config, "master = \"https://example\"\n").unwrap();
    let out = strata_configured(&config, &["agents"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("cli.toml") && err.contains("master"), "{err}");
    let out = strata_configured(&dir.path().join("missing.toml"), &["agents"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing.toml"));
}

#[test]
fn run_detached_with_ports_then_logs_and_kill() {
    let cluster = Cluster::start("cpus:2;mem:1024;ports:[31000-31009]").unwrap();
    let m = cluster.master.addr();
    let out = strata(
        &m,
        &[
            "run",
            "--detach",
            "--ports",
            "3",
            "--name",
            "served",
            "--env",
            "GREETING=hi",
            "--",
            "echo ports $PORT0 $PORT2 $PORTS $GREETING; sleep 1000",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let task_id = text(&out.stdout).trim().to_string();
    assert!(task_id.starts_with("served-"), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("strata logs -f"),
        "{}",
        text(&out.stderr)
    );
    // Still running after the command returned, with its ports.
    let state = cluster
        .wait_state(Duration::from_secs(10), |s| {
            s["frameworks"][0]["tasks"][0]["state"] == "TASK_RUNNING"
        })
        .unwrap();
    let task = &state["frameworks"][0]["tasks"][0];
    assert_eq!(task["id"], task_id.as_str());
    assert_eq!(task["resources"]["ports"], "[31000-31002]", "{task}");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = text(&strata(&m, &["logs", &task_id]).stdout);
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(logs, "ports 31000 31002 31000,31001,31002 hi\n");
    let out = strata(&m, &["kill", &task_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    cluster
        .wait_state(Duration::from_secs(30), |s| {
            s["frameworks"][0]["completed_tasks"][0]["state"] == "TASK_KILLED"
        })
        .unwrap();
    // More ports than any agent has: nothing fits.
    let out = strata(
        &m,
        &["run", "--ports", "11", "--offer-timeout", "2", "--", "true"],
    );
    assert!(!out.status.success());
    let out = strata(&m, &["run", "--detach", "--attach", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
}
