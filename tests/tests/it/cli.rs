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
