//! The Strata agent: detects its resources, registers with the master (and re-registers after
//! any disconnection), runs each task in a container of its own through a per-container
//! supervisor, and delivers every status update until it is acknowledged. See `ARCHITECTURE.md`
//! at the repository root.

pub mod agent;
pub mod auth;
pub mod checkpoint;
pub mod cleanup;
pub mod config;
pub mod containerizer;
pub mod detect;
pub mod executor;
pub mod executor_api;
pub mod http;
pub mod image_container;
pub mod images_http;
pub mod monitor;
pub mod operator_api;
pub mod paths;
pub mod rpc;
pub mod status;
pub mod supervisor;
pub mod volumes;

pub use config::AgentConfig;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use strata_isolators::{Host, Isolation, IsolationConfig, IsolationError};
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("strata-agent must run as root: it creates cgroups and namespaces for its tasks")]
    NotRoot,
    #[error("failed to create the work dir {path}: {source}")]
    WorkDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroups: {0}")]
    Cgroup(#[from] strata_isolators::cgroup2::CgroupError),
    /// An isolator of `--isolation` cannot work here (the message names it and why).
    #[error("{0}")]
    Isolation(IsolationError),
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot find the agent's own binary to run supervisors: {0}")]
    Exe(std::io::Error),
    #[error("failed to start the RPC thread: {0}")]
    RpcThread(std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] strata_security::tls::TlsError),
    #[error("{0}")]
    Credential(#[from] strata_security::credentials::CredentialsError),
    #[error("the image store: {0}")]
    Images(String),
    /// What the previous run checkpointed cannot be used; the agent does not start.
    #[error(
        "cannot recover from the previous run's checkpoint: {0}; fix or remove that file, or run \
         `strata-agent --recover=cleanup` (same --work-dir and --cgroups-root) to kill what the \
         previous run left and start afresh"
    )]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// `--recover=cleanup` could not kill or remove what the previous run left.
    #[error("{0}")]
    Cleanup(String),
}

/// An agent bound to its HTTP port; `run` works until `shutdown` resolves.
pub struct AgentDaemon {
    config: AgentConfig,
    listener: tokio::net::TcpListener,
    isolation: Arc<Isolation>,
    /// What the previous run left in the work dir.
    recovered: checkpoint::Recovered,
    auth: auth::SharedAgentAuth,
    /// `--tls-cert`: the HTTP endpoints serve TLS only.
    tls: Option<strata_security::tls::TlsAcceptor>,
    master_link: rpc::MasterLink,
}

/// The TLS acceptor of the HTTP port and how the agent reaches and authenticates to the master;
/// refuses a non-loopback address without TLS unless `--insecure`.
fn transport_security(
    config: &AgentConfig,
) -> Result<(Option<strata_security::tls::TlsAcceptor>, rpc::MasterLink), AgentError> {
    use strata_security::tls;
    if let Some(refusal) =
        tls::insecure_refusal(config.ip, config.tls_cert.is_some(), config.insecure)
    {
        return Err(AgentError::Config(refusal));
    }
    let identity = config.tls_cert.as_deref().zip(config.tls_key.as_deref());
    let acceptor = match identity {
        Some((cert, key)) => Some(tls::TlsAcceptor::from(tls::server_config(
            cert,
            key,
            config.tls_ca.as_deref(),
        )?)),
        None => None,
    };
    let client = match &config.tls_ca {
        Some(ca) => Some(tls::client_config(ca, identity)?),
        None => None,
    };
    let credential = match &config.credential {
        Some(path) => Some(load_credential(path)?),
        None => None,
    };
    Ok((
        acceptor,
        rpc::MasterLink {
            tls: client,
            credential,
        },
    ))
}

