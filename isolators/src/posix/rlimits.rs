//! `posix/rlimits`: resource limits set in the task right before `execve`, from the agent's
//! `--container-rlimits` (default `core=0`: no core dumps filling sandboxes).
//!
//! A limit above the agent's own hard limit needs `CAP_SYS_RESOURCE` (and `nofile` at most
//! `fs.nr_open`); the agent checks that at start and refuses a limit it could not set, rather
//! than failing every task.
//!
//! Syntax: comma-separated `NAME=SOFT[:HARD]` (`HARD` defaults to `SOFT`); a value is a number
//! or `unlimited`; `NAME` is one of [`RESOURCES`], in any case, with or without an `RLIMIT_` (or
//! Mesos' `RLMT_`) prefix. For example `nofile=1024:4096,core=unlimited`.

use crate::isolator::{Container, Isolator, IsolatorError};
use crate::launch::{Launch, Rlimit};
use std::path::Path;

pub const NAME: &str = "posix/rlimits";
/// The default of `--container-rlimits`.
pub const DEFAULT: &str = "core=0";

#[cfg(all(target_os = "linux", target_env = "gnu"))]
type Resource = libc::__rlimit_resource_t;
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
type Resource = libc::c_int;

/// The limits a task may be given, by name.
pub const RESOURCES: [(&str, Resource); 16] = [
    ("as", libc::RLIMIT_AS),
    ("core", libc::RLIMIT_CORE),
    ("cpu", libc::RLIMIT_CPU),
    ("data", libc::RLIMIT_DATA),
    ("fsize", libc::RLIMIT_FSIZE),
    ("locks", libc::RLIMIT_LOCKS),
    ("memlock", libc::RLIMIT_MEMLOCK),
    ("msgqueue", libc::RLIMIT_MSGQUEUE),
    ("nice", libc::RLIMIT_NICE),
    ("nofile", libc::RLIMIT_NOFILE),
    ("nproc", libc::RLIMIT_NPROC),
    ("rss", libc::RLIMIT_RSS),
    ("rtprio", libc::RLIMIT_RTPRIO),
    ("rttime", libc::RLIMIT_RTTIME),
    ("sigpending", libc::RLIMIT_SIGPENDING),
    ("stack", libc::RLIMIT_STACK),
];

fn resource(name: &str) -> Option<Resource> {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("rlimit_")
        .or_else(|| lower.strip_prefix("rlmt_"))
        .unwrap_or(&lower);
    RESOURCES
        .iter()
        .find_map(|(n, r)| (*n == bare).then_some(*r))
}

fn canonical_name(name: &str) -> Option<&'static str> {
    let id = resource(name)?;
    RESOURCES.iter().find_map(|(n, r)| (*r == id).then_some(*n))
}

/// Parses `--container-rlimits`.
pub fn parse_rlimits(text: &str) -> Result<Vec<Rlimit>, String> {
    let value = |entry: &str, v: &str| -> Result<Option<u64>, String> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("unlimited") {
            Ok(None)
        } else {
            v.parse()
                .map(Some)
                .map_err(|_| format!("{entry:?}: {v:?} is not a number or \"unlimited\""))
        }
    };
    let mut limits: Vec<Rlimit> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, values) = entry
            .split_once('=')
            .ok_or_else(|| format!("{entry:?} is not NAME=SOFT[:HARD]"))?;
        let known = RESOURCES.map(|(n, _)| n).join(", ");
        let name = canonical_name(name)
            .ok_or_else(|| format!("{entry:?}: unknown resource limit (known: {known})"))?;
        let (soft, hard) = match values.split_once(':') {
            Some((soft, hard)) => (value(entry, soft)?, value(entry, hard)?),
            None => {
                let v = value(entry, values)?;
                (v, v)
            }
        };
        if hard.is_some_and(|h| soft.is_none_or(|s| s > h)) {
            return Err(format!("{entry:?}: the soft limit is above the hard limit"));
        }
        limits.retain(|l| l.resource != name);
        limits.push(Rlimit {
            resource: name.to_string(),
            soft,
            hard,
        });
    }
    Ok(limits)
}

