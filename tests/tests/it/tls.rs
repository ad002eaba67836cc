//! Transport security end to end: a cluster over mutual TLS runs a task; agents without a
//! valid identity are refused (and never appear in `/state`); plain connections to a TLS master
//! are refused; a daemon will not serve a non-loopback address without TLS unless `--insecure`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};
use strata_tests::pki::{https_request, TestPki};
use strata_tests::{bin, free_port, http_request, run_agent, Cluster};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `strata` with `args`, reading no cli.toml of this host.
fn strata(args: &[&str]) -> Output {
    Command::new(bin("strata"))
        .env_remove("STRATA_MASTER")
        .env_remove("STRATA_TLS_CA")
        .env("STRATA_CLI_CONFIG", "/dev/null")
        .args(args)
        .output()
        .unwrap()
}

/// Whether a plain HTTP request gets an answer (any status) from `addr`.
fn plain_http_answers(addr: &str) -> bool {
    matches!(http_request(addr, "GET", "/health"), Ok((code, _)) if code != 0)
}

#[test]
fn a_mutual_tls_cluster_runs_a_task_and_serves_https_only() {
    let pki = TestPki::new("cluster").unwrap();
    let other = TestPki::new("other").unwrap();
    let master = pki.issue("master").unwrap();
    let agent = pki.issue("agent-0").unwrap();
    let ca = pki.ca.display().to_string();
    let mut master_flags = master.flags();
    master_flags.extend([
        "--tls-ca".into(),
        ca.clone(),
        "--authenticate-agents".into(),
    ]);
    let mut agent_flags = agent.flags();
    agent_flags.extend(["--tls-ca".into(), ca.clone()]);
    let cluster = Cluster::start_tls(
        &["cpus:2;mem:1024"],
        &strs(&master_flags),
        &strs(&agent_flags),
        pki.client(None).unwrap(),
    )
    .unwrap();
    let m = cluster.master.addr();

    // The agent registered over mutual TLS, as its certificate's CN.
    let state = cluster.master_state().unwrap();
    assert_eq!(
        state["slaves"][0]["principal"],
        "agent-0",
        "{state}\n{}",
        cluster.logs()
    );

    // A task end to end with the CLI over TLS: the framework's Cap'n Proto connection and the
    // sandbox reads from the agent's HTTPS endpoints.
    let out = strata(&[
        "--master",
        &m,
        "--tls-ca",
        &ca,
        "run",
        "--cpus",
        "0.5",
        "--mem",
        "64",
        "--",
        "echo hello over tls",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        cluster.logs()
    );
    assert_eq!(text(&out.stdout), "hello over tls\n");

    // An https:// master with the CA in cli.toml; without any CA the CLI says what it needs.
    let config = pki.dir.path().join("cli.toml");
    std::fs::write(&config, format!("tls_ca = \"{ca}\"\n")).unwrap();
    let https = format!("https://{m}");
    let out = Command::new(bin("strata"))
        .env_remove("STRATA_MASTER")
        .env_remove("STRATA_TLS_CA")
        .env("STRATA_CLI_CONFIG", &config)
        .args(["--master", &https, "agents"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("127.0.0.1"),
        "{}",
        text(&out.stdout)
    );
    let out = strata(&["--master", &https, "agents"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--tls-ca"),
        "{}",
        text(&out.stderr)
    );
    // A plain CLI gets nothing from a TLS master.
    let out = strata(&["--master", &m, "agents"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));

    // HTTP: over TLS with the CA; plain and with another CA's trust, nothing.
    let agent_addr = cluster.agent(0).addr();
    for addr in [&m, &agent_addr] {
        let (code, _) = https_request(&pki.client(None).unwrap(), addr, "GET", "/health").unwrap();
        assert_eq!(code, 200, "{addr}");
        assert!(!plain_http_answers(addr), "{addr} answered plain HTTP");
        let err = https_request(&other.client(None).unwrap(), addr, "GET", "/health").unwrap_err();
        assert!(
            format!("{err:#}").contains("certificate"),
            "{addr}: {err:#}"
        );
    }
    let master_log = std::fs::read_to_string(&cluster.master.log).unwrap();
    assert!(
        master_log.contains("refused a plain connection"),
        "{master_log}"
    );
}

/// Waits until `path` (a daemon's log) contains `needle`.
fn wait_log(path: &std::path::Path, needle: &str, cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(path).unwrap_or_default();
        if log.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} never logged {needle:?}\n{}",
            path.display(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn agents_without_a_valid_identity_are_refused() {
    let pki = TestPki::new("cluster").unwrap();
    let other = TestPki::new("other").unwrap();
    let master = pki.issue("master").unwrap();
    let intruder = other.issue("intruder").unwrap();
    let ca = pki.ca.display().to_string();
    let credentials = pki.dir.path().join("credentials");
    std::fs::write(&credentials, "agent-cred right-secret\n").unwrap();
    let right = pki.dir.path().join("right.json");
    std::fs::write(
        &right,
        r#"{"principal": "agent-cred", "secret": "right-secret"}"#,
    )
    .unwrap();
    let wrong = pki.dir.path().join("wrong");
    std::fs::write(&wrong, "agent-cred wrong-secret\n").unwrap();
    let mut master_flags = master.flags();
    master_flags.extend([
        "--tls-ca".into(),
        ca.clone(),
        "--authenticate-agents".into(),
        "--credentials".into(),
        credentials.display().to_string(),
    ]);
    let mut cluster =
        Cluster::start_tls(&[], &strs(&master_flags), &[], pki.client(None).unwrap()).unwrap();
    let res = "cpus:1;mem:256";
    let wrong_path = wrong.display().to_string();
    let right_path = right.display().to_string();
    // No certificate, no credential (TLS to the master, verified).
    let anonymous = cluster.add_agent(res, &["--tls-ca", &ca]).unwrap();
    // A certificate of another CA.
    let mut foreign_flags = intruder.flags();
    foreign_flags.extend(["--tls-ca".into(), ca.clone()]);
    // (Its HTTPS endpoints use that certificate too: the harness cannot check them.)
    let foreign = cluster
        .add_agent_nowait(res, &strs(&foreign_flags))
        .unwrap();
    // A wrong secret.
    let wrong_secret = cluster
        .add_agent(res, &["--tls-ca", &ca, "--credential", &wrong_path])
        .unwrap();
    // The right credential, but plain TCP.
    let plain = cluster
        .add_agent(res, &["--credential", &right_path])
        .unwrap();
    // The right credential over TLS: the one agent admitted.
    let admitted = cluster
        .add_agent(res, &["--tls-ca", &ca, "--credential", &right_path])
        .unwrap();

    let log = |i: usize| cluster.agent(i).log.clone();
    wait_log(&log(anonymous), "agent authentication required", &cluster);
    wait_log(&log(foreign), "cannot register with the master", &cluster);
    wait_log(&cluster.master.log, "TLS handshake failed", &cluster);
    wait_log(
        &log(wrong_secret),
        "does not match the master's --credentials",
        &cluster,
    );
    wait_log(&log(plain), "give the agent --tls-ca", &cluster);
    wait_log(&cluster.master.log, "refused a plain connection", &cluster);
    let state = cluster.wait_agents(1).unwrap();
    let agents = state["slaves"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{state}");
    assert_eq!(agents[0]["principal"], "agent-cred", "{state}");
    assert_eq!(
        agents[0]["port"].as_u64(),
        Some(u64::from(cluster.agent(admitted).port)),
        "{state}"
    );

    // Refused agents retry with backoff: a few attempts in three seconds, not a spin.
    let refusals = || {
        std::fs::read_to_string(&cluster.master.log)
            .unwrap()
            .matches("refused an agent's registration")
            .count()
    };
    let before = refusals();
    std::thread::sleep(Duration::from_secs(3));
    let during = refusals() - before;
    assert!(during <= 8, "{during} refusals in 3 s\n{}", cluster.logs());
    // Still only the admitted agent.
    let state = cluster.master_state().unwrap();
    assert_eq!(state["slaves"].as_array().unwrap().len(), 1, "{state}");
}

#[test]
fn daemons_refuse_a_non_loopback_address_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let master = |extra: &[&str]| {
        let mut cmd = Command::new(bin("strata-master"));
        cmd.env("STRATA_CONFIG", "/dev/null")
            .args(["--ip", "0.0.0.0", "--port", &port, "--work-dir"])
            .arg(dir.path())
            .args(extra);
        cmd
    };
    let out = master(&[]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("refusing to serve 0.0.0.0 without TLS")
            && err.contains("--tls-cert")
            && err.contains("--insecure"),
        "{err}"
    );
    let run = run_agent(&["--ip", "0.0.0.0"], &[], Duration::from_secs(20)).unwrap();
    assert_eq!(run.status.and_then(|s| s.code()), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("refusing to serve 0.0.0.0 without TLS"),
        "{}",
        run.stderr
    );
    // With --insecure the same master serves.
    let mut child = master(&["--insecure"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let served = loop {
        if matches!(http_request(&addr, "GET", "/health"), Ok((200, _))) {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "strata-master --insecure did not serve {addr}");
}

/// An agent capability that does nothing (the raw peer below never gets that far, or does not
/// care).
struct Nobody;

impl strata_schema::agent_capnp::agent::Server for Nobody {}

/// Registers a raw Cap'n Proto peer over TLS (no client certificate) with `credential`; returns
/// whether it got an `AgentSession`, or the master's error.
async fn register_raw(
    addr: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    credential: Option<(&str, &str)>,
) -> Result<bool, String> {
    use capnp_rpc::{rpc_twoparty_capnp, twoparty, RpcSystem};
    use futures::AsyncReadExt;
    use strata_schema::scheduler_capnp::master;
    use tokio_util::compat::TokioAsyncReadCompatExt;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let stream = strata_security::tls::connect(tls, tcp, addr)
        .await
        .map_err(|e| e.to_string())?;
    let (reader, writer) = stream.compat().split();
    let network = twoparty::VatNetwork::new(
        futures::io::BufReader::new(reader),
        futures::io::BufWriter::new(writer),
        rpc_twoparty_capnp::Side::Client,
        Default::default(),
    );
    let mut rpc = RpcSystem::new(Box::new(network), None);
    let master: master::Client = rpc.bootstrap(rpc_twoparty_capnp::Side::Server);
    tokio::task::spawn_local(rpc);
    let info = strata_schema::AgentInfo {
        id: None,
        hostname: "raw".to_string(),
        port: 1,
        resources: strata_schema::Resources::parse("cpus:1;mem:128").unwrap(),
        attributes: Default::default(),
    };
    let mut req = master.register_agent_request();
    {
        let mut b = req.get();
        strata_schema::wire::set_agent(b.reborrow().init_info(), &info);
        b.set_agent(capnp_rpc::new_client(Nobody));
        if let Some((principal, secret)) = credential {
            let mut c = b.reborrow().init_credential();
            c.set_principal(principal);
            c.set_secret(secret);
        }
        b.init_running(0);
    }
    let response = req.send().promise.await.map_err(|e| e.to_string())?;
    let session: capnp::Result<strata_schema::agent_capnp::agent_session::Client> =
        response.get().and_then(|r| r.get_session());
    Ok(session.is_ok())
}

#[test]
fn an_unauthenticated_peer_gets_no_agent_session() {
    let pki = TestPki::new("cluster").unwrap();
    let master = pki.issue("master").unwrap();
    let credentials = pki.dir.path().join("credentials");
    std::fs::write(&credentials, "raw-agent s3cret\n").unwrap();
    let mut master_flags = master.flags();
    master_flags.extend([
        "--tls-ca".into(),
        pki.ca.display().to_string(),
        "--authenticate-agents".into(),
        "--credentials".into(),
        credentials.display().to_string(),
    ]);
    let cluster =
        Cluster::start_tls(&[], &strs(&master_flags), &[], pki.client(None).unwrap()).unwrap();
    let addr = cluster.master.addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let tls = pki.client(None).unwrap();
    let (anonymous, wrong, right) = local.block_on(&runtime, async {
        (
            register_raw(&addr, tls.clone(), None).await,
            register_raw(&addr, tls.clone(), Some(("raw-agent", "guess"))).await,
            register_raw(&addr, tls.clone(), Some(("raw-agent", "s3cret"))).await,
        )
    });
    let err = anonymous.unwrap_err();
    assert!(err.contains("agent authentication required"), "{err}");
    let err = wrong.unwrap_err();
    assert!(err.contains("does not match"), "{err}");
    assert!(right.unwrap(), "the right credential gets a session");
    // Only the authenticated peer is an agent.
    let state = cluster.wait_agents(1).unwrap();
    let agents = state["slaves"].as_array().unwrap();
    assert_eq!(agents.len(), 1, "{state}");
    assert_eq!(agents[0]["principal"], "raw-agent", "{state}");
}
