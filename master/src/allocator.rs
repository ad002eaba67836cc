//! The allocator: a pure function from a read-only [`View`] of agents, frameworks and role
//! configuration to [`Allocation`]s. It does no I/O, keeps no clock of its own (`now` is an
//! input) and sends nothing: the master's state machine turns its decisions into offers.
//!
//! # Policy: Mesos' hierarchical DRF allocator
//!
//! Roles form a tree by name: `eng/backend` is a child of `eng`. Every call builds the tree of
//! the roles it sees (frameworks' roles, reservations, configured roles and their ancestors)
//! under a virtual root.
//!
//! - **Reservations.** A resource reserved for role `r` goes only to a framework subscribed to
//!   `r` or to a descendant of `r`, and keeps its reservation role in the offer. Unreserved
//!   resources (`*`) may go to anyone.
//! - **Order.** Siblings are ordered by the dominant share of their whole subtree's allocation
//!   divided by their weight, then by name. A role that has frameworks of its own *and*
//!   children gets, as in Mesos' sorter, a virtual leaf for its own frameworks: it competes
//!   with the children, with the share of what the role's own frameworks hold and the role's
//!   weight, and sorts before a child on a tie. Within a role, frameworks are ordered by the
//!   dominant share of what they hold in that role, then by id. Dominant share: the largest
//!   `allocated / total` over scalar names, `total` the sum of the agents' `total`.
//! - **Offers.** Agents are visited in the view's order. For one agent, the roles and frameworks
//!   are walked in that order (as it stood when the agent's turn came): the first eligible
//!   framework gets everything on the agent it may take (reservations of its role's chain,
//!   unreserved resources chopped by quota), then the walk goes on with what is left. A
//!   framework subscribed to several roles is a separate client of each, with one allocation
//!   per role. Eligible: active, the role not suppressed, what would be offered allocatable
//!   (contains one of `min_allocatable`) and not covered by a live refuse filter of the
//!   framework on that agent.
//! - **Quota, stage 1 (guarantees).** Before fair share, every agent is offered to the roles
//!   below a guarantee, ordered by share / weight (flat, not by tree level). For a scalar name
//!   some role of the chain (the role and its ancestors) guarantees, the unreserved part is
//!   chopped to the largest unmet part of those guarantees (a parent's guarantee covers its
//!   subtree); other scalars follow the headroom rule below; ranges and sets go whole, and the
//!   chain's reservations too.
//! - **Quota, stage 2 (fair share).** Every agent again, to all roles in DRF order. Unreserved
//!   scalars are chopped so that the free unreserved resources left in the cluster stay at least
//!   the *required headroom*: the unmet guarantees (see [`required_headroom`]). Required
//!   headroom is computed when a stage starts (within a stage it is not lowered as guarantees
//!   get met, which only holds back more).
//! - **Consumed quota** of a role: the scalars allocated to its subtree (reserved or not) plus
//!   the unallocated reservations of its subtree in the agents' `available`. Allocating a
//!   reservation does not change it; allocating unreserved resources raises it.
//! - **Limits.** No role's consumed quota exceeds its limit, for any name and at any level of
//!   its chain: unreserved scalars are chopped; a chopped offer that is no longer allocatable
//!   is skipped. (A limit of 0 cannot be written: [`Resources`] drops zero scalars.)
//! - **One allocation per framework, role and agent**: what stage 2 adds to a stage 1
//!   allocation is merged into it.
//!
//! # Cost
//!
//! Per call: one pass to index the view (scalar names interned, quantities as integers, the
//! role tree with ordered sets of children and frameworks, each agent's resources read once, the
//! live refuse filters listed per agent), then per agent a walk down those
//! sets that stops at the first framework that takes everything left; only the entries of the
//! frameworks that got something are re-keyed. A role that can get nothing more in a stage
//! (at its limits, no reservation) is pruned from the walk. The work per agent is the number of
//! frameworks tried before one takes the agent (those with a filter on it), not the number of
//! roles or frameworks.
//!
//! Scalars are handled internally in Mesos' fixed point (thousandths) as integers, so limits
//! and guarantees are compared exactly. Scalar names no agent has are ignored.
//!
//! # Rescinding
//!
//! [`to_rescind`] names outstanding offers the master should take back; see its documentation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use strata_schema::{AgentId, FrameworkId, Range, Resource, Resources, Value, DEFAULT_ROLE};

/// An operator's settings for one role (Mesos' weights and quota).
#[derive(Debug, Clone, PartialEq)]
pub struct RoleConfig {
    /// The role's weight among its siblings (default 1.0; a non-positive or non-finite weight
    /// counts as 1.0).
    pub weight: f64,
    /// Scalar quantities the role's subtree is guaranteed (unreserved items; roles ignored).
    pub guarantees: Resources,
    /// Scalar quantities the role's subtree may not exceed; a name absent is not limited.
    pub limits: Resources,
}

impl Default for RoleConfig {
    fn default() -> Self {
        RoleConfig {
            weight: 1.0,
            guarantees: Resources::new(),
            limits: Resources::new(),
        }
    }
}

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
    /// Total minus used minus offered, reserved items included.
    pub available: Resources,
    /// Everything the agent has.
    pub total: Resources,
}

#[derive(Debug, Clone)]
pub struct FrameworkView {
    pub id: FrameworkId,
    /// The roles it subscribed to.
    pub roles: Vec<String>,
    pub active: bool,
    /// Roles it suppressed offers for: it gets nothing for them.
    pub suppressed_roles: Vec<String>,
    /// Per role: resources used by its tasks plus resources offered to it.
    pub allocated: BTreeMap<String, Resources>,
    /// Decline filters, per agent (not per role). Shared with the master's framework, so
    /// building a view does not copy them.
    pub filters: std::sync::Arc<HashMap<AgentId, RefuseFilter>>,
}

/// Everything the allocator decides from.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    pub agents: &'a [AgentView],
    pub frameworks: &'a [FrameworkView],
    /// Operator-set weights and quotas; a role absent has [`RoleConfig::default`].
    pub roles: &'a BTreeMap<String, RoleConfig>,
    /// Mesos' `--min_allocatable_resources`: an offer is allocatable when it contains at least
    /// one of these (scalar quantities, summed over roles); empty: anything non-empty is.
    pub min_allocatable: &'a [Resources],
    pub now: Instant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Allocation {
    pub framework: FrameworkId,
    /// The role the framework is offered the resources for.
    pub role: String,
    pub agent: AgentId,
    pub resources: Resources,
}

/// An offer the master has made and not yet had back.
#[derive(Debug, Clone, PartialEq)]
pub struct OutstandingOffer {
    pub framework: FrameworkId,
    pub role: String,
    pub agent: AgentId,
    pub resources: Resources,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MinAllocatableError {
    #[error("invalid min_allocatable alternative {part:?}: {why}")]
    Invalid { part: String, why: String },
}

/// Mesos' default `--min_allocatable_resources`: `cpus:0.01|mem:32`.
pub fn default_min_allocatable() -> Vec<Resources> {
    vec![
        Resources::scalar_resource("cpus", 0.01),
        Resources::scalar_resource("mem", 32.0),
    ]
}

/// Parses Mesos' `--min_allocatable_resources` syntax: `|`-separated alternatives, each a
/// resources string of unreserved scalars, e.g. `cpus:0.01|mem:32` or `cpus:1;mem:128|gpus:1`.
/// Blank text gives no alternative (anything non-empty is allocatable).
pub fn parse_min_allocatable(text: &str) -> Result<Vec<Resources>, MinAllocatableError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in text.split('|') {
        let invalid = |why: String| MinAllocatableError::Invalid {
            part: part.trim().to_string(),
            why,
        };
        let resources = Resources::parse(part).map_err(|e| invalid(e.to_string()))?;
        if resources.is_empty() {
            return Err(invalid("no resource quantity".to_string()));
        }
        for r in resources.iter() {
            if !matches!(r.value, Value::Scalar(_)) {
                return Err(invalid(format!("{:?} is not a scalar", r.name)));
            }
            if r.role != DEFAULT_ROLE {
                return Err(invalid(format!(
                    "{:?} is reserved for {:?}; quantities take no role",
                    r.name, r.role
                )));
            }
        }
        out.push(resources);
    }
    Ok(out)
}

