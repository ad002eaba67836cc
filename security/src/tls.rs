//! TLS for Strata's connections, with rustls and its ring provider given explicitly (never the
//! process default, so that whatever else a binary links cannot change it).
//!
//! - [`server_config`]: a daemon's certificate and key (`--tls-cert`, `--tls-key`); with a CA
//!   (`--tls-ca`) clients are asked for a certificate, which must then chain to that CA, but may
//!   send none (HTTP frameworks and operators have none; the master decides per call whether an
//!   identity is needed, e.g. `--authenticate-agents`).
//! - [`client_config`]: trust the cluster CA, optionally present a certificate of our own.
//! - [`peer_identity`]: the subject CN and SANs of a verified peer certificate.
//! - [`ServerStream`]: an accepted connection, plain or TLS, after the bytes the server peeked
//!   at to tell the protocols apart.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Why a TLS configuration could not be made. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("the {what} {path} is not valid PEM: {reason}")]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("the {what} {path} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("the CA file {path} cannot be used: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("the certificate {cert} and key {key} cannot be used together: {reason}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// The crypto provider every Strata TLS configuration uses.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, err: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: err.to_string(),
    }
}

/// The certificates of a PEM file, in order (a chain: the leaf first).
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(what, path, err))?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_path_buf(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const WHAT: &str = "private key";
    let pem = read(WHAT, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| match err {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what: WHAT,
            path: path.to_path_buf(),
            expected: "private key",
        },
        err => pem_error(WHAT, path, err),
    })
}

/// The CA certificates of a PEM file, as trust anchors.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA file", path)? {
        roots.add(cert).map_err(|err| TlsError::Ca {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
    }
    Ok(roots)
}

/// A server's configuration: its certificate chain and key; with `client_ca`, clients are asked
/// for a certificate, and one that does not chain to the CA fails the handshake, but clients
/// without any are let in (the caller decides what needs an identity: [`peer_identity`]).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = load_certs("certificate", cert)?;
    let private = load_key(key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| identity_error(cert, key, err))?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(load_roots(ca)?), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|err| TlsError::Ca {
                        path: ca.to_path_buf(),
                        reason: err.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, private)
        .map_err(|err| identity_error(cert, key, err))?;
    Ok(Arc::new(config))
}

fn identity_error(cert: &Path, key: &Path, err: rustls::Error) -> TlsError {
    TlsError::Identity {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        reason: err.to_string(),
    }
}

/// A client's configuration: servers must present a certificate that chains to `ca` (and names
/// the host connected to); `identity` (certificate, key) is presented when the server asks.
pub fn client_config(
    ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = load_roots(ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|err| TlsError::Ca {
            path: ca.to_path_buf(),
            reason: err.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs("certificate", cert)?, load_key(key)?)
            .map_err(|err| identity_error(cert, key, err))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name a client checks the server's certificate against: the host part of `host:port`
/// (an IP address or a DNS name; brackets of an IPv6 address removed).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|err| format!("{host} is not a valid server name for TLS: {err}"))
}

/// Who a verified peer certificate names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name (a node's or a user's name in a Strata cluster CA).
    pub common_name: Option<String>,
    /// The DNS names and IP addresses of its subject alternative names.
    pub alt_names: Vec<String>,
}

/// The identity in the end-entity certificate the peer presented, if it presented one. rustls
/// only completes a handshake whose client certificate chained to the configured CA, so a
/// certificate here has been verified (see [`server_config`]).
pub fn peer_identity(conn: &rustls::CommonState) -> Option<PeerIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    identity_of(leaf)
}

/// The CN and SANs of a DER certificate (`None` when it cannot be parsed).
pub fn identity_of(der: &CertificateDer<'_>) -> Option<PeerIdentity> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    let mut alt_names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => alt_names.push(dns.to_string()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => {
                        let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                        alt_names.push(std::net::Ipv4Addr::from(octets).to_string());
                    }
                    16 => {
                        let mut octets = [0u8; 16];
                        octets.copy_from_slice(bytes);
                        alt_names.push(std::net::Ipv6Addr::from(octets).to_string());
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(PeerIdentity {
        common_name,
        alt_names,
    })
}

/// Why a daemon must not listen on `ip` as configured: a non-loopback address served without
/// TLS, unless the operator said `--insecure`. `None` when it may.
pub fn insecure_refusal(ip: std::net::IpAddr, tls: bool, insecure: bool) -> Option<String> {
    if tls || insecure || ip.is_loopback() {
        return None;
    }
    Some(format!(
        "refusing to serve {ip} without TLS: give --tls-cert and --tls-key (see `strata certs`), \
         or --ip 127.0.0.1 to serve this host only, or --insecure to serve plain TCP anyway"
    ))
}

/// Whether the first bytes of a connection are a TLS handshake record (a ClientHello starts
/// with content type 22, then the major version 3).
pub fn looks_like_tls(head: &[u8]) -> bool {
    head.first() == Some(&0x16) && head.get(1).is_none_or(|&v| v == 0x03)
}

