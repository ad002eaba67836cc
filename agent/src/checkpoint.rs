//! What the agent checkpoints so that a restarted agent (after a crash, `kill -9`, an upgrade)
//! carries on where the last one stopped, and how it reads it back.
//!
//! ```text
//! <work_dir>/meta/agent_id                                   the id the master gave (atomic file)
//! <work_dir>/meta/frameworks/<framework_id>/framework.json   FrameworkInfo (atomic file)
//! <work_dir>/meta/containers/<container_id>/task.json        framework + task (atomic file)
//! <work_dir>/meta/containers/<container_id>/task.updates     the task's status update stream
//! ```
//!
//! `task.updates` is an append-only log, one record per line:
//!
//! ```text
//! <crc32 of the JSON, 8 hex digits> <JSON>\n
//! {"update": TaskStatus}   an update, appended before it is sent
//! {"ack": uuid}            its acknowledgement, appended before the agent acts on it
//! "kill"                   a kill was asked for, appended before the task is signalled
//! ```
//!
//! Replaying it gives the updates not acknowledged yet (resent with their uuids) and whether a
//! kill was under way. A record is written (one `write(2)`) before the agent acts on it, so it
//! survives any crash or `kill -9` of the agent: the page cache outlives the process. Only kill
//! records are also `fdatasync`ed, before the task is signalled. That is what keeps a machine
//! crash (which no task survives) from changing what is reported: the terminal state of a
//! container is a function of durable facts only — the supervisor's `status.json` (written
//! durably), the kill record, `task.json` — so a recovered agent that lost the record of a
//! terminal update it had sent computes the same state again. What a machine crash can cost is a
//! record written since the file was last synced: an update then comes again with the same state
//! (a terminal one possibly with a new uuid), never with another.
//!
//! Reading is strict: a record whose checksum or JSON is wrong, or that contradicts the stream
//! (an acknowledgement of an update that is not the oldest pending one, an update after the
//! terminal one), is corruption, and so is an unreadable `task.json`, `framework.json`, agent id,
//! pid or status file: [`load`] names the file and the agent refuses to start. The one thing
//! repaired is a torn last record (a line without its newline), which only a machine crash in
//! the middle of an append leaves: that record was never acted on, so it is cut off, with a
//! warning.

use crate::containerizer::{
    process_alive, TaskCheckpoint, RESOURCES_FILE, SUPERVISOR_PID_FILE, TASK_FILE,
};
use crate::paths::{write_atomic, Paths};
use crate::supervisor::{ExitStatus, PID_FILE, STATUS_FILE};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use strata_schema::{
    AgentId, ContainerId, FrameworkId, FrameworkInfo, Resources, TaskState, TaskStatus, UpdateUuid,
};
use tracing::warn;

/// A task's status update stream (see the module documentation).
pub const UPDATES_FILE: &str = "task.updates";
/// A framework's `FrameworkInfo`, in `<work_dir>/meta/frameworks/<framework_id>/`.
pub const FRAMEWORK_FILE: &str = "framework.json";

/// One record of `task.updates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Update(TaskStatus),
    Ack(UpdateUuid),
    Kill,
}

/// Why a checkpoint cannot be used. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("failed to read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {what}", path.display())]
    Invalid { path: PathBuf, what: String },
    #[error("failed to repair {}: {source}", path.display())]
    Repair {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A corrupt record of a `task.updates` file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("record {record} (at byte {offset}): {what}")]
pub struct LogError {
    /// 1-based.
    pub record: usize,
    pub offset: usize,
    pub what: String,
}

