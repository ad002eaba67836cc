//! Test certificates (a cluster CA and the certificates it signs, made with rcgen) and a blocking
//! HTTPS client for clusters that serve TLS.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A CA and the certificates it signs, as PEM files in a temp dir.
pub struct TestPki {
    pub dir: tempfile::TempDir,
    key: rcgen::KeyPair,
    params: rcgen::CertificateParams,
    /// The CA's certificate (`--tls-ca`).
    pub ca: PathBuf,
}

/// A certificate and its key.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// `--tls-cert <cert> --tls-key <key>`.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_string(),
            self.cert.display().to_string(),
            "--tls-key".to_string(),
            self.key.display().to_string(),
        ]
    }
}

impl TestPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("strata-pki-").tempdir()?;
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, cert.pem())?;
        Ok(Self {
            dir,
            key,
            params,
            ca,
        })
    }

    /// A certificate for `cn` valid for 127.0.0.1 and localhost (servers and clients alike).
    pub fn issue(&self, cn: &str) -> Result<Issued> {
        let key = rcgen::KeyPair::generate()?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let issued = Issued {
            cert: self.dir.path().join(format!("{cn}.pem")),
            key: self.dir.path().join(format!("{cn}-key.pem")),
        };
        std::fs::write(&issued.cert, cert.pem())?;
        std::fs::write(&issued.key, key.serialize_pem())?;
        Ok(issued)
    }

    /// A client configuration that trusts this CA (and presents `identity`).
    pub fn client(&self, identity: Option<&Issued>) -> Result<Arc<rustls::ClientConfig>> {
        client_config(&self.ca, identity)
    }
}

/// A client configuration that trusts `ca` (and presents `identity`).
pub fn client_config(ca: &Path, identity: Option<&Issued>) -> Result<Arc<rustls::ClientConfig>> {
    Ok(strata_security::tls::client_config(
        ca,
        identity.map(|i| (i.cert.as_path(), i.key.as_path())),
    )?)
}

/// A blocking HTTP/1.0 request over TLS to `addr` (`127.0.0.1:port`); returns the status code
/// and the body.
pub fn https_request(
    tls: &Arc<rustls::ClientConfig>,
    addr: &str,
    method: &str,
    path: &str,
) -> Result<(u16, String)> {
    use std::io::{Read, Write};
    let name = strata_security::tls::server_name(addr).map_err(anyhow::Error::msg)?;
    let conn = rustls::ClientConnection::new(Arc::clone(tls), name)?;
    let tcp = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )
    .with_context(|| format!("TLS to {addr}"))?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // A server that closes without close_notify after a complete response.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(err) => return Err(err).with_context(|| format!("TLS to {addr}")),
    }
    let (code, _, body) = crate::parse_response(&raw);
    Ok((code, body))
}
