//! A small, direct cgroup v2 layer.
//!
//! `cgroups-rs` cannot serve Strata: it hard-codes `/sys/fs/cgroup` and treats a hybrid host (v1
//! controllers at `/sys/fs/cgroup/*`, cgroup2 at `/sys/fs/cgroup/unified`) as a v1 host. This
//! module finds the cgroup2 mount in `/proc/self/mountinfo` and only ever touches paths it has
//! verified to lie on a cgroup2 filesystem:
//!
//! - [`Cgroup::open`] checks the path's filesystem magic (`CGROUP2_SUPER_MAGIC`) with `statfs(2)`;
//! - [`Cgroup::create`] checks the mount root the same way and accepts only a relative path
//!   without `..` below it, so nothing can climb out of the cgroup2 mount into a v1 hierarchy;
//! - [`Cgroup::create_child`] and every file name given to [`Cgroup::read`]/[`Cgroup::write`]
//!   obey the same rule.
//!
//! Invariant: nothing in this module creates, writes or moves processes into a v1 hierarchy.

use std::fs::File;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The filesystem magic of cgroup2 (`statfs(2)` `f_type`).
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("failed to read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("no cgroup2 filesystem is mounted (looked in {})", path.display())]
    NoMount { path: PathBuf },
    #[error("{} is not on a cgroup2 filesystem", path.display())]
    NotCgroup2 { path: PathBuf },
    #[error("failed to inspect the filesystem of {}: {source}", path.display())]
    Statfs { path: PathBuf, source: nix::Error },
    #[error("invalid cgroup path {path:?}: {reason}")]
    InvalidPath { path: PathBuf, reason: &'static str },
    #[error("failed to create the cgroup {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to remove the cgroup {}: {source}", path.display())]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("processes of the cgroup {} kept appearing while it was being killed", path.display())]
    KillTimeout { path: PathBuf },
}

/// The mount point of the first cgroup2 filesystem listed in `mountinfo` (normally
/// `/proc/self/mountinfo`). A mount of the hierarchy's root is preferred over bind mounts of
/// a subtree.
pub fn find_cgroup2_mount(mountinfo: &Path) -> Result<PathBuf, CgroupError> {
    let text = std::fs::read_to_string(mountinfo).map_err(|source| CgroupError::Read {
        path: mountinfo.to_path_buf(),
        source,
    })?;
    parse_cgroup2_mount(&text).ok_or_else(|| CgroupError::NoMount {
        path: mountinfo.to_path_buf(),
    })
}

/// [`find_cgroup2_mount`] on text in the `/proc/<pid>/mountinfo` format.
pub fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut subtree = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some(sep) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if sep < 6 || fields.get(sep + 1) != Some(&"cgroup2") {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(fields[4]));
        if fields[3] == "/" {
            return Some(mount_point);
        }
        subtree.get_or_insert(mount_point);
    }
    subtree
}

/// Undoes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) of mountinfo fields.
fn unescape_mountinfo(field: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    out.push(byte);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    std::ffi::OsString::from_vec(out)
}

/// Whether a `cgroup.events` file says the cgroup (or a descendant) holds processes.
pub fn parse_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|line| match line.split_once(' ') {
        Some(("populated", value)) => match value.trim() {
            "0" => Some(false),
            "1" => Some(true),
            _ => None,
        },
        _ => None,
    })
}

/// Parses `cgroup.procs` (one pid per line).
pub fn parse_procs(text: &str) -> Result<Vec<i32>, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().map_err(|_| format!("{l:?} is not a pid")))
        .collect()
}

/// Checks that `path` is a relative path of plain names (no `..`, `.`, root or prefix).
fn check_relative(path: &Path) -> Result<(), CgroupError> {
    let invalid = |reason| {
        Err(CgroupError::InvalidPath {
            path: path.to_path_buf(),
            reason,
        })
    };
    if path.as_os_str().is_empty() {
        return invalid("it is empty");
    }
    for component in path.components() {
        match component {
            Component::Normal(_) => {}
            Component::ParentDir => return invalid("it must not contain \"..\""),
            Component::CurDir => return invalid("it must not contain \".\""),
            Component::RootDir | Component::Prefix(_) => return invalid("it must be relative"),
        }
    }
    Ok(())
}