/// `--credential`: Mesos' one JSON object `{"principal": .., "secret": ..}`, else whatever
/// [`Credential::load_one`](strata_security::credentials::Credential::load_one) reads (one line
/// `principal secret`, or a credentials file holding one entry).
fn load_credential(
    path: &Path,
) -> Result<strata_security::credentials::Credential, strata_security::credentials::CredentialsError>
{
    use strata_security::credentials::Credential;
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(credential) = serde_json::from_str::<Credential>(&text) {
            if !credential.principal.is_empty() {
                return Ok(credential);
            }
        }
    }
    Credential::load_one(path)
}

/// What executors are told of the agent's TLS, in Mesos' (libprocess') names: whether the
/// agent's endpoint (`MESOS_AGENT_ENDPOINT`) speaks HTTPS, and the CA its certificate chains to.
fn executor_tls_env(config: &AgentConfig) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if config.tls_cert.is_some() {
        env.push(("LIBPROCESS_SSL_ENABLED".to_string(), "true".to_string()));
        if let Some(ca) = &config.tls_ca {
            env.push((
                "LIBPROCESS_SSL_CA_FILE".to_string(),
                ca.display().to_string(),
            ));
        }
    }
    env
}

impl AgentDaemon {
    pub async fn bind(config: AgentConfig) -> Result<Self, AgentError> {
        config.validate().map_err(AgentError::Config)?;
        let (tls, master_link) = transport_security(&config)?;
        let auth = Arc::new(auth::AgentAuth::from_config(&config).map_err(AgentError::Config)?);
        if !nix::unistd::geteuid().is_root() {
            return Err(AgentError::NotRoot);
        }
        std::fs::create_dir_all(&config.work_dir).map_err(|source| AgentError::WorkDir {
            path: config.work_dir.clone(),
            source,
        })?;
        // Before anything else: a damaged checkpoint stops the agent here, with the file's name.
        let recovered = checkpoint::load(&paths::Paths {
            work_dir: config.work_dir.clone(),
        })?;
        let isolation = Arc::new(setup_isolation(&config)?);
        let addr = SocketAddr::new(config.ip, config.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AgentError::Listen { addr, source })?;
        Ok(Self {
            config,
            listener,
            isolation,
            recovered,
            tls,
            master_link,
            auth,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), AgentError> {
        let config = self.config;
        let local = self.listener.local_addr().map_err(AgentError::Http)?;
        let hostname = config.hostname.clone().unwrap_or_else(|| {
            if config.ip.is_unspecified() {
                hostname::get()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "localhost".to_string())
            } else {
                config.ip.to_string()
            }
        });
        let paths = paths::Paths {
            work_dir: config.work_dir.clone(),
        };
        let resources = detect::detect(&config.work_dir, config.resources.as_ref());
        info!(%local, %hostname, %resources, cgroup = %self.isolation.root().path().display(), "agent starting");
        let exe = std::env::current_exe().map_err(AgentError::Exe)?;
        let (actor_tx, mailbox) = tokio::sync::mpsc::unbounded_channel();
        let (to_master, outbound) = tokio::sync::mpsc::unbounded_channel();
        let (container_tx, container_events) = tokio::sync::mpsc::unbounded_channel();
        let containerizer = containerizer::Containerizer::new(
            paths.clone(),
            self.isolation.clone(),
            exe,
            container_tx,
        );
        let store = strata_images::Store::open(
            config.work_dir.join("images"),
            paths.containers_dir(),
            strata_images::RegistryConfig {
                http_registries: config.image_registry_http.clone(),
                ca_certificates: config.image_registry_ca.clone(),
                docker_config: config.docker_config.clone(),
            },
            tokio::runtime::Handle::current(),
        )
        .map_err(|err| AgentError::Images(err.to_string()))?;
        let containerizer = containerizer.with_images(Arc::new(store));
        let http_containerizer = containerizer.clone();
        let mut state = agent::Agent::new(agent::AgentSetup {
            auth: Some(Arc::clone(&self.auth)),
            paths,
            hostname,
            port: local.port(),
            resources,
            attributes: config.attributes.clone().unwrap_or_default(),
            kill_grace_period: config.kill_grace_period,
            status_retry_interval: config.status_update_retry_interval,
            containerizer,
            to_master,
            to_self: actor_tx.clone(),
            // Executors run on this host: an unspecified address is reached on loopback.
            endpoint: if local.ip().is_unspecified() {
                format!("127.0.0.1:{}", local.port())
            } else {
                local.to_string()
            },
            executor_env: executor_tls_env(&config),
        });
        state.recover(self.recovered);
        let sandbox_root = state.sandbox_root();
        rpc::spawn(
            config.master.clone(),
            actor_tx.clone(),
            outbound,
            config.registration_backoff_max,
            self.master_link,
        )
        .map_err(AgentError::RpcThread)?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stop_http = stop_rx.clone();
        let server = strata_security::serve::serve_listener(
            self.listener,
            self.tls,
            http::router(
                actor_tx,
                sandbox_root,
                http_containerizer,
                operator_api::flags(&config),
                Arc::clone(&self.auth),
            ),
            async move {
                let _ = stop_http.wait_for(|s| *s).await;
            },
        );
        let http = tokio::spawn(async move {
            server.await;
            Ok::<(), std::io::Error>(())
        });
        let mut stop_actor = stop_rx;
        let actor = tokio::spawn(agent::run(state, mailbox, container_events, async move {
            let _ = stop_actor.wait_for(|s| *s).await;
        }));
        shutdown.await;
        // Tasks keep running under their supervisors; a restarted agent adopts them.
        info!("agent shutting down (tasks keep running)");
        let _ = stop_tx.send(true);
        let _ = actor.await;
        match http.await {
            Ok(result) => result.map_err(AgentError::Http),
            Err(_) => Ok(()),
        }
    }
}

/// Finds the cgroup2 mount, checks `--isolation` against this host, creates the agent's cgroup
/// subtree and enables the controllers the isolators need; logs what is active and what `auto`
/// left out, and why.
fn setup_isolation(config: &AgentConfig) -> Result<Isolation, AgentError> {
    use strata_isolators::cgroup2::{find_cgroup2_mount, Cgroup};
    use strata_isolators::cgroups::io;
    let mount = find_cgroup2_mount(Path::new("/proc/self/mountinfo"))?;
    let host = Host::probe(Cgroup::open(&mount)?, "/proc")?;
    let io_devices = match &config.cgroups_io_devices {
        Some(devices) => devices.0.clone(),
        None => io::disk_of(&config.work_dir, Path::new("/sys"))
            .into_iter()
            .collect(),
    };
    let seccomp = config.seccomp_profile().map_err(|reason| {
        AgentError::Isolation(IsolationError::Unavailable {
            isolator: strata_isolators::linux::seccomp::NAME,
            reason,
        })
    })?;
    let isolation_config = IsolationConfig {
        enable_cfs: config.cgroups_enable_cfs,
        pids_max: config.container_pids_max,
        bounding: config.bounding_capabilities,
        rlimits: config.container_rlimits.0.clone(),
        ro_mounts: config
            .container_ro_mounts
            .as_ref()
            .map(|m| m.0.clone())
            .unwrap_or_default(),
        io_devices,
        enforce_ports: config.enforce_container_ports,
        bpf_pin_dir: config.bpf_pin_dir.clone(),
        seccomp,
    };
    let isolation = Isolation::setup(
        &config.isolation,
        &isolation_config,
        &host,
        Path::new(&config.cgroups_root),
    )
    .map_err(|err| match err {
        IsolationError::Cgroup(err) => AgentError::Cgroup(err),
        err => AgentError::Isolation(err),
    })?;
    info!(isolation = %isolation.names().join(","), "isolators active");
    for (isolator, reason) in isolation.left_out() {
        info!(isolator, %reason, "isolator left out");
    }
    let names = isolation.names();
    if names.contains(&strata_isolators::cgroups::io::NAME) {
        let devices: Vec<String> = isolation_config
            .io_devices
            .iter()
            .map(ToString::to_string)
            .collect();
        info!(devices = %devices.join(","), "cgroups/io: disk bandwidth resources limit these devices");
    }
    Ok(isolation)
}
