//! `strata-agent supervise <dir>` against the real kernel: namespaces, cgroup, stdio, users,
//! signals, cleanup, and the line protocol.

use crate::harness::{alive, eventually, Fixture, TEST_PATH};
use nix::sys::signal::Signal;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;
use strata_agent::supervisor::{ExitStatus, FORCE_FORK_ENV, PID_FILE};
use strata_isolators::cgroup2::Cgroup;

#[test]
fn stdio_lands_in_the_sandbox_and_the_exit_code_is_reported() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "echo out; pwd; echo err >&2; exit 3"]);
    let mut sup = fx.spawn(&spec);
    let pid = sup.expect_running();
    assert!(pid > 1);
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.line(), "", "nothing after \"exited\"");
    assert_eq!(sup.wait(), Some(0), "log: {}", fx.supervisor_log());
    assert_eq!(
        fx.status(),
        ExitStatus {
            exit_code: Some(3),
            signal: None,
            message: "Command exited with status 3".to_string(),
            started: true,
            ..ExitStatus::default()
        }
    );
    assert_eq!(
        fx.sandbox_file("stdout"),
        format!("out\n{}\n", fx.sandbox.display())
    );
    assert_eq!(fx.sandbox_file("stderr"), "err\n");
    assert_eq!(
        std::fs::read_to_string(fx.dir.path().join(PID_FILE)).unwrap(),
        pid.to_string()
    );
    assert!(!spec.cgroup.exists(), "the container's cgroup is removed");
}

#[test]
fn the_environment_is_exactly_the_specs() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&["env"]);
    spec.env
        .push(("GREETING".to_string(), "hello world".to_string()));
    spec.env.push(("EMPTY".to_string(), String::new()));
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    assert_eq!(fx.status().exit_code, Some(0));
    assert_eq!(fx.status().message, "Command exited with status 0");
    assert_eq!(
        fx.sandbox_file("stdout"),
        format!("PATH={TEST_PATH}\nGREETING=hello world\nEMPTY=\n")
    );
}

#[test]
fn the_task_has_its_own_hostname_pid_namespace_and_proc() {
    check_namespaces(&[]);
}

/// Init created as on kernels without `clone3(CLONE_INTO_CGROUP)`.
#[test]
fn the_task_has_its_own_namespaces_and_cgroup_when_init_is_forked() {
    check_namespaces(&[(FORCE_FORK_ENV, "1")]);
}

fn check_namespaces(env: &[(&str, &str)]) {
    let fx = Fixture::new();
    let script = "echo $$; hostname; ls /proc | grep -c '^[0-9]'; cat /proc/1/cgroup; sleep 1000";
    let spec = fx.spec(&["sh", "-c", script]);
    let mut sup = fx.spawn_with(&spec, env);
    let init = sup.expect_running();
    // Init is in the container's cgroup (and so is everything it forks).
    let pids = container_pids(&spec.cgroup, 3);
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");
    let mut ns = Vec::new();
    for kind in ["pid_for_children", "mnt", "uts", "ipc", "net"] {
        let host = std::fs::read_link(format!("/proc/self/ns/{kind}")).unwrap();
        let container = std::fs::read_link(format!("/proc/{init}/ns/{kind}")).unwrap();
        ns.push((kind, host != container));
    }
    let expected = [
        ("pid_for_children", true),
        ("mnt", true),
        ("uts", true),
        ("ipc", true),
        ("net", false),
    ];
    assert_eq!(ns, expected, "which namespaces differ from the host's");
    // Wait for the script to reach its sleep before ending it. On a hybrid host, the v1
    // hierarchies' lines (the machine's, untouched) come before the unified one, `0::`.
    let cgroup = spec
        .cgroup
        .strip_prefix(crate::harness::cgroup2_mount())
        .unwrap();
    let unified = format!("0::/{}", cgroup.display());
    let reached_sleep = || {
        fx.sandbox_file("stdout")
            .lines()
            .any(|l| l.starts_with("0::"))
    };
    assert!(eventually(Duration::from_secs(10), reached_sleep));
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert_eq!(fx.status().signal, Some(libc::SIGTERM));
    let out = fx.sandbox_file("stdout");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 4, "{out}");
    // Init is pid 1, the task pid 2.
    assert_eq!(lines[0], "2", "{out}");
    assert_eq!(lines[1], "strata-it");
    // init, sh, ls, grep (and perhaps a subshell): only the container is visible.
    let count: usize = lines[2].parse().unwrap();
    assert!(
        (2..=6).contains(&count),
        "{count} processes visible in the container's /proc"
    );
    // No cgroup namespace: the container sees its cgroup's path as the host does.
    assert_eq!(lines.last(), Some(&unified.as_str()), "{out}");
    assert_ne!(
        nix::unistd::gethostname().unwrap(),
        "strata-it",
        "the host's hostname is untouched"
    );
    assert!(!spec.cgroup.exists());
}

