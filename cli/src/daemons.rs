//! The daemons `strata up` manages: where their binaries, pid files and logs are, how they are
//! started (own session, output to a log) and stopped (SIGTERM, then SIGKILL).
//!
//! A pid is only ever signalled after `/proc/<pid>/exe` shows it is still the daemon the pid file
//! names: a pid file can outlive its process, and the kernel reuses pids.

use anyhow::{bail, Context};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The real `/proc`; tests pass a temp dir instead.
pub const PROC_ROOT: &str = "/proc";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Master,
    Agent,
}

impl Daemon {
    pub fn binary(self) -> &'static str {
        match self {
            Daemon::Master => "strata-master",
            Daemon::Agent => "strata-agent",
        }
    }

    fn short_name(self) -> &'static str {
        match self {
            Daemon::Master => "master",
            Daemon::Agent => "agent",
        }
    }
}

/// The layout below `strata up --work-dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
    /// The daemon's own `--work-dir`.
    pub fn work_dir(&self, daemon: Daemon) -> PathBuf {
        self.root.join(daemon.short_name())
    }
    pub fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn pid_file(&self, daemon: Daemon) -> PathBuf {
        self.run_dir().join(format!("{}.pid", daemon.short_name()))
    }
    pub fn log_file(&self, daemon: Daemon) -> PathBuf {
        self.logs_dir().join(format!("{}.log", daemon.short_name()))
    }
}

/// What runs under a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcState {
    /// Nothing, a zombie, or a kernel thread: no executable to show.
    Gone,
    /// The expected daemon. `replaced` when its binary was deleted or replaced on disk since it
    /// started (the kernel shows `… (deleted)`).
    Daemon { replaced: bool },
    /// Some other program reused the pid.
    Other(PathBuf),
}

/// Looks at `<proc_root>/<pid>/exe` to tell whether `pid` is still `binary` (by file name).
pub fn inspect_pid(proc_root: &Path, pid: i32, binary: &str) -> io::Result<ProcState> {
    let link = proc_root.join(pid.to_string()).join("exe");
    let target = match fs::read_link(&link) {
        Ok(target) => target,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(ProcState::Gone),
        Err(err) => return Err(err),
    };
    let shown = target.to_string_lossy();
    let (path, replaced) = match shown.strip_suffix(" (deleted)") {
        Some(path) => (Path::new(path), true),
        None => (target.as_path(), false),
    };
    if path.file_name() == Some(OsStr::new(binary)) {
        Ok(ProcState::Daemon { replaced })
    } else {
        Ok(ProcState::Other(target.clone()))
    }
}

