//! Tasks with images: OCI layouts, oci-archive and docker-archive tarballs, registry pulls
//! (anonymous, basic and token auth, HTTPS, multi-platform indexes), the store (sharing,
//! restarts, prune, which keeps what running containers use), hostile images and archives, and
//! many containers from one image at once.

use crate::read_sandbox;
use std::path::{Path, PathBuf};
use std::time::Duration;
use strata_schema::{AgentId, ContainerInfo, ImageType, TaskInfo, TaskState, TaskStatus};
use strata_tests::framework::{task, TestFramework};
use strata_tests::images::{self, ImageSpec, Layer, TarBuilder};
use strata_tests::registry::{Auth, ManifestServer, Registry};
use strata_tests::Cluster;

const T: Duration = Duration::from_secs(60);

fn image_task(id: &str, agent: &AgentId, command: &str, image: &str) -> TaskInfo {
    let mut t = task(id, agent, "cpus:0.1;mem:32", command);
    let kind = if image.starts_with("oci") {
        ImageType::Oci
    } else {
        ImageType::Docker
    };
    t.container = Some(ContainerInfo::image(kind, image));
    t
}

/// The busybox image with the whiteout layer on top.
fn two_layer_spec() -> ImageSpec {
    ImageSpec::new(vec![
        images::busybox_layer().unwrap(),
        images::whiteout_layer(),
    ])
}

fn store(cluster: &Cluster) -> PathBuf {
    cluster.agents[0].0.work_dir.join("images")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Launches `tasks` on one offer and waits for each to end.
async fn run_all(
    fw: &mut TestFramework,
    cluster: &Cluster,
    tasks: Vec<(&str, &str, &str)>,
) -> Vec<TaskStatus> {
    let offer = fw.offer_with("cpus:0.5;mem:128", T).await.unwrap();
    let agent = offer.agent_id.clone();
    let infos = tasks
        .iter()
        .map(|(id, cmd, image)| image_task(id, &agent, cmd, image))
        .collect();
    fw.launch(&offer, infos).await.unwrap();
    let mut out = Vec::new();
    for (id, _, _) in tasks {
        let status = fw
            .wait_terminal(id, T)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
        out.push(status);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_layout_image_runs_with_whiteouts_sandbox_and_private_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let built = images::build(&two_layer_spec());
    images::write_layout(&layout, &built, "v1").unwrap();
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let name = format!("oci:{}:v1", layout.display());
    let script = "cat /etc/motd; test ! -e /data/a && echo a-gone; cat /data/b; ls /opq; \
                  echo \"$IMAGE_VAR $MESOS_SANDBOX\"; pwd; id -u; hostname; \
                  echo in-sandbox > /mnt/mesos/sandbox/file; echo mine > /data/new; rm /data/b; \
                  cat /data/new";
    let statuses = run_all(&mut fw, &cluster, vec![("layout", script, &name)]).await;
    assert_eq!(
        statuses[0].state,
        TaskState::Finished,
        "{:?}\n{}",
        statuses[0],
        cluster.logs()
    );
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(&cluster, 0, &fw_id, "layout", "stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "two layers",
            "a-gone",
            "b from layer 1",
            "y",
            "from-image /mnt/mesos/sandbox",
            "/mnt/mesos/sandbox",
            "0",
            "layout",
            "mine"
        ],
        "stderr: {}",
        read_sandbox(&cluster, 0, &fw_id, "layout", "stderr")
    );
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "layout", "file"),
        "in-sandbox\n"
    );
    // Limits this host cannot enforce are reported as such (a hybrid host has no cgroup2
    // controllers; with them, cgroups/cpu and cgroups/mem are active and nothing is reported).
    let running = fw
        .updates
        .iter()
        .find(|u| u.task_id.as_str() == "layout" && u.state == TaskState::Running)
        .unwrap();
    let state = strata_tests::http_get(&cluster.agent(0).addr(), "/state").unwrap();
    let active: Vec<&str> = state["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for (resource, isolator) in [("cpus", "cgroups/cpu"), ("mem", "cgroups/mem")] {
        let reported = running
            .message
            .contains(&format!("{resource} (no {isolator})"));
        assert_eq!(
            reported,
            !active.contains(&isolator),
            "{resource}: {:?} with {active:?}",
            running.message
        );
    }
    // The writes went to the container's upper dir: the image's layers are untouched, and the
    // next container from the image sees the image as it was.
    for layer in built.layers.iter() {
        let dir = store(&cluster)
            .join("layers")
            .join(layer.0.trim_start_matches("sha256:"));
        assert!(dir.is_dir(), "{} is not in the store", dir.display());
        assert!(!dir.join("data/new").exists());
    }
    let statuses = run_all(
        &mut fw,
        &cluster,
        vec![(
            "again",
            "test ! -e /data/new && test -e /data/b && echo clean",
            &name,
        )],
    )
    .await;
    assert_eq!(statuses[0].state, TaskState::Finished, "{:?}", statuses[0]);
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "again", "stdout"),
        "clean\n"
    );
    // Nothing is left mounted, nothing half-done is left in the store.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&cluster.dir.path().to_string_lossy().to_string()),
        "a mount under the cluster's dir survived:\n{mounts}"
    );
    assert!(entries(&store(&cluster).join("tmp")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_and_image_config_entrypoint_user_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = two_layer_spec();
    spec.entrypoint = vec!["/bin/sh".into(), "-c".into()];
    spec.cmd = vec!["id -u > /mnt/mesos/sandbox/who; id -G >> /mnt/mesos/sandbox/who; pwd >> /mnt/mesos/sandbox/who".into()];
    spec.user = Some("app".into());
    spec.working_dir = Some("/home/app".into());
    let docker = dir.path().join("docker.tar");
    images::write_docker_archive(&docker, &spec, "strata/busybox:1").unwrap();
    let oci = dir.path().join("oci.tar");
    images::write_oci_archive(&oci, &images::build(&two_layer_spec()), "v1").unwrap();
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let docker_name = format!("docker-archive:{}:strata/busybox:1", docker.display());
    let oci_name = format!("oci-archive:{}", oci.display());
    let offer = fw.offer_with("cpus:0.5;mem:128", T).await.unwrap();
    let agent = offer.agent_id.clone();
    // No command: the image's Entrypoint + Cmd, as its User in its WorkingDir.
    let mut entry = image_task("entry", &agent, "", &docker_name);
    entry.command = strata_schema::CommandInfo::argv(Vec::new());
    let motd = image_task(
        "motd",
        &agent,
        "cat /etc/motd; test ! -e /data/a",
        &oci_name,
    );
    fw.launch(&offer, vec![entry, motd]).await.unwrap();
    for id in ["entry", "motd"] {
        let s = fw.wait_terminal(id, T).await.unwrap();
        assert_eq!(s.state, TaskState::Finished, "{s:?}\n{}", cluster.logs());
    }
    let fw_id = fw.driver.framework_id().to_string();
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "entry", "who"),
        "1000\n1000 50\n/home/app\n"
    );
    assert_eq!(
        read_sandbox(&cluster, 0, &fw_id, "motd", "stdout"),
        "two layers\n"
    );
    // The archives were staged in the store's tmp/ and nothing of them is left there.
    assert!(entries(&store(&cluster).join("tmp")).is_empty());
}

