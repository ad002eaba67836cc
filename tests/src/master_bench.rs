//! `cargo xtask bench master`: the whole master under load. A standalone master (the release
//! binary), `agents` simulated agents speaking the real agent RPC from this process
//! ([`crate::sim_agent`], on one thread), and `frameworks` frameworks (the client SDK) that take
//! every offer and launch small tasks on it until `tasks` are running. The agents report
//! TASK_RUNNING as soon as a task is launched, and TASK_FINISHED for all of them when the bench
//! asks, once the master's memory and `/state` were measured with every task live.

use crate::sim_agent::{self, SimHandle, SimTasks};
use anyhow::{bail, Context, Result};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_client::{ClientError, Event, Operation, SchedulerDriver};
use strata_schema::{FrameworkInfo, Resources, TaskId, TaskState};
use tokio::sync::watch;

/// The shape of the run.
#[derive(Debug, Clone)]
pub struct Options {
    pub tasks: usize,
    pub agents: usize,
    pub frameworks: usize,
    /// What each simulated agent offers.
    pub agent_resources: String,
    /// What each task asks.
    pub task_resources: String,
    /// Launch phase deadline.
    pub timeout: Duration,
}

impl Options {
    /// At most this many tasks go on one offer (the tasks spread over the agents, ten each at
    /// the default scale); an offer's remainder is refused.
    pub fn per_offer(&self) -> usize {
        self.tasks.div_ceil(self.agents.max(1)).max(1)
    }
}

/// `GET /state`: how long it took to answer, and how big the answer was.
#[derive(Debug, Clone, Default)]
pub struct StateTiming {
    pub times: Vec<Duration>,
    pub bytes: usize,
}

/// Resident memory of the master, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub rss_started: Rss,
    pub agents_registered_in: Duration,
    pub rss_agents: Rss,
    pub state_agents: StateTiming,
    /// First accept to the last TASK_RUNNING seen by the frameworks.
    pub launch_wall: Duration,
    /// Per task: offer received by its framework -> its TASK_RUNNING received there.
    pub offer_to_running: Vec<Duration>,
    pub offers_received: usize,
    pub offers_declined: usize,
    pub rss_loaded: Rss,
    /// `GET /state` at rest (no offer made for a second), and just after the acknowledgements
    /// drained, while the frameworks still declined the remainders offered to them.
    pub state_loaded: StateTiming,
    pub state_busy: StateTiming,
    /// How long the master took to come to rest after the acknowledgements drained.
    pub rest_after: Duration,
    pub state_loaded_tasks: usize,
    pub state_loaded_agents: u64,
    /// finish_all -> the last TASK_FINISHED seen by the frameworks.
    pub finish_wall: Duration,
    pub rss_finished: Rss,
    pub acknowledged_at_agents: u64,
    pub update_errors: u64,
    /// Where the launch time goes, per task: offer received by the framework -> the launch
    /// reached the agent, and the launch reached the agent -> TASK_RUNNING received by the
    /// framework (one clock: all of them live in this process).
    pub offer_to_agent: Vec<Duration>,
    pub agent_to_running: Vec<Duration>,
    /// Round trips of the frameworks' `accept` calls and of the agents' `statusUpdate` calls
    /// (each answered once the master's state machine applied it).
    pub accept_rtt: Vec<Duration>,
    pub update_rtt: Vec<Duration>,
    /// CPU time used during the launch phase by the master and by this process (agents and
    /// frameworks), beside its wall time.
    pub master_cpu_launch: Duration,
    pub bench_cpu_launch: Duration,
    /// The same per thread of the master (by thread name; threads of one name added up), most
    /// first: which of its threads is busy.
    pub master_threads_launch: Vec<(String, Duration)>,
}

/// CPU time per thread name of process `pid`, from `/proc/<pid>/task/*/{comm,stat}`.
fn thread_cpu(pid: u32) -> HashMap<String, Duration> {
    let mut by_name: HashMap<String, Duration> = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if let Ok(cpu) = cpu_time(&task.path().join("stat")) {
            *by_name.entry(name.trim().to_string()).or_default() += cpu;
        }
    }
    by_name
}

