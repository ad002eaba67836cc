//! End-to-end harness: starts real `strata-master` and `strata-agent` processes on ephemeral
//! loopback ports with temporary work dirs and a cgroup subtree of their own, and tears all of it
//! down on drop — daemons, supervisors and task processes (by pid, found through the work dir and
//! the cgroups, never by name), cgroups and directories — even when a test fails.
//!
//! These tests need root and a cgroup2 mount; without them they fail loudly (never pass).

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use strata_isolators::cgroup2::Cgroup;

pub mod framework;
pub mod image_bench;
pub mod images;
pub mod isolation;
pub mod master_bench;
pub mod network_bench;
pub mod pki;
pub mod python;
pub mod recordio;
pub mod registry;
pub mod sim_agent;
pub mod zookeeper;

/// Where the workspace's binaries are (target/debug next to the test binary).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("STRATA_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // target/debug/deps/it-xxxx -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The path of a workspace binary; panics with instructions when it has not been built.
pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which `cargo xtask ci` does)",
        path.display()
    );
    path
}

/// Panics unless this process can run agents: root and a cgroup2 mount.
pub fn require_root() -> PathBuf {
    // reqwest (tests' HTTP calls) needs a rustls provider in this workspace's build.
    strata_images::install_tls_provider();
    assert!(
        nix::unistd::geteuid().is_root(),
        "this end-to-end test needs root (agents create cgroups and namespaces); run it as root, e.g. via `cargo xtask ci`"
    );
    cgroup2_mount()
        .expect("this end-to-end test needs a cgroup2 mount; none is in /proc/self/mountinfo")
}

/// The cgroup2 mount point, from /proc/self/mountinfo (the agent's own parser).
pub fn cgroup2_mount() -> Option<PathBuf> {
    strata_isolators::cgroup2::find_cgroup2_mount(Path::new("/proc/self/mountinfo")).ok()
}

/// A free loopback port (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A daemon process started by the harness.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Daemon {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig);
    }

    /// Stops the daemon (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// A BPF filesystem of the test's own (each mount of bpffs is a separate instance), for
/// agents' `--bpf-pin-dir`: unmounting it when dropped releases every pin in it, so the links
/// detach and the maps are freed even when the test fails.
pub struct BpfFs {
    dir: tempfile::TempDir,
}

impl BpfFs {
    pub fn mount() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("strata-bpffs-").tempdir()?;
        nix::mount::mount(
            Some("bpf"),
            dir.path(),
            Some("bpf"),
            nix::mount::MsFlags::empty(),
            Some("mode=0700"),
        )
        .with_context(|| format!("mount a BPF filesystem at {}", dir.path().display()))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// An agent started by [`run_agent`]: how it ended (`None`: it was still running and was
/// killed), its stderr, and its cgroup subtree, removed on drop with its BPF filesystem.
pub struct AgentRun {
    pub status: Option<std::process::ExitStatus>,
    pub stderr: String,
    pub cgroup: PathBuf,
    _bpffs: BpfFs,
    _dir: tempfile::TempDir,
}

impl Drop for AgentRun {
    fn drop(&mut self) {
        remove_cgroup_tree(&self.cgroup);
    }
}

/// Runs `strata-agent` with `flags` (and `envs`), pointed at a master that is not there, with a
/// work dir, cgroup subtree and BPF filesystem of its own, until it exits or `timeout` passes:
/// how the tests see an agent refuse to start.
pub fn run_agent(
    flags: &[&str],
    envs: &[(&str, &std::ffi::OsStr)],
    timeout: Duration,
) -> Result<AgentRun> {
    let mount = require_root();
    let dir = tempfile::tempdir()?;
    let root = format!(
        "strata-e2e-{}-run-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let bpffs = BpfFs::mount()?;
    let mut child = Command::new(bin("strata-agent"))
        .args(["--master", "127.0.0.1:1", "--ip", "127.0.0.1", "--port"])
        .arg(free_port().to_string())
        .args(["--cgroups-root", &root, "--work-dir"])
        .arg(dir.path())
        .arg("--bpf-pin-dir")
        .arg(bpffs.path().join("strata"))
        .args(flags)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn strata-agent")?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        use std::io::Read;
        let _ = err.read_to_string(&mut stderr);
    }
    Ok(AgentRun {
        status,
        stderr,
        cgroup: mount.join(root),
        _bpffs: bpffs,
        _dir: dir,
    })
}

/// One agent's fixed identity, so that it can be restarted as itself.
#[derive(Clone)]
pub struct AgentSpec {
    pub work_dir: PathBuf,
    pub port: u16,
    pub resources: String,
    pub cgroups_root: String,
    /// Extra flags for `strata-agent` (e.g. `--isolation …`), after the harness's own.
    pub flags: Vec<String>,
}

/// A master and its agents.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub master: Daemon,
    pub agents: Vec<(AgentSpec, Option<Daemon>)>,
    cgroup_mount: PathBuf,
    /// The agents' `--bpf-pin-dir`s live here (`<bpffs>/agent<i>`); dropped after the agents.
    pub bpffs: BpfFs,
    /// Further masters of an HA cluster ([`Cluster::start_ha`]); `master` is the leader.
    pub standbys: Vec<Daemon>,
    /// What agents get as `--master` (the leader's address, or a `zk://` URL).
    pub agent_master: Option<String>,
    /// The first master's extra flags, for [`Cluster::restart_master`].
    master_flags: Vec<String>,
    /// When the daemons serve TLS: how the harness reaches their HTTP endpoints
    /// ([`Cluster::start_tls`]).
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null()).stdout(out).stderr(err);
    cmd.env(
        "STRATA_LOG",
        std::env::var("STRATA_LOG").unwrap_or_else(|_| "info".into()),
    );
    // An empty config file: a host with the packages installed has /etc/strata/*.toml, which
    // must not reach the tests' daemons.
    cmd.env("STRATA_CONFIG", "/dev/null");
    // Masters run tasks as root only with an ACL that says so (issue 11): the harness's masters
    // get one unless the test passes its own `--acls`.
    let is_master = Path::new(cmd.get_program()).ends_with("strata-master");
    let has_acls = cmd
        .get_args()
        .any(|a| a == "--acls" || a.to_string_lossy().starts_with("--acls="));
    if is_master && !has_acls {
        let dir = log.parent().unwrap_or(Path::new("."));
        cmd.env("STRATA_ACLS", allow_root_acls(dir)?);
    }
    cmd.spawn()
        .with_context(|| format!("spawn {:?}", cmd.get_program()))
}

