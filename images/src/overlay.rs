//! A container's root filesystem: an overlay mount whose lower dirs are the image's layers in
//! the store (shared, never written) and whose upper and work dirs are the container's own, so a
//! task that writes in its root filesystem changes only its upper dir.
//!
//! Made by the container's supervisor in its private mount namespace: the mount disappears with
//! the namespace when the supervisor and the container are gone, even if nobody unmounts it.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("failed to create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the layer path {} cannot be used in an overlay mount (it holds ':' or ',')", path.display())]
    BadPath { path: PathBuf },
    #[error("the image has {layers} layers: their paths exceed the overlay mount's option limit")]
    TooManyLayers { layers: usize },
    #[error("failed to mount the overlay root filesystem on {}: {source}", target.display())]
    Mount { target: PathBuf, source: nix::Error },
    #[error("failed to change directory to {}: {source}", path.display())]
    Chdir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directories of a container's root filesystem.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RootfsDirs {
    /// The store's `layers/` directory (the lower dirs are given relative to it, to keep the
    /// mount options short).
    pub layers_root: PathBuf,
    /// The image's layers, bottom first, as names in `layers_root`.
    pub layers: Vec<String>,
    /// The container's writable layer and overlayfs' work dir (same filesystem).
    pub upper: PathBuf,
    pub work: PathBuf,
    /// Where the root filesystem is mounted.
    pub target: PathBuf,
}

/// The kernel's limit on mount options is a page.
const MAX_OPTIONS: usize = 4000;

fn check(path: &Path) -> Result<(), OverlayError> {
    let text = path.to_string_lossy();
    if text.contains(':') || text.contains(',') {
        return Err(OverlayError::BadPath {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// The overlay mount's options.
pub fn options(dirs: &RootfsDirs) -> Result<String, OverlayError> {
    for layer in &dirs.layers {
        check(Path::new(layer))?;
    }
    check(&dirs.upper)?;
    check(&dirs.work)?;
    // overlayfs lists the top layer first.
    let lower: Vec<&str> = dirs.layers.iter().rev().map(String::as_str).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dirs.upper.display(),
        dirs.work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(OverlayError::TooManyLayers {
            layers: dirs.layers.len(),
        });
    }
    Ok(options)
}

/// Creates the upper, work and target dirs and mounts the overlay (from inside `layers_root`,
/// which the lower dirs are relative to; the working directory is restored after).
pub fn mount_rootfs(dirs: &RootfsDirs) -> Result<(), OverlayError> {
    for path in [&dirs.upper, &dirs.work, &dirs.target] {
        std::fs::create_dir_all(path).map_err(|source| OverlayError::Create {
            path: path.clone(),
            source,
        })?;
    }
    let mut dirs = dirs.clone();
    if dirs.layers.is_empty() {
        // overlayfs needs a lower dir: an image without layers gets an empty one.
        let empty = dirs.upper.with_file_name("empty");
        std::fs::create_dir_all(&empty).map_err(|source| OverlayError::Create {
            path: empty.clone(),
            source,
        })?;
        dirs.layers.push(empty.to_string_lossy().into_owned());
    }
    let options = options(&dirs)?;
    let previous = std::env::current_dir().ok();
    std::env::set_current_dir(&dirs.layers_root).map_err(|source| OverlayError::Chdir {
        path: dirs.layers_root.clone(),
        source,
    })?;
    let result = mount(
        Some("overlay"),
        &dirs.target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| OverlayError::Mount {
        target: dirs.target.clone(),
        source,
    });
    if let Some(previous) = previous {
        let _ = std::env::set_current_dir(previous);
    }
    result
}

/// Detaches the root filesystem (best effort: the mount namespace's end removes it anyway).
pub fn unmount_rootfs(target: &Path) {
    let _ = umount2(target, MntFlags::MNT_DETACH);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lower_dirs_are_top_first_and_checked() {
        let dirs = RootfsDirs {
            layers_root: "/s/layers".into(),
            layers: vec!["aa".into(), "bb".into()],
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            target: "/c/rootfs".into(),
        };
        assert_eq!(
            options(&dirs).unwrap(),
            "lowerdir=bb:aa,upperdir=/c/upper,workdir=/c/work"
        );
        let mut bad = dirs.clone();
        bad.upper = "/c/up:per".into();
        assert!(matches!(options(&bad), Err(OverlayError::BadPath { .. })));
        let mut many = dirs;
        many.layers = (0..100).map(|_| "a".repeat(64)).collect();
        assert!(matches!(
            options(&many),
            Err(OverlayError::TooManyLayers { layers: 100 })
        ));
    }
}
