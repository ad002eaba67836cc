//! TLS for everything this process's clients open to the cluster (the scheduler driver's Cap'n
//! Proto connections and the HTTP helpers): set once with [`use_tls`], before the first
//! connection. Without it, connections are plain TCP and `http://`.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use strata_security::tls::TlsError;

static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();

/// From now on, connect to masters and agents over TLS: their certificates must chain to `ca`
/// (the cluster CA) and name the host connected to; `identity` (certificate, key) is presented
/// when asked. Only the first call counts (later ones return `Ok` and change nothing).
pub fn use_tls(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<(), TlsError> {
    let config = strata_security::tls::client_config(ca, identity)?;
    let _ = CONFIG.set(config);
    Ok(())
}

/// The TLS configuration set with [`use_tls`], if any.
pub fn config() -> Option<Arc<rustls::ClientConfig>> {
    CONFIG.get().cloned()
}

/// The scheme of the cluster's HTTP endpoints: `https` once [`use_tls`] was called.
pub fn scheme() -> &'static str {
    if CONFIG.get().is_some() {
        "https"
    } else {
        "http"
    }
}