/// Whether `role` is `ancestor` or below it (`eng/backend` is a subrole of `eng`).
pub fn is_subrole(role: &str, ancestor: &str) -> bool {
    role == ancestor
        || (role.len() > ancestor.len()
            && role.starts_with(ancestor)
            && role.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

/// The proper ancestors of `role`, nearest first: `a/b/c` gives `a/b`, then `a`.
pub fn ancestors(role: &str) -> impl Iterator<Item = &str> {
    role.char_indices()
        .rev()
        .filter(|&(_, c)| c == '/')
        .map(move |(i, _)| &role[..i])
}

/// The dominant share of `allocated` in a cluster of `total` resources: the largest fraction of
/// any scalar resource.
pub fn dominant_share(allocated: &Resources, total: &Resources) -> f64 {
    allocated
        .iter()
        .filter_map(|r| match r.value {
            Value::Scalar(v) => {
                let t = total.scalar(&r.name);
                (t > 0.0).then(|| v / t)
            }
            _ => None,
        })
        .fold(0.0, f64::max)
}

/// The unreserved scalars that must stay free for the unmet guarantees: for each role with a
/// guarantee, `max(guarantee - consumed, sum of its children's unmet)` per name, summed over
/// the top of the tree (a parent's guarantee covers its children's).
pub fn required_headroom(view: &View<'_>) -> Resources {
    let plan = Plan::new(view);
    let need = plan.required();
    plan.scalars(&need)
}

/// Decides which framework gets which of the agents' available resources.
pub fn allocate(view: &View<'_>) -> Vec<Allocation> {
    let mut plan = Plan::new(view);
    plan.index_filters();
    let mut order = Order::new(&mut plan);
    let mut out = Vec::with_capacity(view.agents.len());
    if plan.has_guarantees {
        plan.required = plan.required();
        plan.stage(&mut order, true, &mut out);
    }
    if plan.has_guarantees {
        plan.required = plan.required();
    }
    plan.stage(&mut order, false, &mut out);
    out
}

/// Which outstanding offers (indices into `offers`, ascending) the master should rescind. The
/// offers are counted in the view already (in the frameworks' `allocated`, not in the agents'
/// `available`); later offers in the slice are taken as newer.
///
/// 1. **Limits.** For each role whose consumed quota exceeds its limit for some name (say the
///    limit was lowered), ancestors first: offers to its subtree holding unreserved amounts of
///    an exceeding name, newest first, until the excess is covered. (Reserved resources count
///    against quota whether offered or not, so rescinding them would not help.)
/// 2. **Guarantees.** When the required headroom (unmet guarantees, [`required_headroom`])
///    exceeds the free unreserved resources (plus what step 1 takes back): offers holding
///    unreserved amounts of a short name, newest first, to roles whose chain would not drop
///    below a guarantee for it, until the shortfall is covered.
pub fn to_rescind(view: &View<'_>, offers: &[OutstandingOffer]) -> Vec<usize> {
    let mut plan = Plan::new(view);
    let k = plan.names.len();
    // Each offer's role node and unreserved scalar amounts.
    let nodes: Vec<Option<usize>> = offers
        .iter()
        .map(|o| plan.index.get(o.role.as_str()).copied())
        .collect();
    let unreserved: Vec<Vec<i64>> = offers
        .iter()
        .map(|o| {
            let mut v = vec![0; k];
            for r in o.resources.iter().filter(|r| r.role == DEFAULT_ROLE) {
                if let (Value::Scalar(x), Some(i)) = (&r.value, plan.name_index(&r.name)) {
                    v[i] += milli(*x);
                }
            }
            v
        })
        .collect();
    let mut chosen = vec![false; offers.len()];
    let mut freed = vec![0i64; k];

    // 1. Limits, ancestors first.
    let mut by_depth: Vec<usize> = (1..plan.nodes.len()).collect();
    by_depth.sort_by_key(|&n| plan.nodes[n].depth);
    for &n in &by_depth {
        if !plan.nodes[n].has_limit {
            continue;
        }
        for (o, node) in nodes.iter().enumerate().rev() {
            let excess: Vec<i64> = (0..k)
                .map(|i| match plan.nodes[n].limit[i] {
                    Some(l) => plan.nodes[n].consumed[i] - l,
                    None => 0,
                })
                .collect();
            if excess.iter().all(|&e| e <= 0) {
                break;
            }
            let Some(node) = *node else { continue };
            if chosen[o]
                || !plan.in_subtree(node, n)
                || !(0..k).any(|i| excess[i] > 0 && unreserved[o][i] > 0)
            {
                continue;
            }
            chosen[o] = true;
            plan.add_consumed(node, &unreserved[o], -1);
            for i in 0..k {
                freed[i] += unreserved[o][i];
            }
        }
    }

    // 2. Guarantees.
    if plan.has_guarantees {
        let required = plan.required();
        let mut short: Vec<i64> = (0..k)
            .map(|i| required[i] - plan.free[i] - freed[i])
            .collect();
        for (o, node) in nodes.iter().enumerate().rev() {
            if short.iter().all(|&s| s <= 0) {
                break;
            }
            if chosen[o] || !(0..k).any(|i| short[i] > 0 && unreserved[o][i] > 0) {
                continue;
            }
            if let Some(node) = *node {
                let keeps_guarantees = plan.chain(node).all(|c| {
                    (0..k).all(|i| match plan.nodes[c].guarantee[i] {
                        Some(g) => plan.nodes[c].consumed[i] - unreserved[o][i] >= g,
                        None => true,
                    })
                });
                if !keeps_guarantees {
                    continue;
                }
                plan.add_consumed(node, &unreserved[o], -1);
            }
            chosen[o] = true;
            for i in 0..k {
                short[i] -= unreserved[o][i];
            }
        }
    }
    (0..offers.len()).filter(|&o| chosen[o]).collect()
}

// ---- internals -----------------------------------------------------------------------------

/// Marks "none": the root's parent, a non-scalar item's name index, an unreserved item's owner.
const NONE: u32 = u32::MAX;
const SCALE: f64 = 1000.0;

fn milli(x: f64) -> i64 {
    (x * SCALE).round() as i64
}

fn from_milli(m: i64) -> f64 {
    m as f64 / SCALE
}

/// The allocator's internal maps: keys are short and hashed often, so a fast hasher (seeded per
/// process, as the standard one is).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A sort key: (share as ordered bits, name rank, node or slot index). Shares are non-negative,
/// so their IEEE bits order as the values do.
type Key = (u64, u32, u32);

fn share(alloc: &[i64], total: &[i64], weight: f64) -> u64 {
    let mut s = 0.0f64;
    for (a, t) in alloc.iter().zip(total) {
        if *t > 0 {
            s = s.max(*a as f64 / *t as f64);
        }
    }
    (s.max(0.0) / weight).to_bits()
}

struct Node<'a> {
    name: &'a str,
    parent: u32,
    depth: u32,
    rank: u32,
    weight: f64,
    /// Per scalar name, milli.
    guarantee: Vec<Option<i64>>,
    limit: Vec<Option<i64>>,
    has_guarantee: bool,
    has_limit: bool,
    /// Allocated to the subtree (reserved and not), for the DRF order.
    alloc: Vec<i64>,
    /// Allocated to the role's own frameworks.
    own_alloc: Vec<i64>,
    /// Consumed quota of the subtree: allocated plus unallocated reservations.
    consumed: Vec<i64>,
    key: Key,
    own_key: Key,
    /// In its parent's children (some eligible framework in the subtree).
    in_tree: bool,
    /// Has eligible frameworks of its own (an own entry in its children).
    has_own: bool,
    in_stage1: bool,
    /// Some reservation for the role or an ancestor is available.
    chain_reserved: bool,
}

/// One framework in one role it may be offered resources for.
struct Slot {
    framework: u32,
    node: u32,
    alloc: Vec<i64>,
    key: Key,
}

/// One item of an agent's available resources.
struct Item<'a> {
    res: &'a Resource,
    /// Scalar name index, or NONE for ranges and sets.
    k: u32,
    /// Reservation role node, or NONE when unreserved.
    owner: u32,
    /// What is left: milli for scalars, 1 or 0 for the others.
    left: i64,
    orig: i64,
}

/// Everything one call computes from the view, and the accounting that changes as it allocates.
struct Plan<'a> {
    view: &'a View<'a>,
    names: Vec<&'a str>,
    total: Vec<i64>,
    nodes: Vec<Node<'a>>,
    index: FastMap<&'a str, usize>,
    slots: Vec<Slot>,
    /// Per agent, the live refuse filters of frameworks with a slot:
    /// `filters[filter_start[a]..filter_start[a + 1]]`, (framework, resources) by framework.
    /// The resources' items are held directly: a try reads no framework's map.
    /// Empty (and `lazy_filters` set) when agent ids repeat: then each try looks its filter up.
    filter_start: Vec<u32>,
    filters: Vec<(u32, &'a [Resource])>,
    lazy_filters: bool,
    items: Vec<Item<'a>>,
    /// Per agent, its items' range.
    spans: Vec<(usize, usize)>,
    /// Free unreserved scalars over all agents, milli.
    free: Vec<i64>,
    required: Vec<i64>,
    has_guarantees: bool,
    /// Resolved min_allocatable alternatives (name index, milli); unsatisfiable ones dropped.
    min_alloc: Vec<Vec<(usize, i64)>>,
    min_any: bool,
    // Scratch, reused.
    offer: Vec<(usize, i64)>,
    caps: Vec<i64>,
    sums: Vec<i64>,
    deferred: Vec<(usize, usize)>,
    deferred_delta: Vec<i64>,
    pruned: Vec<usize>,
    /// Stage 1's allocations by (agent, slot): stage 2 adds to them rather than making a
    /// second allocation for the same framework, role and agent.
    stage1_out: FastMap<(usize, usize), usize>,
    /// No guarantee and no limit anywhere: caps are unbounded.
    unbounded: bool,
    /// Per agent: whether it has reserved items available.
    reserved_on: Vec<bool>,
    /// The agent whose role-independent offer `offer` holds (usize::MAX: none).
    cached_for: usize,
    cached_allocatable: bool,
}

/// The ordered structures walked per agent, kept apart from [`Plan`] so a walk can borrow them
/// while the plan's accounting changes.
struct Order {
    /// Per node: its children with an eligible framework below, and its own entry (id = the
    /// node itself) when it has eligible frameworks.
    children: Vec<BTreeSet<Key>>,
    /// Per node: its eligible frameworks' slots.
    frameworks: Vec<BTreeSet<Key>>,
    /// Stage 1: the nodes with eligible frameworks that are below a guarantee of their chain.
    stage1: BTreeSet<Key>,
}