/// The pid in a pid file; `None` when there is no pid file or it holds no usable pid (pids 0 and 1
/// and negative numbers are never usable: signalling them would hit a group or init).
pub fn read_pid(path: &Path) -> io::Result<Option<i32>> {
    match fs::read_to_string(path) {
        Ok(text) => match text.trim().parse::<i32>() {
            Ok(pid) if pid > 1 => Ok(Some(pid)),
            _ => {
                tracing::warn!(path = %path.display(), "ignoring a pid file without a valid pid");
                Ok(None)
            }
        },
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Writes a pid file atomically (temp file and rename).
pub fn write_pid(path: &Path, pid: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("pid.tmp");
    fs::write(&tmp, format!("{pid}\n"))
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

/// Removes a pid file; a missing one is fine.
pub fn remove_pid(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Finds `name` in `exe_dir` (the directory of the running `strata`), else on `path_var` (`PATH`).
pub fn find_binary(
    name: &str,
    exe_dir: Option<&Path>,
    path_var: Option<&OsStr>,
) -> Option<PathBuf> {
    let beside = exe_dir.map(|dir| dir.join(name));
    let on_path = path_var
        .map(|paths| {
            std::env::split_paths(paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    beside
        .into_iter()
        .chain(on_path)
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// [`find_binary`] for this process, with an error naming what is missing.
pub fn locate(daemon: Daemon) -> anyhow::Result<PathBuf> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let path_var = std::env::var_os("PATH");
    match find_binary(daemon.binary(), exe_dir.as_deref(), path_var.as_deref()) {
        Some(path) => Ok(path),
        None => {
            let beside = exe_dir
                .map(|d| format!("in {} or ", d.display()))
                .unwrap_or_default();
            bail!("cannot find the {} binary {beside}on PATH", daemon.binary())
        }
    }
}

/// A daemon this process started.
#[derive(Debug)]
pub struct Started {
    pub daemon: Daemon,
    pub child: Child,
    pub log: PathBuf,
    /// Where this start's output begins in the (appended) log.
    pub log_offset: u64,
    pub pid_file: PathBuf,
}

impl Started {
    pub fn pid(&self) -> i32 {
        // Pids fit in i32 (the kernel's pid_max is at most 2^22).
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }
}

/// Starts `binary args` in a session of its own with stdin from /dev/null and stdout and stderr
/// appended to `log`, and writes its pid file.
pub fn spawn(
    daemon: Daemon,
    binary: &Path,
    args: &[String],
    layout: &Layout,
) -> anyhow::Result<Started> {
    let log_path = layout.log_file(daemon);
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let log_offset = log.metadata().map(|m| m.len()).unwrap_or(0);
    writeln!(
        log,
        "--- strata up: {} {}",
        binary.display(),
        args.join(" ")
    )
    .with_context(|| format!("cannot write {}", log_path.display()))?;
    let stderr = log
        .try_clone()
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr);
    // SAFETY: the closure runs in the child between fork and exec and only calls setsid(2),
    // which is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let pid_file = layout.pid_file(daemon);
    let started = Started {
        daemon,
        child,
        log: log_path,
        log_offset,
        pid_file,
    };
    write_pid(&started.pid_file, started.child.id())?;
    tracing::info!(
        daemon = daemon.binary(),
        pid = started.child.id(),
        "started"
    );
    Ok(started)
}

/// How a stopped daemon ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It was already gone before any signal.
    NotRunning,
    Terminated,
    /// It ignored SIGTERM for the whole grace period.
    Killed,
}

/// Sends SIGTERM to each (daemon, pid) that still is that daemon, waits up to `grace` for all of
/// them to go, then SIGKILLs the rest.
pub async fn stop(
    proc_root: &Path,
    targets: &[(Daemon, i32)],
    grace: Duration,
) -> anyhow::Result<Vec<Stopped>> {
    let is_running = |daemon: Daemon, pid: i32| -> anyhow::Result<bool> {
        let state = inspect_pid(proc_root, pid, daemon.binary())
            .with_context(|| format!("cannot inspect pid {pid} ({})", daemon.binary()))?;
        Ok(matches!(state, ProcState::Daemon { .. }))
    };
    let mut outcome = Vec::with_capacity(targets.len());
    for &(daemon, pid) in targets {
        if is_running(daemon, pid)? {
            send(daemon, pid, Signal::SIGTERM)?;
            outcome.push(Stopped::Terminated);
        } else {
            outcome.push(Stopped::NotRunning);
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        let mut any_left = false;
        for &(daemon, pid) in targets {
            any_left |= is_running(daemon, pid)?;
        }
        if !any_left {
            return Ok(outcome);
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, &(daemon, pid)) in targets.iter().enumerate() {
        if is_running(daemon, pid)? {
            tracing::warn!(
                daemon = daemon.binary(),
                pid,
                "did not stop after SIGTERM; sending SIGKILL"
            );
            send(daemon, pid, Signal::SIGKILL)?;
            outcome[i] = Stopped::Killed;
        }
    }
    Ok(outcome)
}

fn send(daemon: Daemon, pid: i32, signal: Signal) -> anyhow::Result<()> {
    match kill(Pid::from_raw(pid), signal) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(err) => Err(err)
            .with_context(|| format!("cannot send {signal} to {} (pid {pid})", daemon.binary())),
    }
}

/// Stops daemons this process started, reaps them and removes their pid files. Best effort: it
/// runs on failure paths, so problems are logged rather than returned.
pub async fn stop_started(started: &mut [Started]) {
    let targets: Vec<(Daemon, i32)> = started.iter().map(|s| (s.daemon, s.pid())).collect();
    if let Err(err) = stop(Path::new(PROC_ROOT), &targets, Duration::from_secs(10)).await {
        tracing::warn!(cause = %format!("{err:#}"), "stopping the daemons failed");
    }
    for s in started.iter_mut() {
        // Both were signalled and are gone or dying; reap them so no zombie stays behind.
        for _ in 0..50 {
            match s.child.try_wait() {
                Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => break,
            }
        }
        if let Err(err) = remove_pid(&s.pid_file) {
            tracing::warn!(cause = %format!("{err:#}"), "cannot remove a pid file");
        }
    }
}

/// The last `n` lines of what `log` holds after `offset` (this start's output).
pub fn log_tail(log: &Path, offset: u64, n: usize) -> String {
    let bytes = match fs::read(log) {
        Ok(bytes) => bytes,
        Err(err) => return format!("(cannot read {}: {err})\n", log.display()),
    };
    let start = usize::try_from(offset).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let mut out = String::new();
    for line in last_lines(&text, n) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Creates a directory and its parents.
pub fn create_dir(path: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fake_proc(pid: i32, exe: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join(pid.to_string());
        fs::create_dir(&dir).unwrap();
        symlink(exe, dir.join("exe")).unwrap();
        root
    }

    #[test]
    fn recognizes_the_daemon_by_its_exe() {
        let root = fake_proc(4242, "/usr/local/bin/strata-master");
        let state = inspect_pid(root.path(), 4242, "strata-master").unwrap();
        assert_eq!(state, ProcState::Daemon { replaced: false });
        let state = inspect_pid(root.path(), 4242, "strata-agent").unwrap();
        assert_eq!(
            state,
            ProcState::Other(PathBuf::from("/usr/local/bin/strata-master"))
        );
        assert_eq!(
            inspect_pid(root.path(), 4243, "strata-master").unwrap(),
            ProcState::Gone
        );
    }

    #[test]
    fn a_replaced_binary_is_still_the_daemon() {
        let root = fake_proc(7, "/usr/local/bin/strata-agent (deleted)");
        let state = inspect_pid(root.path(), 7, "strata-agent").unwrap();
        assert_eq!(state, ProcState::Daemon { replaced: true });
    }

    #[test]
    fn a_reused_pid_is_not_the_daemon() {
        let root = fake_proc(99, "/usr/bin/vim");
        let state = inspect_pid(root.path(), 99, "strata-master").unwrap();
        assert!(matches!(state, ProcState::Other(_)));
        // a process without an exe link (zombie, kernel thread)
        fs::create_dir(root.path().join("100")).unwrap();
        assert_eq!(
            inspect_pid(root.path(), 100, "strata-master").unwrap(),
            ProcState::Gone
        );
    }

    #[test]
    fn this_process_is_found_in_the_real_proc() {
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap().to_string();
        let pid = i32::try_from(std::process::id()).unwrap();
        let state = inspect_pid(Path::new(PROC_ROOT), pid, &name).unwrap();
        assert_eq!(state, ProcState::Daemon { replaced: false });
    }

    #[test]
    fn pid_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.pid");
        assert_eq!(read_pid(&path).unwrap(), None);
        write_pid(&path, 1234).unwrap();
        assert_eq!(read_pid(&path).unwrap(), Some(1234));
        for junk in ["", "abc", "0", "1", "-1", "-5"] {
            fs::write(&path, junk).unwrap();
            assert_eq!(read_pid(&path).unwrap(), None, "{junk:?}");
        }
        remove_pid(&path).unwrap();
        remove_pid(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn finds_binaries_beside_then_on_path() {
        let beside = tempfile::tempdir().unwrap();
        let on_path = tempfile::tempdir().unwrap();
        let make = |dir: &Path, mode: u32| {
            let path = dir.join("strata-agent");
            fs::write(&path, "#!/bin/sh\n").unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let path_var = std::env::join_paths([on_path.path()]).unwrap();
        assert_eq!(
            find_binary("strata-agent", Some(beside.path()), Some(&path_var)),
            None
        );
        let second = make(on_path.path(), 0o755);
        assert_eq!(
            find_binary("strata-agent", Some(beside.path()), Some(&path_var)),
            Some(second)
        );
        let not_executable = make(beside.path(), 0o644);
        assert_ne!(
            find_binary("strata-agent", Some(beside.path()), None),
            Some(not_executable)
        );
        let first = make(beside.path(), 0o755);
        assert_eq!(
            find_binary("strata-agent", Some(beside.path()), Some(&path_var)),
            Some(first)
        );
    }

    #[test]
    fn log_tails() {
        assert_eq!(last_lines("a\nb\nc\n", 2), ["b", "c"]);
        assert_eq!(last_lines("a", 5), ["a"]);
        assert!(last_lines("", 5).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("x.log");
        fs::write(&log, "old run\nnew 1\nnew 2\n").unwrap();
        assert_eq!(log_tail(&log, 8, 20), "new 1\nnew 2\n");
        assert_eq!(log_tail(&log, 1000, 20), "");
    }

    #[tokio::test]
    async fn stop_ignores_pids_that_are_not_the_daemon() {
        // pid 4242 in a fake /proc is "vim": it must not be signalled (the real 4242 may exist)
        let root = fake_proc(4242, "/usr/bin/vim");
        let outcome = stop(
            root.path(),
            &[(Daemon::Master, 4242)],
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        assert_eq!(outcome, [Stopped::NotRunning]);
    }

    #[tokio::test]
    async fn stops_a_real_process() {
        // a child renamed by its exe: copy `sleep` to a temp dir as `strata-agent`
        let Some(sleep) = find_binary("sleep", None, std::env::var_os("PATH").as_deref()) else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("strata-agent");
        fs::copy(sleep, &fake).unwrap();
        // another test thread forking right after the copy can briefly hold it open (ETXTBSY)
        let mut spawned = Command::new(&fake).arg("30").spawn();
        for _ in 0..50 {
            match &spawned {
                Err(err) if err.raw_os_error() == Some(libc::ETXTBSY) => {
                    std::thread::sleep(Duration::from_millis(20));
                    spawned = Command::new(&fake).arg("30").spawn();
                }
                _ => break,
            }
        }
        let mut child = spawned.unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let reaper = std::thread::spawn(move || child.wait());
        let outcome = stop(
            Path::new(PROC_ROOT),
            &[(Daemon::Agent, pid)],
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(outcome, [Stopped::Terminated]);
        assert!(!reaper.join().unwrap().unwrap().success());
    }
}
