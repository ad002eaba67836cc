//! Test images, built here from Debian's busybox-static (no public registry is reachable): a
//! busybox root filesystem as a layer, a second layer with whiteouts and an opaque directory,
//! hostile layers, written as an OCI image layout, an `oci-archive`, a `docker save` tarball,
//! or pushed to a registry.

use anyhow::{bail, Context, Result};
use sha2::{Digest as _, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Where Debian's busybox-static puts its binary.
pub fn busybox_binary() -> Result<PathBuf> {
    for path in ["/bin/busybox", "/usr/bin/busybox"] {
        let p = Path::new(path);
        if p.exists() {
            let data = std::fs::read(p)?;
            if is_static_elf(&data) {
                return Ok(p.to_path_buf());
            }
        }
    }
    bail!("a static busybox is needed to build test images: install busybox-static")
}

/// Whether `data` is an ELF64 executable without a program interpreter (PT_INTERP).
fn is_static_elf(data: &[u8]) -> bool {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if !data.starts_with(b"\x7fELF") {
        return false;
    }
    let (Some(phoff), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..count as usize).all(|i| {
        let at = phoff as usize + i * size as usize;
        data.get(at..at + 4) != Some(&3u32.to_le_bytes()[..])
    })
}

/// A tar stream built entry by entry, hostile entries included (which `tar::Builder` refuses).
#[derive(Default)]
pub struct TarBuilder(Vec<u8>);

impl TarBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn raw(
        mut self,
        kind: tar::EntryType,
        path: &str,
        link: &str,
        mode: u32,
        data: &[u8],
    ) -> Self {
        let mut h = tar::Header::new_gnu();
        {
            let bytes = h.as_old_mut();
            let n = path.len().min(99);
            bytes.name[..n].copy_from_slice(&path.as_bytes()[..n]);
            let l = link.len().min(99);
            bytes.linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
            let _ = h.set_device_major(1);
            let _ = h.set_device_minor(1);
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    pub fn dir(self, path: &str) -> Self {
        self.raw(tar::EntryType::Directory, path, "", 0o755, b"")
    }

    pub fn file(self, path: &str, data: &[u8]) -> Self {
        self.raw(tar::EntryType::Regular, path, "", 0o644, data)
    }

    pub fn exec(self, path: &str, data: &[u8]) -> Self {
        self.raw(tar::EntryType::Regular, path, "", 0o755, data)
    }

    pub fn symlink(self, path: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Symlink, path, target, 0o777, b"")
    }

    pub fn hardlink(self, path: &str, target: &str) -> Self {
        self.raw(tar::EntryType::Link, path, target, 0o644, b"")
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.0.extend(std::iter::repeat_n(0u8, 1024));
        self.0
    }
}

/// A layer: its uncompressed tar and whether it is stored gzip-compressed.
#[derive(Clone)]
pub struct Layer {
    pub tar: Vec<u8>,
    pub gzip: bool,
}

impl Layer {
    pub fn plain(tar: Vec<u8>) -> Self {
        Self { tar, gzip: false }
    }

    pub fn gzip(tar: Vec<u8>) -> Self {
        Self { tar, gzip: true }
    }

    /// The blob as stored (compressed or not).
    pub fn blob(&self) -> Vec<u8> {
        if !self.gzip {
            return self.tar.clone();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(&self.tar);
        gz.finish().unwrap_or_default()
    }

    pub fn media_type(&self) -> &'static str {
        if self.gzip {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        } else {
            "application/vnd.oci.image.layer.v1.tar"
        }
    }
}

/// The busybox applets the tests use, as symlinks in /bin.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ls", "test", "[", "true", "false", "sleep", "id", "touch", "mkdir", "rm",
    "env", "pwd", "whoami", "hostname", "stat", "head", "dd", "wc", "grep", "mount", "ps",
];

/// A busybox root filesystem: /bin/busybox and applet links, /etc/passwd and /etc/group (root
/// and `app`, uid 1000), /tmp, /data/{a,b}, /opq/x (for the whiteout layer), /var/empty.
pub fn busybox_layer() -> Result<Layer> {
    let busybox = std::fs::read(busybox_binary()?)?;
    let mut t = TarBuilder::new().dir("bin").exec("bin/busybox", &busybox);
    for applet in APPLETS {
        t = t.symlink(&format!("bin/{applet}"), "busybox");
    }
    let t = t
        .dir("etc")
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .file("etc/group", b"root:x:0:\napp:x:1000:\nstaff:x:50:app\n")
        .raw(tar::EntryType::Directory, "tmp", "", 0o1777, b"")
        .dir("data")
        .file("data/a", b"a from layer 1\n")
        .file("data/b", b"b from layer 1\n")
        .dir("opq")
        .file("opq/x", b"x from layer 1\n")
        .dir("home")
        .raw(tar::EntryType::Directory, "home/app", "", 0o755, b"")
        .dir("var")
        .dir("var/empty");
    Ok(Layer::gzip(t.finish()))
}