#[derive(Debug)]
pub struct RlimitsIsolator {
    limits: Vec<Rlimit>,
}

impl RlimitsIsolator {
    /// Checks that the agent can give tasks `limits`: raising a hard limit above the agent's own
    /// needs `CAP_SYS_RESOURCE`, and `nofile` cannot exceed `fs.nr_open` (read under `proc`).
    pub fn new(limits: Vec<Rlimit>, proc: &Path) -> Result<Self, String> {
        let can_raise = caps::has_cap(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_RESOURCE,
        )
        .unwrap_or(false);
        let nr_open: Option<u64> = std::fs::read_to_string(proc.join("sys/fs/nr_open"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        for limit in &limits {
            let id = resource(&limit.resource)
                .ok_or_else(|| format!("unknown resource limit {:?}", limit.resource))?;
            let wanted = limit.hard.unwrap_or(u64::MAX);
            let mut current = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit(2) into a valid struct.
            if unsafe { libc::getrlimit(id, &mut current) } != 0 {
                continue;
            }
            let agent_hard = if current.rlim_max == libc::RLIM_INFINITY {
                u64::MAX
            } else {
                current.rlim_max
            };
            let show = |v: u64| {
                if v == u64::MAX {
                    "unlimited".to_string()
                } else {
                    v.to_string()
                }
            };
            if wanted > agent_hard && !can_raise {
                return Err(format!(
                    "--container-rlimits: the hard {} limit {} is above the agent's own ({})                      and the agent lacks CAP_SYS_RESOURCE to raise it",
                    limit.resource,
                    show(wanted),
                    show(agent_hard)
                ));
            }
            if limit.resource == "nofile" && nr_open.is_some_and(|n| wanted > n) {
                return Err(format!(
                    "--container-rlimits: the hard nofile limit {} is above fs.nr_open ({})",
                    show(wanted),
                    nr_open.map_or_else(String::new, show)
                ));
            }
        }
        Ok(Self { limits })
    }
}

impl Isolator for RlimitsIsolator {
    fn name(&self) -> &'static str {
        NAME
    }

    fn prepare(&self, _container: &Container, launch: &mut Launch) -> Result<(), IsolatorError> {
        launch.process.rlimits = self.limits.clone();
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RlimitError {
    #[error("unknown resource limit {0:?}")]
    Unknown(String),
    #[error("failed to set the {name} limit: {source}")]
    Set {
        name: &'static str,
        source: nix::Error,
    },
}

/// A limit checked before forking, set in the task by [`apply`].
#[derive(Debug, Clone, Copy)]
pub struct PreparedRlimit {
    name: &'static str,
    resource: Resource,
    limit: libc::rlimit,
}

/// Resolves `limits` (as carried in a spec) before forking.
pub fn prepare(limits: &[Rlimit]) -> Result<Vec<PreparedRlimit>, RlimitError> {
    let raw = |v: Option<u64>| v.map_or(libc::RLIM_INFINITY, |v| v as libc::rlim_t);
    limits
        .iter()
        .map(|l| {
            let name = canonical_name(&l.resource)
                .ok_or_else(|| RlimitError::Unknown(l.resource.clone()))?;
            let resource =
                resource(name).ok_or_else(|| RlimitError::Unknown(l.resource.clone()))?;
            Ok(PreparedRlimit {
                name,
                resource,
                limit: libc::rlimit {
                    rlim_cur: raw(l.soft),
                    rlim_max: raw(l.hard),
                },
            })
        })
        .collect()
}

/// Sets `limits` on the calling process (raising a hard limit needs `CAP_SYS_RESOURCE`: call it
/// before dropping privileges).
pub fn apply(limits: &[PreparedRlimit]) -> Result<(), RlimitError> {
    for l in limits {
        // SAFETY: setrlimit(2) with a valid rlimit struct.
        if unsafe { libc::setrlimit(l.resource, &l.limit) } != 0 {
            return Err(RlimitError::Set {
                name: l.name,
                source: nix::Error::last(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn limit(resource: &str, soft: Option<u64>, hard: Option<u64>) -> Rlimit {
        Rlimit {
            resource: resource.to_string(),
            soft,
            hard,
        }
    }

    #[test]
    fn parses_the_default_and_variants() {
        assert_eq!(
            parse_rlimits(DEFAULT).unwrap(),
            vec![limit("core", Some(0), Some(0))]
        );
        assert_eq!(
            parse_rlimits("RLIMIT_NOFILE=1024:4096, rlmt_core=unlimited,Stack=8388608:unlimited")
                .unwrap(),
            vec![
                limit("nofile", Some(1024), Some(4096)),
                limit("core", None, None),
                limit("stack", Some(8_388_608), None)
            ]
        );
        assert_eq!(parse_rlimits("").unwrap(), vec![]);
        // The last mention wins.
        assert_eq!(
            parse_rlimits("core=0,core=1").unwrap(),
            vec![limit("core", Some(1), Some(1))]
        );
    }

    #[test]
    fn rejects_bad_limits_naming_them() {
        let err = parse_rlimits("files=10").unwrap_err();
        assert!(
            err.starts_with("\"files=10\": unknown resource limit (known: as, core, cpu"),
            "{err}"
        );
        assert_eq!(
            parse_rlimits("nofile=4096:1024").unwrap_err(),
            "\"nofile=4096:1024\": the soft limit is above the hard limit"
        );
        assert_eq!(
            parse_rlimits("nofile=unlimited:1024").unwrap_err(),
            "\"nofile=unlimited:1024\": the soft limit is above the hard limit"
        );
        assert_eq!(
            parse_rlimits("nofile=many").unwrap_err(),
            "\"nofile=many\": \"many\" is not a number or \"unlimited\""
        );
        assert_eq!(
            parse_rlimits("nofile").unwrap_err(),
            "\"nofile\" is not NAME=SOFT[:HARD]"
        );
    }

    #[test]
    fn limits_the_agent_cannot_give_are_refused_at_start() {
        let proc = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc.path().join("sys/fs")).unwrap();
        std::fs::write(proc.path().join("sys/fs/nr_open"), "1048576\n").unwrap();
        // Lowering is always possible.
        RlimitsIsolator::new(parse_rlimits("nofile=64,core=0").unwrap(), proc.path()).unwrap();
        let err = RlimitsIsolator::new(parse_rlimits("nofile=2000000").unwrap(), proc.path())
            .unwrap_err();
        assert!(err.contains("nofile") && err.contains("2000000"), "{err}");
    }

    #[test]
    fn prepared_limits_resolve_names() {
        let prepared = prepare(&parse_rlimits("nofile=10:20,core=unlimited").unwrap()).unwrap();
        assert_eq!(prepared[0].resource, libc::RLIMIT_NOFILE);
        assert_eq!(prepared[0].limit.rlim_cur, 10);
        assert_eq!(prepared[1].limit.rlim_max, libc::RLIM_INFINITY);
        assert!(matches!(
            prepare(&[limit("bogus", None, None)]),
            Err(RlimitError::Unknown(_))
        ));
    }

    #[test]
    fn applies_limits_in_a_child_process() {
        // In a forked child, so the test process keeps its limits. The child of this
        // multi-threaded process must not allocate: everything is prepared before the fork.
        let prepared = prepare(&parse_rlimits("core=0:0").unwrap()).unwrap();
        // SAFETY: the child only calls setrlimit/getrlimit and _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let mut got = libc::rlimit {
                    rlim_cur: 1,
                    rlim_max: 1,
                };
                let ok = apply(&prepared).is_ok()
                    // SAFETY: getrlimit(2) into a valid struct.
                    && unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut got) } == 0
                    && got.rlim_cur == 0
                    && got.rlim_max == 0;
                // SAFETY: _exit(2) in the forked child.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
