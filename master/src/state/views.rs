//! The allocator's view of the agents, kept between allocations. Building it fresh costs a copy
//! of every agent's total and two subtractions (a few dozen small allocations per agent): with
//! ten thousand agents and an allocation every few milliseconds under load, most of the actor's
//! time. [`AgentViews`] keeps each offerable agent's [`AgentView`] with the inputs it was
//! computed from, and recomputes only the agents whose inputs changed; comparing them allocates
//! nothing. [`Master::allocator_views`] stays the reference: debug builds compare the two.

use super::{Agent, Master};
use crate::allocator::AgentView;
use strata_schema::Resources;

/// What an agent's view is computed from.
#[derive(Debug, PartialEq)]
struct Inputs {
    reported: Resources,
    reservations: Resources,
    volumes: Resources,
    used: Resources,
    offered: Resources,
}

impl Inputs {
    fn matches(&self, a: &Agent) -> bool {
        self.used == a.used
            && self.offered == a.offered
            && self.reported == a.info.resources
            && self.reservations == a.reservations
            && self.volumes == a.volumes
    }

    fn of(a: &Agent) -> Inputs {
        Inputs {
            reported: a.info.resources.clone(),
            reservations: a.reservations.clone(),
            volumes: a.volumes.clone(),
            used: a.used.clone(),
            offered: a.offered.clone(),
        }
    }
}

/// The offerable agents' views, sorted by id, with what each was computed from.
#[derive(Debug, Default)]
pub(super) struct AgentViews {
    views: Vec<AgentView>,
    inputs: Vec<Inputs>,
}

fn view_of(a: &Agent) -> AgentView {
    let total = a.total();
    AgentView {
        id: a.id.clone(),
        available: total.saturating_sub(&a.used).saturating_sub(&a.offered),
        total,
    }
}

impl AgentViews {
    /// Brings the views in line with `master`'s offerable agents and returns them (sorted by
    /// id, as [`Master::allocator_views`] makes them).
    pub(super) fn refresh(&mut self, master: &Master) -> &[AgentView] {
        let mut offerable: Vec<&Agent> = master.agents.values().filter(|a| a.offerable()).collect();
        offerable.sort_by(|a, b| a.id.cmp(&b.id));
        let same_agents = offerable.len() == self.views.len()
            && offerable.iter().zip(&self.views).all(|(a, v)| a.id == v.id);
        if !same_agents {
            // Agents came or went: rebuild, keeping the views of those that did not change.
            let mut old: std::collections::HashMap<_, _> = std::mem::take(&mut self.views)
                .into_iter()
                .zip(std::mem::take(&mut self.inputs))
                .map(|(v, i)| (v.id.clone(), (v, i)))
                .collect();
            for a in offerable {
                match old.remove(&a.id) {
                    Some((v, i)) if i.matches(a) => {
                        self.views.push(v);
                        self.inputs.push(i);
                    }
                    _ => {
                        self.views.push(view_of(a));
                        self.inputs.push(Inputs::of(a));
                    }
                }
            }
            return &self.views;
        }
        for ((a, view), inputs) in offerable
            .into_iter()
            .zip(self.views.iter_mut())
            .zip(self.inputs.iter_mut())
        {
            if !inputs.matches(a) {
                *view = view_of(a);
                *inputs = Inputs::of(a);
            }
        }
        &self.views
    }
}

/// Debug builds check after every refresh that the kept views are those
/// [`Master::allocator_views`] computes afresh (so every test that allocates checks it too).
#[cfg(debug_assertions)]
pub(super) fn assert_same(kept: &[AgentView], fresh: &[AgentView]) {
    assert_eq!(kept.len(), fresh.len(), "kept agent views");
    for (k, f) in kept.iter().zip(fresh) {
        assert_eq!(k.id, f.id, "kept agent views");
        assert_eq!(k.total, f.total, "kept view of agent {}", k.id);
        assert_eq!(k.available, f.available, "kept view of agent {}", k.id);
    }
}
