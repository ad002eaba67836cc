//! A small cluster certificate authority, for installs that have none of their own
//! (`strata certs ca`, `strata certs node`).
//!
//! The CA is self-signed and may sign only end-entity certificates (path length 0). A node
//! certificate serves both ends of mutual TLS: a master or an agent presents it as a server (its
//! HTTP port, the master's RPC port) and an agent as a client to the master, so it carries both
//! `serverAuth` and `clientAuth`. Its subject CN is the node's name — the principal the master
//! sees for an agent — and its subject alternative names are that name and any extra DNS names
//! or IP addresses given. Keys are ECDSA P-256.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What a node certificate is for.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The subject CN and first subject alternative name: the node's host name (or address).
    pub name: String,
    /// More subject alternative names: DNS names or IP addresses.
    pub alt_names: Vec<String>,
    /// Validity from now, in days.
    pub days: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("invalid name {name:?}: {reason}")]
    Name { name: String, reason: String },
    #[error("validity must be between 1 and {max} days, not {days}")]
    Days { days: u32, max: u32 },
    #[error("the CA certificate cannot be read: {0}")]
    CaCert(String),
    #[error("the CA key cannot be read: {0}")]
    CaKey(String),
    #[error("the CA key does not belong to the CA certificate")]
    CaMismatch,
    #[error("cannot make the certificate: {0}")]
    Generate(String),
}

/// Longest validity accepted: 30 years.
pub const MAX_DAYS: u32 = 30 * 366;

/// A new self-signed cluster CA named `name`, valid for `days`.
pub fn create_ca(name: &str, days: u32) -> Result<CertifiedKey, CertError> {
    check_days(days)?;
    let name = check_name(name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, days)?;
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.self_signed(&key).map_err(generate)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A node certificate for `node`, signed by `ca`.
pub fn issue(ca: &CertifiedKey, node: &NodeSpec) -> Result<CertifiedKey, CertError> {
    check_days(node.days)?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::CaKey(e.to_string()))?;
    let ca_der = pem_der(&ca.cert_pem)?;
    let (_, ca_x509) = x509_parser::parse_x509_certificate(&ca_der)
        .map_err(|e| CertError::CaCert(e.to_string()))?;
    if ca_x509.public_key().subject_public_key.data.as_ref() != ca_key.der_bytes() {
        return Err(CertError::CaMismatch);
    }
    let issuer = Issuer::from_ca_cert_der(&ca_der.as_slice().into(), ca_key)
        .map_err(|e| CertError::CaCert(e.to_string()))?;

    let name = check_name(&node.name)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(name);
    let mut sans = vec![san(name)?];
    for alt in &node.alt_names {
        let alt = san(check_name(alt)?)?;
        if !sans.contains(&alt) {
            sans.push(alt);
        }
    }
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, node.days)?;
    let key = KeyPair::generate().map_err(generate)?;
    let cert = params.signed_by(&key, &issuer).map_err(generate)?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn generate(err: rcgen::Error) -> CertError {
    CertError::Generate(err.to_string())
}

fn check_days(days: u32) -> Result<(), CertError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CertError::Days {
            days,
            max: MAX_DAYS,
        });
    }
    Ok(())
}

/// A name is a host name, an IP address or (for a CA) words: printable ASCII, no control
/// characters, at most 64 bytes (X.520's bound on a common name).
fn check_name(name: &str) -> Result<&str, CertError> {
    let bad = |reason: &str| CertError::Name {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.len() > 64 {
        return Err(bad("longer than 64 bytes"));
    }
    if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad("only printable ASCII is allowed"));
    }
    Ok(name)
}

fn san(name: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) || (name.starts_with("*.") && name.len() > 2);
    if !valid {
        return Err(CertError::Name {
            name: name.to_string(),
            reason: "not a DNS name or an IP address".to_string(),
        });
    }
    name.to_string()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|e: rcgen::Error| CertError::Name {
            name: name.to_string(),
            reason: e.to_string(),
        })
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// From an hour ago (clocks differ a little between nodes) for `days`, with a random serial.
fn set_validity(params: &mut CertificateParams, days: u32) -> Result<(), CertError> {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(i64::from(days));
    let mut serial = [0u8; 16];
    SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| CertError::Generate("no randomness for the serial number".to_string()))?;
    serial[0] &= 0x7f; // a positive INTEGER
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(())
}

