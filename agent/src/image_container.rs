//! Tasks with an image: the agent provides the image from its store and describes the container
//! (root filesystem layers, argv and environment merged with the image's config, user, binds) in
//! `spec.json`; the supervisor mounts the overlay root filesystem, builds the OCI runtime spec
//! (`strata_images::runtime`, with `oci-spec`) and creates and starts the container with
//! libcontainer.
//!
//! ```text
//! agent (blocking pool)                supervisor (single-threaded)
//! store.provision(image) ─▶ image.json  unshare(NEWNS), / rslave
//! argv/env/user/binds    ─▶ spec.json   bind <cgroup2>/<cgroups-root> on /sys/fs/cgroup
//! cgroup + isolators' limits            mount overlay (layers ─ upper/work) on <dir>/rootfs
//!                                       user from the image's /etc/passwd; config.json
//!                                       launcher, born in the cgroup (clone3 INTO_CGROUP):
//!                                         libcontainer: build (clone, pivot_root) ─▶ start
//!                                       "running <pid>" ─▶ waitpid ─▶ memory.events ─▶ cgroup.kill,
//!                                       rmdir ─▶ status.json
//! ```
//!
//! The task's seccomp filter (`linux/seccomp`) is compiled by the supervisor and installed by
//! [`SeccompExecutor`], the workload executor libcontainer calls last in the container's init,
//! after the container start signal and right before `execvp`: libcontainer's own setup
//! (mounts, `pivot_root`, namespaces) never runs under it, and this crate needs no libseccomp
//! (libcontainer applies `linux.seccomp` only with its `libseccomp` feature, which is off; the
//! runtime spec carries none). no_new_privs is always set.
//!
//! libcontainer picks its cgroup manager from what is mounted at `/sys/fs/cgroup`. On a hybrid
//! host that is a tmpfs of v1 hierarchies, and its v1 manager would write them. So the
//! supervisor presents, in its private mount namespace, the agent's own cgroup2 subtree at
//! `/sys/fs/cgroup`: libcontainer sees a pure cgroup2 host whose root is that subtree, joins
//! the container's cgroup there (`linux.cgroupsPath = /<container id>`) and writes nothing
//! above it. This crate builds libcontainer without its `v1` feature, so there is no v1 manager
//! to pick at all: a host where this failed would fail the launch, never write a v1 hierarchy.

use crate::containerizer::TaskCheckpoint;
use crate::supervisor::{self, ContainerSpec, ExitStatus, SupervisorError, PID_FILE};
use nix::mount::{mount, MsFlags};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use strata_images::overlay::{self, RootfsDirs};
use strata_images::runtime::{self, Bind, SANDBOX};
use strata_images::store::CONTAINER_IMAGE_FILE;
use strata_images::user::{self, ResolvedUser};
use strata_images::Store;
use strata_isolators::cgroup2::Cgroup;
use strata_isolators::cgroups::mem;
use strata_isolators::linux::seccomp::{self, Filters};

/// Where libcontainer finds cgroups (in the supervisor's mount namespace).
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";

/// The image part of a container's `spec.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ImageLaunch {
    /// The image's name, as the task gave it.
    pub name: String,
    pub rootfs: RootfsDirs,
    /// The user to run as, resolved in the image (`name`, `uid`, `name:group`, `uid:gid`);
    /// `None`: root.
    pub user: Option<String>,
    /// The working directory in the container.
    pub cwd: String,
    /// The sandbox, then read-only mounts and volumes.
    pub binds: Vec<Bind>,
    /// The agent's cgroup2 subtree (the parent of the container's cgroup), shown to
    /// libcontainer as `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// libcontainer's state directory.
    pub runtime_root: PathBuf,
    /// Persistent volumes created for this task, given to its user with the sandbox.
    #[serde(default)]
    pub new_volumes: Vec<PathBuf>,
}

