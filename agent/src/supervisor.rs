//! The per-container supervisor (Mesos' "command executor"): `strata-agent supervise <dir>`.
//!
//! The agent is a multi-threaded tokio daemon and never forks with namespace flags. For each
//! container it spawns its own binary as a supervisor, which is a small single-threaded process
//! (no runtime, few allocations, no sleeps on the way to `running`):
//!
//! ```text
//! strata-agent                      the daemon; reads the supervisor's stdout
//!  └─ strata-agent supervise <dir>  own session; holds the task's stdio; waits; writes status.json
//!      └─ init                      pid 1 of the container's pid namespace, in the container's
//!          │                        cgroup and mount/uts/ipc(/net) namespaces; forwards signals
//!          │                        to the task and reaps orphans
//!          └─ task                  execve(argv, env) as the task's user, cwd = sandbox
//! ```
//!
//! Lifecycle, as seen on the supervisor's stdout (one line each, best effort: a closed pipe, e.g.
//! when the agent restarts, is ignored and the supervisor carries on):
//!
//! ```text
//! read spec.json ─▶ resolve user, caps, rlimits; open stdio, cgroup ─▶ clone init ─▶ fork task ─▶ execve
//!     │ (error)             │ (error)                                 │ (error, via CLOEXEC pipe)
//!     └────────────────────┴───────────────▶ "failed <message>" ◀────┘
//!                                                       exec succeeded ─▶ init.pid, "running <pid>"
//! init exits ─▶ read memory.events, cgroup.kill, wait until unpopulated, rmdir ─▶ status.json
//!           ─▶ "exited"
//! ```
//!
//! The agent's isolators decide what the container gets (see `strata_isolators`): the agent
//! creates the cgroup and writes its limits before it spawns the supervisor, and `spec.json`
//! carries the rest. Init is cloned straight into the cgroup and its namespaces
//! (`clone3(CLONE_INTO_CGROUP)`), makes the mount tree private and mounts `/proc`, `/tmp` and
//! read-only binds, and sets the hostname; the task sets its rlimits, drops capabilities from
//! its bounding set, switches user, sets no_new_privs (always, whatever the spec says) and, as
//! the very last step before `execve`, installs its seccomp filter (compiled by the supervisor
//! before it forks).
//!
//! SIGTERM and SIGINT to the supervisor go to init, which passes them (and SIGHUP, SIGQUIT,
//! SIGUSR1, SIGUSR2) on to the task's process group. When the task exits, init exits with it and
//! the kernel kills what is left of the pid namespace; the supervisor then empties the cgroup
//! with `cgroup.kill` (which also covers containers without a pid namespace). Killing the
//! supervisor itself leaves the container running: the agent kills it through `cgroup.kill`.

use nix::errno::Errno;
use nix::sys::signal::{
    sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::unistd::{ForkResult, Gid, Uid};
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;
use strata_isolators::cgroup2::{Cgroup, CgroupError};
use strata_isolators::cgroups::mem;
use strata_isolators::filesystem::linux::{self as fs_linux, MountError};
use strata_isolators::launch::Mounts;
use strata_isolators::linux::capabilities::{BoundedCapabilities, CapabilityError};
use strata_isolators::linux::nnp;
use strata_isolators::linux::seccomp::{self, Filters, SeccompError};
use strata_isolators::namespaces::{self, NamespaceError};
use strata_isolators::posix::rlimits::{self, PreparedRlimit, RlimitError};

pub use strata_isolators::launch::ProcessIsolation;
pub use strata_isolators::namespaces::Namespaces;

/// What the supervisor runs; written by the agent before it spawns the supervisor.
pub const SPEC_FILE: &str = "spec.json";
/// The task's [`ExitStatus`], written atomically (temp, fsync, rename, fsync dir) at the end.
pub const STATUS_FILE: &str = "status.json";
/// The host pid of the container's init, written (temp + rename) once the task has started.
pub const PID_FILE: &str = "init.pid";

/// The `PATH` that `argv[0]` is looked up in when the task's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Set (to anything) in the supervisor's environment, makes it create init the way it does on
/// kernels before 5.7 (fork, unshare, `cgroup.procs`), so that tests cover that path too.
pub const FORCE_FORK_ENV: &str = "STRATA_SUPERVISOR_FORCE_FORK";

/// How long the supervisor waits for the container's processes to die after `cgroup.kill`.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// A container, as the agent asks the supervisor to run it.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ContainerSpec {
    pub container_id: String,
    /// Exists already (the agent creates it); the task's cwd; `stdout` and `stderr` go here.
    pub sandbox: PathBuf,
    /// The container's cgroup (absolute, on the cgroup2 mount). The agent normally creates it
    /// and writes its limits first; the supervisor creates it below its existing parent where it
    /// does not exist yet, clones init into it, and removes it at the end.
    pub cgroup: PathBuf,
    /// The exact argv; `argv[0]` is looked up in the `PATH` of `env` unless it contains a `/`.
    pub argv: Vec<String>,
    /// The task's whole environment (nothing is inherited from the agent).
    pub env: Vec<(String, String)>,
    /// Run as this user (with its groups); `None`: as the agent's user.
    pub user: Option<String>,
    /// The hostname of the container's uts namespace.
    pub hostname: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    /// What the isolators ask of the container's processes: mounts made by init; rlimits, the
    /// capability bounding set and no_new_privs set by the task before `execve`.
    #[serde(default)]
    pub isolation: ProcessIsolation,
    /// A task with an image: its root filesystem and runtime settings; the container is then
    /// created by libcontainer from an OCI runtime spec (see `crate::image_container`).
    #[serde(default)]
    pub image: Option<crate::image_container::ImageLaunch>,
}