/// Writes (in `dir`) Mesos ACLs that allow everything and let every principal run tasks as
/// root — what the harness's masters use unless a test gives `--acls` — and returns the path.
pub fn allow_root_acls(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("acls-allow-root.json");
    std::fs::write(&path, strata_security::acl::Acls::ALLOW_ROOT_JSON)
        .with_context(|| format!("write {}", path.display()))?;
    Ok(path)
}

impl Cluster {
    /// A master and one agent with `resources`.
    pub fn start(resources: &str) -> Result<Self> {
        Self::start_with(&[resources], &[])
    }

    /// A master (with extra flags) and one agent per entry of `agents`.
    pub fn start_with(agents: &[&str], master_flags: &[&str]) -> Result<Self> {
        Self::start_with_agent_flags(agents, master_flags, &[])
    }

    /// A master (with extra flags) and one agent per entry of `agents`, each agent started with
    /// `agent_flags` besides the harness's own.
    pub fn start_with_agent_flags(
        agents: &[&str],
        master_flags: &[&str],
        agent_flags: &[&str],
    ) -> Result<Self> {
        Self::start_inner(agents, master_flags, agent_flags, None)
    }

    /// Like [`Cluster::start_with_agent_flags`] for daemons that serve TLS (their flags name
    /// their certificates): the harness reaches their HTTP endpoints with `tls`.
    pub fn start_tls(
        agents: &[&str],
        master_flags: &[&str],
        agent_flags: &[&str],
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Self> {
        Self::start_inner(agents, master_flags, agent_flags, Some(tls))
    }

    /// Adds an agent with `resources` and `flags` (besides the harness's own) and starts it;
    /// returns its index. Waits for its HTTP endpoints, not for its registration.
    pub fn add_agent(&mut self, resources: &str, flags: &[&str]) -> Result<usize> {
        self.add_agent_inner(resources, flags, true)
    }

    /// Like [`Cluster::add_agent`] without waiting for its HTTP endpoints (an agent whose
    /// certificate the harness does not trust).
    pub fn add_agent_nowait(&mut self, resources: &str, flags: &[&str]) -> Result<usize> {
        self.add_agent_inner(resources, flags, false)
    }

    fn add_agent_inner(&mut self, resources: &str, flags: &[&str], wait: bool) -> Result<usize> {
        let i = self.agents.len();
        let spec = self.agent_spec(i, resources, flags);
        self.agents.push((spec, None));
        self.start_agent_inner(i, wait)?;
        Ok(i)
    }

    fn start_inner(
        agents: &[&str],
        master_flags: &[&str],
        agent_flags: &[&str],
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Result<Self> {
        let cgroup_mount = require_root();
        let dir = tempfile::Builder::new().prefix("strata-e2e-").tempdir()?;
        let port = free_port();
        let mut cmd = Command::new(bin("strata-master"));
        cmd.args([
            "--ip",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--work-dir",
        ])
        .arg(dir.path().join("master"))
        .args(master_flags);
        let master = Daemon {
            child: spawn_logged(cmd, &dir.path().join("master.log"))?,
            log: dir.path().join("master.log"),
            port,
        };
        let mut cluster = Cluster {
            dir,
            master,
            agents: Vec::new(),
            cgroup_mount,
            bpffs: BpfFs::mount()?,
            standbys: Vec::new(),
            agent_master: None,
            master_flags: master_flags.iter().map(|f| f.to_string()).collect(),
            tls,
        };
        cluster.wait_http(&cluster.master.addr(), "/health", cluster.master.pid())?;
        for (i, resources) in agents.iter().enumerate() {
            let spec = cluster.agent_spec(i, resources, agent_flags);
            cluster.agents.push((spec, None));
            cluster.start_agent(i)?;
        }
        cluster.wait_agents(agents.len())?;
        Ok(cluster)
    }

    /// Agent `i`'s identity: its work dir, a free port, a cgroup subtree of its own.
    fn agent_spec(&self, i: usize, resources: &str, flags: &[&str]) -> AgentSpec {
        AgentSpec {
            work_dir: self.dir.path().join(format!("agent{i}")),
            port: free_port(),
            resources: resources.to_string(),
            cgroups_root: format!(
                "strata-e2e-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ),
            flags: flags.iter().map(|f| f.to_string()).collect(),
        }
    }

    /// Starts the (standalone) master again on its port and work dir, after it was killed.
    pub fn restart_master(&mut self) -> Result<()> {
        self.master.kill();
        let log = self.dir.path().join(format!(
            "master.log.{}",
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::rename(&self.master.log, &log);
        let mut cmd = Command::new(bin("strata-master"));
        cmd.args([
            "--ip",
            "127.0.0.1",
            "--port",
            &self.master.port.to_string(),
            "--work-dir",
        ])
        .arg(self.dir.path().join("master"))
        .args(&self.master_flags);
        let child = spawn_logged(cmd, &self.master.log)?;
        let pid = child.id() as i32;
        self.master.child = child;
        self.wait_http(&self.master.addr(), "/health", pid)
    }

    /// `masters` masters contending through ZooKeeper at `zk_url` (with `master_flags`), and one
    /// agent per entry of `agents` following the leader through the same URL. `master` is the
    /// leader once one is elected; the others are `standbys`.
    pub fn start_ha(
        zk_url: &str,
        masters: usize,
        agents: &[&str],
        master_flags: &[&str],
    ) -> Result<Self> {
        let mut flags = vec!["--zk", zk_url];
        flags.extend_from_slice(master_flags);
        let mut cluster = Self::start_with_agent_flags(&[], &flags, &[])?;
        for i in 1..masters {
            let port = free_port();
            let log = cluster.dir.path().join(format!("master{i}.log"));
            let mut cmd = Command::new(bin("strata-master"));
            cmd.args([
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--work-dir",
            ])
            .arg(cluster.dir.path().join(format!("master{i}")))
            .args(&flags);
            let child = spawn_logged(cmd, &log)?;
            let pid = child.id() as i32;
            cluster.standbys.push(Daemon { child, log, port });
            cluster.wait_http(&format!("127.0.0.1:{port}"), "/health", pid)?;
        }
        cluster.promote_leader(Duration::from_secs(30))?;
        cluster.agent_master = Some(zk_url.to_string());
        for (i, resources) in agents.iter().enumerate() {
            let spec = cluster.agent_spec(i, resources, &[]);
            cluster.agents.push((spec, None));
            cluster.start_agent(i)?;
        }
        cluster.wait_agents(agents.len())?;
        Ok(cluster)
    }

    /// Waits until one of the masters leads (its `/state` answers 200) and makes it `master`.
    /// Returns how long that took.
    pub fn promote_leader(&mut self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        loop {
            let mut all: Vec<&Daemon> = vec![&self.master];
            all.extend(self.standbys.iter());
            let leader = all.iter().position(|d| {
                !has_exited(d.pid())
                    && http_request(&d.addr(), "GET", "/state").is_ok_and(|(code, _)| code == 200)
            });
            if let Some(i) = leader {
                if i > 0 {
                    std::mem::swap(&mut self.master, &mut self.standbys[i - 1]);
                }
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("no master leads after {timeout:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// (Re)starts agent `i` with its fixed work dir, port and cgroup root.
    pub fn start_agent(&mut self, i: usize) -> Result<()> {
        self.start_agent_inner(i, true)
    }

    fn start_agent_inner(&mut self, i: usize, wait: bool) -> Result<()> {
        let spec = self.agents[i].0.clone();
        let log = self.dir.path().join(format!("agent{i}.log"));
        // Keep earlier logs of a restarted agent.
        if log.exists() {
            let _ = std::fs::rename(
                &log,
                log.with_extension(format!("log.{}", NEXT.fetch_add(1, Ordering::SeqCst))),
            );
        }
        let mut cmd = Command::new(bin("strata-agent"));
        let master = self
            .agent_master
            .clone()
            .unwrap_or_else(|| self.master.addr());
        cmd.args([
            "--master",
            &master,
            "--ip",
            "127.0.0.1",
            "--port",
            &spec.port.to_string(),
        ])
        .args([
            "--cgroups-root",
            &spec.cgroups_root,
            "--kill-grace-period",
            "2secs",
        ])
        .args(["--status-update-retry-interval", "1secs"])
        .arg("--work-dir")
        .arg(&spec.work_dir);
        if !spec.resources.is_empty() {
            cmd.args(["--resources", &spec.resources]);
        }
        if !spec.flags.iter().any(|f| f.starts_with("--bpf-pin-dir")) {
            cmd.arg("--bpf-pin-dir")
                .arg(self.bpffs.path().join(format!("agent{i}")));
        }
        cmd.args(&spec.flags);
        let child = spawn_logged(cmd, &log)?;
        let pid = child.id() as i32;
        self.agents[i].1 = Some(Daemon {
            child,
            log,
            port: spec.port,
        });
        if !wait {
            return Ok(());
        }
        self.wait_http(&format!("127.0.0.1:{}", spec.port), "/health", pid)
    }

    pub fn agent(&self, i: usize) -> &Daemon {
        self.agents[i].1.as_ref().expect("agent is not running")
    }

    pub fn agent_mut(&mut self, i: usize) -> &mut Daemon {
        self.agents[i].1.as_mut().expect("agent is not running")
    }

    /// Waits until the daemon `pid` answers `path`; fails at once when the daemon has exited
    /// (e.g. refused its flags).
    fn wait_http(&self, addr: &str, path: &str, pid: i32) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // A TLS cluster may hold agents that serve plain HTTP (on loopback).
            let answered = self.tls.as_ref().is_some_and(|tls| {
                pki::https_request(tls, addr, "GET", path).is_ok_and(|(c, _)| c == 200)
            }) || http_get(addr, path).is_ok();
            if answered {
                return Ok(());
            }
            if has_exited(pid) {
                bail!(
                    "the daemon (pid {pid}) exited before {addr}{path} answered\n{}",
                    self.logs()
                );
            }
            if Instant::now() > deadline {
                bail!("{addr}{path} did not answer within 20 s\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the master sees `n` active agents.
    pub fn wait_agents(&self, n: usize) -> Result<Value> {
        self.wait_state(Duration::from_secs(20), |s| {
            s["slaves"]
                .as_array()
                .map(|a| a.iter().filter(|x| x["active"] == true).count() >= n)
                .unwrap_or(false)
        })
    }

    /// Polls the master's /state until `pred` holds.
    pub fn wait_state(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            // A master that is still being elected answers 503: keep asking until the deadline.
            let state = match self.master_state() {
                Ok(state) => state,
                Err(err) if Instant::now() <= deadline && err.to_string().contains("503") => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(err) => return Err(err),
            };
            if pred(&state) {
                return Ok(state);
            }
            if Instant::now() > deadline {
                bail!("the master's state did not reach the expected shape in {timeout:?}: {state}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn master_state(&self) -> Result<Value> {
        let Some(tls) = &self.tls else {
            return http_get(&self.master.addr(), "/state");
        };
        let (code, body) = pki::https_request(tls, &self.master.addr(), "GET", "/state")?;
        if code != 200 {
            bail!("GET /state answered {code}: {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET /state: invalid JSON {body:?}"))
    }

    /// Every daemon's log tail, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("--- master log ---\n{}\n", self.master.log_tail());
        for (i, d) in self.standbys.iter().enumerate() {
            out.push_str(&format!("--- standby {i} log ---\n{}\n", d.log_tail()));
        }
        for (i, (_, d)) in self.agents.iter().enumerate() {
            if let Some(d) = d {
                out.push_str(&format!("--- agent{i} log ---\n{}\n", d.log_tail()));
            }
        }
        out
    }

    /// The agent's cgroup subtree.
    pub fn agent_cgroup(&self, i: usize) -> PathBuf {
        self.cgroup_mount.join(&self.agents[i].0.cgroups_root)
    }

    /// Pids of every process in the agent's containers right now.
    pub fn container_pids(&self, i: usize) -> Vec<i32> {
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.agent_cgroup(i)) {
            for e in entries.flatten() {
                if e.path().is_dir() {
                    pids.extend(procs(&e.path()));
                }
            }
        }
        pids
    }

    /// Pids of the supervisors the agent's work dir names, if they are still supervisors.
    fn supervisor_pids(spec: &AgentSpec) -> Vec<i32> {
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir(spec.work_dir.join("meta/containers")) {
            for e in entries.flatten() {
                let pid: Option<i32> = std::fs::read_to_string(e.path().join("supervisor.pid"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                if let Some(pid) = pid {
                    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    if cmdline
                        .split(|b| *b == 0)
                        .any(|a| a == e.path().as_os_str().as_encoded_bytes())
                    {
                        pids.push(pid);
                    }
                }
            }
        }
        pids
    }
}

/// Whether our child `pid` has exited (a zombie not reaped yet, or gone).
fn has_exited(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// The pids in a cgroup (none if it is gone).
pub fn procs(cgroup: &Path) -> Vec<i32> {
    Cgroup::open(cgroup)
        .and_then(|cg| cg.procs())
        .unwrap_or_default()
}

/// Kills everything in a cgroup subtree and removes it, deepest first (best effort: this runs
/// in cleanup paths, which must not fail).
pub fn remove_cgroup_tree(path: &Path) {
    let Ok(cg) = Cgroup::open(path) else { return };
    let _ = cg.kill();
    cg.wait_empty(Duration::from_secs(5));
    let _ = cg.remove();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (spec, daemon) in &mut self.agents {
            if let Some(d) = daemon {
                d.kill();
            }
            for pid in Self::supervisor_pids(spec) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            remove_cgroup_tree(&self.cgroup_mount.join(&spec.cgroups_root));
        }
        self.master.kill();
        for standby in &mut self.standbys {
            standby.kill();
        }
    }
}

/// GET a JSON document over plain HTTP/1.0 (blocking; no runtime needed).
pub fn http_get(addr: &str, path: &str) -> Result<Value> {
    let (code, body) = http_request(addr, "GET", path)?;
    if code != 200 {
        bail!("GET {path} answered {code}: {body}");
    }
    if body.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&body).with_context(|| format!("GET {path}: invalid JSON {body:?}"))
}

/// A minimal blocking HTTP/1.0 request; returns the status code and body.
pub fn http_request(addr: &str, method: &str, path: &str) -> Result<(u16, String)> {
    let (code, _, body) = http_response(addr, method, path)?;
    Ok((code, body))
}

/// A response's headers, names lowercased.
pub type Headers = Vec<(String, String)>;

/// Like [`http_request`], with the response's headers too.
pub fn http_response(addr: &str, method: &str, path: &str) -> Result<(u16, Headers, String)> {
    http_exchange(addr, method, path, "")
}

/// A request with a JSON body; returns the status code and the body of the response.
pub fn http_send(addr: &str, method: &str, path: &str, body: &Value) -> Result<(u16, String)> {
    let (code, _, body) = http_exchange(addr, method, path, &body.to_string())?;
    Ok((code, body))
}

fn http_exchange(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, Headers, String)> {
    http_exchange_with(addr, method, path, &[], body)
}

/// A request with extra headers (e.g. `Authorization`) and an optional JSON body (empty: none);
/// returns the status code, the headers (names lowercased, repeated ones kept) and the body.
pub fn http_exchange_with(
    addr: &str,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
) -> Result<(u16, Headers, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let extra: String = extra
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{content_type}{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    Ok(parse_response(&raw))
}

/// An HTTP/1 response as read off the wire: the status code (0 when there is none, e.g. the
/// server closed without answering), the headers (names lowercased, repeated ones kept) and the
/// body.
pub fn parse_response(raw: &[u8]) -> (u16, Headers, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (code, headers, body.to_string())
}
