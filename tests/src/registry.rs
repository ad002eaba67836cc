//! A local image registry for tests: Debian's `docker-registry` (distribution 2.8) on a loopback
//! port with storage in a temp dir, anonymous, with basic auth (htpasswd), with token auth (a
//! small token server here issues ES256 JWTs the registry verifies against its certificate), or
//! over TLS. Started by the test, stopped (its process killed by pid and reaped) on drop.
//! [`ManifestServer`] serves fixed manifests that `docker-registry` refuses (over 4 MiB).

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// How clients authenticate.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    Anonymous,
    Basic { user: String, password: String },
    Token { user: String, password: String },
}

/// A running registry.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub addr: String,
    pub dir: tempfile::TempDir,
    /// The CA a client must trust when TLS is on.
    pub ca: Option<PathBuf>,
    _token: Option<TokenServer>,
}

/// Whether the registry binary is installed (tests that need it fail naming the package when
/// it is not).
pub fn require() -> Result<()> {
    if !Path::new(REGISTRY_BIN).exists() {
        bail!(
            "{REGISTRY_BIN} is missing: install Debian's docker-registry package (cargo xtask ci does)"
        );
    }
    Ok(())
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("run openssl (install the openssl package)")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Registry {
    pub fn start(auth: Auth) -> Result<Self> {
        Self::start_with(auth, false)
    }

    /// Starts a registry; `tls` serves HTTPS with a certificate for 127.0.0.1 signed by a CA in
    /// `ca`.
    pub fn start_with(auth: Auth, tls: bool) -> Result<Self> {
        require()?;
        let dir = tempfile::Builder::new()
            .prefix("strata-registry-")
            .tempdir()?;
        let port = crate::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: strata-test\n",
            dir.path().join("data").display()
        );
        let mut ca = None;
        if tls {
            let d = dir.path();
            openssl(
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=strata test CA",
                ],
                d,
            )?;
            openssl(
                &[
                    "req",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
                d,
            )?;
            std::fs::write(
                d.join("ext.cnf"),
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            )?;
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "server.pem",
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                ],
                d,
            )?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                d.join("server.pem").display(),
                d.join("server.key").display()
            ));
            ca = Some(d.join("ca.pem"));
        }
        let mut token = None;
        match &auth {
            Auth::Anonymous => {}
            Auth::Basic { user, password } => {
                let hash = bcrypt::hash(password, 5).context("bcrypt")?;
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: strata-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            Auth::Token { user, password } => {
                let server = TokenServer::start(dir.path(), user, password)?;
                config.push_str(&format!(
                    "auth:\n  token:\n    realm: http://{}/token\n    service: strata-test-registry\n    issuer: strata-test-issuer\n    rootcertbundle: {}\n",
                    server.addr,
                    server.cert.display()
                ));
                token = Some(server);
            }
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start docker-registry")?;
        let mut registry = Registry {
            child,
            addr,
            dir,
            ca,
            _token: token,
        };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "docker-registry exited ({status}) before serving: {}",
                    self.log()
                );
            }
            if TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not listen on {}: {}",
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The file holding blob `digest` in the registry's storage (to damage it in tests).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A token server in the Docker registry token protocol: `GET /token?service=…&scope=…` with
/// basic credentials answers `{"token": JWT}` (ES256, the signing certificate in `x5c`).
struct TokenServer {
    addr: String,
    cert: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, password: &str) -> Result<Self> {
        openssl(
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "token.key",
            ],
            dir,
        )?;
        openssl(
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                "token.key",
                "-outform",
                "DER",
                "-out",
                "token.p8",
            ],
            dir,
        )?;
        openssl(
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "token.key",
                "-out",
                "token.pem",
                "-days",
                "2",
                "-subj",
                "/CN=strata token issuer",
            ],
            dir,
        )?;
        openssl(
            &[
                "x509",
                "-in",
                "token.pem",
                "-outform",
                "DER",
                "-out",
                "token.der",
            ],
            dir,
        )?;
        let pkcs8 = std::fs::read(dir.join("token.p8"))?;
        let cert_der = std::fs::read(dir.join("token.der"))?;
        let rng = ring::rand::SystemRandom::new();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &rng,
        )
        .map_err(|e| anyhow::anyhow!("token key: {e}"))?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        );
        let x5c = base64::engine::general_purpose::STANDARD.encode(&cert_der);
        let stop_thread = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop_thread.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_token(stream, &expected, &x5c, &key, &rng);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            addr,
            cert: dir.join("token.pem"),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn serve_token(
    stream: TcpStream,
    expected: &str,
    x5c: &str,
    key: &ring::signature::EcdsaKeyPair,
    rng: &ring::rand::SystemRandom,
) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut authorization = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("authorization") {
                authorization = value.trim().to_string();
            }
        }
    }
    let target = request.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut scope = String::new();
    let mut service = String::new();
    for pair in query.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            let v = v
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%2C", ",");
            match k {
                "scope" => scope = v,
                "service" => service = v,
                _ => {}
            }
        }
    }
    let mut stream = stream;
    if authorization != expected {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}"#;
        write!(
            stream,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        return Ok(());
    }
    let access: Vec<serde_json::Value> = scope
        .split(' ')
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "strata-test-issuer", "sub": "tester", "aud": service,
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": uuid::Uuid::new_v4().to_string(),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url(&serde_json::to_vec(&header)?),
        b64url(&serde_json::to_vec(&claims)?)
    );
    let signature = key
        .sign(rng, signing_input.as_bytes())
        .map_err(|e| anyhow::anyhow!("sign: {e}"))?;
    let token = format!("{signing_input}.{}", b64url(signature.as_ref()));
    let body = serde_json::to_string(
        &serde_json::json!({"token": token, "access_token": token, "expires_in": 300}),
    )?;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let _ = reader.read(&mut [0u8; 0]);
    Ok(())
}

