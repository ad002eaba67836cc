//! The Strata master: agents register and are pinged, frameworks subscribe, the allocator turns
//! free resources into offers, accepted offers become tasks on agents, and status updates flow
//! back. See `ARCHITECTURE.md` at the repository root for the shape of it.

pub mod actor;
pub mod allocator;
pub mod auth;
pub mod config;
pub mod http;
mod lazy_io;
pub mod net;
pub mod registry;
pub mod rpc;
pub mod state;

pub use config::MasterConfig;

use std::future::Future;
use std::net::SocketAddr;
use strata_schema::MasterInfo;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("failed to create the work dir {path}: {source}")]
    WorkDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("failed to listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to start the RPC thread: {0}")]
    RpcThread(std::io::Error),
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] strata_security::tls::TlsError),
    #[error("cannot join the election: {0}")]
    Zk(#[from] strata_ha::zk::ZkError),
    /// Lost leadership, or a registry that could not be read or written: a standby takes over
    /// (and a supervisor such as systemd restarts this one as a standby).
    #[error("{0}")]
    Leadership(String),
}

/// Pending connections the kernel queues for the master. A new leader is reconnected to by every
/// agent at once; with tokio's default (1024) a thousand agents overflow the accept queue and the
/// dropped SYNs are only retried a second later. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 8192;

fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The TLS acceptor (`--tls-cert`, `--tls-key`, `--tls-ca`) and how agents authenticate (against
/// the `--credentials` that `auth` loaded); refuses a non-loopback address without TLS unless
/// `--insecure`.
fn transport_security(
    config: &MasterConfig,
    auth: &auth::Auth,
) -> Result<(Option<strata_security::tls::TlsAcceptor>, rpc::AgentAuth), MasterError> {
    use strata_security::tls;
    if let Some(refusal) =
        tls::insecure_refusal(config.ip, config.tls_cert.is_some(), config.insecure)
    {
        return Err(MasterError::Config(refusal));
    }
    let acceptor = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::TlsAcceptor::from(tls::server_config(
            cert,
            key,
            config.tls_ca.as_deref(),
        )?)),
        _ => None,
    };
    let credentials = auth.credentials.clone();
    if config.authenticate_agents && config.tls_ca.is_none() && credentials.is_none() {
        return Err(MasterError::Config(
            "--authenticate-agents needs a way for agents to authenticate: --tls-ca (client \
             certificates) or --credentials"
                .to_string(),
        ));
    }
    Ok((
        acceptor,
        rpc::AgentAuth {
            required: config.authenticate_agents,
            credentials,
        },
    ))
}

/// A master bound to its port; `run` serves until `shutdown` resolves.
pub struct Master {
    config: MasterConfig,
    listener: tokio::net::TcpListener,
    /// `--tls-cert`: every connection is TLS.
    tls: Option<strata_security::tls::TlsAcceptor>,
    agent_auth: rpc::AgentAuth,
    auth: auth::SharedAuth,
}

