//! Unpacking one layer (a tar, plain, gzip or zstd) into a directory that overlayfs uses as a
//! lower layer.
//!
//! OCI whiteouts become overlayfs ones: `.wh.NAME` a character device 0:0 named `NAME`,
//! `.wh..wh..opq` the `trusted.overlay.opaque=y` attribute on its directory, so that the layers
//! stack in the kernel exactly as the image spec stacks them.
//!
//! Nothing in a layer may write outside its directory: entries with `..` or an absolute path,
//! entries whose parent is a symlink (`link -> /etc` then `link/passwd`), hard links to a path
//! outside the layer or through a symlink, and device nodes are refused, and the caller unpacks
//! into a temporary directory it removes on any error, so that no partial layer is left behind.
//! Symlinks themselves may point anywhere: they are only ever resolved inside the container.

use crate::digest::{Digest, HashingReader};
use std::fs;
use std::io::{BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("tar entry {entry:?}: {why}")]
    Refused { entry: String, why: String },
    #[error("the layer is not a valid tar stream: {0}")]
    Tar(std::io::Error),
    #[error("failed to unpack {entry:?} to {}: {source}", path.display())]
    Write {
        entry: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the uncompressed layer has digest {actual}, but the image config says {expected}")]
    DiffId { expected: Digest, actual: Digest },
}

