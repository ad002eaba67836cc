//! The image store under the agent's work dir:
//!
//! ```text
//! <work_dir>/images/
//!   blobs/sha256/<hex>     manifests and image configs, named by their digest (verified)
//!   layers/<hex>/          an unpacked layer (an overlayfs lower dir), named by the digest of the
//!                          layer blob as the manifest lists it (a docker archive's: its diff_id)
//!   layers/<hex>.json      what unpacking it found (diff_id, sizes)
//!   images/<hex>.json      an image (ImageRecord), named by its config digest (Docker's image id)
//!   names/<hex>.json       an image name (sha256 of the name) -> the image it resolved to
//!   tmp/                   downloads and unpacks in progress; emptied when the store opens
//! ```
//!
//! Invariants: a file or directory outside `tmp/` is complete and verified — everything is made
//! in `tmp/` and renamed into place (a layer only after its digest and diff_id matched); a
//! layer is unpacked once however many images and containers share it, and a name is pulled once
//! however many launches ask for it at the same time (per-key locks); a container that uses an
//! image says so in `<its checkpoint dir>/image.json`, written while the store's prune lock is
//! held for reading, so `prune` (which holds it for writing) never removes what a container uses.
//! Nothing here mounts: containers' root filesystems are overlay mounts made by their
//! supervisors (see [`crate::overlay`]).

use crate::digest::{Digest, HashingReader};
use crate::manifest::{self, Descriptor, ImageConfig, Manifest, MAX_CONFIG_BYTES};
use crate::registry::{Registry, RegistryConfig};
use crate::unpack;
use crate::{ImageError, Source};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;
use tracing::{debug, info, warn};

/// The file a container's checkpoint dir holds when it runs an image.
pub const CONTAINER_IMAGE_FILE: &str = "image.json";
/// The largest layer blob accepted (its descriptor's size).
pub const MAX_LAYER_BYTES: u64 = 64 << 30;

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerRef {
    /// Its name in the store (`layers/<hex>`).
    pub digest: Digest,
    pub diff_id: Digest,
    /// The blob's size (compressed, as transferred).
    pub size: u64,
}

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config's digest (Docker's image id).
    pub id: Digest,
    /// The names it was provided under.
    pub names: BTreeSet<String>,
    /// The image manifest's digest (none for a docker archive).
    pub manifest: Option<Digest>,
    pub config: ImageConfig,
    /// Bottom first.
    pub layers: Vec<LayerRef>,
    /// When it entered the store (seconds since the epoch).
    pub stored_at: f64,
}

impl ImageRecord {
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// What a container's checkpoint dir records about its image (`image.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUse {
    pub name: String,
    pub id: Digest,
    pub layers: Vec<Digest>,
}

