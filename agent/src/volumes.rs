//! Persistent volumes on the agent: where their data lives, how a task sees them, and DESTROY.
//!
//! A volume (a `disk(role)[id:path]:size` resource, see `strata_schema::resources`) is a
//! directory `<work_dir>/volumes/roles/<role>/<persistence id>`, Mesos' layout. A role's `/`
//! (hierarchical roles, `a/b`) is written as a space, as Mesos does: a role is one directory,
//! never a tree that another role's volumes could sit inside (roles hold no whitespace).
//!
//! A task whose resources hold volumes gets each one, created if missing, as a host-path volume
//! ([`host_volumes`]) at its `container_path` under the sandbox:
//! - a task with an image: a bind at `/mnt/mesos/sandbox/<container_path>` in its root
//!   filesystem, with the image's other volumes (`image_container::prepare`);
//! - a command task in a mount namespace (`filesystem/linux`): a bind mount on
//!   `<sandbox>/<container_path>`, made by the container's init ([`Mounts::read_write_binds`], or
//!   `read_only_binds` for `:ro`);
//! - a command task without one: a symlink `<sandbox>/<container_path>` to the volume (Mesos'
//!   `filesystem/posix`), which cannot be read-only: such a task fails to launch.
//!
//! The binds live in the container's own mount namespace, so nothing that removes a sandbox or a
//! container's checkpoint ever reaches into a volume; only [`destroy`] removes its data.

use std::path::{Component, Path, PathBuf};
use strata_isolators::launch::{BindMount, Mounts};
use strata_schema::{DiskInfo, Resources, Volume, VolumeMode};

/// The work dir's volumes directory, under which every volume lives.
pub fn root(work_dir: &Path) -> PathBuf {
    work_dir.join("volumes")
}

