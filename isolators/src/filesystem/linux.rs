//! `filesystem/linux`: the container gets its own mount namespace with
//!
//! - a fresh proc filesystem on `/proc`;
//! - a private `/tmp`: a new tmpfs (mode 1777) of at most the task's `mem` (the kernel's default
//!   of half the RAM when the task gives none), gone when the container ends — tasks share no
//!   temp files with the host or each other;
//! - read-only bind mounts of host paths given by the agent's `--container-ro-mounts`
//!   (`HOST[:CONTAINER],…`): `HOST` (absolute, must exist) appears read-only at `CONTAINER`, which
//!   is absolute (and must exist on the host, e.g. `/srv/data:/mnt`) or relative to the sandbox
//!   (created there); without `:CONTAINER`, `HOST` is made read-only in place (e.g. `/home`);
//! - Docker's read-only paths: `/proc/sys`, `/proc/sysrq-trigger`, `/proc/irq`, `/proc/bus`,
//!   `/proc/fs`, and `/sys` with every mount below it (the cgroup hierarchies included: a root
//!   task cannot move itself out of its cgroup);
//! - masks: the agent's work dir (other sandboxes, checkpoints, the image store, volumes) and the
//!   BPF filesystem (`/sys/fs/bpf`, the `--bpf-pin-dir`) are covered by an empty read-only tmpfs.
//!
//! Mounts are made by the container's init after it made the whole tree private, in the order
//! above, so nothing propagates back to the host. A sandbox below `/tmp` or a mask (a work dir
//! there) is bound back into the new tmpfs at its path, and so are the binds' sources there
//! (persistent volumes in the work dir).

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::{BindMount, Launch, Mounts, Tmpfs};
use crate::namespaces::{self, NamespaceError};
use crate::selection::Host;
use crate::statistics::mb_to_bytes;
use nix::mount::MsFlags;
use std::path::{Path, PathBuf};

pub const NAME: &str = "filesystem/linux";

/// One entry of `--container-ro-mounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOnlyMount {
    /// An absolute host path.
    pub host: PathBuf,
    /// Absolute, or relative to the sandbox; `None`: the host path itself.
    pub container: Option<PathBuf>,
}

/// Parses `--container-ro-mounts`: comma-separated `HOST[:CONTAINER]`; an empty text is no
/// mount.
pub fn parse_ro_mounts(text: &str) -> Result<Vec<ReadOnlyMount>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|entry| {
            let (host, container) = match entry.split_once(':') {
                Some((host, container)) => (host, Some(container)),
                None => (entry, None),
            };
            let host = PathBuf::from(host);
            if !host.is_absolute() {
                return Err(format!(
                    "{entry:?}: the host path {} must be absolute",
                    host.display()
                ));
            }
            let container = match container {
                Some("") => return Err(format!("{entry:?}: the container path is empty")),
                Some(c) if Path::new(c).components().any(|p| p.as_os_str() == "..") => {
                    return Err(format!(
                        "{entry:?}: the container path must not contain \"..\""
                    ))
                }
                Some(c) => Some(PathBuf::from(c)),
                None => None,
            };
            Ok(ReadOnlyMount { host, container })
        })
        .collect()
}

pub fn available(host: &Host) -> Result<(), String> {
    namespaces::require_namespace(host, "mnt")
}

#[derive(Debug)]
pub struct LinuxFilesystemIsolator {
    pub ro_mounts: Vec<ReadOnlyMount>,
    /// Host directories every container gets covered (see [`Mounts::masks`]).
    pub masks: Vec<PathBuf>,
}

impl LinuxFilesystemIsolator {
    /// Checks the mounts' host paths at agent start, so that a typo fails the agent rather than
    /// every task.
    pub fn new(ro_mounts: Vec<ReadOnlyMount>) -> Result<Self, String> {
        for mount in &ro_mounts {
            if !mount.host.exists() {
                return Err(format!(
                    "--container-ro-mounts: {} does not exist",
                    mount.host.display()
                ));
            }
            if let Some(target) = &mount.container {
                if target.is_absolute() && !target.exists() {
                    return Err(format!(
                        "--container-ro-mounts: the mount point {} does not exist",
                        target.display()
                    ));
                }
            }
        }
        Ok(Self {
            ro_mounts,
            masks: Vec::new(),
        })
    }