/// How a container ended; the contents of `status.json`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct ExitStatus {
    /// The task's exit code (127 when its command could not be executed, as a shell reports).
    pub exit_code: Option<i32>,
    /// The signal that killed the task.
    pub signal: Option<i32>,
    /// "Command exited with status N", "Command terminated with signal Killed", or why the
    /// container could not be started.
    pub message: String,
    /// Whether the task's command was executed.
    pub started: bool,
    /// Processes of the container the OOM killer killed (`oom_kill` of the cgroup's
    /// `memory.events`, read before the cgroup is removed); 0 without the memory controller.
    #[serde(default)]
    pub oom_kills: u64,
    /// The container's `memory.max` when it was OOM-killed.
    #[serde(default)]
    pub memory_limit_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("usage: strata-agent supervise <container-dir>")]
    Usage,
    #[error("failed to read {}: {source}", path.display())]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid container spec {}: {source}", path.display())]
    ParseSpec {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("failed to write {}: {source}", path.display())]
    WriteStatus {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the command is empty")]
    EmptyCommand,
    #[error("the command or environment contains a NUL byte: {0:?}")]
    NulByte(String),
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("failed to look up user {user:?}: {source}")]
    LookupUser { user: String, source: nix::Error },
    #[error("failed to open {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to give {} to user {user:?}: {source}", path.display())]
    Chown {
        path: PathBuf,
        user: String,
        source: nix::Error,
    },
    #[error("the container's cgroup {} has no parent", path.display())]
    CgroupPath { path: PathBuf },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error(transparent)]
    Capability(#[from] CapabilityError),
    #[error(transparent)]
    Rlimit(#[from] RlimitError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("failed to create a pipe: {0}")]
    Pipe(nix::Error),
    #[error("failed to create the container's init: {0}")]
    Fork(nix::Error),
    /// Reported by the container's init or task before the command ran.
    #[error("{message}")]
    Container {
        message: String,
        exit_code: Option<i32>,
    },
}

/// `strata-agent supervise <dir>`: runs the container described in `<dir>/spec.json`. Returns
/// the supervisor's exit code: 0 once `status.json` is written, whatever the task's result.
/// Must run before any other thread exists (it forks).
pub fn main_from_args() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let [_, command, dir] = args.as_slice() else {
        log(format_args!("{}", SupervisorError::Usage));
        return 2;
    };
    if command != "supervise" {
        log(format_args!("{}", SupervisorError::Usage));
        return 2;
    }
    // Out of the agent's session, so that nothing aimed at the agent's process group or terminal
    // reaches the container. Fails harmlessly (EPERM) when the agent already made this process a
    // group leader.
    let _ = nix::unistd::setsid();
    let dir = Path::new(dir);
    match supervise(dir) {
        Ok(_) => 0,
        Err(err) => {
            log(format_args!("{err}"));
            if !matches!(err, SupervisorError::WriteStatus { .. }) {
                let status = ExitStatus {
                    exit_code: None,
                    signal: None,
                    message: err.to_string(),
                    started: false,
                    ..ExitStatus::default()
                };
                report(format_args!("failed {}", one_line(&status.message)));
                if let Err(err) = write_status(dir, &status) {
                    log(format_args!("{err}"));
                }
            }
            report(format_args!("exited"));
            1
        }
    }
}