/// A Docker `config.json` with credentials for `registry`.
pub fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> Result<PathBuf> {
    let path = dir.join("docker-config.json");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({"auths": {registry: {"auth": auth}}}))?,
    )?;
    Ok(path)
}

/// A registry that serves fixed manifests and nothing else (`GET /v2/`, `GET` and `HEAD
/// /v2/<repo>/manifests/<reference>`), for what `docker-registry` will neither store nor serve:
/// it refuses a manifest PUT over 4 MiB ("http: request body too large") and reads at most
/// 4 MiB of a stored one ("storage: read exceeds limit").
pub struct ManifestServer {
    /// `127.0.0.1:<port>`
    pub addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ManifestServer {
    /// Serves each `(repo, reference, body)`: under its reference (a tag) and its digest, with
    /// the body's `mediaType` as its Content-Type and its digest as `Docker-Content-Digest`.
    pub fn start(manifests: Vec<(String, String, Vec<u8>)>) -> Result<Self> {
        let mut routes = std::collections::HashMap::new();
        for (repo, reference, body) in manifests {
            let digest = crate::images::digest(&body);
            let media_type = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".to_string());
            let entry = Arc::new((media_type, digest.clone(), body));
            routes.insert(format!("/v2/{repo}/manifests/{reference}"), entry.clone());
            routes.insert(format!("/v2/{repo}/manifests/{digest}"), entry);
        }
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop_thread.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve_manifest(stream, &routes);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ManifestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Routes = std::collections::HashMap<String, Arc<(String, String, Vec<u8>)>>;

fn serve_manifest(stream: TcpStream, routes: &Routes) -> Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let mut stream = stream;
    let (status, headers, body): (&str, String, &[u8]) = match routes.get(path) {
        _ if path == "/v2/" || path == "/v2" => ("200 OK", String::new(), b"{}"),
        Some(entry) => {
            let (media_type, digest, body) = &**entry;
            (
                "200 OK",
                format!("Content-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\n"),
                body,
            )
        }
        None => (
            "404 Not Found",
            "Content-Type: application/json\r\n".to_string(),
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(body)?;
    }
    stream.flush()?;
    Ok(())
}