#[test]
fn an_unknown_executable_fails_to_start() {
    let fx = Fixture::new();
    let spec = fx.spec(&["strata-no-such-command", "x"]);
    let mut sup = fx.spawn(&spec);
    let message = "failed to execute \"strata-no-such-command\": No such file or directory";
    assert_eq!(sup.line(), format!("failed {message}"));
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    assert_eq!(
        fx.status(),
        ExitStatus {
            exit_code: Some(127),
            signal: None,
            message: message.to_string(),
            started: false,
            ..ExitStatus::default()
        }
    );
    assert!(!fx.dir.path().join(PID_FILE).exists());
    assert!(!spec.cgroup.exists());
}

#[test]
fn an_unknown_user_fails_to_start() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&["true"]);
    spec.user = Some("strata-no-such-user".to_string());
    let mut sup = fx.spawn(&spec);
    assert_eq!(sup.line(), "failed unknown user \"strata-no-such-user\"");
    assert_eq!(sup.line(), "exited");
    sup.wait();
    let status = fx.status();
    assert!(!status.started);
    assert_eq!(status.exit_code, None);
    assert!(!spec.cgroup.exists());
}

#[test]
fn a_missing_cgroup_parent_fails_to_start_with_the_path() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&["true"]);
    spec.cgroup = fx.parent.path().join("missing").join("c1");
    let mut sup = fx.spawn(&spec);
    let line = sup.line();
    assert!(
        line.starts_with("failed ")
            && line.contains(&spec.cgroup.parent().unwrap().display().to_string()),
        "{line}"
    );
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert!(!fx.status().started);
}

#[test]
fn runs_as_the_given_user() {
    let fx = Fixture::new();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("no user nobody");
    nix::unistd::chown(&fx.sandbox, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let mut spec = fx.spec(&["sh", "-c", "id -u; id -g"]);
    spec.user = Some("nobody".to_string());
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert_eq!(
        fx.status().exit_code,
        Some(0),
        "stderr: {}",
        fx.sandbox_file("stderr")
    );
    assert_eq!(
        fx.sandbox_file("stdout"),
        format!("{}\n{}\n", nobody.uid, nobody.gid)
    );
    assert_eq!(
        std::fs::metadata(fx.sandbox.join("stdout")).unwrap().uid(),
        nobody.uid.as_raw()
    );
}

#[test]
fn sigterm_to_the_supervisor_terminates_the_task() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sleep", "1000"]);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    assert_eq!(
        fx.status(),
        ExitStatus {
            exit_code: None,
            signal: Some(libc::SIGTERM),
            message: "Command terminated with signal Terminated".to_string(),
            started: true,
            ..ExitStatus::default()
        }
    );
    assert!(!spec.cgroup.exists());
}

#[test]
fn signals_reach_the_tasks_whole_process_group() {
    let fx = Fixture::new();
    // The shell waits for its child on SIGTERM; the child only ends when it gets SIGTERM itself.
    let script = "trap 'wait; exit 7' TERM; \
        (trap 'echo graceful; exit 0' TERM; while :; do sleep 0.01; done) & wait";
    let spec = fx.spec(&["sh", "-c", script]);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    // init, sh, the subshell and a sleep: the traps are set.
    container_pids(&spec.cgroup, 4);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert_eq!(fx.status().exit_code, Some(7), "{:?}", fx.status());
    assert_eq!(fx.sandbox_file("stdout"), "graceful\n");
}

/// The pids of the container's processes once it has at least `count`.
fn container_pids(cgroup: &std::path::Path, count: usize) -> Vec<i32> {
    let cg = Cgroup::open(cgroup).unwrap();
    let mut pids = Vec::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            pids = cg.procs().unwrap_or_default();
            pids.len() >= count
        }),
        "the container has {pids:?}"
    );
    pids
}