/// Runs the container described in `dir/spec.json` to its end and writes `dir/status.json`.
/// Errors are those that leave no status to report (the spec cannot be read, the status cannot
/// be written); a container that cannot be started is an `Ok` status with `started: false`.
///
/// Installs signal handlers and forks: call it only from a single-threaded process.
pub fn supervise(dir: &Path) -> Result<ExitStatus, SupervisorError> {
    install_supervisor_signals();
    let spec_path = dir.join(SPEC_FILE);
    let data = std::fs::read(&spec_path).map_err(|source| SupervisorError::ReadSpec {
        path: spec_path.clone(),
        source,
    })?;
    let spec: ContainerSpec =
        serde_json::from_slice(&data).map_err(|source| SupervisorError::ParseSpec {
            path: spec_path,
            source,
        })?;
    if let Some(image) = &spec.image {
        return crate::image_container::supervise(dir, &spec, image);
    }
    let status = match start(&spec) {
        Ok(container) => {
            if let Err(err) = write_file(
                &dir.join(PID_FILE),
                container.init_pid.to_string().as_bytes(),
                false,
            ) {
                log(format_args!(
                    "failed to write {}: {err}",
                    dir.join(PID_FILE).display()
                ));
            }
            report(format_args!("running {}", container.init_pid));
            container.wait()
        }
        Err(err) => {
            let message = one_line(&err.to_string());
            log(format_args!(
                "container {} failed to start: {message}",
                spec.container_id
            ));
            report(format_args!("failed {message}"));
            let exit_code = match err {
                SupervisorError::Container { exit_code, .. } => exit_code,
                _ => None,
            };
            ExitStatus {
                exit_code,
                signal: None,
                message,
                started: false,
                ..ExitStatus::default()
            }
        }
    };
    write_status(dir, &status)?;
    report(format_args!("exited"));
    Ok(status)
}

/// The message Mesos gives for a wait status.
pub fn exit_message(exit_code: Option<i32>, signal: Option<i32>) -> String {
    match (exit_code, signal) {
        (_, Some(signal)) => format!("Command terminated with signal {}", signal_name(signal)),
        (Some(code), None) => format!("Command exited with status {code}"),
        (None, None) => "Command terminated".to_string(),
    }
}

/// `strsignal(3)`: "Terminated", "Killed", ...
fn signal_name(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a NUL-terminated string that stays valid until the
    // next call; this process is single-threaded and copies it at once.
    let ptr = unsafe { libc::strsignal(signal) };
    if ptr.is_null() {
        return format!("{signal}");
    }
    // SAFETY: checked non-null above; strsignal returns a C string.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn write_status(dir: &Path, status: &ExitStatus) -> Result<(), SupervisorError> {
    let path = dir.join(STATUS_FILE);
    let data = serde_json::to_vec_pretty(status).map_err(|err| SupervisorError::WriteStatus {
        path: path.clone(),
        source: std::io::Error::other(err),
    })?;
    write_file(&path, &data, true).map_err(|source| SupervisorError::WriteStatus { path, source })
}

/// Writes `path` atomically (temp file + rename). `durable` adds the fsyncs of the file and its
/// directory; `init.pid` goes without them, as it only matters to an agent restarted while this
/// process lives, which sees the page cache (after a machine crash no container survives).
pub(crate) fn write_file(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    let tmp = dir.join(name);
    {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        if durable {
            file.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A line for the agent on stdout. Best effort: the agent may be gone (EPIPE, SIGPIPE ignored).
pub(crate) fn report(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    let _ = out
        .write_fmt(line)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// A diagnostic on stderr (the agent points it at `supervisor.log`).
pub(crate) fn log(line: std::fmt::Arguments) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "strata-agent supervise[{}]: {line}",
        std::process::id()
    );
}

pub(crate) fn one_line(message: &str) -> String {
    message.replace(['\n', '\r'], " ")
}

// ---------------------------------------------------------------------------------------------
// Signals. Handlers only touch atomics and call kill(2), which is async-signal-safe.

/// The host pid of the container's init while it can be signalled; 0 before and after.
pub(crate) static INIT_PID: AtomicI32 = AtomicI32::new(0);
/// A signal the supervisor received before init existed; forwarded once it does.
pub(crate) static PENDING_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// In init: the task's pid (in init's pid namespace); 0 until it is forked.
static TASK_PID: AtomicI32 = AtomicI32::new(0);

/// Signals init passes on to the task.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

extern "C" fn supervisor_on_signal(signal: libc::c_int) {
    let errno = Errno::last_raw();
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    } else {
        PENDING_SIGNAL.store(signal, Ordering::SeqCst);
    }
    Errno::set_raw(errno);
}

extern "C" fn init_on_signal(signal: libc::c_int) {
    let errno = Errno::last_raw();
    let pid = TASK_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // The task leads its own session and process group: signal the whole group, as Mesos
        // signals the task's process tree, so that `sh -c 'a | b'` ends gracefully too. Init
        // exiting after the task SIGKILLs whatever remains.
        // Until the task has called setsid, its group does not exist: signal the task alone.
        // SAFETY: kill(2) is async-signal-safe.
        if unsafe { libc::kill(-pid, signal) } != 0 {
            // SAFETY: as above.
            unsafe { libc::kill(pid, signal) };
        }
    }
    Errno::set_raw(errno);
}

