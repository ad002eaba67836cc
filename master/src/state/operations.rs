//! What frameworks and operators change about how resources are shared: dynamic reservations
//! (RESERVE/UNRESERVE offer operations and `/reserve`, `/unreserve`), role weights and quotas,
//! and taking agents out of service (draining, machines down and up). Every change is written
//! to the registry; the actor commits it before anything that follows from it is sent.

use super::{AgentCommand, AgentState, CallError, Master};
use crate::allocator::{self, ancestors, is_subrole, RoleConfig};
use crate::registry::{DrainConfig, MaintenanceWindow, QuotaConfig};
use serde_json::{json, Map, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use strata_schema::{AgentId, Resource, Resources, Value, DEFAULT_ROLE};
use tracing::info;

pub use strata_schema::Operation;

/// Why an operator's request was refused; the HTTP front end maps each kind to its status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OperatorError {
    /// 400: the request itself is wrong.
    #[error("{0}")]
    Invalid(String),
    /// 404: it names an agent the master does not know.
    #[error("{0}")]
    NotFound(String),
    /// 409: valid, but the cluster's state does not allow it now.
    #[error("{0}")]
    Conflict(String),
}

/// A machine as Mesos' maintenance endpoints name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct MachineId {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub ip: String,
}

/// `res` with every item moved to `role` (scalars, ranges and sets alike; volumes lose their
/// disk info when they go to `*`).
pub(crate) fn with_role(res: &Resources, role: &str) -> Resources {
    let items = res
        .iter()
        .map(|r| Resource {
            role: role.to_string(),
            disk: if role == DEFAULT_ROLE {
                None
            } else {
                r.disk.clone()
            },
            ..r.clone()
        })
        .collect();
    Resources::from_vec(items).unwrap_or_default()
}

/// The reserved disk persistent volumes are made of: the same items without their disk info.
pub(crate) fn volume_sources(volumes: &Resources) -> Resources {
    let items = volumes
        .iter()
        .map(|r| Resource {
            disk: None,
            ..r.clone()
        })
        .collect();
    Resources::from_vec(items).unwrap_or_default()
}

/// Only the scalar items of `res`.
pub(crate) fn scalars(res: &Resources) -> Resources {
    let items = res
        .iter()
        .filter(|r| matches!(r.value, Value::Scalar(_)))
        .cloned()
        .collect();
    Resources::from_vec(items).unwrap_or_default()
}

/// An agent's total: what it reports (with its static reservations), with the dynamic
/// reservations carved out of its unreserved resources and the persistent volumes out of
/// reserved disk.
pub(crate) fn apply_reservations(
    reported: &Resources,
    reservations: &Resources,
    volumes: &Resources,
) -> Resources {
    if reservations.is_empty() && volumes.is_empty() {
        return reported.clone();
    }
    let mut total = reported.saturating_sub(&with_role(reservations, DEFAULT_ROLE));
    total.add(reservations);
    total = total.saturating_sub(&volume_sources(volumes));
    total.add(volumes);
    total
}

/// Scalar amounts per name, as Mesos' role and quota JSON prints them.
type Scalars = BTreeMap<String, f64>;

fn add_scalars(into: &mut Scalars, res: &Resources) {
    for r in res.iter() {
        if let Value::Scalar(v) = r.value {
            *into.entry(r.name.clone()).or_default() += v;
        }
    }
}

/// The scalar items of `res` summed per name, as Mesos' role and quota JSON prints them.
fn scalars_json(res: &Resources) -> Json {
    let mut object = Map::new();
    for r in res.iter() {
        if let Value::Scalar(_) = r.value {
            object.insert(r.name.clone(), json!(res.scalar(&r.name)));
        }
    }
    Json::Object(object)
}

/// Mesos 1.9's QuotaConfig maps: `{"cpus": {"value": 2.0}}`.
fn quantities_json(res: &Resources) -> Json {
    let mut object = Map::new();
    for r in res.iter() {
        if let Value::Scalar(v) = r.value {
            object.insert(r.name.clone(), json!({ "value": v }));
        }
    }
    Json::Object(object)
}

/// Only scalar, unreserved items: what quotas are made of.
fn check_quantities(what: &str, res: &Resources) -> Result<(), OperatorError> {
    for r in res.iter() {
        if !matches!(r.value, Value::Scalar(_)) {
            return Err(OperatorError::Invalid(format!(
                "{what}: {:?} is not a scalar resource (quotas hold scalars only)",
                r.name
            )));
        }
        if r.role != DEFAULT_ROLE {
            return Err(OperatorError::Invalid(format!(
                "{what}: {:?} names role {:?}; quota quantities carry no role",
                r.name, r.role
            )));
        }
    }
    Ok(())
}

/// A role name as the resource syntax allows it, and not `*`.
fn check_role(role: &str) -> Result<(), OperatorError> {
    if role == DEFAULT_ROLE {
        return Err(OperatorError::Invalid(
            "role \"*\" cannot have a quota, weight or reservation".to_string(),
        ));
    }
    strata_schema::validate_role(role)
        .map_err(|e| OperatorError::Invalid(format!("invalid role: {e}")))
}

impl Master {
    // ---- offer operations ---------------------------------------------------------------------

