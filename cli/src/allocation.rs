//! The operator's allocation settings on the master's Mesos-compatible endpoints: `strata roles`
//! (`GET /roles`), `quota` (`GET`/`POST /quota`), `weights` (`GET`/`PUT /weights`),
//! `reserve`/`unreserve` (`POST /reserve`, `/unreserve`) and `drain`/`reactivate`
//! (`POST /drain`, `/reactivate`). The request bodies are built by the pure `*_body` functions.

use crate::args::{
    AgentArgs, DrainArgs, QuotaAction, QuotaArgs, ReservationArgs, RolesArgs, WeightsAction,
    WeightsArgs,
};
use crate::master::{self, Method};
use crate::tables::{self, QUOTA_HEADERS, ROLE_HEADERS, WEIGHT_HEADERS};
use crate::units::{format_decimal, format_resources};
use anyhow::Context;
use serde_json::{json, Map, Value};
use std::time::Duration;
use strata_schema::{AgentId, Resources};

pub async fn roles(addr: &str, args: RolesArgs) -> anyhow::Result<u8> {
    let roles = master::get(addr, "/roles", "cannot list the roles").await?;
    if args.json {
        print_json(roles.get("roles").unwrap_or(&Value::Array(Vec::new())))?;
    } else {
        print!(
            "{}",
            tables::render(&ROLE_HEADERS, &tables::role_rows(&roles))
        );
    }
    Ok(0)
}

pub async fn quota(addr: &str, args: QuotaArgs) -> anyhow::Result<u8> {
    match args.action {
        None => {
            let quota = master::get(addr, "/quota", "cannot list the quotas").await?;
            if args.json {
                print_json(quota.get("configs").unwrap_or(&Value::Array(Vec::new())))?;
            } else {
                print!(
                    "{}",
                    tables::render(&QUOTA_HEADERS, &tables::quota_rows(&quota))
                );
            }
        }
        Some(QuotaAction::Set {
            role,
            guarantee,
            limit,
        }) => {
            let guarantee = guarantee.unwrap_or_default();
            let limit = limit.unwrap_or_default();
            let body = quota_body(&role, &guarantee, &limit);
            let what = format!("cannot set the quota of role {role}");
            master::send(addr, Method::Post, "/quota", &body, &what).await?;
            println!("{}", quota_report(&role, &guarantee, &limit));
        }
        Some(QuotaAction::Remove { role }) => {
            let body = quota_body(&role, &Resources::new(), &Resources::new());
            let what = format!("cannot remove the quota of role {role}");
            master::send(addr, Method::Post, "/quota", &body, &what).await?;
            println!("removed the quota of role {role}");
        }
    }
    Ok(0)
}

pub async fn weights(addr: &str, args: WeightsArgs) -> anyhow::Result<u8> {
    match args.action {
        None => {
            let weights = master::get(addr, "/weights", "cannot list the weights").await?;
            if args.json {
                print_json(&weights)?;
            } else {
                print!(
                    "{}",
                    tables::render(&WEIGHT_HEADERS, &tables::weight_rows(&weights))
                );
            }
        }
        Some(WeightsAction::Set { role, weight }) => {
            let what = format!("cannot set the weight of role {role}");
            let body = weights_body(&role, weight);
            master::send(addr, Method::Put, "/weights", &body, &what).await?;
            println!(
                "set the weight of role {role} to {}",
                format_decimal(weight)
            );
        }
    }
    Ok(0)
}

pub async fn reserve(addr: &str, args: ReservationArgs) -> anyhow::Result<u8> {
    let body = reservation_body(&args.agent, &args.resources);
    let what = format!("cannot reserve {} on agent {}", args.resources, args.agent);
    master::send(addr, Method::Post, "/reserve", &body, &what).await?;
    println!("reserved {} on agent {}", args.resources, args.agent);
    Ok(0)
}

pub async fn unreserve(addr: &str, args: ReservationArgs) -> anyhow::Result<u8> {
    let body = reservation_body(&args.agent, &args.resources);
    let what = format!(
        "cannot unreserve {} on agent {}",
        args.resources, args.agent
    );
    master::send(addr, Method::Post, "/unreserve", &body, &what).await?;
    println!("unreserved {} on agent {}", args.resources, args.agent);
    Ok(0)
}

pub async fn drain(addr: &str, args: DrainArgs) -> anyhow::Result<u8> {
    let body = drain_body(&args.agent, args.grace);
    let what = format!("cannot drain agent {}", args.agent);
    master::send(addr, Method::Post, "/drain", &body, &what).await?;
    println!("draining agent {}", args.agent);
    Ok(0)
}

