//! `strata-bench isolation`: how long it takes to create and start a container that runs
//! `/bin/true` in a cgroup of its own and new pid, mount, uts and ipc namespaces, and to reap it.
//! Four ways, measured in the same run, alternating in blocks of [`BLOCK`] runs (these machines are
//! noisy):
//!
//! - fork/exec: `/bin/true` spawned with `std::process::Command`, no cgroup, no namespaces;
//! - strata: `strata-agent supervise <dir>` as the agent spawns it, from the spawn to its exit,
//!   when `status.json` is written and the container's cgroup removed;
//! - crun and runc: `run` of an OCI bundle with the same namespaces, a cgroup, a fresh `/proc`
//!   and the hostname, whose rootfs holds `/bin/true` and the libraries it loads.
//!
//! The cgroup view. On a hybrid host (a tmpfs at `/sys/fs/cgroup` holding the v1 hierarchies,
//! cgroup2 at `/sys/fs/cgroup/unified`) crun and runc both take their cgroup v1 code: each decides
//! with `statfs("/sys/fs/cgroup")`, and their `cgroupsPath` is relative to every v1 hierarchy.
//! Nothing of Strata's may write a v1 hierarchy, so the bench runs in a private mount namespace
//! whose `/sys/fs/cgroup` is a bind mount of a cgroup2 directory of its own
//! (`<cgroup2>/strata-bench-<pid>`) and where the v1 mounts are detached. There both runtimes take
//! their cgroup2 code, and whatever they write (runc enables every available controller in the
//! `cgroup.subtree_control` of each ancestor of its cgroup, root included) lands in the bench's
//! own subtree. The supervisor runs in the same view, so all four see the same mounts.
//!
//! Everything the bench creates (the cgroup subtree, crun's and runc's containers, the temp dir,
//! processes) is removed when `Bench` is dropped, also after an error; SIGINT stops it between two
//! runs and cleans up the same way.

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use strata_agent::supervisor::{self, ContainerSpec, SPEC_FILE, STATUS_FILE};

/// Where the cgroup view is mounted, and so where crun and runc look for the hierarchy.
const CGROUP_VIEW: &str = "/sys/fs/cgroup";
/// What every container runs.
const TRUE: &str = "/bin/true";
const HOSTNAME: &str = "bench";
const TASK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The supervisor's environment, as the agent's containerizer gives it.
const SUPERVISOR_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Runs of one way back to back before the next way's. Each way's runs are spread over the whole
/// bench (drift and other load on the machine hit all of them alike), while few of them follow
/// another way's run: a run right after `runc run` is slower (by about 0.5 ms for the supervisor
/// on the 2-core build machines), which strict interleaving would charge to the fast ways.
pub const BLOCK: usize = 25;
/// Untimed runs of each way before the measured ones.
const WARMUP: usize = 5;

/// Set by SIGINT; the bench stops before its next run and cleans up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One way to start `/bin/true`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    ForkExec,
    Strata,
    Crun,
    Runc,
}

impl Way {
    pub const ALL: [Way; 4] = [Way::ForkExec, Way::Strata, Way::Crun, Way::Runc];

    pub fn name(self) -> &'static str {
        match self {
            Way::ForkExec => "fork/exec",
            Way::Strata => "strata",
            Way::Crun => "crun",
            Way::Runc => "runc",
        }
    }
}

/// The durations of one way's runs.
#[derive(Debug)]
pub struct Measured {
    pub way: Way,
    /// What exactly ran, for the report.
    pub what: String,
    /// Sorted.
    pub times: Vec<Duration>,
}

#[derive(Debug)]
pub struct Report {
    pub runs: usize,
    /// How the cgroups were arranged, for the report.
    pub cgroups: String,
    pub measured: Vec<Measured>,
    pub wall: Duration,
}

impl Report {
    pub fn get(&self, way: Way) -> &[Duration] {
        self.measured
            .iter()
            .find(|m| m.way == way)
            .map_or(&[], |m| m.times.as_slice())
    }
}