impl Master {
    /// Binds the listening port (port 0 picks a free one; see [`Master::local_addr`]).
    pub async fn bind(config: MasterConfig) -> Result<Self, MasterError> {
        config.validate().map_err(MasterError::Config)?;
        let auth =
            std::sync::Arc::new(auth::Auth::from_config(&config).map_err(MasterError::Config)?);
        std::fs::create_dir_all(&config.work_dir).map_err(|source| MasterError::WorkDir {
            path: config.work_dir.clone(),
            source,
        })?;
        let (tls, agent_auth) = transport_security(&config, &auth)?;
        let addr = SocketAddr::new(config.ip, config.port);
        let listener = listen(addr).map_err(|source| MasterError::Listen { addr, source })?;
        Ok(Self {
            config,
            listener,
            tls,
            agent_auth,
            auth,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), MasterError> {
        let local = self.listener.local_addr().map_err(MasterError::Http)?;
        let hostname = self.config.hostname.clone().unwrap_or_else(|| {
            hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_string())
        });
        let ip = if local.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            local.ip().to_string()
        };
        let info = MasterInfo {
            id: uuid::Uuid::new_v4().to_string(),
            hostname,
            ip,
            port: local.port(),
            version: strata_schema::VERSION.to_string(),
        };
        info!(master_id = %info.id, %local, "master listening");
        let state_config = state::StateConfig {
            agent_reregister_timeout: self.config.agent_reregister_timeout,
            max_agent_ping_timeouts: self.config.max_agent_ping_timeouts,
            max_completed_frameworks: self.config.max_completed_frameworks,
            max_completed_tasks_per_framework: self.config.max_completed_tasks_per_framework,
            offer_timeout: self.config.offer_timeout,
            min_allocatable: self.config.min_allocatable_resources.0.clone(),
            acls: std::sync::Arc::clone(&self.auth.acls),
            ..state::StateConfig::default()
        };
        let timers = actor::Timers {
            agent_ping_timeout: self.config.agent_ping_timeout,
            heartbeat_interval: state_config.heartbeat_interval,
            allocation_interval: self.config.allocation_interval,
        };
        // Leadership: contend through ZooKeeper, or lead alone with a registry file.
        let (leadership, contender, store, _always_leading) = match &self.config.zk {
            Some(url) => {
                let leader_info = strata_ha::LeaderInfo::new(
                    &info.id,
                    &info.ip,
                    info.port,
                    &info.hostname,
                    &info.version,
                );
                let (contender, leadership) = strata_ha::zk::Contender::join(
                    url,
                    &leader_info,
                    self.config.zk_session_timeout,
                )
                .await?;
                let contender = std::sync::Arc::new(contender);
                let source = std::sync::Arc::clone(&contender);
                let path = url.path.clone();
                let store: actor::StoreSource =
                    Box::new(move || strata_ha::registry::Store::zk(source.client(), &path));
                (leadership, Some(contender), store, None)
            }
            None => {
                let (tx, rx) = tokio::sync::watch::channel(strata_ha::zk::Leadership::Leading);
                let work_dir = self.config.work_dir.clone();
                let store: actor::StoreSource =
                    Box::new(move || strata_ha::registry::Store::file(&work_dir));
                (rx, None, store, Some(tx))
            }
        };
        let (actor_tx, mailbox) = tokio::sync::mpsc::unbounded_channel();
        let rpc = rpc::spawn(
            actor_tx.clone(),
            leadership.clone(),
            self.agent_auth,
            std::sync::Arc::clone(&self.auth),
        )
        .map_err(MasterError::RpcThread)?;
        let (http_tx, http_rx) = tokio::sync::mpsc::channel(1024);
        let conns = net::ConnIds::default();
        let accept = tokio::spawn(net::accept_loop(
            self.listener,
            self.tls,
            http_tx,
            rpc,
            conns.clone(),
        ));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut stop_http = stop_rx.clone();
        let server = strata_security::serve::serve_connections(
            http_rx,
            http::router(
                actor_tx,
                leadership.clone(),
                conns,
                std::sync::Arc::new(self.config.flags()),
                std::sync::Arc::clone(&self.auth),
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
        let master = state::Master::new(info, state_config);
        let mut actor = tokio::spawn(actor::run(
            master,
            mailbox,
            timers,
            async move {
                let _ = stop_actor.wait_for(|s| *s).await;
            },
            leadership,
            store,
        ));
        let ended = tokio::select! {
            _ = shutdown => None,
            result = &mut actor => Some(result),
        };
        let failure = match ended {
            None => {
                info!("master shutting down");
                let _ = stop_tx.send(true);
                accept.abort();
                let _ = actor.await;
                None
            }
            Some(result) => {
                let _ = stop_tx.send(true);
                accept.abort();
                match result {
                    Ok(Ok(())) => None,
                    Ok(Err(reason)) => Some(reason),
                    Err(join) => Some(format!("the master's actor failed: {join}")),
                }
            }
        };
        drop(contender);
        if let Some(reason) = failure {
            let _ = http.await;
            return Err(MasterError::Leadership(reason));
        }
        match http.await {
            Ok(result) => result.map_err(MasterError::Http),
            Err(_) => Ok(()),
        }
    }
}
