//! `strata images [prune]`: the agents' image stores (`GET /images`, `POST /images/prune` on
//! each agent, found through the master's `/state` unless `--agent` names one).

use crate::args::{ImagesAction, ImagesArgs};
use crate::master;
use crate::tables::{self, array, text};
use anyhow::Context;
use serde_json::{json, Value};
use strata_client::http;

pub const IMAGE_HEADERS: [&str; 6] = ["AGENT", "ID", "NAMES", "LAYERS", "SIZE", "CONTAINERS"];

/// The agents' HTTP addresses.
async fn agents(master_addr: &str, args: &ImagesArgs) -> anyhow::Result<Vec<String>> {
    if let Some(agent) = &args.agent {
        return Ok(vec![agent.clone()]);
    }
    let state = master::state(master_addr).await?;
    Ok(array(&state, "slaves")
        .iter()
        .filter(|a| a.get("active").and_then(Value::as_bool) != Some(false))
        .map(|a| {
            crate::host_port(
                text(a, "hostname"),
                a.get("port").and_then(Value::as_u64).unwrap_or(5051) as u16,
            )
        })
        .collect())
}

pub async fn images(master_addr: &str, args: ImagesArgs) -> anyhow::Result<u8> {
    let agents = agents(master_addr, &args).await?;
    let mut failed = false;
    match args.action {
        Some(ImagesAction::Prune) => {
            let mut reports = Vec::new();
            for agent in &agents {
                match http::post(agent, "/images/prune").await {
                    Ok(report) => {
                        if !args.json {
                            println!("{}", prune_line(agent, &report));
                        }
                        reports.push(json!({"agent": agent, "report": report}));
                    }
                    Err(err) => {
                        eprintln!("error: agent {agent}: {err}");
                        failed = true;
                    }
                }
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reports).context("cannot format JSON")?
                );
            }
        }
        None => {
            let mut rows = Vec::new();
            let mut all = Vec::new();
            for agent in &agents {
                match http::get_json(agent, "/images").await {
                    Ok(listing) => {
                        rows.extend(image_rows(agent, &listing));
                        all.push(json!({"agent": agent, "images": listing["images"]}));
                    }
                    Err(err) => {
                        eprintln!("error: agent {agent}: {err}");
                        failed = true;
                    }
                }
            }
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&all).context("cannot format JSON")?
                );
            } else {
                print!("{}", tables::render(&IMAGE_HEADERS, &rows));
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// `agent A: removed 2 images (a, b), 3 layers, 12.0 MB freed`.
pub fn prune_line(agent: &str, report: &Value) -> String {
    let removed: Vec<&str> = report["removed_images"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let layers = report["removed_layers"].as_u64().unwrap_or(0);
    let freed = report["freed_bytes"].as_u64().unwrap_or(0) as f64 / 1e6;
    if removed.is_empty() {
        format!("agent {agent}: nothing to prune, {layers} layers, {freed:.1} MB freed")
    } else {
        format!(
            "agent {agent}: removed {} images ({}), {layers} layers, {freed:.1} MB freed",
            removed.len(),
            removed.join(", ")
        )
    }
}

pub fn image_rows(agent: &str, listing: &Value) -> Vec<Vec<String>> {
    array(listing, "images")
        .iter()
        .map(|image| {
            let names: Vec<&str> = image["names"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let id = text(image, "id");
            vec![
                agent.to_string(),
                id.trim_start_matches("sha256:").chars().take(12).collect(),
                names.join(","),
                image["layers"].as_u64().unwrap_or(0).to_string(),
                format!(
                    "{:.1} MB",
                    image["size_bytes"].as_u64().unwrap_or(0) as f64 / 1e6
                ),
                image["containers"]
                    .as_array()
                    .map(|a| a.len())
                    .unwrap_or(0)
                    .to_string(),
            ]
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_reports() {
        let listing = json!({"images": [{"id": format!("sha256:{}", "ab".repeat(32)), "names": ["r:5000/busybox:1"],
            "layers": 2, "size_bytes": 2_500_000, "containers": ["c1"]}]});
        assert_eq!(
            image_rows("a:5051", &listing),
            vec![vec![
                "a:5051".to_string(),
                "abababababab".to_string(),
                "r:5000/busybox:1".to_string(),
                "2".to_string(),
                "2.5 MB".to_string(),
                "1".to_string()
            ]]
        );
        let report =
            json!({"removed_images": ["x"], "removed_layers": 1, "freed_bytes": 1_000_000});
        assert_eq!(
            prune_line("a", &report),
            "agent a: removed 1 images (x), 1 layers, 1.0 MB freed"
        );
    }
}