impl<'a> Plan<'a> {
    fn new(view: &'a View<'a>) -> Plan<'a> {
        let mut plan = Plan {
            view,
            names: Vec::new(),
            total: Vec::new(),
            nodes: Vec::new(),
            index: FastMap::default(),
            slots: Vec::new(),
            filter_start: Vec::new(),
            filters: Vec::new(),
            lazy_filters: true,
            items: Vec::new(),
            spans: Vec::with_capacity(view.agents.len()),
            free: Vec::new(),
            required: Vec::new(),
            has_guarantees: false,
            min_alloc: Vec::new(),
            min_any: view.min_allocatable.is_empty(),
            offer: Vec::new(),
            caps: Vec::new(),
            sums: Vec::new(),
            deferred: Vec::new(),
            deferred_delta: Vec::new(),
            pruned: Vec::new(),
            stage1_out: FastMap::default(),
            unbounded: true,
            reserved_on: Vec::with_capacity(view.agents.len()),
            cached_for: usize::MAX,
            cached_allocatable: false,
        };
        // The role tree: node 0 is the virtual root. Nodes' per-name vectors are sized once
        // all scalar names are known, after the agents' pass.
        plan.nodes.push(plan.new_node("", NONE, 0));
        for role in view.roles.keys() {
            plan.intern(role);
        }
        for fw in view.frameworks {
            for role in fw.roles.iter().chain(fw.allocated.keys()) {
                plan.intern(role);
            }
        }
        // Agents, each read once (their resources are scattered in memory): scalar names, the
        // cluster total, the available items and their reservation roles.
        plan.items
            .reserve(view.agents.iter().map(|a| a.available.len()).sum());
        for agent in view.agents {
            for r in agent.total.iter() {
                if let Value::Scalar(x) = r.value {
                    let i = plan.name_index_or_add(&r.name);
                    plan.total[i] += milli(x);
                }
            }
            let start = plan.items.len();
            let mut reserved = false;
            for r in agent.available.iter() {
                let (k, left) = match r.value {
                    Value::Scalar(x) => (plan.name_index_or_add(&r.name) as u32, milli(x)),
                    _ => (NONE, 1),
                };
                let owner = if r.role == DEFAULT_ROLE {
                    NONE
                } else {
                    reserved = true;
                    plan.intern(&r.role) as u32
                };
                plan.items.push(Item {
                    res: r,
                    k,
                    owner,
                    left,
                    orig: left,
                });
            }
            plan.spans.push((start, plan.items.len()));
            plan.reserved_on.push(reserved);
        }
        let k = plan.names.len();
        plan.free = vec![0; k];
        plan.required = vec![0; k];
        plan.caps = vec![0; k];
        plan.sums = vec![0; k];
        for node in &mut plan.nodes {
            node.guarantee = vec![None; k];
            node.limit = vec![None; k];
            node.alloc = vec![0; k];
            node.own_alloc = vec![0; k];
            node.consumed = vec![0; k];
        }
        let mut by_name: Vec<usize> = (0..plan.nodes.len()).collect();
        by_name.sort_by(|&a, &b| plan.nodes[a].name.cmp(plan.nodes[b].name));
        for (rank, &n) in by_name.iter().enumerate() {
            plan.nodes[n].rank = rank as u32;
        }
        for (role, config) in view.roles {
            let Some(&n) = plan.index.get(role.as_str()) else {
                continue;
            };
            let weight = if config.weight.is_finite() && config.weight > 0.0 {
                config.weight
            } else {
                1.0
            };
            let guarantee = plan.quantities(&config.guarantees);
            let limit = plan.quantities(&config.limits);
            let node = &mut plan.nodes[n];
            node.weight = weight;
            node.has_guarantee = guarantee.iter().any(Option::is_some);
            node.has_limit = limit.iter().any(Option::is_some);
            node.guarantee = guarantee;
            node.limit = limit;
            plan.has_guarantees |= plan.nodes[n].has_guarantee;
            plan.unbounded &= !plan.nodes[n].has_guarantee && !plan.nodes[n].has_limit;
        }
        // Free unreserved scalars, and unallocated reservations (consumed quota).
        for idx in 0..plan.items.len() {
            let Item { k, owner, left, .. } = plan.items[idx];
            if k == NONE {
                continue;
            }
            if owner == NONE {
                plan.free[k as usize] += left;
            } else {
                plan.add_one_consumed(owner as usize, k as usize, left);
            }
        }
        // Frameworks' allocations and eligible slots.
        let mut by_id: Vec<usize> = (0..view.frameworks.len()).collect();
        by_id.sort_by(|&a, &b| view.frameworks[a].id.cmp(&view.frameworks[b].id));
        let mut fw_rank = vec![0u32; view.frameworks.len()];
        for (rank, &f) in by_id.iter().enumerate() {
            fw_rank[f] = rank as u32;
        }
        for (f, fw) in view.frameworks.iter().enumerate() {
            for (role, res) in &fw.allocated {
                let Some(&n) = plan.index.get(role.as_str()) else {
                    continue;
                };
                let v = plan.scalar_vec(res);
                plan.add_consumed(n, &v, 1);
                plan.add_alloc(n, &v);
                for (own, x) in plan.nodes[n].own_alloc.iter_mut().zip(&v) {
                    *own += x;
                }
            }
            if !fw.active {
                continue;
            }
            let mut seen: Vec<&str> = Vec::new();
            for role in &fw.roles {
                if fw.suppressed_roles.contains(role) || seen.contains(&role.as_str()) {
                    continue;
                }
                seen.push(role);
                let Some(&n) = plan.index.get(role.as_str()) else {
                    continue;
                };
                let alloc = match fw.allocated.get(role) {
                    Some(res) => plan.scalar_vec(res),
                    None => vec![0; k],
                };
                let s = plan.slots.len() as u32;
                let key = (share(&alloc, &plan.total, 1.0), fw_rank[f], s);
                plan.slots.push(Slot {
                    framework: f as u32,
                    node: n as u32,
                    alloc,
                    key,
                });
            }
        }
        // Which chains have reservations available.
        let mut reserved = vec![false; plan.nodes.len()];
        for item in &plan.items {
            if item.owner != NONE {
                reserved[item.owner as usize] = true;
            }
        }
        for n in 0..plan.nodes.len() {
            let chain_reserved = plan.chain(n).any(|c| reserved[c]);
            plan.nodes[n].chain_reserved = chain_reserved;
        }
        plan.min_alloc = view
            .min_allocatable
            .iter()
            .filter_map(|alt| {
                alt.iter()
                    .map(|r| match r.value {
                        Value::Scalar(x) => plan.name_index(&r.name).map(|i| (i, milli(x))),
                        _ => None,
                    })
                    .collect::<Option<Vec<_>>>()
            })
            .collect();
        plan
    }

    /// Indexes the frameworks' live refuse filters by agent (see `filters`), so that trying a
    /// framework on an agent looks in a short sorted list rather than hashing the agent's id
    /// into the framework's map.
    fn index_filters(&mut self) {
        let view = self.view;
        let mut agent_index: FastMap<&str, u32> = FastMap::default();
        agent_index.reserve(view.agents.len());
        for (a, agent) in view.agents.iter().enumerate() {
            if agent_index.insert(agent.id.as_str(), a as u32).is_some() {
                return;
            }
        }
        let mut tried = vec![false; view.frameworks.len()];
        for slot in &self.slots {
            tried[slot.framework as usize] = true;
        }
        // (agent, framework, resources), by framework; then a counting sort by agent keeps
        // each agent's list in framework order.
        let most = (0..view.frameworks.len())
            .filter(|&f| tried[f])
            .map(|f| view.frameworks[f].filters.len())
            .sum();
        let mut live: Vec<(u32, u32, &'a [Resource])> = Vec::with_capacity(most);
        for (f, fw) in view.frameworks.iter().enumerate() {
            if !tried[f] {
                continue;
            }
            for (agent, filter) in fw.filters.iter() {
                if view.now < filter.expires {
                    if let Some(&a) = agent_index.get(agent.as_str()) {
                        live.push((a, f as u32, filter.resources.as_slice()));
                    }
                }
            }
        }
        let mut start = vec![0u32; view.agents.len() + 1];
        for &(a, _, _) in &live {
            start[a as usize + 1] += 1;
        }
        for a in 0..view.agents.len() {
            start[a + 1] += start[a];
        }
        if let Some(&(_, _, any)) = live.first() {
            let mut next = start.clone();
            self.filters = vec![(u32::MAX, any); live.len()];
            for &(a, f, res) in &live {
                let at = &mut next[a as usize];
                self.filters[*at as usize] = (f, res);
                *at += 1;
            }
        }
        self.filter_start = start;
        self.lazy_filters = false;
    }

    /// The resources of framework `f`'s live refuse filter on agent `a`, if any.
    fn live_filter(&self, a: usize, f: usize) -> Option<&'a [Resource]> {
        let view = self.view;
        if self.lazy_filters {
            let filter = view.frameworks[f].filters.get(&view.agents[a].id)?;
            return (view.now < filter.expires).then_some(filter.resources.as_slice());
        }
        let list = &self.filters[self.filter_start[a] as usize..self.filter_start[a + 1] as usize];
        let i = list.binary_search_by_key(&(f as u32), |e| e.0).ok()?;
        Some(list[i].1)
    }

    /// A node with empty per-name vectors ([`Plan::new`] sizes them).
    fn new_node(&self, name: &'a str, parent: u32, depth: u32) -> Node<'a> {
        Node {
            name,
            parent,
            depth,
            rank: 0,
            weight: 1.0,
            guarantee: Vec::new(),
            limit: Vec::new(),
            has_guarantee: false,
            has_limit: false,
            alloc: Vec::new(),
            own_alloc: Vec::new(),
            consumed: Vec::new(),
            key: (0, 0, 0),
            own_key: (0, 0, 0),
            in_tree: false,
            has_own: false,
            in_stage1: false,
            chain_reserved: false,
        }
    }

    /// The node of `role`, created with its ancestors when new.
    fn intern(&mut self, role: &'a str) -> usize {
        if let Some(&n) = self.index.get(role) {
            return n;
        }
        let parent = match role.rfind('/') {
            Some(i) => self.intern(&role[..i]),
            None => 0,
        };
        let depth = self.nodes[parent].depth + 1;
        let n = self.nodes.len();
        let node = self.new_node(role, parent as u32, depth);
        self.nodes.push(node);
        self.index.insert(role, n);
        n
    }

    fn name_index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| short_eq(n, name))
    }

    /// The index of scalar name `name`, added (with a zero total) when new.
    fn name_index_or_add(&mut self, name: &'a str) -> usize {
        match self.name_index(name) {
            Some(i) => i,
            None => {
                self.names.push(name);
                self.total.push(0);
                self.names.len() - 1
            }
        }
    }

    /// Scalar quantities per name (roles ignored); names outside the cluster dropped.
    fn quantities(&self, res: &Resources) -> Vec<Option<i64>> {
        let mut out = vec![None; self.names.len()];
        for r in res.iter() {
            if let (Value::Scalar(x), Some(i)) = (&r.value, self.name_index(&r.name)) {
                *out[i].get_or_insert(0) += milli(*x);
            }
        }
        out
    }

    fn scalar_vec(&self, res: &Resources) -> Vec<i64> {
        let mut out = vec![0; self.names.len()];
        for r in res.iter() {
            if let (Value::Scalar(x), Some(i)) = (&r.value, self.name_index(&r.name)) {
                out[i] += milli(*x);
            }
        }
        out
    }

    fn scalars(&self, v: &[i64]) -> Resources {
        let mut out = Resources::new();
        for (name, m) in self.names.iter().zip(v) {
            if *m > 0 {
                out.add(&Resources::scalar_resource(name, from_milli(*m)));
            }
        }
        out
    }

    /// `n` and its ancestors, the root excluded.
    fn chain(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        let mut cur = n;
        std::iter::from_fn(move || {
            if cur == 0 || cur == NONE as usize {
                return None;
            }
            let out = cur;
            cur = self.nodes[cur].parent as usize;
            Some(out)
        })
    }

    fn in_subtree(&self, n: usize, ancestor: usize) -> bool {
        self.chain(n).any(|c| c == ancestor)
    }

    fn add_one_consumed(&mut self, n: usize, k: usize, v: i64) {
        let mut cur = n;
        while cur != 0 {
            self.nodes[cur].consumed[k] += v;
            cur = self.nodes[cur].parent as usize;
        }
    }

    fn add_consumed(&mut self, n: usize, v: &[i64], sign: i64) {
        let mut cur = n;
        while cur != 0 {
            for (c, x) in self.nodes[cur].consumed.iter_mut().zip(v) {
                *c += sign * x;
            }
            cur = self.nodes[cur].parent as usize;
        }
    }

    fn add_alloc(&mut self, n: usize, v: &[i64]) {
        let mut cur = n;
        while cur != 0 {
            for (c, x) in self.nodes[cur].alloc.iter_mut().zip(v) {
                *c += x;
            }
            cur = self.nodes[cur].parent as usize;
        }
    }

    /// See [`required_headroom`]; milli per name.
    fn required(&self) -> Vec<i64> {
        let k = self.names.len();
        let mut below = vec![0i64; k * self.nodes.len()];
        let mut by_depth: Vec<usize> = (1..self.nodes.len()).collect();
        by_depth.sort_by_key(|&n| std::cmp::Reverse(self.nodes[n].depth));
        for n in by_depth {
            let node = &self.nodes[n];
            let p = node.parent as usize;
            for i in 0..k {
                let mut unmet = below[n * k + i];
                if let Some(g) = node.guarantee[i] {
                    unmet = unmet.max(g - node.consumed[i]);
                }
                below[p * k + i] += unmet.max(0);
            }
        }
        below[..k].to_vec()
    }

    /// Whether some role of `n`'s chain is below one of its guarantees.
    fn below_guarantee(&self, n: usize) -> bool {
        self.chain(n).any(|c| {
            let node = &self.nodes[c];
            node.has_guarantee
                && node
                    .guarantee
                    .iter()
                    .zip(&node.consumed)
                    .any(|(g, used)| g.is_some_and(|g| *used < g))
        })
    }

    /// Fills `caps` with how much unreserved of each scalar `n` may get now.
    fn compute_caps(&mut self, n: usize, stage1: bool) {
        for i in 0..self.names.len() {
            let headroom = if self.has_guarantees {
                (self.free[i] - self.required[i]).max(0)
            } else {
                i64::MAX
            };
            let mut cap = headroom;
            if stage1 {
                let mut guaranteed: Option<i64> = None;
                for c in self.chain(n) {
                    if let Some(g) = self.nodes[c].guarantee[i] {
                        let unmet = (g - self.nodes[c].consumed[i]).max(0);
                        guaranteed = Some(guaranteed.map_or(unmet, |x| x.max(unmet)));
                    }
                }
                if let Some(g) = guaranteed {
                    cap = g;
                }
            }
            for c in self.chain(n) {
                if let Some(l) = self.nodes[c].limit[i] {
                    cap = cap.min((l - self.nodes[c].consumed[i]).max(0));
                }
            }
            self.caps[i] = cap;
        }
    }

    /// Whether `sums` (per name, milli) with `any` (something non-empty) is allocatable.
    fn allocatable(&self, any: bool) -> bool {
        if self.min_any {
            return any;
        }
        self.min_alloc
            .iter()
            .any(|alt| alt.iter().all(|&(i, need)| self.sums[i] >= need))
    }

    /// Whether anything allocatable is left on agent `a` for some live role.
    fn agent_has_more(&mut self, a: usize, stage1: bool) -> bool {
        let (start, end) = self.spans[a];
        self.sums.iter_mut().for_each(|s| *s = 0);
        let mut any = false;
        for item in &self.items[start..end] {
            if item.left == 0 || (item.owner != NONE && !self.nodes[item.owner as usize].in_tree) {
                continue;
            }
            let mut left = item.left;
            if item.k != NONE {
                let i = item.k as usize;
                if item.owner == NONE && !stage1 && self.has_guarantees {
                    left = left.min((self.free[i] - self.required[i]).max(0));
                }
                self.sums[i] += left;
            }
            any |= left > 0;
        }
        self.allocatable(any)
    }

    /// Offers what slot `s` may take of agent `a`; returns whether an allocation was made.
    fn try_slot(&mut self, a: usize, s: usize, stage1: bool, out: &mut Vec<Allocation>) -> bool {
        let node = self.slots[s].node as usize;
        let (start, end) = self.spans[a];
        // Without quota, and with no reservation on the agent, every role is offered the same:
        // what the agent has left, built once per agent and allocation.
        let shared = self.unbounded && !self.reserved_on[a];
        if shared && self.cached_for == a {
            if !self.cached_allocatable {
                return false;
            }
        } else if let Some(done) = self.build_offer(a, node, stage1, shared, start, end) {
            return done;
        }
        if let Some(filter) = self.live_filter(a, self.slots[s].framework as usize) {
            if self.filter_covers(filter) {
                return false;
            }
        }
        self.commit(a, s, node, stage1, start, end, out)
    }

    /// Builds in `offer` what slot's role `node` may take of agent `a`; `Some(false)` when that
    /// is nothing allocatable (pruning the role when it never can be again in this stage).
    fn build_offer(
        &mut self,
        a: usize,
        node: usize,
        stage1: bool,
        shared: bool,
        start: usize,
        end: usize,
    ) -> Option<bool> {
        if self.unbounded {
            self.caps.iter_mut().for_each(|c| *c = i64::MAX);
        } else {
            self.compute_caps(node, stage1);
        }
        self.offer.clear();
        self.sums.iter_mut().for_each(|x| *x = 0);
        for idx in start..end {
            let item = &self.items[idx];
            if item.left == 0 {
                continue;
            }
            let amount = if item.owner == NONE {
                if item.k == NONE {
                    item.left
                } else {
                    item.left.min(self.caps[item.k as usize])
                }
            } else if self.in_subtree(node, item.owner as usize) {
                item.left
            } else {
                0
            };
            if amount > 0 {
                if item.k != NONE {
                    self.sums[item.k as usize] += amount;
                }
                self.offer.push((idx, amount));
            }
        }
        let allocatable = !self.offer.is_empty() && self.allocatable(true);
        if shared {
            self.cached_for = a;
            self.cached_allocatable = allocatable;
        }
        if !allocatable {
            // Caps only shrink within a stage: when even the caps are not allocatable and no
            // reservation could add to them, the role can get nothing more in this stage.
            if !self.min_any && !self.nodes[node].chain_reserved {
                self.sums.copy_from_slice(&self.caps);
                if !self.allocatable(true) {
                    self.pruned.push(node);
                }
            }
            return Some(false);
        }
        None
    }

    /// Makes the allocation of `offer` to slot `s`; true.
    #[allow(clippy::too_many_arguments)]
    fn commit(
        &mut self,
        a: usize,
        s: usize,
        node: usize,
        stage1: bool,
        start: usize,
        end: usize,
        out: &mut Vec<Allocation>,
    ) -> bool {
        self.cached_for = usize::MAX;
        let view = self.view;
        let agent = &view.agents[a];
        let fw = &view.frameworks[self.slots[s].framework as usize];
        let whole = self.offer.len() == end - start
            && self.offer.iter().all(|&(i, m)| m == self.items[i].orig);
        let resources = if whole {
            agent.available.clone()
        } else {
            let items = self
                .offer
                .iter()
                .map(|&(i, m)| {
                    let item = &self.items[i];
                    Resource {
                        name: item.res.name.clone(),
                        role: item.res.role.clone(),
                        value: if item.k == NONE {
                            item.res.value.clone()
                        } else {
                            Value::Scalar(from_milli(m))
                        },
                        // Only unreserved scalars are cut: a volume keeps its size.
                        disk: item.res.disk.clone(),
                    }
                })
                .collect();
            match Resources::from_vec(items) {
                Ok(r) => r,
                Err(_) => return false,
            }
        };
        // Commit: items, free, consumed now; the order's shares after the agent's turn.
        let k = self.names.len();
        let d0 = self.deferred_delta.len();
        self.deferred_delta.resize(d0 + k, 0);
        for idx in 0..self.offer.len() {
            let (i, m) = self.offer[idx];
            let (ki, owner) = (self.items[i].k, self.items[i].owner);
            self.items[i].left -= m;
            if ki != NONE {
                let ki = ki as usize;
                self.deferred_delta[d0 + ki] += m;
                if owner == NONE {
                    self.free[ki] -= m;
                    // Consumed quota is read only for guarantees and limits.
                    if !self.unbounded {
                        self.add_one_consumed(node, ki, m);
                    }
                }
            }
        }
        self.deferred.push((s, d0));
        if let Some(&i) = self.stage1_out.get(&(a, s)) {
            if let Some(earlier) = out.get_mut(i) {
                earlier.resources.add(&resources);
                return true;
            }
        }
        if stage1 {
            self.stage1_out.insert((a, s), out.len());
        }
        out.push(Allocation {
            framework: fw.id.clone(),
            role: self.nodes[node].name.to_string(),
            agent: agent.id.clone(),
            resources,
        });
        true
    }

    /// Whether a filter's resources cover the current offer (as [`Resources::contains`]).
    fn filter_covers(&self, filter: &[Resource]) -> bool {
        use std::cmp::Ordering;
        // Both are sorted by (name, role): one merge walk. The offer's side of each comparison
        // reads the interned name and role (hot in cache) rather than the agent's strings.
        let mut theirs = filter.iter();
        let mut next = theirs.next();
        for &(i, m) in &self.offer {
            let item = &self.items[i];
            let name = if item.k == NONE {
                item.res.name.as_str()
            } else {
                self.names[item.k as usize]
            };
            let role = if item.owner == NONE {
                DEFAULT_ROLE
            } else {
                self.nodes[item.owner as usize].name
            };
            loop {
                let Some(r) = next else {
                    return false;
                };
                let order = if short_eq(&r.name, name) && short_eq(&r.role, role) {
                    Ordering::Equal
                } else {
                    (r.name.as_str(), r.role.as_str()).cmp(&(name, role))
                };
                match order {
                    Ordering::Less => next = theirs.next(),
                    Ordering::Greater => return false,
                    Ordering::Equal => {
                        let covered = match (&r.value, &item.res.value) {
                            (Value::Scalar(x), Value::Scalar(_)) => milli(*x) >= m,
                            (Value::Ranges(x), Value::Ranges(y)) => ranges_subset(y, x),
                            (Value::Set(x), Value::Set(y)) => y.is_subset(x),
                            _ => false,
                        };
                        if !covered {
                            return false;
                        }
                        next = theirs.next();
                        break;
                    }
                }
            }
        }
        true
    }

    /// Applies the allocations of an agent's turn to the order's keys, and prunes dead roles.
    fn settle(&mut self, order: &mut Order, stage1: bool) {
        let k = self.names.len();
        for d in 0..self.deferred.len() {
            let (s, d0) = self.deferred[d];
            let node = self.slots[s].node as usize;
            // The framework in its role.
            let slot = &mut self.slots[s];
            for i in 0..k {
                slot.alloc[i] += self.deferred_delta[d0 + i];
            }
            let key = (share(&slot.alloc, &self.total, 1.0), slot.key.1, slot.key.2);
            rekey(&mut order.frameworks[node], slot.key, key);
            slot.key = key;
            // The role's own entry, then the chain.
            let n = &mut self.nodes[node];
            for i in 0..k {
                n.own_alloc[i] += self.deferred_delta[d0 + i];
            }
            let own_key = (
                share(&n.own_alloc, &self.total, n.weight),
                n.own_key.1,
                n.own_key.2,
            );
            if n.has_own {
                rekey(&mut order.children[node], n.own_key, own_key);
            }
            n.own_key = own_key;
            let mut cur = node;
            while cur != 0 {
                let n = &mut self.nodes[cur];
                let parent = n.parent as usize;
                for i in 0..k {
                    n.alloc[i] += self.deferred_delta[d0 + i];
                }
                let key = (share(&n.alloc, &self.total, n.weight), n.key.1, n.key.2);
                if n.in_tree {
                    rekey(&mut order.children[parent], n.key, key);
                }
                if n.in_stage1 {
                    rekey(&mut order.stage1, n.key, key);
                }
                n.key = key;
                cur = parent;
            }
        }
        self.deferred.clear();
        self.deferred_delta.clear();
        for p in 0..self.pruned.len() {
            let node = self.pruned[p];
            let n = &mut self.nodes[node];
            if n.in_stage1 {
                order.stage1.remove(&n.key);
                n.in_stage1 = false;
            }
            if stage1 {
                // Stage 2 recomputes headroom: the role stays in the tree.
                continue;
            }
            if n.has_own {
                order.children[node].remove(&n.own_key);
                n.has_own = false;
            }
            let mut cur = node;
            while cur != 0 && order.children[cur].is_empty() && self.nodes[cur].in_tree {
                let parent = self.nodes[cur].parent as usize;
                order.children[parent].remove(&self.nodes[cur].key);
                self.nodes[cur].in_tree = false;
                cur = parent;
            }
        }
        self.pruned.clear();
    }

    /// One pass over all agents: stage 1 (roles below a guarantee) or stage 2 (everyone).
    fn stage(&mut self, order: &mut Order, stage1: bool, out: &mut Vec<Allocation>) {
        let mut dropped: Vec<Key> = Vec::new();
        for a in 0..self.view.agents.len() {
            if !self.agent_has_more(a, stage1) {
                continue;
            }
            if stage1 {
                for &(_, _, n) in &order.stage1 {
                    let n = n as usize;
                    if !self.below_guarantee(n) {
                        dropped.push(self.nodes[n].key);
                        continue;
                    }
                    if self.walk_frameworks(order, n, a, stage1, out) {
                        break;
                    }
                }
                for key in dropped.drain(..) {
                    order.stage1.remove(&key);
                    self.nodes[key.2 as usize].in_stage1 = false;
                }
            } else {
                self.walk_tree(order, 0, a, out);
            }
            self.settle(order, stage1);
        }
    }

    /// Offers agent `a` to the frameworks of node `n` in order; true when the agent is done.
    fn walk_frameworks(
        &mut self,
        order: &Order,
        n: usize,
        a: usize,
        stage1: bool,
        out: &mut Vec<Allocation>,
    ) -> bool {
        for &(_, _, s) in &order.frameworks[n] {
            if self.try_slot(a, s as usize, stage1, out) && !self.agent_has_more(a, stage1) {
                return true;
            }
        }
        false
    }

    /// Offers agent `a` down the tree from node `n` in DRF order; true when the agent is done.
    fn walk_tree(&mut self, order: &Order, n: usize, a: usize, out: &mut Vec<Allocation>) -> bool {
        for &(_, _, id) in &order.children[n] {
            let id = id as usize;
            let done = if id == n {
                self.walk_frameworks(order, n, a, false, out)
            } else {
                self.walk_tree(order, id, a, out)
            };
            if done {
                return true;
            }
        }
        false
    }
}