/// CRC-32 (IEEE 802.3, as zlib's `crc32`).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A record as one line of the log.
pub fn encode(record: &Record) -> Vec<u8> {
    // A TaskStatus always serializes (string keys, finite floats are written as they are).
    let json = serde_json::to_vec(record).unwrap_or_default();
    let mut line = format!("{:08x} ", crc32(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// The records of a log, and where its valid part ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub records: Vec<Record>,
    /// Bytes of complete records; what follows (if anything) is a torn last record.
    pub valid_len: usize,
}

impl Log {
    /// Bytes of a torn last record, if `data` (what was parsed) had one.
    pub fn torn_bytes(&self, data: &[u8]) -> usize {
        data.len() - self.valid_len
    }
}

/// Parses a whole log. A last line without its newline is torn (left out, see `valid_len`);
/// any complete line that is not a valid record is an error.
pub fn parse(data: &[u8]) -> Result<Log, LogError> {
    let mut records = Vec::new();
    let mut offset = 0;
    while let Some(end) = data[offset..].iter().position(|b| *b == b'\n') {
        let line = &data[offset..offset + end];
        let err = |what: String| LogError {
            record: records.len() + 1,
            offset,
            what,
        };
        if line.len() < 10 || line[8] != b' ' {
            return Err(err("not `<crc32> <json>`".to_string()));
        }
        let (crc, json) = (&line[..8], &line[9..]);
        let crc = std::str::from_utf8(crc)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
            .ok_or_else(|| err("its checksum is not 8 hex digits".to_string()))?;
        let actual = crc32(json);
        if crc != actual {
            return Err(err(format!(
                "checksum mismatch (recorded {crc:08x}, computed {actual:08x})"
            )));
        }
        let record: Record =
            serde_json::from_slice(json).map_err(|e| err(format!("invalid record: {e}")))?;
        records.push(record);
        offset += end + 1;
    }
    Ok(Log {
        records,
        valid_len: offset,
    })
}

/// A task's update stream, replayed from its log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stream {
    /// Every update, in order.
    pub updates: Vec<TaskStatus>,
    /// How many of `updates` (from the first) were acknowledged.
    pub acked: usize,
    /// Whether a kill was asked for.
    pub kill_requested: bool,
}

impl Stream {
    /// The updates still to deliver, oldest first.
    pub fn pending(&self) -> &[TaskStatus] {
        &self.updates[self.acked.min(self.updates.len())..]
    }

    /// The state of the latest update.
    pub fn latest_state(&self) -> Option<TaskState> {
        self.updates.last().map(|s| s.state)
    }

    /// Whether the terminal update was generated.
    pub fn terminal(&self) -> bool {
        self.latest_state().is_some_and(|s| s.is_terminal())
    }
}

/// Replays records into a stream, checking that they make sense together.
pub fn replay(records: &[Record]) -> Result<Stream, LogError> {
    let mut stream = Stream::default();
    let mut uuids = HashSet::new();
    for (i, record) in records.iter().enumerate() {
        let err = |what: String| LogError {
            record: i + 1,
            offset: 0,
            what,
        };
        match record {
            Record::Update(status) => {
                let Some(uuid) = status.uuid else {
                    return Err(err("an update without a uuid".to_string()));
                };
                if !uuids.insert(uuid) {
                    return Err(err(format!("a second update with uuid {uuid}")));
                }
                if stream.terminal() {
                    return Err(err(format!(
                        "a {} update after the terminal update",
                        status.state
                    )));
                }
                stream.updates.push(status.clone());
            }
            Record::Ack(uuid) => {
                let head = stream.updates.get(stream.acked).and_then(|s| s.uuid);
                if head != Some(*uuid) {
                    return Err(err(format!(
                        "an acknowledgement of {uuid}, which is not the oldest unacknowledged update"
                    )));
                }
                stream.acked += 1;
            }
            Record::Kill => stream.kill_requested = true,
        }
    }
    Ok(stream)
}

/// Appends a record to a log (creating it). The write reaches the kernel before this returns,
/// so it survives a crash of the agent; see [`sync`] for a crash of the machine.
pub fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)?;
    // One write(2): a record is never interleaved with another.
    file.write_all(&encode(record))
}

/// Makes what was appended to a log durable (`fdatasync`).
pub fn sync(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_data()
}

/// Creates a container's checkpoint dir with its (empty) update log, so that anything the agent
/// records about the container has a place from its launch on. Not synced: the `task.json`
/// write that follows syncs the directory.
pub fn create_stream(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(dir.join(UPDATES_FILE))
        .map(drop)
}