/// User plus system CPU time of a process, from `/proc/<pid>/stat`.
pub fn cpu_time(stat: &Path) -> Result<Duration> {
    let text = std::fs::read_to_string(stat).with_context(|| format!("read {}", stat.display()))?;
    // Fields after the command (which may hold spaces) start at the state, field 3.
    let rest = text.rsplit_once(')').map(|r| r.1).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> u64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0) };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_secs_f64(total as f64 / hz as f64))
}

/// The master process; killed (by pid) and reaped when dropped, also on error.
struct MasterProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl MasterProcess {
    fn start(bin_dir: &Path) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("strata-bench-master-")
            .tempdir()?;
        let port = crate::free_port();
        let log = dir.path().join("master.log");
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(bin_dir.join("strata-master"))
            .args([
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--work-dir",
            ])
            .arg(dir.path().join("master"))
            // The bench's framework runs its tasks as root (issue 11).
            .arg("--acls")
            .arg(crate::allow_root_acls(dir.path())?)
            .env(
                "STRATA_LOG",
                std::env::var("STRATA_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .env("STRATA_CONFIG", "/dev/null")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("spawn {}", bin_dir.join("strata-master").display()))?;
        let master = MasterProcess {
            child,
            port,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        while !matches!(
            crate::http_request(&master.addr(), "GET", "/health"),
            Ok((200, _))
        ) {
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the master did not come up:\n{}", master.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(master)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn rss(&self) -> Result<Rss> {
        read_rss(Path::new(&format!("/proc/{}/status", self.pid())))
    }

    fn cpu(&self) -> Result<Duration> {
        cpu_time(Path::new(&format!("/proc/{}/stat", self.pid())))
    }
}

impl Drop for MasterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS and VmHWM of a `/proc/<pid>/status` file.
pub fn read_rss(status: &Path) -> Result<Rss> {
    let text =
        std::fs::read_to_string(status).with_context(|| format!("read {}", status.display()))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Rss {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    })
}

/// Raises this process's open file limit (inherited by the master it spawns) to at least `n`:
/// every simulated agent holds a connection, and the master holds the other end.
pub fn raise_nofile(n: libc::rlim_t) -> Result<libc::rlim_t> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    let want = lim.rlim_max.max(n);
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return Ok(want);
    }
    // Not root: the hard limit is as far as it goes.
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setrlimit(RLIMIT_NOFILE)");
    }
    Ok(lim.rlim_max)
}