impl Order {
    fn new(plan: &mut Plan<'_>) -> Order {
        let count = plan.nodes.len();
        let mut order = Order {
            children: vec![BTreeSet::new(); count],
            frameworks: vec![BTreeSet::new(); count],
            stage1: BTreeSet::new(),
        };
        for slot in &plan.slots {
            let n = slot.node as usize;
            order.frameworks[n].insert(slot.key);
            plan.nodes[n].has_own = true;
        }
        for n in 1..count {
            let node = &mut plan.nodes[n];
            node.key = (
                share(&node.alloc, &plan.total, node.weight),
                node.rank,
                n as u32,
            );
            node.own_key = (
                share(&node.own_alloc, &plan.total, node.weight),
                node.rank,
                n as u32,
            );
            if node.has_own {
                order.children[n].insert(node.own_key);
            }
        }
        for n in 1..count {
            if !plan.nodes[n].has_own {
                continue;
            }
            if plan.has_guarantees && plan.below_guarantee(n) {
                order.stage1.insert(plan.nodes[n].key);
                plan.nodes[n].in_stage1 = true;
            }
            let mut cur = n;
            while cur != 0 && !plan.nodes[cur].in_tree {
                plan.nodes[cur].in_tree = true;
                let parent = plan.nodes[cur].parent as usize;
                order.children[parent].insert(plan.nodes[cur].key);
                cur = parent;
            }
        }
        order
    }
}

