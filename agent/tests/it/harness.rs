//! Test fixtures: a private cgroup parent and container dir per test, supervisors started the
//! way the agent starts them, and cleanup on drop (even when a test fails).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use strata_agent::supervisor::{
    ContainerSpec, ExitStatus, Namespaces, ProcessIsolation, SPEC_FILE, STATUS_FILE,
};
use strata_isolators::cgroup2::{find_cgroup2_mount, Cgroup};

/// How long any supervisor in these tests may live.
const WATCHDOG: Duration = Duration::from_secs(60);

pub const TEST_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Panics unless this process is root and a cgroup2 filesystem is mounted.
pub fn cgroup2_mount() -> PathBuf {
    const NEEDS: &str = "this test needs root and a cgroup2 mount";
    assert!(
        nix::unistd::geteuid().is_root(),
        "{NEEDS}: not running as root"
    );
    find_cgroup2_mount(Path::new("/proc/self/mountinfo"))
        .unwrap_or_else(|err| panic!("{NEEDS}: {err}"))
}

/// A container dir with a sandbox, and a cgroup parent of its own (`strata-it-<pid>-<n>`).
pub struct Fixture {
    pub parent: Cgroup,
    pub dir: tempfile::TempDir,
    pub sandbox: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let mount = cgroup2_mount();
        let name = format!(
            "strata-it-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let parent = Cgroup::create(&mount, &name).expect("failed to create the test's cgroup");
        let dir = tempfile::tempdir().expect("failed to create a temp dir");
        let sandbox = dir.path().join("sandbox");
        std::fs::create_dir(&sandbox).expect("failed to create the sandbox");
        Self {
            parent,
            dir,
            sandbox,
        }
    }

    /// A spec for `argv` with only `PATH` in its environment.
    pub fn spec(&self, argv: &[&str]) -> ContainerSpec {
        ContainerSpec {
            container_id: "c1".to_string(),
            sandbox: self.sandbox.clone(),
            cgroup: self.parent.path().join("c1"),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".to_string(), TEST_PATH.to_string())],
            user: None,
            hostname: "strata-it".to_string(),
            namespaces: Namespaces::default(),
            isolation: ProcessIsolation::default(),
            image: None,
        }
    }

    /// Writes the spec and starts `strata-agent supervise <dir>` as the agent does.
    pub fn spawn(&self, spec: &ContainerSpec) -> Supervisor {
        self.spawn_with(spec, &[])
    }

    /// [`Fixture::spawn`] with extra variables in the supervisor's environment.
    pub fn spawn_with(&self, spec: &ContainerSpec, env: &[(&str, &str)]) -> Supervisor {
        self.spawn_wrapped(spec, env, &[])
    }

    /// [`Fixture::spawn_with`] through `wrapper` (a command that ends by executing its
    /// arguments, e.g. `sh -c '…; exec "$@"' sh`), so that the supervisor starts in the
    /// wrapper's conditions.
    pub fn spawn_wrapped(
        &self,
        spec: &ContainerSpec,
        env: &[(&str, &str)],
        wrapper: &[&str],
    ) -> Supervisor {
        std::fs::write(
            self.dir.path().join(SPEC_FILE),
            serde_json::to_vec_pretty(spec).unwrap(),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.path().join("supervisor.log")).unwrap();
        let exe = env!("CARGO_BIN_EXE_strata-agent");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(exe);
                command
            }
            None => Command::new(exe),
        };
        let mut child = command
            .arg("supervise")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env_clear()
            .env("PATH", TEST_PATH)
            .envs(env.iter().copied())
            .spawn()
            .expect("failed to spawn the supervisor");
        let stdout = child.stdout.take().map(BufReader::new);
        let pid = child.id() as i32;
        let (done, done_rx) = mpsc::channel::<()>();
        // Kills a hung supervisor, so that a blocking read of its stdout cannot hang the test.
        // The pid stays ours until `Supervisor` reaps it, which it does only after joining this.
        let watchdog = std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(WATCHDOG) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
        Supervisor {
            child,
            stdout,
            done: Some(done),
            watchdog: Some(watchdog),
        }
    }

    pub fn sandbox_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.sandbox.join(name))
            .unwrap_or_else(|err| panic!("{name}: {err}"))
    }

    pub fn status(&self) -> ExitStatus {
        let data = std::fs::read(self.dir.path().join(STATUS_FILE)).expect("no status.json");
        serde_json::from_slice(&data).expect("invalid status.json")
    }

    pub fn supervisor_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("supervisor.log")).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Whatever a failed test left running goes with the cgroup.
        if let Err(err) = self.parent.kill() {
            eprintln!("cleanup: {err}");
        }
        if !self.parent.wait_empty(Duration::from_secs(5)) {
            eprintln!(
                "cleanup: {} still has processes",
                self.parent.path().display()
            );
        }
        if let Err(err) = self.parent.remove() {
            eprintln!("cleanup: {err}");
        }
    }
}

/// A running `strata-agent supervise`; killed (SIGKILL) and reaped on drop if still alive.
pub struct Supervisor {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
    done: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<()>>,
}

impl Supervisor {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// The next line of the protocol (without its newline); "" at EOF.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        let stdout = self.stdout.as_mut().expect("stdout was closed");
        stdout
            .read_line(&mut line)
            .expect("failed to read the supervisor's stdout");
        line.trim_end_matches('\n').to_string()
    }

    /// The pid in a `running <pid>` line.
    pub fn expect_running(&mut self) -> i32 {
        let line = self.line();
        let pid = line
            .strip_prefix("running ")
            .unwrap_or_else(|| panic!("expected \"running <pid>\", got {line:?}"));
        pid.parse()
            .unwrap_or_else(|_| panic!("bad pid in {line:?}"))
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Waits for the supervisor to exit (the watchdog bounds this) and returns its exit code.
    pub fn wait(&mut self) -> Option<i32> {
        let status = self
            .child
            .wait()
            .expect("failed to wait for the supervisor");
        self.stop_watchdog();
        status.code()
    }

    fn stop_watchdog(&mut self) {
        drop(self.done.take());
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_watchdog();
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `check` every 5 ms until it holds or `timeout` passes.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `pid` names a live (non-zombie) process.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
