//! Inverse offers, Mesos' maintenance primitive: while an agent's machine is in the maintenance
//! schedule (and not down), every framework with tasks on it holds one inverse offer for the
//! agent, carrying the window's unavailability. The framework answers with
//! ACCEPT_INVERSE_OFFERS (it will be off the agent in time) or DECLINE_INVERSE_OFFERS; either
//! answer is recorded for `/maintenance/status` and, like a declined offer, filters further
//! inverse offers for that agent for `refuse_seconds` (5 s by default). Inverse offers that no
//! longer apply (the machine left the schedule or went down, the framework's tasks there ended)
//! are rescinded. [`Master::reconcile_inverse_offers`] does all of it after each allocation.

use super::{CallError, ConnId, Master, SchedulerEvent};
use crate::registry::MaintenanceWindow;
use serde_json::{json, Value as Json};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use strata_schema::{AgentId, FrameworkId, OfferId, TaskStatus};

/// One outstanding inverse offer.
#[derive(Debug, Clone)]
pub(super) struct InverseOffer {
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
}

/// What a framework last answered about an agent.
#[derive(Debug, Clone)]
pub(super) struct InverseResponse {
    pub accepted: bool,
    /// Seconds since the epoch.
    pub at: f64,
    /// No new inverse offer for the agent before then (`None` once passed).
    pub until: Option<Instant>,
}

/// An inverse offer as its framework receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct InverseOfferEvent {
    pub id: OfferId,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub hostname: String,
    pub unavailability: MaintenanceWindow,
}

/// The inverse offers of a master.
#[derive(Debug, Default)]
pub(super) struct InverseOffers {
    pub outstanding: HashMap<OfferId, InverseOffer>,
    pub responses: HashMap<(AgentId, FrameworkId), InverseResponse>,
}