/// Moves an entry of `set` from key `old` to `new`, inserting first so that a one-entry set
/// keeps its node rather than freeing and allocating it again.
fn rekey(set: &mut BTreeSet<Key>, old: Key, new: Key) {
    if old != new {
        set.insert(new);
        set.remove(&old);
    }
}

/// String equality inline: resource names and roles are short, and a call to `memcmp` per
/// comparison costs more than the comparison.
fn short_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// Whether every element of `a` is in `b`; both sorted and coalesced.
fn ranges_subset(a: &[Range], b: &[Range]) -> bool {
    let mut candidates = b.iter().peekable();
    a.iter().all(|range| {
        while candidates.next_if(|c| c.end < range.begin).is_some() {}
        candidates
            .peek()
            .is_some_and(|c| c.begin <= range.begin && range.end <= c.end)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn res(s: &str) -> Resources {
        Resources::parse(s).unwrap()
    }

    /// An agent whose total is what is available.
    fn agent(id: &str, avail: &str) -> AgentView {
        agent_with_total(id, avail, avail)
    }

    fn agent_with_total(id: &str, avail: &str, total: &str) -> AgentView {
        AgentView {
            id: AgentId::new(id).unwrap(),
            available: res(avail),
            total: res(total),
        }
    }

    fn fw(id: &str, roles: &[&str]) -> FrameworkView {
        FrameworkView {
            id: FrameworkId::new(id).unwrap(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            active: true,
            suppressed_roles: Vec::new(),
            allocated: BTreeMap::new(),
            filters: Default::default(),
        }
    }

    fn holding(mut f: FrameworkView, role: &str, allocated: &str) -> FrameworkView {
        f.allocated.insert(role.to_string(), res(allocated));
        f
    }

    fn quota(guarantees: &str, limits: &str) -> RoleConfig {
        RoleConfig {
            weight: 1.0,
            guarantees: res(guarantees),
            limits: res(limits),
        }
    }

    fn weight(w: f64) -> RoleConfig {
        RoleConfig {
            weight: w,
            ..RoleConfig::default()
        }
    }

    fn run_at(
        agents: &[AgentView],
        frameworks: &[FrameworkView],
        roles: &[(&str, RoleConfig)],
        now: Instant,
    ) -> Vec<Allocation> {
        let roles: BTreeMap<String, RoleConfig> = roles
            .iter()
            .map(|(r, c)| (r.to_string(), c.clone()))
            .collect();
        let min = default_min_allocatable();
        allocate(&View {
            agents,
            frameworks,
            roles: &roles,
            min_allocatable: &min,
            now,
        })
    }

    fn run(
        agents: &[AgentView],
        frameworks: &[FrameworkView],
        roles: &[(&str, RoleConfig)],
    ) -> Vec<Allocation> {
        run_at(agents, frameworks, roles, Instant::now())
    }

    /// (framework, role, agent, resources) of each allocation, as text.
    fn summary(out: &[Allocation]) -> Vec<(String, String, String, String)> {
        out.iter()
            .map(|a| {
                (
                    a.framework.as_str().to_string(),
                    a.role.clone(),
                    a.agent.as_str().to_string(),
                    a.resources.to_string(),
                )
            })
            .collect()
    }

    /// The expected summary of one allocation.
    fn s(fw: &str, role: &str, agent: &str, resources: &str) -> (String, String, String, String) {
        (
            fw.into(),
            role.into(),
            agent.into(),
            res(resources).to_string(),
        )
    }

    fn who(out: &[Allocation]) -> Vec<(&str, &str)> {
        out.iter()
            .map(|a| (a.agent.as_str(), a.framework.as_str()))
            .collect()
    }

    #[test]
    fn lowest_dominant_share_wins_each_agent() {
        let agents = [
            agent_with_total("a1", "cpus:2;mem:2048", "cpus:4;mem:4096"),
            agent_with_total("a2", "cpus:2;mem:2048", "cpus:4;mem:4096"),
        ];
        // f1 holds 50% of cpus, f2 25% of mem: f2 gets a1; then f2 holds 50% of mem and ties
        // with f1, and the tie goes to the smaller id, f1.
        let fws = [
            holding(fw("f1", &["*"]), "*", "cpus:4"),
            holding(fw("f2", &["*"]), "*", "mem:2048"),
        ];
        let out = run(&agents, &fws, &[]);
        assert_eq!(who(&out), [("a1", "f2"), ("a2", "f1")]);
        assert_eq!(out[0].resources, res("cpus:2;mem:2048"));
        assert_eq!(out[0].role, "*");
    }

    #[test]
    fn shares_alternate_between_equal_frameworks() {
        let agents = [
            agent("a1", "cpus:2;mem:2048"),
            agent("a2", "cpus:2;mem:2048"),
        ];
        let out = run(&agents, &[fw("f1", &["*"]), fw("f2", &["*"])], &[]);
        assert_eq!(who(&out), [("a1", "f1"), ("a2", "f2")]);
    }

    #[test]
    fn weighted_roles_split_agents_two_to_one() {
        let agents: Vec<AgentView> = (1..=6)
            .map(|i| agent(&format!("a{i}"), "cpus:1;mem:1024"))
            .collect();
        let out = run(
            &agents,
            &[fw("fa", &["a"]), fw("fb", &["b"])],
            &[("a", weight(2.0))],
        );
        assert_eq!(
            who(&out),
            [
                ("a1", "fa"),
                ("a2", "fb"),
                ("a3", "fa"),
                ("a4", "fa"),
                ("a5", "fb"),
                ("a6", "fa")
            ]
        );
    }

    #[test]
    fn hierarchical_roles_share_by_subtree() {
        let agents: Vec<AgentView> = (1..=4)
            .map(|i| agent(&format!("a{i}"), "cpus:1;mem:1024"))
            .collect();
        let fws = [
            fw("back", &["eng/backend"]),
            fw("front", &["eng/frontend"]),
            fw("ops", &["ops"]),
        ];
        // eng's subtree competes with ops as one: two agents each; inside eng, one per child.
        let out = run(&agents, &fws, &[]);
        assert_eq!(
            who(&out),
            [
                ("a1", "back"),
                ("a2", "ops"),
                ("a3", "front"),
                ("a4", "ops")
            ]
        );
    }

    #[test]
    fn sibling_weights_apply_inside_a_subtree() {
        let agents: Vec<AgentView> = (1..=3)
            .map(|i| agent(&format!("a{i}"), "cpus:1;mem:1024"))
            .collect();
        let fws = [fw("x", &["eng/x"]), fw("y", &["eng/y"])];
        let out = run(&agents, &fws, &[("eng/y", weight(2.0))]);
        // x gets a1 (a tie at 0, by name), y a2; then y's 1/3 / 2 is below x's 1/3.
        assert_eq!(who(&out), [("a1", "x"), ("a2", "y"), ("a3", "y")]);
    }

    #[test]
    fn role_with_frameworks_and_children_competes_as_a_virtual_leaf() {
        let agents: Vec<AgentView> = (1..=3)
            .map(|i| agent(&format!("a{i}"), "cpus:1;mem:1024"))
            .collect();
        let fws = [fw("own", &["eng"]), fw("kid", &["eng/kid"])];
        let out = run(&agents, &fws, &[]);
        assert_eq!(who(&out), [("a1", "own"), ("a2", "kid"), ("a3", "own")]);
        assert_eq!(out[0].role, "eng");
        assert_eq!(out[1].role, "eng/kid");
    }

    #[test]
    fn parent_reservation_goes_to_a_child_role_never_to_another_role() {
        let agents = [agent("a1", "cpus(eng):2;mem(eng):256")];
        // ops holds nothing, so it would come first if it could take the reservation.
        let ops = fw("ops", &["ops"]);
        let back = holding(fw("back", &["eng/backend"]), "eng/backend", "cpus:100");
        let out = run(&agents, &[ops.clone(), back], &[]);
        assert_eq!(
            summary(&out),
            [s("back", "eng/backend", "a1", "cpus(eng):2;mem(eng):256")]
        );
        assert!(run(&agents, &[ops], &[]).is_empty());
    }

    #[test]
    fn reserved_resources_go_only_to_their_role() {
        let agents = [agent_with_total(
            "a1",
            "cpus(ops):2;mem(ops):1024;cpus:1;mem:512",
            "cpus(ops):2;mem(ops):1024;cpus:2;mem:3072",
        )];
        let ops = holding(fw("f2", &["ops"]), "ops", "cpus:1");
        let out = run(&agents, &[fw("f1", &["*"]), ops.clone()], &[]);
        assert_eq!(who(&out), [("a1", "f1"), ("a1", "f2")]);
        assert_eq!(out[0].resources, res("cpus:1;mem:512"));
        // f1 took the unreserved part; the reservation still went to ops.
        assert_eq!(out[1].resources, res("cpus(ops):2;mem(ops):1024"));
        let out = run(&agents, &[ops], &[]);
        assert_eq!(
            out[0].resources,
            res("cpus(ops):2;mem(ops):1024;cpus:1;mem:512")
        );
    }

    #[test]
    fn quota_guarantee_is_met_before_fair_share() {
        let agents: Vec<AgentView> = (1..=4)
            .map(|i| agent(&format!("a{i}"), "cpus:2;mem:1024"))
            .collect();
        let fws = [fw("fa", &["a"]), fw("fq", &["q"])];
        let out = run(&agents, &fws, &[("q", quota("cpus:3;mem:1536", ""))]);
        // Stage 1: q gets a1 whole, then a2 chopped to the unmet cpus:1;mem:512. Stage 2: a
        // (share 0) gets the rest of a2, then a3 (a holds 1/8 < 3/8), then a4 (a tie at 3/8,
        // by name).
        assert_eq!(
            summary(&out),
            [
                s("fq", "q", "a1", "cpus:2;mem:1024"),
                s("fq", "q", "a2", "cpus:1;mem:512"),
                s("fa", "a", "a2", "cpus:1;mem:512"),
                s("fa", "a", "a3", "cpus:2;mem:1024"),
                s("fa", "a", "a4", "cpus:2;mem:1024"),
            ]
        );
    }

    #[test]
    fn quota_limit_is_never_exceeded_including_a_parents() {
        let agents = [
            agent("a1", "cpus:2;mem:1024"),
            agent("a2", "cpus:2;mem:1024"),
            agent("a3", "cpus:2;mem:1024"),
        ];
        let fws = [fw("x", &["eng/x"]), fw("y", &["eng/y"])];
        let out = run(&agents, &fws, &[("eng", quota("", "cpus:3"))]);
        // eng/x takes a1; eng/y gets one cpu of a2 (eng's limit); then x ties with y and gets
        // only a3's memory.
        assert_eq!(
            summary(&out),
            [
                s("x", "eng/x", "a1", "cpus:2;mem:1024"),
                s("y", "eng/y", "a2", "cpus:1;mem:1024"),
                s("x", "eng/x", "a3", "mem:1024"),
            ]
        );
    }

    #[test]
    fn limit_that_leaves_nothing_allocatable_skips_the_role() {
        let agents = [agent_with_total("a1", "cpus:2;mem:16", "cpus:4;mem:1024")];
        let f = holding(fw("f", &["r"]), "r", "cpus:1");
        let g = holding(fw("g", &["s"]), "s", "cpus:1;mem:512");
        let out = run(&agents, &[f, g], &[("r", quota("", "cpus:1"))]);
        // r comes first but is at its limit: it may take only mem:16, below min_allocatable;
        // s gets the agent. (A limit of 0 cannot be written: `Resources` drops zero scalars.)
        assert_eq!(who(&out), [("a1", "g")]);
    }

    #[test]
    fn reservations_count_against_quota_limits() {
        let agents = [agent("a1", "cpus(r):2"), agent("a2", "cpus:4;mem:512")];
        let out = run(&agents, &[fw("f", &["r"])], &[("r", quota("", "cpus:4"))]);
        assert_eq!(
            summary(&out),
            [
                s("f", "r", "a1", "cpus(r):2"),
                s("f", "r", "a2", "cpus:2;mem:512"),
            ]
        );
    }

    #[test]
    fn headroom_is_held_back_for_an_unmet_guarantee() {
        let agents = [
            agent("a1", "cpus:2;mem:1024"),
            agent("a2", "cpus:2;mem:1024"),
        ];
        // q has no framework yet: two cpus stay free for it; mem is not guaranteed.
        let roles = [("q", quota("cpus:2", ""))];
        let out = run(&agents, &[fw("f", &["a"])], &roles);
        assert_eq!(
            summary(&out),
            [
                s("f", "a", "a1", "cpus:2;mem:1024"),
                s("f", "a", "a2", "mem:1024"),
            ]
        );
        // An unallocated reservation for q counts towards its guarantee: nothing held back.
        let mut agents = agents.to_vec();
        agents.push(agent("a3", "cpus(q):2"));
        let out = run(&agents, &[fw("f", &["a"])], &roles);
        assert_eq!(out[1].resources, res("cpus:2;mem:1024"));
    }

    #[test]
    fn inactive_suppressed_and_filtered_frameworks_get_nothing() {
        let agents = [agent_with_total("a1", "cpus:2;mem:2048", "cpus:4;mem:4096")];
        let now = Instant::now();
        let mut f1 = fw("f1", &["*"]);
        f1.active = false;
        let mut f2 = fw("f2", &["*"]);
        f2.suppressed_roles = vec!["*".into()];
        let mut f3 = fw("f3", &["*"]);
        std::sync::Arc::make_mut(&mut f3.filters).insert(
            AgentId::new("a1").unwrap(),
            RefuseFilter {
                resources: res("cpus:4;mem:4096"),
                expires: now + Duration::from_secs(5),
            },
        );
        let out = run_at(&agents, &[f1, f2, f3.clone()], &[], now);
        assert!(out.is_empty(), "{out:?}");
        // Once the filter expires, f3 gets the agent.
        let out = run_at(&agents, &[f3], &[], now + Duration::from_secs(6));
        assert_eq!(who(&out), [("a1", "f3")]);
    }

    #[test]
    fn a_filter_that_does_not_cover_the_offer_lets_it_through() {
        let now = Instant::now();
        let agents = [agent("a1", "cpus:2;mem:2048;ports:[31000-31010]")];
        let mut f = fw("f", &["*"]);
        std::sync::Arc::make_mut(&mut f.filters).insert(
            AgentId::new("a1").unwrap(),
            RefuseFilter {
                resources: res("cpus:2;mem:2048;ports:[31000-31005]"),
                expires: now + Duration::from_secs(5),
            },
        );
        assert_eq!(run_at(&agents, std::slice::from_ref(&f), &[], now).len(), 1);
        std::sync::Arc::make_mut(&mut f.filters)
            .get_mut(&AgentId::new("a1").unwrap())
            .unwrap()
            .resources = res("cpus:8;mem:4096;ports:[30000-32000]");
        assert!(run_at(&agents, &[f], &[], now).is_empty());
    }

    #[test]
    fn filters_hold_when_agent_ids_repeat() {
        // Not something the master builds, but the filter of an id applies to each agent of
        // that id (the per-agent filter index gives way to a lookup per try).
        let now = Instant::now();
        let agents = [agent("a1", "cpus:1;mem:64"), agent("a1", "cpus:1;mem:64")];
        let mut f = fw("f1", &["*"]);
        std::sync::Arc::make_mut(&mut f.filters).insert(
            AgentId::new("a1").unwrap(),
            RefuseFilter {
                resources: res("cpus:1;mem:64"),
                expires: now + Duration::from_secs(5),
            },
        );
        let out = run_at(&agents, &[f, fw("f2", &["*"])], &[], now);
        assert_eq!(who(&out), [("a1", "f2"), ("a1", "f2")]);
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
    fn suppressed_role_gets_nothing_until_revived() {
        let agents = [agent("a1", "cpus(a):1;mem(a):64;cpus:1;mem:64")];
        let mut f = fw("f", &["a", "b"]);
        f.suppressed_roles = vec!["a".into()];
        // Its other role still gets the unreserved part.
        let out = run(&agents, std::slice::from_ref(&f), &[]);
        assert_eq!(summary(&out), [s("f", "b", "a1", "cpus:1;mem:64")]);
        f.suppressed_roles.clear();
        let out = run(&agents, &[f], &[]);
        assert_eq!(
            summary(&out),
            [s("f", "a", "a1", "cpus(a):1;mem(a):64;cpus:1;mem:64")]
        );
    }

    #[test]
    fn tiny_leftovers_are_not_offered() {
        let agents = [agent_with_total(
            "a1",
            "cpus:0.001;mem:16",
            "cpus:4;mem:4096",
        )];
        assert!(run(&agents, &[fw("f1", &["*"])], &[]).is_empty());
    }

    #[test]
    fn min_allocatable_parses_mesos_syntax() {
        assert_eq!(
            parse_min_allocatable("cpus:0.01|mem:32").unwrap(),
            default_min_allocatable()
        );
        assert_eq!(
            parse_min_allocatable("cpus:1;mem:128 | gpus:1").unwrap(),
            [res("cpus:1;mem:128"), res("gpus:1")]
        );
        assert!(parse_min_allocatable(" ").unwrap().is_empty());
        for (text, part) in [
            ("cpus:1|ports:[1-2]", "ports:[1-2]"),
            ("cpus(ops):1", "cpus(ops):1"),
            ("cpus:x|mem:1", "cpus:x"),
            ("cpus:1||mem:2", ""),
        ] {
            let MinAllocatableError::Invalid { part: got, .. } =
                parse_min_allocatable(text).unwrap_err();
            assert_eq!(got, part, "{text}");
        }
        let err = parse_min_allocatable("cpus:1|ports:[1-2]").unwrap_err();
        assert!(err.to_string().contains("not a scalar"), "{err}");
    }

    #[test]
    fn min_allocatable_decides_what_is_offered() {
        let agents = [
            agent("small", "cpus:0.5;mem:4096"),
            agent("big", "cpus:1;mem:128"),
            agent("ports", "ports:[1-10]"),
        ];
        let frameworks = [fw("f", &["*"])];
        let roles = BTreeMap::new();
        let with = |min: &[Resources]| {
            allocate(&View {
                agents: &agents,
                frameworks: &frameworks,
                roles: &roles,
                min_allocatable: min,
                now: Instant::now(),
            })
        };
        assert_eq!(who(&with(&[res("cpus:1;mem:128")])), [("big", "f")]);
        // No alternatives: anything non-empty goes.
        assert_eq!(with(&[]).len(), 3);
    }

    fn offer(framework: &str, role: &str, agent: &str, resources: &str) -> OutstandingOffer {
        OutstandingOffer {
            framework: FrameworkId::new(framework).unwrap(),
            role: role.into(),
            agent: AgentId::new(agent).unwrap(),
            resources: res(resources),
        }
    }

    fn rescind(
        agents: &[AgentView],
        frameworks: &[FrameworkView],
        roles: &[(&str, RoleConfig)],
        offers: &[OutstandingOffer],
    ) -> Vec<usize> {
        let roles: BTreeMap<String, RoleConfig> = roles
            .iter()
            .map(|(r, c)| (r.to_string(), c.clone()))
            .collect();
        let min = default_min_allocatable();
        to_rescind(
            &View {
                agents,
                frameworks,
                roles: &roles,
                min_allocatable: &min,
                now: Instant::now(),
            },
            offers,
        )
    }

    #[test]
    fn to_rescind_takes_back_offers_over_a_lowered_limit() {
        let agents = [
            agent_with_total("a1", "", "cpus:2;mem:1024"),
            agent_with_total("a2", "", "cpus:2;mem:1024"),
        ];
        let f = [holding(fw("f", &["eng/x"]), "eng/x", "cpus:4;mem:2048")];
        let offers = [
            offer("f", "eng/x", "a1", "cpus:2;mem:1024"),
            offer("f", "eng/x", "a2", "cpus:2;mem:1024"),
        ];
        // The parent's limit was lowered to 3 cpus: the newest offer goes.
        let out = rescind(&agents, &f, &[("eng", quota("", "cpus:3"))], &offers);
        assert_eq!(out, [1]);
        assert_eq!(
            rescind(&agents, &f, &[("eng", quota("", "cpus:1"))], &offers),
            [0, 1]
        );
        assert!(rescind(&agents, &f, &[("eng", quota("", "cpus:4"))], &offers).is_empty());
    }

    #[test]
    fn to_rescind_frees_enough_for_an_unmet_guarantee() {
        let agents = [
            agent_with_total("a1", "", "cpus:2;mem:1024"),
            agent_with_total("a2", "", "cpus:2;mem:1024"),
            agent_with_total("a3", "cpus:1", "cpus:1"),
        ];
        let f = holding(fw("f", &["a"]), "a", "cpus:4;mem:2048");
        let g = holding(fw("g", &["q"]), "q", "cpus:1");
        let offers = [
            offer("f", "a", "a1", "cpus:2;mem:1024"),
            offer("f", "a", "a2", "cpus:2;mem:1024"),
            offer("g", "q", "a2", "cpus:1"),
        ];
        // q needs 3 cpus, holds 1; 1 is free: one offer of a's (the newest) covers the rest.
        // q's own offer is never taken back for it.
        let fws = [f, g];
        assert_eq!(
            rescind(&agents, &fws, &[("q", quota("cpus:3", ""))], &offers),
            [1]
        );
        assert_eq!(
            rescind(&agents, &fws, &[("q", quota("cpus:5", ""))], &offers),
            [0, 1]
        );
        assert!(rescind(&agents, &fws, &[("q", quota("cpus:2", ""))], &offers).is_empty());
    }

    #[test]
    fn role_helpers() {
        assert!(is_subrole("eng/backend", "eng"));
        assert!(is_subrole("eng", "eng"));
        assert!(!is_subrole("engineering", "eng"));
        assert!(!is_subrole("eng", "eng/backend"));
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a/b", "a"]);
        assert_eq!(ancestors("a").count(), 0);
    }

    // ---- properties ------------------------------------------------------------------------

    const ROLES: [&str; 5] = ["*", "a", "a/b", "a/b/c", "d"];

    fn arb_agent(i: usize) -> impl Strategy<Value = AgentView> {
        (
            0u32..8,
            0u32..4,
            prop::sample::select(&ROLES[1..]),
            0u32..3,
            prop::bool::ANY,
            0u32..4,
        )
            .prop_map(move |(cpus, rcpus, role, mem_k, ports, used)| {
                let mut text = format!("cpus:{cpus};mem:{}", mem_k * 512);
                if rcpus > 0 {
                    text.push_str(&format!(";cpus({role}):{rcpus};mem({role}):256"));
                }
                if ports {
                    text.push_str(";ports:[31000-31010]");
                }
                let available = res(&text);
                let mut total = available.clone();
                total.add(&res(&format!("cpus:{used};mem:64")));
                AgentView {
                    id: AgentId::new(format!("a{i}")).unwrap(),
                    available,
                    total,
                }
            })
    }

    fn arb_framework(i: usize, agents: usize) -> impl Strategy<Value = FrameworkView> {
        (
            prop::sample::subsequence(ROLES.to_vec(), 1..3),
            prop::sample::subsequence(ROLES.to_vec(), 0..2),
            prop::bool::weighted(0.9),
            prop::collection::vec((0..agents, 0u32..6, 0u32..4096, prop::bool::ANY), 0..3),
            0u32..4,
        )
            .prop_map(move |(roles, suppressed, active, filters, held)| {
                let now = Instant::now();
                let mut f = fw(&format!("f{i}"), &roles);
                f.suppressed_roles = suppressed.iter().map(|s| s.to_string()).collect();
                f.active = active;
                if held > 0 {
                    f.allocated
                        .insert(roles[0].to_string(), res(&format!("cpus:{held}")));
                }
                for (a, cpus, mem, live) in filters {
                    std::sync::Arc::make_mut(&mut f.filters).insert(
                        AgentId::new(format!("a{a}")).unwrap(),
                        RefuseFilter {
                            resources: res(&format!("cpus:{cpus};mem:{mem};ports:[31000-31010]")),
                            expires: if live {
                                now + Duration::from_secs(3600)
                            } else {
                                now - Duration::from_secs(1)
                            },
                        },
                    );
                }
                f
            })
    }

    fn arb_roles() -> impl Strategy<Value = BTreeMap<String, RoleConfig>> {
        prop::collection::vec(
            (
                prop::sample::select(&ROLES[1..]),
                1u32..4,
                prop::option::of(0u32..8),
                prop::option::of(0u32..12),
            ),
            0..4,
        )
        .prop_map(|configs| {
            configs
                .into_iter()
                .map(|(role, w, g, l)| {
                    let config = RoleConfig {
                        weight: f64::from(w),
                        guarantees: g.map(|g| res(&format!("cpus:{g}"))).unwrap_or_default(),
                        limits: l.map(|l| res(&format!("cpus:{l}"))).unwrap_or_default(),
                    };
                    (role.to_string(), config)
                })
                .collect()
        })
    }

    fn arb_view() -> impl Strategy<
        Value = (
            Vec<AgentView>,
            Vec<FrameworkView>,
            BTreeMap<String, RoleConfig>,
        ),
    > {
        (1usize..6, 1usize..6).prop_flat_map(|(na, nf)| {
            (
                (0..na).map(arb_agent).collect::<Vec<_>>(),
                (0..nf).map(|i| arb_framework(i, na)).collect::<Vec<_>>(),
                arb_roles(),
            )
        })
    }

    /// Consumed quota of `role`'s subtree (cpus): allocated plus unallocated reservations.
    fn consumed_cpus(role: &str, agents: &[AgentView], fws: &[FrameworkView]) -> f64 {
        let held: f64 = fws
            .iter()
            .flat_map(|f| &f.allocated)
            .filter(|(r, _)| is_subrole(r, role))
            .map(|(_, res)| res.cpus())
            .sum();
        let reserved: f64 = agents
            .iter()
            .flat_map(|a| a.available.iter())
            .filter(|r| r.role != DEFAULT_ROLE && is_subrole(&r.role, role) && r.name == "cpus")
            .map(|r| match r.value {
                Value::Scalar(x) => x,
                _ => 0.0,
            })
            .sum();
        held + reserved
    }

    proptest! {
        #[test]
        fn allocations_respect_the_view((agents, fws, roles) in arb_view()) {
            let now = Instant::now();
            let min = default_min_allocatable();
            let view = View { agents: &agents, frameworks: &fws, roles: &roles, min_allocatable: &min, now };
            let out = allocate(&view);
            // Nothing is offered twice: per agent, the sum is within what is available.
            for agent in &agents {
                let mut sum = Resources::new();
                for a in out.iter().filter(|a| a.agent == agent.id) {
                    sum.add(&a.resources);
                }
                prop_assert!(agent.available.contains(&sum), "{} offered {sum} of {}", agent.id.as_str(), agent.available);
            }
            let mut seen = BTreeSet::new();
            for a in &out {
                prop_assert!(seen.insert((a.framework.clone(), a.role.clone(), a.agent.clone())), "twice: {a:?}");
                let f = fws.iter().find(|f| f.id == a.framework).unwrap();
                prop_assert!(f.active);
                prop_assert!(f.roles.contains(&a.role));
                prop_assert!(!f.suppressed_roles.contains(&a.role));
                prop_assert!(!a.resources.is_empty());
                prop_assert!(a.resources.cpus() >= 0.01 || a.resources.mem() >= 32.0, "{a:?}");
                for r in a.resources.iter() {
                    prop_assert!(r.role == DEFAULT_ROLE || is_subrole(&a.role, &r.role), "{a:?}");
                }
                if let Some(filter) = f.filters.get(&a.agent) {
                    prop_assert!(!filter.refuses(&a.resources, now), "filtered: {a:?}");
                }
            }
            // Limits: no subtree goes past its limit through unreserved cpus offered now.
            for (role, config) in &roles {
                let limit = config.limits.cpus();
                if config.limits.is_empty() {
                    continue;
                }
                let before = consumed_cpus(role, &agents, &fws);
                let added: f64 = out
                    .iter()
                    .filter(|a| is_subrole(&a.role, role))
                    .map(|a| a.resources.unreserved().cpus())
                    .sum();
                prop_assert!(added == 0.0 || before + added <= limit + 1e-9,
                    "{role}: {before} + {added} > {limit}");
            }
            // to_rescind never panics and names valid indices.
            let offers: Vec<OutstandingOffer> = out.iter().map(|a| OutstandingOffer {
                framework: a.framework.clone(), role: a.role.clone(), agent: a.agent.clone(), resources: a.resources.clone(),
            }).collect();
            for i in to_rescind(&view, &offers) {
                prop_assert!(i < offers.len());
            }
        }
    }
}