fn set_handler(signal: Signal, handler: SigHandler) {
    let action = SigAction::new(handler, SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: the handlers above are async-signal-safe; SIG_DFL/SIG_IGN are always safe.
    let _ = unsafe { sigaction(signal, &action) };
}

fn install_supervisor_signals() {
    // The agent's pipe may close at any time: writes must fail with EPIPE, not kill us.
    set_handler(Signal::SIGPIPE, SigHandler::SigIgn);
    // A terminal hang-up of the agent is no reason to stop a container.
    set_handler(Signal::SIGHUP, SigHandler::SigIgn);
    // Ignoring SIGCHLD (inherited through exec) would make waitpid fail.
    set_handler(Signal::SIGCHLD, SigHandler::SigDfl);
    set_handler(Signal::SIGTERM, SigHandler::Handler(supervisor_on_signal));
    set_handler(Signal::SIGINT, SigHandler::Handler(supervisor_on_signal));
}

// ---------------------------------------------------------------------------------------------
// Starting the container.

/// Everything the container's processes need, prepared before forking.
struct Prepared {
    argv0: String,
    /// execve's argv and envp, NULL-terminated, pointing into `_strings`.
    argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    /// Paths to try in turn, like execvp.
    candidates: Vec<CString>,
    _strings: Vec<CString>,
    sandbox: CString,
    sandbox_path: PathBuf,
    hostname: String,
    namespaces: Namespaces,
    mounts: Mounts,
    /// The capability bounding set, set by the task before it switches user.
    capabilities: Option<BoundedCapabilities>,
    /// Installed by the task right before `execve`.
    seccomp: Option<Filters>,
    rlimits: Vec<PreparedRlimit>,
    credentials: Option<Credentials>,
    stdin: File,
    stdout: File,
    stderr: File,
    cgroup: Cgroup,
    /// The container's cgroup directory, for `CLONE_INTO_CGROUP`.
    cgroup_dir: File,
}

struct Credentials {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// A started container.
struct Container {
    init_pid: i32,
    cgroup: Cgroup,
    /// Read end of init's report of the task's wait status.
    status_pipe: File,
}

fn cstring(s: &str) -> Result<CString, SupervisorError> {
    CString::new(s).map_err(|_| SupervisorError::NulByte(s.to_string()))
}

fn prepare(spec: &ContainerSpec) -> Result<Prepared, SupervisorError> {
    let argv0 = spec
        .argv
        .first()
        .ok_or(SupervisorError::EmptyCommand)?
        .clone();
    let mut strings = Vec::with_capacity(spec.argv.len() + spec.env.len());
    for arg in &spec.argv {
        strings.push(cstring(arg)?);
    }
    for (name, value) in &spec.env {
        if name.contains('=') {
            return Err(SupervisorError::NulByte(format!(
                "environment variable name {name:?} contains '='"
            )));
        }
        strings.push(cstring(&format!("{name}={value}"))?);
    }
    let mut argv: Vec<*const libc::c_char> = strings[..spec.argv.len()]
        .iter()
        .map(|s| s.as_ptr())
        .collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = strings[spec.argv.len()..]
        .iter()
        .map(|s| s.as_ptr())
        .collect();
    envp.push(std::ptr::null());

    let candidates = if argv0.contains('/') {
        vec![cstring(&argv0)?]
    } else if argv0.is_empty() {
        Vec::new()
    } else {
        let path = spec
            .env
            .iter()
            .rev()
            .find(|(n, _)| n == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        path.split(':')
            .map(|dir| {
                if dir.is_empty() {
                    format!("./{argv0}")
                } else {
                    format!("{}/{argv0}", dir.trim_end_matches('/'))
                }
            })
            .map(|p| cstring(&p))
            .collect::<Result<_, _>>()?
    };

    let credentials = match &spec.user {
        None => None,
        Some(name) => {
            let user = nix::unistd::User::from_name(name)
                .map_err(|source| SupervisorError::LookupUser {
                    user: name.clone(),
                    source,
                })?
                .ok_or_else(|| SupervisorError::UnknownUser(name.clone()))?;
            let groups =
                nix::unistd::getgrouplist(&cstring(name)?, user.gid).map_err(|source| {
                    SupervisorError::LookupUser {
                        user: name.clone(),
                        source,
                    }
                })?;
            Some(Credentials {
                uid: user.uid,
                gid: user.gid,
                groups,
            })
        }
    };

    let open_output = |name: &str| -> Result<File, SupervisorError> {
        let path = spec.sandbox.join(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o644)
            .open(&path)
            .map_err(|source| SupervisorError::Open {
                path: path.clone(),
                source,
            })?;
        if let (Some(c), Some(user)) = (&credentials, &spec.user) {
            nix::unistd::fchown(&file, Some(c.uid), Some(c.gid)).map_err(|source| {
                SupervisorError::Chown {
                    path,
                    user: user.clone(),
                    source,
                }
            })?;
        }
        Ok(file)
    };
    let stdout = open_output("stdout")?;
    let stderr = open_output("stderr")?;
    let stdin = File::open("/dev/null").map_err(|source| SupervisorError::Open {
        path: "/dev/null".into(),
        source,
    })?;

    // Checked before the cgroup exists, so that a bad setting leaves nothing behind.
    let capabilities = spec
        .isolation
        .bounding_capabilities
        .as_deref()
        .map(BoundedCapabilities::new)
        .transpose()?;
    let rlimits = rlimits::prepare(&spec.isolation.rlimits)?;
    let seccomp = spec
        .isolation
        .seccomp
        .as_ref()
        .map(|profile| seccomp::compile(profile, spec.isolation.bounding_capabilities.as_deref()))
        .transpose()?;
    let parent = spec
        .cgroup
        .parent()
        .ok_or_else(|| SupervisorError::CgroupPath {
            path: spec.cgroup.clone(),
        })?;
    let name = spec
        .cgroup
        .file_name()
        .ok_or_else(|| SupervisorError::CgroupPath {
            path: spec.cgroup.clone(),
        })?;
    let cgroup = Cgroup::open(parent)?.create_child(name)?;
    let cgroup_dir = cgroup.open_dir()?;

    Ok(Prepared {
        argv0,
        argv,
        envp,
        candidates,
        _strings: strings,
        sandbox: CString::new(spec.sandbox.as_os_str().as_bytes())
            .map_err(|_| SupervisorError::NulByte(spec.sandbox.display().to_string()))?,
        sandbox_path: spec.sandbox.clone(),
        hostname: spec.hostname.clone(),
        namespaces: spec.namespaces,
        mounts: spec.isolation.mounts.clone(),
        capabilities,
        seccomp,
        rlimits,
        credentials,
        stdin,
        stdout,
        stderr,
        cgroup,
        cgroup_dir,
    })
}

/// Creates the container and returns once its command executes (or failed to).
fn start(spec: &ContainerSpec) -> Result<Container, SupervisorError> {
    let prepared = prepare(spec)?;
    let result = fork_init(&prepared);
    if result.is_err() {
        cleanup_cgroup(&prepared.cgroup);
    }
    result
}

fn fork_init(p: &Prepared) -> Result<Container, SupervisorError> {
    // Both pipes are CLOEXEC: the task's copies close when its execve succeeds.
    let (exec_r, exec_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SupervisorError::Pipe)?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SupervisorError::Pipe)?;
    // Init starts with every signal blocked and unblocks them once it can forward them.
    let mut old_mask = SigSet::empty();
    let _ = sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old_mask),
    );
    match create_init(p) {
        Ok((ForkResult::Child, birth)) => {
            drop(exec_r);
            drop(status_r);
            init_main(p, birth, exec_w, status_w)
        }
        Ok((ForkResult::Parent { child }, _)) => {
            INIT_PID.store(child.as_raw(), Ordering::SeqCst);
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            let pending = PENDING_SIGNAL.swap(0, Ordering::SeqCst);
            if pending > 0 {
                // SAFETY: plain kill(2) of our own child.
                unsafe { libc::kill(child.as_raw(), pending) };
            }
            drop(exec_w);
            drop(status_w);
            let container = Container {
                init_pid: child.as_raw(),
                cgroup: p.cgroup.clone(),
                status_pipe: File::from(status_r),
            };
            // EOF without data: the task's execve succeeded.
            let mut report = Vec::new();
            let _ = File::from(exec_r).read_to_end(&mut report);
            if report.is_empty() {
                return Ok(container);
            }
            let (exit_code, message) = decode_failure(&report);
            // Reap init (its exit status adds nothing to the report); `start` cleans up.
            wait_for_init(container.init_pid);
            Err(SupervisorError::Container { message, exit_code })
        }
        Err(err) => {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
            Err(err)
        }
    }
}

