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
    let map: Map<String, Value> = scalars(resources)
        .map(|(name, value)| (name.to_string(), json!({"value": value})))
        .collect();
    Value::Object(map)
}

/// The scalar items, by name.
fn scalars(resources: &Resources) -> impl Iterator<Item = (&str, f64)> {
    resources.iter().filter_map(|item| match item.value {
        strata_schema::Value::Scalar(value) => Some((item.name.as_str(), value)),
        _ => None,
    })
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
            format_resources(scalars(r))
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
    use std::future::Future;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the fake master received: method, path and JSON body (Null when empty).
    type Request = (String, String, Value);

    /// Runs `call` against a fake master on an ephemeral port that answers one request with
    /// `status` and `answer`; returns the command's outcome and the request the master saw.
    async fn exchange<F, Fut>(status: u16, answer: &str, call: F) -> (anyhow::Result<u8>, Request)
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = anyhow::Result<u8>>,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let answer = answer.to_string();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut data = Vec::new();
            let mut buf = [0u8; 4096];
            let (head, body_len) = loop {
                let n = conn.read(&mut buf).await.unwrap();
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    break (text[..end].to_string(), (end + 4, len));
                }
                assert!(n > 0, "the request ended early");
            };
            let (start, len) = body_len;
            while data.len() < start + len {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the body ended early");
                data.extend_from_slice(&buf[..n]);
            }
            let response = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(response.as_bytes()).await.unwrap();
            let mut words = head.split_whitespace();
            let method = words.next().unwrap().to_string();
            let path = words.next().unwrap().to_string();
            let body = if len == 0 {
                Value::Null
            } else {
                serde_json::from_slice(&data[start..start + len]).unwrap()
            };
            (method, path, body)
        });
        let outcome = call(addr).await;
        (outcome, server.await.unwrap())
    }

    fn request(method: &str, path: &str, body: Value) -> Request {
        (method.to_string(), path.to_string(), body)
    }

    #[tokio::test]
    async fn listings_get_their_endpoints() {
        let roles = r#"{"roles": [{"name": "eng", "weight": 2}]}"#;
        let (outcome, seen) = exchange(200, roles, |addr| async move {
            super::roles(&addr, RolesArgs { json: false }).await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(seen, request("GET", "/roles", Value::Null));
        let (outcome, seen) = exchange(200, r#"{"configs": []}"#, |addr| async move {
            quota(
                &addr,
                QuotaArgs {
                    json: true,
                    action: None,
                },
            )
            .await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(seen.1, "/quota");
        let (outcome, seen) = exchange(200, "[]", |addr| async move {
            weights(
                &addr,
                WeightsArgs {
                    json: false,
                    action: None,
                },
            )
            .await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(seen.1, "/weights");
    }

    #[tokio::test]
    async fn quota_set_and_remove() {
        let (outcome, seen) = exchange(200, "{}", |addr| async move {
            let action = QuotaAction::Set {
                role: "eng".into(),
                guarantee: Some(Resources::parse("cpus:2;mem:1024").unwrap()),
                limit: None,
            };
            quota(
                &addr,
                QuotaArgs {
                    json: false,
                    action: Some(action),
                },
            )
            .await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        let body = json!({"role": "eng",
            "guarantees": {"cpus": {"value": 2.0}, "mem": {"value": 1024.0}}, "limits": {}});
        assert_eq!(seen, request("POST", "/quota", body));
        let (outcome, seen) = exchange(200, "", |addr| async move {
            let action = QuotaAction::Remove { role: "eng".into() };
            quota(
                &addr,
                QuotaArgs {
                    json: false,
                    action: Some(action),
                },
            )
            .await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        let body = json!({"role": "eng", "guarantees": {}, "limits": {}});
        assert_eq!(seen, request("POST", "/quota", body));
    }

    #[tokio::test]
    async fn master_errors_name_what_failed() {
        let answer = r#"{"error": "guarantee exceeds the limit for cpus"}"#;
        let (outcome, _) = exchange(400, answer, |addr| async move {
            let action = QuotaAction::Set {
                role: "eng".into(),
                guarantee: Some(Resources::parse("cpus:8").unwrap()),
                limit: Some(Resources::parse("cpus:4").unwrap()),
            };
            quota(
                &addr,
                QuotaArgs {
                    json: false,
                    action: Some(action),
                },
            )
            .await
        })
        .await;
        assert_eq!(
            format!("{:#}", outcome.unwrap_err()),
            "cannot set the quota of role eng: guarantee exceeds the limit for cpus"
        );
        let (outcome, _) = exchange(404, "", |addr| async move {
            super::roles(&addr, RolesArgs { json: false }).await
        })
        .await;
        let err = format!("{:#}", outcome.unwrap_err());
        assert!(
            err.starts_with("cannot list the roles: the master at 127.0.0.1:"),
            "{err}"
        );
        assert!(err.contains("does not serve /roles"), "{err}");
    }

    #[tokio::test]
    async fn weights_set_puts() {
        let (outcome, seen) = exchange(200, "", |addr| async move {
            let action = WeightsAction::Set {
                role: "eng".into(),
                weight: 2.5,
            };
            weights(
                &addr,
                WeightsArgs {
                    json: false,
                    action: Some(action),
                },
            )
            .await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        let body = json!([{"role": "eng", "weight": 2.5}]);
        assert_eq!(seen, request("PUT", "/weights", body));
    }

    #[tokio::test]
    async fn reservations_post() {
        let args = || ReservationArgs {
            agent: agent(),
            resources: Resources::parse("cpus(ops):2;mem(ops):512").unwrap(),
        };
        let body = json!({"agent_id": "m-S0", "resources": "cpus(ops):2;mem(ops):512"});
        let (outcome, seen) =
            exchange(202, "", |addr| async move { reserve(&addr, args()).await }).await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(seen, request("POST", "/reserve", body.clone()));
        let (outcome, seen) = exchange(
            202,
            "",
            |addr| async move { unreserve(&addr, args()).await },
        )
        .await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(seen, request("POST", "/unreserve", body));
        let answer = r#"{"error": "agent m-S0 has no unreserved cpus:2"}"#;
        let (outcome, _) = exchange(
            409,
            answer,
            |addr| async move { reserve(&addr, args()).await },
        )
        .await;
        assert_eq!(
            format!("{:#}", outcome.unwrap_err()),
            "cannot reserve cpus(ops):2;mem(ops):512 on agent m-S0: agent m-S0 has no unreserved cpus:2"
        );
    }

    #[tokio::test]
    async fn drain_and_reactivate_post() {
        let (outcome, seen) = exchange(202, "", |addr| async move {
            let args = DrainArgs {
                agent: agent(),
                grace: Some(Duration::from_secs(30)),
            };
            drain(&addr, args).await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        let body = json!({"agent_id": "m-S0", "max_grace_period_secs": 30.0});
        assert_eq!(seen, request("POST", "/drain", body));
        let (outcome, seen) = exchange(202, "", |addr| async move {
            reactivate(&addr, AgentArgs { agent: agent() }).await
        })
        .await;
        assert_eq!(outcome.unwrap(), 0);
        assert_eq!(
            seen,
            request("POST", "/reactivate", json!({"agent_id": "m-S0"}))
        );
    }

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