/// A second layer: removes /data/a (whiteout), makes /opq opaque (hiding /opq/x) with a new
/// /opq/y, and adds /etc/motd.
pub fn whiteout_layer() -> Layer {
    Layer::gzip(
        TarBuilder::new()
            .dir("data")
            .file("data/.wh.a", b"")
            .dir("opq")
            .file("opq/.wh..wh..opq", b"")
            .file("opq/y", b"y from layer 2\n")
            .dir("etc")
            .file("etc/motd", b"two layers\n")
            .finish(),
    )
}

/// What an image's config says.
#[derive(Clone)]
pub struct ImageSpec {
    pub layers: Vec<Layer>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub architecture: String,
}

impl ImageSpec {
    pub fn new(layers: Vec<Layer>) -> Self {
        Self {
            layers,
            entrypoint: Vec::new(),
            cmd: vec!["/bin/sh".into()],
            env: vec!["PATH=/bin".into(), "IMAGE_VAR=from-image".into()],
            working_dir: None,
            user: None,
            architecture: "amd64".into(),
        }
    }
}

/// An image's blobs, digests and manifest.
#[derive(Clone)]
pub struct BuiltImage {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
    /// (digest, blob, media type, diff_id)
    pub layers: Vec<(String, Vec<u8>, String, String)>,
    pub architecture: String,
}

impl BuiltImage {
    pub fn config_digest(&self) -> String {
        digest(&self.config)
    }
    pub fn manifest_digest(&self) -> String {
        digest(&self.manifest)
    }
    /// Every blob: (digest, data).
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = vec![(self.config_digest(), self.config.clone())];
        out.push((self.manifest_digest(), self.manifest.clone()));
        out.extend(
            self.layers
                .iter()
                .map(|(d, b, _, _)| (d.clone(), b.clone())),
        );
        out
    }
}

pub fn build(spec: &ImageSpec) -> BuiltImage {
    let layers: Vec<(String, Vec<u8>, String, String)> = spec
        .layers
        .iter()
        .map(|l| {
            let blob = l.blob();
            (
                digest(&blob),
                blob,
                l.media_type().to_string(),
                digest(&l.tar),
            )
        })
        .collect();
    let mut exec = serde_json::json!({"Env": spec.env, "Cmd": spec.cmd});
    if !spec.entrypoint.is_empty() {
        exec["Entrypoint"] = serde_json::json!(spec.entrypoint);
    }
    if let Some(w) = &spec.working_dir {
        exec["WorkingDir"] = serde_json::json!(w);
    }
    if let Some(u) = &spec.user {
        exec["User"] = serde_json::json!(u);
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": spec.architecture,
        "os": "linux",
        "config": exec,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.3.clone()).collect::<Vec<_>>()},
    }))
    .unwrap_or_default();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": layers.iter().map(|(d, b, m, _)| serde_json::json!({"mediaType": m, "digest": d, "size": b.len()})).collect::<Vec<_>>(),
    }))
    .unwrap_or_default();
    BuiltImage {
        config,
        manifest,
        layers,
        architecture: spec.architecture.clone(),
    }
}

/// Writes an OCI image layout of `image` (tagged `tag`) to `dir`.
pub fn write_layout(dir: &Path, image: &BuiltImage, tag: &str) -> Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for (d, data) in image.blobs() {
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), data)?;
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest_digest(),
            "size": image.manifest.len(),
            "platform": {"architecture": image.architecture, "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

/// The tree under `dir` (directories, regular files, symlinks) as tar entries with relative
/// paths, parents first; more entries (hostile ones) can follow before `finish`.
pub fn tar_tree(dir: &Path) -> Result<TarBuilder> {
    fn walk(base: &Path, rel: &Path, mut t: TarBuilder) -> Result<TarBuilder> {
        let mut children: Vec<_> = std::fs::read_dir(base.join(rel))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        children.sort();
        for child in children {
            let rel = rel.join(child);
            let name = rel.to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(base.join(&rel))?;
            if meta.is_dir() {
                t = walk(base, &rel, t.dir(&name))?;
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(base.join(&rel))?;
                t = t.symlink(&name, &target.to_string_lossy());
            } else {
                t = t.file(&name, &std::fs::read(base.join(&rel))?);
            }
        }
        Ok(t)
    }
    walk(dir, Path::new(""), TarBuilder::new())
}

/// Tars the directory `dir` (regular files and directories) into `out`.
pub fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    let file = std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?;
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir)?;
    builder.into_inner()?.sync_all()?;
    Ok(())
}

/// Writes an `oci-archive` (a tar of an OCI layout) of `image` to `out`.
pub fn write_oci_archive(out: &Path, image: &BuiltImage, tag: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_layout(dir.path(), image, tag)?;
    tar_dir(dir.path(), out)
}

/// Writes a `docker save` tarball of `image` (uncompressed layers, as docker writes them).
pub fn write_docker_archive(out: &Path, spec: &ImageSpec, repo_tag: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    write_docker_dir(dir.path(), spec, repo_tag)?;
    tar_dir(dir.path(), out)
}