    /// Applies a RESERVE or UNRESERVE of framework `fw` to what is left of its offers on
    /// `agent_id` (allocated to `role`).
    pub(super) fn apply_operation(
        &mut self,
        fw: &strata_schema::FrameworkId,
        agent_id: &AgentId,
        role: &str,
        operation: Operation,
        remaining: &mut Resources,
    ) -> Result<(), String> {
        match operation {
            Operation::Launch(_) => Ok(()),
            // Validated and launched by `accept`, like LAUNCH.
            Operation::LaunchGroup { .. } => Ok(()),
            Operation::Reserve(res) => {
                if res.is_empty() {
                    return Err("it reserves nothing".to_string());
                }
                if let Some(r) = res.iter().find(|r| r.role != role) {
                    return Err(format!(
                        "{:?} is reserved for role {:?} but the offer is allocated to role {role:?}",
                        r.name, r.role
                    ));
                }
                let source = with_role(&res, DEFAULT_ROLE);
                if !remaining.contains(&source) {
                    return Err(format!(
                        "it needs {source} unreserved but the offers hold {remaining}"
                    ));
                }
                *remaining = remaining.saturating_sub(&source);
                remaining.add(&res);
                info!(framework_id = %fw, agent_id = %agent_id, resources = %res, "reserved");
                self.change_reservations(agent_id, |r| r.add(&res));
                Ok(())
            }
            Operation::Unreserve(res) => {
                if res.is_empty() {
                    return Err("it unreserves nothing".to_string());
                }
                if let Some(r) = res.iter().find(|r| r.role == DEFAULT_ROLE) {
                    return Err(format!("{:?} is not reserved", r.name));
                }
                let dynamic = self
                    .agents
                    .get(agent_id)
                    .map(|a| a.reservations.clone())
                    .unwrap_or_default();
                if !dynamic.contains(&res) {
                    return Err(format!(
                        "{res} is not dynamically reserved on agent {agent_id} (static \
                         reservations are the agent's --resources)"
                    ));
                }
                if !remaining.contains(&res) {
                    return Err(format!("{res} is not in the offers ({remaining})"));
                }
                *remaining = remaining.saturating_sub(&res);
                remaining.add(&with_role(&res, DEFAULT_ROLE));
                info!(framework_id = %fw, agent_id = %agent_id, resources = %res, "unreserved");
                self.change_reservations(agent_id, |r| *r = r.saturating_sub(&res));
                Ok(())
            }
            Operation::Create(volumes) => {
                self.check_create(agent_id, &volumes, Some(role))?;
                let source = volume_sources(&volumes);
                if !remaining.contains(&source) {
                    return Err(format!(
                        "it needs {source} reserved but the offers hold {remaining}"
                    ));
                }
                *remaining = remaining.saturating_sub(&source);
                remaining.add(&volumes);
                info!(framework_id = %fw, agent_id = %agent_id, volumes = %volumes, "volumes created");
                self.change_volumes(agent_id, |v| v.add(&volumes));
                Ok(())
            }
            Operation::Destroy(volumes) => {
                self.check_destroy(agent_id, &volumes)?;
                if !remaining.contains(&volumes) {
                    return Err(format!(
                        "{volumes} is not in the offers (a volume in use cannot be destroyed)"
                    ));
                }
                *remaining = remaining.saturating_sub(&volumes);
                remaining.add(&volume_sources(&volumes));
                info!(framework_id = %fw, agent_id = %agent_id, volumes = %volumes, "volumes destroyed");
                self.destroy_on_agent(agent_id, volumes);
                Ok(())
            }
        }
    }