/// An accepted connection, plain or TLS, with the bytes already read from it to sniff its
/// protocol put back in front.
pub enum ServerStream {
    Plain(tokio::net::TcpStream),
    Tls(Box<Rewound<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>),
}

impl ServerStream {
    /// The identity of a TLS peer's verified certificate.
    pub fn peer_identity(&self) -> Option<PeerIdentity> {
        match self {
            ServerStream::Plain(_) => None,
            ServerStream::Tls(tls) => peer_identity(tls.inner.get_ref().1),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, ServerStream::Tls(_))
    }

    fn tcp(&self) -> &tokio::net::TcpStream {
        match self {
            ServerStream::Plain(tcp) => tcp,
            ServerStream::Tls(tls) => tls.inner.get_ref().0,
        }
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.tcp().set_nodelay(nodelay)
    }
}

/// A stream with bytes already read from it put back in front.
pub struct Rewound<S> {
    head: Vec<u8>,
    pos: usize,
    pub inner: S,
}

impl<S> Rewound<S> {
    pub fn new(head: Vec<u8>, inner: S) -> Self {
        Self {
            head,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.head.len() {
            let n = (this.head.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.head[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.head.len() {
                this.head = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Plain(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts a TLS connection (bounded by [`HANDSHAKE_TIMEOUT`]) and reads up to `sniff` bytes of
/// what the client sends first, which the returned stream gives back before the rest. Returns
/// the bytes read (fewer than `sniff` only if the client closed or went silent for the whole
/// timeout after the handshake).
pub async fn accept(
    acceptor: &TlsAcceptor,
    tcp: tokio::net::TcpStream,
    sniff: usize,
) -> io::Result<(ServerStream, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let mut tls = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let mut head = vec![0u8; sniff];
    let mut filled = 0;
    while filled < sniff {
        match tokio::time::timeout_at(deadline, tls.read(&mut head[filled..])).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => filled += n,
            Ok(Err(err)) => return Err(err),
        }
    }
    head.truncate(filled);
    let stream = ServerStream::Tls(Box::new(Rewound::new(head.clone(), tls)));
    Ok((stream, head))
}

/// Connects a client over TLS to `addr` (`host:port`), checking the server's certificate names
/// `host`; bounded by [`HANDSHAKE_TIMEOUT`].
pub async fn connect(
    config: Arc<ClientConfig>,
    tcp: tokio::net::TcpStream,
    addr: &str,
) -> io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let name = server_name(addr).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A CA and certificates it signs, written as PEM files into a temp dir.
    pub(crate) struct TestCa {
        pub dir: tempfile::TempDir,
        key: rcgen::KeyPair,
        params: rcgen::CertificateParams,
        pub ca: PathBuf,
    }

    impl TestCa {
        pub fn new(name: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, format!("{name} CA"));
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            let ca = dir.path().join(format!("{name}-ca.pem"));
            std::fs::write(&ca, cert.pem()).unwrap();
            Self {
                dir,
                key,
                params,
                ca,
            }
        }

        /// (certificate, key) for `cn` with `sans`, signed by this CA.
        pub fn issue(&self, cn: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(
                sans.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            )
            .unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
            let cert = params.signed_by(&key, &issuer).unwrap();
            let cert_path = self.dir.path().join(format!("{cn}.pem"));
            let key_path = self.dir.path().join(format!("{cn}-key.pem"));
            std::fs::write(&cert_path, cert.pem()).unwrap();
            std::fs::write(&key_path, key.serialize_pem()).unwrap();
            (cert_path, key_path)
        }
    }

    /// Serves one connection with `server`; returns what the client sent first (4 bytes) and
    /// the client's identity, or the handshake's error.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> Result<(Vec<u8>, Option<PeerIdentity>), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server);
        let serve = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let (mut stream, head) = accept(&acceptor, tcp, 4).await.map_err(|e| e.to_string())?;
            let identity = stream.peer_identity();
            // The sniffed bytes come again, then the rest.
            let mut all = vec![0u8; 8];
            stream
                .read_exact(&mut all)
                .await
                .map_err(|e| e.to_string())?;
            assert_eq!(&all[..4], &head[..]);
            stream.write_all(b"pong").await.map_err(|e| e.to_string())?;
            stream.flush().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((all, identity))
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let client_side = async {
            let mut tls = connect(client, tcp, &format!("{name}:{}", addr.port()))
                .await
                .map_err(|e| e.to_string())?;
            tls.write_all(b"GET /state")
                .await
                .map_err(|e| e.to_string())?;
            tls.flush().await.map_err(|e| e.to_string())?;
            let mut pong = [0u8; 4];
            tls.read_exact(&mut pong).await.map_err(|e| e.to_string())?;
            assert_eq!(&pong, b"pong");
            Ok::<_, String>(())
        };
        let client_result = client_side.await;
        let server_result = serve.await.unwrap();
        client_result?;
        server_result
    }

    #[tokio::test]
    async fn mutual_tls_names_the_client() {
        let ca = TestCa::new("cluster");
        let (server_cert, server_key) = ca.issue("master", &["localhost", "127.0.0.1"]);
        let (agent_cert, agent_key) = ca.issue("agent-1", &["agent-1.example"]);
        let server = server_config(&server_cert, &server_key, Some(&ca.ca)).unwrap();
        let client = client_config(&ca.ca, Some((&agent_cert, &agent_key))).unwrap();
        let (head, identity) = handshake(server, client, "127.0.0.1").await.unwrap();
        assert_eq!(&head, b"GET /sta");
        let identity = identity.unwrap();
        assert_eq!(identity.common_name.as_deref(), Some("agent-1"));
        assert_eq!(identity.alt_names, vec!["agent-1.example".to_string()]);
    }

    #[tokio::test]
    async fn a_client_without_a_certificate_is_let_in_without_identity() {
        let ca = TestCa::new("cluster");
        let (server_cert, server_key) = ca.issue("master", &["localhost"]);
        let server = server_config(&server_cert, &server_key, Some(&ca.ca)).unwrap();
        let client = client_config(&ca.ca, None).unwrap();
        let (_, identity) = handshake(server, client, "localhost").await.unwrap();
        assert_eq!(identity, None);
    }

    #[tokio::test]
    async fn a_client_certificate_of_another_ca_fails_the_handshake() {
        let ca = TestCa::new("cluster");
        let other = TestCa::new("other");
        let (server_cert, server_key) = ca.issue("master", &["localhost"]);
        let (agent_cert, agent_key) = other.issue("agent-1", &[]);
        let server = server_config(&server_cert, &server_key, Some(&ca.ca)).unwrap();
        let client = client_config(&ca.ca, Some((&agent_cert, &agent_key))).unwrap();
        let err = handshake(server, client, "localhost").await.unwrap_err();
        assert!(!err.is_empty());
    }

    #[tokio::test]
    async fn a_client_checks_the_server_against_its_ca_and_name() {
        let ca = TestCa::new("cluster");
        let other = TestCa::new("other");
        let (server_cert, server_key) = ca.issue("master", &["localhost"]);
        let server = server_config(&server_cert, &server_key, None).unwrap();
        // Another CA: refused.
        let client = client_config(&other.ca, None).unwrap();
        let err = handshake(Arc::clone(&server), client, "localhost")
            .await
            .unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        // The right CA but a name the certificate does not hold: refused.
        let client = client_config(&ca.ca, None).unwrap();
        let err = handshake(Arc::clone(&server), Arc::clone(&client), "127.0.0.1")
            .await
            .unwrap_err();
        assert!(err.contains("certificate"), "{err}");
        handshake(server, client, "localhost").await.unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let ca = TestCa::new("cluster");
        let (cert, key) = ca.issue("master", &["localhost"]);
        let absent = ca.dir.path().join("absent.pem");
        let err = server_config(&absent, &key, None).unwrap_err().to_string();
        assert!(
            err.contains("absent.pem") && err.contains("certificate"),
            "{err}"
        );
        // A key where the certificate should be, and the other way round.
        let err = server_config(&key, &key, None).unwrap_err().to_string();
        assert!(
            err.contains("holds no certificate") && err.contains("master-key.pem"),
            "{err}"
        );
        let err = server_config(&cert, &cert, None).unwrap_err().to_string();
        assert!(
            err.contains("holds no private key") && err.contains("master.pem"),
            "{err}"
        );
        let garbage = ca.dir.path().join("garbage.pem");
        std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
        let err = client_config(&garbage, None).unwrap_err().to_string();
        assert!(err.contains("garbage.pem"), "{err}");
        // A key that is not the certificate's.
        let (_, other_key) = ca.issue("other", &[]);
        let err = server_config(&cert, &other_key, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("master.pem") && err.contains("other-key.pem"),
            "{err}"
        );
    }

    #[test]
    fn only_loopback_is_served_without_tls_unless_insecure() {
        let any: std::net::IpAddr = "0.0.0.0".parse().unwrap();
        let err = insecure_refusal(any, false, false).unwrap();
        assert!(
            err.contains("0.0.0.0") && err.contains("--tls-cert") && err.contains("--insecure"),
            "{err}"
        );
        assert_eq!(insecure_refusal(any, true, false), None);
        assert_eq!(insecure_refusal(any, false, true), None);
        assert_eq!(
            insecure_refusal("127.0.0.1".parse().unwrap(), false, false),
            None
        );
        assert_eq!(insecure_refusal("::1".parse().unwrap(), false, false), None);
        assert!(insecure_refusal("10.1.2.3".parse().unwrap(), false, false).is_some());
    }

    #[test]
    fn sniffs_tls_and_names_servers() {
        assert!(looks_like_tls(&[0x16, 0x03, 0x01, 0x02]));
        assert!(!looks_like_tls(b"GET "));
        assert!(!looks_like_tls(&[0, 0, 0, 0]));
        assert_eq!(
            server_name("master.example:5050").unwrap(),
            ServerName::try_from("master.example").unwrap()
        );
        assert_eq!(
            server_name("127.0.0.1:5050").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("[::1]:5050").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert!(server_name("bad host:1").is_err());
    }
}