/// How init came to be, and so what it still has to do itself.
enum Birth {
    /// By `clone3(CLONE_INTO_CGROUP)`: in its cgroup and namespaces already.
    Cloned,
    /// By `fork` (kernels before 5.7): it moves itself into the cgroup through `procs` and
    /// unshares all namespaces but the pid namespace.
    Forked { procs: File },
}

/// Forks init, in its cgroup and namespaces where the kernel can do that at once.
fn create_init(p: &Prepared) -> Result<(ForkResult, Birth), SupervisorError> {
    use std::os::fd::AsFd;
    if std::env::var_os(FORCE_FORK_ENV).is_none() {
        let flags = p.namespaces.clone_flags();
        // SAFETY: this process is single-threaded (see `main_from_args`); init only makes system
        // calls, allocates and forks with glibc's fork.
        match unsafe { namespaces::clone_into(flags, Some(p.cgroup_dir.as_fd())) } {
            Ok(forked) => return Ok((forked, Birth::Cloned)),
            Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => {}
            Err(err) => return Err(SupervisorError::Fork(err)),
        }
    }
    let procs = p.cgroup.open_procs()?;
    if p.namespaces.pid {
        // Applies to this process's children only: init becomes pid 1 of a new namespace.
        namespaces::unshare(nix::sched::CloneFlags::CLONE_NEWPID)?;
    }
    // SAFETY: this process is single-threaded (see `main_from_args`).
    let forked = unsafe { nix::unistd::fork() }.map_err(SupervisorError::Fork)?;
    Ok((forked, Birth::Forked { procs }))
}

