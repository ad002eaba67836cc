//! The status update manager: one ordered stream of updates per task. Only the head of a stream
//! is in flight; it is resent with exponential backoff until the framework's acknowledgement
//! (matching its uuid) comes back, then the next one goes out (Mesos' semantics).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use strata_schema::{FrameworkId, TaskId, TaskStatus, UpdateUuid};

/// The longest wait between two resends of an update.
pub const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(600);

#[derive(Debug)]
struct Stream {
    pending: VecDeque<TaskStatus>,
    next_retry: Instant,
    interval: Duration,
}

#[derive(Debug)]
pub struct StatusUpdates {
    streams: HashMap<(FrameworkId, TaskId), Stream>,
    base_interval: Duration,
}

fn key(status: &TaskStatus) -> Option<(FrameworkId, TaskId)> {
    Some((status.framework_id.clone()?, status.task_id.clone()))
}

impl StatusUpdates {
    pub fn new(base_interval: Duration) -> Self {
        Self {
            streams: HashMap::new(),
            base_interval,
        }
    }

    /// Queues an update; returns it if it should be sent right away (its stream was idle).
    pub fn push(&mut self, status: TaskStatus, now: Instant) -> Option<TaskStatus> {
        let key = key(&status)?;
        let stream = self.streams.entry(key).or_insert_with(|| Stream {
            pending: VecDeque::new(),
            next_retry: now,
            interval: self.base_interval,
        });
        stream.pending.push_back(status.clone());
        if stream.pending.len() == 1 {
            stream.next_retry = now + self.base_interval;
            stream.interval = self.base_interval;
            Some(status)
        } else {
            None
        }
    }

    /// Applies an acknowledgement. Returns the acknowledged update (if it was the head) and the
    /// next update to send.
    pub fn acknowledge(
        &mut self,
        fw: &FrameworkId,
        task: &TaskId,
        uuid: &UpdateUuid,
        now: Instant,
    ) -> (Option<TaskStatus>, Option<TaskStatus>) {
        let k = (fw.clone(), task.clone());
        let Some(stream) = self.streams.get_mut(&k) else {
            return (None, None);
        };
        if stream.pending.front().and_then(|s| s.uuid.as_ref()) != Some(uuid) {
            return (None, None);
        }
        let acked = stream.pending.pop_front();
        let next = stream.pending.front().cloned();
        if next.is_some() {
            stream.next_retry = now + self.base_interval;
            stream.interval = self.base_interval;
        } else {
            self.streams.remove(&k);
        }
        (acked, next)
    }

    /// Heads whose retry time has come; their next retry backs off exponentially.
    pub fn due(&mut self, now: Instant) -> Vec<TaskStatus> {
        let mut out = Vec::new();
        for stream in self.streams.values_mut() {
            if stream.next_retry <= now {
                if let Some(head) = stream.pending.front() {
                    out.push(head.clone());
                }
                stream.interval = (stream.interval * 2).min(MAX_RETRY_INTERVAL);
                stream.next_retry = now + stream.interval;
            }
        }
        out
    }

    /// Every stream's head (to resend after re-registering).
    pub fn heads(&self) -> Vec<TaskStatus> {
        self.streams
            .values()
            .filter_map(|s| s.pending.front().cloned())
            .collect()
    }

    /// Forgets every update of a framework (it was shut down).
    pub fn drop_framework(&mut self, fw: &FrameworkId) {
        self.streams.retain(|(f, _), _| f != fw);
    }

    /// Whether any update of this task still waits for its acknowledgement.
    pub fn has_pending(&self, fw: &FrameworkId, task: &TaskId) -> bool {
        self.streams.contains_key(&(fw.clone(), task.clone()))
    }

    pub fn len(&self) -> usize {
        self.streams.values().map(|s| s.pending.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;
    use strata_schema::{StatusSource, TaskState};

    /// An executor's update of `task` of framework "f", with a uuid.
    pub(crate) fn status(task: &str, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: TaskId::new(task).unwrap(),
            state,
            message: String::new(),
            source: StatusSource::Executor,
            reason: None,
            agent_id: None,
            framework_id: Some(FrameworkId::new("f").unwrap()),
            container_id: None,
            timestamp: 0.0,
            uuid: Some(UpdateUuid::random()),
            exit_code: None,
        }
    }

    #[test]
    fn one_in_flight_per_task_in_order() {
        let now = Instant::now();
        let mut m = StatusUpdates::new(Duration::from_secs(10));
        let s1 = status("t", TaskState::Starting);
        let s2 = status("t", TaskState::Running);
        let other = status("u", TaskState::Starting);
        assert_eq!(m.push(s1.clone(), now), Some(s1.clone()));
        assert_eq!(m.push(s2.clone(), now), None);
        assert!(
            m.push(other.clone(), now).is_some(),
            "other tasks are independent"
        );
        let fw = FrameworkId::new("f").unwrap();
        // A stale or wrong uuid changes nothing.
        let (acked, next) = m.acknowledge(&fw, &s1.task_id, &s2.uuid.unwrap(), now);
        assert!(acked.is_none() && next.is_none());
        let (acked, next) = m.acknowledge(&fw, &s1.task_id, &s1.uuid.unwrap(), now);
        assert_eq!(acked, Some(s1));
        assert_eq!(next, Some(s2.clone()));
        let (_, next) = m.acknowledge(&fw, &s2.task_id, &s2.uuid.unwrap(), now);
        assert!(next.is_none());
        assert!(!m.has_pending(&fw, &s2.task_id));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn retries_back_off_until_acknowledged() {
        let now = Instant::now();
        let mut m = StatusUpdates::new(Duration::from_secs(10));
        let s = status("t", TaskState::Running);
        m.push(s.clone(), now);
        assert!(m.due(now + Duration::from_secs(5)).is_empty());
        assert_eq!(m.due(now + Duration::from_secs(10)), vec![s.clone()]);
        // Next retry 20 s later.
        assert!(m.due(now + Duration::from_secs(25)).is_empty());
        assert_eq!(m.due(now + Duration::from_secs(30)).len(), 1);
        assert_eq!(m.heads(), vec![s.clone()]);
        m.drop_framework(&FrameworkId::new("f").unwrap());
        assert!(m.is_empty());
    }
}
