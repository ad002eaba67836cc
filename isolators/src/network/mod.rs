//! `network/ports` and `network/accounting`: BPF programs (strata-ebpf) attached once at the
//! agent's cgroup subtree, with one map entry per container keyed by its cgroup id.
//!
//! Both isolators share one [`NetworkBpf`], set up by [`crate::Isolation::setup`] when either
//! is selected.

pub mod accounting;
pub mod ports;

use crate::cgroup2::Cgroup;
use crate::isolator::{Container, IsolatorError};
use crate::selection::Host;
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use strata_ebpf::BpfError;

pub use strata_ebpf::NetworkBpf;

/// Whether BPF network isolators can work on `host`: cgroup BPF links need the cgroup2
/// mount to show the hierarchy's root, since containers are found by their depth in it. That
/// the kernel accepts the programs is only known once they are loaded
/// ([`crate::Isolation::setup`] reports the verifier's words).
pub fn available(host: &Host) -> Result<(), String> {
    let mount = host.cgroup_mount.path();
    let is_cgroup2 = nix::sys::statfs::statfs(mount)
        .map(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    if !is_cgroup2 {
        return Err(format!(
            "{} is not a cgroup2 filesystem: BPF programs attach to real cgroups only",
            mount.display()
        ));
    }
    // Files the kernel leaves out of the root cgroup: present means the mount is a subtree
    // (a cgroup namespace, or a bind mount of part of the hierarchy).
    if host.cgroup_mount.has("cgroup.type") {
        return Err(format!(
            "the cgroup2 mount at {} is not the root of the hierarchy (a cgroup namespace?), \
             so container cgroups cannot be found by their depth",
            host.cgroup_mount.path().display()
        ));
    }
    Ok(())
}

/// The depth of the container cgroups under `root` (the agent's subtree) in the hierarchy
/// whose root is mounted at `mount`: `<mount>/strata/<id>` is at depth 2.
pub fn container_level(mount: &Cgroup, root: &Cgroup) -> Result<u32, String> {
    let relative = root.path().strip_prefix(mount.path()).map_err(|_| {
        format!(
            "the agent's cgroup {} is not under the cgroup2 mount {}",
            root.path().display(),
            mount.path().display()
        )
    })?;
    u32::try_from(relative.components().count() + 1)
        .map_err(|_| "the agent's cgroup is too deep".to_string())
}

/// The cgroup ids of the containers an isolator has entries for, by container id. The supervisor
/// removes a container's cgroup as soon as its init exits, before `cleanup` runs, so the id that
/// keys the map entries is learnt while the cgroup exists (`prepare`, `recover`) and kept here.
#[derive(Debug, Default)]
pub(crate) struct CgroupIds(Mutex<HashMap<String, u64>>);

impl CgroupIds {
    /// The container's cgroup id, read from its cgroup (and remembered) if not known yet.
    pub(crate) fn get(
        &self,
        isolator: &'static str,
        container: &Container,
    ) -> Result<u64, IsolatorError> {
        let mut ids = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(id) = ids.get(container.id) {
            return Ok(*id);
        }
        let id = container
            .cgroup
            .id()
            .map_err(IsolatorError::cgroup(isolator))?;
        ids.insert(container.id.to_string(), id);
        Ok(id)
    }

    /// Forgets the container, returning its cgroup id if it was known (or its cgroup still
    /// exists).
    pub(crate) fn take(&self, container: &Container) -> Option<u64> {
        let known = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(container.id);
        known.or_else(|| container.cgroup.id().ok())
    }
}

pub(crate) fn bpf_error(isolator: &'static str) -> impl Fn(BpfError) -> IsolatorError {
    move |err| IsolatorError::Invalid {
        isolator,
        message: err.to_string(),
    }
}
