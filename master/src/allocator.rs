//! The allocator: a pure function from a read-only view of agents and frameworks to allocations.
//! It does no I/O, keeps no clock of its own (`now` is an input) and sends nothing: the master's
//! state machine turns its decisions into offers.
//!
//! Policy (the first cut of Mesos' hierarchical DRF; weights, quotas and role trees come later):
//! every agent's available resources go, whole, to the eligible framework with the lowest dominant
//! share, ties broken by framework id. A framework is eligible for an agent when it is active, not
//! suppressed, subscribed to a role the resources may go to, and has no live refuse filter
//! covering what would be offered.

use std::collections::HashMap;
use std::time::Instant;
use strata_schema::{AgentId, FrameworkId, Resources, DEFAULT_ROLE};

/// Resources smaller than this are not worth offering (Mesos' `--min_allocatable_resources`
/// default: `cpus:0.01|mem:32`).
pub const MIN_ALLOCATABLE_CPUS: f64 = 0.01;
pub const MIN_ALLOCATABLE_MEM: f64 = 32.0;

/// "Don't offer me these resources on this agent again until `expires`."
#[derive(Debug, Clone, PartialEq)]
pub struct RefuseFilter {
    pub resources: Resources,
    pub expires: Instant,
}

impl RefuseFilter {
    /// Whether the filter still holds back `offered` at `now` (Mesos: a filter refuses an offer
    /// whose resources it covers entirely).
    pub fn refuses(&self, offered: &Resources, now: Instant) -> bool {
        now < self.expires && self.resources.contains(offered)
    }
}

#[derive(Debug, Clone)]
pub struct AgentView {
    pub id: AgentId,
    /// Total minus used minus offered.
    pub available: Resources,
}

#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: FrameworkId,
    pub roles: Vec<String>,
    /// Resources used by its tasks plus resources offered to it.
    pub allocated: Resources,
    pub active: bool,
    pub suppressed: bool,
    pub filters: HashMap<AgentId, RefuseFilter>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub framework: FrameworkId,
    pub agent: AgentId,
    pub resources: Resources,
}

/// The dominant share of `allocated` in a cluster of `total` resources: the largest fraction of
/// any scalar resource.
pub fn dominant_share(allocated: &Resources, total: &Resources) -> f64 {
    allocated
        .iter()
        .filter_map(|r| match r.value {
            strata_schema::Value::Scalar(v) => {
                let t = total.scalar(&r.name);
                (t > 0.0).then(|| v / t)
            }
            _ => None,
        })
        .fold(0.0, f64::max)
}

fn allocatable(res: &Resources) -> bool {
    res.cpus() >= MIN_ALLOCATABLE_CPUS || res.mem() >= MIN_ALLOCATABLE_MEM
}

/// The part of `available` a framework with `roles` may be offered: unreserved resources and those
/// reserved for one of its roles.
fn offerable_to(available: &Resources, roles: &[String]) -> Resources {
    let items = available
        .iter()
        .filter(|r| r.role == DEFAULT_ROLE || roles.contains(&r.role))
        .cloned()
        .collect();
    Resources::from_vec(items).unwrap_or_default()
}