/// What unpacking found.
#[derive(Debug, Clone)]
pub struct Unpacked {
    /// The digest of the uncompressed tar (the layer's `diff_id`).
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar.
    pub size: u64,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";
/// Extended attributes a layer may carry; others (notably `trusted.overlay.*`, which would
/// steer overlayfs) are dropped.
const KEPT_XATTRS: &[&str] = &["security.capability", "user."];

/// Unpacks the (possibly compressed) tar `input` into `dest`, which exists and is empty.
/// `expected_diff_id`, when given, must match the uncompressed stream.
pub fn unpack(
    input: impl Read,
    dest: &Path,
    expected_diff_id: Option<&Digest>,
) -> Result<Unpacked, UnpackError> {
    let mut input = BufReader::with_capacity(256 << 10, input);
    let magic = {
        use std::io::BufRead;
        input.fill_buf().map_err(UnpackError::Tar)?.to_vec()
    };
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(UnpackError::Tar)?)
    } else {
        Box::new(input)
    };
    let hashing = HashingReader::new(decompressed);
    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    // Entries are applied in tar order (a hard link is made when it comes, to the file as it is
    // then), as `tar -x` does.
    for entry in archive.entries().map_err(UnpackError::Tar)? {
        let mut entry = entry.map_err(UnpackError::Tar)?;
        unpack_entry(&mut entry, dest)?;
    }
    let (diff_id, size) = archive.into_inner().finish().map_err(UnpackError::Tar)?;
    if let Some(expected) = expected_diff_id {
        if &diff_id != expected {
            return Err(UnpackError::DiffId {
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    Ok(Unpacked { diff_id, size })
}

/// The entry's path as safe relative components; `None` for the root itself (`./`).
fn relative(entry: &str, raw: &Path) -> Result<Option<PathBuf>, UnpackError> {
    let refuse = |why: &str| UnpackError::Refused {
        entry: entry.to_string(),
        why: why.to_string(),
    };
    let mut out = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("the path contains \"..\"")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(refuse("the path is absolute"))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

/// Makes sure every parent of `rel` below `dest` is a real directory (creating missing ones),
/// refusing a path that goes through a symlink or a file.
fn prepare_parents(entry: &str, dest: &Path, rel: &Path) -> Result<(), UnpackError> {
    let mut current = dest.to_path_buf();
    let mut shown = PathBuf::new();
    let parents: Vec<_> = rel.components().collect();
    for component in &parents[..parents.len().saturating_sub(1)] {
        current.push(component);
        shown.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnpackError::Refused {
                    entry: entry.to_string(),
                    why: format!("it goes through the symlink {}", shown.display()),
                })
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(UnpackError::Refused {
                    entry: entry.to_string(),
                    why: format!("its parent {} is not a directory", shown.display()),
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(|source| UnpackError::Write {
                    entry: entry.to_string(),
                    path: current.clone(),
                    source,
                })?;
            }
            Err(source) => {
                return Err(UnpackError::Write {
                    entry: entry.to_string(),
                    path: current,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (an earlier entry of the same layer), unless both it and the
/// new entry are directories.
fn clear(entry: &str, path: &Path, keep_dir: bool) -> Result<(), UnpackError> {
    let write = |source| UnpackError::Write {
        entry: entry.to_string(),
        path: path.to_path_buf(),
        source,
    };
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if !keep_dir {
                fs::remove_dir_all(path).map_err(write)?;
            }
        }
        Ok(_) => fs::remove_file(path).map_err(write)?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(write(err)),
    }
    Ok(())
}

fn unpack_entry<R: Read>(entry: &mut tar::Entry<'_, R>, dest: &Path) -> Result<(), UnpackError> {
    let raw = entry.path().map_err(UnpackError::Tar)?.into_owned();
    let name = raw.to_string_lossy().into_owned();
    let refuse = |why: String| UnpackError::Refused {
        entry: name.clone(),
        why,
    };
    let kind = entry.header().entry_type();
    let Some(rel) = relative(&name, &raw)? else {
        return Ok(());
    };
    let write = |path: &Path, source| UnpackError::Write {
        entry: name.clone(),
        path: path.to_path_buf(),
        source,
    };
    match kind {
        tar::EntryType::Char | tar::EntryType::Block => {
            return Err(refuse(
                "device nodes are not allowed in image layers".to_string(),
            ))
        }
        tar::EntryType::Regular
        | tar::EntryType::Continuous
        | tar::EntryType::Directory
        | tar::EntryType::Symlink
        | tar::EntryType::Link
        | tar::EntryType::Fifo => {}
        other => return Err(refuse(format!("unsupported entry type {other:?}"))),
    }
    prepare_parents(&name, dest, &rel)?;
    let file_name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = dest.join(&rel);
    if file_name == OPAQUE {
        let dir = path.parent().unwrap_or(dest);
        set_xattr(dir, "trusted.overlay.opaque", b"y").map_err(|e| write(dir, e))?;
        return Ok(());
    }
    if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
            return Err(refuse("a whiteout without a valid name".to_string()));
        }
        let target = path.with_file_name(hidden);
        clear(&name, &target, false)?;
        nix::sys::stat::mknod(
            &target,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .map_err(|e| write(&target, e.into()))?;
        return Ok(());
    }
    match kind {
        tar::EntryType::Link => {
            let link = entry
                .link_name()
                .map_err(UnpackError::Tar)?
                .ok_or_else(|| refuse("a hard link without a target".to_string()))?
                .into_owned();
            let target_rel = relative(&name, &link)
                .map_err(|_| {
                    refuse(format!(
                        "the hard link target {} is outside the layer",
                        link.display()
                    ))
                })?
                .ok_or_else(|| refuse("a hard link to the layer's root".to_string()))?;
            prepare_parents(&name, dest, &target_rel).map_err(|_| {
                refuse(format!(
                    "the hard link target {} goes through a symlink or is missing",
                    link.display()
                ))
            })?;
            let target = dest.join(&target_rel);
            match fs::symlink_metadata(&target) {
                Ok(meta) if !meta.is_dir() => {}
                _ => {
                    return Err(refuse(format!(
                        "the hard link target {} is not a file of this layer",
                        link.display()
                    )))
                }
            }
            if target == path {
                return Ok(());
            }
            clear(&name, &path, false)?;
            fs::hard_link(&target, &path).map_err(|e| write(&path, e))?;
        }
        _ => {
            clear(&name, &path, kind == tar::EntryType::Directory)?;
            entry.unpack(&path).map_err(|e| write(&path, e))?;
            apply_xattrs(entry, &path).map_err(|e| write(&path, e))?;
        }
    }
    Ok(())
}

fn apply_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, path: &Path) -> std::io::Result<()> {
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(());
    };
    for extension in extensions {
        let extension = extension?;
        let Ok(key) = extension.key() else { continue };
        let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
            continue;
        };
        if KEPT_XATTRS.iter().any(|k| attr.starts_with(k)) {
            set_xattr(path, attr, extension.value_bytes())?;
        }
    }
    Ok(())
}

/// `lsetxattr(2)`: never follows a symlink.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let path_c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("a path with a NUL byte"))?;
    let name_c = std::ffi::CString::new(name).map_err(|_| std::io::Error::other("a NUL byte"))?;
    // SAFETY: both C strings live across the call; `value` is a live buffer of its length.
    let rc = unsafe {
        libc::lsetxattr(
            path_c.as_ptr(),
            name_c.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    /// A tar built entry by entry, including entries `tar::Builder` would refuse to write.
    struct RawTar(Vec<u8>);

    impl RawTar {
        fn new() -> Self {
            Self(Vec::new())
        }
        fn entry(mut self, kind: tar::EntryType, path: &str, link: &str, data: &[u8]) -> Self {
            let mut h = tar::Header::new_old();
            {
                let bytes = h.as_old_mut();
                bytes.name[..path.len()].copy_from_slice(path.as_bytes());
                bytes.linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_cksum();
            self.0.extend_from_slice(h.as_bytes());
            self.0.extend_from_slice(data);
            let pad = (512 - data.len() % 512) % 512;
            self.0.extend(std::iter::repeat_n(0, pad));
            self
        }
        fn file(self, path: &str, data: &[u8]) -> Self {
            self.entry(tar::EntryType::Regular, path, "", data)
        }
        fn finish(mut self) -> Vec<u8> {
            self.0.extend(std::iter::repeat_n(0, 1024));
            self.0
        }
    }

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn files_dirs_links_and_whiteouts() {
        if !root() {
            eprintln!("skipped files_dirs_links_and_whiteouts: needs root (mknod, trusted xattrs)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let tar = RawTar::new()
            .entry(tar::EntryType::Directory, "./", "", b"")
            .file("bin/busybox", b"ELF")
            .entry(tar::EntryType::Symlink, "bin/sh", "/bin/busybox", b"")
            .entry(tar::EntryType::Link, "bin/ls", "bin/busybox", b"")
            .file("etc/.wh.passwd", b"")
            .file("opt/.wh..wh..opq", b"")
            .finish();
        let out = unpack(&tar[..], dir.path(), Some(&Digest::of(&tar))).unwrap();
        assert_eq!(out.size, tar.len() as u64);
        let p = dir.path();
        assert_eq!(fs::read(p.join("bin/busybox")).unwrap(), b"ELF");
        assert_eq!(
            fs::read_link(p.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(fs::read(p.join("bin/ls")).unwrap(), b"ELF");
        let whiteout = fs::symlink_metadata(p.join("etc/passwd")).unwrap();
        assert!(whiteout.file_type().is_char_device());
        let mut buf = [0u8; 4];
        let name = std::ffi::CString::new("trusted.overlay.opaque").unwrap();
        let path = std::ffi::CString::new(p.join("opt").as_os_str().as_bytes()).unwrap();
        // SAFETY: live C strings and buffer.
        let n =
            unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 4) };
        assert_eq!(&buf[..n as usize], b"y");
    }

    #[test]
    fn compressed_layers_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let tar = RawTar::new().file("a", b"gz").finish();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let out = unpack(&gz[..], dir.path(), Some(&Digest::of(&tar))).unwrap();
        assert_eq!(out.diff_id, Digest::of(&tar));
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        unpack(&zst[..], dir.path(), None).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"gz");
    }

    #[test]
    fn hostile_entries_are_refused() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (RawTar::new().file("../escape", b"x").finish(), "\"..\""),
            (
                RawTar::new().file("a/../../escape", b"x").finish(),
                "\"..\"",
            ),
            (RawTar::new().file("/etc/evil", b"x").finish(), "absolute"),
            (
                RawTar::new()
                    .entry(tar::EntryType::Symlink, "link", "/tmp", b"")
                    .file("link/evil", b"x")
                    .finish(),
                "symlink link",
            ),
            (
                RawTar::new()
                    .entry(tar::EntryType::Link, "h", "../../etc/passwd", b"")
                    .finish(),
                "outside the layer",
            ),
            (
                RawTar::new()
                    .entry(tar::EntryType::Link, "h", "/etc/passwd", b"")
                    .finish(),
                "outside the layer",
            ),
            (
                RawTar::new()
                    .entry(tar::EntryType::Symlink, "l", "/etc", b"")
                    .entry(tar::EntryType::Link, "h", "l/passwd", b"")
                    .finish(),
                "symlink",
            ),
            (
                RawTar::new()
                    .entry(tar::EntryType::Char, "dev/mem", "", b"")
                    .finish(),
                "device nodes",
            ),
            (
                RawTar::new()
                    .entry(tar::EntryType::Block, "sda", "", b"")
                    .finish(),
                "device nodes",
            ),
        ];
        for (tar, why) in cases {
            let outer = tempfile::tempdir().unwrap();
            let dest = outer.path().join("layer");
            fs::create_dir(&dest).unwrap();
            let err = unpack(&tar[..], &dest, None).unwrap_err().to_string();
            assert!(err.contains(why), "expected {why:?} in {err:?}");
            // Nothing was written beside the layer.
            let names: Vec<_> = fs::read_dir(outer.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, vec![std::ffi::OsString::from("layer")], "{err}");
        }
    }

    #[test]
    fn diff_ids_and_truncation_are_checked() {
        let tar = RawTar::new().file("a", b"x").finish();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&tar[..], dir.path(), Some(&Digest::of(b"other")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("diff_id") || err.contains("image config says"),
            "{err}"
        );
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &RawTar::new().file("a", &[7u8; 4096]).finish())
            .unwrap();
        let gz = gz.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&gz[..gz.len() / 2], dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(!err.is_empty());
    }
}