/// Checks that `path` is on a cgroup2 filesystem.
fn verify_cgroup2(path: &Path) -> Result<(), CgroupError> {
    let stat = nix::sys::statfs::statfs(path).map_err(|source| CgroupError::Statfs {
        path: path.to_path_buf(),
        source,
    })?;
    if stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC {
        Ok(())
    } else {
        Err(CgroupError::NotCgroup2 {
            path: path.to_path_buf(),
        })
    }
}

/// A directory of the cgroup2 hierarchy, verified to be one when the value was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// An existing cgroup; fails unless `path` lies on a cgroup2 filesystem.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CgroupError> {
        let path = path.as_ref();
        if !path.is_absolute() {
            return Err(CgroupError::InvalidPath {
                path: path.to_path_buf(),
                reason: "it must be absolute",
            });
        }
        verify_cgroup2(path)?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Creates `mount/relative` (and any missing parents; existing ones are fine) after checking
    /// that `mount` is on a cgroup2 filesystem and `relative` stays below it.
    pub fn create(
        mount: impl AsRef<Path>,
        relative: impl AsRef<Path>,
    ) -> Result<Self, CgroupError> {
        Self::open(mount)?.create_child(relative)
    }

    /// Creates the cgroup `relative` below this one (and any missing parents; existing ones are
    /// fine).
    pub fn create_child(&self, relative: impl AsRef<Path>) -> Result<Self, CgroupError> {
        let relative = relative.as_ref();
        check_relative(relative)?;
        let mut path = self.path.clone();
        for component in relative.components() {
            path.push(component);
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
                Err(source) => return Err(CgroupError::Create { path, source }),
            }
        }
        Ok(Self { path })
    }

    /// The existing cgroup `relative` below this one, without creating it. Like every path
    /// below a verified cgroup, it stays on the cgroup2 filesystem.
    pub fn child(&self, relative: impl AsRef<Path>) -> Result<Self, CgroupError> {
        let relative = relative.as_ref();
        check_relative(relative)?;
        Ok(Self {
            path: self.path.join(relative),
        })
    }

    /// A value for a directory that is not checked; for unit tests against a temp dir.
    #[cfg(test)]
    pub(crate) fn unchecked(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup's id (its inode number), as BPF programs see it (`bpf_get_current_cgroup_id`).
    pub fn id(&self) -> Result<u64, CgroupError> {
        std::fs::metadata(&self.path)
            .map(|m| m.ino())
            .map_err(|source| CgroupError::Read {
                path: self.path.clone(),
                source,
            })
    }

    fn file(&self, name: &str) -> Result<PathBuf, CgroupError> {
        let relative = Path::new(name);
        check_relative(relative)?;
        if relative.components().count() != 1 {
            return Err(CgroupError::InvalidPath {
                path: relative.to_path_buf(),
                reason: "it must be a file name",
            });
        }
        Ok(self.path.join(relative))
    }

    /// The contents of the interface file `name` (e.g. `cgroup.procs`).
    pub fn read(&self, name: &str) -> Result<String, CgroupError> {
        let path = self.file(name)?;
        std::fs::read_to_string(&path).map_err(|source| CgroupError::Read { path, source })
    }

    /// Whether the interface file `name` exists (e.g. `memory.swap.max` needs swap accounting).
    pub fn has(&self, name: &str) -> bool {
        self.file(name).is_ok_and(|path| path.exists())
    }

    /// The contents of the interface file `name`, or `None` when the file does not exist (its
    /// controller is not enabled, or the kernel lacks the feature).
    pub fn read_optional(&self, name: &str) -> Result<Option<String>, CgroupError> {
        let path = self.file(name)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CgroupError::Read { path, source }),
        }
    }

    /// Writes `value` to the interface file `name` in one `write(2)`.
    pub fn write(&self, name: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.file(name)?;
        write_existing(&path, value).map_err(|source| CgroupError::Write {
            path,
            value: value.to_string(),
            source,
        })
    }

    /// `cgroup.procs` opened for writing, to move processes that do not exist yet (a child
    /// writes `0` to it to move itself).
    pub fn open_procs(&self) -> Result<File, CgroupError> {
        let path = self.file("cgroup.procs")?;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|source| CgroupError::Write {
                path,
                value: String::new(),
                source,
            })
    }

    /// The cgroup's directory, opened for `clone3(2)`'s `CLONE_INTO_CGROUP` (see
    /// [`crate::namespaces::clone_into`]).
    pub fn open_dir(&self) -> Result<File, CgroupError> {
        File::open(&self.path).map_err(|source| CgroupError::Read {
            path: self.path.clone(),
            source,
        })
    }

    /// Moves the process `pid` (0: the caller) into this cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        self.write("cgroup.procs", &pid.to_string())
    }

    /// The processes in this cgroup (not its descendants), as pids of the caller's namespace.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let text = self.read("cgroup.procs")?;
        parse_procs(&text).map_err(|reason| CgroupError::Parse {
            path: self.path.join("cgroup.procs"),
            reason,
        })
    }

    /// Whether this cgroup or a descendant holds a process (`populated` of `cgroup.events`).
    pub fn populated(&self) -> Result<bool, CgroupError> {
        let text = self.read("cgroup.events")?;
        parse_populated(&text).ok_or_else(|| CgroupError::Parse {
            path: self.path.join("cgroup.events"),
            reason: "no \"populated\" line".to_string(),
        })
    }

    /// SIGKILLs every process of this cgroup and its descendants, with `cgroup.kill` (Linux
    /// 5.14+) or, where that file is missing, by killing the pids of `cgroup.procs` until none
    /// are left. Does not wait for them to be gone: see [`Cgroup::wait_empty`].
    pub fn kill(&self) -> Result<(), CgroupError> {
        match self.write("cgroup.kill", "1") {
            Ok(()) => Ok(()),
            // A cgroup removed meanwhile has nothing left to kill.
            Err(CgroupError::Write { source, .. }) if source.kind() == ErrorKind::NotFound => {
                if self.path.exists() {
                    self.kill_by_pid()
                } else {
                    Ok(())
                }
            }
            Err(err) => Err(err),
        }
    }

    fn kill_by_pid(&self) -> Result<(), CgroupError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut found = false;
            self.for_each_descendant(&mut |cg| {
                let pids = match cg.procs() {
                    Ok(pids) => pids,
                    Err(CgroupError::Read { source, .. })
                        if source.kind() == ErrorKind::NotFound =>
                    {
                        Vec::new()
                    }
                    Err(err) => return Err(err),
                };
                for pid in pids {
                    found = true;
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                Ok(())
            })?;
            if !found {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(CgroupError::KillTimeout {
                    path: self.path.clone(),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Calls `f` on the descendants of this cgroup, deepest first, then on this cgroup.
    fn for_each_descendant(
        &self,
        f: &mut dyn FnMut(&Cgroup) -> Result<(), CgroupError>,
    ) -> Result<(), CgroupError> {
        for child in self.children()? {
            child.for_each_descendant(f)?;
        }
        f(self)
    }

    /// The direct child cgroups.
    pub fn children(&self) -> Result<Vec<Cgroup>, CgroupError> {
        let read_err = |source| CgroupError::Read {
            path: self.path.clone(),
            source,
        };
        let entries = match std::fs::read_dir(&self.path) {
            Ok(entries) => entries,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(read_err(err)),
        };
        let mut children = Vec::new();
        for entry in entries {
            let entry = entry.map_err(read_err)?;
            if entry.file_type().map_err(read_err)?.is_dir() {
                children.push(Cgroup { path: entry.path() });
            }
        }
        Ok(children)
    }

    /// Waits until no process is left in this cgroup or its descendants (true at once when the
    /// cgroup no longer exists); false on timeout or when `cgroup.events` cannot be read.
    /// Sleeps in `poll(2)` on `cgroup.events`, which the kernel signals when `populated` changes.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let Ok(path) = self.file("cgroup.events") else {
            return false;
        };
        let mut file = match File::open(&path) {
            Ok(file) => file,
            // Removed meanwhile: a populated cgroup cannot be removed.
            Err(err) => return err.kind() == ErrorKind::NotFound && !self.path.exists(),
        };
        let deadline = Instant::now() + timeout;
        let mut text = String::with_capacity(64);
        loop {
            text.clear();
            if file.seek(SeekFrom::Start(0)).is_err() || file.read_to_string(&mut text).is_err() {
                return false;
            }
            if parse_populated(&text) == Some(false) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            // Re-read at least every 10 ms in case a notification is missed.
            let wait = (deadline - now).min(Duration::from_millis(10));
            let mut fds = [libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            }];
            let ms = libc::c_int::try_from(wait.as_millis().max(1)).unwrap_or(10);
            // SAFETY: `fds` is a valid array of one pollfd for the duration of the call.
            unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        }
    }

    /// Removes this cgroup and its descendant cgroups (deepest first); a cgroup already gone is
    /// fine. Fails (EBUSY) while any of them holds a process.
    pub fn remove(&self) -> Result<(), CgroupError> {
        self.for_each_descendant(&mut |cg| match std::fs::remove_dir(&cg.path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CgroupError::Remove {
                path: cg.path.clone(),
                source,
            }),
        })
    }

    /// The controllers available in this cgroup (`cgroup.controllers`).
    pub fn controllers(&self) -> Result<Vec<String>, CgroupError> {
        Ok(self
            .read("cgroup.controllers")?
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// The controllers enabled for this cgroup's children (`cgroup.subtree_control`).
    pub fn subtree_control(&self) -> Result<Vec<String>, CgroupError> {
        Ok(self
            .read("cgroup.subtree_control")?
            .split_whitespace()
            .map(str::to_string)
            .collect())
    }

    /// Enables `controllers` for this cgroup's children (`+cpu +memory` to `cgroup.subtree_control`).
    pub fn enable_controllers(&self, controllers: &[&str]) -> Result<(), CgroupError> {
        if controllers.is_empty() {
            return Ok(());
        }
        let value = controllers
            .iter()
            .map(|c| format!("+{c}"))
            .collect::<Vec<_>>()
            .join(" ");
        self.write("cgroup.subtree_control", &value)
    }
}

/// Writes to an existing file without creating or truncating it: cgroup interface files take
/// one value per `write(2)`.
fn write_existing(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
    file.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// This build machine: systemd's hybrid layout.
    const HYBRID: &str = "\
22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/root rw
23 22 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "\
24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
27 24 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
30 27 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn finds_the_unified_mount_of_a_hybrid_host() {
        assert_eq!(
            parse_cgroup2_mount(HYBRID),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn finds_a_pure_v2_mount_with_optional_fields() {
        assert_eq!(
            parse_cgroup2_mount(UNIFIED),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
    }

    #[test]
    fn v1_only_hosts_have_no_cgroup2_mount() {
        let v1: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_cgroup2_mount(&v1), None);
        assert_eq!(parse_cgroup2_mount(""), None);
    }

    #[test]
    fn unescapes_mount_points_and_prefers_the_root_of_the_hierarchy() {
        let text = "\
50 22 0:38 /sub /mnt/bind rw - cgroup2 cgroup2 rw
51 22 0:38 / /mnt/my\\040cgroups\\134x rw shared:9 - cgroup2 none rw
";
        assert_eq!(
            parse_cgroup2_mount(text),
            Some(PathBuf::from("/mnt/my cgroups\\x"))
        );
        assert_eq!(
            parse_cgroup2_mount(text.lines().next().unwrap()),
            Some(PathBuf::from("/mnt/bind"))
        );
    }

    #[test]
    fn reads_mountinfo_files_and_names_the_file_when_nothing_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mountinfo");
        std::fs::write(&file, HYBRID).unwrap();
        assert_eq!(
            find_cgroup2_mount(&file).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        std::fs::write(&file, "").unwrap();
        let err = find_cgroup2_mount(&file).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "no cgroup2 filesystem is mounted (looked in {})",
                file.display()
            )
        );
        let missing = dir.path().join("missing");
        assert!(find_cgroup2_mount(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("failed to read"));
    }

    #[test]
    fn parses_cgroup_events() {
        assert_eq!(parse_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated("populated 0"), Some(false));
        assert_eq!(parse_populated("frozen 0\n"), None);
        assert_eq!(parse_populated("populated x\n"), None);
    }

    #[test]
    fn parses_cgroup_procs() {
        assert_eq!(parse_procs("1\n42\n\n").unwrap(), vec![1, 42]);
        assert_eq!(parse_procs("").unwrap(), Vec::<i32>::new());
        assert!(parse_procs("1\nx\n").is_err());
    }

    #[test]
    fn refuses_paths_that_are_not_on_cgroup2() {
        let dir = tempfile::tempdir().unwrap();
        let err = Cgroup::open(dir.path()).unwrap_err();
        assert!(matches!(err, CgroupError::NotCgroup2 { .. }), "{err}");
        assert!(matches!(
            Cgroup::create(dir.path(), "x").unwrap_err(),
            CgroupError::NotCgroup2 { .. }
        ));
        assert!(!dir.path().join("x").exists());
        assert!(matches!(
            Cgroup::open("relative").unwrap_err(),
            CgroupError::InvalidPath { .. }
        ));
    }

    #[test]
    fn child_paths_cannot_climb_out() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::unchecked(dir.path());
        for bad in ["", "..", "a/../../cpu", "/sys/fs/cgroup/cpu", "./a"] {
            let err = cg.create_child(bad).unwrap_err();
            assert!(
                matches!(err, CgroupError::InvalidPath { .. }),
                "{bad}: {err}"
            );
        }
        assert!(cg.read("../x").is_err());
        assert!(cg.write("a/b", "1").is_err());
        let child = cg.create_child("a/b").unwrap();
        assert_eq!(child.path(), dir.path().join("a/b"));
        assert!(child.path().is_dir());
        cg.create_child("a/b").unwrap();
    }

    #[test]
    fn reads_and_writes_interface_files() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::unchecked(dir.path());
        std::fs::write(dir.path().join("cgroup.events"), "populated 1\nfrozen 0\n").unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "12\n34\n").unwrap();
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        assert!(cg.populated().unwrap());
        assert_eq!(cg.procs().unwrap(), vec![12, 34]);
        assert_eq!(cg.controllers().unwrap(), vec!["cpu", "memory", "pids"]);
        cg.enable_controllers(&["cpu", "pids"]).unwrap();
        assert_eq!(cg.subtree_control().unwrap(), vec!["+cpu", "+pids"]);
        // Interface files are never created.
        let err = cg.write("cgroup.kill", "1").unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "failed to write \"1\" to {}/cgroup.kill: ",
                dir.path().display()
            )),
            "{err}"
        );
        assert!(!cg.wait_empty(Duration::from_millis(20)));
        std::fs::write(dir.path().join("cgroup.events"), "populated 0\nfrozen 0\n").unwrap();
        assert!(cg.wait_empty(Duration::from_millis(20)));
    }

    #[test]
    fn killing_without_cgroup_kill_signals_the_listed_pids() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::unchecked(dir.path());
        // An old kernel: no cgroup.kill, and nothing left in cgroup.procs.
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        cg.kill().unwrap();
        // A cgroup removed meanwhile has nothing to kill and nothing to wait for.
        let gone = Cgroup::unchecked(&dir.path().join("gone"));
        gone.kill().unwrap();
        assert!(gone.wait_empty(Duration::from_secs(5)));
    }

    #[test]
    fn remove_takes_descendants_and_tolerates_missing_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let cg = Cgroup::unchecked(&dir.path().join("root"));
        cg.remove().unwrap();
        std::fs::create_dir_all(dir.path().join("root/a/b")).unwrap();
        std::fs::create_dir_all(dir.path().join("root/c")).unwrap();
        assert_eq!(cg.children().unwrap().len(), 2);
        cg.remove().unwrap();
        assert!(!cg.path().exists());
    }
}