/// Waits until the agent has removed every container's checkpoint dir (their terminal updates
/// acknowledged): then no `image.json` holds an image.
async fn wait_containers_gone(cluster: &Cluster, left: usize) {
    let containers = cluster.agents[0].0.work_dir.join("meta/containers");
    let deadline = std::time::Instant::now() + T;
    while entries(&containers).len() > left {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            entries(&containers)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /images/prune` on the agent; its report.
fn prune(cluster: &Cluster) -> serde_json::Value {
    let (code, body) =
        strata_tests::http_request(&cluster.agent(0).addr(), "POST", "/images/prune").unwrap();
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_keeps_the_image_of_a_running_container_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    // `used`: busybox + the whiteout layer, run by a long task; `unused`: busybox alone (its
    // one layer shared with `used`), run to completion before the prune.
    let used = images::build(&two_layer_spec());
    let used_layout = dir.path().join("used");
    images::write_layout(&used_layout, &used, "v1").unwrap();
    let unused = images::build(&ImageSpec::new(vec![images::busybox_layer().unwrap()]));
    let unused_layout = dir.path().join("unused");
    images::write_layout(&unused_layout, &unused, "v1").unwrap();
    let used_name = format!("oci:{}:v1", used_layout.display());
    let unused_name = format!("oci:{}:v1", unused_layout.display());
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let statuses = run_all(&mut fw, &cluster, vec![("short", "true", &unused_name)]).await;
    assert_eq!(statuses[0].state, TaskState::Finished, "{:?}", statuses[0]);
    wait_containers_gone(&cluster, 0).await;

    // A task that reads its root filesystem (both layers) in a loop and counts the rounds.
    let offer = fw.offer_with("cpus:0.5;mem:128", T).await.unwrap();
    let agent = offer.agent_id.clone();
    let script = "i=0; while cat /etc/motd /data/b > /dev/null; do i=$((i+1)); \
                  echo $i > /mnt/mesos/sandbox/rounds; sleep 0.1; done; exit 3";
    fw.launch(&offer, vec![image_task("long", &agent, script, &used_name)])
        .await
        .unwrap();
    fw.wait_for("long", T, |s| s == TaskState::Running)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.logs()));
    let fw_id = fw.driver.framework_id().to_string();
    let rounds = || {
        read_sandbox(&cluster, 0, &fw_id, "long", "rounds")
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let store = store(&cluster);
    let layer_dirs: Vec<PathBuf> = used
        .layers
        .iter()
        .map(|l| store.join("layers").join(l.0.trim_start_matches("sha256:")))
        .collect();
    let blob = |d: &str| {
        store
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };

    let report = prune(&cluster);
    assert_eq!(
        report["removed_images"],
        serde_json::json!([unused_name]),
        "{report}"
    );
    assert_eq!(report["removed_layers"], 0, "the layers are used: {report}");
    let listing = strata_tests::http_get(&cluster.agent(0).addr(), "/images").unwrap();
    let listed = listing["images"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listing}");
    assert_eq!(listed[0]["id"], used.config_digest());
    assert_eq!(
        listed[0]["containers"].as_array().unwrap().len(),
        1,
        "{listing}"
    );
    for dir in &layer_dirs {
        assert!(dir.is_dir(), "{} was pruned", dir.display());
    }
    assert!(blob(&used.config_digest()).is_file());
    assert!(blob(&used.manifest_digest()).is_file());
    assert!(!blob(&unused.manifest_digest()).exists());
    // The task still runs, and still reads its root filesystem.
    let before = rounds();
    let deadline = std::time::Instant::now() + T;
    while rounds() < before + 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "the task stopped reading its root filesystem after the prune ({} rounds)\n{}",
            rounds(),
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        fw.latest[&strata_schema::TaskId::new("long").unwrap()].state,
        TaskState::Running
    );
    assert!(fw.states("long").iter().all(|s| !s.is_terminal()));

    // Once it ended (and the agent removed its container), the next prune removes the image.
    fw.driver
        .kill(strata_schema::TaskId::new("long").unwrap(), Some(agent))
        .await
        .unwrap();
    let s = fw.wait_terminal("long", T).await.unwrap();
    assert_eq!(s.state, TaskState::Killed, "{s:?}");
    wait_containers_gone(&cluster, 0).await;
    let report = prune(&cluster);
    assert_eq!(
        report["removed_images"],
        serde_json::json!([used_name]),
        "{report}"
    );
    assert_eq!(report["removed_layers"], 2, "{report}");
    let listing = strata_tests::http_get(&cluster.agent(0).addr(), "/images").unwrap();
    assert!(
        listing["images"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    for dir in &layer_dirs {
        assert!(!dir.exists(), "{} was kept", dir.display());
    }
    assert!(entries(&store.join("layers")).is_empty());
    assert!(entries(&store.join("blobs/sha256")).is_empty());
    assert!(entries(&store.join("names")).is_empty());
}

/// Pushes the two-layer image to `registry` as `strata/busybox:1`; returns it.
async fn push_busybox(
    registry: &Registry,
    credentials: Option<(&str, &str)>,
) -> images::BuiltImage {
    let built = images::build(&two_layer_spec());
    images::push(&registry.addr, "strata/busybox", "1", &built, credentials)
        .await
        .unwrap_or_else(|e| panic!("push: {e:#}\n{}", registry.log()));
    built
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_pulls_by_tag_and_digest_share_the_store_survive_restarts_and_prune() {
    let registry = Registry::start(Auth::Anonymous).unwrap();
    let built = push_busybox(&registry, None).await;
    let mut cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &["--image-registry-http", &registry.addr],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let by_tag = format!("{}/strata/busybox:1", registry.addr);
    let by_digest = format!(
        "{}/strata/busybox@{}",
        registry.addr,
        built.manifest_digest()
    );
    let statuses = run_all(
        &mut fw,
        &cluster,
        vec![
            ("tag", "cat /etc/motd", &by_tag),
            ("digest", "cat /data/b", &by_digest),
        ],
    )
    .await;
    for s in &statuses {
        assert_eq!(s.state, TaskState::Finished, "{s:?}\n{}", cluster.logs());
    }
    let agent = cluster.agent(0).addr();
    let listing = strata_tests::http_get(&agent, "/images").unwrap();
    let images = listing["images"].as_array().unwrap();
    assert_eq!(images.len(), 1, "one image under two names: {listing}");
    assert_eq!(images[0]["id"], built.config_digest());
    assert_eq!(images[0]["layers"], 2);
    assert_eq!(
        entries(&store(&cluster).join("layers")).len(),
        4,
        "2 layers + their records"
    );

    // The store survives an agent restart; a tag in the store is used without the registry.
    cluster.agent_mut(0).kill();
    drop(registry);
    cluster.start_agent(0).unwrap();
    cluster.wait_agents(1).unwrap();
    fw.offers.clear();
    let listing = strata_tests::http_get(&agent, "/images").unwrap();
    assert_eq!(listing["images"].as_array().unwrap().len(), 1, "{listing}");
    let statuses = run_all(&mut fw, &cluster, vec![("after", "cat /etc/motd", &by_tag)]).await;
    assert_eq!(
        statuses[0].state,
        TaskState::Finished,
        "{:?}\n{}",
        statuses[0],
        cluster.logs()
    );

    // Nothing runs from it now (once the agent has the acknowledgements and removed the
    // containers): the operator call prunes it, layers and all.
    let containers = cluster.agents[0].0.work_dir.join("meta/containers");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !entries(&containers).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "containers left: {:?}",
            entries(&containers)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, body) =
        images::http_request_body(&agent, "POST", "/api/v1", r#"{"type":"PRUNE_IMAGES"}"#).unwrap();
    assert_eq!(code, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["removed_layers"], 2, "{report}");
    let listing = strata_tests::http_get(&agent, "/images").unwrap();
    assert!(
        listing["images"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    assert!(entries(&store(&cluster).join("layers")).is_empty());
    let (code, body) =
        images::http_request_body(&agent, "POST", "/api/v1", r#"{"type":"SET_LOGGING_LEVEL"}"#)
            .unwrap();
    assert_eq!(code, 400);
    assert!(body.contains("SET_LOGGING_LEVEL"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_multi_platform_index_runs_its_linux_amd64_image() {
    let registry = Registry::start(Auth::Anonymous).unwrap();
    // An arm64 image first (with a layer of its own), then the amd64 one: the index is resolved
    // to the amd64 entry, which is then pulled by digest.
    let mut arm_spec = ImageSpec::new(vec![
        images::busybox_layer().unwrap(),
        Layer::gzip(TarBuilder::new().file("arm64-only", b"arm\n").finish()),
    ]);
    arm_spec.architecture = "arm64".into();
    let arm = images::build(&arm_spec);
    let amd = images::build(&two_layer_spec());
    let index = images::push_index(&registry.addr, "strata/multi", "1", &[&arm, &amd], None)
        .await
        .unwrap_or_else(|e| panic!("push: {e:#}\n{}", registry.log()));
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &["--image-registry-http", &registry.addr],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let by_tag = format!("{}/strata/multi:1", registry.addr);
    let by_digest = format!("{}/strata/multi@{}", registry.addr, images::digest(&index));
    let statuses = run_all(
        &mut fw,
        &cluster,
        vec![
            ("multi-tag", "cat /etc/motd; test ! -e /arm64-only", &by_tag),
            (
                "multi-digest",
                "cat /etc/motd; test ! -e /arm64-only",
                &by_digest,
            ),
        ],
    )
    .await;
    let fw_id = fw.driver.framework_id().to_string();
    for (id, s) in ["multi-tag", "multi-digest"].iter().zip(&statuses) {
        assert_eq!(s.state, TaskState::Finished, "{s:?}\n{}", cluster.logs());
        assert_eq!(
            read_sandbox(&cluster, 0, &fw_id, id, "stdout"),
            "two layers\n"
        );
    }
    // One image in the store under both names: the amd64 one, by its manifest's digest; the
    // arm64 layer was never fetched.
    let listing = strata_tests::http_get(&cluster.agent(0).addr(), "/images").unwrap();
    let listed = listing["images"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listing}");
    assert_eq!(listed[0]["id"], amd.config_digest());
    assert_eq!(listed[0]["manifest"], amd.manifest_digest());
    let mut names: Vec<&str> = listed[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    names.sort();
    let mut expected = vec![by_tag.as_str(), by_digest.as_str()];
    expected.sort();
    assert_eq!(names, expected);
    let layers = store(&cluster).join("layers");
    for (digest, ..) in &amd.layers {
        assert!(layers.join(digest.trim_start_matches("sha256:")).is_dir());
    }
    assert!(!layers
        .join(arm.layers[1].0.trim_start_matches("sha256:"))
        .exists());
    assert_eq!(entries(&layers).len(), 4, "2 layers + their records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_basic_and_token_auth_and_https() {
    let work = tempfile::tempdir().unwrap();
    let basic = Registry::start(Auth::Basic {
        user: "alice".into(),
        password: "basic-pw".into(),
    })
    .unwrap();
    let token = Registry::start(Auth::Token {
        user: "bob".into(),
        password: "token-pw".into(),
    })
    .unwrap();
    let tls = Registry::start_with(Auth::Anonymous, true).unwrap();
    push_busybox(&basic, Some(("alice", "basic-pw"))).await;
    push_busybox(&token, Some(("bob", "token-pw"))).await;
    // Push over TLS with a client that trusts the test CA.
    {
        let built = images::build(&two_layer_spec());
        let client = oci_client::Client::new(oci_client::client::ClientConfig {
            extra_root_certificates: vec![oci_client::client::Certificate {
                encoding: oci_client::client::CertificateEncoding::Pem,
                data: std::fs::read(tls.ca.as_ref().unwrap()).unwrap(),
            }],
            ..Default::default()
        });
        let reference: oci_client::Reference =
            format!("{}/strata/busybox:1", tls.addr).parse().unwrap();
        for (d, data) in built.blobs() {
            if d != built.manifest_digest() {
                client.push_blob(&reference, data, &d).await.unwrap();
            }
        }
        images::push_manifest(
            &client,
            &reference,
            built.manifest.clone(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .unwrap();
    }
    // Credentials for both: a Docker config.json with two entries.
    let config = work.path().join("config.json");
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    std::fs::write(
        &config,
        serde_json::to_vec(&serde_json::json!({"auths": {
            basic.addr.clone(): {"auth": b64("alice:basic-pw")},
            token.addr.clone(): {"auth": b64("bob:token-pw")},
        }}))
        .unwrap(),
    )
    .unwrap();
    let http = format!("{},{}", basic.addr, token.addr);
    let ca = tls.ca.as_ref().unwrap().display().to_string();
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &[
            "--image-registry-http",
            &http,
            "--docker-config",
            &config.display().to_string(),
            "--image-registry-ca",
            &ca,
        ],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let basic_name = format!("{}/strata/busybox:1", basic.addr);
    let token_name = format!("{}/strata/busybox:1", token.addr);
    let tls_name = format!("{}/strata/busybox:1", tls.addr);
    let statuses = run_all(
        &mut fw,
        &cluster,
        vec![
            ("basic", "cat /etc/motd", &basic_name),
            ("token", "cat /etc/motd", &token_name),
            ("https", "cat /etc/motd", &tls_name),
        ],
    )
    .await;
    for s in &statuses {
        assert_eq!(
            s.state,
            TaskState::Finished,
            "{s:?}\n{}\n{}",
            cluster.logs(),
            token.log()
        );
    }
    drop(cluster);
    // Without credentials (and without the CA) the same pulls fail, saying why.
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &["--image-registry-http", &http],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let statuses = run_all(
        &mut fw,
        &cluster,
        vec![
            ("basic-anon", "true", &basic_name),
            ("token-anon", "true", &token_name),
            ("https-untrusted", "true", &tls_name),
        ],
    )
    .await;
    for s in &statuses {
        assert_eq!(s.state, TaskState::Failed, "{s:?}");
        assert_eq!(s.reason.as_deref(), Some("REASON_CONTAINER_LAUNCH_FAILED"));
        assert!(s.message.contains("registry 127.0.0.1:"), "{}", s.message);
    }
    let m = |i: usize| statuses[i].message.to_lowercase();
    for i in [0, 1] {
        assert!(
            m(i).contains("authoriz") || m(i).contains("authentication"),
            "{}",
            m(i)
        );
    }
    assert!(
        m(2).contains("certificate")
            || m(2).contains("tls")
            || m(2).contains("error sending request"),
        "{}",
        m(2)
    );
    assert!(entries(&store(&cluster).join("layers")).is_empty());
}

/// One hostile image: how to make it, and what the failure must name.
struct Hostile {
    id: &'static str,
    name: String,
    cause: String,
    /// A layer that must not be in the store afterwards.
    layer: Option<String>,
}

fn layout_with(
    dir: &Path,
    id: &str,
    layers: Vec<Layer>,
    arch: &str,
) -> (PathBuf, images::BuiltImage) {
    let mut spec = ImageSpec::new(layers);
    spec.architecture = arch.to_string();
    let built = images::build(&spec);
    let path = dir.join(id);
    images::write_layout(&path, &built, "v1").unwrap();
    (path, built)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_images_fail_their_tasks_and_write_nothing_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let canary = tempfile::Builder::new()
        .prefix("strata-canary-")
        .tempdir()
        .unwrap();
    let canary_path = canary.path().display().to_string();
    let base = images::busybox_layer().unwrap();
    let evil = |t: TarBuilder| Layer::gzip(t.finish());
    let mut cases = Vec::new();
    let mut add = |id: &'static str, layer: Layer, cause: &'static str| {
        let (path, built) = layout_with(dir.path(), id, vec![base.clone(), layer], "amd64");
        cases.push(Hostile {
            id,
            name: format!("oci:{}", path.display()),
            cause: cause.to_string(),
            layer: Some(built.layers[1].0.clone()),
        });
    };
    add(
        "dotdot",
        evil(TarBuilder::new().file("../../../../escaped", b"x")),
        "contains \"..\"",
    );
    add(
        "absolute",
        evil(TarBuilder::new().file(&format!("{canary_path}/absolute"), b"x")),
        "absolute",
    );
    add(
        "symlink",
        evil(
            TarBuilder::new()
                .symlink("link", &canary_path)
                .file("link/through-symlink", b"x"),
        ),
        "goes through the symlink link",
    );
    add(
        "hardlink",
        evil(TarBuilder::new().hardlink("h", "../../../../etc/passwd")),
        "outside the layer",
    );
    add(
        "device",
        evil(TarBuilder::new().raw(tar::EntryType::Char, "dev/kmsg", "", 0o600, b"")),
        "device nodes",
    );
    // Damaged blobs: the second layer's bytes changed (same length), or cut short.
    let (path, built) = layout_with(
        dir.path(),
        "mismatch",
        vec![base.clone(), images::whiteout_layer()],
        "amd64",
    );
    let blob = path
        .join("blobs/sha256")
        .join(built.layers[1].0.trim_start_matches("sha256:"));
    let mut data = std::fs::read(&blob).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&blob, &data).unwrap();
    cases.push(Hostile {
        id: "mismatch",
        name: format!("oci:{}", path.display()),
        cause: "digest mismatch".into(),
        layer: Some(built.layers[1].0.clone()),
    });
    let (path, built) = layout_with(
        dir.path(),
        "truncated",
        vec![base.clone(), images::whiteout_layer()],
        "amd64",
    );
    let blob = path
        .join("blobs/sha256")
        .join(built.layers[1].0.trim_start_matches("sha256:"));
    let data = std::fs::read(&blob).unwrap();
    std::fs::write(&blob, &data[..data.len() / 2]).unwrap();
    cases.push(Hostile {
        id: "truncated",
        name: format!("oci:{}", path.display()),
        cause: "truncated".into(),
        layer: Some(built.layers[1].0.clone()),
    });
    // Another platform, and a manifest index far over the size limit.
    let (path, _) = layout_with(dir.path(), "arm64", vec![base.clone()], "arm64");
    cases.push(Hostile {
        id: "arm64",
        name: format!("oci:{}", path.display()),
        cause: "no linux/amd64 manifest".into(),
        layer: None,
    });
    let (path, _) = layout_with(dir.path(), "oversized", vec![base.clone()], "amd64");
    let mut index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("index.json")).unwrap()).unwrap();
    index["annotations"] = serde_json::json!({"padding": "x".repeat(5 << 20)});
    std::fs::write(path.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    cases.push(Hostile {
        id: "oversized",
        name: format!("oci:{}", path.display()),
        cause: "oversized".into(),
        layer: None,
    });

    // Archives whose own tar is hostile (its entries are unpacked into the store's tmp/ before
    // the layout or `docker save` contents are read), or whose manifest.json points outside.
    let layout_tree = dir.path().join("archive-layout");
    images::write_layout(
        &layout_tree,
        &images::build(&ImageSpec::new(vec![base.clone()])),
        "v1",
    )
    .unwrap();
    let docker_tree = dir.path().join("archive-docker");
    images::write_docker_dir(
        &docker_tree,
        &ImageSpec::new(vec![base.clone()]),
        "strata/busybox:1",
    )
    .unwrap();
    let mut archive = |id: &'static str, kind: &str, tar: Vec<u8>, cause: &str| {
        let path = dir.path().join(format!("{id}.tar"));
        std::fs::write(&path, tar).unwrap();
        cases.push(Hostile {
            id,
            name: format!("{kind}:{}", path.display()),
            cause: cause.to_string(),
            layer: None,
        });
    };
    let oci_tree = || images::tar_tree(&layout_tree).unwrap();
    let docker_tree_tar = || images::tar_tree(&docker_tree).unwrap();
    archive(
        "archive-dotdot",
        "oci-archive",
        oci_tree().file("../../escaped", b"x").finish(),
        "tar entry \"../../escaped\": the path contains \"..\"",
    );
    archive(
        "archive-absolute",
        "docker-archive",
        docker_tree_tar()
            .file(&format!("{canary_path}/archive-absolute"), b"x")
            .finish(),
        "is absolute",
    );
    archive(
        "archive-symlink",
        "docker-archive",
        docker_tree_tar()
            .symlink("link", &canary_path)
            .file("link/archive-through-symlink", b"x")
            .finish(),
        "goes through the symlink link",
    );
    archive(
        "archive-hardlink",
        "oci-archive",
        oci_tree().hardlink("h", "../../../../etc/passwd").finish(),
        "outside the layer",
    );
    archive(
        "archive-device",
        "docker-archive",
        docker_tree_tar()
            .raw(tar::EntryType::Block, "sda", "", 0o600, b"")
            .finish(),
        "device nodes",
    );
    // A layer of the archive that is a symlink to a file outside it (a valid layer, even).
    let outside = dir.path().join("outside-layer.tar");
    std::fs::copy(docker_tree.join("layer0/layer.tar"), &outside).unwrap();
    let linked = dir.path().join("archive-linked-layer");
    images::write_docker_dir(
        &linked,
        &ImageSpec::new(vec![base.clone()]),
        "strata/busybox:1",
    )
    .unwrap();
    std::fs::remove_file(linked.join("layer0/layer.tar")).unwrap();
    std::os::unix::fs::symlink(&outside, linked.join("layer0/layer.tar")).unwrap();
    archive(
        "archive-layer-symlink",
        "docker-archive",
        images::tar_tree(&linked).unwrap().finish(),
        "\"layer0/layer.tar\" goes through a symlink",
    );
    // A manifest.json naming a layer outside the archive.
    let escaping = dir.path().join("archive-escaping-manifest");
    images::write_docker_dir(
        &escaping,
        &ImageSpec::new(vec![base.clone()]),
        "strata/busybox:1",
    )
    .unwrap();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(escaping.join("manifest.json")).unwrap()).unwrap();
    manifest[0]["Layers"] = serde_json::json!(["../../../../etc/passwd"]);
    std::fs::write(
        escaping.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    archive(
        "archive-manifest-path",
        "docker-archive",
        images::tar_tree(&escaping).unwrap().finish(),
        "\"../../../../etc/passwd\" leaves the image",
    );

    // The same over a registry: damaged blobs in its storage, an index for arm64 only.
    let registry = Registry::start(Auth::Anonymous).unwrap();
    let good = images::build(&ImageSpec::new(vec![
        base.clone(),
        images::whiteout_layer(),
    ]));
    images::push(&registry.addr, "hostile/mismatch", "1", &good, None)
        .await
        .unwrap();
    let mut spec = ImageSpec::new(vec![base.clone(), images::whiteout_layer()]);
    spec.env.push("VARIANT=truncated".into());
    let truncated = images::build(&spec);
    // Same layers as `good`: damage a third, distinct layer for the truncation case.
    let mut spec = ImageSpec::new(vec![
        base.clone(),
        Layer::gzip(TarBuilder::new().file("t", &[7u8; 100_000]).finish()),
    ]);
    spec.env.push("VARIANT=truncated".into());
    let _ = truncated;
    let truncated = images::build(&spec);
    images::push(&registry.addr, "hostile/truncated", "1", &truncated, None)
        .await
        .unwrap();
    let mismatch_file = registry.blob_file(&good.layers[1].0);
    let mut data = std::fs::read(&mismatch_file).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&mismatch_file, &data).unwrap();
    let truncated_file = registry.blob_file(&truncated.layers[1].0);
    let data = std::fs::read(&truncated_file).unwrap();
    std::fs::write(&truncated_file, &data[..data.len() / 2]).unwrap();
    let mut spec = ImageSpec::new(vec![base.clone()]);
    spec.architecture = "arm64".into();
    let arm = images::build(&spec);
    images::push(&registry.addr, "hostile/arm64", "manifest", &arm, None)
        .await
        .unwrap();
    let client = images::push_client();
    let reference: oci_client::Reference = format!("{}/hostile/arm64:1", registry.addr)
        .parse()
        .unwrap();
    images::push_manifest(
        &client,
        &reference,
        images::index_for(&arm, "arm64"),
        "application/vnd.oci.image.index.v1+json",
    )
    .await
    .unwrap();
    cases.push(Hostile {
        id: "reg-mismatch",
        name: format!("{}/hostile/mismatch:1", registry.addr),
        cause: "digest mismatch".into(),
        layer: Some(good.layers[1].0.clone()),
    });
    cases.push(Hostile {
        id: "reg-truncated",
        name: format!("{}/hostile/truncated:1", registry.addr),
        cause: "truncated".into(),
        layer: Some(truncated.layers[1].0.clone()),
    });
    // Manifests over the 4 MiB limit, from a registry. docker-registry neither takes (PUT) nor
    // serves one, so a server of fixed manifests stands in: one under a tag, and one an index
    // entry names by digest (with a size that understates it).
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let big = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": images::digest(config), "size": config.len()},
        "layers": [],
        "annotations": {"padding": "x".repeat(5 << 20)},
    }))
    .unwrap();
    let lying_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": images::digest(&big),
            "size": 1000,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .unwrap();
    let manifests = ManifestServer::start(vec![
        ("hostile/oversized".into(), "1".into(), big.clone()),
        ("hostile/oversized-entry".into(), "1".into(), lying_index),
        ("hostile/oversized-entry".into(), "big".into(), big.clone()),
    ])
    .unwrap();
    let limit = 4 << 20;
    cases.push(Hostile {
        id: "reg-oversized",
        name: format!("{}/hostile/oversized:1", manifests.addr),
        cause: format!(
            "oversized: the manifest of {}/hostile/oversized:1 is {} bytes, more than the limit of {limit}",
            manifests.addr,
            big.len()
        ),
        layer: None,
    });
    cases.push(Hostile {
        id: "reg-oversized-entry",
        name: format!("{}/hostile/oversized-entry:1", manifests.addr),
        cause: format!(
            "oversized: the manifest of {}/hostile/oversized-entry@{} is {} bytes, more than the limit of {limit}",
            manifests.addr,
            images::digest(&big),
            big.len()
        ),
        layer: None,
    });
    cases.push(Hostile {
        id: "reg-arm64",
        name: format!("{}/hostile/arm64:1", registry.addr),
        cause: "no linux/amd64 manifest".into(),
        layer: None,
    });

    let http = format!("{},{}", registry.addr, manifests.addr);
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:4;mem:2048"],
        &[],
        &["--image-registry-http", &http],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let statuses = run_all(
        &mut fw,
        &cluster,
        cases
            .iter()
            .map(|c| (c.id, "true", c.name.as_str()))
            .collect(),
    )
    .await;
    for (case, status) in cases.iter().zip(&statuses) {
        assert_eq!(status.state, TaskState::Failed, "{}: {status:?}", case.id);
        assert_eq!(
            status.reason.as_deref(),
            Some("REASON_CONTAINER_LAUNCH_FAILED"),
            "{}",
            case.id
        );
        assert!(
            status.message.contains(&case.cause),
            "{}: expected {:?} in {:?}",
            case.id,
            case.cause,
            status.message
        );
        if let Some(layer) = &case.layer {
            let dir = store(&cluster)
                .join("layers")
                .join(layer.trim_start_matches("sha256:"));
            assert!(
                !dir.exists(),
                "{}: a refused layer is in the store",
                case.id
            );
        }
    }
    // Nothing escaped: the canary dir is empty, no file landed above the store, and the
    // store holds no partial download or unpack.
    assert!(
        entries(canary.path()).is_empty(),
        "{:?}",
        entries(canary.path())
    );
    for up in [
        store(&cluster).join("escaped"),
        cluster.dir.path().join("escaped"),
        PathBuf::from("/escaped"),
    ] {
        assert!(!up.exists(), "{} exists", up.display());
    }
    assert!(entries(&store(&cluster).join("tmp")).is_empty());
    // The good base layer is there once, shared by all.
    let base_digest = images::digest(&base.blob());
    assert!(store(&cluster)
        .join("layers")
        .join(base_digest.trim_start_matches("sha256:"))
        .is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_containers_from_one_image_at_once_pull_it_once() {
    let registry = Registry::start(Auth::Anonymous).unwrap();
    push_busybox(&registry, None).await;
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:4;mem:2048"],
        &[],
        &["--image-registry-http", &registry.addr],
    )
    .unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "images")
        .await
        .unwrap();
    let name = format!("{}/strata/busybox:1", registry.addr);
    let ids: Vec<String> = (0..20).map(|i| format!("many-{i}")).collect();
    let statuses = run_all(
        &mut fw,
        &cluster,
        ids.iter()
            .map(|id| {
                (
                    id.as_str(),
                    "sleep 1; echo $MESOS_TASK_ID > /tmp/me; cat /tmp/me",
                    name.as_str(),
                )
            })
            .collect(),
    )
    .await;
    let fw_id = fw.driver.framework_id().to_string();
    for (id, s) in ids.iter().zip(&statuses) {
        assert_eq!(s.state, TaskState::Finished, "{s:?}\n{}", cluster.logs());
        assert_eq!(
            read_sandbox(&cluster, 0, &fw_id, id, "stdout"),
            format!("{id}\n")
        );
    }
    let log = std::fs::read_to_string(cluster.dir.path().join("agent0.log")).unwrap();
    assert_eq!(
        log.matches("image stored").count(),
        1,
        "pulled more than once:\n{log}"
    );
    assert_eq!(entries(&store(&cluster).join("layers")).len(), 4);
}

#[test]
fn strata_run_image_with_a_volume_then_images_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    images::write_layout(&layout, &images::build(&two_layer_spec()), "v1").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello"), "from the host\n").unwrap();
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let m = cluster.master.addr();
    let strata = |args: &[&str]| {
        std::process::Command::new(strata_tests::bin("strata"))
            .arg("--master")
            .arg(&m)
            .args(args)
            .output()
            .unwrap()
    };
    let image = format!("oci:{}:v1", layout.display());
    let volume = format!("{}:/data-in:ro", data.display());
    let out = strata(&[
        "run",
        "--image",
        &image,
        "--volume",
        &volume,
        "--",
        "sh",
        "-c",
        "cat /data-in/hello /etc/motd; touch /data-in/x 2>/dev/null || echo read-only; exit 4",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "from the host\ntwo layers\nread-only\n",
        "stderr: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        cluster.logs()
    );
    assert_eq!(out.status.code(), Some(4));
    let out = strata(&["images"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(listing.contains(&image), "{listing}");
    let out = strata(&["images", "prune"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("removed 1 images") && report.contains("2 layers"),
        "{report}"
    );
    let out = strata(&["images", "--json"]);
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listing[0]["images"].as_array().unwrap().is_empty(),
        "{listing}"
    );
    // Bad input is refused before anything is sent.
    let out = strata(&[
        "run",
        "--image",
        "oci:relative",
        "--volume",
        "data:/x",
        "--",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be absolute"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strata_run_shows_the_pull_of_a_registry_image() {
    let registry = Registry::start(Auth::Anonymous).unwrap();
    let built = push_busybox(&registry, None).await;
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:2;mem:1024"],
        &[],
        &["--image-registry-http", &registry.addr],
    )
    .unwrap();
    let agent = cluster.agent(0).addr();
    let idle = strata_tests::http_get(&agent, "/images/pulls").unwrap();
    assert_eq!(idle, serde_json::json!({"pulls": []}));
    let image = format!("{}/strata/busybox:1", registry.addr);
    let m = cluster.master.addr();
    let image2 = image.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(strata_tests::bin("strata"))
            .args([
                "--master",
                &m,
                "run",
                "--image",
                &image2,
                "--",
                "cat",
                "/etc/motd",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", cluster.logs());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "two layers\n");
    // The whole image: config and both layers, as the registry holds them.
    let total = (built.config.len() + built.layers.iter().map(|l| l.1.len()).sum::<usize>()) as u64;
    let line = stderr
        .lines()
        .find(|l| l.starts_with(&format!("pulled {image}: ")))
        .unwrap_or_else(|| panic!("no pull line: {stderr}"));
    assert!(line.ends_with(" MiB in 2 layers"), "{line}");
    // The agent lists the finished pull for a while, counted in full.
    let pulls = strata_tests::http_get(&agent, "/images/pulls").unwrap();
    let pull = &pulls["pulls"][0];
    assert_eq!(pull["image"], image.as_str(), "{pulls}");
    assert_eq!(pull["done"], true);
    assert_eq!(pull["failed"], false);
    assert_eq!(pull["layers_done"], 2);
    assert_eq!(pull["bytes_total"], total);
    assert_eq!(pull["bytes_done"], total);
}