pub async fn reactivate(addr: &str, args: AgentArgs) -> anyhow::Result<u8> {
    let body = agent_body(&args.agent);
    let what = format!("cannot reactivate agent {}", args.agent);
    master::send(addr, Method::Post, "/reactivate", &body, &what).await?;
    println!("reactivated agent {}", args.agent);
    Ok(0)
}

/// `POST /quota`'s body, Mesos 1.9's QuotaConfig: `{"role", "guarantees": {"cpus": {"value":
/// 2}}, "limits": {…}}`. Both empty clears the role's quota.
pub fn quota_body(role: &str, guarantee: &Resources, limit: &Resources) -> Value {
    json!({
        "role": role,
        "guarantees": quantities(guarantee),
        "limits": quantities(limit),
    })
}

/// `{"cpus": {"value": 2.0}, …}` of the scalars (the only kind a quota's resources hold).
fn quantities(resources: &Resources) -> Value {
    let map: Map<String, Value> = resources
        .iter()
        .filter(|item| matches!(item.value, strata_schema::Value::Scalar(_)))
        .map(|item| {
            (
                item.name.clone(),
                json!({"value": resources.scalar(&item.name)}),
            )
        })
        .collect();
    Value::Object(map)
}

/// `PUT /weights`' body: `[{"role", "weight"}]`.
pub fn weights_body(role: &str, weight: f64) -> Value {
    json!([{"role": role, "weight": weight}])
}

/// `POST /reserve`'s and `/unreserve`'s body: the resources in Mesos' text syntax.
pub fn reservation_body(agent: &AgentId, resources: &Resources) -> Value {
    json!({"agent_id": agent.as_str(), "resources": resources.to_string()})
}

/// `POST /drain`'s body; without a grace period the tasks' own kill policies apply.
pub fn drain_body(agent: &AgentId, grace: Option<Duration>) -> Value {
    let mut body = agent_body(agent);
    if let (Some(grace), Some(map)) = (grace, body.as_object_mut()) {
        map.insert(
            "max_grace_period_secs".to_string(),
            json!(grace.as_secs_f64()),
        );
    }
    body
}

/// `POST /reactivate`'s body.
pub fn agent_body(agent: &AgentId) -> Value {
    json!({"agent_id": agent.as_str()})
}

/// `set the quota of role R: guarantee G, limit L` (`none` for an empty side).
pub fn quota_report(role: &str, guarantee: &Resources, limit: &Resources) -> String {
    let describe = |r: &Resources| {
        if r.is_empty() {
            "none".to_string()
        } else {
            format_resources(
                r.iter()
                    .map(|item| (item.name.as_str(), r.scalar(&item.name))),
            )
        }
    };
    format!(
        "set the quota of role {role}: guarantee {}; limit {}",
        describe(guarantee),
        describe(limit)
    )
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("cannot format JSON")?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn agent() -> AgentId {
        AgentId::new("m-S0").unwrap()
    }

    #[test]
    fn quota_bodies() {
        let guarantee = Resources::parse("cpus:2;mem:1024").unwrap();
        let limit = Resources::parse("cpus:4").unwrap();
        assert_eq!(
            quota_body("eng", &guarantee, &limit),
            json!({"role": "eng",
                   "guarantees": {"cpus": {"value": 2.0}, "mem": {"value": 1024.0}},
                   "limits": {"cpus": {"value": 4.0}}})
        );
        assert_eq!(
            quota_body("eng/backend", &Resources::new(), &Resources::new()),
            json!({"role": "eng/backend", "guarantees": {}, "limits": {}})
        );
        assert_eq!(
            quota_report("eng", &guarantee, &Resources::new()),
            "set the quota of role eng: guarantee 2 cpus, 1 GiB; limit none"
        );
    }

    #[test]
    fn other_bodies() {
        assert_eq!(
            weights_body("eng", 2.0),
            json!([{"role": "eng", "weight": 2.0}])
        );
        let resources = Resources::parse("mem(ops):512; cpus(ops):2").unwrap();
        assert_eq!(
            reservation_body(&agent(), &resources),
            json!({"agent_id": "m-S0", "resources": "cpus(ops):2;mem(ops):512"})
        );
        assert_eq!(
            drain_body(&agent(), Some(Duration::from_millis(1500))),
            json!({"agent_id": "m-S0", "max_grace_period_secs": 1.5})
        );
        assert_eq!(drain_body(&agent(), None), json!({"agent_id": "m-S0"}));
        assert_eq!(agent_body(&agent()), json!({"agent_id": "m-S0"}));
    }
}
