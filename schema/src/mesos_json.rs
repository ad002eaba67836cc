//! Reading Mesos' `Resource` JSON (the v1 API's shape), the inverse of
//! [`Resources::to_mesos_json`].

use crate::{DiskInfo, Range, Resource, Resources, ResourcesError, DEFAULT_ROLE};
use serde_json::Value;

impl Resources {
    /// Reads a list of Mesos `Resource` objects; see [`mesos_resources_from_json`].
    pub fn from_mesos_json(v: &Value) -> Result<Resources, ResourcesError> {
        mesos_resources_from_json(v).map_err(|why| ResourcesError::Invalid {
            text: v.to_string(),
            why,
        })
    }
}

/// Reads Mesos' `Resource` JSON list, what [`Resources::to_mesos_json`] writes: `[{"name":
/// "cpus", "type": "SCALAR", "scalar": {"value": 1}, "role": "ops"}]` (the role may also be the
/// last of `reservations`; a volume has `disk.persistence.id` and `disk.volume`). Validated as
/// [`Resources::from_vec`] does; an error names the bad item.
fn mesos_resources_from_json(v: &Value) -> Result<Resources, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("expected a list of resources, not {v}"))?;
    let mut items = Vec::new();
    for r in list {
        let name = r
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("a resource has no name: {r}"))?;
        let role = r
            .get("reservations")
            .and_then(Value::as_array)
            .and_then(|rs| rs.last())
            .and_then(|last| last.get("role"))
            .or_else(|| r.get("role"))
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_ROLE);
        let kind = r.get("type").and_then(Value::as_str).unwrap_or("SCALAR");
        let value = match kind {
            "SCALAR" => crate::Value::Scalar(
                r.pointer("/scalar/value")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| format!("{name:?} has no scalar.value"))?,
            ),
            "RANGES" => {
                let ranges = r
                    .pointer("/ranges/range")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{name:?} has no ranges.range"))?;
                let mut out = Vec::new();
                for range in ranges {
                    let (Some(b), Some(e)) = (
                        range.get("begin").and_then(Value::as_u64),
                        range.get("end").and_then(Value::as_u64),
                    ) else {
                        return Err(format!("{name:?}: a range needs begin and end: {range}"));
                    };
                    out.push(Range::new(b, e));
                }
                crate::Value::Ranges(out)
            }
            "SET" => {
                let set = r
                    .pointer("/set/item")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("{name:?} has no set.item"))?;
                crate::Value::Set(
                    set.iter()
                        .map(|i| {
                            i.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| format!("{name:?}: set items are strings"))
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            other => {
                return Err(format!(
                    "{name:?} has unknown type {other:?} (SCALAR, RANGES or SET)"
                ))
            }
        };
        let disk = match r.get("disk") {
            None | Some(Value::Null) => None,
            Some(d) => {
                let id = d
                    .pointer("/persistence/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{name:?}: disk needs persistence.id"))?;
                let path = d
                    .pointer("/volume/container_path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{name:?}: disk needs volume.container_path"))?;
                let read_only = match d.pointer("/volume/mode").and_then(Value::as_str) {
                    None | Some("RW") => false,
                    Some("RO") => true,
                    Some(other) => {
                        return Err(format!("{name:?}: volume mode {other:?} is not RW or RO"))
                    }
                };
                Some(DiskInfo {
                    persistence_id: id.to_string(),
                    container_path: path.to_string(),
                    read_only,
                })
            }
        };
        items.push(Resource {
            name: name.to_string(),
            role: role.to_string(),
            value,
            disk: disk.map(Box::new),
        });
    }
    Resources::from_vec(items).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_to_mesos_json_writes() {
        let res = Resources::parse(
            "cpus:2;mem(ops):512;ports:[31000-31001];disks:{a,b};disk(ops)[v1:data:ro]:64",
        )
        .unwrap();
        assert_eq!(
            Resources::from_mesos_json(&res.to_mesos_json()).unwrap(),
            res
        );
    }

    #[test]
    fn roles_from_reservations_and_errors_name_the_item() {
        let json = json!([
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 2}, "role": "ops"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 512}, "reservations": [{"type": "DYNAMIC", "role": "ops"}]},
        ]);
        assert_eq!(
            Resources::from_mesos_json(&json).unwrap(),
            Resources::parse("cpus(ops):2;mem(ops):512").unwrap()
        );
        let err = Resources::from_mesos_json(&json!([{"name": "cpus", "type": "TEXT"}]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown type"), "{err}");
        let err = Resources::from_mesos_json(&json!({"name": "cpus"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a list"), "{err}");
        let err = Resources::from_mesos_json(
            &json!([{"name": "cpus", "type": "SCALAR", "scalar": {"value": -1}}]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cpus"), "{err}");
    }
}
