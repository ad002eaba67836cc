//! The agent's image store: images from registries (through `oci-client`), OCI image layouts,
//! `oci-archive` and `docker save` tarballs, kept as content-addressed blobs and unpacked layers
//! shared by every image and container that uses them; the runtime spec of a container started
//! from one (`oci-spec`), and the root filesystem mount (overlayfs).
//!
//! See [`store`] for the layout on disk and the invariants.

pub mod digest;
pub mod manifest;
pub mod overlay;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod store;
pub mod unpack;
pub mod user;

pub use digest::Digest;
pub use manifest::ImageConfig;
pub use reference::Source;
pub use registry::RegistryConfig;
pub use store::{ImageRecord, ImageUse, Provisioned, PruneReport, Store};

use std::path::PathBuf;

/// Why an image could not be provided. Every message names the image part involved.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name {name:?}: {why}")]
    Reference { name: String, why: String },
    #[error("{0}")]
    NotFound(String),
    #[error("wrong platform: {0}")]
    Platform(String),
    #[error("{0}")]
    Invalid(String),
    #[error("oversized: {what} is {size} bytes, more than the limit of {limit}")]
    Oversized { what: String, size: u64, limit: u64 },
    #[error("digest mismatch: {what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("truncated blob: {what} has {got} bytes, its descriptor says {expected}")]
    Truncated {
        what: String,
        got: u64,
        expected: u64,
    },
    #[error("layer {digest} refused: {source}")]
    Layer {
        digest: Digest,
        source: unpack::UnpackError,
    },
    #[error("registry {registry}: {why}")]
    Registry { registry: String, why: String },
    #[error("failed to access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ImageError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io { path, source }
    }
}

/// Installs rustls' ring provider as the process default (idempotent). Registry clients need a
/// provider; call this once before the first pull (the store does).
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
