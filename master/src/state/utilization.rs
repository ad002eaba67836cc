//! The master's own utilisation history for the web UI: every [`SAMPLE_PERIOD`] the actor
//! records the cluster's total and used cpus, mem, disk and gpus ([`Master::sample_utilization`])
//! in a ring holding the last hour, served at `GET /master/utilization`.

use super::{AgentState, Master};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::Duration;
use strata_schema::{Resources, TaskStatus};

/// How often the actor samples.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(10);

/// Samples kept: one hour at [`SAMPLE_PERIOD`].
pub const CAPACITY: usize = 360;

/// The cluster's scalars at one time (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub time: f64,
    pub cpus_total: f64,
    pub cpus_used: f64,
    pub mem_total: f64,
    pub mem_used: f64,
    pub disk_total: f64,
    pub disk_used: f64,
    pub gpus_total: f64,
    pub gpus_used: f64,
}

impl Sample {
    /// The sample of `total` and `used` at `time`.
    pub fn of(time: f64, total: &Resources, used: &Resources) -> Self {
        Sample {
            time,
            cpus_total: total.cpus(),
            cpus_used: used.cpus(),
            mem_total: total.mem(),
            mem_used: used.mem(),
            disk_total: total.disk(),
            disk_used: used.disk(),
            gpus_total: total.gpus(),
            gpus_used: used.gpus(),
        }
    }
}

/// The last [`CAPACITY`] samples, oldest first.
#[derive(Debug, Default)]
pub struct Ring {
    samples: VecDeque<Sample>,
}

impl Ring {
    /// Appends `sample`, dropping the oldest once full.
    pub fn record(&mut self, sample: Sample) {
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter()
    }

    /// `{"period_secs": 10, "capacity": 360, "samples": [...]}`, oldest sample first.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "period_secs": SAMPLE_PERIOD.as_secs(),
            "capacity": CAPACITY,
            "samples": self.samples,
        })
    }
}

impl Master {
    /// Records the cluster's total and used resources now (reachable agents, as in `/state`).
    pub fn sample_utilization(&mut self) {
        let (mut total, mut used) = (Resources::new(), Resources::new());
        for a in self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Unreachable)
        {
            total.add(&a.total());
            used.add(&a.used);
        }
        self.utilization
            .record(Sample::of(TaskStatus::now(), &total, &used));
    }

    /// `GET /master/utilization`.
    pub fn utilization_json(&self) -> serde_json::Value {
        self.utilization.to_json()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(time: f64) -> Sample {
        let total = Resources::parse("cpus:4;mem:1024;disk:10;gpus:1").unwrap();
        let used = Resources::parse("cpus:1;mem:256").unwrap();
        Sample::of(time, &total, &used)
    }

    #[test]
    fn ring_keeps_the_last_hour_oldest_first() {
        let mut ring = Ring::default();
        assert_eq!(ring.samples().count(), 0);
        for t in 0..CAPACITY + 5 {
            ring.record(sample(t as f64));
        }
        let times: Vec<f64> = ring.samples().map(|s| s.time).collect();
        assert_eq!(times.len(), CAPACITY);
        assert_eq!(times[0], 5.0);
        assert_eq!(times[CAPACITY - 1], (CAPACITY + 4) as f64);
        assert!(times.windows(2).all(|w| w[0] < w[1]));
        let json = ring.to_json();
        assert_eq!(json["capacity"], 360);
        assert_eq!(json["period_secs"], 10);
        assert_eq!(json["samples"].as_array().unwrap().len(), CAPACITY);
        assert_eq!(json["samples"][0]["time"], 5.0);
    }

    #[test]
    fn samples_carry_totals_and_use() {
        let s = sample(1.0);
        assert_eq!(
            (s.cpus_total, s.cpus_used, s.mem_total, s.mem_used),
            (4.0, 1.0, 1024.0, 256.0)
        );
        assert_eq!(
            (s.disk_total, s.disk_used, s.gpus_total, s.gpus_used),
            (10.0, 0.0, 1.0, 0.0)
        );
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["gpus_total"], 1.0);
    }
}
