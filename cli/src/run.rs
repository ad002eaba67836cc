//! `strata run`: subscribe a one-task framework, launch the command on the first offer that fits,
//! print its state changes, copy its output, exit with its status, and tear the framework down.

use crate::args::RunArgs;
use crate::launch::{self, Outcome, EXIT_INTERRUPTED, EXIT_NOT_RUN};
use crate::output::Follower;
use crate::signals::Interrupts;
use crate::units::{format_cpus, format_mem};
use anyhow::{anyhow, bail, Context};
use std::collections::BTreeMap;
use std::time::Duration;
use strata_client::{ClientError, Event, Offer, Operation, SchedulerDriver};
use strata_schema::{
    AgentId, FrameworkInfo, Resources, TaskId, TaskInfo, TaskState, TaskStatus, DEFAULT_ROLE,
};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

/// Filter for offers that do not fit: short, so the master offers again soon.
const DECLINE_UNFIT_SECS: f64 = 1.0;
/// Filter for offers after the launch: the framework has no use for them any more.
const DECLINE_AFTER_LAUNCH_SECS: f64 = 3600.0;
/// How long a killed task may take to report its final state.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long the rest of the output may take to read after the final state.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
const TEARDOWN_WAIT: Duration = Duration::from_secs(5);

/// How long the master keeps the framework of a `strata run` that follows the leader through
/// ZooKeeper while it fails over to a new one (a standalone master's is removed at once).
const FAILOVER_TIMEOUT_SECS: f64 = 60.0;
/// How long the master keeps the framework of a `strata run --detach` (and so its task)
/// after the command returned.
const DETACHED_FAILOVER_TIMEOUT_SECS: f64 = 7.0 * 24.0 * 3600.0;

/// Runs one task. `given` is the `--master` as given: with `zk://…` the framework follows the
/// leading master across failovers; `master` is the leader's `host:port` found at start, for the
/// HTTP endpoints.
pub async fn run(given: &str, master: &str, args: RunArgs) -> anyhow::Result<u8> {
    let plan = Plan::new(&args)?;
    let user = match &args.user {
        Some(user) => user.clone(),
        None => current_user()?,
    };
    let follows_leader = given.parse::<strata_ha::ZkUrl>().is_ok();
    let framework = FrameworkInfo {
        name: "strata-run".to_string(),
        user,
        // Re-subscribing with a new leader needs a framework the master keeps meanwhile.
        failover_timeout_secs: if args.detach {
            DETACHED_FAILOVER_TIMEOUT_SECS
        } else if follows_leader {
            FAILOVER_TIMEOUT_SECS
        } else {
            0.0
        },
        hostname: local_hostname(),
        ..FrameworkInfo::default()
    };
    let driver_addr = if follows_leader { given } else { master };
    // With a principal and secret (flags or cli.toml), the framework authenticates with them.
    let options = strata_client::scheduler::SubscribeOptions {
        credential: match strata_client::http::auth() {
            Some(strata_client::http::HttpAuth::Basic { principal, secret }) => {
                Some(strata_client::scheduler::Credential {
                    principal: principal.clone(),
                    secret: secret.clone(),
                })
            }
            _ => None,
        },
    };
    let (driver, mut events) = SchedulerDriver::subscribe_with(driver_addr, framework, options)
        .await
        .map_err(|err| match err {
            ClientError::Connect { source, .. } => {
                anyhow!("cannot reach the master at {master}: {source}")
            }
            other => anyhow!(other).context(format!("cannot subscribe to the master at {master}")),
        })?;
    tracing::info!(framework_id = %driver.framework_id(), "subscribed");
    let mut interrupts = Interrupts::new()?;
    let session = Session {
        given,
        master,
        follows_leader,
        driver: &driver,
        plan,
        quiet: args.quiet,
        offer_timeout: Duration::from_secs(args.offer_timeout),
        detach: args.detach,
        detached: std::cell::Cell::new(false),
    };
    let result = session.drive(&mut events, &mut interrupts).await;
    if session.detached.get() {
        // The framework stays registered (its failover timeout) and its task runs on.
        return result;
    }
    match tokio::time::timeout(TEARDOWN_WAIT, driver.teardown()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::warn!(cause = %err, "teardown failed"),
        Err(_) => tracing::warn!("teardown timed out"),
    }
    result
}

