//! Pulling from registries with `oci-client`: manifests (size-limited, digest-checked, an index
//! resolved to its linux/amd64 image) and blobs streamed to a file while their size and digest
//! are checked. Anonymous, basic and token (Bearer) auth; HTTPS, or HTTP for the registries the
//! agent names.

use crate::digest::{Digest, LimitedHashingWriter};
use crate::manifest::{self, Descriptor, Manifest, MAX_MANIFEST_BYTES};
use crate::ImageError;
use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;

/// How the agent talks to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `host:port`s served over plain HTTP (all others: HTTPS).
    pub http_registries: Vec<String>,
    /// PEM files of CAs trusted for registries besides the system's.
    pub ca_certificates: Vec<PathBuf>,
    /// A Docker `config.json` with credentials (`{"auths": {"host:port": {"auth": base64}}}`).
    pub docker_config: Option<PathBuf>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Registry credentials by `host:port`.
#[derive(Debug, Clone, Default)]
pub struct Credentials(HashMap<String, (String, String)>);

impl Credentials {
    /// Reads a Docker `config.json` (keys may be `host:port` or `https://host:port/v1/`).
    pub fn load(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let config: DockerConfig = serde_json::from_slice(&data)
            .map_err(|e| format!("{}: not a Docker config.json: {e}", path.display()))?;
        let mut out = HashMap::new();
        for (key, entry) in config.auths {
            let host = key
                .trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            let pair = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| format!("{}: auth of {key}: {e}", path.display()))?;
                    let text = String::from_utf8(decoded)
                        .map_err(|_| format!("{}: auth of {key} is not UTF-8", path.display()))?;
                    let (user, pass) = text.split_once(':').ok_or_else(|| {
                        format!("{}: auth of {key} is not user:password", path.display())
                    })?;
                    (user.to_string(), pass.to_string())
                }
                (None, Some(user), Some(pass)) => (user, pass),
                _ => continue,
            };
            out.insert(host, pair);
        }
        Ok(Self(out))
    }

    pub fn auth_for(&self, registry: &str) -> RegistryAuth {
        match self.0.get(registry) {
            Some((user, pass)) => RegistryAuth::Basic(user.clone(), pass.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// A registry client with the agent's settings.
pub struct Registry {
    client: Client,
    credentials: Credentials,
}

impl Registry {
    pub fn new(config: &RegistryConfig) -> Result<Self, String> {
        crate::install_tls_provider();
        let mut extra = Vec::new();
        for path in &config.ca_certificates {
            let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            extra.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let credentials = match &config.docker_config {
            Some(path) => Credentials::load(path)?,
            None => Credentials::default(),
        };
        let client = Client::new(ClientConfig {
            protocol: ClientProtocol::HttpsExcept(config.http_registries.clone()),
            extra_root_certificates: extra,
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(10)),
            read_timeout: Some(std::time::Duration::from_secs(60)),
            ..ClientConfig::default()
        });
        Ok(Self {
            client,
            credentials,
        })
    }

    fn error(reference: &Reference, why: impl ToString) -> ImageError {
        ImageError::Registry {
            registry: reference.resolve_registry().to_string(),
            why: why.to_string(),
        }
    }

    /// Pulls the manifest `reference` names, resolving an index to its linux/amd64 image.
    /// Returns the image manifest's digest and the manifest.
    pub async fn manifest(
        &self,
        reference: &Reference,
    ) -> Result<(Digest, Descriptor, Vec<Descriptor>), ImageError> {
        let auth = self.credentials.auth_for(reference.resolve_registry());
        let (digest, parsed) = self.pull_manifest(reference, &auth).await?;
        match parsed {
            Manifest::Image { config, layers } => Ok((digest, config, layers)),
            Manifest::Index(entries) => {
                let entry = manifest::select(&entries, None)?;
                entry.checked_size("manifest", MAX_MANIFEST_BYTES)?;
                let by_digest = reference.clone_with_digest(entry.digest.clone());
                let (digest, parsed) = self.pull_manifest(&by_digest, &auth).await?;
                match parsed {
                    Manifest::Image { config, layers } => Ok((digest, config, layers)),
                    Manifest::Index(_) => Err(ImageError::Invalid(format!(
                        "the index entry {} is another index",
                        entry.digest
                    ))),
                }
            }
        }
    }

    async fn pull_manifest(
        &self,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<(Digest, Manifest), ImageError> {
        // oci-client reads the whole body; the size is checked right after, before parsing.
        let (body, digest) = self
            .client
            .pull_manifest_raw(reference, auth, manifest::ACCEPTED)
            .await
            .map_err(|err| Self::error(reference, describe(&err)))?;
        let size = body.len() as u64;
        if size > MAX_MANIFEST_BYTES {
            return Err(ImageError::Oversized {
                what: format!("the manifest of {}", reference.whole()),
                size,
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let actual = Digest::of(&body);
        // oci-client checked the body against the digest in the reference and the registry's
        // Docker-Content-Digest header; check again, as what we store is named by it.
        let expected = Digest::parse(&digest).map_err(ImageError::Invalid)?;
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what: format!("the manifest of {}", reference.whole()),
                expected,
                actual,
            });
        }
        let parsed = Manifest::parse(&body, &format!("manifest of {}", reference.whole()))?;
        Ok((actual, parsed))
    }

    /// Streams the blob `descriptor` describes to `dest` (created), checking its size and digest.
    pub async fn blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        limit: u64,
        dest: &Path,
        what: &str,
        progress: Option<&std::sync::atomic::AtomicU64>,
    ) -> Result<u64, ImageError> {
        let expected = descriptor.digest()?;
        let size = descriptor.checked_size(what, limit)?;
        let file = tokio::fs::File::create(dest)
            .await
            .map_err(ImageError::io(dest))?;
        let mut writer = AsyncCounting {
            inner: file,
            sync: LimitedHashingWriter::new(std::io::sink(), size),
            progress,
        };
        let result = self
            .client
            .pull_blob(reference, &descriptor.to_oci(), &mut writer)
            .await;
        let (_, actual, got) = writer.sync.finish();
        let what = format!("{what} {expected}");
        if got < size {
            return Err(ImageError::Truncated {
                what,
                got,
                expected: size,
            });
        }
        if let Err(err) = result {
            if actual != expected {
                return Err(ImageError::DigestMismatch {
                    what,
                    expected,
                    actual,
                });
            }
            return Err(Self::error(reference, describe(&err)));
        }
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what,
                expected,
                actual,
            });
        }
        Ok(got)
    }
}