/// Runs the bench: `runs` containers each way. `agent` is the `strata-agent` binary. Enters a
/// mount namespace of its own (see the module's comment): call it while this process is still
/// single-threaded, and expect to stay in that namespace afterwards.
pub fn run(agent: &Path, runs: usize) -> Result<Report> {
    ensure!(runs > 0, "the number of runs must be positive");
    ensure!(
        nix::unistd::geteuid().is_root(),
        "the isolation bench needs root: it creates cgroups and namespaces"
    );
    ensure!(
        agent.exists(),
        "{} is missing: build it first (`cargo xtask bench isolation` does)",
        agent.display()
    );
    install_sigint_handler();
    let mut bench = Bench::new(agent)?;
    bench.measure(runs)
}

// ---------------------------------------------------------------------------------------------

/// An OCI runtime and its bundle.
struct Runtime {
    way: Way,
    exe: PathBuf,
    version: String,
    /// Its `--root`: where it keeps container state.
    state: PathBuf,
    bundle: PathBuf,
    /// Its stderr, for error messages.
    log: PathBuf,
}

impl Runtime {
    fn find(way: Way, work: &Path, rootfs: &Path) -> Result<Self> {
        let name = way.name();
        let exe = which(name).with_context(|| {
            format!("{name} is not installed: apt-get install crun runc (`cargo xtask bench isolation` does)")
        })?;
        let state = work.join(format!("{name}-state"));
        let bundle = work.join(format!("{name}-bundle"));
        std::fs::create_dir_all(&state)?;
        std::fs::create_dir_all(&bundle)?;
        // With `--root`: without it, crun creates its default state dir /run/crun.
        let output = Command::new(&exe)
            .arg("--root")
            .arg(&state)
            .arg("--version")
            .output()
            .with_context(|| format!("cannot run {} --version", exe.display()))?;
        let version = String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or(name)
            .trim()
            .to_string();
        let config = oci_config(rootfs, &format!("/{name}"));
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&config)?,
        )?;
        Ok(Self {
            way,
            exe,
            version,
            state,
            bundle,
            log: work.join(format!("{name}.log")),
        })
    }

    /// The container's cgroup, as named in its config (relative to the cgroup view).
    fn cgroup(&self) -> PathBuf {
        Path::new(CGROUP_VIEW).join(self.way.name())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("--root").arg(&self.state);
        if self.way == Way::Crun {
            // The default, said explicitly: cgroups written directly, not through systemd.
            cmd.arg("--cgroup-manager=cgroupfs");
        }
        cmd.args(args);
        cmd
    }

    fn describe(&self) -> String {
        let manager = match self.way {
            Way::Crun => " --cgroup-manager=cgroupfs",
            _ => "",
        };
        format!(
            "{} ({}): `{} --root <state>{manager} run --bundle <bundle> <id>`",
            self.way.name(),
            self.version,
            self.exe.display(),
        )
    }

    /// `run` of one container, from the spawn to its exit.
    fn time_run(&self, id: &str) -> Result<Duration> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let bundle = self.bundle.to_string_lossy();
        let mut cmd = self.command(&["run", "--bundle", &bundle, id]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        let start = Instant::now();
        let status = cmd.status();
        let elapsed = start.elapsed();
        let status = status.with_context(|| format!("cannot run {}", self.exe.display()))?;
        if !status.success() {
            self.delete(id);
            bail!(
                "`{} run` of {id} failed ({status}): {}",
                self.way.name(),
                tail(&self.log)
            );
        }
        ensure!(
            !self.state.join(id).exists(),
            "{} left the state of {id} behind",
            self.way.name()
        );
        ensure!(
            !self.cgroup().exists(),
            "{} left its cgroup {} behind",
            self.way.name(),
            self.cgroup().display()
        );
        Ok(elapsed)
    }

    /// `delete --force` of a container, best effort.
    fn delete(&self, id: &str) {
        let _ = self
            .command(&["delete", "--force", id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Deletes every container left in the runtime's state dir.
    fn delete_all(&self) {
        let Ok(entries) = std::fs::read_dir(&self.state) else {
            return;
        };
        for entry in entries.flatten() {
            if let Some(id) = entry.file_name().to_str() {
                self.delete(id);
            }
        }
    }
}

/// An OCI runtime config equivalent to what the supervisor does for a command task: `/bin/true`
/// as root in new pid, mount, uts and ipc namespaces (no network namespace), a fresh `/proc`, the
/// hostname, a cgroup, nothing else (no capability, rlimit, seccomp or masked-path changes, a
/// writable root). The rootfs is needed by OCI runtimes; the supervisor's command tasks run on
/// the host's.
fn oci_config(rootfs: &Path, cgroups_path: &str) -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": [TRUE],
            "env": [format!("PATH={TASK_PATH}")],
            "cwd": "/",
        },
        "root": { "path": rootfs, "readonly": false },
        "hostname": HOSTNAME,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" },
                { "type": "mount" },
                { "type": "uts" },
                { "type": "ipc" },
            ],
            "cgroupsPath": cgroups_path,
        },
    })
}

