//! One listening port for everything, as Mesos has: each accepted connection is sniffed; HTTP
//! requests go to axum, anything else is a Cap'n Proto connection for the RPC thread. With
//! `--tls-cert`, every connection must be TLS (its first byte 0x16): the handshake comes first,
//! then the decrypted stream is sniffed the same way.

use crate::state::ConnId;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use strata_security::tls::{self, PeerIdentity, ServerStream, TlsAcceptor};
use tokio::net::TcpListener;
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

/// A connection for the RPC thread: plain TCP (re-registered with the RPC thread's runtime), or
/// TLS (handshaken here, the peer's verified identity with it).
pub enum RpcStream {
    Plain(std::net::TcpStream),
    Tls(Box<ServerStream>),
}

/// A Cap'n Proto connection handed to the RPC thread.
pub struct RpcConn {
    pub stream: RpcStream,
    pub conn: ConnId,
    /// Who the peer's verified client certificate names (TLS with `--tls-ca` only).
    pub peer: Option<PeerIdentity>,
}

/// How long a client has to send its first bytes (or complete its TLS handshake).
const FIRST_BYTES_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts connections forever, routing each by its first bytes. With `tls`, every connection
/// must start a TLS handshake; what it carries is then sniffed the same way.
pub async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    http: mpsc::Sender<(ServerStream, SocketAddr)>,
    rpc: mpsc::UnboundedSender<RpcConn>,
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
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut head = [0u8; 4];
            // Wait (bounded) for the first bytes; both protocols start with the client talking.
            let peeked = tokio::time::timeout(FIRST_BYTES_TIMEOUT, async {
                loop {
                    match stream.peek(&mut head).await {
                        Ok(n) if n >= 4 || n == 0 => return Ok(n),
                        Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(1)).await,
                        Err(err) => return Err(err),
                    }
                }
            })
            .await;
            if !matches!(peeked, Ok(Ok(n)) if n >= 4) {
                debug!(%peer, "connection closed or silent before its first bytes");
                return;
            }
            let _ = stream.set_nodelay(true);
            let is_tls = tls::looks_like_tls(&head);
            match (&tls, is_tls) {
                (Some(acceptor), true) => match tls::accept(acceptor, stream, 4).await {
                    Ok((stream, head)) if head.len() == 4 => {
                        if looks_like_http(&head) {
                            let _ = http.send((stream, peer)).await;
                        } else {
                            let peer = stream.peer_identity();
                            let _ = rpc.send(RpcConn {
                                stream: RpcStream::Tls(Box::new(stream)),
                                conn,
                                peer,
                            });
                        }
                    }
                    Ok(_) => {
                        debug!(%peer, "TLS connection closed or silent before its first bytes")
                    }
                    Err(err) => warn!(%peer, cause = %err, "TLS handshake failed"),
                },
                (Some(_), false) => {
                    warn!(%peer, "refused a plain connection: this master serves TLS only (--tls-cert)")
                }
                (None, true) => {
                    warn!(%peer, "refused a TLS connection: this master has no --tls-cert")
                }
                (None, false) => {
                    if looks_like_http(&head) {
                        let _ = http.send((ServerStream::Plain(stream), peer)).await;
                    } else {
                        match stream.into_std() {
                            Ok(std_stream) => {
                                let _ = rpc.send(RpcConn {
                                    stream: RpcStream::Plain(std_stream),
                                    conn,
                                    peer: None,
                                });
                            }
                            Err(err) => warn!(cause = %err, "failed to hand a connection over"),
                        }
                    }
                }
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