#[test]
fn cgroup_kill_ends_a_process_tree_and_nothing_survives() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let mut sup = fx.spawn(&spec);
    let init = sup.expect_running();
    // init, sh and two sleeps.
    let pids = container_pids(&spec.cgroup, 4);
    assert!(pids.contains(&init), "{pids:?} lacks init {init}");
    Cgroup::open(&spec.cgroup).unwrap().kill().unwrap();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    let status = fx.status();
    assert!(status.started);
    assert_eq!(status.signal, Some(libc::SIGKILL), "{status:?}");
    assert_eq!(status.message, "Command terminated with signal Killed");
    assert!(!spec.cgroup.exists());
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the container survived");
    }
}

#[test]
fn sigterm_ends_a_process_tree_and_nothing_survives() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    let pids = container_pids(&spec.cgroup, 4);
    sup.signal(Signal::SIGTERM);
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    assert_eq!(fx.status().signal, Some(libc::SIGTERM));
    assert!(!spec.cgroup.exists());
    for pid in pids {
        assert!(!alive(pid), "process {pid} of the container survived");
    }
}

#[test]
fn the_supervisor_outlives_its_reader() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "sleep 0.3; echo done; exit 4"]);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    // The agent goes away: the pipe's read end closes before `exited` is written.
    drop(sup.stdout.take());
    assert_eq!(sup.wait(), Some(0), "log: {}", fx.supervisor_log());
    assert_eq!(fx.status().exit_code, Some(4));
    assert_eq!(fx.sandbox_file("stdout"), "done\n");
    assert!(!spec.cgroup.exists());
}

#[test]
fn killing_the_supervisor_leaves_the_container_to_the_agent() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sleep", "1000"]);
    let mut sup = fx.spawn(&spec);
    let init = sup.expect_running();
    sup.signal(Signal::SIGKILL);
    // The agent's pipe sees EOF at once: the container holds no copy of it.
    assert_eq!(sup.line(), "");
    sup.wait();
    assert!(alive(init), "the container goes on without its supervisor");
    let cg = Cgroup::open(&spec.cgroup).unwrap();
    cg.kill().unwrap();
    assert!(cg.wait_empty(Duration::from_secs(5)));
    cg.remove().unwrap();
}

#[test]
fn an_unreadable_spec_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.json"), "{not json").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata-agent"))
        .arg("supervise")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("failed invalid container spec"),
        "{stdout}"
    );
    assert!(stdout.ends_with("exited\n"), "{stdout}");
    let status: ExitStatus =
        serde_json::from_slice(&std::fs::read(dir.path().join("status.json")).unwrap()).unwrap();
    assert!(!status.started);
}

#[test]
fn isolation_settings_reach_the_task() {
    check_isolation(&[]);
}

#[test]
fn isolation_settings_reach_the_task_when_init_is_forked() {
    check_isolation(&[(FORCE_FORK_ENV, "1")]);
}

/// Mounts (fresh /proc, private /tmp, a read-only bind), the bounding set, rlimits and
/// no_new_privs, as the isolators hand them to the supervisor in `spec.json`.
fn check_isolation(env: &[(&str, &str)]) {
    use strata_agent::supervisor::ProcessIsolation;
    use strata_isolators::launch::{BindMount, Mounts, Rlimit, Tmpfs};
    let fx = Fixture::new();
    let ro = fx.dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("f"), "ro data\n").unwrap();
    let target = fx.sandbox.join("mnt");
    std::fs::create_dir(&target).unwrap();
    let script = "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status; \
                  echo $(ulimit -Sn) $(ulimit -Hn); \
                  grep ' /tmp ' /proc/self/mountinfo | grep -c ' - tmpfs '; \
                  touch /tmp/x && echo tmp; cat mnt/f; touch mnt/g 2>/dev/null || echo ro";
    let mut spec = fx.spec(&["sh", "-c", script]);
    spec.isolation = ProcessIsolation {
        mounts: Mounts {
            proc: true,
            tmp: Some(Tmpfs {
                size_bytes: Some(1 << 20),
            }),
            read_only_binds: vec![BindMount {
                source: ro.clone(),
                target,
            }],
            read_write_binds: Vec::new(),
            read_only_kernel: false,
            masks: Vec::new(),
        },
        bounding_capabilities: Some(vec!["CAP_CHOWN".to_string(), "CAP_KILL".to_string()]),
        no_new_privs: true,
        seccomp: None,
        rlimits: vec![Rlimit {
            resource: "nofile".to_string(),
            soft: Some(100),
            hard: Some(200),
        }],
    };
    let mut sup = fx.spawn_with(&spec, env);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    let out = fx.sandbox_file("stdout");
    assert_eq!(
        fx.status().exit_code,
        Some(0),
        "{out}{}",
        fx.sandbox_file("stderr")
    );
    assert_eq!(
        out,
        "CapEff:\t0000000000000021\nCapBnd:\t0000000000000021\nNoNewPrivs:\t1\n\
         100 200\n1\ntmp\nro data\nro\n"
    );
    assert!(!ro.join("g").exists());
    assert_eq!(fx.status().oom_kills, 0);
}