/// Decides which framework gets which agent's available resources.
pub fn allocate(
    agents: &[AgentView],
    frameworks: &[FrameworkView],
    total: &Resources,
    now: Instant,
) -> Vec<Allocation> {
    let mut allocated: Vec<Resources> = frameworks.iter().map(|f| f.allocated.clone()).collect();
    let mut out = Vec::new();
    for agent in agents {
        if !allocatable(&agent.available) {
            continue;
        }
        let mut best: Option<(f64, usize, Resources)> = None;
        for (i, fw) in frameworks.iter().enumerate() {
            if !fw.active || fw.suppressed {
                continue;
            }
            let offer = offerable_to(&agent.available, &fw.roles);
            if !allocatable(&offer) {
                continue;
            }
            if fw
                .filters
                .get(&agent.id)
                .is_some_and(|f| f.refuses(&offer, now))
            {
                continue;
            }
            let share = dominant_share(&allocated[i], total);
            let better = match &best {
                None => true,
                Some((s, j, _)) => share < *s || (share == *s && fw.id < frameworks[*j].id),
            };
            if better {
                best = Some((share, i, offer));
            }
        }
        if let Some((_, i, resources)) = best {
            allocated[i].add(&resources);
            out.push(Allocation {
                framework: frameworks[i].id.clone(),
                agent: agent.id.clone(),
                resources,
            });
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn res(s: &str) -> Resources {
        Resources::parse(s).unwrap()
    }
    fn agent(id: &str, avail: &str) -> AgentView {
        AgentView {
            id: AgentId::new(id).unwrap(),
            available: res(avail),
        }
    }
    fn fw(id: &str, allocated: &str) -> FrameworkView {
        FrameworkView {
            id: FrameworkId::new(id).unwrap(),
            roles: vec!["*".into()],
            allocated: res(allocated),
            active: true,
            suppressed: false,
            filters: HashMap::new(),
        }
    }

    #[test]
    fn lowest_dominant_share_wins_each_agent() {
        let total = res("cpus:8;mem:8192");
        let agents = [
            agent("a1", "cpus:2;mem:2048"),
            agent("a2", "cpus:2;mem:2048"),
        ];
        // f1 holds 50% of cpus, f2 25% of mem: f2 gets a1; then f2 holds 50% of mem and ties
        // with f1, and the tie goes to the smaller id, f1.
        let fws = [fw("f1", "cpus:4;mem:0"), fw("f2", "cpus:0;mem:2048")];
        let out = allocate(&agents, &fws, &total, Instant::now());
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].framework.as_str(), "f2");
        assert_eq!(out[0].resources, res("cpus:2;mem:2048"));
        assert_eq!(out[1].framework.as_str(), "f1");
    }

    #[test]
    fn shares_alternate_between_equal_frameworks() {
        let total = res("cpus:4;mem:4096");
        let agents = [
            agent("a1", "cpus:2;mem:2048"),
            agent("a2", "cpus:2;mem:2048"),
        ];
        let fws = [fw("f1", ""), fw("f2", "")];
        let out = allocate(&agents, &fws, &total, Instant::now());
        let who: Vec<_> = out.iter().map(|a| a.framework.as_str()).collect();
        assert_eq!(who, ["f1", "f2"]);
    }

    #[test]
    fn inactive_suppressed_and_filtered_frameworks_get_nothing() {
        let total = res("cpus:4;mem:4096");
        let agents = [agent("a1", "cpus:2;mem:2048")];
        let now = Instant::now();
        let mut f1 = fw("f1", "");
        f1.active = false;
        let mut f2 = fw("f2", "");
        f2.suppressed = true;
        let mut f3 = fw("f3", "");
        f3.filters.insert(
            AgentId::new("a1").unwrap(),
            RefuseFilter {
                resources: res("cpus:4;mem:4096"),
                expires: now + Duration::from_secs(5),
            },
        );
        let out = allocate(&agents, &[f1, f2, f3.clone()], &total, now);
        assert!(out.is_empty(), "{out:?}");
        // Once the filter expires, f3 gets the agent.
        let out = allocate(&agents, &[f3], &total, now + Duration::from_secs(6));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn filter_does_not_cover_more_resources() {
        let now = Instant::now();
        let f = RefuseFilter {
            resources: res("cpus:1;mem:128"),
            expires: now + Duration::from_secs(5),
        };
        assert!(f.refuses(&res("cpus:1;mem:128"), now));
        assert!(!f.refuses(&res("cpus:2;mem:128"), now));
    }

    #[test]
    fn tiny_leftovers_are_not_offered() {
        let total = res("cpus:4;mem:4096");
        let agents = [agent("a1", "cpus:0.001;mem:16")];
        assert!(allocate(&agents, &[fw("f1", "")], &total, Instant::now()).is_empty());
    }

    #[test]
    fn reserved_resources_go_only_to_their_role() {
        let total = res("cpus:4;mem:4096");
        let agents = [agent("a1", "cpus(ops):2;mem(ops):1024;cpus:1;mem:512")];
        let mut ops = fw("f2", "cpus:1");
        ops.roles = vec!["ops".into()];
        let out = allocate(
            &agents,
            &[fw("f1", ""), ops.clone()],
            &total,
            Instant::now(),
        );
        assert_eq!(out[0].framework.as_str(), "f1");
        assert_eq!(out[0].resources, res("cpus:1;mem:512"));
        let out = allocate(&agents, &[ops], &total, Instant::now());
        assert_eq!(
            out[0].resources,
            res("cpus(ops):2;mem(ops):1024;cpus:1;mem:512")
        );
    }
}