/// oci-client's error with its causes, on one line.
fn describe(err: &oci_client::errors::OciDistributionError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// An async file writer that also hashes and counts (and refuses to grow past the limit), adding
/// what it writes to `progress` (a pull's byte counter) too.
struct AsyncCounting<'a> {
    inner: tokio::fs::File,
    sync: LimitedHashingWriter<std::io::Sink>,
    progress: Option<&'a std::sync::atomic::AtomicU64>,
}

impl AsyncWrite for AsyncCounting<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                use std::io::Write;
                if let Err(err) = this.sync.write_all(&buf[..n]) {
                    return Poll::Ready(Err(err));
                }
                if let Some(progress) = this.progress {
                    progress.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_configs_give_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(
                r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}},"https://reg:443/v1/":{{"username":"bob","password":"pw"}}}}}}"#
            ),
        )
        .unwrap();
        let c = Credentials::load(&path).unwrap();
        assert!(
            matches!(c.auth_for("127.0.0.1:5000"), RegistryAuth::Basic(u, p) if u == "alice" && p == "s3cret")
        );
        assert!(matches!(c.auth_for("reg:443"), RegistryAuth::Basic(u, _) if u == "bob"));
        assert!(matches!(c.auth_for("other"), RegistryAuth::Anonymous));
        std::fs::write(&path, "{").unwrap();
        assert!(Credentials::load(&path)
            .unwrap_err()
            .contains("config.json"));
    }
}