/// The launch's checkpoints before the container is created (on the blocking pool): the
/// container's update log, and the framework's info when it is new here (`framework`).
pub fn prepare_launch(
    paths: &Paths,
    ckpt: &TaskCheckpoint,
    framework: Option<&FrameworkInfo>,
) -> Result<(), String> {
    let dir = paths.container_dir(&ckpt.container_id);
    create_stream(&dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    if let Some(info) = framework {
        write_framework(paths, info)
            .map_err(|e| format!("failed to checkpoint the framework: {e}"))?;
    }
    Ok(())
}

/// Writes a container's `task.json` if it is not there (a launch that failed before writing it
/// still has its failure to report, and the update log needs the task beside it).
pub fn ensure_task(paths: &Paths, ckpt: &TaskCheckpoint) -> std::io::Result<()> {
    let path = paths.container_dir(&ckpt.container_id).join(TASK_FILE);
    if path.exists() {
        return Ok(());
    }
    let data = serde_json::to_vec_pretty(ckpt).map_err(std::io::Error::other)?;
    write_atomic(&path, &data)
}

/// Checkpoints a framework's info (atomically, durably).
pub fn write_framework(paths: &Paths, info: &FrameworkInfo) -> std::io::Result<()> {
    let Some(id) = &info.id else {
        return Ok(());
    };
    let data = serde_json::to_vec_pretty(info).map_err(std::io::Error::other)?;
    write_atomic(&framework_dir(paths, id).join(FRAMEWORK_FILE), &data)
}

/// A framework's checkpointed info, if there is a readable one.
pub fn read_framework(paths: &Paths, id: &FrameworkId) -> Option<FrameworkInfo> {
    let data = std::fs::read(framework_dir(paths, id).join(FRAMEWORK_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

pub fn frameworks_dir(paths: &Paths) -> PathBuf {
    paths.work_dir.join("meta").join("frameworks")
}

pub fn framework_dir(paths: &Paths, id: &FrameworkId) -> PathBuf {
    frameworks_dir(paths).join(id.as_str())
}

/// A container found in the checkpoint.
#[derive(Debug)]
pub struct RecoveredContainer {
    pub dir: PathBuf,
    pub ckpt: TaskCheckpoint,
    pub framework_id: FrameworkId,
    pub stream: Stream,
    pub supervisor_pid: Option<i32>,
    /// Whether the supervisor still runs.
    pub alive: bool,
    /// Whether the task's command was started (`init.pid`).
    pub started: bool,
    /// The resources of the latest live update (`resources.json`).
    pub resources: Option<Resources>,
    /// How the container ended (`status.json`), read when the supervisor is gone.
    pub exit: Option<ExitStatus>,
}

/// Everything a starting agent finds in its work dir.
#[derive(Debug, Default)]
pub struct Recovered {
    pub agent_id: Option<AgentId>,
    pub frameworks: HashMap<FrameworkId, FrameworkInfo>,
    pub containers: Vec<RecoveredContainer>,
    /// Custom executors' containers (not recovered: the agent kills them).
    pub executors: Vec<RecoveredExecutor>,
}

/// A custom executor's container found in the checkpoint.
#[derive(Debug)]
pub struct RecoveredExecutor {
    pub ckpt: TaskCheckpoint,
    pub supervisor_pid: Option<i32>,
    pub alive: bool,
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, CheckpointError> {
    match std::fs::read(path) {
        Ok(data) => Ok(Some(data)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Invalid {
        path: path.to_path_buf(),
        what: what.to_string(),
    }
}

fn json<T: serde::de::DeserializeOwned>(path: &Path, data: &[u8]) -> Result<T, CheckpointError> {
    if data.is_empty() {
        return Err(invalid(path, "the file is empty"));
    }
    serde_json::from_slice(data).map_err(|e| invalid(path, format!("invalid JSON: {e}")))
}

fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, CheckpointError> {
    let read_err = |source| CheckpointError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(read_err(err)),
    };
    let mut out = Vec::new();
    for entry in entries {
        out.push(entry.map_err(read_err)?.path());
    }
    out.sort();
    Ok(out)
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a file is what an interrupted atomic write leaves (`.<name>.tmp`).
fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Reads the agent id, the frameworks and the containers a previous run left. Cuts off torn
/// last records of update logs and removes what interrupted launches left before their task
/// was checkpointed (both with a warning); makes pending updates durable; anything unreadable
/// is an error naming its file.
pub fn load(paths: &Paths) -> Result<Recovered, CheckpointError> {
    let mut recovered = Recovered::default();
    let id_file = paths.agent_id_file();
    if let Some(data) = read_optional(&id_file)? {
        let text = String::from_utf8_lossy(&data);
        let id = AgentId::new(text.trim())
            .map_err(|e| invalid(&id_file, format!("not an agent id: {e}")))?;
        recovered.agent_id = Some(id);
    }
    for dir in list_dir(&frameworks_dir(paths))? {
        let name = name_of(&dir);
        if is_temp(&name) {
            continue;
        }
        let path = dir.join(FRAMEWORK_FILE);
        let Some(data) = read_optional(&path)? else {
            // An interrupted write: task.json keeps a copy of the framework's info.
            warn!(dir = %dir.display(), "removing a framework checkpoint dir without framework.json (an interrupted write)");
            let _ = std::fs::remove_dir_all(&dir);
            continue;
        };
        let info: FrameworkInfo = json(&path, &data)?;
        match &info.id {
            Some(id) if id.as_str() == name => {
                recovered.frameworks.insert(id.clone(), info);
            }
            _ => return Err(invalid(&path, format!("not the info of framework {name}"))),
        }
    }
    for dir in list_dir(&paths.containers_dir())? {
        if is_temp(&name_of(&dir)) {
            continue;
        }
        if dir.join(crate::executor::EXECUTOR_FILE).exists() {
            if let Some(executor) = load_executor(&dir)? {
                recovered.executors.push(executor);
            }
            continue;
        }
        if let Some(container) = load_container(&dir)? {
            recovered.containers.push(container);
        }
    }
    Ok(recovered)
}

/// A custom executor's container dir: its container's checkpoint and supervisor. One whose
/// launch was interrupted before `task.json` (nothing was started) is removed.
fn load_executor(dir: &Path) -> Result<Option<RecoveredExecutor>, CheckpointError> {
    let task_path = dir.join(TASK_FILE);
    let Some(task_data) = read_optional(&task_path)? else {
        warn!(dir = %dir.display(), "removing an executor's container dir without task.json (a launch interrupted before it started anything)");
        let _ = std::fs::remove_dir_all(dir);
        return Ok(None);
    };
    let ckpt: TaskCheckpoint = json(&task_path, &task_data)?;
    let pid_path = dir.join(SUPERVISOR_PID_FILE);
    let supervisor_pid = match read_optional(&pid_path)? {
        Some(data) => Some(
            String::from_utf8_lossy(&data)
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(&pid_path, "not a pid"))?,
        ),
        None => None,
    };
    let alive = supervisor_pid.is_some_and(|pid| process_alive(pid, dir));
    Ok(Some(RecoveredExecutor {
        ckpt,
        supervisor_pid,
        alive,
    }))
}

fn load_container(dir: &Path) -> Result<Option<RecoveredContainer>, CheckpointError> {
    let name = name_of(dir);
    let id = ContainerId::new(&name)
        .map_err(|e| invalid(dir, format!("not a container checkpoint dir: {e}")))?;
    let task_path = dir.join(TASK_FILE);
    let updates_path = dir.join(UPDATES_FILE);
    let log_data = read_optional(&updates_path)?;
    let Some(task_data) = read_optional(&task_path)? else {
        return interrupted_launch(dir, &task_path, log_data.as_deref()).map(|()| None);
    };
    let ckpt: TaskCheckpoint = json(&task_path, &task_data)?;
    if ckpt.container_id != id {
        return Err(invalid(
            &task_path,
            format!("it describes container {}, not {id}", ckpt.container_id),
        ));
    }
    let Some(framework_id) = ckpt.framework.id.clone() else {
        return Err(invalid(&task_path, "it names no framework id"));
    };
    let stream = match log_data {
        Some(data) => {
            let log = parse(&data).map_err(|e| invalid(&updates_path, e))?;
            let torn = log.torn_bytes(&data);
            if torn > 0 {
                warn!(file = %updates_path.display(), offset = log.valid_len, bytes = torn,
                      "cutting off a torn last record (an append interrupted by a machine crash; it was never acted on)");
                truncate(&updates_path, log.valid_len)?;
            }
            let stream = replay(&log.records).map_err(|e| invalid(&updates_path, e))?;
            for status in &stream.updates {
                if status.task_id != ckpt.task.task_id
                    || status.framework_id.as_ref() != Some(&framework_id)
                {
                    return Err(invalid(
                        &updates_path,
                        format!(
                            "an update of task {} is in the log of task {}",
                            status.task_id, ckpt.task.task_id
                        ),
                    ));
                }
            }
            if !stream.pending().is_empty() {
                // They are resent from now on: make sure they are on disk.
                sync(&updates_path).map_err(|source| CheckpointError::Repair {
                    path: updates_path.clone(),
                    source,
                })?;
            }
            stream
        }
        // Written by an agent from before the update log.
        None => Stream::default(),
    };
    let pid_path = dir.join(SUPERVISOR_PID_FILE);
    let supervisor_pid = match read_optional(&pid_path)? {
        Some(data) => Some(
            String::from_utf8_lossy(&data)
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| invalid(&pid_path, "not a pid"))?,
        ),
        None => None,
    };
    let alive = supervisor_pid.is_some_and(|pid| process_alive(pid, dir));
    let resources_path = dir.join(RESOURCES_FILE);
    let resources = match read_optional(&resources_path)? {
        Some(data) => Some(json(&resources_path, &data)?),
        None => None,
    };
    let exit = if alive {
        None
    } else {
        let status_path = dir.join(STATUS_FILE);
        match read_optional(&status_path)? {
            Some(data) => Some(json(&status_path, &data)?),
            None => None,
        }
    };
    Ok(Some(RecoveredContainer {
        dir: dir.to_path_buf(),
        started: dir.join(PID_FILE).exists(),
        ckpt,
        framework_id,
        stream,
        supervisor_pid,
        alive,
        resources,
        exit,
    }))
}

/// A container dir without `task.json`: what a launch interrupted before its task was
/// checkpointed leaves (nothing was started for it) is removed; anything more means the
/// checkpoint was damaged.
fn interrupted_launch(
    dir: &Path,
    task_path: &Path,
    log: Option<&[u8]>,
) -> Result<(), CheckpointError> {
    let mut found = Vec::new();
    for path in list_dir(dir)? {
        let name = name_of(&path);
        if is_temp(&name) {
            continue;
        }
        if name == UPDATES_FILE {
            let updates = log
                .and_then(|data| parse(data).ok())
                .map(|log| log.records.iter().any(|r| matches!(r, Record::Update(_))));
            if updates == Some(false) {
                continue;
            }
        }
        found.push(name);
    }
    if !found.is_empty() {
        return Err(invalid(
            task_path,
            format!(
                "the file is missing, but the container dir holds {}",
                found.join(", ")
            ),
        ));
    }
    warn!(dir = %dir.display(), "removing the checkpoint dir of a launch interrupted before its task was checkpointed (nothing was started)");
    std::fs::remove_dir_all(dir).map_err(|source| CheckpointError::Repair {
        path: dir.to_path_buf(),
        source,
    })
}

fn truncate(path: &Path, len: usize) -> Result<(), CheckpointError> {
    let repair = |source| CheckpointError::Repair {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(repair)?;
    file.set_len(len as u64).map_err(repair)?;
    file.sync_all().map_err(repair)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use strata_schema::{StatusSource, TaskId, TaskInfo};

    fn status(state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: TaskId::new("t").unwrap(),
            state,
            message: "a message with \"quotes\"\nand a newline".to_string(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: Some(AgentId::new("a").unwrap()),
            framework_id: Some(FrameworkId::new("f").unwrap()),
            container_id: None,
            timestamp: 1.5,
            uuid: Some(UpdateUuid::random()),
            exit_code: Some(0),
        }
    }

    fn log_of(records: &[Record]) -> Vec<u8> {
        records.iter().flat_map(encode).collect()
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn records_round_trip_one_per_line() {
        let (s1, s2) = (status(TaskState::Starting), status(TaskState::Finished));
        let records = vec![
            Record::Update(s1.clone()),
            Record::Ack(s1.uuid.unwrap()),
            Record::Kill,
            Record::Update(s2.clone()),
        ];
        let data = log_of(&records);
        assert_eq!(data.iter().filter(|b| **b == b'\n').count(), 4);
        let log = parse(&data).unwrap();
        assert_eq!(log.records, records);
        assert_eq!(log.valid_len, data.len());
        let stream = replay(&log.records).unwrap();
        assert_eq!(stream.pending(), [s2]);
        assert!(stream.kill_requested && stream.terminal());
        assert_eq!(stream.latest_state(), Some(TaskState::Finished));
    }

    #[test]
    fn a_torn_last_record_is_left_out() {
        let s1 = status(TaskState::Running);
        let good = log_of(&[Record::Update(s1.clone())]);
        let torn = encode(&Record::Ack(s1.uuid.unwrap()));
        for cut in [1, 9, torn.len() - 1] {
            let mut data = good.clone();
            data.extend_from_slice(&torn[..cut]);
            let log = parse(&data).unwrap();
            assert_eq!(log.records, [Record::Update(s1.clone())]);
            assert_eq!(log.valid_len, good.len());
            assert_eq!(log.torn_bytes(&data), cut);
        }
        // Zeros a crash left at the end are torn too.
        let mut data = good.clone();
        data.extend_from_slice(&[0; 100]);
        assert_eq!(parse(&data).unwrap().valid_len, good.len());
    }

    #[test]
    fn corrupt_records_are_errors() {
        let s1 = status(TaskState::Running);
        let data = log_of(&[Record::Update(s1.clone()), Record::Kill]);
        // A flipped byte inside the first record's JSON.
        let mut flipped = data.clone();
        let i = flipped.iter().position(|b| *b == b'R').unwrap();
        flipped[i] = b'X';
        let err = parse(&flipped).unwrap_err();
        assert_eq!((err.record, err.offset), (1, 0));
        assert!(err.what.contains("checksum mismatch"), "{err}");
        // Garbage as the second record.
        let first = encode(&Record::Update(s1.clone())).len();
        let mut garbage = data[..first].to_vec();
        garbage.extend_from_slice(b"hello world\n");
        let err = parse(&garbage).unwrap_err();
        assert_eq!((err.record, err.offset), (2, first));
        assert!(err.to_string().starts_with("record 2 (at byte"), "{err}");
        // A good checksum over bad JSON.
        let json = br#"{"update": 3}"#;
        let mut line = format!("{:08x} ", crc32(json)).into_bytes();
        line.extend_from_slice(json);
        line.push(b'\n');
        assert!(parse(&line).unwrap_err().what.contains("invalid record"));
        assert!(parse(b"\n").is_err());
    }

    #[test]
    fn replay_refuses_what_cannot_have_been_written() {
        let (s1, s2) = (status(TaskState::Starting), status(TaskState::Running));
        // Acknowledging the second update before the first.
        let err = replay(&[
            Record::Update(s1.clone()),
            Record::Update(s2.clone()),
            Record::Ack(s2.uuid.unwrap()),
        ])
        .unwrap_err();
        assert_eq!(err.record, 3);
        // An update after the terminal one.
        let done = status(TaskState::Failed);
        assert!(replay(&[Record::Update(done), Record::Update(s2.clone())]).is_err());
        // The same uuid twice.
        assert!(replay(&[Record::Update(s1.clone()), Record::Update(s1.clone())]).is_err());
        let mut no_uuid = s1.clone();
        no_uuid.uuid = None;
        assert!(replay(&[Record::Update(no_uuid)]).is_err());
        // All acknowledged: nothing pending.
        let stream = replay(&[
            Record::Update(s1.clone()),
            Record::Ack(s1.uuid.unwrap()),
            Record::Update(s2.clone()),
            Record::Ack(s2.uuid.unwrap()),
        ])
        .unwrap();
        assert!(stream.pending().is_empty());
        assert_eq!(stream.latest_state(), Some(TaskState::Running));
    }

    #[test]
    fn append_and_reread() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("c");
        create_stream(&cdir).unwrap();
        let path = cdir.join(UPDATES_FILE);
        let s = status(TaskState::Starting);
        append(&path, &Record::Update(s.clone())).unwrap();
        append(&path, &Record::Ack(s.uuid.unwrap())).unwrap();
        sync(&path).unwrap();
        // Creating it again keeps what is there.
        create_stream(&cdir).unwrap();
        let log = parse(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(replay(&log.records).unwrap().acked, 1);
    }

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            work_dir: dir.path().to_path_buf(),
        };
        (dir, paths)
    }

    fn checkpoint(paths: &Paths, container: &str) -> (PathBuf, TaskStatus) {
        let id = ContainerId::new(container).unwrap();
        let framework = FrameworkInfo {
            id: Some(FrameworkId::new("f").unwrap()),
            name: "fw".to_string(),
            ..FrameworkInfo::default()
        };
        let ckpt = TaskCheckpoint {
            container_id: id.clone(),
            agent_id: AgentId::new("a").unwrap(),
            framework: framework.clone(),
            task: TaskInfo {
                task_id: TaskId::new("t").unwrap(),
                name: "t".to_string(),
                agent_id: AgentId::new("a").unwrap(),
                resources: Resources::parse("cpus:1").unwrap(),
                command: strata_schema::CommandInfo::shell("true"),
                kill_grace_period_secs: None,
                hostname: None,
                container: None,
                executor: None,
                data: Vec::new(),
                labels: Vec::new(),
            },
            sandbox: paths.work_dir.join("sandbox"),
        };
        let dir = paths.container_dir(&id);
        create_stream(&dir).unwrap();
        write_atomic(&dir.join(TASK_FILE), &serde_json::to_vec(&ckpt).unwrap()).unwrap();
        write_framework(paths, &framework).unwrap();
        let s = status(TaskState::Starting);
        append(&dir.join(UPDATES_FILE), &Record::Update(s.clone())).unwrap();
        (dir, s)
    }

    #[test]
    fn executor_containers_are_told_from_tasks() {
        let (_tmp, paths) = paths();
        let (dir, _) = checkpoint(&paths, "c1");
        std::fs::write(dir.join(crate::executor::EXECUTOR_FILE), b"{}").unwrap();
        std::fs::write(dir.join(SUPERVISOR_PID_FILE), b"1").unwrap();
        // An executor whose launch stopped before its task.json is removed.
        let (half, _) = checkpoint(&paths, "c2");
        std::fs::remove_file(half.join(TASK_FILE)).unwrap();
        std::fs::write(half.join(crate::executor::EXECUTOR_FILE), b"{}").unwrap();
        let recovered = load(&paths).unwrap();
        assert!(recovered.containers.is_empty());
        let [e] = recovered.executors.as_slice() else {
            panic!("one executor expected")
        };
        assert_eq!(e.ckpt.container_id.as_str(), "c1");
        assert_eq!(e.supervisor_pid, Some(1));
        assert!(!e.alive, "pid 1 is not its supervisor");
        assert!(!half.exists());
    }

    #[test]
    fn load_reads_what_was_checkpointed() {
        let (_tmp, paths) = paths();
        write_atomic(&paths.agent_id_file(), b"agent-S1").unwrap();
        let (dir, s) = checkpoint(&paths, "c1");
        std::fs::write(
            dir.join(STATUS_FILE),
            br#"{"exit_code":3,"signal":null,"message":"m","started":true}"#,
        )
        .unwrap();
        let recovered = load(&paths).unwrap();
        assert_eq!(recovered.agent_id.unwrap().as_str(), "agent-S1");
        assert_eq!(recovered.frameworks.len(), 1);
        let [c] = recovered.containers.as_slice() else {
            panic!("one container expected")
        };
        assert_eq!(c.stream.pending(), [s]);
        assert!(!c.alive && !c.started);
        assert_eq!(c.exit.as_ref().unwrap().exit_code, Some(3));
    }

    #[test]
    fn load_cuts_off_a_torn_record() {
        let (_tmp, paths) = paths();
        let (dir, s) = checkpoint(&paths, "c1");
        let path = dir.join(UPDATES_FILE);
        let good = std::fs::read(&path).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(&encode(&Record::Ack(s.uuid.unwrap()))[..20])
            .unwrap();
        let recovered = load(&paths).unwrap();
        assert_eq!(recovered.containers[0].stream.pending(), [s]);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            good,
            "the torn record is cut off"
        );
    }

    #[test]
    fn load_refuses_corrupt_files_naming_them() {
        let (_tmp, paths) = paths();
        let (dir, _) = checkpoint(&paths, "c1");
        // A corrupt update log.
        let path = dir.join(UPDATES_FILE);
        let good = std::fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[12] ^= 0x20;
        std::fs::write(&path, &bad).unwrap();
        let err = load(&paths).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: record 1 (at byte 0): ", path.display())),
            "{err}"
        );
        std::fs::write(&path, &good).unwrap();
        // A truncated task.json.
        let task = dir.join(TASK_FILE);
        let data = std::fs::read(&task).unwrap();
        std::fs::write(&task, &data[..data.len() / 2]).unwrap();
        let err = load(&paths).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}: invalid JSON: ", task.display())),
            "{err}"
        );
        // A missing task.json beside the supervisor's files.
        std::fs::remove_file(&task).unwrap();
        std::fs::write(dir.join(SUPERVISOR_PID_FILE), b"1").unwrap();
        let err = load(&paths).unwrap_err().to_string();
        assert!(err.contains("task.json: the file is missing, but the container dir holds supervisor.pid, task.updates"), "{err}");
        std::fs::write(&task, &data).unwrap();
        // A bad pid file, framework file, agent id.
        std::fs::write(dir.join(SUPERVISOR_PID_FILE), b"12x").unwrap();
        assert!(load(&paths)
            .unwrap_err()
            .to_string()
            .contains("supervisor.pid: not a pid"));
        std::fs::remove_file(dir.join(SUPERVISOR_PID_FILE)).unwrap();
        let fw = framework_dir(&paths, &FrameworkId::new("f").unwrap()).join(FRAMEWORK_FILE);
        std::fs::write(&fw, b"{").unwrap();
        assert!(load(&paths)
            .unwrap_err()
            .to_string()
            .contains("framework.json: invalid JSON"));
        std::fs::remove_file(&fw).unwrap();
        std::fs::write(paths.agent_id_file(), b"").unwrap();
        assert!(load(&paths)
            .unwrap_err()
            .to_string()
            .contains("agent_id: not an agent id"));
        std::fs::remove_file(paths.agent_id_file()).unwrap();
        assert_eq!(load(&paths).unwrap().containers.len(), 1);
    }

    #[test]
    fn an_interrupted_launch_is_removed() {
        let (_tmp, paths) = paths();
        let dir = paths.container_dir(&ContainerId::new("c2").unwrap());
        create_stream(&dir).unwrap();
        append(&dir.join(UPDATES_FILE), &Record::Kill).unwrap();
        std::fs::write(dir.join(".task.json.tmp"), b"{").unwrap();
        let recovered = load(&paths).unwrap();
        assert!(recovered.containers.is_empty());
        assert!(!dir.exists());
    }
}
