//! Serving HTTP/1 (an axum `Router`) over plain or TLS connections, with a bound on how long a
//! client may take to send a request's headers: a client that trickles its headers, or holds a
//! connection open without sending a request, is cut off without holding up anyone else.
//!
//! The master feeds connections it has already accepted and sniffed ([`serve_connections`]); the
//! agent serves a port of its own ([`serve_listener`]), where every connection is TLS when the
//! agent has a certificate.

use crate::tls::{ServerStream, TlsAcceptor};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// How long a client may take to send a request's headers (from the first byte of the request,
/// or from the connection's start) before its connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one connection until it ends (or, once `graceful` shuts down, until its current
/// request is answered).
fn spawn_connection(
    stream: ServerStream,
    peer: SocketAddr,
    router: axum::Router,
    graceful: &GracefulShutdown,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(err) = conn.await {
            debug!(%peer, cause = %err, "http connection ended");
        }
    });
}

/// Serves the connections `connections` yields until `shutdown` resolves, then lets the
/// requests in flight finish.
pub async fn serve_connections(
    mut connections: mpsc::Receiver<(ServerStream, SocketAddr)>,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            conn = connections.recv() => match conn {
                Some((stream, peer)) => spawn_connection(stream, peer, router.clone(), &graceful),
                None => std::future::pending().await,
            },
            _ = &mut shutdown => break,
        }
    }
    graceful.shutdown().await;
}

/// Accepts and serves connections on `listener` until `shutdown` resolves. With `tls`, every
/// connection must be TLS: the handshake runs (bounded) before any request is read, and a
/// client that does not complete one is dropped.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let (handshaken, mut connections) = mpsc::channel::<(ServerStream, SocketAddr)>(64);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        warn!(cause = %err, "failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                match &tls {
                    None => spawn_connection(ServerStream::Plain(tcp), peer, router.clone(), &graceful),
                    Some(acceptor) => {
                        let acceptor = acceptor.clone();
                        let handshaken = handshaken.clone();
                        tokio::spawn(async move {
                            match crate::tls::accept(&acceptor, tcp, 0).await {
                                Ok((stream, _)) => {
                                    let _ = handshaken.send((stream, peer)).await;
                                }
                                Err(err) => debug!(%peer, cause = %err, "TLS handshake failed"),
                            }
                        });
                    }
                }
            }
            Some((stream, peer)) = connections.recv() => {
                spawn_connection(stream, peer, router.clone(), &graceful);
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn router() -> axum::Router {
        axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }))
    }

    /// Serves `router` on a loopback port (plain); returns its address.
    async fn serve() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_listener(
            listener,
            None,
            router(),
            std::future::pending(),
        ));
        addr
    }

    #[tokio::test]
    async fn a_client_slow_with_its_headers_is_cut_off_and_others_are_served() {
        let addr = serve().await;
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        // Meanwhile another client is answered at once.
        let mut quick = tokio::net::TcpStream::connect(addr).await.unwrap();
        quick
            .write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        quick.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
        // The slow one is closed after the header timeout (an error answer, then EOF).
        let mut rest = Vec::new();
        let read = tokio::time::timeout(
            HEADER_READ_TIMEOUT + Duration::from_secs(5),
            slow.read_to_end(&mut rest),
        )
        .await;
        assert!(read.is_ok(), "the slow client was not cut off");
        let waited = started.elapsed();
        assert!(
            waited >= HEADER_READ_TIMEOUT - Duration::from_secs(1),
            "cut off after {waited:?}"
        );
        let text = String::from_utf8_lossy(&rest);
        assert!(!text.contains("200 OK"), "{text}");
    }

    #[tokio::test]
    async fn with_tls_every_connection_must_handshake() {
        let ca = crate::tls::tests::TestCa::new("cluster");
        let (cert, key) = ca.issue("agent", &["127.0.0.1"]);
        let acceptor =
            crate::tls::TlsAcceptor::from(crate::tls::server_config(&cert, &key, None).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_listener(
            listener,
            Some(acceptor),
            router(),
            std::future::pending(),
        ));
        // Plain HTTP gets no answer.
        let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
        plain
            .write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(!String::from_utf8_lossy(&answer).contains("200"));
        // TLS with the CA is served.
        let client = crate::tls::client_config(&ca.ca, None).unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = crate::tls::connect(client, tcp, &addr.to_string())
            .await
            .unwrap();
        tls.write_all(b"GET /health HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.0 200") && answer.ends_with("ok"),
            "{answer}"
        );
    }
}
