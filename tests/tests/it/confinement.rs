//! Task confinement, end to end: a command task and a task with an image, both run by a root
//! framework (the agent's defaults: Docker's capability set, no_new_privs, the default seccomp
//! profile, the work dir and the BPF filesystem masked), cannot read another running task's
//! sandbox by its host path, ptrace, load a kernel module, make namespaces, see the BPF pins or
//! read the agent's work dir, and still work normally (write their sandbox, run a shell).
//! `strata-probe` (tests/src/bin) makes the system calls and prints one line per probe.
//!
//! Binding a port outside the task's allocation is refused by `network/ports`: command tasks in
//! `network::binds_outside_the_allocated_ports_fail_with_eperm`, image tasks here.

use crate::{read_sandbox, sandbox_file};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use strata_schema::{ContainerInfo, ImageType, TaskState};
use strata_tests::framework::{task, TestFramework};
use strata_tests::images::{self, ImageSpec, Layer, TarBuilder};
use strata_tests::{bin, Cluster};

const T: Duration = Duration::from_secs(60);

/// A running task whose sandbox holds `secret.txt`; returns the sandbox's host path.
async fn start_victim(cluster: &Cluster, fw: &mut TestFramework) -> PathBuf {
    let offer = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task(
            "victim",
            &offer.agent_id,
            "cpus:0.1;mem:32",
            "echo top-secret > secret.txt; sleep 120",
        )],
    )
    .await
    .unwrap();
    fw.wait_for("victim", T, |s| s == TaskState::Running)
        .await
        .unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let deadline = Instant::now() + T;
    loop {
        if let Some(secret) = sandbox_file(cluster, 0, &fw_id, "victim", "secret.txt") {
            if std::fs::read_to_string(&secret).unwrap_or_default() == "top-secret\n" {
                let sandbox = secret.parent().unwrap().to_path_buf();
                let mode = std::fs::metadata(&sandbox).unwrap().permissions().mode();
                assert_eq!(mode & 0o7777, 0o750, "{}", sandbox.display());
                return sandbox;
            }
        }
        assert!(Instant::now() < deadline, "{}", cluster.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The probes both kinds of task run, and the lines they must print. `sandbox` is where the
/// task finds its own sandbox, `victim` the other task's sandbox on the host.
fn probes(cluster: &Cluster, probe: &str, sandbox: &str, victim: &Path) -> (String, Vec<String>) {
    let work_dir = &cluster.agents[0].0.work_dir;
    let victim_secret = victim.join("secret.txt");
    let agent_id = work_dir.join("meta").join("agent_id");
    let pins = cluster.bpffs.path();
    let script = format!(
        "{probe} ptrace-traceme ptrace-attach 1 finit-module init-module unshare \
         read {secret} list {victim} read {agent_id} list {pins} write {sandbox}/mine; \
         grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
         sh -c 'echo shell-works'; cat {sandbox}/mine",
        secret = victim_secret.display(),
        victim = victim.display(),
        agent_id = agent_id.display(),
        pins = pins.display(),
    );
    let expected = [
        "ptrace-traceme err EPERM".to_string(),
        "ptrace-attach err EPERM".to_string(),
        "finit-module err EPERM".to_string(),
        "init-module err EPERM".to_string(),
        "unshare err EPERM".to_string(),
        format!("read {} err ENOENT", victim_secret.display()),
        format!("list {} err ENOENT", victim.display()),
        format!("read {} err ENOENT", agent_id.display()),
        format!("list {} err ENOENT", pins.display()),
        format!("write {sandbox}/mine ok"),
        "NoNewPrivs:\t1".to_string(),
        "Seccomp:\t2".to_string(),
        "shell-works".to_string(),
        "written by strata-probe".to_string(),
    ];
    (script, expected.to_vec())
}

/// The host's own view, for contrast: what the tasks could not reach is there.
fn assert_host_sees(cluster: &Cluster, victim: &Path) {
    assert_eq!(
        std::fs::read_to_string(victim.join("secret.txt")).unwrap(),
        "top-secret\n"
    );
    assert!(cluster.agents[0].0.work_dir.join("meta/agent_id").is_file());
    assert!(std::fs::read_dir(cluster.bpffs.path()).unwrap().count() > 0);
}

fn lines_without_seccomp_filters(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| !l.starts_with("Seccomp_filters:"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_task_is_confined_and_still_works() {
    let cluster = Cluster::start("cpus:2;mem:1024").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "confined")
        .await
        .unwrap();
    let victim = start_victim(&cluster, &mut fw).await;
    let offer = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    let probe = bin("strata-probe").display().to_string();
    let (script, mut expected) = probes(&cluster, &probe, "$MESOS_SANDBOX", &victim);
    // The kernel's knobs and the cgroup hierarchy are read-only: a root task can neither turn a
    // sysctl nor move itself out of its cgroup (and so out of its limits and ports).
    let procs = strata_tests::require_root().join("cgroup.procs");
    let script = format!(
        "{script}; {probe} write /proc/sys/kernel/hostname write {}",
        procs.display()
    );
    expected.extend([
        "write /proc/sys/kernel/hostname err EROFS".to_string(),
        format!("write {} err EROFS", procs.display()),
    ]);
    fw.launch(
        &offer,
        vec![task("probe", &offer.agent_id, "cpus:0.1;mem:32", &script)],
    )
    .await
    .unwrap();
    let status = fw.wait_terminal("probe", T).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(&cluster, 0, &fw_id, "probe", "stdout");
    let err = read_sandbox(&cluster, 0, &fw_id, "probe", "stderr");
    assert_eq!(
        status.state,
        TaskState::Finished,
        "{status:?}\n{out}\n{err}"
    );
    let expected: Vec<String> = expected
        .into_iter()
        .map(|l| l.replace("$MESOS_SANDBOX", &sandbox_of(&cluster, &fw_id, "probe")))
        .collect();
    assert_eq!(lines_without_seccomp_filters(&out), expected, "{err}");
    assert_host_sees(&cluster, &victim);
}

/// The host path of `task`'s sandbox.
fn sandbox_of(cluster: &Cluster, fw_id: &str, task: &str) -> String {
    sandbox_file(cluster, 0, fw_id, task, "stdout")
        .unwrap()
        .parent()
        .unwrap()
        .display()
        .to_string()
}

/// A layer with `strata-probe` and `strata-netprobe` in /probe, and the libraries they load (as
/// `ldd` lists them) at their host paths.
fn probe_layer() -> Layer {
    let mut tar = TarBuilder::new().dir("probe");
    let mut dirs: Vec<String> = Vec::new();
    let mut libraries: Vec<PathBuf> = Vec::new();
    for name in ["strata-probe", "strata-netprobe"] {
        let path = bin(name);
        tar = tar.exec(&format!("probe/{name}"), &std::fs::read(&path).unwrap());
        let ldd = Command::new("ldd").arg(&path).output().unwrap();
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = line
                .split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from);
            if let Some(path) = path {
                if !libraries.contains(&path) {
                    libraries.push(path);
                }
            }
        }
    }
    for library in libraries {
        let relative = library.strip_prefix("/").unwrap();
        let mut prefix = PathBuf::new();
        for component in relative.parent().unwrap().components() {
            prefix.push(component);
            let dir = prefix.display().to_string();
            if !dirs.contains(&dir) {
                tar = tar.dir(&dir);
                dirs.push(dir);
            }
        }
        tar = tar.exec(
            &relative.display().to_string(),
            &std::fs::read(&library).unwrap(),
        );
    }
    Layer::plain(tar.finish())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_task_is_confined_and_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let built = images::build(&ImageSpec::new(vec![
        images::busybox_layer().unwrap(),
        probe_layer(),
    ]));
    images::write_layout(&layout, &built, "v1").unwrap();
    let cluster = Cluster::start("cpus:2;mem:1024;ports:[31000-31005]").unwrap();
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "confined")
        .await
        .unwrap();
    let victim = start_victim(&cluster, &mut fw).await;
    let offer = fw.offer_with("cpus:0.2;mem:64", T).await.unwrap();
    let (script, expected) = probes(
        &cluster,
        "/probe/strata-probe",
        "/mnt/mesos/sandbox",
        &victim,
    );
    // Ports: the task has 31000-31001; 31004 is allocated to nobody.
    let script = format!("{script}; /probe/strata-netprobe binds 127.0.0.1 31000 31004");
    let mut info = task(
        "probe",
        &offer.agent_id,
        "cpus:0.1;mem:32;ports:[31000-31001]",
        &script,
    );
    info.container = Some(ContainerInfo::image(
        ImageType::Oci,
        format!("oci:{}:v1", layout.display()),
    ));
    fw.launch(&offer, vec![info]).await.unwrap();
    let status = fw.wait_terminal("probe", T).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(&cluster, 0, &fw_id, "probe", "stdout");
    let err = read_sandbox(&cluster, 0, &fw_id, "probe", "stderr");
    assert_eq!(
        status.state,
        TaskState::Finished,
        "{status:?}\n{out}\n{err}\n{}",
        cluster.logs()
    );
    let mut expected = expected;
    expected.extend([
        "bind 127.0.0.1 31000 ok 31000".to_string(),
        "bind 127.0.0.1 31004 err EPERM".to_string(),
    ]);
    let lines = lines_without_seccomp_filters(&out);
    if cluster_has_network_ports(&cluster) {
        assert_eq!(lines, expected, "{err}");
    } else {
        eprintln!(
            "SKIPPED an_image_task_is_confined_and_still_works/ports: the agent has no \
             network/ports here (it needs BPF on a pure cgroup2 host); the VM test bed \
             checks port enforcement"
        );
        let n = expected.len() - 2;
        assert_eq!(lines[..n], expected[..n], "{out}\n{err}");
    }
    assert_host_sees(&cluster, &victim);

    // A host-path volume may not bring the work dir (or a directory above it) back.
    let offer = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    let work_dir = cluster.agents[0].0.work_dir.clone();
    let hosts = [
        work_dir.join("meta"),
        work_dir.parent().unwrap().to_path_buf(),
    ];
    let infos = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let mut info = task(
                &format!("sneaky{i}"),
                &offer.agent_id,
                "cpus:0.05;mem:8",
                "ls /agent",
            );
            let mut container =
                ContainerInfo::image(ImageType::Oci, format!("oci:{}:v1", layout.display()));
            container.volumes.push(strata_schema::container::Volume {
                container_path: "/agent".to_string(),
                host_path: host.display().to_string(),
                mode: strata_schema::container::VolumeMode::Ro,
            });
            info.container = Some(container);
            info
        })
        .collect();
    fw.launch(&offer, infos).await.unwrap();
    for i in 0..hosts.len() {
        let status = fw.wait_terminal(&format!("sneaky{i}"), T).await.unwrap();
        assert_eq!(status.state, TaskState::Failed, "{status:?}");
        assert!(
            status.message.contains("which tasks may not see"),
            "{status:?}"
        );
    }
}