impl Master {
    /// Makes the outstanding inverse offers what the schedule and the tasks call for: new ones
    /// for (agent, framework) pairs that need one and have no live answer, rescinds for those
    /// that no longer apply.
    pub(super) fn reconcile_inverse_offers(&mut self, now: Instant) {
        if self.registry.schedule.is_empty() && self.inverse.outstanding.is_empty() {
            return;
        }
        // Agents in a window, connected and not down.
        let mut scheduled: HashMap<&AgentId, MaintenanceWindow> = HashMap::new();
        for (id, agent) in &self.agents {
            if agent.down || agent.link.is_none() {
                continue;
            }
            if let Some(window) = self.window_of(&agent.info.hostname) {
                scheduled.insert(id, window);
            }
        }
        let mut wanted: HashSet<(AgentId, FrameworkId)> = HashSet::new();
        if !scheduled.is_empty() {
            for fw in self.frameworks.values().filter(|f| f.active()) {
                for task in fw.tasks.values() {
                    if scheduled.contains_key(&task.info.agent_id) {
                        wanted.insert((task.info.agent_id.clone(), fw.id.clone()));
                    }
                }
            }
        }
        // Rescind what no longer applies.
        let stale: Vec<OfferId> = self
            .inverse
            .outstanding
            .iter()
            .filter(|(_, o)| !wanted.contains(&(o.agent_id.clone(), o.framework_id.clone())))
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            if let Some(offer) = self.inverse.outstanding.remove(&id) {
                if let Some(fw) = self.frameworks.get(&offer.framework_id) {
                    fw.send(SchedulerEvent::RescindInverseOffer(id));
                }
            }
        }
        // Answers about machines that left the schedule are forgotten.
        self.inverse
            .responses
            .retain(|(agent, _), _| scheduled.contains_key(agent));
        // Offer what is missing.
        let held: HashSet<(AgentId, FrameworkId)> = self
            .inverse
            .outstanding
            .values()
            .map(|o| (o.agent_id.clone(), o.framework_id.clone()))
            .collect();
        let mut missing: Vec<(AgentId, FrameworkId)> = wanted
            .into_iter()
            .filter(|pair| !held.contains(pair))
            .filter(|pair| {
                self.inverse
                    .responses
                    .get(pair)
                    .is_none_or(|r| r.until.is_none_or(|until| until <= now))
            })
            .collect();
        missing.sort();
        let mut by_framework: HashMap<FrameworkId, Vec<InverseOfferEvent>> = HashMap::new();
        for (agent_id, framework_id) in missing {
            let (Some(window), Some(agent)) =
                (scheduled.get(&agent_id), self.agents.get(&agent_id))
            else {
                continue;
            };
            let event = InverseOfferEvent {
                id: self.new_id("O", self.next_offer + 1),
                framework_id: framework_id.clone(),
                agent_id: agent_id.clone(),
                hostname: agent.info.hostname.clone(),
                unavailability: window.clone(),
            };
            self.next_offer += 1;
            self.inverse.outstanding.insert(
                event.id.clone(),
                InverseOffer {
                    framework_id: framework_id.clone(),
                    agent_id,
                },
            );
            by_framework.entry(framework_id).or_default().push(event);
        }
        for (fw_id, offers) in by_framework {
            if let Some(fw) = self.frameworks.get(&fw_id) {
                fw.send(SchedulerEvent::InverseOffers(offers));
            }
        }
    }

    /// ACCEPT_INVERSE_OFFERS (`accepted`) or DECLINE_INVERSE_OFFERS: records the answer for each
    /// agent and filters further inverse offers for it for `refuse_seconds`. Every id must be an
    /// outstanding inverse offer of this framework; otherwise nothing is recorded.
    pub fn answer_inverse_offers(
        &mut self,
        conn: ConnId,
        id: &FrameworkId,
        offer_ids: &[OfferId],
        accepted: bool,
        refuse_seconds: f64,
        now: Instant,
    ) -> Result<(), CallError> {
        self.caller(conn, id)?;
        for offer_id in offer_ids {
            match self.inverse.outstanding.get(offer_id) {
                Some(o) if o.framework_id == *id => {}
                _ => {
                    return Err(CallError::InvalidOffers(format!(
                        "{offer_id} is not an outstanding inverse offer of framework {id}"
                    )))
                }
            }
        }
        let refuse = Duration::from_secs_f64(refuse_seconds.max(0.0)).min(self.config.max_refuse);
        for offer_id in offer_ids {
            if let Some(offer) = self.inverse.outstanding.remove(offer_id) {
                self.inverse.responses.insert(
                    (offer.agent_id, offer.framework_id),
                    InverseResponse {
                        accepted,
                        at: TaskStatus::now(),
                        until: Some(now + refuse),
                    },
                );
            }
        }
        self.dirty = true;
        Ok(())
    }

    /// Forgets a removed framework's inverse offers and answers.
    pub(super) fn drop_inverse_offers_of(&mut self, id: &FrameworkId) {
        self.inverse
            .outstanding
            .retain(|_, o| o.framework_id != *id);
        self.inverse.responses.retain(|(_, fw), _| fw != id);
    }

    /// When the next answer's filter ends.
    pub(super) fn next_inverse_expiry(&self) -> Option<Instant> {
        self.inverse
            .responses
            .values()
            .filter_map(|r| r.until)
            .min()
    }

    /// Ends the answers' filters that are due, so that allocating offers again.
    pub(super) fn expire_inverse_filters(&mut self, now: Instant) {
        for r in self.inverse.responses.values_mut() {
            if r.until.is_some_and(|until| until <= now) {
                r.until = None;
                self.dirty = true;
            }
        }
    }

    /// Mesos' `InverseOfferStatus` list of an agent for `/maintenance/status`: each framework's
    /// answer (ACCEPT, DECLINE) or UNKNOWN while its inverse offer is outstanding.
    pub(super) fn inverse_statuses(&self, agent_id: &AgentId) -> Vec<Json> {
        let nanos = strata_schema::v1::nanos_json;
        let mut statuses: Vec<(String, Json)> = Vec::new();
        for ((agent, fw), r) in &self.inverse.responses {
            if agent == agent_id {
                statuses.push((
                    fw.to_string(),
                    json!({
                        "status": if r.accepted { "ACCEPT" } else { "DECLINE" },
                        "framework_id": { "value": fw },
                        "timestamp": nanos(r.at),
                    }),
                ));
            }
        }
        for o in self.inverse.outstanding.values() {
            if o.agent_id == *agent_id
                && !self
                    .inverse
                    .responses
                    .contains_key(&(o.agent_id.clone(), o.framework_id.clone()))
            {
                statuses.push((
                    o.framework_id.to_string(),
                    json!({
                        "status": "UNKNOWN",
                        "framework_id": { "value": o.framework_id },
                        "timestamp": nanos(self.start_time),
                    }),
                ));
            }
        }
        statuses.sort_by(|a, b| a.0.cmp(&b.0));
        statuses.into_iter().map(|(_, s)| s).collect()
    }
}