    /// Covers `masks` in every container (besides the work dir, which the agent adds).
    pub fn masking(mut self, masks: Vec<PathBuf>) -> Self {
        self.masks = masks;
        self
    }

    /// The bind mount of `mount` for a container with `sandbox`, creating a relative mount point.
    fn bind(&self, mount: &ReadOnlyMount, sandbox: &Path) -> Result<BindMount, IsolatorError> {
        let target = match &mount.container {
            None => mount.host.clone(),
            Some(target) if target.is_absolute() => target.clone(),
            Some(relative) => {
                let target = sandbox.join(relative);
                let created = if mount.host.is_dir() {
                    std::fs::create_dir_all(&target)
                } else {
                    target
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| {
                            std::fs::OpenOptions::new()
                                .create(true)
                                .append(true)
                                .open(&target)
                                .map(drop)
                        })
                };
                created.map_err(|source| IsolatorError::Create {
                    isolator: NAME,
                    path: target.clone(),
                    source,
                })?;
                target
            }
        };
        Ok(BindMount {
            source: mount.host.clone(),
            target,
        })
    }
}

impl Isolator for LinuxFilesystemIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.namespaces.mount = true;
        let mem = container.resources.mem();
        launch.process.mounts = Mounts {
            proc: true,
            tmp: Some(Tmpfs {
                size_bytes: (mem > 0.0).then(|| mb_to_bytes(mem)),
            }),
            read_only_binds: self
                .ro_mounts
                .iter()
                .map(|m| self.bind(m, container.sandbox))
                .collect::<Result<_, _>>()?,
            read_write_binds: Vec::new(),
            read_only_kernel: true,
            masks: self.masks.clone(),
        };
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("failed to mount a tmpfs on {}: {source}", path.display())]
    Tmpfs { path: PathBuf, source: nix::Error },
    #[error("failed to bind {} on {}: {source}", bind.source.display(), bind.target.display())]
    Bind { bind: BindMount, source: nix::Error },
    #[error("failed to make {} read-only: {source}", path.display())]
    ReadOnly { path: PathBuf, source: nix::Error },
    #[error("failed to open {}: {source}", path.display())]
    Open { path: PathBuf, source: nix::Error },
    #[error("failed to create the mount point {}: {source}", path.display())]
    MountPoint {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The directory the private tmpfs goes on.
const TMP: &str = "/tmp";

/// Makes `mounts` in the caller's (new, private) mount namespace: `proc` on `/proc`, the tmpfs on
/// `/tmp`, the masks, then the read-only binds and the read-write ones; last, the masks become
/// read-only. Runs in the container's init.
///
/// The tmpfs hides whatever lay below `/tmp`, and a mask what lies below it: `sandbox` included
/// when the agent's work dir is there. The sandbox and the binds' sources below them are opened
/// (`O_PATH`) before the tmpfs are mounted and bound back at their paths inside them, so the task
/// finds its sandbox where its environment says, and nothing else of what they cover.
pub fn mount_all(mounts: &Mounts, proc: bool, sandbox: &Path) -> Result<(), MountError> {
    if proc {
        namespaces::mount_proc(Path::new("/proc"))?;
    }
    let hidden = |path: &Path| {
        (mounts.tmp.is_some() && path.starts_with(TMP))
            || mounts.masks.iter().any(|m| path.starts_with(m))
    };
    let sandbox_fd = if hidden(sandbox) {
        Some(open_path(sandbox)?)
    } else {
        None
    };
    let binds: Vec<(&BindMount, bool)> = mounts
        .read_only_binds
        .iter()
        .map(|b| (b, true))
        .chain(mounts.read_write_binds.iter().map(|b| (b, false)))
        .collect();
    let source_fds = binds
        .iter()
        .map(|(b, _)| {
            if hidden(&b.source) {
                open_path(&b.source).map(Some)
            } else {
                Ok(None)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(tmp) = &mounts.tmp {
        mount_tmpfs(Path::new(TMP), tmp)?;
    }
    if mounts.read_only_kernel {
        protect_kernel(proc)?;
    }
    // A mask below /tmp (a work dir there) is covered already; others need their mount point.
    let mut masked = Vec::new();
    for mask in &mounts.masks {
        if mounts.tmp.is_some() && mask.starts_with(TMP) {
            continue;
        }
        if !mask.is_dir() {
            continue;
        }
        mount_mask(mask)?;
        masked.push(mask);
    }
    if let Some(fd) = &sandbox_fd {
        let bind = BindMount {
            source: fd_path(fd),
            target: sandbox.to_path_buf(),
        };
        ensure_mount_point(&bind.target, true)?;
        bind_mount(&bind)?;
    }
    for ((bind, ro), fd) in binds.iter().zip(&source_fds) {
        let is_dir = bind.source.is_dir();
        let bind = match fd {
            Some(fd) => BindMount {
                source: fd_path(fd),
                target: bind.target.clone(),
            },
            None => (*bind).clone(),
        };
        if hidden(&bind.target) {
            ensure_mount_point(&bind.target, is_dir)?;
        }
        bind_mount(&bind)?;
        if *ro {
            read_only(&bind.target)?;
        }
    }
    // The mount points made in them, the masks are sealed.
    for mask in masked {
        seal_mask(mask)?;
    }
    Ok(())
}

/// The paths of `/proc` Docker makes read-only.
const PROC_READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Makes Docker's read-only paths of a fresh `/proc` (`proc`) and `/sys` with every mount below
/// it read-only, each keeping its other flags.
fn protect_kernel(proc: bool) -> Result<(), MountError> {
    if proc {
        for path in PROC_READ_ONLY.iter().map(Path::new).filter(|p| p.exists()) {
            bind_mount(&BindMount {
                source: path.to_path_buf(),
                target: path.to_path_buf(),
            })?;
            read_only(path)?;
        }
    }
    let sys = Path::new("/sys");
    if !sys.is_dir() {
        return Ok(());
    }
    // A recursive bind of /sys on itself: the mounts below it become this namespace's own, and
    // each is made read-only (a remount applies to one mount).
    bind_mount(&BindMount {
        source: sys.to_path_buf(),
        target: sys.to_path_buf(),
    })?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| MountError::MountPoint {
            path: "/proc/self/mountinfo".into(),
            source: e,
        })?;
    let mut seen = Vec::new();
    for point in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        let point = unescape_mount_point(point);
        if (point == sys || point.starts_with(sys)) && !seen.contains(&point) {
            read_only(&point)?;
            seen.push(point);
        }
    }
    Ok(())
}

/// A mount point as `/proc/self/mountinfo` writes it (`\040` for a space, …).
fn unescape_mount_point(text: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let octal = &text[i + 1..i + 4];
            if let Ok(value) = u8::from_str_radix(octal, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The options of a mask's tmpfs: small, empty, nothing to execute or open as a device.
const MASK_OPTIONS: &str = "mode=0755,size=64k";

fn mask_flags() -> MsFlags {
    MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

/// Covers `path` with an empty tmpfs, writable until [`seal_mask`] so that mount points can be
/// made in it.
fn mount_mask(path: &Path) -> Result<(), MountError> {
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        mask_flags(),
        Some(MASK_OPTIONS),
    )
    .map_err(|source| MountError::Tmpfs {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes the mask at `path` read-only (the binds inside keep their own flags).
fn seal_mask(path: &Path) -> Result<(), MountError> {
    nix::mount::mount(
        None::<&str>,
        path,
        Some("tmpfs"),
        mask_flags() | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        Some(MASK_OPTIONS),
    )
    .map_err(|source| MountError::ReadOnly {
        path: path.to_path_buf(),
        source,
    })
}

/// An `O_PATH` descriptor of `path`, which stays usable as a mount source after `path` is
/// covered by another mount.
fn open_path(path: &Path) -> Result<std::os::fd::OwnedFd, MountError> {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|source| MountError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// The path through which `/proc` reaches a descriptor.
fn fd_path(fd: &std::os::fd::OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Creates a missing mount point (a directory, or an empty file for a file).
fn ensure_mount_point(path: &Path, dir: bool) -> Result<(), MountError> {
    if path.exists() {
        return Ok(());
    }
    let created = if dir {
        std::fs::create_dir_all(path)
    } else {
        path.parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::File::create(path).map(drop))
    };
    created.map_err(|source| MountError::MountPoint {
        path: path.to_path_buf(),
        source,
    })
}

fn mount_tmpfs(path: &Path, tmp: &Tmpfs) -> Result<(), MountError> {
    let options = match tmp.size_bytes {
        Some(size) => format!("mode=1777,size={size}"),
        None => "mode=1777".to_string(),
    };
    nix::mount::mount(
        Some("tmpfs"),
        path,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|source| MountError::Tmpfs {
        path: path.to_path_buf(),
        source,
    })
}

fn bind_mount(bind: &BindMount) -> Result<(), MountError> {
    nix::mount::mount(
        Some(&bind.source),
        &bind.target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| MountError::Bind {
        bind: bind.clone(),
        source,
    })
}

/// Makes the bind mount at `path` read-only: a bind mount takes its own flags only on a remount.
/// The mount's nosuid, nodev, noexec and atime flags are kept.
fn read_only(path: &Path) -> Result<(), MountError> {
    use nix::sys::statvfs::FsFlags;
    let kept = nix::sys::statvfs::statvfs(path)
        .map(|st| {
            let flags = st.flags();
            [
                (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
                (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
                (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
                (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
                (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
                (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
            ]
            .into_iter()
            .filter(|(st, _)| flags.contains(*st))
            .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
        })
        .unwrap_or(MsFlags::empty());
    nix::mount::mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept,
        None::<&str>,
    )
    .map_err(|source| MountError::ReadOnly {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(
            unescape_mount_point("/sys/a\\040b"),
            PathBuf::from("/sys/a b")
        );
        assert_eq!(unescape_mount_point("/sys/fs"), PathBuf::from("/sys/fs"));
    }

    #[test]
    fn parses_read_only_mounts() {
        assert_eq!(parse_ro_mounts("").unwrap(), vec![]);
        assert_eq!(
            parse_ro_mounts("/srv/data:/mnt, /etc/ssl:certs,/home").unwrap(),
            vec![
                ReadOnlyMount {
                    host: "/srv/data".into(),
                    container: Some("/mnt".into())
                },
                ReadOnlyMount {
                    host: "/etc/ssl".into(),
                    container: Some("certs".into())
                },
                ReadOnlyMount {
                    host: "/home".into(),
                    container: None
                },
            ]
        );
        assert_eq!(
            parse_ro_mounts("data:/mnt").unwrap_err(),
            "\"data:/mnt\": the host path data must be absolute"
        );
        assert!(parse_ro_mounts("/a:../up").unwrap_err().contains("\"..\""));
        assert!(parse_ro_mounts("/a:").unwrap_err().contains("empty"));
    }

    #[test]
    fn host_paths_are_checked_at_start() {
        let err =
            LinuxFilesystemIsolator::new(parse_ro_mounts("/no/such/dir").unwrap()).unwrap_err();
        assert_eq!(err, "--container-ro-mounts: /no/such/dir does not exist");
        let err = LinuxFilesystemIsolator::new(parse_ro_mounts("/etc:/no/such/point").unwrap())
            .unwrap_err();
        assert!(err.contains("/no/such/point does not exist"), "{err}");
    }

    #[test]
    fn prepare_asks_for_proc_tmp_and_binds() {
        let sandbox = tempfile::tempdir().unwrap();
        let host_file = sandbox.path().join("host.conf");
        std::fs::write(&host_file, "x").unwrap();
        let iso = LinuxFilesystemIsolator::new(
            parse_ro_mounts(&format!(
                "/etc:etc,{}:conf/app.conf,/usr",
                host_file.display()
            ))
            .unwrap(),
        )
        .unwrap();
        let fake = FakeCgroup::new(&[], "cpus:1;mem:64");
        let mut container = fake.container();
        container.sandbox = sandbox.path();
        let mut launch = Launch::default();
        iso.prepare(&container, &mut launch).unwrap();
        assert!(launch.namespaces.mount);
        assert!(!launch.namespaces.pid);
        let mounts = &launch.process.mounts;
        assert!(mounts.proc);
        assert_eq!(
            mounts.tmp,
            Some(Tmpfs {
                size_bytes: Some(64 << 20)
            })
        );
        assert_eq!(mounts.read_only_binds.len(), 3);
        assert_eq!(mounts.read_only_binds[0].target, sandbox.path().join("etc"));
        assert!(sandbox.path().join("etc").is_dir(), "mount point created");
        assert!(sandbox.path().join("conf/app.conf").is_file());
        assert_eq!(
            mounts.read_only_binds[2],
            BindMount {
                source: "/usr".into(),
                target: "/usr".into()
            }
        );
    }
}