/// Whether the agent runs `network/ports` (it needs BPF and a pure cgroup2 host).
fn cluster_has_network_ports(cluster: &Cluster) -> bool {
    let state = strata_tests::http_get(&cluster.agent(0).addr(), "/state").unwrap();
    state["isolation"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "network/ports")
}

/// The probes of one task on `cluster`; returns its stdout lines.
async fn run_probe(cluster: &Cluster, script: &str) -> Vec<String> {
    let mut fw = TestFramework::subscribe(&cluster.master.addr(), "profiles")
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task("probe", &offer.agent_id, "cpus:0.1;mem:32", script)],
    )
    .await
    .unwrap();
    let status = fw.wait_terminal("probe", T).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(cluster, 0, &fw_id, "probe", "stdout");
    let err = read_sandbox(cluster, 0, &fw_id, "probe", "stderr");
    assert_eq!(
        status.state,
        TaskState::Finished,
        "{status:?}\n{out}\n{err}"
    );
    lines_without_seccomp_filters(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seccomp_profiles_are_the_operators_choice() {
    let probe = bin("strata-probe").display().to_string();
    let script = format!(
        "{probe} ptrace-traceme unshare; mkdir made 2>/dev/null && echo mkdir-ok || echo mkdir-refused; \
         grep -E '^Seccomp:' /proc/self/status"
    );
    // A file in Docker's format, named relative to --seccomp-config-dir: everything allowed but
    // mkdir, refused with EACCES.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
             {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let config_dir = dir.path().display().to_string();
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:1;mem:256"],
        &[],
        &[
            "--seccomp-config-dir",
            &config_dir,
            "--seccomp-profile-name",
            "no-mkdir.json",
        ],
    )
    .unwrap();
    assert_eq!(
        run_probe(&cluster, &script).await,
        [
            "ptrace-traceme ok",
            "unshare err EPERM",
            "mkdir-refused",
            "Seccomp:\t2"
        ],
        "ptrace is the profile's to allow; unshare stays refused by the bounded capabilities"
    );
    drop(cluster);

    // Unconfined: no filter (no_new_privs and the bounding set stay).
    let cluster = Cluster::start_with_agent_flags(
        &["cpus:1;mem:256"],
        &[],
        &["--seccomp-profile-name", "unconfined"],
    )
    .unwrap();
    assert_eq!(
        run_probe(&cluster, &script).await,
        [
            "ptrace-traceme ok",
            "unshare err EPERM",
            "mkdir-ok",
            "Seccomp:\t0"
        ]
    );
    drop(cluster);

    // A profile that does not compile stops the agent, naming the file and the problem.
    std::fs::write(
        dir.path().join("bad.json"),
        r#"{"defaultAction": "SCMP_ACT_MAYBE"}"#,
    )
    .unwrap();
    let bad = dir.path().join("bad.json").display().to_string();
    let run = strata_tests::run_agent(
        &["--seccomp-profile-name", &bad],
        &[],
        Duration::from_secs(15),
    )
    .unwrap();
    let status = run.status.expect("the agent should refuse to start");
    assert!(!status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "linux/seccomp: the seccomp profile {bad}: defaultAction: unknown action \"SCMP_ACT_MAYBE\""
        )),
        "{}",
        run.stderr
    );
    let run = strata_tests::run_agent(
        &["--seccomp-profile-name", "strict.json"],
        &[],
        Duration::from_secs(15),
    )
    .unwrap();
    assert!(!run.status.expect("refused").success());
    assert!(
        run.stderr
            .contains("linux/seccomp: unknown seccomp profile \"strict.json\""),
        "{}",
        run.stderr
    );
}

