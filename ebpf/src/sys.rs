//! The bpf(2) commands aya 0.14 does not expose for links: open a pinned link, read its info
//! (which cgroup it is attached to), swap its program atomically (BPF_LINK_UPDATE, how a
//! restarted or upgraded agent replaces the programs without a moment unenforced), and count
//! the programs attached to a cgroup (BPF_PROG_QUERY, what tools and tests check).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_LINK_UPDATE: libc::c_long = 29;
/// `BPF_F_QUERY_EFFECTIVE`: count what applies to the cgroup, inherited from its ancestors too.
pub const QUERY_EFFECTIVE: u32 = 1;

/// `union bpf_attr` is far smaller than this; the kernel wants the unused tail zeroed.
type Attr = [u64; 16];

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a zero-initialised buffer larger than every `union bpf_attr` variant,
    // laid out by the callers as the kernel expects for `cmd`; the kernel reads and writes
    // within `size_of::<Attr>()` bytes only.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of::<Attr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens the BPF object pinned at `path` (BPF_OBJ_GET).
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
    let mut attr: Attr = [0; 16];
    attr[0] = path.as_ptr() as u64;
    let fd = bpf(BPF_OBJ_GET, &mut attr)?;
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("BPF_OBJ_GET: fd out of range"))?;
    // SAFETY: BPF_OBJ_GET returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What the kernel says about a cgroup link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupLinkInfo {
    pub prog_id: u32,
    /// 0 once the cgroup is gone (the link is then defunct).
    pub cgroup_id: u64,
    pub attach_type: u32,
}

/// `struct bpf_link_info` of a cgroup link (BPF_OBJ_GET_INFO_BY_FD).
pub fn cgroup_link_info(link: BorrowedFd) -> io::Result<CgroupLinkInfo> {
    // struct bpf_link_info { __u32 type; __u32 id; __u32 prog_id; union { struct { __u64
    // cgroup_id; __u32 attach_type; } cgroup; … } } (the union is 8-byte aligned: offset 16).
    let mut info = [0u64; 32];
    let mut attr: Attr = [0; 16];
    let fd = u32::try_from(link.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?;
    let info_len = u32::try_from(std::mem::size_of_val(&info)).unwrap_or(u32::MAX);
    attr[0] = u64::from(fd) | (u64::from(info_len) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(CgroupLinkInfo {
        prog_id: (info[1] & 0xffff_ffff) as u32,
        cgroup_id: info[2],
        attach_type: (info[3] & 0xffff_ffff) as u32,
    })
}

/// Replaces the program of `link` with `prog` (BPF_LINK_UPDATE): atomic, no gap.
pub fn link_update(link: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let link = u32::try_from(link.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?;
    let prog = u32::try_from(prog.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?;
    let mut attr: Attr = [0; 16];
    attr[0] = u64::from(link) | (u64::from(prog) << 32);
    bpf(BPF_LINK_UPDATE, &mut attr).map(drop)
}

/// How many programs of `attach_type` are attached to the cgroup `cgroup` itself (or, with
/// [`QUERY_EFFECTIVE`] in `flags`, apply to it, attached there or above) (BPF_PROG_QUERY).
pub fn prog_query_count(cgroup: BorrowedFd, attach_type: u32, flags: u32) -> io::Result<u32> {
    // query: { __u32 target_fd; __u32 attach_type; __u32 query_flags; __u32 attach_flags;
    // __aligned_u64 prog_ids; __u32 prog_cnt; … }: no id buffer, so the kernel only counts.
    let fd = u32::try_from(cgroup.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?;
    let mut attr: Attr = [0; 16];
    attr[0] = u64::from(fd) | (u64::from(attach_type) << 32);
    attr[1] = u64::from(flags);
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok((attr[3] & 0xffff_ffff) as u32)
}
