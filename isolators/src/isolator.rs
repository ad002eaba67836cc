//! The [`Isolator`] trait: one concern of a container's isolation (a cgroup controller, a
//! namespace, the filesystem, capabilities, …) through the container's whole life.

use crate::cgroup2::{Cgroup, CgroupError};
use crate::launch::Launch;
use crate::statistics::ResourceStatistics;
use std::path::{Path, PathBuf};
use strata_schema::Resources;

/// A container, as an isolator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Container<'a> {
    /// The container id (the name of its cgroup).
    pub id: &'a str,
    /// The container's cgroup, `<cgroup2 mount>/<--cgroups-root>/<container id>`. It exists
    /// from `prepare` to `cleanup`.
    pub cgroup: &'a Cgroup,
    /// The task's sandbox (its working directory).
    pub sandbox: &'a Path,
    /// The hostname the task asked for, or its task id.
    pub hostname: &'a str,
    /// The container's resources: the task's, or those of the latest update.
    pub resources: &'a Resources,
}

#[derive(Debug, thiserror::Error)]
pub enum IsolatorError {
    #[error("{isolator}: {source}")]
    Cgroup {
        isolator: &'static str,
        source: CgroupError,
    },
    #[error("{isolator}: {message}")]
    Invalid {
        isolator: &'static str,
        message: String,
    },
    #[error("{isolator}: failed to create {}: {source}", path.display())]
    Create {
        isolator: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl IsolatorError {
    /// A `map_err` adapter for cgroup errors of `isolator`.
    pub fn cgroup(isolator: &'static str) -> impl Fn(CgroupError) -> IsolatorError {
        move |source| IsolatorError::Cgroup { isolator, source }
    }
}

/// One concern of a container's isolation, driven by the agent through the container's life:
///
/// ```text
///                 prepare                 isolate(init pid)
///   (launch) ───────────────▶ PREPARED ─────────────────────▶ ISOLATED ◀──┐
///                               │  cgroup created, limits        │   │    │ update(resources)
///                               │  written, Launch filled;       │   │    │ usage()
///                               │  the supervisor clones init    │   └────┘
///                               │  INTO the cgroup               │
///                               │                                │ task exits, is killed,
///                 prepare error │ / supervisor failed            │ or is OOM-killed
///                               ▼                                ▼
///                            cleanup ◀──────── terminal update acknowledged ── EXITED
///                               │
///                               ▼
///                             (gone)   cgroup removed, checkpoint dir removed
///
///   agent restart: PREPARED | ISOLATED ──recover(resources from the checkpoint)──▶ ISOLATED
/// ```
///
/// - `prepare` runs in the agent before the supervisor exists: it writes cgroup limit files
///   into the (new, empty) container cgroup and records in [`Launch`] what the supervisor must
///   do inside the container (namespaces, mounts, capabilities, no_new_privs, rlimits).
/// - `isolate` runs once the container's init runs (its host pid is known). Init was cloned
///   straight into the cgroup (`clone3(CLONE_INTO_CGROUP)`), so most isolators have nothing left
///   to do here.
/// - `update` rewrites the limits of a running container; `usage` adds its figures to the
///   container's statistics.
/// - `recover` re-applies the limits of a container adopted by a restarted agent (so an update
///   interrupted by a crash completes); `cleanup` releases what `prepare` took beyond the cgroup,
///   which the containerizer removes.
///
/// Every hook is idempotent: running one twice leaves the same state as running it once.
pub trait Isolator: Send + Sync + std::fmt::Debug {
    /// The Mesos-style name, e.g. `cgroups/mem`.
    fn name(&self) -> &'static str;

    /// The cgroup2 controller this isolator needs enabled for container cgroups, if any.
    fn controller(&self) -> Option<&'static str> {
        None
    }

    fn prepare(&self, container: &Container, launch: &mut Launch) -> Result<(), IsolatorError>;

    fn isolate(&self, _container: &Container, _pid: i32) -> Result<(), IsolatorError> {
        Ok(())
    }

    /// Applies `resources` (the container's whole new set) to the running container.
    fn update(&self, _container: &Container, _resources: &Resources) -> Result<(), IsolatorError> {
        Ok(())
    }

    fn usage(
        &self,
        _container: &Container,
        _stats: &mut ResourceStatistics,
    ) -> Result<(), IsolatorError> {
        Ok(())
    }

    fn recover(&self, container: &Container) -> Result<(), IsolatorError> {
        self.update(container, container.resources)
    }

    fn cleanup(&self, _container: &Container) -> Result<(), IsolatorError> {
        Ok(())
    }
}