/// What to launch, validated before anything is sent.
struct Plan {
    task_id: TaskId,
    name: String,
    cpus: f64,
    mem: f64,
    resources: Resources,
    /// `--ports`: how many ports to take from the offer.
    ports: usize,
    command: strata_schema::CommandInfo,
    container: Option<strata_schema::ContainerInfo>,
}

impl Plan {
    fn new(args: &RunArgs) -> anyhow::Result<Self> {
        let container = args.image.as_ref().map(|name| {
            let kind = match args.image_type.as_deref() {
                Some("oci") => strata_schema::ImageType::Oci,
                Some(_) => strata_schema::ImageType::Docker,
                None if name.starts_with("oci:") || name.starts_with("oci-archive:") => {
                    strata_schema::ImageType::Oci
                }
                None => strata_schema::ImageType::Docker,
            };
            let mut container = strata_schema::ContainerInfo::image(kind, name.clone());
            container.volumes = args.volumes.clone();
            container
        });
        if let Some(container) = &container {
            container
                .validate()
                .map_err(|why| anyhow!("invalid --image or --volume: {why}"))?;
        }
        let command = if container.is_some() && args.command.is_empty() {
            // The image's entrypoint and cmd.
            let mut command = strata_schema::CommandInfo::argv(Vec::new());
            command.user = args.user.clone();
            command.environment = args.env.clone();
            command
        } else {
            launch::build_command(&args.command, args.user.as_deref(), &args.env)
                .map_err(|why| anyhow!("invalid command: {why}"))?
        };
        let task_id = match &args.task_id {
            Some(id) => id.clone(),
            None => launch::task_id(args.name.as_deref(), &launch::random_suffix())
                .map_err(|why| anyhow!("cannot make a task id from --name: {why}"))?,
        };
        let text = launch::resources_text(args.cpus, args.mem);
        let resources =
            Resources::parse(&text).with_context(|| format!("invalid resources {text:?}"))?;
        Ok(Self {
            task_id,
            name: args.name.clone().unwrap_or_else(|| "run".to_string()),
            cpus: args.cpus,
            mem: args.mem,
            resources,
            ports: usize::from(args.ports),
            command,
            container,
        })
    }
}

/// Where the task went.
struct Launched {
    agent_id: AgentId,
    hostname: String,
}

struct Session<'a> {
    /// `--master` as given (`host:port` or `zk://…`), and the master it named at start.
    given: &'a str,
    master: &'a str,
    /// The driver follows the leader through ZooKeeper: a lost connection is a failover.
    follows_leader: bool,
    driver: &'a SchedulerDriver,
    plan: Plan,
    quiet: bool,
    offer_timeout: Duration,
    /// `--detach`: return once the task runs.
    detach: bool,
    /// Set when it did.
    detached: std::cell::Cell<bool>,
}