/// An image ready for a container.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub record: ImageRecord,
    /// The layers' directories, bottom first.
    pub layer_dirs: Vec<PathBuf>,
    /// Whether this call pulled or unpacked anything (false: all was in the store).
    pub fetched: bool,
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub removed_images: Vec<String>,
    pub removed_layers: usize,
    pub freed_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NameEntry {
    name: String,
    image: Digest,
    /// For archives: their size and mtime when read, so a changed file is read again.
    #[serde(default)]
    stamp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerInfo {
    diff_id: Digest,
    size: u64,
    unpacked_bytes: u64,
}

/// The agent's image store.
pub struct Store {
    root: PathBuf,
    /// Where containers' checkpoint dirs are (`<dir>/<container>/image.json`).
    containers_dir: PathBuf,
    registry_config: RegistryConfig,
    registry: OnceLock<Result<Registry, String>>,
    runtime: tokio::runtime::Handle,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Read: a provision in progress; write: a prune.
    prune_lock: RwLock<()>,
    /// Registry pulls in progress (`GET /images/pulls`).
    pulls: crate::progress::Pulls,
}

/// Seconds since the epoch.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Writes `value` to `path` atomically (temp file, rename), synced to disk first.
fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ImageError> {
    write_json_with(path, value, true)
}

/// [`write_json`], synced or not: a record that only matters while a container runs (a use
/// record) needs no fsync, since no container survives a machine crash, and an agent crash
/// leaves the page cache intact.
fn write_json_with(path: &Path, value: &impl Serialize, sync: bool) -> Result<(), ImageError> {
    let data = serde_json::to_vec_pretty(value).unwrap_or_default();
    let tmp = path.with_extension(format!("tmp.{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&data)?;
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(ImageError::io(path))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let data = fs::read(path).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Reads at most `limit` bytes of `path`; more is an error naming `what`.
fn read_limited(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>, ImageError> {
    let file = File::open(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => {
            ImageError::NotFound(format!("the {what} {} does not exist", path.display()))
        }
        _ => ImageError::Io {
            path: path.to_path_buf(),
            source,
        },
    })?;
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(ImageError::io(path))?;
    if data.len() as u64 > limit {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(limit + 1);
        return Err(ImageError::Oversized {
            what: format!("the {what} {}", path.display()),
            size,
            limit,
        });
    }
    Ok(data)
}

/// Refuses to read a member of an unpacked archive or layout through a symlink.
fn no_symlink(base: &Path, rel: &str, what: &str) -> Result<PathBuf, ImageError> {
    let mut path = base.to_path_buf();
    for part in Path::new(rel).components() {
        match part {
            std::path::Component::Normal(p) => path.push(p),
            std::path::Component::CurDir => {}
            _ => {
                return Err(ImageError::Invalid(format!(
                    "the {what} path {rel:?} leaves the image"
                )))
            }
        }
        if fs::symlink_metadata(&path)
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
        {
            return Err(ImageError::Invalid(format!(
                "the {what} path {rel:?} goes through a symlink"
            )));
        }
    }
    Ok(path)
}

/// Where layer blobs come from while provisioning.
enum BlobSource<'a> {
    Registry {
        registry: &'a Registry,
        reference: &'a oci_client::Reference,
        /// The pull's counters.
        progress: &'a crate::progress::PullState,
    },
    /// A directory holding `blobs/sha256/<hex>` (an OCI layout, maybe unpacked from an archive).
    Layout(&'a Path),
}

impl Store {
    /// Opens (creating) the store at `root`; empties `tmp/`. `runtime` runs registry pulls.
    pub fn open(
        root: impl Into<PathBuf>,
        containers_dir: impl Into<PathBuf>,
        registry_config: RegistryConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Self, ImageError> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers", "images", "names", "tmp"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(ImageError::io(&path))?;
        }
        let tmp = root.join("tmp");
        if let Ok(entries) = fs::read_dir(&tmp) {
            for entry in entries.flatten() {
                let path = entry.path();
                debug!(path = %path.display(), "removing an unfinished download or unpack");
                let _ = if path.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
            }
        }
        // Leftovers of interrupted writes of records.
        for dir in ["images", "names", "layers"] {
            if let Ok(entries) = fs::read_dir(root.join(dir)) {
                for entry in entries.flatten() {
                    if entry.file_name().to_string_lossy().contains(".tmp.") {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        Ok(Self {
            root,
            containers_dir: containers_dir.into(),
            registry_config,
            registry: OnceLock::new(),
            runtime,
            locks: Mutex::new(HashMap::new()),
            prune_lock: RwLock::new(()),
            pulls: crate::progress::Pulls::default(),
        })
    }

    /// The registry pulls in progress, and those finished in the last few seconds.
    pub fn pulls(&self) -> Vec<crate::progress::PullProgress> {
        self.pulls.snapshot()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of layer `digest`.
    pub fn layer_dir(&self, digest: &Digest) -> PathBuf {
        self.root.join("layers").join(digest.hex())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    fn image_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    fn name_path(&self, name: &str) -> PathBuf {
        self.root
            .join("names")
            .join(format!("{}.json", Digest::of(name.as_bytes()).hex()))
    }

    fn tmp_path(&self, what: &str) -> PathBuf {
        self.root
            .join("tmp")
            .join(format!("{what}-{}", uuid::Uuid::new_v4().simple()))
    }

    fn lock(&self, key: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(key.to_string()).or_default().clone()
    }

    fn registry(&self) -> Result<&Registry, ImageError> {
        self.registry
            .get_or_init(|| Registry::new(&self.registry_config))
            .as_ref()
            .map_err(|why| ImageError::Invalid(format!("the registry settings: {why}")))
    }

    /// Provides the image `name` for a container: from the store when it is there, else pulled
    /// or read and unpacked; then records the use in `use_file` (the container's `image.json`).
    /// Blocks: call it off async threads.
    pub fn provision(&self, name: &str, use_file: &Path) -> Result<Provisioned, ImageError> {
        let source = Source::parse(name)?;
        let _prune = self.prune_lock.read().unwrap_or_else(|e| e.into_inner());
        let name_lock = self.lock(&format!("name:{name}"));
        let provisioned = {
            let _guard = name_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.provision_locked(name, &source)?
        };
        let usage = ImageUse {
            name: name.to_string(),
            id: provisioned.record.id.clone(),
            layers: provisioned
                .record
                .layers
                .iter()
                .map(|l| l.digest.clone())
                .collect(),
        };
        // On the launch path: not synced (see `write_json_with`).
        write_json_with(use_file, &usage, false)?;
        Ok(provisioned)
    }

    /// The image a name resolved to before, if it and all its layers are still here.
    fn cached(&self, name: &str, stamp: Option<&str>) -> Option<Provisioned> {
        let entry: NameEntry = read_json(&self.name_path(name))?;
        if entry.name != name || entry.stamp.as_deref() != stamp {
            return None;
        }
        let record: ImageRecord = read_json(&self.image_path(&entry.image))?;
        let layer_dirs: Vec<PathBuf> = record
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.digest))
            .collect();
        if !layer_dirs.iter().all(|d| d.is_dir()) {
            return None;
        }
        Some(Provisioned {
            record,
            layer_dirs,
            fetched: false,
        })
    }

    fn provision_locked(&self, name: &str, source: &Source) -> Result<Provisioned, ImageError> {
        let stamp = match source {
            Source::OciArchive { path, .. } | Source::DockerArchive { path, .. } => {
                let meta = fs::metadata(path).map_err(|source| match source.kind() {
                    std::io::ErrorKind::NotFound => ImageError::NotFound(format!(
                        "the image archive {} does not exist",
                        path.display()
                    )),
                    _ => ImageError::Io {
                        path: path.clone(),
                        source,
                    },
                })?;
                use std::os::unix::fs::MetadataExt;
                Some(format!(
                    "{}:{}.{}",
                    meta.len(),
                    meta.mtime(),
                    meta.mtime_nsec()
                ))
            }
            _ => None,
        };
        // A tag of a registry or a local layout may move: a registry reference by tag is used
        // as stored (as `docker run` does); a layout is re-read (cheaply: its index) every time.
        if !matches!(source, Source::Layout { .. }) {
            if let Some(found) = self.cached(name, stamp.as_deref()) {
                return Ok(found);
            }
        }
        let started = Instant::now();
        let (record, fetched) = match source {
            Source::Registry(reference) => self.pull_registry(name, reference)?,
            Source::Layout { path, reference } => {
                self.read_layout(name, path, reference.as_deref())?
            }
            Source::OciArchive { path, reference } => {
                let stage = self.stage_archive(path)?;
                let result = self.read_layout(name, stage.path(), reference.as_deref());
                drop(stage);
                result?
            }
            Source::DockerArchive { path, reference } => {
                let stage = self.stage_archive(path)?;
                let result = self.read_docker_archive(name, stage.path(), reference.as_deref());
                drop(stage);
                result?
            }
        };
        write_json(
            &self.name_path(name),
            &NameEntry {
                name: name.to_string(),
                image: record.id.clone(),
                stamp,
            },
        )?;
        if fetched {
            info!(image = name, id = %record.id, layers = record.layers.len(), size = record.size(),
                elapsed_ms = started.elapsed().as_millis() as u64, "image stored");
        }
        let layer_dirs = record
            .layers
            .iter()
            .map(|l| self.layer_dir(&l.digest))
            .collect();
        Ok(Provisioned {
            record,
            layer_dirs,
            fetched,
        })
    }

    /// Saves the image record (merging names with an existing one).
    fn save_record(
        &self,
        name: &str,
        manifest: Option<Digest>,
        id: Digest,
        config: ImageConfig,
        layers: Vec<LayerRef>,
    ) -> Result<ImageRecord, ImageError> {
        let lock = self.lock(&format!("image:{}", id.hex()));
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.image_path(&id);
        let mut record = read_json::<ImageRecord>(&path).unwrap_or(ImageRecord {
            id,
            names: BTreeSet::new(),
            manifest,
            config,
            layers,
            stored_at: now(),
        });
        record.names.insert(name.to_string());
        write_json(&path, &record)?;
        Ok(record)
    }

    /// Stores a verified small blob (a manifest or config).
    fn store_blob(&self, digest: &Digest, data: &[u8]) -> Result<(), ImageError> {
        let path = self.blob_path(digest);
        if path.exists() {
            return Ok(());
        }
        let tmp = self.tmp_path("blob");
        fs::write(&tmp, data).map_err(ImageError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(ImageError::io(&path))
    }

    fn check_config(
        &self,
        descriptor: &Descriptor,
        data: &[u8],
        layers: usize,
    ) -> Result<(Digest, ImageConfig), ImageError> {
        let expected = descriptor.digest()?;
        let actual = Digest::of(data);
        if actual != expected {
            return Err(ImageError::DigestMismatch {
                what: "the image config".to_string(),
                expected,
                actual,
            });
        }
        if data.len() as u64 != descriptor.size.max(0) as u64 {
            return Err(ImageError::Truncated {
                what: format!("the image config {expected}"),
                got: data.len() as u64,
                expected: descriptor.size.max(0) as u64,
            });
        }
        let config = ImageConfig::parse(data)?;
        if config.diff_ids.len() != layers {
            return Err(ImageError::Invalid(format!(
                "the manifest lists {layers} layers but the config has {} diff_ids",
                config.diff_ids.len()
            )));
        }
        self.store_blob(&actual, data)?;
        Ok((actual, config))
    }

    fn pull_registry(
        &self,
        name: &str,
        reference: &oci_client::Reference,
    ) -> Result<(ImageRecord, bool), ImageError> {
        let registry = self.registry()?;
        let pull = self.pulls.start(name);
        let result = self.pull_registry_counted(name, reference, registry, &pull.state);
        if result.is_err() {
            pull.state
                .failed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        result
    }

    fn pull_registry_counted(
        &self,
        name: &str,
        reference: &oci_client::Reference,
        registry: &Registry,
        progress: &crate::progress::PullState,
    ) -> Result<(ImageRecord, bool), ImageError> {
        use std::sync::atomic::Ordering;
        let (manifest_digest, config_desc, layer_descs) =
            self.runtime.block_on(registry.manifest(reference))?;
        let sizes: u64 = std::iter::once(&config_desc)
            .chain(&layer_descs)
            .map(|d| u64::try_from(d.size).unwrap_or(0))
            .sum();
        progress.bytes_total.store(sizes, Ordering::Relaxed);
        progress
            .layers_total
            .store(layer_descs.len() as u64, Ordering::Relaxed);
        let config_tmp = self.tmp_path("config");
        let fetched = self.runtime.block_on(registry.blob(
            reference,
            &config_desc,
            MAX_CONFIG_BYTES,
            &config_tmp,
            "image config",
            Some(&progress.bytes_done),
        ));
        let data = fetched.and_then(|_| read_limited(&config_tmp, MAX_CONFIG_BYTES, "config"));
        let _ = fs::remove_file(&config_tmp);
        let (id, config) = self.check_config(&config_desc, &data?, layer_descs.len())?;
        let layers = self.layers(
            &BlobSource::Registry {
                registry,
                reference,
                progress,
            },
            &layer_descs,
            &config,
        )?;
        let record = self.save_record(name, Some(manifest_digest), id, config, layers)?;
        Ok((record, true))
    }

    fn read_layout(
        &self,
        name: &str,
        dir: &Path,
        reference: Option<&str>,
    ) -> Result<(ImageRecord, bool), ImageError> {
        if !dir.is_dir() {
            return Err(ImageError::NotFound(format!(
                "the OCI image layout {} does not exist",
                dir.display()
            )));
        }
        let layout = read_limited(&dir.join("oci-layout"), 4096, "OCI layout marker")?;
        let marker: serde_json::Value = serde_json::from_slice(&layout).map_err(|e| {
            ImageError::Invalid(format!("{}/oci-layout is not JSON: {e}", dir.display()))
        })?;
        if marker["imageLayoutVersion"].as_str().is_none() {
            return Err(ImageError::Invalid(format!(
                "{}/oci-layout has no imageLayoutVersion",
                dir.display()
            )));
        }
        let index_path = no_symlink(dir, "index.json", "index")?;
        let index = read_limited(&index_path, manifest::MAX_MANIFEST_BYTES, "index.json")?;
        let Manifest::Index(entries) = Manifest::parse(&index, "index.json")? else {
            return Err(ImageError::Invalid(
                "index.json is an image manifest, not an index".to_string(),
            ));
        };
        let mut entry = manifest::select(&entries, reference)?.clone();
        // Nested indexes (a multi-platform image in a layout): resolve to the image manifest.
        for _ in 0..4 {
            let data = self.layout_blob(dir, &entry, manifest::MAX_MANIFEST_BYTES, "manifest")?;
            match Manifest::parse(&data, "manifest")? {
                Manifest::Index(inner) => entry = manifest::select(&inner, None)?.clone(),
                Manifest::Image { config, layers } => {
                    let manifest_digest = entry.digest()?;
                    // A layout image already in the store is not read again.
                    let config_digest = config.digest()?;
                    if let Some(record) = read_json::<ImageRecord>(&self.image_path(&config_digest))
                    {
                        if record
                            .layers
                            .iter()
                            .all(|l| self.layer_dir(&l.digest).is_dir())
                        {
                            let record = self.save_record(
                                name,
                                Some(manifest_digest),
                                config_digest,
                                record.config.clone(),
                                record.layers.clone(),
                            )?;
                            return Ok((record, false));
                        }
                    }
                    self.store_blob(&manifest_digest, &data)?;
                    let config_data =
                        self.layout_blob(dir, &config, MAX_CONFIG_BYTES, "image config")?;
                    let (id, image_config) =
                        self.check_config(&config, &config_data, layers.len())?;
                    let layer_refs =
                        self.layers(&BlobSource::Layout(dir), &layers, &image_config)?;
                    let record = self.save_record(
                        name,
                        Some(manifest_digest),
                        id,
                        image_config,
                        layer_refs,
                    )?;
                    return Ok((record, true));
                }
            }
        }
        Err(ImageError::Invalid(
            "the layout's indexes nest too deeply".to_string(),
        ))
    }

    /// Reads a small blob of a layout, checking its size and digest.
    fn layout_blob(
        &self,
        dir: &Path,
        descriptor: &Descriptor,
        limit: u64,
        what: &str,
    ) -> Result<Vec<u8>, ImageError> {
        let digest = descriptor.digest()?;
        descriptor.checked_size(what, limit)?;
        let path = no_symlink(dir, &format!("blobs/sha256/{}", digest.hex()), what)?;
        let data = read_limited(&path, limit, what)?;
        let actual = Digest::of(&data);
        let expected_size = descriptor.size.max(0) as u64;
        if (data.len() as u64) < expected_size {
            return Err(ImageError::Truncated {
                what: format!("the {what} {digest}"),
                got: data.len() as u64,
                expected: expected_size,
            });
        }
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("the {what}"),
                expected: digest,
                actual,
            });
        }
        Ok(data)
    }

    /// Unpacks an archive into a staging dir in `tmp/` (removed when dropped).
    fn stage_archive(&self, path: &Path) -> Result<Staged, ImageError> {
        let file = File::open(path).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => ImageError::NotFound(format!(
                "the image archive {} does not exist",
                path.display()
            )),
            _ => ImageError::Io {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let stage = Staged(self.tmp_path("archive"));
        fs::create_dir(stage.path()).map_err(ImageError::io(stage.path()))?;
        unpack::unpack(file, stage.path(), None)
            .map_err(|err| ImageError::Invalid(format!("the archive {}: {err}", path.display())))?;
        Ok(stage)
    }

    fn read_docker_archive(
        &self,
        name: &str,
        dir: &Path,
        reference: Option<&str>,
    ) -> Result<(ImageRecord, bool), ImageError> {
        #[derive(Deserialize)]
        struct Entry {
            #[serde(rename = "Config")]
            config: String,
            #[serde(rename = "RepoTags", default)]
            repo_tags: Option<Vec<String>>,
            #[serde(rename = "Layers")]
            layers: Vec<String>,
        }
        let manifest_path = no_symlink(dir, "manifest.json", "manifest")?;
        let data = read_limited(
            &manifest_path,
            manifest::MAX_MANIFEST_BYTES,
            "manifest.json",
        )?;
        let entries: Vec<Entry> = serde_json::from_slice(&data).map_err(|e| {
            ImageError::Invalid(format!(
                "the docker archive's manifest.json is invalid: {e}"
            ))
        })?;
        let entry = match reference {
            Some(r) => entries
                .iter()
                .find(|e| e.repo_tags.iter().flatten().any(|t| t == r))
                .ok_or_else(|| {
                    ImageError::NotFound(format!("no image tagged {r:?} in the docker archive"))
                })?,
            None => match entries.as_slice() {
                [one] => one,
                [] => {
                    return Err(ImageError::Invalid(
                        "the docker archive holds no image".to_string(),
                    ))
                }
                _ => return Err(ImageError::Invalid(
                    "the docker archive holds several images: name one (docker-archive:PATH:TAG)"
                        .to_string(),
                )),
            },
        };
        let config_path = no_symlink(dir, &entry.config, "config")?;
        let config_data = read_limited(&config_path, MAX_CONFIG_BYTES, "image config")?;
        let id = Digest::of(&config_data);
        let config = ImageConfig::parse(&config_data)?;
        if config.diff_ids.len() != entry.layers.len() {
            return Err(ImageError::Invalid(format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                config.diff_ids.len()
            )));
        }
        self.store_blob(&id, &config_data)?;
        let mut layers = Vec::new();
        for (layer, diff_id) in entry.layers.iter().zip(&config.diff_ids) {
            let path = no_symlink(dir, layer, "layer")?;
            let size = fs::metadata(&path)
                .map_err(|_| ImageError::NotFound(format!("the layer {layer} is missing")))?
                .len();
            // Named by its diff_id: what `docker save` writes is the uncompressed tar.
            let key = diff_id.clone();
            self.ensure_layer(&key, Some(diff_id), None, || {
                File::open(&path).map_err(ImageError::io(&path))
            })?;
            layers.push(LayerRef {
                digest: key,
                diff_id: diff_id.clone(),
                size,
            });
        }
        let record = self.save_record(name, None, id, config, layers)?;
        Ok((record, true))
    }

    /// Makes sure every layer is unpacked; returns their references.
    fn layers(
        &self,
        source: &BlobSource<'_>,
        descriptors: &[Descriptor],
        config: &ImageConfig,
    ) -> Result<Vec<LayerRef>, ImageError> {
        let mut out = Vec::new();
        for (descriptor, diff_id) in descriptors.iter().zip(&config.diff_ids) {
            let digest = descriptor.digest()?;
            let size = descriptor.checked_size("layer", MAX_LAYER_BYTES)?;
            match descriptor.media_type.as_str() {
                ""
                | "application/vnd.oci.image.layer.v1.tar"
                | "application/vnd.oci.image.layer.v1.tar+gzip"
                | "application/vnd.oci.image.layer.v1.tar+zstd"
                | "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar"
                | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {}
                other => {
                    return Err(ImageError::Invalid(format!(
                        "the layer {digest} has the unsupported media type {other}"
                    )))
                }
            }
            match source {
                BlobSource::Registry {
                    registry,
                    reference,
                    progress,
                } => {
                    // Downloaded inside the layer's lock (`ensure_layer`): once, however many
                    // images being pulled share it. The file is unlinked as soon as it is open.
                    let downloaded = std::cell::Cell::new(false);
                    self.ensure_layer(&digest, Some(diff_id), None, || {
                        downloaded.set(true);
                        let tmp = self.tmp_path("layer-blob");
                        let started = Instant::now();
                        let result = self.runtime.block_on(registry.blob(
                            reference,
                            descriptor,
                            MAX_LAYER_BYTES,
                            &tmp,
                            "layer",
                            Some(&progress.bytes_done),
                        ));
                        let opened = result.and_then(|_| File::open(&tmp).map_err(ImageError::io(&tmp)));
                        let _ = fs::remove_file(&tmp);
                        debug!(layer = %digest, size, elapsed_ms = started.elapsed().as_millis() as u64, "layer downloaded");
                        opened
                    })?;
                    // A layer the store had already counts as done at once.
                    if !downloaded.get() {
                        progress
                            .bytes_done
                            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                    }
                    progress
                        .layers_done
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                BlobSource::Layout(dir) => {
                    let path = no_symlink(dir, &format!("blobs/sha256/{}", digest.hex()), "layer")?;
                    self.ensure_layer(&digest, Some(diff_id), Some((size, &digest)), || {
                        File::open(&path).map_err(|source| match source.kind() {
                            std::io::ErrorKind::NotFound => {
                                ImageError::NotFound(format!("the layer blob {digest} is missing"))
                            }
                            _ => ImageError::Io {
                                path: path.clone(),
                                source,
                            },
                        })
                    })?;
                }
            }
            out.push(LayerRef {
                digest,
                diff_id: diff_id.clone(),
                size,
            });
        }
        Ok(out)
    }

    /// Unpacks the layer `key` from `open()` unless it is in the store already. `blob`, when
    /// given, is the size and digest the (compressed) stream must have; `diff_id` the
    /// uncompressed stream's. Nothing is left behind on failure.
    fn ensure_layer(
        &self,
        key: &Digest,
        diff_id: Option<&Digest>,
        blob: Option<(u64, &Digest)>,
        open: impl FnOnce() -> Result<File, ImageError>,
    ) -> Result<(), ImageError> {
        let dir = self.layer_dir(key);
        if dir.is_dir() {
            return Ok(());
        }
        let lock = self.lock(&format!("layer:{}", key.hex()));
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        if dir.is_dir() {
            return Ok(());
        }
        let file = open()?;
        let tmp = self.tmp_path("layer");
        fs::create_dir(&tmp).map_err(ImageError::io(&tmp))?;
        let started = Instant::now();
        let result = (|| {
            let mut hashing = HashingReader::new(file);
            let unpacked =
                unpack::unpack(&mut hashing, &tmp, None).map_err(|source| ImageError::Layer {
                    digest: key.clone(),
                    source,
                });
            if let Some((size, digest)) = blob {
                // The blob's own checks come first: a damaged blob explains a bad tar.
                let (actual, count) = hashing.finish().map_err(ImageError::io(&tmp))?;
                if count < size {
                    return Err(ImageError::Truncated {
                        what: format!("the layer {digest}"),
                        got: count,
                        expected: size,
                    });
                }
                if count > size {
                    return Err(ImageError::Oversized {
                        what: format!("the layer {digest} (its descriptor says {size})"),
                        size: count,
                        limit: size,
                    });
                }
                if &actual != digest {
                    return Err(ImageError::DigestMismatch {
                        what: "the layer".to_string(),
                        expected: digest.clone(),
                        actual,
                    });
                }
            }
            let unpacked = unpacked?;
            if let Some(expected) = diff_id {
                if &unpacked.diff_id != expected {
                    return Err(ImageError::DigestMismatch {
                        what: format!("the uncompressed layer {key} (diff_id)"),
                        expected: expected.clone(),
                        actual: unpacked.diff_id,
                    });
                }
            }
            Ok(unpacked)
        })();
        match result {
            Ok(unpacked) => {
                let info = LayerInfo {
                    diff_id: unpacked.diff_id,
                    size: blob.map(|b| b.0).unwrap_or(unpacked.size),
                    unpacked_bytes: unpacked.size,
                };
                write_json(
                    &self.root.join("layers").join(format!("{}.json", key.hex())),
                    &info,
                )?;
                fs::rename(&tmp, &dir).map_err(ImageError::io(&dir))?;
                debug!(layer = %key, bytes = unpacked.size, elapsed_ms = started.elapsed().as_millis() as u64, "layer unpacked");
                Ok(())
            }
            Err(err) => {
                if let Err(e) = fs::remove_dir_all(&tmp) {
                    warn!(path = %tmp.display(), cause = %e, "failed to remove a refused layer");
                }
                Err(err)
            }
        }
    }

    /// The images in the store, with the containers (ids) using each.
    pub fn list(&self) -> Vec<(ImageRecord, Vec<String>)> {
        let uses = self.uses();
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(self.root.join("images")) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "json")
                    && !path.to_string_lossy().contains(".tmp.")
                {
                    if let Some(record) = read_json::<ImageRecord>(&path) {
                        let users = uses
                            .iter()
                            .filter(|(_, u)| u.id == record.id)
                            .map(|(c, _)| c.clone())
                            .collect();
                        out.push((record, users));
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.stored_at.total_cmp(&b.0.stored_at));
        out
    }

    /// Containers' `image.json`s, by container (checkpoint dir name).
    fn uses(&self) -> Vec<(String, ImageUse)> {
        let mut out = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.containers_dir) {
            for entry in entries.flatten() {
                if let Some(u) = read_json::<ImageUse>(&entry.path().join(CONTAINER_IMAGE_FILE)) {
                    out.push((entry.file_name().to_string_lossy().into_owned(), u));
                }
            }
        }
        out
    }

    /// Removes every image no container uses, then the layers and blobs no image left uses.
    pub fn prune(&self) -> Result<PruneReport, ImageError> {
        let _exclusive = self.prune_lock.write().unwrap_or_else(|e| e.into_inner());
        let uses = self.uses();
        let used_images: BTreeSet<Digest> = uses.iter().map(|(_, u)| u.id.clone()).collect();
        let mut used_layers: BTreeSet<Digest> =
            uses.iter().flat_map(|(_, u)| u.layers.clone()).collect();
        let mut report = PruneReport::default();
        let mut kept_blobs = BTreeSet::new();
        for (record, _) in self.list() {
            if used_images.contains(&record.id) {
                used_layers.extend(record.layers.iter().map(|l| l.digest.clone()));
                kept_blobs.insert(record.id.clone());
                kept_blobs.extend(record.manifest.clone());
                continue;
            }
            let path = self.image_path(&record.id);
            fs::remove_file(&path).map_err(ImageError::io(&path))?;
            for name in &record.names {
                let _ = fs::remove_file(self.name_path(name));
            }
            report.removed_images.extend(record.names.iter().cloned());
            if record.names.is_empty() {
                report.removed_images.push(record.id.to_string());
            }
        }
        // Names of images that are gone.
        if let Ok(entries) = fs::read_dir(self.root.join("names")) {
            for entry in entries.flatten() {
                if let Some(n) = read_json::<NameEntry>(&entry.path()) {
                    if !self.image_path(&n.image).exists() {
                        let _ = fs::remove_file(entry.path());
                    }
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.root.join("layers")) {
            for entry in entries.flatten() {
                let path = entry.path();
                let file_name = entry.file_name().to_string_lossy().into_owned();
                let hex = file_name.trim_end_matches(".json");
                let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                    continue;
                };
                if used_layers.contains(&digest) {
                    continue;
                }
                if path.is_dir() {
                    report.freed_bytes += read_json::<LayerInfo>(
                        &self.root.join("layers").join(format!("{hex}.json")),
                    )
                    .map(|i| i.unpacked_bytes)
                    .unwrap_or(0);
                    fs::remove_dir_all(&path).map_err(ImageError::io(&path))?;
                    report.removed_layers += 1;
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        if let Ok(entries) = fs::read_dir(self.root.join("blobs/sha256")) {
            for entry in entries.flatten() {
                let hex = entry.file_name().to_string_lossy().into_owned();
                let keep = Digest::parse(&format!("sha256:{hex}"))
                    .map(|d| kept_blobs.contains(&d))
                    .unwrap_or(false);
                if !keep {
                    report.freed_bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        info!(
            images = report.removed_images.len(),
            layers = report.removed_layers,
            freed_bytes = report.freed_bytes,
            "image store pruned"
        );
        Ok(report)
    }
}

/// A staging directory in the store's `tmp/`, removed when dropped.
struct Staged(PathBuf);

impl Staged {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