/// `GET /state` over HTTP/1.0, waiting up to two minutes for the answer (the harness's helper
/// gives up after 10 s). With `keep`, the body is read into a buffer of its Content-Length and
/// returned; without, it is read through a small buffer and only counted (as `curl -o
/// /dev/null` does), so that the time is the master's and the connection's, not this process
/// faulting in 50 MB.
fn get_state(addr: &str, keep: bool) -> Result<(usize, Option<String>)> {
    use std::io::{BufRead, Read, Write};
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(s, "GET /state HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut r = std::io::BufReader::with_capacity(64 * 1024, s);
    let mut status = String::new();
    r.read_line(&mut status)
        .context("read the answer to GET /state")?;
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET /state answered {status:?}");
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            bail!("GET /state: no end of headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let (read, body) = if keep {
        let mut body = Vec::with_capacity(length.unwrap_or(0));
        r.read_to_end(&mut body)
            .context("read the body of GET /state")?;
        let text = String::from_utf8(body).context("GET /state: not UTF-8")?;
        (text.len(), Some(text))
    } else {
        let read =
            std::io::copy(&mut r, &mut std::io::sink()).context("read the body of GET /state")?;
        (read as usize, None)
    };
    if let Some(length) = length {
        if read != length {
            bail!("GET /state: {read} bytes, not the {length} announced");
        }
    }
    Ok((read, body))
}

/// Times `GET /state` `n` times (sorted; fewer if they take over 30 s together), the bodies
/// read and dropped; then fetches it once more, untimed, to return it.
fn time_state(addr: &str, n: usize) -> Result<(StateTiming, String)> {
    let mut timing = StateTiming::default();
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let (read, _) = get_state(addr, false)?;
        timing.times.push(t.elapsed());
        timing.bytes = read;
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    timing.times.sort();
    let (_, body) = get_state(addr, true)?;
    Ok((timing, body.unwrap_or_default()))
}

/// What the frameworks count together.
#[derive(Default)]
struct Progress {
    /// Offers received by the frameworks.
    offers: AtomicUsize,
    running: AtomicUsize,
    finished: AtomicUsize,
    first_accept: Mutex<Option<Instant>>,
    last_running: Mutex<Option<Instant>>,
    last_finished: Mutex<Option<Instant>>,
    /// Tasks that ended otherwise, and calls the master refused.
    errors: Mutex<Vec<String>>,
}

impl Progress {
    fn error(&self, e: String) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(e);
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// What one framework saw.
#[derive(Default)]
struct FrameworkRun {
    offer_to_running: Vec<Duration>,
    /// Per task: when its offer arrived, and when its TASK_RUNNING did.
    stages: Vec<(TaskId, Instant, Instant)>,
    accept_rtt: Vec<Duration>,
    offers: usize,
    declined: usize,
}

/// A call in flight: whether it is an accept, how long it took, how it ended.
type Call = Pin<Box<dyn Future<Output = (bool, Duration, Result<(), ClientError>)> + Send>>;

fn call(accept: bool, f: impl Future<Output = Result<(), ClientError>> + Send + 'static) -> Call {
    Box::pin(async move {
        let t = Instant::now();
        let r = f.await;
        (accept, t.elapsed(), r)
    })
}

/// One framework: launches `quota` tasks on the offers it gets, acknowledging every update,
/// until `stop` changes.
async fn framework(
    master: String,
    index: usize,
    quota: usize,
    opts: Options,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) -> Result<FrameworkRun> {
    let info = FrameworkInfo {
        name: format!("bench-master-{index}"),
        user: "root".into(),
        failover_timeout_secs: 0.0,
        ..FrameworkInfo::default()
    };
    let (driver, mut events) = SchedulerDriver::subscribe(&master, info).await?;
    let task_res = Resources::parse(&opts.task_resources)?;
    let per_offer = opts.per_offer();
    let mut left = quota;
    let mut seq = 0usize;
    let mut offered_at: HashMap<TaskId, Instant> = HashMap::new();
    let mut run = FrameworkRun::default();
    let mut calls: FuturesUnordered<Call> = FuturesUnordered::new();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                None => bail!("framework {index}: the event stream ended"),
                Some(Event::Offers(offers)) => {
                    let now = Instant::now();
                    run.offers += offers.len();
                    progress.offers.fetch_add(offers.len(), Ordering::SeqCst);
                    let mut decline = Vec::new();
                    for offer in offers {
                        let fits = fits(&offer.resources, &task_res);
                        let n = fits.min(per_offer).min(left);
                        if n == 0 {
                            decline.push(offer.id);
                            continue;
                        }
                        left -= n;
                        let tasks: Vec<_> = (0..n)
                            .map(|_| {
                                seq += 1;
                                crate::framework::task(
                                    &format!("fw{index}-{seq}"),
                                    &offer.agent_id,
                                    &opts.task_resources,
                                    "true",
                                )
                            })
                            .collect();
                        for t in &tasks {
                            offered_at.insert(t.task_id.clone(), now);
                        }
                        if let Ok(mut first) = progress.first_accept.lock() {
                            first.get_or_insert_with(Instant::now);
                        }
                        let d = driver.clone();
                        // The remainder is not offered to this framework again: the tasks
                        // spread over the agents, and the other frameworks get it.
                        calls.push(call(true, async move {
                            d.accept(vec![offer.id], vec![Operation::Launch(tasks)], 3600.0)
                                .await
                        }));
                    }
                    if !decline.is_empty() {
                        run.declined += decline.len();
                        let d = driver.clone();
                        calls.push(call(false, async move { d.decline(decline, 3600.0).await }));
                    }
                }
                Some(Event::Update(status)) => {
                    let arrived = Instant::now();
                    let d = driver.clone();
                    let ack = status.clone();
                    calls.push(call(false, async move { d.acknowledge(&ack).await }));
                    match status.state {
                        TaskState::Running => {
                            if let Some(t0) = offered_at.remove(&status.task_id) {
                                run.offer_to_running.push(arrived.duration_since(t0));
                                run.stages.push((status.task_id.clone(), t0, arrived));
                                let n = progress.running.fetch_add(1, Ordering::SeqCst) + 1;
                                if n == opts.tasks {
                                    if let Ok(mut last) = progress.last_running.lock() {
                                        *last = Some(arrived);
                                    }
                                }
                            }
                        }
                        TaskState::Finished => {
                            let n = progress.finished.fetch_add(1, Ordering::SeqCst) + 1;
                            if n == opts.tasks {
                                if let Ok(mut last) = progress.last_finished.lock() {
                                    *last = Some(arrived);
                                }
                            }
                        }
                        s if s.is_terminal() => progress.error(format!(
                            "task {} ended {s}: {}",
                            status.task_id, status.message
                        )),
                        _ => {}
                    }
                }
                Some(Event::Error(e)) => progress.error(format!("framework {index}: {e}")),
                Some(Event::Disconnected(why)) => bail!("framework {index} disconnected: {why}"),
                Some(_) => {}
            },
            Some((accept, took, done)) = calls.next(), if !calls.is_empty() => {
                if accept {
                    run.accept_rtt.push(took);
                }
                if let Err(e) = done {
                    progress.error(format!("framework {index}: call failed: {e}"));
                }
            }
            _ = stop.changed() => break,
        }
    }
    while let Some((_, _, done)) = calls.next().await {
        if let Err(e) = done {
            progress.error(format!("framework {index}: call failed: {e}"));
        }
    }
    let _ = driver.teardown().await;
    Ok(run)
}

