//! The agent's work dir layout:
//!
//! ```text
//! <work_dir>/meta/agent_id                          the id the master gave this agent
//! <work_dir>/meta/frameworks/<framework_id>/framework.json   see crate::checkpoint
//! <work_dir>/meta/containers/<container_id>/        per-container checkpoint dir:
//!     task.json      framework + task (written before the supervisor starts)
//!     task.updates   the task's status updates, acknowledgements and kill (crate::checkpoint)
//!     spec.json      what the supervisor runs (see supervisor.rs)
//!     supervisor.pid the supervisor's pid
//!     init.pid, status.json, supervisor.log         written by the supervisor
//! <work_dir>/agents/<agent_id>/frameworks/<framework_id>/executors/<task_id>/runs/<container_id>
//!                                                   the sandbox (Mesos' layout)
//! <work_dir>/volumes/roles/<role>/<persistence_id>  a persistent volume's data, a role's "/"
//!                                                   written as " " (crate::volumes)
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use strata_schema::{AgentId, ContainerId, FrameworkId, TaskId};

#[derive(Debug, Clone)]
pub struct Paths {
    pub work_dir: PathBuf,
}

impl Paths {
    pub fn agent_id_file(&self) -> PathBuf {
        self.work_dir.join("meta").join("agent_id")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.work_dir.join("meta").join("containers")
    }
    pub fn container_dir(&self, id: &ContainerId) -> PathBuf {
        self.containers_dir().join(id.as_str())
    }
    pub fn sandbox(
        &self,
        agent: &AgentId,
        fw: &FrameworkId,
        task: &TaskId,
        container: &ContainerId,
    ) -> PathBuf {
        self.work_dir
            .join("agents")
            .join(agent.as_str())
            .join("frameworks")
            .join(fw.as_str())
            .join("executors")
            .join(task.as_str())
            .join("runs")
            .join(container.as_str())
    }
}

/// Writes `data` to `path` atomically and durably: temp file, fsync, rename, fsync of the
/// directory. For what must survive a machine crash (the agent id, a task's checkpoint).
/// Missing parent directories are created.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, true)
}

/// Writes `data` to `path` atomically (temp file, rename) without fsync: readers never see a
/// partial file, even if the agent is killed, but a machine crash may lose it. For what only
/// matters while processes live (pid files, the supervisor's spec): each fsync costs about a
/// millisecond on the launch path, and no process survives a machine crash anyway.
pub fn write_replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write(path, data, false)
}

fn write(path: &Path, data: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("new").join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            1
        );
    }
}