fn pem_der(pem: &str) -> Result<Vec<u8>, CertError> {
    let parsed = ::pem::parse(pem).map_err(|e| CertError::CaCert(e.to_string()))?;
    if parsed.tag() != "CERTIFICATE" {
        return Err(CertError::CaCert(format!(
            "expected a CERTIFICATE, found {}",
            parsed.tag()
        )));
    }
    Ok(parsed.into_contents())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::sync::Arc;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from(pem_der(pem).unwrap())
    }

    fn key(pem: &str) -> PrivateKeyDer<'static> {
        let parsed = ::pem::parse(pem).unwrap();
        PrivateKeyDer::try_from(parsed.into_contents()).unwrap()
    }

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// A full mutual-TLS handshake in memory: `server` presents its certificate for
    /// `server_name`, `client` its own; both are checked against `ca`.
    fn handshake(
        ca: &CertifiedKey,
        server: &CertifiedKey,
        client: &CertifiedKey,
        server_name: &str,
    ) -> Result<(), rustls::Error> {
        let mut roots = RootCertStore::empty();
        roots.add(der(&ca.cert_pem)).unwrap();
        let roots = Arc::new(roots);
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .unwrap();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![der(&server.cert_pem)], key(&server.key_pem))?;
        let client_config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![der(&client.cert_pem)], key(&client.key_pem))?;
        let name = ServerName::try_from(server_name.to_string()).unwrap();
        let mut c = ClientConnection::new(Arc::new(client_config), name)?;
        let mut s = ServerConnection::new(Arc::new(server_config))?;
        for _ in 0..10 {
            let mut buf = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                s.read_tls(&mut buf.as_slice()).unwrap();
                s.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut buf).unwrap();
            }
            if !buf.is_empty() {
                c.read_tls(&mut buf.as_slice()).unwrap();
                c.process_new_packets()?;
            }
            if !c.is_handshaking() && !s.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake did not finish");
    }

    fn node(ca: &CertifiedKey, name: &str, alt: &[&str]) -> CertifiedKey {
        issue(
            ca,
            &NodeSpec {
                name: name.to_string(),
                alt_names: alt.iter().map(|s| s.to_string()).collect(),
                days: 30,
            },
        )
        .unwrap()
    }

    #[test]
    fn node_certificates_serve_both_ends_of_mutual_tls() {
        let ca = create_ca("Strata test CA", 365).unwrap();
        let master = node(&ca, "master1.example.com", &["127.0.0.1", "master1"]);
        let agent = node(&ca, "agent7", &[]);
        handshake(&ca, &master, &agent, "master1.example.com").unwrap();
        handshake(&ca, &master, &agent, "127.0.0.1").unwrap();
        handshake(&ca, &master, &agent, "master1").unwrap();
        // The agent's certificate serves its own HTTP port under its name.
        handshake(&ca, &agent, &master, "agent7").unwrap();
    }

    #[test]
    fn a_name_not_in_the_certificate_or_another_ca_is_refused() {
        let ca = create_ca("Strata test CA", 365).unwrap();
        let master = node(&ca, "master1", &[]);
        let agent = node(&ca, "agent7", &[]);
        assert!(handshake(&ca, &master, &agent, "master2").is_err());

        let other = create_ca("Someone else's CA", 365).unwrap();
        let stranger = node(&other, "agent7", &[]);
        assert!(handshake(&ca, &master, &stranger, "master1").is_err());
    }

    #[test]
    fn subject_and_extensions_are_what_the_cluster_reads() {
        let ca = create_ca("Strata test CA", 365).unwrap();
        let agent = node(&ca, "agent7", &["10.0.0.7", "agent7.example.com"]);
        let der = pem_der(&agent.cert_pem).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let cn: Vec<_> = cert.subject().iter_common_name().collect();
        assert_eq!(cn.len(), 1);
        assert_eq!(cn[0].as_str().unwrap(), "agent7");
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        let sans = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(sans.general_names.len(), 3);
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 30); // 30 days and the hour of slack before now

        let ca_der = pem_der(&ca.cert_pem).unwrap();
        let (_, ca_cert) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(ca_cert.is_ca());
        let constraints = ca_cert.basic_constraints().unwrap().unwrap().value;
        assert_eq!(constraints.path_len_constraint, Some(0));
    }

    #[test]
    fn bad_input_is_named() {
        let ca = create_ca("Strata test CA", 365).unwrap();
        let spec = |name: &str, days| NodeSpec {
            name: name.to_string(),
            alt_names: vec![],
            days,
        };
        let err = issue(&ca, &spec("bad name!", 30)).unwrap_err().to_string();
        assert!(err.contains("bad name!"), "{err}");
        let err = issue(&ca, &spec("ok", 0)).unwrap_err().to_string();
        assert!(err.contains("between 1 and"), "{err}");
        assert!(create_ca("", 10).is_err());

        let other = create_ca("Other", 365).unwrap();
        let mixed = CertifiedKey {
            cert_pem: ca.cert_pem.clone(),
            key_pem: other.key_pem.clone(),
        };
        assert!(matches!(
            issue(&mixed, &spec("n", 1)),
            Err(CertError::CaMismatch)
        ));
        let garbage = CertifiedKey {
            cert_pem: "not a pem".to_string(),
            key_pem: ca.key_pem.clone(),
        };
        assert!(matches!(
            issue(&garbage, &spec("n", 1)),
            Err(CertError::CaCert(_))
        ));
    }
}
