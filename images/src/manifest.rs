//! Manifests, indexes and image configs, as read from a registry or a layout: parsed leniently
//! (OCI and Docker v2 media types alike), checked strictly (digests, sizes, platform).

use crate::digest::Digest;
use crate::ImageError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The largest manifest, index or `index.json` accepted (containerd's limit).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG_BYTES: u64 = 8 << 20;
/// The platform this agent runs images for.
pub const OS: &str = "linux";
pub const ARCHITECTURE: &str = "amd64";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a manifest request accepts.
pub const ACCEPTED: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

#[derive(Debug, Clone, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    pub digest: String,
    pub size: i64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Descriptor {
    pub fn digest(&self) -> Result<Digest, ImageError> {
        Digest::parse(&self.digest).map_err(ImageError::Invalid)
    }

    /// The size, which must be non-negative and at most `limit`.
    pub fn checked_size(&self, what: &str, limit: u64) -> Result<u64, ImageError> {
        let size = u64::try_from(self.size).map_err(|_| {
            ImageError::Invalid(format!("the {what} descriptor has a negative size"))
        })?;
        if size > limit {
            return Err(ImageError::Oversized {
                what: format!("the {what} {}", self.digest),
                size,
                limit,
            });
        }
        Ok(size)
    }

    pub fn to_oci(&self) -> oci_client::manifest::OciDescriptor {
        oci_client::manifest::OciDescriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct AnyManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// A parsed manifest: an image's, or an index of them.
#[derive(Debug, Clone)]
pub enum Manifest {
    Image {
        config: Descriptor,
        layers: Vec<Descriptor>,
    },
    Index(Vec<Descriptor>),
}

impl Manifest {
    /// Parses `data`, which the caller has checked against its digest and size.
    pub fn parse(data: &[u8], what: &str) -> Result<Self, ImageError> {
        let m: AnyManifest = serde_json::from_slice(data)
            .map_err(|err| ImageError::Invalid(format!("the {what} is not valid JSON: {err}")))?;
        if m.schema_version == 1 {
            return Err(ImageError::Invalid(format!(
                "the {what} is a Docker schema 1 manifest, which is not supported"
            )));
        }
        if m.schema_version != 2 {
            return Err(ImageError::Invalid(format!(
                "the {what} has schemaVersion {}, not 2",
                m.schema_version
            )));
        }
        match (m.manifests, m.config, m.layers) {
            (Some(manifests), None, _) => Ok(Manifest::Index(manifests)),
            (None, Some(config), Some(layers)) => {
                if let Some(t) = &m.media_type {
                    if t != OCI_MANIFEST && t != DOCKER_MANIFEST {
                        return Err(ImageError::Invalid(format!(
                            "the {what} has the unsupported media type {t}"
                        )));
                    }
                }
                Ok(Manifest::Image { config, layers })
            }
            _ => Err(ImageError::Invalid(format!(
                "the {what} is neither an image manifest nor an index"
            ))),
        }
    }
}

/// Picks the linux/amd64 image manifest of an index (or the entry `reference` names: a
/// `org.opencontainers.image.ref.name` annotation or a digest, for image layouts).
pub fn select<'a>(
    entries: &'a [Descriptor],
    reference: Option<&str>,
) -> Result<&'a Descriptor, ImageError> {
    let named: Vec<&Descriptor> = match reference {
        Some(r) => entries
            .iter()
            .filter(|d| {
                d.digest == r
                    || d.annotations
                        .as_ref()
                        .and_then(|a| a.get("org.opencontainers.image.ref.name"))
                        .is_some_and(|n| n == r)
            })
            .collect(),
        None => entries.iter().collect(),
    };
    if named.is_empty() {
        return Err(ImageError::NotFound(format!(
            "no manifest named {:?} in the index",
            reference.unwrap_or_default()
        )));
    }
    let fits = |d: &&Descriptor| {
        d.platform
            .as_ref()
            .is_none_or(|p| p.os == OS && p.architecture == ARCHITECTURE)
    };
    if let Some(d) = named.iter().copied().find(fits) {
        return Ok(d);
    }
    let platforms: Vec<String> = named
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    Err(ImageError::Platform(format!(
        "the image has no {OS}/{ARCHITECTURE} manifest (it has {})",
        platforms.join(", ")
    )))
}

/// What the agent uses of an image config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// The layers' `diff_id`s, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    /// Parses an OCI (or Docker) image config and checks its platform.
    pub fn parse(data: &[u8]) -> Result<Self, ImageError> {
        let config = oci_spec::image::ImageConfiguration::from_reader(data)
            .map_err(|err| ImageError::Invalid(format!("the image config is invalid: {err}")))?;
        let os = config.os().to_string();
        let arch = config.architecture().to_string();
        if os != OS || arch != ARCHITECTURE {
            return Err(ImageError::Platform(format!(
                "the image is for {os}/{arch}, this agent runs {OS}/{ARCHITECTURE}"
            )));
        }
        let exec = config.config().clone().unwrap_or_default();
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| Digest::parse(d).map_err(ImageError::Invalid))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            entrypoint: exec.entrypoint().clone().unwrap_or_default(),
            cmd: exec.cmd().clone().unwrap_or_default(),
            env: exec.env().clone().unwrap_or_default(),
            working_dir: exec.working_dir().clone().filter(|w| !w.is_empty()),
            user: exec.user().clone().filter(|u| !u.is_empty()),
            diff_ids,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(arch: &str) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: None,
            }),
            annotations: None,
        }
    }

    #[test]
    fn indexes_pick_linux_amd64() {
        let entries = vec![entry("arm64"), entry("amd64")];
        assert_eq!(
            select(&entries, None)
                .unwrap()
                .platform
                .as_ref()
                .unwrap()
                .architecture,
            "amd64"
        );
        let err = select(&entries[..1], None).unwrap_err().to_string();
        assert!(
            err.contains("no linux/amd64") && err.contains("linux/arm64"),
            "{err}"
        );
    }

    #[test]
    fn configs_give_exec_settings() {
        let config = br#"{"architecture":"amd64","os":"linux",
            "config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","true"],"Env":["A=1"],"WorkingDir":"/w","User":"1000:1000"},
            "rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::parse(config).unwrap();
        assert_eq!(c.entrypoint, ["/bin/sh"]);
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        let arm =
            br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert!(ImageConfig::parse(arm)
            .unwrap_err()
            .to_string()
            .contains("linux/arm64"));
    }

    #[test]
    fn schema1_is_refused() {
        let err = Manifest::parse(br#"{"schemaVersion":1}"#, "manifest")
            .unwrap_err()
            .to_string();
        assert!(err.contains("schema 1"), "{err}");
    }
}