/// Runs `script` as a task of a framework whose user is `nobody`; returns its stdout lines.
async fn run_as_nobody(cluster: &Cluster, script: &str) -> Vec<String> {
    let info = strata_schema::FrameworkInfo {
        name: "nobodys".to_string(),
        user: "nobody".to_string(),
        ..strata_schema::FrameworkInfo::default()
    };
    let mut fw = TestFramework::subscribe_with(&cluster.master.addr(), info)
        .await
        .unwrap();
    let offer = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
    fw.launch(
        &offer,
        vec![task("nobody", &offer.agent_id, "cpus:0.1;mem:32", script)],
    )
    .await
    .unwrap();
    let status = fw.wait_terminal("nobody", T).await.unwrap();
    let fw_id = fw.driver.framework_id().to_string();
    let out = read_sandbox(cluster, 0, &fw_id, "nobody", "stdout");
    let err = read_sandbox(cluster, 0, &fw_id, "nobody", "stderr");
    assert_eq!(
        status.state,
        TaskState::Finished,
        "{status:?}\n{out}\n{err}\n{}",
        cluster.logs()
    );
    let sandbox = sandbox_file(cluster, 0, &fw_id, "nobody", "stdout")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let meta = std::fs::metadata(&sandbox).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o7777), (65534, 0o750));
    lines_without_seccomp_filters(&out)
}