/// How many tasks asking `task` fit in `offered` (cpus and mem).
fn fits(offered: &Resources, task: &Resources) -> usize {
    let by = |have: f64, need: f64| {
        if need > 0.0 {
            (have / need + 1e-9).floor().max(0.0) as usize
        } else {
            usize::MAX
        }
    };
    by(offered.cpus(), task.cpus()).min(by(offered.mem(), task.mem()))
}

fn sim_counts(sims: &SimHandle) -> (usize, u64, u64, u64) {
    sims.state
        .lock()
        .map(|s| {
            (
                s.registered_at.iter().filter(|t| t.is_some()).count(),
                s.launched,
                s.acknowledged,
                s.update_errors,
            )
        })
        .unwrap_or_default()
}

/// Waits until `done` holds, printing progress to stderr every few seconds; fails after
/// `timeout`.
fn wait(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    progress: impl Fn() -> String,
) -> Result<()> {
    let started = Instant::now();
    let mut said = Instant::now();
    while !done() {
        if started.elapsed() > timeout {
            bail!("{what}: not done within {timeout:?} ({})", progress());
        }
        if said.elapsed() > Duration::from_secs(5) {
            eprintln!(
                "  … {what}: {:.0} s, {}",
                started.elapsed().as_secs_f64(),
                progress()
            );
            said = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Runs the bench against the `strata-master` in `bin_dir`.
pub fn run(bin_dir: &Path, opts: &Options) -> Result<Report> {
    // Each agent's connection is a descriptor here and one in the master.
    raise_nofile(opts.agents as libc::rlim_t + 4096)?;
    let master = MasterProcess::start(bin_dir)?;
    let result = measure(&master, opts);
    if result.is_err() {
        eprintln!("master log (tail):\n{}", master.log_tail());
    }
    result
}

fn measure(master: &MasterProcess, opts: &Options) -> Result<Report> {
    let addr = master.addr();
    let mut report = Report::default();
    std::thread::sleep(Duration::from_millis(200));
    report.rss_started = master.rss()?;

    let started = Instant::now();
    let sims = sim_agent::spawn_at(
        &addr,
        opts.agents,
        Resources::parse(&opts.agent_resources)?,
        SimTasks::Run { finish_after: None },
    )?;
    wait(
        "agents registering",
        Duration::from_secs(300),
        || sim_counts(&sims).0 >= opts.agents,
        || format!("{} of {} registered", sim_counts(&sims).0, opts.agents),
    )?;
    report.agents_registered_in = started.elapsed();
    report.rss_agents = master.rss()?;
    report.state_agents = time_state(&addr, 5)?.0;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let progress = Arc::new(Progress::default());
    let (stop, stop_rx) = watch::channel(false);
    let mut handles = Vec::new();
    let base = opts.tasks / opts.frameworks.max(1);
    for i in 0..opts.frameworks.max(1) {
        let quota = base + usize::from(i < opts.tasks % opts.frameworks.max(1));
        handles.push(runtime.spawn(framework(
            addr.clone(),
            i,
            quota,
            opts.clone(),
            Arc::clone(&progress),
            stop_rx.clone(),
        )));
    }
    let status = || {
        let (_, launched, acked, errs) = sim_counts(&sims);
        format!(
            "{} RUNNING seen by the frameworks, {launched} launched at the agents, {acked} acks at the agents, {errs} updates refused, {} FINISHED; master RSS {} MB; errors: {:?}",
            progress.running.load(Ordering::SeqCst),
            progress.finished.load(Ordering::SeqCst),
            master.rss().map(|r| r.rss_kb / 1024).unwrap_or(0),
            progress.errors().iter().take(3).collect::<Vec<_>>()
        )
    };
    let failed = || !progress.errors().is_empty() || handles.iter().any(|h| h.is_finished());
    let (master_cpu, bench_cpu) = (master.cpu()?, cpu_time(Path::new("/proc/self/stat"))?);
    let master_threads = thread_cpu(master.pid());
    wait(
        "launching",
        opts.timeout,
        || failed() || progress.running.load(Ordering::SeqCst) >= opts.tasks,
        status,
    )?;
    if failed() {
        bail!("the frameworks failed: {}", status());
    }
    let first = progress
        .first_accept
        .lock()
        .ok()
        .and_then(|t| *t)
        .context("no accept")?;
    let last = progress
        .last_running
        .lock()
        .ok()
        .and_then(|t| *t)
        .context("no last TASK_RUNNING")?;
    report.launch_wall = last.duration_since(first);
    report.master_cpu_launch = master.cpu()?.saturating_sub(master_cpu);
    report.bench_cpu_launch = cpu_time(Path::new("/proc/self/stat"))?.saturating_sub(bench_cpu);
    let mut threads: Vec<(String, Duration)> = thread_cpu(master.pid())
        .into_iter()
        .map(|(name, cpu)| {
            let before = master_threads.get(&name).copied().unwrap_or_default();
            (name, cpu.saturating_sub(before))
        })
        .collect();
    threads.sort_by_key(|t| std::cmp::Reverse(t.1));
    report.master_threads_launch = threads;
    // Let the acknowledgements drain before the master is measured with every task live.
    wait(
        "acknowledgements",
        Duration::from_secs(60),
        || sim_counts(&sims).2 >= opts.tasks as u64,
        status,
    )?;
    report.state_busy = time_state(&addr, 5)?.0;
    // At rest: no offer for a second (the remainders declined), at most 30 s.
    let drained = Instant::now();
    let mut seen = progress.offers.load(Ordering::SeqCst);
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < Duration::from_secs(1)
        && drained.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
        let now = progress.offers.load(Ordering::SeqCst);
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        }
    }
    report.rest_after = drained.elapsed();
    report.rss_loaded = master.rss()?;
    let (timing, body) = time_state(&addr, 5)?;
    report.state_loaded = timing;
    // STRATA_BENCH_HOLD_SECS: keep the loaded cluster up that long, to look at the master.
    if let Some(secs) = std::env::var("STRATA_BENCH_HOLD_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        eprintln!(
            "  holding the loaded cluster for {secs} s: master at {addr}, pid {}",
            master.pid()
        );
        std::thread::sleep(Duration::from_secs(secs));
    }
    let state: serde_json::Value = serde_json::from_str(&body).context("/state is not JSON")?;
    report.state_loaded_agents = state["activated_slaves"].as_u64().unwrap_or(0);
    report.state_loaded_tasks = state["frameworks"]
        .as_array()
        .map(|fws| {
            fws.iter()
                .map(|f| f["tasks"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0);

    let finish_started = Instant::now();
    sims.finish_all();
    wait(
        "finishing",
        opts.timeout,
        || failed() || progress.finished.load(Ordering::SeqCst) >= opts.tasks,
        status,
    )?;
    if failed() {
        bail!("the frameworks failed: {}", status());
    }
    let last_finished = progress
        .last_finished
        .lock()
        .ok()
        .and_then(|t| *t)
        .context("no last TASK_FINISHED")?;
    report.finish_wall = last_finished.duration_since(finish_started);
    // As with every task live: the acknowledgements of the TASK_FINISHED updates drain first,
    // so the figure is what the master keeps, not the tail of the burst in flight.
    wait(
        "acknowledgements of TASK_FINISHED",
        Duration::from_secs(60),
        || sim_counts(&sims).2 >= 2 * opts.tasks as u64,
        status,
    )?;
    report.rss_finished = master.rss()?;
    let _ = stop.send(true);
    for h in handles {
        let run = runtime
            .block_on(h)
            .context("a framework panicked")?
            .context("a framework failed")?;
        report.offer_to_running.extend(run.offer_to_running);
        report.accept_rtt.extend(run.accept_rtt);
        if let Ok(s) = sims.state.lock() {
            for (task, offered, running) in &run.stages {
                if let Some(at) = s.launched_at.get(task) {
                    report
                        .offer_to_agent
                        .push(at.saturating_duration_since(*offered));
                    report
                        .agent_to_running
                        .push(running.saturating_duration_since(*at));
                }
            }
        }
        report.offers_received += run.offers;
        report.offers_declined += run.declined;
    }
    report.offer_to_running.sort();
    report.offer_to_agent.sort();
    report.agent_to_running.sort();
    report.accept_rtt.sort();
    if let Ok(s) = sims.state.lock() {
        report.update_rtt = s.update_rtt.clone();
    }
    report.update_rtt.sort();
    let (_, _, acked, errs) = sim_counts(&sims);
    report.acknowledged_at_agents = acked;
    report.update_errors = errs;
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_from_proc_status() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("status");
        std::fs::write(
            &path,
            "Name:\tstrata-master\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\nThreads:\t3\n",
        )
        .unwrap();
        let rss = read_rss(&path).unwrap();
        assert_eq!((rss.rss_kb, rss.hwm_kb), (10240, 20480));
    }

    #[test]
    fn cpu_time_is_read_from_proc_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat");
        // pid (comm with spaces) state ppid ... utime=250 stime=50 ...
        std::fs::write(
            &path,
            "42 (strata master) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0",
        )
        .unwrap();
        // SAFETY: sysconf reads a constant.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let cpu = cpu_time(&path).unwrap();
        assert!((cpu.as_secs_f64() - 300.0 / hz).abs() < 1e-9, "{cpu:?}");
    }

    #[test]
    fn tasks_fit_by_cpus_and_mem() {
        let agent = Resources::parse("cpus:24;mem:4096;disk:4096").unwrap();
        let task = Resources::parse("cpus:0.1;mem:32").unwrap();
        assert_eq!(fits(&agent, &task), 128);
        let small = Resources::parse("cpus:0.25;mem:4096").unwrap();
        assert_eq!(fits(&small, &task), 2);
    }
}