/// `<work_dir>/volumes/roles/<role>/<persistence_id>`, a role's `/` written as a space.
pub fn dir(work_dir: &Path, role: &str, persistence_id: &str) -> PathBuf {
    root(work_dir)
        .join("roles")
        .join(role.replace('/', " "))
        .join(persistence_id)
}

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("failed to create the persistent volume {id:?} at {path}: {source}")]
    Create {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to give the persistent volume {id:?} at {path} to {owner}: {source}")]
    Chown {
        id: String,
        path: PathBuf,
        owner: String,
        source: nix::Error,
    },
    #[error("failed to create the mount point of persistent volume {id:?} at {path}: {source}")]
    MountPoint {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "persistent volume {id:?} is read-only, which needs a mount namespace \
         (the filesystem/linux isolator or an image)"
    )]
    ReadOnlyWithoutMountNamespace { id: String },
    #[error("persistent volume {id:?} ({resource}) is in use by task {task_id}")]
    InUse {
        id: String,
        resource: String,
        task_id: String,
    },
    #[error("{resource} is not a persistent volume")]
    NotAVolume { resource: String },
    #[error("persistent volume {id:?}: {path} is outside {root}")]
    Escapes {
        id: String,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("failed to remove the persistent volume {id:?} at {path}: {source}")]
    Remove {
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Each volume of `resources` as a host-path volume: `container_path` relative to the sandbox,
/// `host_path` its directory under `work_dir`.
pub fn host_volumes(work_dir: &Path, resources: &Resources) -> Vec<Volume> {
    resources
        .volumes()
        .map(|(r, disk)| Volume {
            container_path: disk.container_path.clone(),
            host_path: dir(work_dir, &r.role, &disk.persistence_id)
                .to_string_lossy()
                .into_owned(),
            mode: if disk.read_only {
                VolumeMode::Ro
            } else {
                VolumeMode::Rw
            },
        })
        .collect()
}

/// Creates the directories of the volumes of `resources` that do not exist yet and returns
/// them; a new one is given to `owner` (the task's user), an existing one keeps its owner and
/// data.
pub fn ensure(
    work_dir: &Path,
    resources: &Resources,
    owner: Option<&nix::unistd::User>,
) -> Result<Vec<PathBuf>, VolumeError> {
    let mut created = Vec::new();
    for (r, disk) in resources.volumes() {
        let path = dir(work_dir, &r.role, &disk.persistence_id);
        if path.is_dir() {
            continue;
        }
        let id = disk.persistence_id.clone();
        std::fs::create_dir_all(&path).map_err(|source| VolumeError::Create {
            id: id.clone(),
            path: path.clone(),
            source,
        })?;
        if let Some(user) = owner {
            nix::unistd::chown(&path, Some(user.uid), Some(user.gid)).map_err(|source| {
                VolumeError::Chown {
                    id,
                    path: path.clone(),
                    owner: user.name.clone(),
                    source,
                }
            })?;
        }
        created.push(path);
    }
    Ok(created)
}

/// Where a command task sees `disk`: `<sandbox>/<container_path>`.
pub fn sandbox_target(sandbox: &Path, disk: &DiskInfo) -> PathBuf {
    sandbox.join(&disk.container_path)
}

/// Gives a command task (no image) its volumes: bind mounts in `mounts` when the container has
/// a mount namespace, else symlinks in the sandbox. The volumes must exist ([`ensure`]); the
/// sandbox is fresh, so nothing in it can redirect a mount point.
pub fn attach_to_command(
    work_dir: &Path,
    sandbox: &Path,
    resources: &Resources,
    mount_namespace: bool,
    mounts: &mut Mounts,
) -> Result<(), VolumeError> {
    for (r, disk) in resources.volumes() {
        let source = dir(work_dir, &r.role, &disk.persistence_id);
        let target = sandbox_target(sandbox, disk);
        let id = || disk.persistence_id.clone();
        let parent_ready = |target: &Path| {
            target
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .map_err(|source| VolumeError::MountPoint {
                    id: id(),
                    path: target.to_path_buf(),
                    source,
                })
        };
        if mount_namespace {
            std::fs::create_dir_all(&target).map_err(|source| VolumeError::MountPoint {
                id: id(),
                path: target.clone(),
                source,
            })?;
            let bind = BindMount { source, target };
            if disk.read_only {
                mounts.read_only_binds.push(bind);
            } else {
                mounts.read_write_binds.push(bind);
            }
        } else {
            if disk.read_only {
                return Err(VolumeError::ReadOnlyWithoutMountNamespace { id: id() });
            }
            parent_ready(&target)?;
            std::os::unix::fs::symlink(&source, &target).map_err(|source| {
                VolumeError::MountPoint {
                    id: id(),
                    path: target.clone(),
                    source,
                }
            })?;
        }
    }
    Ok(())
}

/// A running task's use of a volume: `(role, persistence id)` → the task's id.
pub trait VolumeUsers {
    fn user_of(&self, role: &str, persistence_id: &str) -> Option<String>;
}

impl<F: Fn(&str, &str) -> Option<String>> VolumeUsers for F {
    fn user_of(&self, role: &str, persistence_id: &str) -> Option<String> {
        self(role, persistence_id)
    }
}

/// Checks that DESTROY may remove `volumes`: each is a volume that no running task uses.
pub fn check_destroy(volumes: &Resources, users: &impl VolumeUsers) -> Result<(), VolumeError> {
    if let Some(r) = volumes.iter().find(|r| !r.is_volume()) {
        return Err(VolumeError::NotAVolume {
            resource: r.to_string(),
        });
    }
    for (r, disk) in volumes.volumes() {
        if let Some(task_id) = users.user_of(&r.role, &disk.persistence_id) {
            return Err(VolumeError::InUse {
                id: disk.persistence_id.clone(),
                resource: r.to_string(),
                task_id,
            });
        }
    }
    Ok(())
}

/// Removes the data of `volumes` (checked by [`check_destroy`]). A volume already gone is fine.
/// Nothing outside `<work_dir>/volumes` is touched: a volume whose directory resolves elsewhere
/// (a symlinked role directory) is refused, a volume that is itself a symlink loses only the
/// link, and the removal never follows a symlink inside the volume.
pub fn destroy(work_dir: &Path, volumes: &Resources) -> Result<(), VolumeError> {
    let root = root(work_dir);
    for (r, disk) in volumes.volumes() {
        let id = || disk.persistence_id.clone();
        let path = dir(work_dir, &r.role, &disk.persistence_id);
        // The name itself cannot climb: ids and roles are validated; still, check.
        let climbs = path.strip_prefix(&root).map_or(true, |rest| {
            rest.components()
                .any(|c| !matches!(c, Component::Normal(_)))
        });
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(VolumeError::Remove {
                    id: id(),
                    path,
                    source,
                })
            }
        };
        // The directories above the volume must resolve under the (resolved) volumes root.
        let parent_escapes = match (
            path.parent().map(std::fs::canonicalize),
            std::fs::canonicalize(&root),
        ) {
            (Some(Ok(parent)), Ok(real_root)) => !parent.starts_with(&real_root),
            _ => true,
        };
        if climbs || parent_escapes {
            return Err(VolumeError::Escapes {
                id: id(),
                path,
                root,
            });
        }
        let removed = if meta.is_dir() {
            // `remove_dir_all` does not follow symlinks (CVE-2022-21658 fixed in Rust 1.58.1).
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(|source| VolumeError::Remove {
            id: id(),
            path: path.clone(),
            source,
        })?;
        tracing::info!(persistence_id = %disk.persistence_id, role = %r.role, path = %path.display(), "destroyed the persistent volume");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn paths_follow_mesos_layout() {
        let work = Path::new("/var/lib/strata");
        assert_eq!(
            dir(work, "ops", "v1"),
            Path::new("/var/lib/strata/volumes/roles/ops/v1")
        );
        assert_eq!(
            dir(work, "eng/web", "v1"),
            Path::new("/var/lib/strata/volumes/roles/eng web/v1")
        );
        assert_eq!(
            sandbox_target(
                Path::new("/sb"),
                res("disk(ops)[v1:a/b]:1").volumes().next().unwrap().1
            ),
            Path::new("/sb/a/b")
        );
    }

    #[test]
    fn volumes_become_host_path_volumes() {
        let work = Path::new("/w");
        let task = res("cpus:1;disk(ops):5;disk(ops)[v1:data]:64;disk(a/b)[v2:x/y:ro]:1");
        assert_eq!(
            host_volumes(work, &task),
            vec![
                Volume {
                    container_path: "x/y".into(),
                    host_path: "/w/volumes/roles/a b/v2".into(),
                    mode: VolumeMode::Ro,
                },
                Volume {
                    container_path: "data".into(),
                    host_path: "/w/volumes/roles/ops/v1".into(),
                    mode: VolumeMode::Rw,
                },
            ]
        );
        assert!(host_volumes(work, &res("cpus:1;disk(ops):5")).is_empty());
    }

    #[test]
    fn ensure_creates_once_and_keeps_data() {
        let work = tempfile::tempdir().unwrap();
        let task = res("disk(ops)[v1:data]:64;disk(a/b)[v2:d]:1");
        let created = ensure(work.path(), &task, None).unwrap();
        let v1 = dir(work.path(), "ops", "v1");
        let v2 = dir(work.path(), "a/b", "v2");
        assert_eq!(created, vec![v2.clone(), v1.clone()]);
        assert!(v1.is_dir() && v2.is_dir());
        std::fs::write(v1.join("f"), "kept").unwrap();
        assert!(ensure(work.path(), &task, None).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(v1.join("f")).unwrap(), "kept");
    }

    #[test]
    fn command_tasks_get_binds_or_symlinks() {
        let work = tempfile::tempdir().unwrap();
        let sandbox = work.path().join("sandbox");
        std::fs::create_dir_all(&sandbox).unwrap();
        let task = res("disk(ops)[v1:data]:64;disk(ops)[v2:deep/ro:ro]:1");
        ensure(work.path(), &task, None).unwrap();

        let mut mounts = Mounts::default();
        attach_to_command(work.path(), &sandbox, &task, true, &mut mounts).unwrap();
        assert_eq!(
            mounts.read_write_binds,
            vec![BindMount {
                source: dir(work.path(), "ops", "v1"),
                target: sandbox.join("data"),
            }]
        );
        assert_eq!(
            mounts.read_only_binds,
            vec![BindMount {
                source: dir(work.path(), "ops", "v2"),
                target: sandbox.join("deep/ro"),
            }]
        );
        assert!(sandbox.join("data").is_dir() && sandbox.join("deep/ro").is_dir());

        // Without a mount namespace: a symlink; read-only cannot be honoured.
        let sandbox2 = work.path().join("sandbox2");
        std::fs::create_dir_all(&sandbox2).unwrap();
        let mut mounts = Mounts::default();
        let rw = res("disk(ops)[v1:data/in]:64");
        attach_to_command(work.path(), &sandbox2, &rw, false, &mut mounts).unwrap();
        assert_eq!(mounts, Mounts::default());
        std::fs::write(sandbox2.join("data/in/f"), "through the link").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir(work.path(), "ops", "v1").join("f")).unwrap(),
            "through the link"
        );
        // The sandbox goes; the data stays.
        std::fs::remove_dir_all(&sandbox2).unwrap();
        assert!(dir(work.path(), "ops", "v1").join("f").is_file());
        let err = attach_to_command(
            work.path(),
            &sandbox2,
            &res("disk(ops)[v2:x:ro]:1"),
            false,
            &mut mounts,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("\"v2\" is read-only"), "{err}");
    }

    #[test]
    fn destroy_refuses_volumes_in_use() {
        let volumes = res("disk(ops)[v1:data]:64;disk(ops)[v2:data]:1");
        let users = |role: &str, id: &str| (role == "ops" && id == "v2").then(|| "t1".to_string());
        let err = check_destroy(&volumes, &users).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"persistent volume "v2" (disk(ops)[v2:data]:1) is in use by task t1"#
        );
        let nobody = |_: &str, _: &str| None;
        check_destroy(&volumes, &nobody).unwrap();
        let err = check_destroy(&res("disk(ops):1"), &nobody)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "disk(ops):1 is not a persistent volume");
    }

    #[test]
    fn destroy_removes_the_data_and_nothing_else() {
        let work = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), "x").unwrap();
        let volumes = res("disk(ops)[v1:data]:64;disk(ops)[v2:data]:1");
        ensure(work.path(), &volumes, None).unwrap();
        let v1 = dir(work.path(), "ops", "v1");
        std::fs::create_dir_all(v1.join("sub")).unwrap();
        std::fs::write(v1.join("sub/f"), "data").unwrap();
        // A link inside the volume to the outside is removed, not followed.
        std::os::unix::fs::symlink(outside.path(), v1.join("link")).unwrap();
        destroy(work.path(), &res("disk(ops)[v1:data]:64")).unwrap();
        assert!(!v1.exists());
        assert!(dir(work.path(), "ops", "v2").is_dir());
        assert!(outside.path().join("precious").is_file());
        // Gone already: fine.
        destroy(work.path(), &res("disk(ops)[v1:data]:64")).unwrap();

        // A volume that is a symlink loses the link only.
        let v3 = dir(work.path(), "ops", "v3");
        std::os::unix::fs::symlink(outside.path(), &v3).unwrap();
        destroy(work.path(), &res("disk(ops)[v3:data]:1")).unwrap();
        assert!(std::fs::symlink_metadata(&v3).is_err());
        assert!(outside.path().join("precious").is_file());

        // A role directory that leads elsewhere is refused.
        std::fs::create_dir_all(outside.path().join("v4")).unwrap();
        let role_dir = root(work.path()).join("roles").join("evil");
        std::os::unix::fs::symlink(outside.path(), &role_dir).unwrap();
        let err = destroy(work.path(), &res("disk(evil)[v4:data]:1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is outside"), "{err}");
        assert!(outside.path().join("v4").is_dir());
    }
}