/// Writes what a `docker save` tarball holds (`manifest.json`, the config, `layer<i>/layer.tar`)
/// into the directory `dir` (created).
pub fn write_docker_dir(dir: &Path, spec: &ImageSpec, repo_tag: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut plain = spec.clone();
    for l in &mut plain.layers {
        l.gzip = false;
    }
    let image = build(&plain);
    let config_name = format!(
        "{}.json",
        image.config_digest().trim_start_matches("sha256:")
    );
    std::fs::write(dir.join(&config_name), &image.config)?;
    let mut layer_names = Vec::new();
    for (i, (_, blob, _, _)) in image.layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        std::fs::create_dir_all(dir.join(format!("layer{i}")))?;
        std::fs::write(dir.join(&name), blob)?;
        layer_names.push(name);
    }
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [repo_tag],
        "Layers": layer_names,
    }]);
    std::fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    Ok(())
}

/// A registry client for pushing test images (anonymous, or basic credentials).
pub fn push_client() -> oci_client::Client {
    strata_images::install_tls_provider();
    oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    })
}

pub fn auth(credentials: Option<(&str, &str)>) -> oci_client::secrets::RegistryAuth {
    match credentials {
        Some((u, p)) => oci_client::secrets::RegistryAuth::Basic(u.into(), p.into()),
        None => oci_client::secrets::RegistryAuth::Anonymous,
    }
}

/// Pushes `image` to `registry` (`host:port`) as `repo:tag`.
pub async fn push(
    registry: &str,
    repo: &str,
    tag: &str,
    image: &BuiltImage,
    credentials: Option<(&str, &str)>,
) -> Result<()> {
    let client = push_client();
    let reference: oci_client::Reference = format!("{registry}/{repo}:{tag}").parse()?;
    client
        .auth(
            &reference,
            &auth(credentials),
            oci_client::RegistryOperation::Push,
        )
        .await
        .context("authenticate for push")?;
    push_blobs(&client, &reference, image).await?;
    push_manifest(
        &client,
        &reference,
        image.manifest.clone(),
        "application/vnd.oci.image.manifest.v1+json",
    )
    .await
}

/// Pushes `image`'s config and layers to the repository of `reference`.
async fn push_blobs(
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    image: &BuiltImage,
) -> Result<()> {
    for (d, data) in image.blobs() {
        if d == image.manifest_digest() {
            continue;
        }
        client
            .push_blob(reference, data, &d)
            .await
            .with_context(|| format!("push blob {d}"))?;
    }
    Ok(())
}

/// Pushes a multi-platform image to `registry` as `repo:tag`: each of `images` (blobs, then its
/// manifest by digest), then an index of them (in this order, each entry with its image's
/// architecture). Returns the index.
pub async fn push_index(
    registry: &str,
    repo: &str,
    tag: &str,
    images: &[&BuiltImage],
    credentials: Option<(&str, &str)>,
) -> Result<Vec<u8>> {
    let client = push_client();
    let tagged: oci_client::Reference = format!("{registry}/{repo}:{tag}").parse()?;
    client
        .auth(
            &tagged,
            &auth(credentials),
            oci_client::RegistryOperation::Push,
        )
        .await
        .context("authenticate for push")?;
    for image in images {
        let by_digest: oci_client::Reference =
            format!("{registry}/{repo}@{}", image.manifest_digest()).parse()?;
        push_blobs(&client, &by_digest, image).await?;
        push_manifest(
            &client,
            &by_digest,
            image.manifest.clone(),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await
        .with_context(|| format!("push the {} manifest", image.architecture))?;
    }
    let index = index_of(images);
    push_manifest(
        &client,
        &tagged,
        index.clone(),
        "application/vnd.oci.image.index.v1+json",
    )
    .await
    .context("push the index")?;
    Ok(index)
}

/// Pushes raw manifest bytes (an image manifest or an index) under `reference`.
pub async fn push_manifest(
    client: &oci_client::Client,
    reference: &oci_client::Reference,
    body: Vec<u8>,
    media_type: &str,
) -> Result<()> {
    client
        .push_manifest_raw(
            reference,
            body,
            reqwest::header::HeaderValue::from_str(media_type)?,
        )
        .await
        .context("push manifest")?;
    Ok(())
}

/// An index naming `image`'s manifest as being for `architecture`.
pub fn index_for(image: &BuiltImage, architecture: &str) -> Vec<u8> {
    index_entries(&[(image, architecture)])
}

/// An index of `images`, each entry for its image's architecture (a multi-platform image).
pub fn index_of(images: &[&BuiltImage]) -> Vec<u8> {
    let entries: Vec<(&BuiltImage, &str)> = images
        .iter()
        .map(|i| (*i, i.architecture.as_str()))
        .collect();
    index_entries(&entries)
}

fn index_entries(entries: &[(&BuiltImage, &str)]) -> Vec<u8> {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(image, architecture)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": image.manifest_digest(),
                "size": image.manifest.len(),
                "platform": {"architecture": architecture, "os": "linux"},
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap_or_default()
}

/// An HTTP/1.0 request with a body (for the agent's POST endpoints); returns status and body.
pub fn http_request_body(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let (code, _, body) = crate::parse_response(&raw);
    Ok((code, body))
}
