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

// TEMPORARY SHIM: replaced by the hierarchical allocator on merge.
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct RoleConfig {
    pub weight: f64,
    pub guarantees: Resources,
    pub limits: Resources,
}
impl Default for RoleConfig {
    fn default() -> Self {
        Self {
            weight: 1.0,
            guarantees: Resources::new(),
            limits: Resources::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentView {
    pub id: AgentId,
    pub available: Resources,
    pub total: Resources,
}

#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: FrameworkId,
    pub roles: Vec<String>,
    pub active: bool,
    pub suppressed_roles: Vec<String>,
    pub allocated: BTreeMap<String, Resources>,
    pub filters: HashMap<AgentId, RefuseFilter>,
}

pub struct View<'a> {
    pub agents: &'a [AgentView],
    pub frameworks: &'a [FrameworkView],
    pub roles: &'a BTreeMap<String, RoleConfig>,
    pub min_allocatable: &'a [Resources],
    pub now: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub framework: FrameworkId,
    pub role: String,
    pub agent: AgentId,
    pub resources: Resources,
}

pub struct OutstandingOffer {
    pub framework: FrameworkId,
    pub role: String,
    pub agent: AgentId,
    pub resources: Resources,
}

pub fn default_min_allocatable() -> Vec<Resources> {
    vec![
        Resources::scalar_resource("cpus", MIN_ALLOCATABLE_CPUS),
        Resources::scalar_resource("mem", MIN_ALLOCATABLE_MEM),
    ]
}

pub fn parse_min_allocatable(text: &str) -> Result<Vec<Resources>, String> {
    text.split('|')
        .map(|p| Resources::parse(p).map_err(|e| e.to_string()))
        .collect()
}

pub fn to_rescind(_view: &View<'_>, _offers: &[OutstandingOffer]) -> Vec<usize> {
    Vec::new()
}

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

fn offerable_to(available: &Resources, role: &str) -> Resources {
    let items = available
        .iter()
        .filter(|r| {
            r.role == DEFAULT_ROLE || r.role == role || role.starts_with(&format!("{}/", r.role))
        })
        .cloned()
        .collect();
    Resources::from_vec(items).unwrap_or_default()
}

pub fn allocate(view: &View<'_>) -> Vec<Allocation> {
    let mut total = Resources::new();
    for a in view.agents {
        total.add(&a.total);
    }
    let mut allocated: Vec<Resources> = view
        .frameworks
        .iter()
        .map(|f| {
            let mut r = Resources::new();
            for v in f.allocated.values() {
                r.add(v);
            }
            r
        })
        .collect();
    let mut out = Vec::new();
    for agent in view.agents {
        let mut available = agent.available.clone();
        loop {
            if !allocatable(&available) {
                break;
            }
            let mut best: Option<(f64, usize, String, Resources)> = None;
            for (i, fw) in view.frameworks.iter().enumerate() {
                if !fw.active {
                    continue;
                }
                for role in &fw.roles {
                    if fw.suppressed_roles.contains(role) {
                        continue;
                    }
                    let offer = offerable_to(&available, role);
                    if !allocatable(&offer) {
                        continue;
                    }
                    if fw
                        .filters
                        .get(&agent.id)
                        .is_some_and(|f| f.refuses(&offer, view.now))
                    {
                        continue;
                    }
                    let share = dominant_share(&allocated[i], &total);
                    if best.as_ref().is_none_or(|(s, _, _, _)| share < *s) {
                        best = Some((share, i, role.clone(), offer));
                    }
                }
            }
            let Some((_, i, role, resources)) = best else {
                break;
            };
            allocated[i].add(&resources);
            available = available.saturating_sub(&resources);
            out.push(Allocation {
                framework: view.frameworks[i].id.clone(),
                role,
                agent: agent.id.clone(),
                resources,
            });
        }
    }
    out
}