impl Container {
    /// Waits for init to exit, kills whatever is left in the cgroup, removes it, and returns the
    /// task's status.
    fn wait(mut self) -> ExitStatus {
        let init_status = wait_for_init(self.init_pid);
        // Init reports the task's raw wait status; without one (init was killed), init's own.
        let mut buf = [0u8; 4];
        let status = match read_exact_nonblocking(&mut self.status_pipe, &mut buf) {
            true => i32::from_ne_bytes(buf),
            false => init_status,
        };
        // The OOM killer's verdict goes with the cgroup: read it first.
        let oom_kills = mem::oom_kills(&self.cgroup).unwrap_or(0);
        let memory_limit_bytes = if oom_kills > 0 {
            mem::memory_max(&self.cgroup)
        } else {
            None
        };
        cleanup_cgroup(&self.cgroup);
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
            message: exit_message(exit_code, signal),
            started: true,
            oom_kills,
            memory_limit_bytes,
        }
    }
}

/// Waits for init to exit and reaps it. Signals stop being forwarded before the pid is freed.
pub(crate) fn wait_for_init(pid: i32) -> i32 {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain waitid(2) on our own child, leaving it waitable (WNOWAIT).
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || Errno::last() != Errno::EINTR {
            break;
        }
    }
    INIT_PID.store(0, Ordering::SeqCst);
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid(2) on our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid || Errno::last() != Errno::EINTR {
            return status;
        }
    }
}

fn read_exact_nonblocking(file: &mut File, buf: &mut [u8]) -> bool {
    // SAFETY: fcntl(2) on a descriptor we own.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    file.read_exact(buf).is_ok()
}

/// Kills what is left in the container's cgroup, waits for it to empty, and removes it.
pub(crate) fn cleanup_cgroup(cgroup: &Cgroup) {
    if cgroup.populated().unwrap_or(true) {
        if let Err(err) = cgroup.kill() {
            log(format_args!("{err}"));
        }
        if !cgroup.wait_empty(KILL_TIMEOUT) {
            log(format_args!(
                "the cgroup {} still has processes after {KILL_TIMEOUT:?}",
                cgroup.path().display()
            ));
        }
    }
    if let Err(err) = cgroup.remove() {
        log(format_args!("{err}"));
    }
}

/// A failure report on the exec pipe: the exit code (-1: none) and a message.
fn encode_failure(exit_code: Option<i32>, message: &str) -> Vec<u8> {
    let mut data = exit_code.unwrap_or(-1).to_ne_bytes().to_vec();
    data.extend_from_slice(message.as_bytes());
    data
}

fn decode_failure(data: &[u8]) -> (Option<i32>, String) {
    match data.split_first_chunk::<4>() {
        Some((code, message)) => {
            let code = i32::from_ne_bytes(*code);
            (
                (code >= 0).then_some(code),
                String::from_utf8_lossy(message).into_owned(),
            )
        }
        None => (
            None,
            "the container's init failed without a message".to_string(),
        ),
    }
}

/// Writes a failure report to the exec pipe and exits the (forked) process.
fn fail(pipe: RawFd, exit_code: Option<i32>, message: &str) -> ! {
    let data = encode_failure(exit_code, message);
    let mut written = 0;
    while written < data.len() {
        // SAFETY: writing from a live buffer to a descriptor this process owns.
        let n = unsafe { libc::write(pipe, data[written..].as_ptr().cast(), data.len() - written) };
        if n > 0 {
            written += n as usize;
        } else if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        } else {
            break;
        }
    }
    // SAFETY: _exit(2) ends the forked process without running the parent's atexit handlers.
    unsafe { libc::_exit(exit_code.unwrap_or(1)) }
}

// ---------------------------------------------------------------------------------------------
// In the container's init.