/// The bench's cgroup directory on the host's cgroup2 hierarchy, and whether this process sees
/// it at `/sys/fs/cgroup` yet.
pub struct BenchCgroup {
    /// The host's cgroup2 mount (`O_PATH`), which stays usable after it is detached here.
    host_mount: OwnedFd,
    host_path: PathBuf,
    name: String,
    in_view: bool,
}

impl BenchCgroup {
    pub fn create(host_mount: &Path) -> Result<Self> {
        use nix::fcntl::OFlag;
        let fd = nix::fcntl::open(
            host_mount,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", host_mount.display()))?;
        let name = format!("strata-bench-{}", std::process::id());
        let host_path = host_mount.join(&name);
        std::fs::create_dir(&host_path)
            .with_context(|| format!("cannot create the cgroup {}", host_path.display()))?;
        Ok(Self {
            host_mount: fd,
            host_path,
            name,
            in_view: false,
        })
    }

    /// Enters a private mount namespace whose `/sys/fs/cgroup` is this cgroup, with the host's
    /// v1 hierarchies (and its cgroup2 mount) detached. `staging` is an empty directory to mount
    /// on for a moment.
    pub fn enter_view(&mut self, staging: &Path) -> Result<()> {
        use nix::mount::{mount, umount2, MntFlags, MsFlags};
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .context("cannot create a mount namespace (is the bench multi-threaded?)")?;
        // Nothing done below propagates back to the host's namespace.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .context("cannot make the mounts private")?;
        std::fs::create_dir(staging)?;
        mount(
            Some(&self.host_path),
            staging,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind-mount {}", self.host_path.display()))?;
        let moved = match umount2(CGROUP_VIEW, MntFlags::MNT_DETACH) {
            // EINVAL: nothing was mounted there.
            Ok(()) | Err(nix::errno::Errno::EINVAL) => mount(
                Some(staging),
                CGROUP_VIEW,
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            )
            .with_context(|| format!("cannot move the cgroup view to {CGROUP_VIEW}")),
            Err(err) => Err(err).with_context(|| format!("cannot detach {CGROUP_VIEW}")),
        };
        if let Err(err) = moved {
            let _ = umount2(staging, MntFlags::MNT_DETACH);
            return Err(err);
        }
        self.in_view = true;
        // Check that the view is what it should be before anything writes to it.
        let statfs = nix::sys::statfs::statfs(CGROUP_VIEW)?;
        ensure!(
            statfs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC,
            "{CGROUP_VIEW} is not cgroup2 in the bench's namespace"
        );
        let view = std::fs::metadata(CGROUP_VIEW)?;
        let own = nix::sys::stat::fstatat(
            &self.host_mount,
            self.name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        ensure!(
            view.dev() == own.st_dev as u64 && view.ino() == own.st_ino as u64,
            "{CGROUP_VIEW} is not {} in the bench's namespace",
            self.host_path.display()
        );
        Ok(())
    }

    /// Kills whatever is left in the subtree and removes it, best effort (says what it left).
    pub fn remove(&mut self) {
        if self.in_view {
            if let Ok(entries) = std::fs::read_dir(CGROUP_VIEW) {
                for entry in entries.flatten() {
                    if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        crate::remove_cgroup_tree(&entry.path());
                    }
                }
            }
            // The view's root is a mount point here: unmount it, then remove the directory
            // through the host's mount.
            let _ = nix::mount::umount2(CGROUP_VIEW, nix::mount::MntFlags::MNT_DETACH);
            self.in_view = false;
        } else {
            // Out of reach when the view was set up half-way; then it is still empty.
            crate::remove_cgroup_tree(&self.host_path);
        }
        let _ = nix::unistd::unlinkat(
            &self.host_mount,
            self.name.as_str(),
            nix::unistd::UnlinkatFlags::RemoveDir,
        );
        let left = nix::sys::stat::fstatat(
            &self.host_mount,
            self.name.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok();
        if left {
            eprintln!(
                "strata-bench: could not remove the cgroup {}",
                self.host_path.display()
            );
        }
    }
}

/// Everything one bench run set up; dropping it removes all of it.
struct Bench {
    agent: PathBuf,
    cgroup: BenchCgroup,
    runtimes: Vec<Runtime>,
    rootfs_files: Vec<PathBuf>,
    /// Dropped after `Drop::drop` has cleaned up what lies in it.
    work: tempfile::TempDir,
}

impl Bench {
    fn new(agent: &Path) -> Result<Self> {
        let host_mount =
            crate::cgroup2_mount().context("no cgroup2 mount in /proc/self/mountinfo")?;
        let work = tempfile::Builder::new()
            .prefix("strata-bench-isolation.")
            .tempdir()?;
        let cgroup = BenchCgroup::create(&host_mount)?;
        let mut bench = Self {
            agent: agent.to_path_buf(),
            cgroup,
            runtimes: Vec::new(),
            rootfs_files: Vec::new(),
            work,
        };
        bench
            .cgroup
            .enter_view(&bench.work.path().join("cgroup-staging"))?;
        let rootfs = bench.work.path().join("rootfs");
        bench.rootfs_files = build_rootfs(&rootfs)?;
        for way in [Way::Crun, Way::Runc] {
            let runtime = Runtime::find(way, bench.work.path(), &rootfs)?;
            bench.runtimes.push(runtime);
        }
        Ok(bench)
    }

    /// One run of `way`, unless SIGINT came.
    fn run_checked(&self, way: Way, run: &str) -> Result<Duration> {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        let id = format!("bench-{}-{run}", way.name().replace('/', "-"));
        self.time(way, &id)
            .with_context(|| format!("{} run {run}", way.name()))
    }

    fn runtime(&self, way: Way) -> Result<&Runtime> {
        self.runtimes
            .iter()
            .find(|r| r.way == way)
            .with_context(|| format!("no runtime for {}", way.name()))
    }

    fn time(&self, way: Way, id: &str) -> Result<Duration> {
        match way {
            Way::ForkExec => time_fork_exec(),
            Way::Strata => self.time_strata(id),
            Way::Crun | Way::Runc => self.runtime(way)?.time_run(id),
        }
    }

    fn measure(&mut self, runs: usize) -> Result<Report> {
        let ways = Way::ALL.len();
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); ways];
        // Untimed runs of each way first: they check that all of them work and warm the caches.
        for way in Way::ALL {
            for run in 0..WARMUP {
                self.run_checked(way, &format!("warmup{run}"))?;
            }
        }
        let start = Instant::now();
        let (mut done, mut cycle) = (0, 0);
        while done < runs {
            let n = BLOCK.min(runs - done);
            // A block of each way in turn, a different way first in each cycle.
            for k in 0..ways {
                let index = (cycle + k) % ways;
                for run in done..done + n {
                    times[index].push(self.run_checked(Way::ALL[index], &run.to_string())?);
                }
            }
            done += n;
            cycle += 1;
        }
        let wall = start.elapsed();
        let measured = Way::ALL
            .iter()
            .zip(times)
            .map(|(&way, mut times)| {
                times.sort();
                Ok(Measured {
                    way,
                    what: self.describe(way)?,
                    times,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Report {
            runs,
            cgroups: format!(
                "every way runs in a private mount namespace whose {CGROUP_VIEW} is the cgroup2 \
                 directory {} (the v1 hierarchies are detached there), so crun and runc use their \
                 cgroup2 code; each container gets a cgroup below it",
                self.cgroup.host_path.display()
            ),
            measured,
            wall,
        })
    }

    fn describe(&self, way: Way) -> Result<String> {
        let files: Vec<String> = self
            .rootfs_files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        Ok(match way {
            Way::ForkExec => format!(
                "fork/exec: {TRUE} spawned by std::process::Command (posix_spawn) and waited for; \
                 no cgroup, no namespaces"
            ),
            Way::Strata => format!(
                "strata: `{} supervise <dir>` spawned as the agent does (stdout piped, stderr to \
                 supervisor.log), until it exits: cgroup created, clone3 into it with new \
                 pid/mount/uts/ipc namespaces, fresh /proc, hostname, {TRUE} of the host, reaped, \
                 cgroup removed, status.json written",
                self.agent.display()
            ),
            Way::Crun | Way::Runc => format!(
                "{}; config: {TRUE} as root, pid/mount/uts/ipc namespaces (no network), /proc, \
                 hostname, cgroupsPath /{}, writable rootfs of {}",
                self.runtime(way)?.describe(),
                way.name(),
                files.join(" ")
            ),
        })
    }

    /// One container through the supervisor, from spawning it to its exit.
    fn time_strata(&self, id: &str) -> Result<Duration> {
        let dir = self.work.path().join("strata").join(id);
        let sandbox = dir.join("sandbox");
        std::fs::create_dir_all(&sandbox)?;
        let cgroup = Path::new(CGROUP_VIEW).join(id);
        // Only today's fields: fields added later keep their serde defaults.
        let spec: ContainerSpec = serde_json::from_value(json!({
            "container_id": id,
            "sandbox": sandbox,
            "cgroup": cgroup,
            "argv": [TRUE],
            "env": [["PATH", TASK_PATH]],
            "user": null,
            "hostname": HOSTNAME,
            "namespaces": { "pid": true, "mount": true, "uts": true, "ipc": true, "net": false },
        }))
        .context("cannot build a ContainerSpec")?;
        std::fs::write(dir.join(SPEC_FILE), serde_json::to_vec_pretty(&spec)?)?;
        let log_path = dir.join("supervisor.log");
        let log = File::create(&log_path)?;
        let mut cmd = Command::new(&self.agent);
        cmd.arg("supervise")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .env_clear()
            .env("PATH", SUPERVISOR_PATH);

        let start = Instant::now();
        let mut child = Reaped::spawn(&mut cmd)?;
        let stdout = child.stdout()?;
        let lines: Vec<String> = BufReader::new(stdout).lines().collect::<Result<_, _>>()?;
        let status = child.wait()?;
        let elapsed = start.elapsed();

        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        ensure!(
            status.success(),
            "the supervisor exited with {status}: {lines:?} {log}"
        );
        ensure!(
            lines.first().is_some_and(|l| l.starts_with("running "))
                && lines.last().is_some_and(|l| l == "exited"),
            "unexpected supervisor output {lines:?} {log}"
        );
        let exit: supervisor::ExitStatus =
            serde_json::from_slice(&std::fs::read(dir.join(STATUS_FILE))?)?;
        ensure!(
            exit.started && exit.exit_code == Some(0),
            "{TRUE} did not succeed: {exit:?}"
        );
        ensure!(
            !cgroup.exists(),
            "the supervisor left its cgroup {} behind",
            cgroup.display()
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(elapsed)
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for runtime in &self.runtimes {
            runtime.delete_all();
        }
        // Mounted there only if entering the view failed half-way; the temp dir must hold no
        // mount when it is removed, nor the bench's cgroup when that is.
        let _ = nix::mount::umount2(
            &self.work.path().join("cgroup-staging"),
            nix::mount::MntFlags::MNT_DETACH,
        );
        self.cgroup.remove();
    }
}

/// A child process that is killed and reaped if it is dropped before it was waited for.
struct Reaped(Option<Child>);

impl Reaped {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot run {:?}", cmd.get_program()))?;
        Ok(Self(Some(child)))
    }

    fn stdout(&mut self) -> Result<std::process::ChildStdout> {
        self.0
            .as_mut()
            .and_then(|c| c.stdout.take())
            .context("the child's stdout is not piped")
    }

    fn wait(mut self) -> Result<ExitStatus> {
        let mut child = self.0.take().context("already waited for")?;
        Ok(child.wait()?)
    }
}

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn time_fork_exec() -> Result<Duration> {
    let start = Instant::now();
    let status = Command::new(TRUE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let elapsed = start.elapsed();
    let status = status.with_context(|| format!("cannot run {TRUE}"))?;
    ensure!(status.success(), "{TRUE} failed ({status})");
    Ok(elapsed)
}

/// A rootfs with `/bin/true` and the libraries it loads (as `ldd` lists them), and empty `/proc`
/// and `/dev` (crun wants the latter). Returns the files copied.
fn build_rootfs(rootfs: &Path) -> Result<Vec<PathBuf>> {
    for dir in ["proc", "dev"] {
        std::fs::create_dir_all(rootfs.join(dir))?;
    }
    let output = Command::new("ldd")
        .arg(TRUE)
        .output()
        .context("cannot run ldd")?;
    // A static binary makes ldd fail ("not a dynamic executable"): then it needs nothing.
    let libraries = if output.status.success() {
        parse_ldd(&String::from_utf8_lossy(&output.stdout))
    } else {
        Vec::new()
    };
    let mut files = vec![PathBuf::from(TRUE)];
    files.extend(libraries);
    for file in &files {
        let relative = file.strip_prefix("/").unwrap_or(file);
        let dest = rootfs.join(relative);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(file, &dest)
            .with_context(|| format!("cannot copy {} into the rootfs", file.display()))?;
    }
    Ok(files)
}

/// The absolute paths in `ldd`'s output (`libc.so.6 => /lib/…/libc.so.6 (0x…)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x…)`); the vdso has none.
fn parse_ldd(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// The first executable called `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// The last lines of a log file, on one line.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_sigint_handler() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_sigint),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    let _ = unsafe { sigaction(Signal::SIGINT, &action) };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ldd_output() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn spec_with_todays_fields_is_valid() {
        let spec: ContainerSpec = serde_json::from_value(json!({
            "container_id": "c", "sandbox": "/s", "cgroup": "/sys/fs/cgroup/c",
            "argv": [TRUE], "env": [["PATH", TASK_PATH]], "user": null, "hostname": HOSTNAME,
            "namespaces": { "pid": true, "mount": true, "uts": true, "ipc": true, "net": false },
        }))
        .unwrap();
        assert_eq!(spec.argv, [TRUE]);
    }

    #[test]
    fn oci_config_has_the_supervisors_namespaces() {
        let config = oci_config(Path::new("/r"), "/crun");
        let ns: Vec<&str> = config["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "mount", "uts", "ipc"]);
        assert_eq!(config["linux"]["cgroupsPath"], "/crun");
        assert_eq!(config["process"]["terminal"], false);
    }
}
