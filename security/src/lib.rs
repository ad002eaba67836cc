//! What Strata's daemons and clients share to secure themselves (issue 11).
//!
//! - [`tls`] — rustls configurations from PEM files (`--tls-cert`, `--tls-key`, `--tls-ca`):
//!   servers that may require client certificates (mutual TLS for agents), clients that verify
//!   the cluster CA, and the identity read from a peer's certificate.
//! - [`serve`] — HTTP/1 over plain or TLS connections, with a request-header read timeout.
//! - [`certs`] — a small cluster CA and node certificates (`strata certs …`).
//! - [`credentials`] — Mesos' `--credentials` file (principal and secret).
//! - [`acl`] — Mesos' ACLs (JSON) and their evaluation.
//! - [`token`] — signed bearer tokens (JWT, HS256): operators' tokens and per-executor tokens.
//! - [`authn`] — `Authorization` headers to principals, and the 401/403 answers.
//! - [`limits`] — the routers' request-body limits (413, 408).

pub mod acl;
pub mod authn;
pub mod certs;
pub mod credentials;
pub mod limits;
pub mod serve;
pub mod tls;
pub mod token;