/// A framework's tasks run as its user, with no capabilities. Without a mount namespace
/// (`--isolation none`) the work dir is in view, and the sandboxes' 0750 keep another user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frameworks_tasks_run_as_its_user_and_sandboxes_keep_other_users_out() {
    let probe = bin("strata-probe").display().to_string();
    for flags in [&[][..], &["--isolation", "none"][..]] {
        let cluster = Cluster::start_with_agent_flags(&["cpus:2;mem:1024"], &[], flags).unwrap();
        // The harness's dir is private (0700); the agent's work dir below it is not.
        std::fs::set_permissions(cluster.dir.path(), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        let mut fw = TestFramework::subscribe(&cluster.master.addr(), "root")
            .await
            .unwrap();
        let victim = start_victim(&cluster, &mut fw).await;
        // The rest of the agent goes to the other framework.
        let rest = fw.offer_with("cpus:0.2;mem:32", T).await.unwrap();
        fw.driver.decline(vec![rest.id], 3600.0).await.unwrap();
        let script = format!(
            "id -u; {probe} read {secret} write $MESOS_SANDBOX/mine; \
             grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
            secret = victim.join("secret.txt").display()
        );
        let lines = run_as_nobody(&cluster, &script).await;
        let denied = if flags.is_empty() { "ENOENT" } else { "EACCES" };
        assert_eq!(lines[0], "65534", "{flags:?}: {lines:?}");
        assert_eq!(
            lines[1],
            format!("read {} err {denied}", victim.join("secret.txt").display()),
            "{flags:?}"
        );
        assert!(
            lines[2].starts_with("write ") && lines[2].ends_with(" ok"),
            "{lines:?}"
        );
        assert_eq!(
            lines[3..],
            ["CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"],
            "{flags:?}"
        );
    }
}