/// Provides the task's image and turns `spec` into an image container's spec (agent side).
/// `persistent` are the task's persistent volumes as host-path volumes (`crate::volumes`), bound
/// after the container's own; `new_volumes` those of them created for this task. Blocks (the
/// image may be pulled): runs on the launch's blocking thread.
pub fn prepare(
    store: &Store,
    ckpt: &TaskCheckpoint,
    dir: &Path,
    spec: &mut ContainerSpec,
    persistent: &[strata_schema::Volume],
    new_volumes: &[PathBuf],
) -> Result<(), String> {
    let task = &ckpt.task;
    let Some(image) = task.image() else {
        return Ok(());
    };
    let provisioned = store
        .provision(&image.name, &dir.join(CONTAINER_IMAGE_FILE))
        .map_err(|err| format!("image {}: {err}", image.name))?;
    let config = &provisioned.record.config;
    let argv = runtime::argv(&task.command, config)?;
    // The agent's defaults (PATH, HOME) give way to the image's; the Mesos variables and the
    // task's own environment win over the image's.
    let task_sets = |name: &str| task.command.environment.iter().any(|(n, _)| n == name);
    let extra: Vec<(String, String)> = spec
        .env
        .iter()
        .filter(|(n, _)| !matches!(n.as_str(), "PATH" | "HOME") || task_sets(n))
        .map(|(n, v)| {
            if n == "MESOS_SANDBOX" {
                (n.clone(), SANDBOX.to_string())
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect();
    let env = runtime::env(config, &extra, &[]);

    let mut binds = vec![Bind {
        source: ckpt.sandbox.clone(),
        destination: SANDBOX.to_string(),
        read_only: false,
    }];
    // filesystem/linux's read-only mounts: a target in the sandbox moves with the sandbox.
    for ro in std::mem::take(&mut spec.isolation.mounts.read_only_binds) {
        let destination = match ro.target.strip_prefix(&ckpt.sandbox) {
            Ok(rest) => Path::new(SANDBOX).join(rest),
            Err(_) => ro.target.clone(),
        };
        binds.push(Bind {
            source: ro.source,
            destination: destination.to_string_lossy().into_owned(),
            read_only: true,
        });
    }
    // The task's own host-path volumes may not show what the agent hides from tasks (its work
    // dir, the BPF filesystem: the masks of the spec), nor a directory holding one of them.
    let hidden: Vec<PathBuf> = std::mem::take(&mut spec.isolation.mounts.masks)
        .into_iter()
        .map(|m| std::fs::canonicalize(&m).unwrap_or(m))
        .collect();
    for volume in task.container.iter().flat_map(|c| c.volumes.iter()) {
        let host = std::fs::canonicalize(&volume.host_path)
            .unwrap_or_else(|_| PathBuf::from(&volume.host_path));
        if let Some(mask) = hidden
            .iter()
            .find(|m| host.starts_with(m) || m.starts_with(&host))
        {
            return Err(format!(
                "volume {}: the host path {} would show {}, which tasks may not see",
                volume.container_path,
                volume.host_path,
                mask.display()
            ));
        }
    }
    let own = task.container.iter().flat_map(|c| c.volumes.iter());
    for volume in own.chain(persistent) {
        let host = PathBuf::from(&volume.host_path);
        if !host.exists() {
            return Err(format!(
                "volume {}: the host path {} does not exist",
                volume.container_path,
                host.display()
            ));
        }
        let destination = if volume.container_path.starts_with('/') {
            PathBuf::from(&volume.container_path)
        } else {
            Path::new(SANDBOX).join(&volume.container_path)
        };
        binds.push(Bind {
            source: host,
            destination: destination.to_string_lossy().into_owned(),
            read_only: volume.mode == strata_schema::VolumeMode::Ro,
        });
    }
    let cgroup_root = spec
        .cgroup
        .parent()
        .ok_or_else(|| format!("the cgroup {} has no parent", spec.cgroup.display()))?
        .to_path_buf();
    let user = task.command.user.clone().or_else(|| config.user.clone());
    spec.image = Some(ImageLaunch {
        name: image.name.clone(),
        rootfs: RootfsDirs {
            layers_root: store.root().join("layers"),
            layers: provisioned
                .record
                .layers
                .iter()
                .map(|l| l.digest.hex().to_string())
                .collect(),
            upper: dir.join("upper"),
            work: dir.join("work"),
            target: dir.join("rootfs"),
        },
        user,
        cwd: config
            .working_dir
            .clone()
            .unwrap_or_else(|| SANDBOX.to_string()),
        binds,
        cgroup_root,
        runtime_root: dir.join("runtime"),
        new_volumes: new_volumes.to_vec(),
    });
    spec.argv = argv;
    spec.env = env;
    spec.user = None;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In the supervisor.

/// Runs the image container of `spec` to its end and writes `dir/status.json` (the
/// supervisor's [`supervisor::supervise`] for tasks with an image).
pub fn supervise(
    dir: &Path,
    spec: &ContainerSpec,
    image: &ImageLaunch,
) -> Result<ExitStatus, SupervisorError> {
    let status = match start(dir, spec, image) {
        Ok((pid, cgroup)) => {
            if let Err(err) =
                supervisor::write_file(&dir.join(PID_FILE), pid.to_string().as_bytes(), false)
            {
                supervisor::log(format_args!(
                    "failed to write {}: {err}",
                    dir.join(PID_FILE).display()
                ));
            }
            supervisor::report(format_args!("running {pid}"));
            wait(pid, &cgroup, image)
        }
        Err(message) => {
            let message = supervisor::one_line(&message);
            supervisor::log(format_args!(
                "container {} failed to start: {message}",
                spec.container_id
            ));
            supervisor::report(format_args!("failed {message}"));
            ExitStatus {
                message,
                started: false,
                ..ExitStatus::default()
            }
        }
    };
    supervisor::write_status(dir, &status)?;
    supervisor::report(format_args!("exited"));
    Ok(status)
}

/// The container's cgroup as the supervisor sees it once the agent's subtree is on
/// `/sys/fs/cgroup`.
fn container_cgroup(spec: &ContainerSpec) -> PathBuf {
    Path::new(CGROUP_MOUNT).join(spec.cgroup.file_name().unwrap_or_default())
}

/// Sets up the supervisor's mount namespace and the root filesystem, and creates and starts
/// the container. Returns the container's init pid (on the host) and its cgroup.
fn start(dir: &Path, spec: &ContainerSpec, image: &ImageLaunch) -> Result<(i32, Cgroup), String> {
    // A private mount namespace: the overlay and the cgroup2 view are the supervisor's alone,
    // and disappear with it. Host mounts still propagate in (slave).
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("failed to create the supervisor's mount namespace: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| format!("failed to make the mount tree a slave: {e}"))?;
    mount(
        Some(&image.cgroup_root),
        CGROUP_MOUNT,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "failed to show the cgroup2 subtree {} at {CGROUP_MOUNT}: {e}",
            image.cgroup_root.display()
        )
    })?;
    let cgroup_path = container_cgroup(spec);
    // The agent created the cgroup with the isolators' limits; create it if it is missing.
    let cgroup = match Cgroup::open(&cgroup_path) {
        Ok(cg) => cg,
        Err(_) => Cgroup::open(CGROUP_MOUNT)
            .and_then(|root| root.create_child(spec.container_id.as_str()))
            .map_err(|e| e.to_string())?,
    };
    let result = create(dir, spec, image, &cgroup);
    if result.is_err() {
        supervisor::cleanup_cgroup(&cgroup);
        overlay::unmount_rootfs(&image.rootfs.target);
        let _ = std::fs::remove_dir_all(&image.runtime_root);
    }
    result.map(|pid| (pid, cgroup))
}

fn create(
    dir: &Path,
    spec: &ContainerSpec,
    image: &ImageLaunch,
    cgroup: &Cgroup,
) -> Result<i32, String> {
    overlay::mount_rootfs(&image.rootfs).map_err(|e| e.to_string())?;
    let rootfs = &image.rootfs.target;
    let resolved = match &image.user {
        None => ResolvedUser::ROOT,
        Some(u) => user::resolve(
            u,
            &user::read_etc(rootfs, "passwd"),
            &user::read_etc(rootfs, "group"),
        )?,
    };
    if resolved.uid != 0 {
        nix::unistd::chown(
            &spec.sandbox,
            Some(nix::unistd::Uid::from_raw(resolved.uid)),
            Some(nix::unistd::Gid::from_raw(resolved.gid)),
        )
        .map_err(|e| format!("failed to give the sandbox to uid {}: {e}", resolved.uid))?;
        for volume in &image.new_volumes {
            nix::unistd::chown(
                volume,
                Some(nix::unistd::Uid::from_raw(resolved.uid)),
                Some(nix::unistd::Gid::from_raw(resolved.gid)),
            )
            .map_err(|e| {
                format!(
                    "failed to give the persistent volume {} to uid {}: {e}",
                    volume.display(),
                    resolved.uid
                )
            })?;
        }
    }
    let rlimits: Vec<(String, Option<u64>, Option<u64>)> = spec
        .isolation
        .rlimits
        .iter()
        .map(|r| (r.resource.clone(), r.soft, r.hard))
        .collect();
    let cgroups_path = format!("/{}", spec.container_id);
    let runtime_spec = runtime::build(&runtime::SpecInput {
        rootfs,
        argv: &spec.argv,
        env: &spec.env,
        cwd: &image.cwd,
        user: &resolved,
        hostname: &spec.hostname,
        namespaces: runtime::Namespaces {
            pid: spec.namespaces.pid,
            uts: spec.namespaces.uts,
            ipc: spec.namespaces.ipc,
            net: spec.namespaces.net,
        },
        cgroups_path: &cgroups_path,
        binds: &image.binds,
        tmp: spec.isolation.mounts.tmp.as_ref().map(|t| t.size_bytes),
        bounding_capabilities: spec.isolation.bounding_capabilities.as_deref(),
        // Always, as for command tasks.
        no_new_privs: true,
        rlimits: &rlimits,
    })?;
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle)
        .map_err(|e| format!("failed to create {}: {e}", bundle.display()))?;
    runtime_spec
        .save(bundle.join("config.json"))
        .map_err(|e| format!("failed to write the runtime spec: {e}"))?;
    std::fs::create_dir_all(&image.runtime_root)
        .map_err(|e| format!("failed to create {}: {e}", image.runtime_root.display()))?;
    let output = |name: &str| -> Result<File, String> {
        let path = spec.sandbox.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .map_err(|e| format!("failed to open {}: {e}", path.display()))?;
        if resolved.uid != 0 {
            let _ = nix::unistd::fchown(
                &file,
                Some(nix::unistd::Uid::from_raw(resolved.uid)),
                Some(nix::unistd::Gid::from_raw(resolved.gid)),
            );
        }
        Ok(file)
    };
    let stdout = output("stdout")?;
    let stderr = output("stderr")?;
    let executor = SeccompExecutor {
        filters: spec
            .isolation
            .seccomp
            .as_ref()
            .map(|profile| {
                seccomp::compile(profile, spec.isolation.bounding_capabilities.as_deref())
            })
            .transpose()
            .map_err(|e| e.to_string())?,
    };
    let pid = launch_in_cgroup(cgroup, || {
        let stdin =
            File::open("/dev/null").map_err(|e| format!("failed to open /dev/null: {e}"))?;
        let mut container = libcontainer::container::builder::ContainerBuilder::new(
            spec.container_id.clone(),
            libcontainer::syscall::syscall::SyscallType::default(),
        )
        .with_root_path(&image.runtime_root)
        .map_err(|e| format!("libcontainer: {e}"))?
        .with_executor(executor)
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("failed to create the container: {}", error_chain(&e)))?;
        let pid = container
            .pid()
            .ok_or_else(|| "libcontainer created the container without a pid".to_string())?
            .as_raw();
        // Before the task runs. The supervisor may be shielded from the OOM killer (-1000, the
        // packaged unit's setting); the container must not be, or its own memory.max could
        // never be enforced.
        std::fs::write(format!("/proc/{pid}/oom_score_adj"), b"0")
            .map_err(|e| format!("failed to reset the container's oom_score_adj: {e}"))?;
        if !cgroup.procs().map(|p| p.contains(&pid)).unwrap_or(false) {
            return Err(format!(
                "the container's init {pid} is not in its cgroup {}",
                cgroup.path().display()
            ));
        }
        container
            .start()
            .map_err(|e| format!("failed to start the container: {}", error_chain(&e)))?;
        Ok(pid)
    })?;
    supervisor::INIT_PID.store(pid, Ordering::SeqCst);
    let pending = supervisor::PENDING_SIGNAL.swap(0, Ordering::SeqCst);
    if pending > 0 {
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(pid, pending) };
    }
    Ok(pid)
}

