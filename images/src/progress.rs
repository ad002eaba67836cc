//! Registry pulls in progress, for `GET /images/pulls` and `strata run --image`'s progress bar:
//! bytes and layers done of each pull, counted as the blobs stream in. A finished pull stays
//! listed (`done`) for [`KEEP_FINISHED`], so a client polling now and then sees it end.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a finished pull stays listed.
pub const KEEP_FINISHED: Duration = Duration::from_secs(10);

/// One pull's counters, shared with the writer that counts its bytes.
#[derive(Debug, Default)]
pub struct PullState {
    pub bytes_total: AtomicU64,
    pub bytes_done: AtomicU64,
    pub layers_total: AtomicU64,
    pub layers_done: AtomicU64,
    pub failed: AtomicBool,
}

/// What `GET /images/pulls` lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullProgress {
    pub image: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub layers_done: u64,
    pub layers_total: u64,
    pub done: bool,
    pub failed: bool,
}

#[derive(Debug)]
struct Entry {
    image: String,
    state: Arc<PullState>,
    finished: Option<Instant>,
}

/// The pulls of a store.
#[derive(Debug, Default, Clone)]
pub struct Pulls {
    entries: Arc<Mutex<(u64, BTreeMap<u64, Entry>)>>,
}

/// Marks its pull finished when dropped (whether it succeeded or not).
#[derive(Debug)]
pub struct PullGuard {
    pulls: Pulls,
    id: u64,
    pub state: Arc<PullState>,
}

impl Drop for PullGuard {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.pulls.entries.lock() {
            if let Some(entry) = entries.1.get_mut(&self.id) {
                entry.finished = Some(Instant::now());
            }
        }
    }
}

impl Pulls {
    /// Lists a new pull of `image`.
    pub fn start(&self, image: &str) -> PullGuard {
        let state = Arc::new(PullState::default());
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.0 += 1;
        let id = entries.0;
        entries.1.insert(
            id,
            Entry {
                image: image.to_string(),
                state: Arc::clone(&state),
                finished: None,
            },
        );
        PullGuard {
            pulls: self.clone(),
            id,
            state,
        }
    }

    /// The pulls running and those finished less than [`KEEP_FINISHED`] ago (older ones are
    /// forgotten here).
    pub fn snapshot(&self) -> Vec<PullProgress> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .1
            .retain(|_, e| e.finished.is_none_or(|at| at.elapsed() < KEEP_FINISHED));
        entries
            .1
            .values()
            .map(|e| {
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                PullProgress {
                    image: e.image.clone(),
                    bytes_done: get(&e.state.bytes_done),
                    bytes_total: get(&e.state.bytes_total),
                    layers_done: get(&e.state.layers_done),
                    layers_total: get(&e.state.layers_total),
                    done: e.finished.is_some(),
                    failed: e.state.failed.load(Ordering::Relaxed),
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pulls_are_listed_while_running_and_a_while_after() {
        let pulls = Pulls::default();
        assert!(pulls.snapshot().is_empty());
        let guard = pulls.start("reg:5000/a:1");
        guard.state.bytes_total.store(100, Ordering::Relaxed);
        guard.state.layers_total.store(2, Ordering::Relaxed);
        guard.state.bytes_done.fetch_add(40, Ordering::Relaxed);
        guard.state.layers_done.fetch_add(1, Ordering::Relaxed);
        let now = pulls.snapshot();
        assert_eq!(
            now,
            vec![PullProgress {
                image: "reg:5000/a:1".into(),
                bytes_done: 40,
                bytes_total: 100,
                layers_done: 1,
                layers_total: 2,
                done: false,
                failed: false,
            }]
        );
        drop(guard);
        let after = pulls.snapshot();
        assert!(after[0].done);
        // Forgotten once old.
        pulls.entries.lock().unwrap().1.values_mut().for_each(|e| {
            e.finished = Some(Instant::now() - KEEP_FINISHED);
        });
        assert!(pulls.snapshot().is_empty());
    }
}
