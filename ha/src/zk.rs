//! Leader election and detection through ZooKeeper, in the layout Mesos masters use: each
//! contending master holds an ephemeral sequential znode `<path>/json.info_NNNNNNNNNN` whose data
//! is its MasterInfo JSON; the lowest sequence leads.

use crate::info::LeaderInfo;
use crate::url::ZkUrl;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};
use zookeeper_client as zk;

/// The prefix of contenders' znodes (Mesos' `json.info_`).
pub const NODE_PREFIX: &str = "json.info_";

#[derive(Debug, thiserror::Error)]
pub enum ZkError {
    #[error("ZooKeeper {servers}: {source}")]
    Connect { servers: String, source: zk::Error },
    #[error("ZooKeeper {path}: {source}")]
    Op { path: String, source: zk::Error },
}

fn op(path: &str) -> impl FnOnce(zk::Error) -> ZkError + '_ {
    move |source| ZkError::Op {
        path: path.to_string(),
        source,
    }
}

/// Connects to the ensemble of `url` with `session_timeout`.
pub async fn connect(url: &ZkUrl, session_timeout: Duration) -> Result<zk::Client, ZkError> {
    zk::Client::connector()
        .with_session_timeout(session_timeout)
        .with_connection_timeout(session_timeout.min(Duration::from_secs(5)))
        .connect(&url.servers)
        .await
        .map_err(|source| ZkError::Connect {
            servers: url.servers.clone(),
            source,
        })
}

/// Creates `path` and its parents if they are missing.
pub async fn ensure_path(client: &zk::Client, path: &str) -> Result<(), ZkError> {
    let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    match client.mkdir(path, &options).await {
        Ok(()) | Err(zk::Error::NodeExists) => Ok(()),
        Err(source) => Err(ZkError::Op {
            path: path.to_string(),
            source,
        }),
    }
}

