//! One listening port for everything, as Mesos has: each accepted connection is sniffed; HTTP
//! requests go to axum, anything else is a Cap'n Proto connection for the RPC thread.

use crate::state::ConnId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// Whether the first bytes of a connection look like an HTTP/1 request line.
pub fn looks_like_http(head: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC",
    ];
    METHODS.iter().any(|m| head.starts_with(m))
}

/// Allocates [`ConnId`]s, shared by the RPC connections and the HTTP scheduler streams so that
/// the two never collide.
#[derive(Debug, Clone, Default)]
pub struct ConnIds(Arc<AtomicU64>);

impl ConnIds {
    /// A new id, never 0.
    pub fn next(&self) -> ConnId {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// Feeds HTTP connections to axum.
pub struct ChannelListener {
    pub connections: mpsc::Receiver<(TcpStream, SocketAddr)>,
    pub local: SocketAddr,
}

impl axum::serve::Listener for ChannelListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.connections.recv().await {
            Some(conn) => conn,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// Accepts connections forever, routing each by its first bytes.
pub async fn accept_loop(
    listener: TcpListener,
    http: mpsc::Sender<(TcpStream, SocketAddr)>,
    rpc: mpsc::UnboundedSender<(std::net::TcpStream, ConnId)>,
    conns: ConnIds,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                warn!(cause = %err, "failed to accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let conn = conns.next();
        let http = http.clone();
        let rpc = rpc.clone();
        tokio::spawn(async move {
            let mut head = [0u8; 4];
            // Wait (bounded) for the first bytes; both protocols start with the client talking.
            let peeked = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                loop {
                    match stream.peek(&mut head).await {
                        Ok(n) if n >= 4 || n == 0 => return Ok(n),
                        Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                        Err(err) => return Err(err),
                    }
                }
            })
            .await;
            match peeked {
                Ok(Ok(n)) if n >= 4 => {
                    if looks_like_http(&head) {
                        let _ = http.send((stream, peer)).await;
                    } else {
                        let _ = stream.set_nodelay(true);
                        match stream.into_std() {
                            Ok(std_stream) => {
                                let _ = rpc.send((std_stream, conn));
                            }
                            Err(err) => warn!(cause = %err, "failed to hand a connection over"),
                        }
                    }
                }
                _ => debug!(%peer, "connection closed or silent before its first bytes"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_http() {
        assert!(looks_like_http(b"GET /state HTTP/1.1"));
        assert!(looks_like_http(b"POST"));
        assert!(!looks_like_http(&[0, 0, 0, 0]));
        assert!(!looks_like_http(b"GE"));
    }

    #[test]
    fn conn_ids_are_shared_and_distinct() {
        let a = ConnIds::default();
        let b = a.clone();
        assert_eq!(a.next(), 1);
        assert_eq!(b.next(), 2);
        assert_eq!(a.next(), 3);
    }
}
