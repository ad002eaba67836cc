//! Mesos' `ContainerInfo` for the MESOS containerizer: the image a task's root filesystem comes
//! from and the host paths bound into it.

use serde::{Deserialize, Serialize};
use std::path::{Component, Path};

/// The longest image name accepted (a reference or a path).
pub const MAX_IMAGE_NAME: usize = 4096;

/// `container.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ContainerType {
    #[default]
    #[serde(rename = "MESOS")]
    Mesos,
    /// Mesos' Docker containerizer; Strata has none, such tasks are refused.
    #[serde(rename = "DOCKER")]
    Docker,
}

/// `container.mesos.image.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ImageType {
    #[default]
    #[serde(rename = "DOCKER")]
    Docker,
    #[serde(rename = "OCI")]
    Oci,
}

/// `container.mesos.image`: where the task's root filesystem comes from. `name` is a registry
/// reference (`registry:port/repo:tag`, `…@sha256:…`) or, with a transport prefix, a local image:
/// `oci:DIR[:REF]` (an OCI image layout), `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`
/// (`docker save`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "type", default)]
    pub kind: ImageType,
    pub name: String,
}

/// `container.volumes[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum VolumeMode {
    #[default]
    #[serde(rename = "RW")]
    Rw,
    #[serde(rename = "RO")]
    Ro,
}

/// A host path bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Absolute, or relative to the sandbox (`/mnt/mesos/sandbox`).
    pub container_path: String,
    /// Absolute.
    pub host_path: String,
    #[serde(default)]
    pub mode: VolumeMode,
}

/// Mesos' `ContainerInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerInfo {
    #[serde(rename = "type", default)]
    pub kind: ContainerType,
    /// `container.mesos.image`.
    #[serde(default)]
    pub image: Option<Image>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

impl ContainerInfo {
    /// A MESOS container from `image`.
    pub fn image(kind: ImageType, name: impl Into<String>) -> Self {
        Self {
            kind: ContainerType::Mesos,
            image: Some(Image {
                kind,
                name: name.into(),
            }),
            volumes: Vec::new(),
        }
    }

    /// Why this container cannot run, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.kind == ContainerType::Docker {
            return Err(
                "container type DOCKER is not supported: use type MESOS with mesos.image".into(),
            );
        }
        if let Some(image) = &self.image {
            let name = image.name.trim();
            if name.is_empty() {
                return Err("the image name is empty".into());
            }
            if image.name.len() > MAX_IMAGE_NAME {
                return Err(format!(
                    "the image name is longer than {MAX_IMAGE_NAME} bytes"
                ));
            }
            if image.name.contains('\0') || image.name.chars().any(char::is_control) {
                return Err("the image name contains a control character".into());
            }
        }
        for volume in &self.volumes {
            let what = format!("volume {:?}", volume.container_path);
            if volume.container_path.is_empty() {
                return Err("a volume has an empty container_path".into());
            }
            for path in [&volume.container_path, &volume.host_path] {
                if path.contains('\0') {
                    return Err(format!("{what}: a path contains a NUL byte"));
                }
                if Path::new(path)
                    .components()
                    .any(|c| c == Component::ParentDir)
                {
                    return Err(format!("{what}: {path:?} must not contain \"..\""));
                }
            }
            if !Path::new(&volume.host_path).is_absolute() {
                return Err(format!(
                    "{what}: host_path {:?} must be absolute",
                    volume.host_path
                ));
            }
            if self.image.is_none() {
                return Err(format!(
                    "{what}: volumes need an image (a container without one shares the host's filesystem)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        assert!(ContainerInfo::image(ImageType::Docker, "busybox")
            .validate()
            .is_ok());
        let err = ContainerInfo::image(ImageType::Oci, " ")
            .validate()
            .unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let docker = ContainerInfo {
            kind: ContainerType::Docker,
            ..ContainerInfo::default()
        };
        assert!(docker.validate().unwrap_err().contains("DOCKER"));
        let mut c = ContainerInfo::image(ImageType::Docker, "busybox");
        c.volumes.push(Volume {
            container_path: "/data".into(),
            host_path: "relative".into(),
            mode: VolumeMode::Ro,
        });
        assert!(c.validate().unwrap_err().contains("absolute"));
        c.volumes[0].host_path = "/srv/../etc".into();
        assert!(c.validate().unwrap_err().contains(".."));
    }

    #[test]
    fn json_uses_mesos_names() {
        let c = ContainerInfo::image(ImageType::Oci, "oci:/images/busybox");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["type"], "MESOS");
        assert_eq!(json["image"]["type"], "OCI");
        let back: ContainerInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