fn init_main(p: &Prepared, birth: Birth, exec_w: OwnedFd, status_w: OwnedFd) -> ! {
    let pipe = exec_w.as_raw_fd();
    let forked = matches!(birth, Birth::Forked { .. });
    // Into the container's cgroup before anything else: every descendant starts there.
    let moved = match &birth {
        Birth::Cloned => true,
        // SAFETY: a one-byte write(2) to a descriptor we hold.
        Birth::Forked { procs } => {
            (unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) }) == 1
        }
    };
    if !moved {
        let err = Errno::last();
        fail(
            pipe,
            None,
            &format!(
                "failed to move the container's init into {}: {}",
                p.cgroup.path().display(),
                err.desc()
            ),
        );
    }
    // Out of the agent's working directory, which may lie in the work dir the container's mount
    // namespace is about to cover: a directory held open (as a cwd) below a mount stays
    // reachable (through `/proc/1/cwd`).
    let _ = nix::unistd::chdir("/");
    // The task's stdio, inherited by the task. Init must not keep the supervisor's stdout (the
    // agent's pipe) open: the agent sees the supervisor's end as EOF on it.
    for (file, target) in [(&p.stdin, 0), (&p.stdout, 1), (&p.stderr, 2)] {
        // SAFETY: dup2(2) of descriptors we hold onto the standard ones.
        if unsafe { libc::dup2(file.as_raw_fd(), target) } < 0 {
            fail(
                pipe,
                None,
                &format!(
                    "failed to set up the task's stdio: {}",
                    Errno::last().desc()
                ),
            );
        }
    }
    // The agent and its supervisors may be shielded from the OOM killer (the packaged systemd
    // unit sets OOMScoreAdjust=-1000), the container must not be: the kernel never picks a
    // process at -1000, not even to enforce the container's own memory.max.
    if let Err(err) = std::fs::write("/proc/self/oom_score_adj", b"0") {
        fail(
            pipe,
            None,
            &format!("failed to reset the container's oom_score_adj: {err}"),
        );
    }
    for signal in FORWARDED {
        set_handler(signal, SigHandler::Handler(init_on_signal));
    }
    if !p.namespaces.pid {
        // Not pid 1: adopt orphans of the task anyway, to reap them.
        // SAFETY: prctl(2) with an integer argument.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    if forked {
        // Before the task exists, so that it shares them.
        if let Err(err) = namespaces::unshare(p.namespaces.flags_without_pid()) {
            fail(pipe, None, &err.to_string());
        }
    }
    // The task is forked before init sets up the mounts and the hostname, so that its own
    // preparation (rlimits, the capability bounding set: one credential commit per dropped
    // capability) runs meanwhile; it waits for init's byte on `ready` before it enters the
    // sandbox and executes.
    let (ready_r, ready_w) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(pipe) => pipe,
        Err(err) => fail(
            pipe,
            None,
            &format!("failed to create a pipe: {}", err.desc()),
        ),
    };
    // SAFETY: init is single-threaded.
    let task = match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            drop(ready_w);
            task_main(p, exec_w, ready_r)
        }
        Ok(ForkResult::Parent { child }) => child.as_raw(),
        Err(err) => fail(
            pipe,
            None,
            &format!("failed to start the task: {}", err.desc()),
        ),
    };
    drop(ready_r);
    TASK_PID.store(task, Ordering::SeqCst);
    // On failure init exits: the task sees `ready` close without a byte and exits quietly (and
    // in a pid namespace the kernel kills it with init anyway).
    if let Err(err) = setup_namespaces(p) {
        fail(pipe, None, &err.to_string());
    }
    // SAFETY: a one-byte write(2) to a pipe we hold; EPIPE (the task failed first and is gone)
    // is harmless: SIGPIPE is ignored, inherited from the supervisor.
    unsafe { libc::write(ready_w.as_raw_fd(), b"1".as_ptr().cast(), 1) };
    drop(ready_w);
    drop(exec_w);
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Reap everything (orphans are re-parented to init) until the task is gone.
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid(2).
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == task {
            break;
        }
        if pid < 0 && Errno::last() == Errno::ECHILD {
            // SAFETY: _exit(2).
            unsafe { libc::_exit(1) };
        }
    }
    let bytes = status.to_ne_bytes();
    // SAFETY: writing 4 bytes from a live buffer to a pipe we hold; the pipe has room.
    unsafe { libc::write(status_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    // Exiting kills whatever else is left in the pid namespace.
    // SAFETY: _exit(2).
    unsafe { libc::_exit(code) }
}

/// Sets up init's namespaces (which the task shares): a private mount tree with the
/// isolators' mounts (a fresh `/proc` whenever there is a pid namespace, as specs without
/// isolation settings expect), and the hostname.
fn setup_namespaces(p: &Prepared) -> Result<(), MountError> {
    let ns = p.namespaces;
    if ns.mount {
        namespaces::make_rprivate(Path::new("/"))?;
        fs_linux::mount_all(&p.mounts, ns.pid || p.mounts.proc, &p.sandbox_path)?;
    }
    if ns.uts {
        namespaces::set_hostname(&p.hostname)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In the task, between fork and execve.

fn task_main(p: &Prepared, exec_w: OwnedFd, ready: OwnedFd) -> ! {
    let pipe = exec_w.as_raw_fd();
    // Default dispositions (Rust ignores SIGPIPE; the supervisor ignores SIGHUP; init's handlers
    // would survive until exec), then nothing blocked.
    for signal in 1..=libc::SIGRTMAX() {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: setting the default disposition is always safe.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = nix::unistd::setsid();
    // Limits first: raising a hard limit needs CAP_SYS_RESOURCE, which the user switch or the
    // bounding set may take away.
    if let Err(err) = rlimits::apply(&p.rlimits) {
        fail(pipe, None, &err.to_string());
    }
    // Dropping from the bounding set needs CAP_SETPCAP: before the user switch.
    if let Some(caps) = &p.capabilities {
        if let Err(err) = caps.apply() {
            fail(pipe, None, &err.to_string());
        }
    }
    // Init's mounts and hostname are in place once its byte arrives; without it, init failed
    // and reported why.
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte read(2) into a live buffer from a pipe we hold.
        let n = unsafe { libc::read(ready.as_raw_fd(), (&mut byte as *mut u8).cast(), 1) };
        if n == 1 {
            break;
        }
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        // SAFETY: _exit(2) in the forked task.
        unsafe { libc::_exit(1) };
    }
    drop(ready);
    // SAFETY: chdir(2) with a NUL-terminated path.
    if unsafe { libc::chdir(p.sandbox.as_ptr()) } != 0 {
        let err = Errno::last();
        fail(
            pipe,
            None,
            &format!(
                "failed to change to the sandbox {}: {}",
                p.sandbox_path.display(),
                err.desc()
            ),
        );
    }
    if let Some(c) = &p.credentials {
        let result = nix::unistd::setgroups(&c.groups)
            .and_then(|()| nix::unistd::setgid(c.gid))
            .and_then(|()| nix::unistd::setuid(c.uid));
        if let Err(err) = result {
            fail(
                pipe,
                None,
                &format!("failed to switch to user {}: {}", c.uid, err.desc()),
            );
        }
    }
    // Always: setuid binaries and file capabilities grant a task nothing, and an unprivileged
    // task may install the seccomp filter below.
    if let Err(err) = nnp::set_no_new_privs() {
        fail(
            pipe,
            None,
            &format!("failed to set no_new_privs: {}", err.desc()),
        );
    }
    // No descriptor of the supervisor's (or the agent's) survives the exec.
    // SAFETY: close_range(2) marking descriptors CLOEXEC; failure (old kernel) is harmless.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    // The very last step: from here on only execve (and the failure report) runs filtered.
    if let Some(filters) = &p.seccomp {
        if let Err(err) = filters.install() {
            fail(pipe, None, &err.to_string());
        }
    }
    let mut error = Errno::ENOENT;
    let mut denied = false;
    for candidate in &p.candidates {
        // SAFETY: argv and envp are NULL-terminated arrays of pointers into live CStrings.
        unsafe { libc::execve(candidate.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr()) };
        error = Errno::last();
        match error {
            Errno::EACCES => denied = true,
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            _ => break,
        }
    }
    if denied
        && matches!(
            error,
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT
        )
    {
        error = Errno::EACCES;
    }
    let code = if error == Errno::ENOENT { 127 } else { 126 };
    fail(
        pipe,
        Some(code),
        &format!("failed to execute {:?}: {}", p.argv0, error.desc()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn messages_follow_mesos() {
        assert_eq!(exit_message(Some(0), None), "Command exited with status 0");
        assert_eq!(exit_message(Some(3), None), "Command exited with status 3");
        assert_eq!(
            exit_message(None, Some(9)),
            "Command terminated with signal Killed"
        );
        assert_eq!(
            exit_message(None, Some(15)),
            "Command terminated with signal Terminated"
        );
    }

    #[test]
    fn failure_reports_round_trip() {
        assert_eq!(
            decode_failure(&encode_failure(Some(127), "no")),
            (Some(127), "no".to_string())
        );
        assert_eq!(
            decode_failure(&encode_failure(None, "x y")),
            (None, "x y".to_string())
        );
        assert_eq!(decode_failure(b"ab").0, None);
    }

    #[test]
    fn spec_defaults_namespaces() {
        let spec: ContainerSpec = serde_json::from_str(
            r#"{"container_id":"c","sandbox":"/s","cgroup":"/cg/c","argv":["true"],"env":[["PATH","/bin"]],
                "user":null,"hostname":"h"}"#,
        )
        .unwrap();
        assert_eq!(spec.namespaces, Namespaces::default());
        assert_eq!(spec.isolation, ProcessIsolation::default());
        assert_eq!(spec.env, vec![("PATH".to_string(), "/bin".to_string())]);
    }

    #[test]
    fn status_files_are_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let status = ExitStatus {
            exit_code: Some(3),
            signal: None,
            message: exit_message(Some(3), None),
            started: true,
            ..ExitStatus::default()
        };
        write_status(dir.path(), &status).unwrap();
        write_status(dir.path(), &status).unwrap();
        let read: ExitStatus =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATUS_FILE)).unwrap()).unwrap();
        assert_eq!(read, status);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