/// libcontainer's default executor (`execvp` of the spec's args), after installing the task's
/// seccomp filter: the last thing the container's init does before the workload runs.
#[derive(Clone)]
struct SeccompExecutor {
    filters: Option<Filters>,
}

impl libcontainer::workload::Executor for SeccompExecutor {
    fn exec(
        &self,
        spec: &libcontainer::oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorError> {
        if let Some(filters) = &self.filters {
            filters
                .install()
                .map_err(|e| libcontainer::workload::ExecutorError::Other(e.to_string()))?;
        }
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &libcontainer::oci_spec::runtime::Spec,
    ) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

/// Runs `create` (libcontainer's create and start, which returns the container's init pid) in a
/// child process born in the container's cgroup (`clone3` with `CLONE_INTO_CGROUP`), so that the
/// processes libcontainer clones are born there too and it never has to move one: every write of
/// `cgroup.procs` waits for an RCU grace period (about 12 ms on the test machines), more than a
/// whole container start with crun. (Strata's copy of libcgroups skips writing a process that is
/// already in its cgroup; see the workspace's `[patch.crates-io]`.) The child exits once the
/// container runs; its init, cloned as the child's child, is then the supervisor's (a
/// subreaper), as before.
fn launch_in_cgroup(
    cgroup: &Cgroup,
    create: impl FnOnce() -> Result<i32, String>,
) -> Result<i32, String> {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    // SAFETY: plain prctl(2): orphans below the supervisor (the container's init, once the
    // launcher exits) become its children.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(format!(
            "failed to make the supervisor a subreaper: {}",
            std::io::Error::last_os_error()
        ));
    }
    let dir = File::open(cgroup.path())
        .map_err(|e| format!("failed to open the cgroup {}: {e}", cgroup.path().display()))?;
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("failed to create a pipe: {e}"))?;
    // SAFETY: the supervisor is single-threaded; the child runs libcontainer (plain system calls,
    // allocation, its own clone3) and leaves with _exit.
    let forked = unsafe {
        strata_isolators::namespaces::clone_into(nix::sched::CloneFlags::empty(), Some(dir.as_fd()))
    }
    .map_err(|e| format!("failed to start the launcher in the cgroup: {e}"))?;
    match forked {
        nix::unistd::ForkResult::Child => {
            drop(read_end);
            let answer = match create() {
                Ok(pid) => format!("ok {pid}"),
                Err(message) => format!("error {message}"),
            };
            let mut pipe = File::from(write_end);
            let code = i32::from(pipe.write_all(answer.as_bytes()).is_err());
            // SAFETY: leave without running the supervisor's exit path in this copy of it.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(write_end);
            let mut answer = String::new();
            let read = File::from(read_end).read_to_string(&mut answer);
            let _ = nix::sys::wait::waitpid(child, None);
            read.map_err(|e| format!("failed to read the launcher's answer: {e}"))?;
            match answer.split_once(' ') {
                Some(("ok", pid)) => pid
                    .parse()
                    .map_err(|_| format!("the launcher answered {answer:?}")),
                Some(("error", message)) => Err(message.to_string()),
                _ => Err(format!("the launcher ended without an answer ({answer:?})")),
            }
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Waits for the container's init (the task), then empties and removes its cgroup and its
/// runtime state.
fn wait(pid: i32, cgroup: &Cgroup, image: &ImageLaunch) -> ExitStatus {
    let status = supervisor::wait_for_init(pid);
    let oom_kills = mem::oom_kills(cgroup).unwrap_or(0);
    let memory_limit_bytes = if oom_kills > 0 {
        mem::memory_max(cgroup)
    } else {
        None
    };
    supervisor::cleanup_cgroup(cgroup);
    overlay::unmount_rootfs(&image.rootfs.target);
    let _ = std::fs::remove_dir_all(&image.runtime_root);
    let (exit_code, signal) = if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else {
        (None, None)
    };
    ExitStatus {
        exit_code,
        signal,
        message: supervisor::exit_message(exit_code, signal),
        started: true,
        oom_kills,
        memory_limit_bytes,
    }
}