    /// Volumes to create must be volumes, reserved for `role` or an ancestor of it (when made
    /// from an offer), with ids not in use on the agent.
    fn check_create(
        &self,
        agent_id: &AgentId,
        volumes: &Resources,
        role: Option<&str>,
    ) -> Result<(), String> {
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(format!("no agent has id {agent_id}"));
        };
        if volumes.is_empty() {
            return Err("it creates no volume".to_string());
        }
        for r in volumes.iter() {
            let Some(disk) = &r.disk else {
                return Err(format!(
                    "{r:?} is not a persistent volume (write disk(ROLE)[ID:PATH]:SIZE)",
                    r = r.name
                ));
            };
            if let Some(role) = role {
                if !is_subrole(role, &r.role) {
                    return Err(format!(
                        "volume {:?} is reserved for role {:?}, which the offer's role {role:?} is not within",
                        disk.persistence_id, r.role
                    ));
                }
            }
            if agent
                .volumes
                .volumes()
                .any(|(v, d)| v.role == r.role && d.persistence_id == disk.persistence_id)
            {
                return Err(format!(
                    "volume {:?} of role {:?} already exists on agent {agent_id}",
                    disk.persistence_id, r.role
                ));
            }
            let left = self.registry.agents.get(agent_id).is_some_and(|e| {
                e.destroyed
                    .volumes()
                    .any(|(v, d)| v.role == r.role && d.persistence_id == disk.persistence_id)
            });
            if left {
                return Err(format!(
                    "volume {:?} of role {:?} was destroyed while agent {agent_id} was away and its data is not deleted yet; use another id or wait for the agent",
                    disk.persistence_id, r.role
                ));
            }
        }
        Ok(())
    }

    /// Volumes to destroy must exist on the agent.
    fn check_destroy(&self, agent_id: &AgentId, volumes: &Resources) -> Result<(), String> {
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(format!("no agent has id {agent_id}"));
        };
        if volumes.is_empty() {
            return Err("it destroys no volume".to_string());
        }
        if let Some(r) = volumes.iter().find(|r| r.disk.is_none()) {
            return Err(format!("{:?} is not a persistent volume", r.name));
        }
        if !agent.volumes.contains(volumes) {
            return Err(format!("{volumes} does not exist on agent {agent_id}"));
        }
        Ok(())
    }

    /// Forgets volumes and tells their agent to delete their data.
    fn destroy_on_agent(&mut self, agent_id: &AgentId, volumes: Resources) {
        self.change_volumes(agent_id, |v| *v = v.saturating_sub(&volumes));
        match self.agents.get(agent_id).and_then(|a| a.link.clone()) {
            Some(link) => {
                let _ = link.send(AgentCommand::DestroyVolumes { volumes });
            }
            None => {
                info!(agent_id = %agent_id, volumes = %volumes, "the agent is not connected: the volumes' data is deleted when it comes back");
                if let Some(entry) = self.registry.agents.get_mut(agent_id) {
                    entry.destroyed.add(&volumes);
                    self.registry_dirty = true;
                }
            }
        }
    }

    /// Sends a (re-)registered agent the volumes destroyed while it was away.
    pub(super) fn destroy_left_volumes(&mut self, agent_id: &AgentId) {
        let Some(link) = self.agents.get(agent_id).and_then(|a| a.link.clone()) else {
            return;
        };
        let Some(entry) = self.registry.agents.get_mut(agent_id) else {
            return;
        };
        if entry.destroyed.is_empty() {
            return;
        }
        let volumes = std::mem::take(&mut entry.destroyed);
        self.registry_dirty = true;
        info!(agent_id = %agent_id, volumes = %volumes, "deleting the data of volumes destroyed while the agent was away");
        let _ = link.send(AgentCommand::DestroyVolumes { volumes });
    }

    /// Changes an agent's persistent volumes, here and in the registry.
    fn change_volumes(&mut self, agent_id: &AgentId, change: impl FnOnce(&mut Resources)) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            change(&mut agent.volumes);
            if let Some(entry) = self.registry.agents.get_mut(agent_id) {
                entry.volumes = agent.volumes.clone();
                self.registry_dirty = true;
            }
        }
        self.dirty = true;
    }

    /// `/create-volumes`: makes persistent volumes out of unused reserved disk of an agent.
    pub fn operator_create_volumes(
        &mut self,
        agent_id: &AgentId,
        volumes: Resources,
    ) -> Result<(), OperatorError> {
        if !self.agents.contains_key(agent_id) {
            return Err(OperatorError::NotFound(format!(
                "no agent has id {agent_id}"
            )));
        }
        self.check_create(agent_id, &volumes, None)
            .map_err(OperatorError::Invalid)?;
        let source = volume_sources(&volumes);
        self.ensure_unused(agent_id, &source, |available| {
            format!("agent {agent_id} does not have {source} reserved and unused (available: {available})")
        })?;
        info!(agent_id = %agent_id, volumes = %volumes, "operator created volumes");
        self.change_volumes(agent_id, |v| v.add(&volumes));
        Ok(())
    }

    /// `/destroy-volumes`: deletes unused persistent volumes of an agent, data included.
    pub fn operator_destroy_volumes(
        &mut self,
        agent_id: &AgentId,
        volumes: Resources,
    ) -> Result<(), OperatorError> {
        if !self.agents.contains_key(agent_id) {
            return Err(OperatorError::NotFound(format!(
                "no agent has id {agent_id}"
            )));
        }
        self.check_destroy(agent_id, &volumes)
            .map_err(OperatorError::Invalid)?;
        self.ensure_unused(agent_id, &volumes, |_| {
            format!("{volumes} is in use on agent {agent_id}")
        })?;
        info!(agent_id = %agent_id, volumes = %volumes, "operator destroyed volumes");
        self.destroy_on_agent(agent_id, volumes);
        Ok(())
    }

    /// Changes an agent's dynamic reservations, here and in the registry.
    fn change_reservations(&mut self, agent_id: &AgentId, change: impl FnOnce(&mut Resources)) {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            change(&mut agent.reservations);
            if let Some(entry) = self.registry.agents.get_mut(agent_id) {
                entry.reservations = agent.reservations.clone();
                self.registry_dirty = true;
            }
        }
        self.dirty = true;
    }

    // ---- operator: reservations ---------------------------------------------------------------

    /// Makes sure `wanted` is unused on the agent, taking back its outstanding offers if they
    /// hold it; otherwise a conflict whose message `refusal` writes from what is available.
    fn ensure_unused(
        &mut self,
        agent_id: &AgentId,
        wanted: &Resources,
        refusal: impl FnOnce(&Resources) -> String,
    ) -> Result<(), OperatorError> {
        let Some(agent) = self.agents.get(agent_id) else {
            return Err(OperatorError::NotFound(format!(
                "no agent has id {agent_id}"
            )));
        };
        if !agent.available().contains(wanted) {
            self.rescind_agent_offers(agent_id);
        }
        let available = self
            .agents
            .get(agent_id)
            .map(|a| a.available())
            .unwrap_or_default();
        if available.contains(wanted) {
            Ok(())
        } else {
            Err(OperatorError::Conflict(refusal(&available)))
        }
    }

    /// `/reserve`: reserves unused unreserved resources of an agent for the roles named in
    /// `res`, rescinding the agent's offers if they hold them.
    pub fn operator_reserve(
        &mut self,
        agent_id: &AgentId,
        res: Resources,
    ) -> Result<(), OperatorError> {
        if res.is_empty() {
            return Err(OperatorError::Invalid(
                "no resources to reserve were given".to_string(),
            ));
        }
        for r in res.iter() {
            check_role(&r.role).map_err(|e| {
                OperatorError::Invalid(format!(
                    "{:?} must name the role to reserve for: {e}",
                    r.name
                ))
            })?;
        }
        let source = with_role(&res, DEFAULT_ROLE);
        self.ensure_unused(agent_id, &source, |available| {
            format!(
                "agent {agent_id} does not have {source} unreserved and unused (available: {available})"
            )
        })?;
        info!(agent_id = %agent_id, resources = %res, "operator reserved");
        self.change_reservations(agent_id, |r| r.add(&res));
        Ok(())
    }

    /// `/unreserve`: gives unused dynamically reserved resources of an agent back to `*`.
    pub fn operator_unreserve(
        &mut self,
        agent_id: &AgentId,
        res: Resources,
    ) -> Result<(), OperatorError> {
        if res.is_empty() {
            return Err(OperatorError::Invalid(
                "no resources to unreserve were given".to_string(),
            ));
        }
        if let Some(r) = res.iter().find(|r| r.role == DEFAULT_ROLE) {
            return Err(OperatorError::Invalid(format!(
                "{:?} is not reserved: name the role, e.g. {}(ROLE)",
                r.name, r.name
            )));
        }
        let dynamic = match self.agents.get(agent_id) {
            Some(a) => a.reservations.clone(),
            None => {
                return Err(OperatorError::NotFound(format!(
                    "no agent has id {agent_id}"
                )))
            }
        };
        if !dynamic.contains(&res) {
            return Err(OperatorError::Conflict(format!(
                "{res} is not dynamically reserved on agent {agent_id} (its dynamic reservations: {})",
                if dynamic.is_empty() { "none".to_string() } else { dynamic.to_string() }
            )));
        }
        self.ensure_unused(agent_id, &res, |available| {
            format!(
                "{res} is in use on agent {agent_id}; only {} of its reservations is free",
                available.iter().filter(|r| r.role != DEFAULT_ROLE).count()
            )
        })?;
        info!(agent_id = %agent_id, resources = %res, "operator unreserved");
        self.change_reservations(agent_id, |r| *r = r.saturating_sub(&res));
        Ok(())
    }

    // ---- operator: weights and quotas ---------------------------------------------------------

    /// Sets role weights (`PUT /weights`); all are checked before any is applied.
    pub fn set_weights(&mut self, weights: Vec<(String, f64)>) -> Result<(), OperatorError> {
        for (role, weight) in &weights {
            check_role(role)?;
            if !weight.is_finite() || *weight <= 0.0 {
                return Err(OperatorError::Invalid(format!(
                    "the weight of role {role:?} must be a positive number, not {weight}"
                )));
            }
        }
        for (role, weight) in weights {
            info!(%role, weight, "weight set");
            if weight == 1.0 {
                self.registry.weights.remove(&role);
            } else {
                self.registry.weights.insert(role, weight);
            }
        }
        self.registry_dirty = true;
        self.dirty = true;
        Ok(())
    }

    /// Sets (or, with neither guarantees nor limits, removes) a role's quota. Checked as Mesos
    /// 1.9 does: scalars only; a guarantee no larger than the limit; a child's limit no larger
    /// than its parent's; children's guarantees summing to no more than their parent's.
    pub fn set_quota(&mut self, role: &str, quota: QuotaConfig) -> Result<(), OperatorError> {
        check_role(role)?;
        check_quantities("guarantees", &quota.guarantees)?;
        check_quantities("limits", &quota.limits)?;
        for g in quota.guarantees.iter() {
            let name = g.name.as_str();
            if quota.limits.names().contains(&name)
                && quota.limits.scalar(name) < quota.guarantees.scalar(name)
            {
                return Err(OperatorError::Invalid(format!(
                    "role {role:?}: the guarantee of {name} ({}) exceeds its limit ({})",
                    quota.guarantees.scalar(name),
                    quota.limits.scalar(name)
                )));
            }
        }
        let mut quotas = self.registry.quotas.clone();
        if quota.guarantees.is_empty() && quota.limits.is_empty() {
            quotas.remove(role);
        } else {
            quotas.insert(role.to_string(), quota);
        }
        check_quota_tree(&quotas)?;
        info!(%role, quota = ?quotas.get(role), "quota set");
        self.registry.quotas = quotas;
        self.registry_dirty = true;
        self.dirty = true;
        self.rescind_for_quota(std::time::Instant::now());
        Ok(())
    }

    /// The batched allocation's check that outstanding offers leave the quotas satisfiable.
    pub fn quota_tick(&mut self, now: std::time::Instant) {
        if !self.registry.quotas.is_empty() && !self.offers.is_empty() {
            self.rescind_for_quota(now);
        }
    }

    /// Rescinds the offers the allocator wants back: offers beyond a (lowered) limit, and offers
    /// holding what an unmet guarantee needs.
    pub(super) fn rescind_for_quota(&mut self, now: std::time::Instant) {
        let (agents, frameworks) = self.allocator_views();
        let roles = self.role_configs();
        let mut ids = Vec::new();
        let mut outstanding = Vec::new();
        for (id, offer) in &self.offers {
            ids.push(id.clone());
            outstanding.push(allocator::OutstandingOffer {
                framework: offer.framework_id.clone(),
                role: offer.role.clone(),
                agent: offer.agent_id.clone(),
                resources: offer.resources.clone(),
            });
        }
        let view = allocator::View {
            agents: &agents,
            frameworks: &frameworks,
            roles: &roles,
            min_allocatable: &self.config.min_allocatable,
            now,
        };
        for i in allocator::to_rescind(&view, &outstanding) {
            if let Some(id) = ids.get(i) {
                info!(offer_id = %id, "rescinding an offer for quota");
                self.rescind(&id.clone());
            }
        }
    }

    /// The operator's weights and quotas as the allocator takes them.
    pub(super) fn role_configs(&self) -> BTreeMap<String, RoleConfig> {
        let mut roles: BTreeMap<String, RoleConfig> = BTreeMap::new();
        for (role, weight) in &self.registry.weights {
            roles.entry(role.clone()).or_default().weight = *weight;
        }
        for (role, quota) in &self.registry.quotas {
            let config = roles.entry(role.clone()).or_default();
            config.guarantees = quota.guarantees.clone();
            config.limits = quota.limits.clone();
        }
        roles
    }

    // ---- operator: draining and maintenance ---------------------------------------------------

    /// Kills every task on an agent (with at most `grace` seconds, if given).
    fn kill_agent_tasks(&mut self, agent_id: &AgentId, grace: Option<f64>) {
        let Some(link) = self.agents.get(agent_id).and_then(|a| a.link.clone()) else {
            return;
        };
        for fw in self.frameworks.values() {
            for task in fw.tasks.values().filter(|t| t.info.agent_id == *agent_id) {
                if task.state.is_terminal() {
                    continue;
                }
                let own = task.info.kill_grace_period_secs.unwrap_or(0.0);
                let grace_period_secs = match grace {
                    Some(max) if own == 0.0 || own > max => max,
                    _ => own,
                };
                let _ = link.send(AgentCommand::Kill {
                    framework_id: fw.id.clone(),
                    task_id: task.info.task_id.clone(),
                    grace_period_secs,
                });
            }
        }
    }

    fn record_agent_service(&mut self, agent_id: &AgentId) {
        if let (Some(agent), Some(entry)) = (
            self.agents.get(agent_id),
            self.registry.agents.get_mut(agent_id),
        ) {
            entry.drain = agent.drain.clone();
            entry.down = agent.down;
            self.registry_dirty = true;
        }
        self.dirty = true;
    }

    /// Drains an agent (Mesos' DRAIN_AGENT): it gets no more offers, its offers are rescinded,
    /// and its tasks are killed so their frameworks place them elsewhere. Once none is left it
    /// reads DRAINED; `reactivate_agent` brings it back.
    pub fn drain_agent(
        &mut self,
        agent_id: &AgentId,
        config: DrainConfig,
    ) -> Result<(), OperatorError> {
        if let Some(g) = config.max_grace_period_secs {
            if !g.is_finite() || g < 0.0 {
                return Err(OperatorError::Invalid(format!(
                    "max_grace_period must be a non-negative number of seconds, not {g}"
                )));
            }
        }
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Err(OperatorError::NotFound(format!(
                "no agent has id {agent_id}"
            )));
        };
        if agent.state == AgentState::Unreachable {
            return Err(OperatorError::Conflict(format!(
                "agent {agent_id} is unreachable; it can be drained once it is back"
            )));
        }
        let grace = config.max_grace_period_secs;
        agent.drain = Some(config);
        info!(agent_id = %agent_id, "draining agent");
        self.rescind_agent_offers(agent_id);
        self.kill_agent_tasks(agent_id, grace);
        self.record_agent_service(agent_id);
        Ok(())
    }

    /// Ends draining (Mesos' REACTIVATE_AGENT).
    pub fn reactivate_agent(&mut self, agent_id: &AgentId) -> Result<(), OperatorError> {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Err(OperatorError::NotFound(format!(
                "no agent has id {agent_id}"
            )));
        };
        if agent.drain.take().is_none() {
            return Err(OperatorError::Conflict(format!(
                "agent {agent_id} is not draining"
            )));
        }
        info!(agent_id = %agent_id, "agent reactivated");
        self.record_agent_service(agent_id);
        Ok(())
    }

    /// The agents on the named machines (by hostname; an IP, when given, must not contradict
    /// the hostname of a known agent — Mesos matches both, and agents here report hostnames).
    fn machine_agents(&self, machines: &[MachineId]) -> Result<Vec<AgentId>, OperatorError> {
        if machines.is_empty() {
            return Err(OperatorError::Invalid("no machines were named".to_string()));
        }
        let mut out = Vec::new();
        for m in machines {
            if m.hostname.is_empty() {
                return Err(OperatorError::Invalid(format!(
                    "machine {m:?} has no hostname (agents are matched by hostname)"
                )));
            }
            let found: Vec<AgentId> = self
                .agents
                .values()
                .filter(|a| a.info.hostname == m.hostname)
                .map(|a| a.id.clone())
                .collect();
            if found.is_empty() {
                return Err(OperatorError::NotFound(format!(
                    "no agent runs on machine {:?}",
                    m.hostname
                )));
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// `/machine/down`: the machines' agents get no offers and their tasks are killed.
    pub fn machines_down(&mut self, machines: &[MachineId]) -> Result<(), OperatorError> {
        let agents = self.machine_agents(machines)?;
        for id in &agents {
            if let Some(agent) = self.agents.get_mut(id) {
                agent.down = true;
            }
            info!(agent_id = %id, "machine down");
            self.rescind_agent_offers(id);
            self.kill_agent_tasks(id, Some(0.0));
            self.record_agent_service(id);
        }
        Ok(())
    }

    /// `/machine/up`: the machines' agents are offered again.
    pub fn machines_up(&mut self, machines: &[MachineId]) -> Result<(), OperatorError> {
        let agents = self.machine_agents(machines)?;
        for id in &agents {
            if let Some(agent) = self.agents.get_mut(id) {
                agent.down = false;
            }
            info!(agent_id = %id, "machine up");
            self.record_agent_service(id);
        }
        Ok(())
    }

    /// Replaces the maintenance schedule (`POST /maintenance/schedule`), checked as Mesos does:
    /// every window names machines, no machine is in two windows, and a machine that is down
    /// stays in the schedule until it is brought up.
    pub fn set_schedule(&mut self, windows: Vec<MaintenanceWindow>) -> Result<(), OperatorError> {
        let mut seen = BTreeSet::new();
        for w in &windows {
            if w.machines.is_empty() {
                return Err(OperatorError::Invalid(
                    "a maintenance window names no machines".to_string(),
                ));
            }
            if !w.start.is_finite() || w.duration.is_some_and(|d| !d.is_finite() || d < 0.0) {
                return Err(OperatorError::Invalid(format!(
                    "the window of {:?} has an invalid start or duration",
                    w.machines
                )));
            }
            for m in &w.machines {
                if m.is_empty() {
                    return Err(OperatorError::Invalid(
                        "a machine in the schedule has no hostname".to_string(),
                    ));
                }
                if !seen.insert(m.clone()) {
                    return Err(OperatorError::Invalid(format!(
                        "machine {m:?} is in more than one maintenance window"
                    )));
                }
            }
        }
        for agent in self.agents.values().filter(|a| a.down) {
            if !seen.contains(&agent.info.hostname) {
                return Err(OperatorError::Conflict(format!(
                    "machine {:?} is down: bring it up before taking it out of the schedule",
                    agent.info.hostname
                )));
            }
        }
        info!(windows = windows.len(), "maintenance schedule set");
        self.registry.schedule = windows;
        self.registry_dirty = true;
        self.dirty = true;
        Ok(())
    }

    /// The maintenance window of a machine, if it is in the schedule.
    pub(super) fn window_of(&self, hostname: &str) -> Option<MaintenanceWindow> {
        self.registry
            .schedule
            .iter()
            .find(|w| w.machines.iter().any(|m| m == hostname))
            .cloned()
    }

    /// `GET /maintenance/schedule` in Mesos' shape (times in nanoseconds).
    pub fn schedule_json(&self) -> Json {
        let windows: Vec<Json> = self
            .registry
            .schedule
            .iter()
            .map(|w| {
                let mut unavailability = json!({ "start": strata_schema::v1::nanos_json(w.start) });
                if let Some(d) = w.duration {
                    unavailability["duration"] = strata_schema::v1::nanos_json(d);
                }
                json!({
                    "machine_ids": w.machines.iter().map(|m| json!({ "hostname": m })).collect::<Vec<_>>(),
                    "unavailability": unavailability,
                })
            })
            .collect();
        json!({ "windows": windows })
    }

    /// An agent's service state as `/state` and `/maintenance/status` print it.
    pub(super) fn agent_service(&self, agent_id: &AgentId) -> &'static str {
        let Some(agent) = self.agents.get(agent_id) else {
            return "unknown";
        };
        if agent.down {
            "DOWN"
        } else if agent.drain.is_some() {
            let busy = self
                .frameworks
                .values()
                .any(|f| f.tasks.values().any(|t| t.info.agent_id == *agent_id));
            if busy {
                "DRAINING"
            } else {
                "DRAINED"
            }
        } else if self.window_of(&agent.info.hostname).is_some() {
            // In the schedule: Mesos' DRAINING mode (still offered, with the unavailability).
            "DRAINING"
        } else {
            "UP"
        }
    }

    // ---- views --------------------------------------------------------------------------------

    /// Every role anyone refers to: frameworks' roles, weights, quotas and reservations, and
    /// their ancestors.
    fn known_roles(&self) -> BTreeSet<String> {
        let mut roles = BTreeSet::new();
        for fw in self.frameworks.values() {
            roles.extend(fw.info.effective_roles());
        }
        roles.extend(self.registry.weights.keys().cloned());
        roles.extend(self.registry.quotas.keys().cloned());
        for agent in self.agents.values() {
            for r in agent.total().iter() {
                roles.insert(r.role.clone());
            }
        }
        roles.remove(DEFAULT_ROLE);
        let with_ancestors: Vec<String> = roles
            .iter()
            .flat_map(|r| ancestors(r).map(str::to_string).collect::<Vec<_>>())
            .collect();
        roles.extend(with_ancestors);
        roles
    }

    /// `/roles` in Mesos' shape (with 1.9's allocated/offered/reserved/quota). Each figure is
    /// of the role's subtree; one pass over frameworks, offers and agents adds every item to its
    /// role and that role's ancestors.
    pub fn roles_json(&self) -> Json {
        #[derive(Default)]
        struct Sums {
            allocated: Scalars,
            offered: Scalars,
            reserved: Scalars,
            /// Reserved and not allocated: with `allocated`, what counts against quota.
            idle_reserved: Scalars,
        }
        let mut sums: BTreeMap<String, Sums> = self
            .known_roles()
            .into_iter()
            .map(|r| (r, Sums::default()))
            .collect();
        let mut add = |role: &str, pick: fn(&mut Sums) -> &mut Scalars, res: &Resources| {
            for r in std::iter::once(role).chain(ancestors(role)) {
                if let Some(s) = sums.get_mut(r) {
                    add_scalars(pick(s), res);
                }
            }
        };
        for fw in self.frameworks.values() {
            for (role, res) in &fw.allocated {
                add(role, |s| &mut s.allocated, res);
            }
        }
        for offer in self.offers.values() {
            add(&offer.role, |s| &mut s.offered, &offer.resources);
        }
        for agent in self.agents.values() {
            for item in agent.total().iter().filter(|r| r.role != DEFAULT_ROLE) {
                add(
                    &item.role,
                    |s| &mut s.reserved,
                    &Resources::from_vec(vec![item.clone()]).unwrap_or_default(),
                );
            }
            if agent.state == AgentState::Unreachable {
                continue;
            }
            for item in agent.available().iter().filter(|r| r.role != DEFAULT_ROLE) {
                add(
                    &item.role,
                    |s| &mut s.idle_reserved,
                    &Resources::from_vec(vec![item.clone()]).unwrap_or_default(),
                );
            }
        }
        let mut out = Vec::new();
        for (role, s) in sums {
            let mut frameworks: Vec<String> = self
                .frameworks
                .values()
                .filter(|f| f.info.effective_roles().contains(&role))
                .map(|f| f.id.to_string())
                .collect();
            frameworks.sort();
            let mut entry = json!({
                "name": role,
                "weight": self.registry.weights.get(&role).copied().unwrap_or(1.0),
                "frameworks": frameworks,
                "resources": s.allocated,
                "allocated": s.allocated,
                "offered": s.offered,
                "reserved": s.reserved,
            });
            if let Some(quota) = self.registry.quotas.get(&role) {
                let mut consumed = s.allocated.clone();
                for (name, v) in &s.idle_reserved {
                    *consumed.entry(name.clone()).or_default() += v;
                }
                entry["quota"] = json!({
                    "role": role,
                    "guarantee": scalars_json(&quota.guarantees),
                    "limit": scalars_json(&quota.limits),
                    "consumed": consumed,
                });
            }
            out.push(entry);
        }
        json!({ "roles": out })
    }

    /// `GET /quota`: Mesos 1.9's QuotaStatus, `configs` (and the older `infos`).
    pub fn quota_json(&self) -> Json {
        let configs: Vec<Json> = self
            .registry
            .quotas
            .iter()
            .map(|(role, q)| {
                json!({
                    "role": role,
                    "guarantees": quantities_json(&q.guarantees),
                    "limits": quantities_json(&q.limits),
                })
            })
            .collect();
        let infos: Vec<Json> = self
            .registry
            .quotas
            .iter()
            .map(|(role, q)| json!({ "role": role, "guarantee": q.guarantees.to_json() }))
            .collect();
        json!({ "configs": configs, "infos": infos })
    }

    /// `GET /weights`: `[{"role": "eng", "weight": 2.0}]`.
    pub fn weights_json(&self) -> Json {
        Json::Array(
            self.registry
                .weights
                .iter()
                .map(|(role, weight)| json!({ "role": role, "weight": weight }))
                .collect(),
        )
    }

    /// `GET /maintenance/status`: machines draining (or drained) and down.
    pub fn maintenance_json(&self) -> Json {
        let mut draining = Vec::new();
        let mut down = Vec::new();
        let mut ids: Vec<&AgentId> = self.agents.keys().collect();
        ids.sort();
        for id in ids {
            let Some(agent) = self.agents.get(id) else {
                continue;
            };
            let machine = json!({ "id": { "hostname": agent.info.hostname }, "agent_id": id });
            match self.agent_service(id) {
                "DOWN" => down.push(machine),
                "DRAINING" | "DRAINED" => {
                    let mut m = machine;
                    m["state"] = json!(self.agent_service(id));
                    m["statuses"] = json!(self.inverse_statuses(id));
                    draining.push(m);
                }
                _ => {}
            }
        }
        json!({ "draining_machines": draining, "down_machines": down })
    }
}

/// Checks the quota tree: a child's limit is within its parent's; children's guarantees sum to
/// no more than their parent's guarantee (where the parent guarantees that resource).
fn check_quota_tree(quotas: &BTreeMap<String, QuotaConfig>) -> Result<(), OperatorError> {
    for (role, quota) in quotas {
        for parent in ancestors(role) {
            let Some(pq) = quotas.get(parent) else {
                continue;
            };
            for l in pq.limits.iter() {
                let name = l.name.as_str();
                // A child without a limit of its own is bound by its parent's anyway.
                let child_limit = if quota.limits.names().contains(&name) {
                    quota.limits.scalar(name)
                } else {
                    0.0
                };
                let child_guarantee = quota.guarantees.scalar(name);
                if child_limit > pq.limits.scalar(name) || child_guarantee > pq.limits.scalar(name)
                {
                    return Err(OperatorError::Invalid(format!(
                        "role {role:?} may use more {name} than its parent {parent:?}'s limit ({})",
                        pq.limits.scalar(name)
                    )));
                }
            }
        }
    }
    for (parent, pq) in quotas {
        for g in pq.guarantees.iter() {
            let name = g.name.as_str();
            let children: f64 = quotas
                .iter()
                .filter(|(r, _)| {
                    r.as_str() != parent && ancestors(r).next() == Some(parent.as_str())
                })
                .map(|(_, q)| q.guarantees.scalar(name))
                .sum();
            if children > pq.guarantees.scalar(name) + 1e-9 {
                return Err(OperatorError::Invalid(format!(
                    "the guarantees of {parent:?}'s children sum to {children} {name}, more than its own guarantee ({})",
                    pq.guarantees.scalar(name)
                )));
            }
        }
    }
    Ok(())
}

/// Lets [`CallError`] carry an operation's refusal.
impl From<OperatorError> for CallError {
    fn from(err: OperatorError) -> Self {
        CallError::Invalid(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn res(s: &str) -> Resources {
        Resources::parse(s).unwrap()
    }

    #[test]
    fn reservations_are_carved_out_of_unreserved_resources() {
        let total = apply_reservations(
            &res("cpus:4;mem:1024;cpus(web):1;disk(web):100;disk:50"),
            &res("cpus(ops):2;mem(ops):512;disk(ops):20"),
            &res("disk(web)[v1:data]:64;disk(ops)[v2:logs]:20"),
        );
        // The static disk(web) and the dynamic disk(ops) each give up what their volumes hold.
        assert_eq!(
            total,
            res(
                "cpus:2;mem:512;cpus(web):1;cpus(ops):2;mem(ops):512;disk:30;disk(web):36;\
                 disk(web)[v1:data]:64;disk(ops)[v2:logs]:20"
            )
        );
        assert_eq!(
            apply_reservations(&res("cpus:4"), &Resources::new(), &Resources::new()),
            res("cpus:4")
        );
    }

    #[test]
    fn the_quota_tree_is_checked() {
        let q = |g: &str, l: &str| QuotaConfig {
            guarantees: res(g),
            limits: res(l),
        };
        let mut quotas = BTreeMap::new();
        quotas.insert("eng".to_string(), q("cpus:4", "cpus:8"));
        quotas.insert("eng/a".to_string(), q("cpus:3", "cpus:8"));
        assert!(check_quota_tree(&quotas).is_ok());
        quotas.insert("eng/b".to_string(), q("cpus:2", ""));
        let err = check_quota_tree(&quotas).unwrap_err().to_string();
        assert!(err.contains("sum to 5"), "{err}");
        quotas.insert("eng/b".to_string(), q("", "cpus:9"));
        let err = check_quota_tree(&quotas).unwrap_err().to_string();
        assert!(err.contains("parent \"eng\"'s limit"), "{err}");
        // A child without a limit is bound by its parent's: fine, but not a guarantee beyond it.
        quotas.insert("eng/b".to_string(), q("mem:1", ""));
        assert!(check_quota_tree(&quotas).is_ok());
        quotas.insert("eng/b".to_string(), q("", ""));
        quotas.insert("eng/c".to_string(), q("", "cpus:8"));
        assert!(check_quota_tree(&quotas).is_ok());
    }

    #[test]
    fn quotas_hold_unreserved_scalars_only() {
        assert!(check_quantities("guarantees", &res("cpus:1;mem:2")).is_ok());
        let err = check_quantities("limits", &res("ports:[1-2]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"ports\" is not a scalar"), "{err}");
        let err = check_quantities("limits", &res("cpus(ops):1"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("carry no role"), "{err}");
        assert!(check_role("*").is_err());
        assert!(check_role("eng/backend").is_ok());
        assert!(check_role("bad role").is_err());
    }
}