#[test]
fn a_bad_isolation_setting_fails_the_start_clearly() {
    let fx = Fixture::new();
    let mut spec = fx.spec(&["true"]);
    spec.isolation.bounding_capabilities = Some(vec!["CAP_FLY".to_string()]);
    let mut sup = fx.spawn(&spec);
    assert_eq!(sup.line(), "failed unknown capability \"CAP_FLY\"");
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert!(!fx.status().started);
    assert!(!spec.cgroup.exists());
}

#[test]
fn a_mount_that_fails_in_init_stops_the_task_before_it_runs() {
    use strata_isolators::launch::BindMount;
    let fx = Fixture::new();
    let mut spec = fx.spec(&["sh", "-c", "echo ran"]);
    spec.isolation.mounts.read_only_binds = vec![BindMount {
        source: "/no/such/source".into(),
        target: fx.sandbox.clone(),
    }];
    let mut sup = fx.spawn(&spec);
    let line = sup.line();
    assert!(
        line.starts_with("failed failed to bind /no/such/source on "),
        "{line}"
    );
    assert_eq!(sup.line(), "exited");
    sup.wait();
    assert!(!fx.status().started);
    assert_eq!(fx.sandbox_file("stdout"), "", "the task never ran");
    assert!(!spec.cgroup.exists());
}

#[test]
fn the_container_is_not_shielded_from_the_oom_killer_as_the_agent_may_be() {
    let fx = Fixture::new();
    let spec = fx.spec(&["sh", "-c", "cat /proc/self/oom_score_adj"]);
    // As under the packaged systemd unit (OOMScoreAdjust=-1000), which supervisors inherit.
    // Lowering it needs CAP_SYS_RESOURCE, which some build machines' root lacks: there the
    // supervisor starts at +500 instead, and the container must still get 0.
    let shield =
        r#"{ echo -1000 || echo 500; } 2>/dev/null >/proc/self/oom_score_adj && exec "$@""#;
    let mut sup = fx.spawn_wrapped(&spec, &[], &["sh", "-c", shield, "sh"]);
    let pid = sup.expect_running();
    assert!(pid > 1);
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0), "log: {}", fx.supervisor_log());
    assert_eq!(fx.status().exit_code, Some(0), "{:?}", fx.status());
    assert_eq!(fx.sandbox_file("stdout"), "0\n");
}

/// Persistent volumes as the agent attaches them to a command task (bind mounts made by init,
/// behind the private `/tmp` as in the agent's tests): what the task writes stays in the volume
/// after it ends, and a read-only volume refuses writes.
#[test]
fn persistent_volumes_outlive_the_task() {
    use strata_agent::volumes;
    use strata_isolators::launch::{Mounts, Tmpfs};
    let fx = Fixture::new();
    let work_dir = fx.dir.path().join("work");
    let resources =
        strata_schema::Resources::parse("disk(ops)[v1:data]:64;disk(ops)[v2:in/ro:ro]:1").unwrap();
    volumes::ensure(&work_dir, &resources, None).unwrap();
    std::fs::write(volumes::dir(&work_dir, "ops", "v2").join("f"), "ro data\n").unwrap();
    let mut mounts = Mounts {
        proc: true,
        tmp: Some(Tmpfs {
            size_bytes: Some(1 << 20),
        }),
        ..Mounts::default()
    };
    volumes::attach_to_command(&work_dir, &fx.sandbox, &resources, true, &mut mounts).unwrap();
    let script = "echo kept > data/f && cat in/ro/f; touch in/ro/g 2>/dev/null || echo ro";
    let mut spec = fx.spec(&["sh", "-c", script]);
    spec.isolation.mounts = mounts;
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    let out = fx.sandbox_file("stdout");
    assert_eq!(out, "ro data\nro\n", "{}", fx.sandbox_file("stderr"));
    // The bind was the container's: the sandbox holds an empty mount point, the volume the data.
    assert!(!fx.sandbox.join("data/f").exists());
    assert_eq!(
        std::fs::read_to_string(volumes::dir(&work_dir, "ops", "v1").join("f")).unwrap(),
        "kept\n"
    );
    assert!(!volumes::dir(&work_dir, "ops", "v2").join("g").exists());
    std::fs::remove_dir_all(&fx.sandbox).unwrap();
    assert!(volumes::dir(&work_dir, "ops", "v1").join("f").is_file());
}