impl Session<'_> {
    async fn drive(
        &self,
        events: &mut UnboundedReceiver<Event>,
        interrupts: &mut Interrupts,
    ) -> anyhow::Result<u8> {
        let deadline = Instant::now() + self.offer_timeout;
        let launched = tokio::select! {
            launched = self.launch(events, deadline) => launched?,
            () = interrupts.recv() => {
                eprintln!("strata: interrupted before task {} was launched", self.plan.task_id);
                return Ok(EXIT_INTERRUPTED);
            }
        };
        if let Err(err) = self.driver.suppress(vec![DEFAULT_ROLE.to_string()]).await {
            tracing::debug!(cause = %err, "suppressing offers failed");
        }
        self.watch(events, interrupts, launched).await
    }

    /// Waits for an offer that fits, declining the others, and launches the task on it.
    async fn launch(
        &self,
        events: &mut UnboundedReceiver<Event>,
        deadline: Instant,
    ) -> anyhow::Result<Launched> {
        // The latest offer of each agent, to say why nothing fit.
        let mut seen: BTreeMap<String, (String, f64, f64)> = BTreeMap::new();
        loop {
            let event = tokio::select! {
                event = events.recv() => event,
                () = tokio::time::sleep_until(deadline) => {
                    bail!("{}", self.no_offer_message(&seen))
                }
            };
            match event {
                Some(Event::Offers(offers)) => {
                    for offer in &offers {
                        seen.insert(
                            offer.agent_id.to_string(),
                            (
                                offer.hostname.clone(),
                                offer.resources.cpus(),
                                offer.resources.mem(),
                            ),
                        );
                    }
                    if let Some(launched) = self.take(offers).await? {
                        return Ok(launched);
                    }
                }
                Some(Event::Update(status)) => self.acknowledge(&status).await,
                Some(other) => self.other_event(other)?,
                None => bail!("lost the connection to the master at {}", self.master),
            }
        }
    }

    /// Accepts the first fitting offer with the task and declines the rest.
    async fn take(&self, offers: Vec<Offer>) -> anyhow::Result<Option<Launched>> {
        // An offer without enough ports fits nothing.
        let ports: Vec<Option<Vec<u64>>> = offers
            .iter()
            .map(|o| launch::pick_ports(&o.resources.ranges("ports"), self.plan.ports))
            .collect();
        let free: Vec<(f64, f64)> = offers
            .iter()
            .zip(&ports)
            .map(|(o, ports)| match ports {
                Some(_) => (o.resources.cpus(), o.resources.mem()),
                None => (0.0, 0.0),
            })
            .collect();
        let chosen = launch::pick_offer(&free, self.plan.cpus, self.plan.mem);
        let mut declined = Vec::new();
        let mut launched = None;
        for (i, offer) in offers.into_iter().enumerate() {
            if Some(i) != chosen {
                declined.push(offer.id);
                continue;
            }
            let mut resources = self.plan.resources.clone();
            let mut command = self.plan.command.clone();
            if let Some(ports) = ports.get(i).cloned().flatten().filter(|p| !p.is_empty()) {
                resources.add(&Resources::ranges_resource(
                    "ports",
                    launch::port_ranges(&ports),
                ));
                command.environment.extend(launch::port_environment(&ports));
            }
            let task = TaskInfo {
                task_id: self.plan.task_id.clone(),
                name: self.plan.name.clone(),
                agent_id: offer.agent_id.clone(),
                resources,
                command,
                kill_grace_period_secs: None,
                hostname: None,
                container: self.plan.container.clone(),
                executor: None,
                data: Vec::new(),
                labels: Vec::new(),
            };
            tracing::info!(task_id = %task.task_id, agent_id = %offer.agent_id, "launching");
            // No filter on the unused rest of the offer, so other launches are not delayed.
            self.driver
                .accept(vec![offer.id], vec![Operation::Launch(vec![task])], 0.0)
                .await
                .with_context(|| format!("cannot launch task {}", self.plan.task_id))?;
            launched = Some(Launched {
                agent_id: offer.agent_id,
                hostname: offer.hostname,
            });
        }
        if !declined.is_empty() {
            let refuse = if launched.is_some() {
                DECLINE_AFTER_LAUNCH_SECS
            } else {
                DECLINE_UNFIT_SECS
            };
            if let Err(err) = self.driver.decline(declined, refuse).await {
                tracing::warn!(cause = %err, "declining offers failed");
            }
        }
        Ok(launched)
    }

    /// Follows the launched task to its final state.
    async fn watch(
        &self,
        events: &mut UnboundedReceiver<Event>,
        interrupts: &mut Interrupts,
        launched: Launched,
    ) -> anyhow::Result<u8> {
        let task_id = &self.plan.task_id;
        let mut last_state: Option<TaskState> = None;
        let mut follower: Option<Follower> = None;
        // A registry image is pulled by the agent before the task starts: show how far it got.
        let mut puller = self
            .plan
            .container
            .as_ref()
            .and_then(|c| c.image.as_ref())
            .map(|image| image.name.clone())
            .filter(|name| {
                !self.quiet
                    && !["oci:", "oci-archive:", "docker-archive:"]
                        .iter()
                        .any(|local| name.starts_with(local))
            })
            .map(|name| {
                crate::pull::Watcher::spawn(
                    self.master.to_string(),
                    launched.agent_id.clone(),
                    name,
                )
            });
        let mut kill_deadline: Option<Instant> = None;
        loop {
            enum Wake {
                Event(Option<Event>),
                Interrupt,
                KillTimeout,
            }
            let wake = tokio::select! {
                event = events.recv() => Wake::Event(event),
                () = interrupts.recv() => Wake::Interrupt,
                () = sleep_until(kill_deadline) => Wake::KillTimeout,
            };
            let event = match wake {
                Wake::Event(event) => event,
                Wake::Interrupt if kill_deadline.is_some() => {
                    // A second Ctrl-C: stop waiting.
                    finish(follower).await;
                    return Ok(EXIT_INTERRUPTED);
                }
                Wake::Interrupt => {
                    self.say(&format!("strata: killing task {task_id}"));
                    let agent_id = Some(launched.agent_id.clone());
                    if let Err(err) = self.driver.kill(task_id.clone(), agent_id).await {
                        eprintln!("strata: warning: cannot kill task {task_id}: {err}");
                    }
                    kill_deadline = Some(Instant::now() + KILL_WAIT);
                    continue;
                }
                Wake::KillTimeout => {
                    eprintln!(
                        "strata: warning: task {task_id} reported no final state within {} s \
                         of the kill",
                        KILL_WAIT.as_secs()
                    );
                    finish(follower).await;
                    return Ok(EXIT_INTERRUPTED);
                }
            };
            let status = match event {
                Some(Event::Update(status)) => status,
                Some(Event::Offers(offers)) => {
                    let ids = offers.into_iter().map(|o| o.id).collect();
                    if let Err(err) = self.driver.decline(ids, DECLINE_AFTER_LAUNCH_SECS).await {
                        tracing::debug!(cause = %err, "declining offers failed");
                    }
                    continue;
                }
                Some(other) => {
                    if let Err(err) = self.other_event(other) {
                        finish(follower).await;
                        return Err(err);
                    }
                    continue;
                }
                None => {
                    finish(follower).await;
                    bail!("lost the connection to the master at {}", self.master);
                }
            };
            self.acknowledge(&status).await;
            if &status.task_id != task_id {
                continue;
            }
            if status.state == TaskState::Running || status.state.is_terminal() {
                if let Some(puller) = puller.take() {
                    puller.stop().await;
                }
            }
            if last_state != Some(status.state) {
                last_state = Some(status.state);
                self.say(&state_line(&status, &launched.hostname));
            }
            if follower.is_none() && !self.detach && launch::has_sandbox(status.state) {
                let agent_id = status
                    .agent_id
                    .clone()
                    .unwrap_or_else(|| launched.agent_id.clone());
                follower = Some(Follower::spawn(
                    self.given.to_string(),
                    agent_id,
                    self.driver.framework_id().clone(),
                    task_id.clone(),
                ));
            }
            if self.detach && status.state == TaskState::Running {
                finish(follower).await;
                println!("{task_id}");
                self.say(&format!(
                    "strata: task {task_id} runs on {}; `strata logs -f {task_id}` follows its \
                     output, `strata kill {task_id}` stops it",
                    launched.hostname
                ));
                self.detached.set(true);
                return Ok(0);
            }
            let Some(outcome) = launch::outcome(&status) else {
                continue;
            };
            finish(follower).await;
            if kill_deadline.is_some() {
                return Ok(EXIT_INTERRUPTED);
            }
            return Ok(match outcome {
                Outcome::Exit(code) => code,
                Outcome::NotRun => {
                    let message = match status.message.as_str() {
                        "" => "no reason given",
                        message => message,
                    };
                    eprintln!("error: task {task_id} {}: {message}", status.state);
                    EXIT_NOT_RUN
                }
            });
        }
    }

    async fn acknowledge(&self, status: &TaskStatus) {
        if let Err(err) = self.driver.acknowledge(status).await {
            let task_id = &status.task_id;
            tracing::warn!(%task_id, cause = %err, "acknowledging an update failed");
        }
    }

    /// Events other than offers and updates: errors end the run, the rest is noted.
    fn other_event(&self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Error(message) => bail!("the master reported an error: {message}"),
            Event::Disconnected(reason) if self.follows_leader => {
                self.say(&format!(
                    "lost the leading master ({reason}); following the next one"
                ));
                Ok(())
            }
            Event::Disconnected(reason) => {
                bail!(
                    "lost the connection to the master at {}: {reason}",
                    self.master
                )
            }
            Event::Subscribed { framework_id, .. } => {
                tracing::debug!(%framework_id, "subscribed");
                Ok(())
            }
            Event::Rescind(offer_id) => {
                tracing::debug!(%offer_id, "offer rescinded");
                Ok(())
            }
            Event::InverseOffers(offers) => {
                // The task's agent is going into maintenance: say so; the operator decides.
                for offer in offers {
                    self.say(&format!(
                        "strata: agent {} ({}) is scheduled for maintenance",
                        offer.agent_id, offer.hostname
                    ));
                }
                Ok(())
            }
            Event::Heartbeat
            | Event::Offers(_)
            | Event::Update(_)
            | Event::RescindInverseOffer(_)
            | Event::Message { .. }
            | Event::Failure { .. } => Ok(()),
        }
    }

    fn no_offer_message(&self, seen: &BTreeMap<String, (String, f64, f64)>) -> String {
        let secs = self.offer_timeout.as_secs();
        let wanted = format!(
            "cpus {}, mem {}",
            format_cpus(self.plan.cpus),
            format_mem(self.plan.mem)
        );
        let largest = seen.iter().max_by(|a, b| {
            let (_, (_, ca, ma)) = a;
            let (_, (_, cb, mb)) = b;
            ca.total_cmp(cb).then(ma.total_cmp(mb))
        });
        match largest {
            None => format!(
                "no offers from the master within {secs} s ({wanted} wanted): \
                 is an agent registered? (see `strata agents`)"
            ),
            Some((agent_id, (hostname, cpus, mem))) => format!(
                "no agent had {wanted} free within {secs} s; \
                 the largest offer was cpus {}, mem {} from {} ({agent_id})",
                format_cpus(*cpus),
                format_mem(*mem),
                if hostname.is_empty() {
                    "an agent"
                } else {
                    hostname
                },
            ),
        }
    }

    fn say(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// `strata: task <id> TASK_RUNNING on <host>`, with the message for final states.
fn state_line(status: &TaskStatus, hostname: &str) -> String {
    let mut line = format!(
        "strata: task {} {} on {hostname}",
        status.task_id, status.state
    );
    if status.state.is_terminal() && !status.message.is_empty() {
        line.push_str(": ");
        line.push_str(&status.message);
    }
    line
}

async fn finish(follower: Option<Follower>) {
    if let Some(follower) = follower {
        follower.finish(DRAIN_WAIT).await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The name of the user running `strata`.
fn current_user() -> anyhow::Result<String> {
    let uid = nix::unistd::getuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return Ok(user.name);
    }
    match std::env::var("USER") {
        Ok(name) if !name.is_empty() => Ok(name),
        _ => bail!("cannot tell the name of user {uid}; pass --user"),
    }
}

fn local_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_schema::StatusSource;

    #[test]
    fn state_lines() {
        let mut status = TaskStatus {
            task_id: TaskId::new("run-1").unwrap(),
            state: TaskState::Running,
            message: "started".into(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: None,
            framework_id: None,
            container_id: None,
            timestamp: 0.0,
            uuid: None,
            exit_code: None,
        };
        assert_eq!(
            state_line(&status, "node1"),
            "strata: task run-1 TASK_RUNNING on node1"
        );
        status.state = TaskState::Failed;
        status.message = "Command exited with status 3".into();
        assert_eq!(
            state_line(&status, "node1"),
            "strata: task run-1 TASK_FAILED on node1: Command exited with status 3"
        );
    }
}
