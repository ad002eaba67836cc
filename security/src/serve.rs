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