/// A masked work dir outside /tmp (as in production): the task sees its sandbox and its volume
/// there and nothing else, cannot write the mask, and runs with no_new_privs (even when the spec
/// does not ask for it) and the default seccomp filter.
#[test]
fn a_masked_work_dir_shows_only_the_sandbox_and_the_task_runs_filtered() {
    use strata_isolators::launch::{BindMount, Mounts, Tmpfs};
    use strata_isolators::linux::seccomp::Profile;
    let fx = Fixture::new();
    let work = tempfile::tempdir_in("/var/tmp").unwrap();
    let w = work.path();
    std::fs::create_dir_all(w.join("other")).unwrap();
    std::fs::write(w.join("other/secret"), "secret\n").unwrap();
    std::fs::create_dir_all(w.join("runs/s1/vol")).unwrap();
    std::fs::create_dir_all(w.join("volumes/v1")).unwrap();
    let mut masks = vec![w.to_path_buf()];
    let bpf = std::path::Path::new("/sys/fs/bpf");
    if bpf.is_dir() {
        masks.push(bpf.to_path_buf());
    }
    let script = format!(
        "cat {w}/other/secret 2>/dev/null || echo hidden; ls {w}; ls {w}/runs; \
         echo hi > {w}/runs/s1/out && echo sandbox-ok; echo v > vol/f && echo vol-ok; \
         touch {w}/x 2>/dev/null || echo masked-ro; \
         echo bpf $(ls -A /sys/fs/bpf 2>/dev/null | wc -l); \
         grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; \
         (cat /proc/sys/kernel/hostname > /proc/sys/kernel/hostname) 2>/dev/null || echo proc-sys-ro; \
         awk '{{o[$5] = $6}} END {{for (p in o) if (p ~ \"^/sys\" && o[p] !~ \"(^|,)ro(,|$)\") n++; print \"rw-sys\", n+0}}' /proc/self/mountinfo; \
         awk '$5 ~ \"^/sys\" {{n++}} END {{print (n > 1 ? \"sys-mounts\" : \"no-sys-mounts\")}}' /proc/self/mountinfo",
        w = w.display()
    );
    let mut spec = fx.spec(&["sh", "-c", &script]);
    spec.sandbox = w.join("runs/s1");
    spec.isolation.mounts = Mounts {
        proc: true,
        tmp: Some(Tmpfs {
            size_bytes: Some(1 << 20),
        }),
        masks,
        read_only_kernel: true,
        read_write_binds: vec![BindMount {
            source: w.join("volumes/v1"),
            target: w.join("runs/s1/vol"),
        }],
        ..Mounts::default()
    };
    spec.isolation.no_new_privs = false;
    spec.isolation.seccomp = Some(Profile::Default);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    let out = std::fs::read_to_string(w.join("runs/s1/stdout")).unwrap();
    let err = std::fs::read_to_string(w.join("runs/s1/stderr")).unwrap();
    assert_eq!(
        out,
        "hidden\nruns\ns1\nsandbox-ok\nvol-ok\nmasked-ro\nbpf 0\nNoNewPrivs:\t1\nSeccomp:\t2\n\
         proc-sys-ro\nrw-sys 0\nsys-mounts\n",
        "{err}\n{}",
        fx.supervisor_log()
    );
    assert_eq!(
        std::fs::read_to_string(w.join("runs/s1/out")).unwrap(),
        "hi\n"
    );
    assert_eq!(
        std::fs::read_to_string(w.join("volumes/v1/f")).unwrap(),
        "v\n"
    );
    assert!(!w.join("x").exists());
    assert!(w.join("other/secret").exists());
}

/// A spec without a seccomp profile (`--seccomp-profile-name unconfined`) runs unfiltered, but
/// still with no_new_privs.
#[test]
fn an_unconfined_spec_runs_without_a_filter() {
    let fx = Fixture::new();
    let spec = fx.spec(&[
        "sh",
        "-c",
        "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status",
    ]);
    let mut sup = fx.spawn(&spec);
    sup.expect_running();
    assert_eq!(sup.line(), "exited");
    assert_eq!(sup.wait(), Some(0));
    assert_eq!(fx.sandbox_file("stdout"), "NoNewPrivs:\t1\nSeccomp:\t0\n");
}
