//! Authentication and authorization end to end (issue 11): frameworks authenticate (Cap'n Proto
//! credential, v1 HTTP Basic) and register only with the roles `register_frameworks` allows;
//! operators need credentials on read-write endpoints; frameworks cannot kill, reconcile or
//! read the sandboxes of each other's tasks; root tasks need an explicit `run_tasks` ACL;
//! executors' tokens speak only for their own executor.

use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_schema::{FrameworkInfo, TaskId, TaskState};
use strata_security::authn::basic_header;
use strata_security::token::{Claims, TokenKey};
use strata_tests::framework::{task, TestFramework};
use strata_tests::{http_exchange_with, Cluster};

const T: Duration = Duration::from_secs(30);

const CREDENTIALS: &str = r#"{"credentials": [
    {"principal": "alice", "secret": "alice-secret"},
    {"principal": "bob", "secret": "bob-secret"},
    {"principal": "ops", "secret": "ops-secret"},
    {"principal": "dev", "secret": "dev-secret"}
]}"#;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `method path` on `addr` with `auth` as its `Authorization` header (`None`: without one); the
/// status code and the body.
fn as_caller(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> (u16, String) {
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
    let (code, _, body) = http_exchange_with(addr, method, path, &headers, body).unwrap();
    (code, body)
}

fn framework(name: &str, roles: &[&str]) -> FrameworkInfo {
    FrameworkInfo {
        name: name.to_string(),
        user: "root".to_string(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        ..FrameworkInfo::default()
    }
}

fn subscribe_body(roles: &[&str], principal: Option<&str>) -> String {
    let mut info = serde_json::json!({"user": "root", "name": "http-fw", "roles": roles});
    if let Some(p) = principal {
        info["principal"] = p.into();
    }
    serde_json::json!({"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_authenticate_and_register_only_with_allowed_roles() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write(dir.path(), "credentials.json", CREDENTIALS);
    let acls = write(
        dir.path(),
        "acls.json",
        r#"{"register_frameworks": [
              {"principals": {"values": ["alice", "bob"]}, "roles": {"values": ["*", "web"]}},
              {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
            "view_frameworks": [
              {"principals": {"values": ["alice"]}, "users": {"type": "ANY"}},
              {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
            "update_quotas": [
              {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
              {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
            "view_roles": [
              {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
              {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
            "teardown_frameworks": [
              {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}},
              {"principals": {"type": "ANY"}, "framework_principals": {"values": ["bob"]}},
              {"principals": {"type": "ANY"}, "framework_principals": {"type": "NONE"}}],
            "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["root"]}}]}"#,
    );
    let cluster = Cluster::start_with(
        &["cpus:1;mem:256"],
        &[
            "--credentials",
            &creds,
            "--acls",
            &acls,
            "--authenticate-frameworks",
            "--authenticate-http-frameworks",
            "--authenticate-http-readwrite",
        ],
    )
    .unwrap();
    let master = cluster.master.addr();

    // Cap'n Proto: no credential, a wrong secret, a role the ACLs refuse.
    let err = TestFramework::subscribe_with(&master, framework("anon", &[]))
        .await
        .err()
        .expect("an anonymous framework is refused");
    assert!(
        format!("{err:#}").contains("framework authentication is required"),
        "{err:#}"
    );
    let err = TestFramework::subscribe_as(&master, framework("a", &[]), "alice", "wrong")
        .await
        .err()
        .expect("a wrong secret is refused");
    assert!(
        format!("{err:#}").contains("authentication failed for principal \"alice\""),
        "{err:#}"
    );
    let err =
        TestFramework::subscribe_as(&master, framework("a", &["db"]), "alice", "alice-secret")
            .await
            .err()
            .expect("role db is refused");
    let err = format!("{err:#}");
    assert!(
        err.contains("not authorized to register with role \"db\"")
            && err.contains("register_frameworks[1]"),
        "{err}"
    );
    // The principal is filled from the credential; another principal in the info is refused.
    let mut claimed = framework("a", &["web"]);
    claimed.principal = Some("bob".into());
    let err = TestFramework::subscribe_as(&master, claimed, "alice", "alice-secret")
        .await
        .err()
        .expect("a foreign principal is refused");
    assert!(
        format!("{err:#}").contains("not the authenticated principal"),
        "{err:#}"
    );
    let ok =
        TestFramework::subscribe_as(&master, framework("a", &["web"]), "alice", "alice-secret")
            .await
            .unwrap();
    // view_frameworks: alice sees the framework (with its principal); anonymous callers and
    // bob see none, in /state, /frameworks and the v1 GET_FRAMEWORKS.
    let alice_auth = basic_header("alice", "alice-secret");
    let (_, body) = as_caller(&master, "GET", "/state", Some(&alice_auth), "");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fw = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == ok.driver.framework_id().as_str())
        .cloned()
        .unwrap();
    assert_eq!(fw["principal"], "alice", "{fw}");
    let bob_auth = basic_header("bob", "bob-secret");
    for auth in [None, Some(bob_auth.as_str())] {
        for path in ["/state", "/frameworks"] {
            let (code, body) = as_caller(&master, "GET", path, auth, "");
            assert_eq!(code, 200, "{path}: {body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                v["frameworks"].as_array().map(Vec::len),
                Some(0),
                "{path} {auth:?}: {v}"
            );
        }
    }
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1",
        &[("Authorization", &bob_auth), ("Accept", "application/json")],
        r#"{"type": "GET_FRAMEWORKS"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["get_frameworks"]["frameworks"].as_array().map(Vec::len),
        Some(0),
        "{v}"
    );

    // v1 HTTP: 401 without credentials (with the challenges), 403 for the refused role.
    let accept = ("Accept", "application/json");
    let (code, headers, _) = http_exchange_with(
        &master,
        "POST",
        "/api/v1/scheduler",
        &[accept],
        &subscribe_body(&[], None),
    )
    .unwrap();
    assert_eq!(code, 401);
    let challenges: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect();
    assert!(
        challenges.contains(&"Basic realm=\"strata\""),
        "{headers:?}"
    );
    let wrong = basic_header("alice", "nope");
    let (code, _, _) = http_exchange_with(
        &master,
        "POST",
        "/api/v1/scheduler",
        &[accept, ("Authorization", &wrong)],
        &subscribe_body(&[], None),
    )
    .unwrap();
    assert_eq!(code, 401);
    let alice = basic_header("alice", "alice-secret");
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1/scheduler",
        &[accept, ("Authorization", &alice)],
        &subscribe_body(&["db"], None),
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("role \"db\""), "{body}");
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1/scheduler",
        &[accept, ("Authorization", &alice)],
        &subscribe_body(&["web"], Some("bob")),
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");

    // Operators: a read-write endpoint needs credentials; reads do not (no readonly flag).
    let quota = r#"{"role": "web", "guarantee": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]}"#;
    let (code, headers, _) = http_exchange_with(&master, "POST", "/quota", &[], quota).unwrap();
    assert_eq!(code, 401);
    assert!(headers.iter().any(|(n, _)| n == "www-authenticate"));
    let ops = basic_header("ops", "ops-secret");
    let (code, _, body) =
        http_exchange_with(&master, "POST", "/quota", &[("Authorization", &ops)], quota).unwrap();
    assert!(code == 200 || code == 202, "{code} {body}");
    // update_quotas: only ops sets quotas; alice's is refused naming the rule (v0 and v1).
    let (code, body) = as_caller(&master, "POST", "/quota", Some(&alice), quota);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("update_quotas[1]"), "{body}");
    let v1_quota = serde_json::json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "web", "guarantees": {"cpus": {"value": 0.1}}}]}})
    .to_string();
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1",
        &[("Authorization", &alice), accept],
        &v1_quota,
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    let (code, _, _) = http_exchange_with(&master, "GET", "/state", &[], "").unwrap();
    assert_eq!(code, 200);

    // view_roles: only ops sees role web (its quota, its entry in /roles and GET_ROLES).
    let get = |path: &str, auth: Option<&str>| {
        let (code, body) = as_caller(&master, "GET", path, auth, "");
        assert_eq!(code, 200, "{path}: {body}");
        body
    };
    assert!(get("/quota", Some(&ops)).contains("\"web\""));
    assert!(get("/roles", Some(&ops)).contains("\"web\""));
    for auth in [None, Some(bob_auth.as_str())] {
        for path in ["/quota", "/roles"] {
            let body = get(path, auth);
            assert!(!body.contains("\"web\""), "{path} {auth:?}: {body}");
        }
    }
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1",
        &[("Authorization", &bob_auth), accept],
        r#"{"type": "GET_ROLES"}"#,
    )
    .unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("\"web\""), "{body}");

    // teardown_frameworks, judged on the framework's principal (alice): bob may only tear down
    // bob's frameworks (v0 /teardown and v1 TEARDOWN alike); ops may tear down any.
    let fw_id = ok.driver.framework_id().as_str().to_string();
    let form = format!("frameworkId={fw_id}");
    let (code, body) = as_caller(&master, "POST", "/master/teardown", Some(&bob_auth), &form);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("teardown_frameworks[2]"), "{body}");
    let v1_teardown = serde_json::json!({"type": "TEARDOWN",
        "teardown": {"framework_id": {"value": fw_id}}})
    .to_string();
    let (code, _, body) = http_exchange_with(
        &master,
        "POST",
        "/api/v1",
        &[("Authorization", &bob_auth), accept],
        &v1_teardown,
    )
    .unwrap();
    assert_eq!(code, 403, "{body}");
    // bob may tear down his own framework (the rule names the framework's principal).
    let bobs = TestFramework::subscribe_as(&master, framework("b", &["web"]), "bob", "bob-secret")
        .await
        .unwrap();
    let (code, body) = as_caller(
        &master,
        "POST",
        "/master/teardown",
        Some(&bob_auth),
        &format!("frameworkId={}", bobs.driver.framework_id().as_str()),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = as_caller(&master, "POST", "/teardown", Some(&ops), "frameworkId=");
    assert_eq!(code, 400, "{body}");
    let (code, body) = as_caller(&master, "POST", "/master/teardown", Some(&ops), &form);
    assert_eq!(code, 200, "{body}");
    // (alice may view every framework: an empty list would prove nothing for others.)
    let (_, body) = as_caller(&master, "GET", "/state", Some(&alice_auth), "");
    let state: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        state["completed_frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == fw_id.as_str()),
        "{state}"
    );
    assert!(
        state["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["id"] != fw_id.as_str()),
        "{state}"
    );

    // Denials are logged with the principal and what was denied.
    let log = cluster.logs();
    assert!(
        log.contains("request denied") && log.contains("alice"),
        "{log}"
    );
    assert!(log.contains("request without credentials refused"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frameworks_cannot_kill_reconcile_or_read_each_others_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write(dir.path(), "credentials.json", CREDENTIALS);
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:512"],
        &["--credentials", &creds, "--authenticate-frameworks"],
        &["--http-credentials", &creds],
    )
    .unwrap();
    let master = cluster.master.addr();
    let agent_addr = cluster.agent(0).addr();
    let mut alice =
        TestFramework::subscribe_as(&master, framework("alice", &[]), "alice", "alice-secret")
            .await
            .unwrap();
    let offer = alice.offer_with("cpus:0.5;mem:64", T).await.unwrap();
    let agent_id = offer.agent_id.clone();
    alice
        .launch(
            &offer,
            vec![task(
                "t-alice",
                &agent_id,
                "cpus:0.5;mem:64",
                "echo secret-of-alice; sleep 60",
            )],
        )
        .await
        .unwrap();
    alice
        .wait_for("t-alice", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let mut bob = TestFramework::subscribe_as(&master, framework("bob", &[]), "bob", "bob-secret")
        .await
        .unwrap();
    let id = TaskId::new("t-alice").unwrap();

    // Bob's kill of alice's task id reaches nothing; his reconciliation learns nothing.
    let _ = bob.driver.kill(id.clone(), Some(agent_id.clone())).await;
    bob.driver
        .reconcile(vec![(id.clone(), Some(agent_id.clone()))])
        .await
        .unwrap();
    let seen = bob.wait_for("t-alice", T, |_| true).await.unwrap();
    assert_ne!(seen.state, TaskState::Running, "{seen:?}");
    assert!(seen.message.contains("unknown"), "{seen:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let state = cluster.master_state().unwrap();
    let running = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["tasks"].as_array().cloned().unwrap_or_default())
        .find(|t| t["id"] == "t-alice")
        .unwrap();
    assert_eq!(running["state"], "TASK_RUNNING", "{running}");
    assert_eq!(
        alice.latest.get(&id).map(|s| s.state),
        Some(TaskState::Running)
    );

    // Sandboxes: only alice (or an access_sandboxes ACL) reads hers.
    let fw = alice.driver.framework_id().to_string();
    let stdout = (0..100)
        .find_map(|_| {
            let p = crate::sandbox_file(&cluster, 0, &fw, "t-alice", "stdout");
            if p.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            p
        })
        .expect("alice's stdout");
    let stdout = stdout.display().to_string();
    let sandbox = Path::new(&stdout).parent().unwrap().display().to_string();
    let bob_auth = basic_header("bob", "bob-secret");
    let alice_auth = basic_header("alice", "alice-secret");
    let read = format!("/files/read?path={stdout}&offset=0");
    let browse = format!("/files/browse?path={sandbox}");
    for (path, who) in [(&read, "bob"), (&browse, "bob")] {
        let (code, body) = as_caller(&agent_addr, "GET", path, Some(&bob_auth), "");
        assert_eq!(code, 403, "{who} {path}: {body}");
        assert!(body.contains("access_sandboxes"), "{body}");
        let (code, _, _) = http_exchange_with(&agent_addr, "GET", path, &[], "").unwrap();
        assert_eq!(code, 403, "anonymous {path}");
    }
    let read_file =
        serde_json::json!({"type": "READ_FILE", "read_file": {"path": stdout, "offset": 0}})
            .to_string();
    let (code, body) = as_caller(&agent_addr, "POST", "/api/v1", Some(&bob_auth), &read_file);
    assert_eq!(code, 403, "READ_FILE by bob: {body}");
    let (code, body) = as_caller(
        &agent_addr,
        "POST",
        "/api/v1",
        Some(&alice_auth),
        &read_file,
    );
    assert_eq!(code, 200, "READ_FILE by alice: {body}");
    // base64 of "secret-of-alice\n"
    assert!(body.contains("c2VjcmV0LW9mLWFsaWNlCg=="), "{body}");
    let (code, body) = as_caller(&agent_addr, "GET", &read, Some(&alice_auth), "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("secret-of-alice"), "{body}");
    assert!(cluster.logs().contains("sandbox access denied"));
    alice.driver.kill(id, None).await.unwrap();
    alice.wait_terminal("t-alice", T).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_tasks_need_an_explicit_run_tasks_acl() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write(dir.path(), "credentials.json", CREDENTIALS);
    // Permissive (the default): every user but root is allowed; root only for ops.
    let acls = write(
        dir.path(),
        "acls.json",
        r#"{"run_tasks": [{"principals": {"values": ["ops"]}, "users": {"values": ["root"]}}]}"#,
    );
    let cluster = Cluster::start_with(
        &["cpus:2;mem:512"],
        &["--credentials", &creds, "--acls", &acls],
    )
    .unwrap();
    let master = cluster.master.addr();
    let mut dev = TestFramework::subscribe_as(&master, framework("dev", &[]), "dev", "dev-secret")
        .await
        .unwrap();
    let offer = dev.offer_with("cpus:0.5;mem:64", T).await.unwrap();
    let agent = offer.agent_id.clone();
    let mut as_nobody = task("t-nobody", &agent, "cpus:0.2;mem:32", "true");
    as_nobody.command.user = Some("nobody".into());
    dev.launch(
        &offer,
        vec![task("t-root", &agent, "cpus:0.2;mem:32", "true"), as_nobody],
    )
    .await
    .unwrap();
    let refused = dev.wait_terminal("t-root", T).await.unwrap();
    assert_eq!(refused.state, TaskState::Error, "{refused:?}");
    assert_eq!(refused.reason.as_deref(), Some("REASON_TASK_UNAUTHORIZED"));
    assert!(
        refused.message.contains("may not run task t-root as root")
            && refused.message.contains("run_tasks ACL naming \"root\""),
        "{refused:?}"
    );
    let nobody = dev.wait_terminal("t-nobody", T).await.unwrap();
    assert_eq!(nobody.state, TaskState::Finished, "{nobody:?}");
    // Its outstanding offers go back to the pool for ops.
    drop(dev);

    let mut ops = TestFramework::subscribe_as(&master, framework("ops", &[]), "ops", "ops-secret")
        .await
        .unwrap();
    let offer = ops.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    ops.launch(
        &offer,
        vec![task("t-ops", &offer.agent_id, "cpus:0.2;mem:32", "true")],
    )
    .await
    .unwrap();
    let allowed = ops.wait_terminal("t-ops", T).await.unwrap();
    assert_eq!(allowed.state, TaskState::Finished, "{allowed:?}");
    assert!(cluster.logs().contains("request denied"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_token_speaks_only_for_its_executor() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = write(dir.path(), "jwt.key", "test-jwt-key\n");
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:1;mem:256"],
        &[],
        &[
            "--authenticate-http-executors",
            "--jwt-secret-key",
            &key_file,
        ],
    )
    .unwrap();
    let agent = cluster.agent(0).addr();
    let key = TokenKey::new(b"test-jwt-key");
    let call = |executor: &str| {
        serde_json::json!({
            "type": "SUBSCRIBE",
            "framework_id": {"value": "f1"},
            "executor_id": {"value": executor},
            "subscribe": {}
        })
        .to_string()
    };
    let (code, _, body) =
        http_exchange_with(&agent, "POST", "/api/v1/executor", &[], &call("e2")).unwrap();
    assert_eq!(code, 401, "{body}");
    let e1 = format!("Bearer {}", key.mint(&Claims::executor("f1", "e1", "c1")));
    let (code, body) = as_caller(&agent, "POST", "/api/v1/executor", Some(&e1), &call("e2"));
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("cannot speak for executor e2"), "{body}");
    // A token for another key is refused outright.
    let forged = format!(
        "Bearer {}",
        TokenKey::new(b"other").mint(&Claims::executor("f1", "e2", "c2"))
    );
    let (code, _) = as_caller(
        &agent,
        "POST",
        "/api/v1/executor",
        Some(&forged),
        &call("e2"),
    );
    assert_eq!(code, 401);
    // Its own token gets past authentication (the agent runs no such executor: 403 for that).
    let e2 = format!("Bearer {}", key.mint(&Claims::executor("f1", "e2", "c2")));
    let (code, body) = as_caller(&agent, "POST", "/api/v1/executor", Some(&e2), &call("e2"));
    assert_eq!(code, 403, "{body}");
    assert!(!body.contains("cannot speak for"), "{body}");
    assert!(cluster
        .logs()
        .contains("executor token used for another executor refused"));
}

#[test]
fn a_pymesos_scheduler_authenticates_with_basic_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let creds = write(dir.path(), "credentials.json", CREDENTIALS);
    let cluster = Cluster::start_with(
        &["cpus:2;mem:1024"],
        &["--credentials", &creds, "--authenticate-http-frameworks"],
    )
    .unwrap();
    let run = |principal: Option<(&str, &str)>| {
        let mut cmd = strata_tests::python::script("scheduler.py").unwrap();
        cmd.args([&cluster.master.addr(), "2", "30"])
            .env_remove("PYMESOS_PRINCIPAL")
            .env_remove("PYMESOS_SECRET");
        if let Some((p, s)) = principal {
            cmd.env("PYMESOS_PRINCIPAL", p).env("PYMESOS_SECRET", s);
        }
        // The script gives up by itself after 30 s.
        cmd.output().unwrap()
    };
    let out = run(Some(("alice", "alice-secret")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all 2 tasks finished"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    let state = cluster.master_state().unwrap();
    let principals: Vec<&str> = state["completed_frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(state["frameworks"].as_array().into_iter().flatten())
        .filter_map(|f| f["principal"].as_str())
        .collect();
    assert!(principals.contains(&"alice"), "{state}");
}

/// The first file named `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_executor_gets_a_token_naming_it_and_only_it() {
    use strata_schema::{CommandInfo, ExecutorId, ExecutorInfo, ExecutorKind, Resources};
    let dir = tempfile::tempdir().unwrap();
    let key_file = write(dir.path(), "jwt.key", "executor-key\n");
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:1;mem:512"],
        &[],
        &[
            "--authenticate-http-executors",
            "--jwt-secret-key",
            &key_file,
        ],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "tok")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:0.5;mem:256", T).await.unwrap();
    let executor = ExecutorInfo {
        kind: ExecutorKind::Custom,
        executor_id: ExecutorId::new("tok-exec").unwrap(),
        name: "env dumper".to_string(),
        command: CommandInfo::shell("env > env.txt; sleep 30"),
        resources: Resources::parse("cpus:0.2;mem:64").unwrap(),
        container: None,
        data: Vec::new(),
    };
    let mut t = task("tok-task", &offer.agent_id, "cpus:0.1;mem:32", "");
    t.command = CommandInfo::default();
    t.executor = Some(Box::new(executor));
    fw.launch(&offer, vec![t]).await.unwrap();
    let work = cluster.agents[0].0.work_dir.join("agents");
    let mut env = String::new();
    for _ in 0..200 {
        if let Some(p) = find_file(&work, "env.txt") {
            env = std::fs::read_to_string(p).unwrap_or_default();
            if env.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN=") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = env
        .lines()
        .find_map(|l| l.strip_prefix("MESOS_EXECUTOR_AUTHENTICATION_TOKEN="))
        .unwrap_or_else(|| panic!("no token in the executor's environment:\n{env}"))
        .to_string();
    let claims = TokenKey::new(b"executor-key").verify(&token).unwrap();
    let fid = fw.driver.framework_id().to_string();
    assert_eq!(claims.fid.as_deref(), Some(fid.as_str()));
    assert_eq!(claims.eid.as_deref(), Some("tok-exec"));
    assert!(claims.cid.as_deref().is_some_and(|c| !c.is_empty()));
    // The executor's own token cannot speak for another executor of its framework.
    let other = serde_json::json!({
        "type": "SUBSCRIBE",
        "framework_id": {"value": fid},
        "executor_id": {"value": "other-exec"},
        "subscribe": {}
    })
    .to_string();
    let bearer = format!("Bearer {token}");
    let (code, body) = as_caller(
        &cluster.agent(0).addr(),
        "POST",
        "/api/v1/executor",
        Some(&bearer),
        &other,
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("cannot speak for executor other-exec"),
        "{body}"
    );
    fw.driver
        .kill(TaskId::new("tok-task").unwrap(), None)
        .await
        .unwrap();
    fw.wait_terminal("tok-task", T).await.unwrap();
}

#[test]
fn v1_calls_for_a_framework_must_come_from_its_principal() {
    use strata_tests::recordio::{post, Subscription, JSON};
    let dir = tempfile::tempdir().unwrap();
    let creds = write(dir.path(), "credentials.json", CREDENTIALS);
    let cluster = Cluster::start_with(
        &["cpus:1;mem:256"],
        &["--credentials", &creds, "--authenticate-http-frameworks"],
    )
    .unwrap();
    let master = cluster.master.addr();
    let alice = basic_header("alice", "alice-secret");
    let bob = basic_header("bob", "bob-secret");
    let sub = Subscription::open_with(
        &master,
        &[JSON[0], JSON[1], ("Authorization", &alice)],
        &subscribe_body(&[], None),
    )
    .unwrap()
    .unwrap_or_else(|r| panic!("alice's SUBSCRIBE: {} {}", r.status, r.body));
    let revive = serde_json::json!({
        "type": "REVIVE",
        "framework_id": {"value": sub.framework_id},
        "revive": {}
    })
    .to_string();
    let call = |auth: Option<&str>| {
        let mut headers = vec![
            JSON[0],
            JSON[1],
            ("Mesos-Stream-Id", sub.stream_id.as_str()),
        ];
        if let Some(a) = auth {
            headers.push(("Authorization", a));
        }
        post(&master, &headers, &revive).unwrap()
    };
    // Bob holds alice's stream id (say it leaked): still refused, naming the owner.
    let r = call(Some(&bob));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("belongs to principal \"alice\""),
        "{}",
        r.body
    );
    assert_eq!(call(None).status, 401);
    let r = call(Some(&alice));
    assert_eq!(r.status, 202, "{}", r.body);
    // Nor can bob take alice's framework over by subscribing with its id.
    let mut body: serde_json::Value = serde_json::from_str(&subscribe_body(&[], None)).unwrap();
    body["framework_id"] = serde_json::json!({"value": sub.framework_id});
    body["subscribe"]["framework_info"]["id"] = serde_json::json!({"value": sub.framework_id});
    let taken = Subscription::open_with(
        &master,
        &[JSON[0], JSON[1], ("Authorization", &bob)],
        &body.to_string(),
    )
    .unwrap();
    let refused = taken
        .err()
        .expect("bob cannot subscribe as alice's framework");
    assert_eq!(refused.status, 403, "{}", refused.body);
    sub.close();
}