/// The contenders' znode names under the election path, lowest sequence first.
fn contenders(children: Vec<String>) -> Vec<String> {
    let mut nodes: Vec<String> = children
        .into_iter()
        .filter(|c| {
            c.strip_prefix(NODE_PREFIX)
                .is_some_and(|seq| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    nodes.sort_by_key(|c| c[NODE_PREFIX.len()..].parse::<u64>().unwrap_or(u64::MAX));
    nodes
}

/// Reads the leader: the lowest contender's MasterInfo, and its znode name. `Ok(None)` when no
/// master contends (or the lowest vanished meanwhile: look again).
async fn read_leader(
    client: &zk::Client,
    path: &str,
    children: Vec<String>,
) -> Result<Option<(String, LeaderInfo)>, ZkError> {
    let Some(lowest) = contenders(children).into_iter().next() else {
        return Ok(None);
    };
    let node = format!("{path}/{lowest}");
    match client.get_data(&node).await {
        Ok((data, _)) => match LeaderInfo::from_json(&data) {
            Ok(info) => Ok(Some((lowest, info))),
            Err(err) => {
                warn!(znode = %node, cause = %err, "the leading znode holds no MasterInfo");
                Ok(None)
            }
        },
        Err(zk::Error::NoNode) => Ok(None),
        Err(source) => Err(ZkError::Op { path: node, source }),
    }
}

/// A contending master's view of the election.
#[derive(Debug, Clone, PartialEq)]
pub enum Leadership {
    /// Not elected yet; the leader, if one is known.
    Following(Option<LeaderInfo>),
    /// This master leads.
    Leading,
    /// The ZooKeeper session ended (expired, closed, or disconnected longer than the session
    /// timeout): a leader must stop leading at once. Final.
    Lost(String),
}

/// A master's candidacy: its ephemeral sequential znode, and a task that follows the election.
/// A standby whose session ends joins again with a new one; a leader's ends its leadership
/// ([`Leadership::Lost`]) for good.
pub struct Contender {
    client: std::sync::Arc<std::sync::Mutex<zk::Client>>,
    task: tokio::task::JoinHandle<()>,
}

/// One session's candidacy: connect, make sure the path exists, create the znode.
async fn candidacy(
    url: &ZkUrl,
    info: &LeaderInfo,
    session_timeout: Duration,
) -> Result<(zk::Client, String), ZkError> {
    let client = connect(url, session_timeout).await?;
    ensure_path(&client, &url.path).await?;
    let prefix = format!("{}/{NODE_PREFIX}", url.path);
    let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (_, seq) = client
        .create(&prefix, &info.to_json(), &options)
        .await
        .map_err(op(&prefix))?;
    // ZooKeeper appends the sequence as 10 digits.
    let node = format!("{NODE_PREFIX}{seq}");
    info!(znode = %format!("{}/{node}", url.path), "contending for leadership");
    Ok((client, node))
}

impl Contender {
    /// Joins the election at `url` with `info` as the znode's data (failing if ZooKeeper cannot
    /// be reached now). The watch starts at `Following(None)` and changes as the election does.
    pub async fn join(
        url: &ZkUrl,
        info: &LeaderInfo,
        session_timeout: Duration,
    ) -> Result<(Contender, watch::Receiver<Leadership>), ZkError> {
        let (client, node) = candidacy(url, info, session_timeout).await?;
        let shared = std::sync::Arc::new(std::sync::Mutex::new(client.clone()));
        let (tx, rx) = watch::channel(Leadership::Following(None));
        let task = tokio::spawn(contend(
            url.clone(),
            info.clone(),
            session_timeout,
            client,
            node,
            std::sync::Arc::clone(&shared),
            tx,
        ));
        Ok((
            Contender {
                client: shared,
                task,
            },
            rx,
        ))
    }

    /// The current session's client (registry writes go through it, so they fail with the
    /// session).
    pub fn client(&self) -> zk::Client {
        self.client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Contender {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the election session after session.
async fn contend(
    url: ZkUrl,
    info: LeaderInfo,
    session_timeout: Duration,
    mut client: zk::Client,
    mut node: String,
    shared: std::sync::Arc<std::sync::Mutex<zk::Client>>,
    tx: watch::Sender<Leadership>,
) {
    loop {
        let session_end = session_ended(client.clone(), session_timeout);
        let election = follow_election(client.clone(), url.path.clone(), node.clone(), tx.clone());
        let reason = tokio::select! {
            reason = session_end => reason,
            reason = election => reason,
        };
        if *tx.borrow() == Leadership::Leading {
            warn!(%reason, "leadership lost");
            let _ = tx.send(Leadership::Lost(reason));
            return;
        }
        // A standby just joins again.
        warn!(%reason, "the ZooKeeper session of this standby ended; joining again");
        tx.send_replace(Leadership::Following(None));
        let mut backoff = Duration::from_millis(200);
        loop {
            tokio::time::sleep(backoff).await;
            match candidacy(&url, &info, session_timeout).await {
                Ok((c, n)) => {
                    client = c;
                    node = n;
                    *shared
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = client.clone();
                    break;
                }
                Err(err) => {
                    debug!(cause = %err, "cannot join the election yet");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Resolves when the session ends: at once when ZooKeeper says it expired or closed, or after a
/// disconnection longer than the session timeout (by then the server has expired it).
async fn session_ended(client: zk::Client, session_timeout: Duration) -> String {
    let mut states = client.state_watcher();
    loop {
        let state = states.changed().await;
        debug!(?state, "ZooKeeper session state");
        match state {
            zk::SessionState::Disconnected => {
                let reconnected = tokio::time::timeout(session_timeout, async {
                    loop {
                        match states.changed().await {
                            zk::SessionState::SyncConnected
                            | zk::SessionState::ConnectedReadOnly => return true,
                            zk::SessionState::Disconnected => continue,
                            _ => return false,
                        }
                    }
                })
                .await;
                if reconnected != Ok(true) {
                    return format!(
                        "disconnected from ZooKeeper for longer than the session timeout \
                         ({session_timeout:?})"
                    );
                }
            }
            zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly => {}
            other => return format!("ZooKeeper session {other:?}"),
        }
    }
}

/// Publishes the election's outcome as it changes; returns why it stopped following.
async fn follow_election(
    client: zk::Client,
    path: String,
    node: String,
    tx: watch::Sender<Leadership>,
) -> String {
    loop {
        let (children, watcher) = match client.list_and_watch_children(&path).await {
            Ok(found) => found,
            Err(err) => return format!("cannot list the election znode {path}: {err}"),
        };
        if !children.contains(&node) {
            return format!("this master's znode {path}/{node} is gone");
        }
        let next = match read_leader(&client, &path, children).await {
            Ok(Some((lowest, _))) if lowest == node => Leadership::Leading,
            Ok(Some((_, leader))) => Leadership::Following(Some(leader)),
            Ok(None) => Leadership::Following(None),
            Err(err) => {
                warn!(cause = %err, "cannot read the leader");
                Leadership::Following(None)
            }
        };
        tx.send_if_modified(|current| {
            if *current == next {
                return false;
            }
            *current = next.clone();
            true
        });
        let _ = watcher.changed().await;
    }
}

/// Follows the leader for agents, frameworks and the CLI: `None` while no master leads (or
/// ZooKeeper cannot be reached). Reconnects with a new session whenever one ends.
pub struct Detector {
    task: tokio::task::JoinHandle<()>,
}

impl Detector {
    pub fn start(
        url: ZkUrl,
        session_timeout: Duration,
    ) -> (Detector, watch::Receiver<Option<LeaderInfo>>) {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                match detect(&url, session_timeout, &tx).await {
                    Ok(()) => backoff = Duration::from_millis(200),
                    Err(err) => {
                        warn!(zk = %url, cause = %err, "leader detection failed; retrying");
                        tx.send_replace(None);
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        });
        (Detector { task }, rx)
    }
}

impl Drop for Detector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One session's worth of detection; returns when the session ends.
async fn detect(
    url: &ZkUrl,
    session_timeout: Duration,
    tx: &watch::Sender<Option<LeaderInfo>>,
) -> Result<(), ZkError> {
    let client = connect(url, session_timeout).await?;
    let mut states = client.state_watcher();
    loop {
        let (children, watcher) = match client.list_and_watch_children(&url.path).await {
            Ok(found) => found,
            Err(zk::Error::NoNode) => {
                // No master ever contended here yet: wait for the path to appear.
                tx.send_replace(None);
                let (_, stat_watcher) = client
                    .check_and_watch_stat(&url.path)
                    .await
                    .map_err(op(&url.path))?;
                tokio::select! {
                    _ = stat_watcher.changed() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            Err(source) => {
                return Err(ZkError::Op {
                    path: url.path.clone(),
                    source,
                })
            }
        };
        let leader = read_leader(&client, &url.path, children)
            .await?
            .map(|(_, info)| info);
        tx.send_if_modified(|current| {
            if *current == leader {
                return false;
            }
            info!(leader = ?leader.as_ref().map(LeaderInfo::endpoint), "leading master changed");
            *current = leader.clone();
            true
        });
        tokio::select! {
            _ = watcher.changed() => {}
            state = states.changed() => {
                if !matches!(state, zk::SessionState::SyncConnected | zk::SessionState::ConnectedReadOnly | zk::SessionState::Disconnected) {
                    return Ok(());
                }
            }
        }
    }
}

/// Where a long-lived client (an agent, a framework's driver) finds the master: a fixed address,
/// or the leader followed through ZooKeeper.
pub struct Follower {
    kind: FollowerKind,
}

enum FollowerKind {
    Direct(String),
    Zk {
        leader: watch::Receiver<Option<LeaderInfo>>,
        _detector: Detector,
    },
}

impl Follower {
    /// Starts following `master` (a ZooKeeper session of `session_timeout` for `zk://`).
    pub fn new(master: &crate::MasterAddress, session_timeout: Duration) -> Follower {
        let kind = match master {
            crate::MasterAddress::Direct(addr) => FollowerKind::Direct(addr.clone()),
            crate::MasterAddress::Zk(url) => {
                let (detector, leader) = Detector::start(url.clone(), session_timeout);
                FollowerKind::Zk {
                    leader,
                    _detector: detector,
                }
            }
        };
        Follower { kind }
    }

    /// Whether the master is followed through ZooKeeper (and so may move).
    pub fn follows_leader(&self) -> bool {
        matches!(self.kind, FollowerKind::Zk { .. })
    }

    /// The master's `host:port`, waiting until a leader is known; `None` if detection stopped.
    pub async fn resolve(&mut self) -> Option<String> {
        match &mut self.kind {
            FollowerKind::Direct(addr) => Some(addr.clone()),
            FollowerKind::Zk { leader, .. } => {
                let found = leader.wait_for(Option::is_some).await.ok()?.clone();
                leader.borrow_and_update();
                found.map(|l| l.endpoint())
            }
        }
    }

    /// Resolves when the leader changes after the last [`Follower::resolve`] (never for a fixed
    /// address).
    pub async fn changed(&mut self) {
        match &mut self.kind {
            FollowerKind::Direct(_) => std::future::pending().await,
            FollowerKind::Zk { leader, .. } => {
                if leader.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// Reads the current leader once (for short-lived clients such as the CLI).
pub async fn current_leader(url: &ZkUrl, timeout: Duration) -> Result<Option<LeaderInfo>, ZkError> {
    let client = connect(url, timeout).await?;
    let children = match client.list_children(&url.path).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => return Ok(None),
        Err(source) => {
            return Err(ZkError::Op {
                path: url.path.clone(),
                source,
            })
        }
    };
    Ok(read_leader(&client, &url.path, children)
        .await?
        .map(|(_, info)| info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_sequence_first_and_strangers_ignored() {
        let nodes = contenders(vec![
            "json.info_0000000012".into(),
            "registry".into(),
            "json.info_0000000003".into(),
            "log_replicas".into(),
            "json.info_".into(),
            "json.info_00x".into(),
        ]);
        assert_eq!(nodes, vec!["json.info_0000000003", "json.info_0000000012"]);
    }
}
