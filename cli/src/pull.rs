//! The progress of an image pull while `strata run --image` waits for its task to start: the
//! agent's `GET /images/pulls` polled and drawn on stderr, as a bar redrawn in place on a
//! terminal, or as a line when the pull starts and one when it ends otherwise.

use crate::output::agent_address;
use crate::units::format_mem;
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use strata_client::http;
use strata_schema::AgentId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const POLL: Duration = Duration::from_millis(200);
const BAR: usize = 30;

/// One pull as the agent lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pull {
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub layers_done: u64,
    pub layers_total: u64,
    pub done: bool,
    pub failed: bool,
}

/// The latest pull of `image` in an agent's `/images/pulls` answer.
pub fn find(answer: &Value, image: &str) -> Option<Pull> {
    answer["pulls"]
        .as_array()?
        .iter()
        .rev()
        .find(|p| p["image"].as_str() == Some(image))
        .map(|p| {
            let n = |k: &str| p[k].as_u64().unwrap_or(0);
            Pull {
                bytes_done: n("bytes_done"),
                bytes_total: n("bytes_total"),
                layers_done: n("layers_done"),
                layers_total: n("layers_total"),
                done: p["done"].as_bool().unwrap_or(false),
                failed: p["failed"].as_bool().unwrap_or(false),
            }
        })
}

fn mib(bytes: u64) -> String {
    format_mem(bytes as f64 / 1048576.0)
}

/// The bar line: `pulling IMAGE [######        ] 45% 1.2 MiB/2.6 MiB, 1/2 layers`.
pub fn bar(image: &str, p: &Pull) -> String {
    let fraction = if p.bytes_total == 0 {
        0.0
    } else {
        (p.bytes_done as f64 / p.bytes_total as f64).clamp(0.0, 1.0)
    };
    let filled = (fraction * BAR as f64).round() as usize;
    format!(
        "pulling {image} [{}{}] {:>3}% {}/{}, {}/{} layers",
        "#".repeat(filled),
        " ".repeat(BAR - filled),
        (fraction * 100.0).round() as u32,
        mib(p.bytes_done),
        mib(p.bytes_total),
        p.layers_done,
        p.layers_total
    )
}

/// The line that ends a pull.
pub fn summary(image: &str, p: &Pull) -> String {
    if p.failed {
        format!("pulling {image} failed")
    } else {
        format!(
            "pulled {image}: {} in {} layers",
            mib(p.bytes_total),
            p.layers_total
        )
    }
}

/// A running watcher; [`Watcher::stop`] ends it (the task started or ended).
pub struct Watcher {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Watcher {
    /// Follows the pull of `image` by agent `agent_id` (found in `master`'s `/state`).
    pub fn spawn(master: String, agent_id: AgentId, image: String) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let handle = tokio::spawn(async move {
            let terminal = std::io::stderr().is_terminal();
            let mut agent = None;
            let mut started = false;
            let mut stopping = false;
            loop {
                if agent.is_none() {
                    if let Ok(state) = http::get_json(&master, "/state").await {
                        agent = agent_address(&state, agent_id.as_str());
                    }
                }
                if let Some(addr) = &agent {
                    let pull = http::get_json(addr, "/images/pulls")
                        .await
                        .ok()
                        .and_then(|answer| find(&answer, &image));
                    if let Some(p) = pull {
                        let mut err = std::io::stderr().lock();
                        if p.done {
                            if terminal && started {
                                let _ = write!(err, "\r\x1b[K");
                            }
                            let _ = writeln!(err, "{}", summary(&image, &p));
                            return;
                        }
                        if terminal {
                            let _ = write!(err, "\r\x1b[K{}", bar(&image, &p));
                        } else if !started {
                            let _ = writeln!(err, "pulling {image}: {}", mib(p.bytes_total));
                        }
                        let _ = err.flush();
                        started = true;
                    }
                }
                if stopping {
                    if started && terminal {
                        let _ = writeln!(std::io::stderr());
                    }
                    return;
                }
                // Once stopped, one more look: a pull that ended before the first poll is
                // still listed for a while, and is reported.
                tokio::select! {
                    () = tokio::time::sleep(POLL) => {}
                    _ = stopped.changed() => stopping = true,
                }
            }
        });
        Self { stop, handle }
    }

    /// Stops following (the pull's end is printed if it was seen).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.handle).await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pulls_are_found_and_drawn() {
        let answer = json!({"pulls": [
            {"image": "r:5000/a:1", "bytes_done": 1, "bytes_total": 2, "layers_done": 0,
             "layers_total": 1, "done": true, "failed": false},
            {"image": "r:5000/a:1", "bytes_done": 1048576, "bytes_total": 4194304,
             "layers_done": 1, "layers_total": 2, "done": false, "failed": false},
            {"image": "other", "bytes_done": 0, "bytes_total": 0, "layers_done": 0,
             "layers_total": 0, "done": false, "failed": false}
        ]});
        let p = find(&answer, "r:5000/a:1").unwrap();
        assert_eq!(p.bytes_done, 1048576);
        assert!(!p.done);
        assert_eq!(
            bar("r:5000/a:1", &p),
            "pulling r:5000/a:1 [########                      ]  25% 1 MiB/4 MiB, 1/2 layers"
        );
        assert_eq!(
            summary("r:5000/a:1", &p),
            "pulled r:5000/a:1: 4 MiB in 2 layers"
        );
        assert!(find(&answer, "nope").is_none());
        assert!(find(&json!({}), "x").is_none());
        let failed = Pull { failed: true, ..p };
        assert_eq!(summary("x", &failed), "pulling x failed");
    }
}
