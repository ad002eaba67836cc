//! `linux/capabilities`: the task runs with a bounded set of capabilities.
//!
//! The agent's `--bounding-capabilities` (comma-separated names, `CAP_` optional, any case; `all`
//! keeps every capability) gives the set; the default is Docker's default set (`CHOWN`,
//! `DAC_OVERRIDE`, `FSETID`, `FOWNER`, `MKNOD`, `NET_RAW`, `SETGID`, `SETUID`, `SETFCAP`,
//! `SETPCAP`, `NET_BIND_SERVICE`, `SYS_CHROOT`, `KILL`, `AUDIT_WRITE`; `CapBnd` =
//! `00000000a80425fb`). Before switching to the task's user, the task drops every other
//! capability from its bounding set, clears its ambient set and keeps only bounded ones in its
//! inheritable set. After `execve` a root task therefore holds at most the bounded set in its
//! permitted and effective sets, and nothing (not even a setuid-root or file-capability binary)
//! can gain a capability outside it.

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::Launch;
use caps::{CapSet, Capability, CapsHashSet};
use std::str::FromStr;

pub const NAME: &str = "linux/capabilities";

/// Docker's default capability set: the default of `--bounding-capabilities`.
pub const DEFAULT: &str = "CHOWN,DAC_OVERRIDE,FSETID,FOWNER,MKNOD,NET_RAW,SETGID,SETUID,SETFCAP,\
                           SETPCAP,NET_BIND_SERVICE,SYS_CHROOT,KILL,AUDIT_WRITE";

/// A bounding set, from `--bounding-capabilities`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bounding {
    /// Leave the capabilities alone.
    All,
    /// Exactly these capabilities (bit `n` is capability `n`).
    Only(u64),
}

/// Parses a list of capability names: `all`, `none` (or empty), or comma-separated names such
/// as `chown,CAP_NET_RAW`.
pub fn parse_bounding(text: &str) -> Result<Bounding, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("all") {
        return Ok(Bounding::All);
    }
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(Bounding::Only(0));
    }
    let mut mask = 0u64;
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let cap = Capability::from_str(&caps::to_canonical(name))
            .map_err(|_| format!("unknown capability {name:?}"))?;
        mask |= cap.bitmask();
    }
    Ok(Bounding::Only(mask))
}

/// The names (`CAP_…`) of the capabilities in `mask`, in kernel order.
pub fn names(mask: u64) -> Vec<String> {
    let mut caps: Vec<Capability> = caps::all()
        .into_iter()
        .filter(|c| mask & c.bitmask() != 0)
        .collect();
    caps.sort_by_key(Capability::index);
    caps.iter().map(ToString::to_string).collect()
}

#[derive(Debug)]
pub struct CapabilitiesIsolator {
    pub bounding: Bounding,
}

impl Isolator for CapabilitiesIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.process.bounding_capabilities = match self.bounding {
            Bounding::All => None,
            Bounding::Only(mask) => Some(names(mask)),
        };
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    #[error("unknown capability {0:?}")]
    Unknown(String),
    #[error("failed to drop capability {index} from the bounding set: {source}")]
    DropBounding { index: u32, source: nix::Error },
    #[error("failed to restrict the task's {set} capabilities: {message}")]
    Set { set: &'static str, message: String },
}

/// A bounding set checked before forking, applied in the task by [`BoundedCapabilities::apply`].
#[derive(Debug, Clone)]
pub struct BoundedCapabilities {
    mask: u64,
    allowed: CapsHashSet,
}

impl BoundedCapabilities {
    /// The bounding set of `names` (as [`names`] writes them).
    pub fn new(names: &[String]) -> Result<Self, CapabilityError> {
        let mut mask = 0;
        let mut allowed = CapsHashSet::new();
        for name in names {
            let cap = Capability::from_str(&caps::to_canonical(name))
                .map_err(|_| CapabilityError::Unknown(name.clone()))?;
            mask |= cap.bitmask();
            allowed.insert(cap);
        }
        Ok(Self { mask, allowed })
    }

    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Bounds the calling process: drops every other capability from the bounding set (also
    /// those newer than this library, up to the kernel's last), clears the ambient set and
    /// intersects the inheritable set. Call it before switching to the task's user: dropping from
    /// the bounding set needs `CAP_SETPCAP`.
    pub fn apply(&self) -> Result<(), CapabilityError> {
        for index in 0..64u32 {
            if self.mask & (1u64 << index) != 0 {
                continue;
            }
            // SAFETY: prctl(2) with integer arguments.
            let rc =
                unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(index), 0, 0, 0) };
            if rc != 0 {
                match nix::Error::last() {
                    // Beyond the kernel's last capability.
                    nix::Error::EINVAL => {}
                    source => return Err(CapabilityError::DropBounding { index, source }),
                }
            }
        }
        // SAFETY: prctl(2) with integer arguments; EINVAL on kernels without ambient capabilities
        // (before 4.3), which have none to clear.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
        let set_err = |set| {
            move |err: caps::errors::CapsError| CapabilityError::Set {
                set,
                message: err.to_string(),
            }
        };
        let inheritable = caps::read(None, CapSet::Inheritable).map_err(set_err("inheritable"))?;
        let kept: CapsHashSet = inheritable.intersection(&self.allowed).copied().collect();
        if kept.len() != inheritable.len() {
            caps::set(None, CapSet::Inheritable, &kept).map_err(set_err("inheritable"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cgroups::testing::FakeCgroup;

    #[test]
    fn the_default_is_dockers_set() {
        assert_eq!(
            parse_bounding(DEFAULT).unwrap(),
            Bounding::Only(0xa804_25fb)
        );
        assert_eq!(names(0xa804_25fb).len(), 14);
        assert_eq!(names(0b11), vec!["CAP_CHOWN", "CAP_DAC_OVERRIDE"]);
    }

    #[test]
    fn parses_names_in_any_case_with_or_without_prefix() {
        assert_eq!(
            parse_bounding("chown, CAP_KILL").unwrap(),
            Bounding::Only((1 << 0) | (1 << 5))
        );
        assert_eq!(parse_bounding("ALL").unwrap(), Bounding::All);
        assert_eq!(parse_bounding("none").unwrap(), Bounding::Only(0));
        assert_eq!(parse_bounding("").unwrap(), Bounding::Only(0));
        assert_eq!(
            parse_bounding("chown,fly").unwrap_err(),
            "unknown capability \"fly\""
        );
    }

    #[test]
    fn prepare_carries_the_names_and_they_round_trip() {
        let fake = FakeCgroup::new(&[], "cpus:1");
        let mut launch = Launch::default();
        CapabilitiesIsolator {
            bounding: Bounding::Only(0xa804_25fb),
        }
        .prepare(&fake.container(), &mut launch)
        .unwrap();
        let names = launch.process.bounding_capabilities.unwrap();
        assert_eq!(names[0], "CAP_CHOWN");
        assert_eq!(
            BoundedCapabilities::new(&names).unwrap().mask(),
            0xa804_25fb
        );
        assert!(matches!(
            BoundedCapabilities::new(&["CAP_NOPE".to_string()]),
            Err(CapabilityError::Unknown(_))
        ));

        let mut launch = Launch::default();
        CapabilitiesIsolator {
            bounding: Bounding::All,
        }
        .prepare(&fake.container(), &mut launch)
        .unwrap();
        assert_eq!(launch.process.bounding_capabilities, None);
    }
}
