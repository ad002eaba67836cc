//! Mesos' v1 HTTP API JSON (the JSON mapping of `mesos/v1/mesos.proto` and the scheduler's
//! `Call`/`Event`), converted to and from the domain types.
//!
//! Field names are the protos' (`framework_id: {"value": …}`, `task_infos`, `agent_id`), enums
//! are their names (`"TASK_RUNNING"`, `"SOURCE_AGENT"`), bytes are base64, durations are
//! `{"nanoseconds": N}` and times `{"nanoseconds": N}` since the epoch. Readers take a
//! [`serde_json::Value`] and the path of the object in the call (`"accept.operations[0]"`), so
//! that an error names the exact field: `accept.operations[0].launch.task_infos[1].task_id:
//! missing`. Unknown fields are ignored, as a protobuf parser does; fields whose meaning Strata
//! cannot honour (`command.uris`, `health_check`, …) are refused rather than dropped.

use crate::container::{ContainerType, Image, ImageType, Volume, VolumeMode};
use crate::{
    AgentId, AttributeValue, Attributes, CommandInfo, ContainerId, ContainerInfo, ExecutorId,
    ExecutorInfo, ExecutorKind, FrameworkId, FrameworkInfo, MasterInfo, OfferId, Operation,
    Resources, StatusSource, TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid,
};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use std::fmt;

/// A v1 JSON value that cannot be read: `field` is its path in the call or event
/// (`subscribe.framework_info.user`), `why` what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Error {
    pub field: String,
    pub why: String,
}

impl fmt::Display for V1Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.why)
    }
}

impl std::error::Error for V1Error {}

pub type Result<T> = std::result::Result<T, V1Error>;

fn err<T>(field: &str, why: impl Into<String>) -> Result<T> {
    Err(V1Error {
        field: field.to_string(),
        why: why.into(),
    })
}

pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The JSON type of `v`, for messages.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `v` as an object (the message at `path`).
pub fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>> {
    v.as_object().map_or_else(
        || err(path, format!("expected an object, not {}", kind(v))),
        Ok,
    )
}

/// The field `key` of the object `v`, absent when missing or null.
pub fn field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|f| !f.is_null())
}

/// A required field.
pub fn required<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a Value> {
    field(v, key).map_or_else(|| err(&join(path, key), "missing"), Ok)
}

pub fn opt_str<'a>(v: &'a Value, path: &str, key: &str) -> Result<Option<&'a str>> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => err(
            &join(path, key),
            format!("expected a string, not {}", kind(other)),
        ),
    }
}

pub fn req_str<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a str> {
    opt_str(v, path, key)?.map_or_else(|| err(&join(path, key), "missing"), Ok)
}

pub fn opt_bool(v: &Value, path: &str, key: &str) -> Result<Option<bool>> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => err(
            &join(path, key),
            format!("expected true or false, not {}", kind(other)),
        ),
    }
}

/// A finite number (the JSON mapping may also write 64-bit numbers as strings).
pub fn opt_f64(v: &Value, path: &str, key: &str) -> Result<Option<f64>> {
    let x = match field(v, key) {
        None => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(other) => {
            return err(
                &join(path, key),
                format!("expected a number, not {}", kind(other)),
            )
        }
    };
    match x {
        Some(x) if x.is_finite() => Ok(Some(x)),
        _ => err(&join(path, key), "expected a finite number"),
    }
}

pub fn opt_list<'a>(v: &'a Value, path: &str, key: &str) -> Result<&'a [Value]> {
    match field(v, key) {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => err(
            &join(path, key),
            format!("expected a list, not {}", kind(other)),
        ),
    }
}

pub fn string_list(v: &Value, path: &str, key: &str) -> Result<Vec<String>> {
    opt_list(v, path, key)?
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => err(
                &format!("{}[{i}]", join(path, key)),
                format!("expected a string, not {}", kind(other)),
            ),
        })
        .collect()
}

/// Base64 bytes (standard alphabet, padding optional).
pub fn decode_bytes(text: &str, path: &str) -> Result<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed))
        .map_or_else(|e| err(path, format!("not base64: {e}")), Ok)
}

/// Bytes as base64 (standard alphabet, padded), as Mesos writes them.
pub fn encode_bytes(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn opt_bytes(v: &Value, path: &str, key: &str) -> Result<Vec<u8>> {
    match opt_str(v, path, key)? {
        None => Ok(Vec::new()),
        Some(text) => decode_bytes(text, &join(path, key)),
    }
}

/// `{"value": "…"}`: the string of an id message at `path`.
fn id_value<'a>(v: &'a Value, path: &str) -> Result<&'a str> {
    object(v, path)?;
    req_str(v, path, "value")
}

pub fn id_json(value: &str) -> Value {
    json!({ "value": value })
}

macro_rules! id_readers {
    ($($fn_name:ident, $opt_name:ident => $ty:ty;)*) => {
        $(
            /// Reads the id message `{"value": …}` at `path.key` (required).
            pub fn $fn_name(v: &Value, path: &str, key: &str) -> Result<$ty> {
                let at = join(path, key);
                let value = id_value(required(v, path, key)?, &at)?;
                <$ty>::new(value).map_or_else(|e| err(&join(&at, "value"), e.to_string()), Ok)
            }

            /// Reads the id message `{"value": …}` at `path.key`, if it is there.
            pub fn $opt_name(v: &Value, path: &str, key: &str) -> Result<Option<$ty>> {
                match field(v, key) {
                    None => Ok(None),
                    Some(_) => $fn_name(v, path, key).map(Some),
                }
            }
        )*
    };
}

id_readers! {
    framework_id, opt_framework_id => FrameworkId;
    agent_id, opt_agent_id => AgentId;
    task_id, opt_task_id => TaskId;
    offer_id, opt_offer_id => OfferId;
    executor_id, opt_executor_id => ExecutorId;
}

/// Mesos' `Labels`: `{"labels": [{"key": …, "value": …}]}`.
pub fn labels_from_json(v: &Value, path: &str) -> Result<Vec<(String, String)>> {
    object(v, path)?;
    let mut out = Vec::new();
    for (i, label) in opt_list(v, path, "labels")?.iter().enumerate() {
        let at = format!("{path}.labels[{i}]");
        object(label, &at)?;
        let key = req_str(label, &at, "key")?;
        let value = opt_str(label, &at, "value")?.unwrap_or("");
        out.push((key.to_string(), value.to_string()));
    }
    Ok(out)
}

pub fn labels_to_json(labels: &[(String, String)]) -> Value {
    json!({
        "labels": labels
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect::<Vec<_>>()
    })
}

fn opt_labels(v: &Value, path: &str, key: &str) -> Result<Vec<(String, String)>> {
    match field(v, key) {
        None => Ok(Vec::new()),
        Some(labels) => labels_from_json(labels, &join(path, key)),
    }
}

/// Mesos' `Resource` list at `path.key` (absent: none).
fn opt_resources(v: &Value, path: &str, key: &str) -> Result<Resources> {
    match field(v, key) {
        None => Ok(Resources::new()),
        Some(list) => Resources::from_mesos_json(list)
            .map_or_else(|e| err(&join(path, key), e.to_string()), Ok),
    }
}

/// A `DurationInfo` or `TimeInfo` (`{"nanoseconds": N}`) in seconds.
fn opt_nanos_secs(v: &Value, path: &str, key: &str) -> Result<Option<f64>> {
    match field(v, key) {
        None => Ok(None),
        Some(d) => {
            let at = join(path, key);
            object(d, &at)?;
            let nanos = opt_f64(d, &at, "nanoseconds")?
                .map_or_else(|| err(&join(&at, "nanoseconds"), "missing"), Ok)?;
            Ok(Some(nanos / 1e9))
        }
    }
}

/// Seconds as a `DurationInfo` or `TimeInfo`: `{"nanoseconds": N}`.
pub fn nanos_json(secs: f64) -> Value {
    json!({ "nanoseconds": (secs * 1e9).round() as i64 })
}

/// One RecordIO record of the v1 streaming APIs (scheduler, executor and operator SUBSCRIBE):
/// the JSON's length in bytes, a newline, the JSON on one line.
pub fn record(event: &Value) -> Vec<u8> {
    let body = event.to_string();
    let mut out = format!("{}\n", body.len()).into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// The largest record a RecordIO reader accepts (64 MiB): a length past it is refused before
/// anything is allocated for it.
pub const MAX_RECORD_BYTES: usize = 64 << 20;

/// A RecordIO record's length line (without its newline): decimal digits, at most
/// [`MAX_RECORD_BYTES`].
pub fn record_length(line: &[u8]) -> std::result::Result<usize, String> {
    if line.is_empty() || line.len() > 20 || !line.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "a record length is not a decimal number: {:?}",
            String::from_utf8_lossy(&line[..line.len().min(32)])
        ));
    }
    // Twenty digits or fewer, all ASCII: parses unless it overflows.
    let len: u64 = std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(u64::MAX);
    if len > MAX_RECORD_BYTES as u64 {
        return Err(format!(
            "a record of {len} bytes is larger than the limit of {MAX_RECORD_BYTES}"
        ));
    }
    Ok(len as usize)
}

/// The first RecordIO record of `buf` and the bytes it took (its length line and itself), or
/// `None` while `buf` holds no whole record yet; an error for a malformed or oversized length.
pub fn split_record(buf: &[u8]) -> std::result::Result<Option<(&[u8], usize)>, String> {
    let Some(newline) = buf.iter().take(21).position(|&b| b == b'\n') else {
        if buf.len() > 20 {
            return record_length(&buf[..21]).map(|_| None);
        }
        return Ok(None);
    };
    let len = record_length(&buf[..newline])?;
    let start = newline + 1;
    Ok(buf
        .get(start..start + len)
        .map(|record| (record, start + len)))
}

// ---- frameworks ---------------------------------------------------------------------------------

/// Mesos' `FrameworkInfo`. `user` and `name` are required (as in the proto); `roles` (or the
/// legacy `role`) default to `*`; the `PARTITION_AWARE` capability sets `partition_aware`.
pub fn framework_info_from_json(v: &Value, path: &str) -> Result<FrameworkInfo> {
    object(v, path)?;
    let user = req_str(v, path, "user")?.to_string();
    let name = req_str(v, path, "name")?.to_string();
    let mut roles = string_list(v, path, "roles")?;
    if let Some(role) = opt_str(v, path, "role")? {
        if roles.is_empty() {
            roles.push(role.to_string());
        } else if !roles.iter().any(|r| r == role) {
            return err(
                &join(path, "role"),
                format!("{role:?} is not among roles; give roles (MULTI_ROLE) or role, not both"),
            );
        }
    }
    for (i, role) in roles.iter().enumerate() {
        if let Err(why) = crate::validate_role(role) {
            return err(&format!("{}[{i}]", join(path, "roles")), why);
        }
    }
    let failover_timeout_secs = opt_f64(v, path, "failover_timeout")?.unwrap_or(0.0);
    if failover_timeout_secs < 0.0 {
        return err(&join(path, "failover_timeout"), "must not be negative");
    }
    let mut capabilities = Vec::new();
    for (i, capability) in opt_list(v, path, "capabilities")?.iter().enumerate() {
        let at = format!("{}[{i}]", join(path, "capabilities"));
        object(capability, &at)?;
        capabilities.push(req_str(capability, &at, "type")?.to_string());
    }
    let partition_aware = capabilities.iter().any(|c| c == "PARTITION_AWARE");
    Ok(FrameworkInfo {
        id: opt_framework_id(v, path, "id")?,
        name,
        user,
        roles,
        failover_timeout_secs,
        checkpoint: opt_bool(v, path, "checkpoint")?.unwrap_or(false),
        hostname: opt_str(v, path, "hostname")?.unwrap_or("").to_string(),
        partition_aware,
        principal: opt_str(v, path, "principal")?.map(str::to_string),
        webui_url: opt_str(v, path, "webui_url")?.map(str::to_string),
        capabilities,
        labels: opt_labels(v, path, "labels")?,
    })
}

pub fn framework_info_to_json(f: &FrameworkInfo) -> Value {
    let mut o = Map::new();
    if let Some(id) = &f.id {
        o.insert("id".into(), id_json(id.as_str()));
    }
    o.insert("user".into(), json!(f.user));
    o.insert("name".into(), json!(f.name));
    o.insert("roles".into(), json!(f.effective_roles()));
    o.insert("failover_timeout".into(), json!(f.failover_timeout_secs));
    o.insert("checkpoint".into(), json!(f.checkpoint));
    if !f.hostname.is_empty() {
        o.insert("hostname".into(), json!(f.hostname));
    }
    if let Some(principal) = &f.principal {
        o.insert("principal".into(), json!(principal));
    }
    if let Some(url) = &f.webui_url {
        o.insert("webui_url".into(), json!(url));
    }
    let mut capabilities = f.capabilities.clone();
    if f.partition_aware && !capabilities.iter().any(|c| c == "PARTITION_AWARE") {
        capabilities.push("PARTITION_AWARE".into());
    }
    if !capabilities.iter().any(|c| c == "MULTI_ROLE") {
        // Strata always speaks multi-role (`roles`), as a MULTI_ROLE framework does.
        capabilities.push("MULTI_ROLE".into());
    }
    o.insert(
        "capabilities".into(),
        Value::Array(capabilities.iter().map(|c| json!({ "type": c })).collect()),
    );
    if !f.labels.is_empty() {
        o.insert("labels".into(), labels_to_json(&f.labels));
    }
    Value::Object(o)
}

// ---- commands, containers, executors, tasks -----------------------------------------------------

/// Mesos' `CommandInfo`. `shell` defaults to true (as in the proto); `uris` are refused (Strata
/// fetches nothing).
pub fn command_from_json(v: &Value, path: &str) -> Result<CommandInfo> {
    object(v, path)?;
    if !opt_list(v, path, "uris")?.is_empty() {
        return err(
            &join(path, "uris"),
            "fetching URIs is not supported by Strata",
        );
    }
    let mut environment = Vec::new();
    if let Some(env) = field(v, "environment") {
        let at = join(path, "environment");
        object(env, &at)?;
        for (i, var) in opt_list(env, &at, "variables")?.iter().enumerate() {
            let at = format!("{at}.variables[{i}]");
            object(var, &at)?;
            match opt_str(var, &at, "type")? {
                None | Some("VALUE") | Some("UNKNOWN") => {}
                Some(other) => {
                    return err(
                        &join(&at, "type"),
                        format!("{other:?} variables are not supported (only VALUE)"),
                    )
                }
            }
            let name = req_str(var, &at, "name")?;
            let value = opt_str(var, &at, "value")?.unwrap_or("");
            environment.push((name.to_string(), value.to_string()));
        }
    }
    let command = CommandInfo {
        shell: opt_bool(v, path, "shell")?.unwrap_or(true),
        value: opt_str(v, path, "value")?.unwrap_or("").to_string(),
        arguments: string_list(v, path, "arguments")?,
        environment,
        user: opt_str(v, path, "user")?.map(str::to_string),
    };
    Ok(command)
}

pub fn command_to_json(c: &CommandInfo) -> Value {
    let mut o = Map::new();
    o.insert("shell".into(), json!(c.shell));
    o.insert("value".into(), json!(c.value));
    if !c.arguments.is_empty() {
        o.insert("arguments".into(), json!(c.arguments));
    }
    if !c.environment.is_empty() {
        o.insert(
            "environment".into(),
            json!({
                "variables": c.environment.iter()
                    .map(|(name, value)| json!({"name": name, "type": "VALUE", "value": value}))
                    .collect::<Vec<_>>()
            }),
        );
    }
    if let Some(user) = &c.user {
        o.insert("user".into(), json!(user));
    }
    Value::Object(o)
}

/// Mesos' `ContainerInfo` of the MESOS containerizer (`mesos.image` with `docker.name`, or
/// Strata's `OCI` type with `oci.name`; `volumes`), and its `hostname`.
pub fn container_from_json(v: &Value, path: &str) -> Result<(ContainerInfo, Option<String>)> {
    object(v, path)?;
    let kind = match req_str(v, path, "type")? {
        "MESOS" => ContainerType::Mesos,
        "DOCKER" => {
            return err(
                &join(path, "type"),
                "DOCKER containers are not supported: use type MESOS with mesos.image",
            )
        }
        other => {
            return err(
                &join(path, "type"),
                format!("unknown container type {other:?} (MESOS)"),
            )
        }
    };
    let image = match field(v, "mesos").and_then(|m| field(m, "image")) {
        None => None,
        Some(image) => {
            let at = join(path, "mesos.image");
            object(image, &at)?;
            let (image_kind, key) = match req_str(image, &at, "type")? {
                "DOCKER" => (ImageType::Docker, "docker"),
                "OCI" => (ImageType::Oci, "oci"),
                other => {
                    return err(
                        &join(&at, "type"),
                        format!("image type {other:?} is not supported (DOCKER, OCI)"),
                    )
                }
            };
            let inner = required(image, &at, key)?;
            let name = req_str(inner, &join(&at, key), "name")?;
            Some(Image {
                kind: image_kind,
                name: name.to_string(),
            })
        }
    };
    let mut volumes = Vec::new();
    for (i, volume) in opt_list(v, path, "volumes")?.iter().enumerate() {
        let at = format!("{path}.volumes[{i}]");
        object(volume, &at)?;
        if field(volume, "source").is_some() || field(volume, "image").is_some() {
            return err(
                &at,
                "only host_path volumes are supported (no source or image)",
            );
        }
        let mode = match opt_str(volume, &at, "mode")? {
            None | Some("RW") => VolumeMode::Rw,
            Some("RO") => VolumeMode::Ro,
            Some(other) => return err(&join(&at, "mode"), format!("{other:?} is not RW or RO")),
        };
        volumes.push(Volume {
            container_path: req_str(volume, &at, "container_path")?.to_string(),
            host_path: req_str(volume, &at, "host_path")?.to_string(),
            mode,
        });
    }
    let container = ContainerInfo {
        kind,
        image,
        volumes,
    };
    container.validate().or_else(|why| err(path, why))?;
    Ok((container, opt_str(v, path, "hostname")?.map(str::to_string)))
}

pub fn container_to_json(c: &ContainerInfo, hostname: Option<&str>) -> Value {
    let mut o = Map::new();
    o.insert(
        "type".into(),
        json!(match c.kind {
            ContainerType::Mesos => "MESOS",
            ContainerType::Docker => "DOCKER",
        }),
    );
    if let Some(image) = &c.image {
        let image = match image.kind {
            ImageType::Docker => json!({"type": "DOCKER", "docker": {"name": image.name}}),
            ImageType::Oci => json!({"type": "OCI", "oci": {"name": image.name}}),
        };
        o.insert("mesos".into(), json!({ "image": image }));
    }
    if !c.volumes.is_empty() {
        o.insert(
            "volumes".into(),
            Value::Array(
                c.volumes
                    .iter()
                    .map(|v| {
                        json!({
                            "container_path": v.container_path,
                            "host_path": v.host_path,
                            "mode": match v.mode { VolumeMode::Rw => "RW", VolumeMode::Ro => "RO" },
                        })
                    })
                    .collect(),
            ),
        );
    }
    if let Some(hostname) = hostname {
        o.insert("hostname".into(), json!(hostname));
    }
    Value::Object(o)
}

/// Mesos' `ExecutorInfo`: `type` DEFAULT or CUSTOM (absent or UNKNOWN: CUSTOM, as Mesos reads
/// old frameworks), `executor_id`, `name`, `command`, `resources`, `container`, `data`.
pub fn executor_info_from_json(v: &Value, path: &str) -> Result<ExecutorInfo> {
    object(v, path)?;
    let kind = match opt_str(v, path, "type")? {
        None | Some("UNKNOWN") | Some("CUSTOM") => ExecutorKind::Custom,
        Some("DEFAULT") => ExecutorKind::Default,
        Some(other) => {
            return err(
                &join(path, "type"),
                format!("unknown executor type {other:?} (DEFAULT or CUSTOM)"),
            )
        }
    };
    let command = match field(v, "command") {
        Some(c) => command_from_json(c, &join(path, "command"))?,
        None => CommandInfo {
            shell: kind == ExecutorKind::Custom,
            ..CommandInfo::default()
        },
    };
    let container = match field(v, "container") {
        Some(c) => Some(container_from_json(c, &join(path, "container"))?.0),
        None => None,
    };
    let executor = ExecutorInfo {
        kind,
        executor_id: executor_id(v, path, "executor_id")?,
        name: opt_str(v, path, "name")?.unwrap_or("").to_string(),
        command,
        resources: opt_resources(v, path, "resources")?,
        container,
        data: opt_bytes(v, path, "data")?,
    };
    executor.validate().or_else(|why| err(path, why))?;
    Ok(executor)
}

pub fn executor_info_to_json(e: &ExecutorInfo, framework_id: Option<&FrameworkId>) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), json!(e.kind.mesos_name()));
    o.insert("executor_id".into(), id_json(e.executor_id.as_str()));
    if let Some(fw) = framework_id {
        o.insert("framework_id".into(), id_json(fw.as_str()));
    }
    if !e.name.is_empty() {
        o.insert("name".into(), json!(e.name));
    }
    if e.kind == ExecutorKind::Custom || !e.command.value.is_empty() {
        o.insert("command".into(), command_to_json(&e.command));
    }
    o.insert("resources".into(), e.resources.to_mesos_json());
    if let Some(c) = &e.container {
        o.insert("container".into(), container_to_json(c, None));
    }
    if !e.data.is_empty() {
        o.insert("data".into(), json!(encode_bytes(&e.data)));
    }
    Value::Object(o)
}

/// Fields of `TaskInfo` that Strata cannot honour: refused rather than silently dropped.
const UNSUPPORTED_TASK_FIELDS: [&str; 4] =
    ["health_check", "check", "discovery", "max_completion_time"];

/// Mesos' `TaskInfo`: `name`, `task_id`, `agent_id`, `resources`, and a `command` or an
/// `executor`; `container` (its `hostname` is the task's), `data`, `labels`,
/// `kill_policy.grace_period`.
pub fn task_info_from_json(v: &Value, path: &str) -> Result<TaskInfo> {
    object(v, path)?;
    for key in UNSUPPORTED_TASK_FIELDS {
        if field(v, key).is_some() {
            return err(&join(path, key), "is not supported by Strata");
        }
    }
    let (container, hostname) = match field(v, "container") {
        Some(c) => {
            let (container, hostname) = container_from_json(c, &join(path, "container"))?;
            (Some(container), hostname)
        }
        None => (None, None),
    };
    let executor = match field(v, "executor") {
        Some(e) => Some(executor_info_from_json(e, &join(path, "executor"))?),
        None => None,
    };
    let command = match field(v, "command") {
        Some(c) => command_from_json(c, &join(path, "command"))?,
        None if executor.is_some() => CommandInfo::default(),
        // A task with an image may run the image's entrypoint.
        None if container.as_ref().is_some_and(|c| c.image.is_some()) => CommandInfo::default(),
        None => {
            return err(
                &join(path, "command"),
                "missing (a task needs a command or an executor)",
            )
        }
    };
    let kill_grace_period_secs = match field(v, "kill_policy") {
        Some(policy) => {
            let at = join(path, "kill_policy");
            object(policy, &at)?;
            opt_nanos_secs(policy, &at, "grace_period")?
        }
        None => None,
    };
    if kill_grace_period_secs.is_some_and(|g| g < 0.0) {
        return err(
            &join(path, "kill_policy.grace_period"),
            "must not be negative",
        );
    }
    let task = TaskInfo {
        task_id: task_id(v, path, "task_id")?,
        name: req_str(v, path, "name")?.to_string(),
        agent_id: agent_id(v, path, "agent_id")?,
        resources: opt_resources(v, path, "resources")?,
        command,
        kill_grace_period_secs,
        hostname,
        container,
        executor: executor.map(Box::new),
        data: opt_bytes(v, path, "data")?,
        labels: opt_labels(v, path, "labels")?,
    };
    task.validate().or_else(|why| err(path, why))?;
    Ok(task)
}

pub fn task_info_to_json(t: &TaskInfo) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), json!(t.name));
    o.insert("task_id".into(), id_json(t.task_id.as_str()));
    o.insert("agent_id".into(), id_json(t.agent_id.as_str()));
    o.insert("resources".into(), t.resources.to_mesos_json());
    match &t.executor {
        Some(e) => {
            o.insert("executor".into(), executor_info_to_json(e, None));
        }
        None => {
            o.insert("command".into(), command_to_json(&t.command));
        }
    }
    if t.container.is_some() || t.hostname.is_some() {
        let container = t.container.clone().unwrap_or_default();
        o.insert(
            "container".into(),
            container_to_json(&container, t.hostname.as_deref()),
        );
    }
    if let Some(grace) = t.kill_grace_period_secs {
        o.insert(
            "kill_policy".into(),
            json!({ "grace_period": nanos_json(grace) }),
        );
    }
    if !t.data.is_empty() {
        o.insert("data".into(), json!(encode_bytes(&t.data)));
    }
    if !t.labels.is_empty() {
        o.insert("labels".into(), labels_to_json(&t.labels));
    }
    Value::Object(o)
}

// ---- status updates -----------------------------------------------------------------------------

/// Mesos' `TaskStatus` with the fields the domain [`TaskStatus`] does not carry: the executor
/// that sent it, its `data` and `labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusJson {
    pub status: TaskStatus,
    pub executor_id: Option<ExecutorId>,
    pub data: Vec<u8>,
    pub labels: Vec<(String, String)>,
}

impl From<TaskStatus> for StatusJson {
    fn from(status: TaskStatus) -> Self {
        Self {
            status,
            executor_id: None,
            data: Vec::new(),
            labels: Vec::new(),
        }
    }
}

fn state_from_name(name: &str) -> Option<TaskState> {
    TaskState::ALL
        .iter()
        .copied()
        .find(|s| s.mesos_name() == name)
}

fn source_name(source: StatusSource) -> &'static str {
    match source {
        StatusSource::Master => "SOURCE_MASTER",
        StatusSource::Agent => "SOURCE_AGENT",
        StatusSource::Executor => "SOURCE_EXECUTOR",
    }
}

/// Mesos' `TaskStatus`: `task_id` and `state` required; `source` defaults to SOURCE_EXECUTOR
/// (what an executor sends); `uuid` is 16 base64 bytes; `timestamp` seconds (default now);
/// `container_status.container_id`.
pub fn task_status_from_json(v: &Value, path: &str) -> Result<StatusJson> {
    object(v, path)?;
    let state_name = req_str(v, path, "state")?;
    let state = state_from_name(state_name).map_or_else(
        || {
            err(
                &join(path, "state"),
                format!("unknown task state {state_name:?}"),
            )
        },
        Ok,
    )?;
    let source = match opt_str(v, path, "source")? {
        None | Some("SOURCE_EXECUTOR") => StatusSource::Executor,
        Some("SOURCE_AGENT") => StatusSource::Agent,
        Some("SOURCE_MASTER") => StatusSource::Master,
        Some(other) => return err(&join(path, "source"), format!("unknown source {other:?}")),
    };
    let reason = match opt_str(v, path, "reason")? {
        None => None,
        Some(r) if r.starts_with("REASON_") => Some(r.to_string()),
        Some(other) => {
            return err(
                &join(path, "reason"),
                format!("{other:?} is not a reason name (REASON_…)"),
            )
        }
    };
    let uuid = match opt_str(v, path, "uuid")? {
        None => None,
        Some(text) => {
            let at = join(path, "uuid");
            let bytes = decode_bytes(text, &at)?;
            Some(UpdateUuid::from_slice(&bytes).map_or_else(
                || err(&at, format!("expected 16 bytes, not {}", bytes.len())),
                Ok,
            )?)
        }
    };
    let container_id = match field(v, "container_status").and_then(|c| field(c, "container_id")) {
        None => None,
        Some(c) => {
            let at = join(path, "container_status.container_id");
            let value = id_value(c, &at)?;
            Some(ContainerId::new(value).or_else(|e| err(&at, e.to_string()))?)
        }
    };
    let status = TaskStatus {
        task_id: task_id(v, path, "task_id")?,
        state,
        message: opt_str(v, path, "message")?.unwrap_or("").to_string(),
        source,
        reason,
        agent_id: opt_agent_id(v, path, "agent_id")?,
        framework_id: None,
        container_id,
        timestamp: opt_f64(v, path, "timestamp")?.unwrap_or_else(TaskStatus::now),
        uuid,
        exit_code: None,
    };
    Ok(StatusJson {
        status,
        executor_id: opt_executor_id(v, path, "executor_id")?,
        data: opt_bytes(v, path, "data")?,
        labels: opt_labels(v, path, "labels")?,
    })
}

/// Mesos' `TaskStatus` JSON (what an UPDATE event carries).
pub fn task_status_to_json(s: &StatusJson) -> Value {
    let status = &s.status;
    let mut o = Map::new();
    o.insert("task_id".into(), id_json(status.task_id.as_str()));
    o.insert("state".into(), json!(status.state.mesos_name()));
    if !status.message.is_empty() {
        o.insert("message".into(), json!(status.message));
    }
    o.insert("source".into(), json!(source_name(status.source)));
    if let Some(reason) = &status.reason {
        o.insert("reason".into(), json!(reason));
    }
    if let Some(agent) = &status.agent_id {
        o.insert("agent_id".into(), id_json(agent.as_str()));
    }
    if let Some(executor) = &s.executor_id {
        o.insert("executor_id".into(), id_json(executor.as_str()));
    }
    o.insert("timestamp".into(), json!(status.timestamp));
    if let Some(uuid) = &status.uuid {
        o.insert("uuid".into(), json!(encode_bytes(&uuid.0)));
    }
    if !s.data.is_empty() {
        o.insert("data".into(), json!(encode_bytes(&s.data)));
    }
    if !s.labels.is_empty() {
        o.insert("labels".into(), labels_to_json(&s.labels));
    }
    if let Some(container) = &status.container_id {
        o.insert(
            "container_status".into(),
            json!({ "container_id": id_json(container.as_str()) }),
        );
    }
    Value::Object(o)
}

// ---- operations ---------------------------------------------------------------------------------

/// One of `Offer.Operation` in an ACCEPT: LAUNCH (`launch.task_infos`), LAUNCH_GROUP
/// (`launch_group.executor`, `launch_group.task_group.tasks`), RESERVE / UNRESERVE
/// (`…resources`), CREATE / DESTROY (`…volumes`).
pub fn operation_from_json(v: &Value, path: &str) -> Result<Operation> {
    object(v, path)?;
    let kind = req_str(v, path, "type")?;
    let resources = |key: &str, list: &str| -> Result<Resources> {
        let at = join(path, key);
        let inner = required(v, path, key)?;
        object(inner, &at)?;
        let res = opt_resources(inner, &at, list)?;
        if res.is_empty() {
            return err(&join(&at, list), "no resources");
        }
        Ok(res)
    };
    match kind {
        "LAUNCH" => {
            let at = join(path, "launch");
            let launch = required(v, path, "launch")?;
            object(launch, &at)?;
            let tasks = opt_list(launch, &at, "task_infos")?
                .iter()
                .enumerate()
                .map(|(i, t)| task_info_from_json(t, &format!("{at}.task_infos[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            Ok(Operation::Launch(tasks))
        }
        "LAUNCH_GROUP" => {
            let at = join(path, "launch_group");
            let group = required(v, path, "launch_group")?;
            object(group, &at)?;
            let executor =
                executor_info_from_json(required(group, &at, "executor")?, &join(&at, "executor"))?;
            let task_group = required(group, &at, "task_group")?;
            let group_at = join(&at, "task_group");
            object(task_group, &group_at)?;
            let tasks = opt_list(task_group, &group_at, "tasks")?
                .iter()
                .enumerate()
                .map(|(i, t)| task_info_from_json(t, &format!("{group_at}.tasks[{i}]")))
                .collect::<Result<Vec<_>>>()?;
            if tasks.is_empty() {
                return err(&join(&group_at, "tasks"), "a task group needs at least one task");
            }
            Ok(Operation::LaunchGroup {
                executor: Box::new(executor),
                tasks,
            })
        }
        "RESERVE" => Ok(Operation::Reserve(resources("reserve", "resources")?)),
        "UNRESERVE" => Ok(Operation::Unreserve(resources("unreserve", "resources")?)),
        "CREATE" => Ok(Operation::Create(resources("create", "volumes")?)),
        "DESTROY" => Ok(Operation::Destroy(resources("destroy", "volumes")?)),
        other => err(
            &join(path, "type"),
            format!(
                "operation {other:?} is not supported (LAUNCH, LAUNCH_GROUP, RESERVE, UNRESERVE, CREATE, DESTROY)"
            ),
        ),
    }
}

// ---- offers and the master ----------------------------------------------------------------------

/// Mesos' `Attribute` list: `[{"name": …, "type": "TEXT", "text": {"value": …}}, …]`.
pub fn attributes_to_json(attributes: &Attributes) -> Value {
    Value::Array(
        attributes
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("name".into(), json!(a.name));
                let (kind, key, value) = match &a.value {
                    AttributeValue::Scalar(x) => ("SCALAR", "scalar", json!({ "value": x })),
                    AttributeValue::Ranges(ranges) => (
                        "RANGES",
                        "ranges",
                        json!({ "range": ranges.iter().map(|r| json!({"begin": r.begin, "end": r.end})).collect::<Vec<_>>() }),
                    ),
                    AttributeValue::Set(set) => ("SET", "set", json!({ "item": set })),
                    AttributeValue::Text(text) => ("TEXT", "text", json!({ "value": text })),
                };
                o.insert("type".into(), json!(kind));
                o.insert(key.into(), value);
                Value::Object(o)
            })
            .collect(),
    )
}

/// What an offer tells a framework.
#[derive(Debug, Clone, Copy)]
pub struct OfferJson<'a> {
    pub id: &'a OfferId,
    pub framework_id: &'a FrameworkId,
    pub agent_id: &'a AgentId,
    pub hostname: &'a str,
    /// The role the resources are allocated to.
    pub role: &'a str,
    pub resources: &'a Resources,
    pub attributes: &'a Attributes,
    /// The agent's maintenance window: start (seconds since the epoch) and duration (seconds;
    /// `None`: indefinite).
    pub unavailability: Option<(f64, Option<f64>)>,
}

/// Mesos' `Resource` JSON list of `resources` where the part also in `dynamic` (an agent's
/// dynamic reservations and volumes) is labelled a `DYNAMIC` reservation and the rest of the
/// reserved items `STATIC`: a reserved item partly in `dynamic` becomes two items.
pub fn resources_to_json(resources: &Resources, dynamic: &Resources) -> Value {
    if dynamic.is_empty() {
        return resources.to_mesos_json();
    }
    let dynamic_part = resources.saturating_sub(&resources.saturating_sub(dynamic));
    let static_part = resources.saturating_sub(&dynamic_part);
    let mut items = match static_part.to_mesos_json() {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    if let Value::Array(dynamic_items) = dynamic_part.to_mesos_json() {
        for mut item in dynamic_items {
            if let Some(reservations) = item.get_mut("reservations").and_then(Value::as_array_mut) {
                for reservation in reservations {
                    reservation["type"] = json!("DYNAMIC");
                }
            }
            items.push(item);
        }
    }
    Value::Array(items)
}

/// Mesos' `Offer`: `id`, `framework_id`, `agent_id`, `hostname`, `resources` (each with its
/// `allocation_info`), `attributes`, `allocation_info.role`, and `unavailability` when the
/// agent's machine is scheduled for maintenance. Every reservation is labelled `STATIC`; see
/// [`offer_to_json_with_dynamic`].
pub fn offer_to_json(offer: &OfferJson<'_>) -> Value {
    offer_to_json_with_dynamic(offer, &Resources::new())
}

/// [`offer_to_json`] with the offered resources that are in `dynamic` (the agent's dynamic
/// reservations) labelled `DYNAMIC` reservations ([`resources_to_json`]).
pub fn offer_to_json_with_dynamic(offer: &OfferJson<'_>, dynamic: &Resources) -> Value {
    let allocation = json!({ "role": offer.role });
    let resources = match resources_to_json(offer.resources, dynamic) {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|mut r| {
                    if let Some(o) = r.as_object_mut() {
                        o.insert("allocation_info".into(), allocation.clone());
                    }
                    r
                })
                .collect(),
        ),
        other => other,
    };
    let mut o = Map::new();
    o.insert("id".into(), id_json(offer.id.as_str()));
    o.insert("framework_id".into(), id_json(offer.framework_id.as_str()));
    o.insert("agent_id".into(), id_json(offer.agent_id.as_str()));
    o.insert("hostname".into(), json!(offer.hostname));
    o.insert("resources".into(), resources);
    o.insert("attributes".into(), attributes_to_json(offer.attributes));
    o.insert("allocation_info".into(), allocation);
    if let Some((start, duration)) = offer.unavailability {
        let mut u = Map::new();
        u.insert("start".into(), nanos_json(start));
        if let Some(d) = duration {
            u.insert("duration".into(), nanos_json(d));
        }
        o.insert("unavailability".into(), Value::Object(u));
    }
    Value::Object(o)
}

/// Mesos' `MasterInfo`: `id`, `ip` (IPv4 as Mesos' uint32, 0 for IPv6), `port`, `hostname`,
/// `version`, `address {hostname, ip, port}`.
pub fn master_info_to_json(m: &MasterInfo) -> Value {
    let legacy_ip =
        m.ip.parse::<std::net::Ipv4Addr>()
            .map(|ip| u32::from_le_bytes(ip.octets()))
            .unwrap_or(0);
    json!({
        "id": m.id,
        "ip": legacy_ip,
        "port": m.port,
        "hostname": m.hostname,
        "version": m.version,
        "address": { "hostname": m.hostname, "ip": m.ip, "port": m.port },
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn framework() -> FrameworkInfo {
        FrameworkInfo {
            id: Some(FrameworkId::new("m-0001").unwrap()),
            name: "fw".into(),
            user: "root".into(),
            roles: vec!["ops".into(), "web/a".into()],
            failover_timeout_secs: 60.0,
            checkpoint: true,
            hostname: "h1".into(),
            partition_aware: true,
            principal: Some("p".into()),
            webui_url: Some("http://x".into()),
            capabilities: vec!["MULTI_ROLE".into(), "PARTITION_AWARE".into()],
            labels: vec![("k".into(), "v".into())],
        }
    }

    #[test]
    fn framework_info_round_trip_and_mesos_names() {
        let f = framework();
        let j = framework_info_to_json(&f);
        assert_eq!(j["id"]["value"], "m-0001");
        assert_eq!(j["failover_timeout"], 60.0);
        assert_eq!(j["capabilities"][1]["type"], "PARTITION_AWARE");
        assert_eq!(j["labels"]["labels"][0]["key"], "k");
        assert_eq!(framework_info_from_json(&j, "f").unwrap(), f);
        // The legacy single role.
        let old = json!({"user": "u", "name": "n", "role": "ops"});
        assert_eq!(framework_info_from_json(&old, "f").unwrap().roles, ["ops"]);
    }

    #[test]
    fn framework_info_errors_name_the_field() {
        let e = framework_info_from_json(&json!({"name": "n"}), "subscribe.framework_info")
            .unwrap_err();
        assert_eq!(e.to_string(), "subscribe.framework_info.user: missing");
        let e = framework_info_from_json(&json!({"name": "n", "user": 3}), "f").unwrap_err();
        assert_eq!(e.field, "f.user");
        assert!(e.why.contains("a number"), "{e}");
        let e = framework_info_from_json(
            &json!({"name": "n", "user": "u", "id": {"value": "a/b"}}),
            "f",
        )
        .unwrap_err();
        assert_eq!(e.field, "f.id.value");
        let e = framework_info_from_json(
            &json!({"name": "n", "user": "u", "roles": ["ok", " bad"]}),
            "f",
        )
        .unwrap_err();
        assert_eq!(e.field, "f.roles[1]");
        let e = framework_info_from_json(
            &json!({"name": "n", "user": "u", "failover_timeout": -1}),
            "f",
        )
        .unwrap_err();
        assert_eq!(e.field, "f.failover_timeout");
        assert!(framework_info_from_json(&json!([]), "f").is_err());
    }

    fn task() -> TaskInfo {
        let mut command = CommandInfo::argv(vec!["/bin/echo".into(), "hi".into()]);
        command.environment.push(("A".into(), "1".into()));
        command.user = Some("nobody".into());
        TaskInfo {
            task_id: TaskId::new("t1").unwrap(),
            name: "task one".into(),
            agent_id: AgentId::new("m-S1").unwrap(),
            resources: Resources::parse("cpus:0.5;mem(ops):32;ports:[31000-31001]").unwrap(),
            command,
            kill_grace_period_secs: Some(2.5),
            hostname: Some("box".into()),
            container: Some(ContainerInfo::image(ImageType::Docker, "busybox:1")),
            executor: None,
            data: vec![0, 1, 2, 255],
            labels: vec![("a".into(), "b".into())],
        }
    }

    #[test]
    fn task_info_round_trip() {
        let t = task();
        let j = task_info_to_json(&t);
        assert_eq!(j["task_id"]["value"], "t1");
        assert_eq!(j["command"]["shell"], false);
        assert_eq!(j["command"]["environment"]["variables"][0]["name"], "A");
        assert_eq!(
            j["container"]["mesos"]["image"]["docker"]["name"],
            "busybox:1"
        );
        assert_eq!(j["container"]["hostname"], "box");
        assert_eq!(
            j["kill_policy"]["grace_period"]["nanoseconds"],
            2_500_000_000i64
        );
        assert_eq!(j["data"], "AAEC/w==");
        assert_eq!(task_info_from_json(&j, "t").unwrap(), t);

        // With an executor instead of a command.
        let mut t = task();
        t.command = CommandInfo::default();
        t.container = None;
        t.hostname = None;
        t.executor = Some(Box::new(ExecutorInfo {
            kind: ExecutorKind::Custom,
            executor_id: ExecutorId::new("e1").unwrap(),
            name: "exec".into(),
            command: CommandInfo::shell("./executor"),
            resources: Resources::parse("cpus:0.1").unwrap(),
            container: None,
            data: b"x".to_vec(),
        }));
        let j = task_info_to_json(&t);
        assert_eq!(j["executor"]["type"], "CUSTOM");
        assert!(j.get("command").is_none());
        assert_eq!(task_info_from_json(&j, "t").unwrap(), t);
    }

    #[test]
    fn task_info_rejections() {
        let base = task_info_to_json(&task());
        let with = |key: &str, value: Value| {
            let mut j = base.clone();
            j[key] = value;
            task_info_from_json(&j, "launch.task_infos[0]").unwrap_err()
        };
        let e = with("task_id", json!({"value": ""}));
        assert_eq!(e.field, "launch.task_infos[0].task_id.value");
        let e = with(
            "command",
            json!({"value": "x", "uris": [{"value": "http://x"}]}),
        );
        assert_eq!(e.field, "launch.task_infos[0].command.uris");
        let e = with("container", json!({"type": "DOCKER"}));
        assert!(e.why.contains("DOCKER"), "{e}");
        let e = with("health_check", json!({}));
        assert_eq!(e.field, "launch.task_infos[0].health_check");
        let e = with("data", json!("!!!"));
        assert!(e.why.contains("base64"), "{e}");
        let e = with("resources", json!([{"name": "cpus", "type": "TEXT"}]));
        assert_eq!(e.field, "launch.task_infos[0].resources");
        let mut j = base.clone();
        j.as_object_mut().unwrap().remove("command");
        j.as_object_mut().unwrap().remove("container");
        let e = task_info_from_json(&j, "t").unwrap_err();
        assert_eq!(e.field, "t.command");
    }

    #[test]
    fn executor_default_type() {
        let j = json!({"type": "DEFAULT", "executor_id": {"value": "e"}, "resources": []});
        let e = executor_info_from_json(&j, "x").unwrap();
        assert_eq!(e.kind, ExecutorKind::Default);
        assert_eq!(
            executor_info_from_json(&executor_info_to_json(&e, None), "x").unwrap(),
            e
        );
        let bad = json!({"type": "WEIRD", "executor_id": {"value": "e"}});
        assert_eq!(
            executor_info_from_json(&bad, "x").unwrap_err().field,
            "x.type"
        );
        let bad =
            json!({"type": "DEFAULT", "executor_id": {"value": "e"}, "command": {"value": "x"}});
        assert!(executor_info_from_json(&bad, "x")
            .unwrap_err()
            .why
            .contains("DEFAULT"));
    }

    #[test]
    fn task_status_round_trip() {
        let s = StatusJson {
            status: TaskStatus {
                task_id: TaskId::new("t1").unwrap(),
                state: TaskState::Running,
                message: "up".into(),
                source: StatusSource::Agent,
                reason: Some("REASON_COMMAND_EXECUTOR_FAILED".into()),
                agent_id: Some(AgentId::new("m-S1").unwrap()),
                framework_id: None,
                container_id: Some(ContainerId::new("c1").unwrap()),
                timestamp: 1234.5,
                uuid: Some(UpdateUuid([7; 16])),
                exit_code: None,
            },
            executor_id: Some(ExecutorId::new("e1").unwrap()),
            data: b"hello".to_vec(),
            labels: vec![("k".into(), "v".into())],
        };
        let j = task_status_to_json(&s);
        assert_eq!(j["state"], "TASK_RUNNING");
        assert_eq!(j["source"], "SOURCE_AGENT");
        assert_eq!(j["uuid"], encode_bytes(&[7; 16]));
        assert_eq!(j["data"], "aGVsbG8=");
        assert_eq!(task_status_from_json(&j, "s").unwrap(), s);

        let e = task_status_from_json(&json!({"task_id": {"value": "t"}, "state": "RUNNING"}), "s")
            .unwrap_err();
        assert_eq!(e.field, "s.state");
        let e = task_status_from_json(
            &json!({"task_id": {"value": "t"}, "state": "TASK_RUNNING", "uuid": "AAAA"}),
            "s",
        )
        .unwrap_err();
        assert!(e.why.contains("16 bytes"), "{e}");
    }

    #[test]
    fn operations() {
        let launch =
            json!({"type": "LAUNCH", "launch": {"task_infos": [task_info_to_json(&task())]}});
        assert_eq!(
            operation_from_json(&launch, "o").unwrap(),
            Operation::Launch(vec![task()])
        );
        let reserve = json!({"type": "RESERVE", "reserve": {"resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}, "reservations": [{"type": "DYNAMIC", "role": "ops"}]}
        ]}});
        assert_eq!(
            operation_from_json(&reserve, "o").unwrap(),
            Operation::Reserve(Resources::parse("cpus(ops):1").unwrap())
        );
        let create = json!({"type": "CREATE", "create": {"volumes": Resources::parse("disk(ops)[v:data]:8").unwrap().to_mesos_json()}});
        assert!(matches!(
            operation_from_json(&create, "o").unwrap(),
            Operation::Create(_)
        ));
        let group = json!({"type": "LAUNCH_GROUP", "launch_group": {
            "executor": {"type": "DEFAULT", "executor_id": {"value": "e"}},
            "task_group": {"tasks": [task_info_to_json(&task())]}}});
        assert!(matches!(
            operation_from_json(&group, "o").unwrap(),
            Operation::LaunchGroup { .. }
        ));
        let e = operation_from_json(&json!({"type": "GROW_VOLUME"}), "accept.operations[2]")
            .unwrap_err();
        assert_eq!(e.field, "accept.operations[2].type");
        assert!(e.why.contains("not supported"), "{e}");
        let e = operation_from_json(&json!({"type": "LAUNCH"}), "o").unwrap_err();
        assert_eq!(e.to_string(), "o.launch: missing");
        let e = operation_from_json(
            &json!({"type": "UNRESERVE", "unreserve": {"resources": []}}),
            "o",
        )
        .unwrap_err();
        assert_eq!(e.field, "o.unreserve.resources");
    }

    #[test]
    fn offer_and_master_json() {
        let id = OfferId::new("m-O1").unwrap();
        let fw = FrameworkId::new("m-0001").unwrap();
        let agent = AgentId::new("m-S1").unwrap();
        let resources = Resources::parse("cpus:2").unwrap();
        let attributes = Attributes::parse("rack:a;u:1").unwrap();
        let j = offer_to_json(&OfferJson {
            id: &id,
            framework_id: &fw,
            agent_id: &agent,
            hostname: "h",
            role: "*",
            resources: &resources,
            attributes: &attributes,
            unavailability: Some((10.0, None)),
        });
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "agent_id",
                "allocation_info",
                "attributes",
                "framework_id",
                "hostname",
                "id",
                "resources",
                "unavailability"
            ]
        );
        assert_eq!(j["resources"][0]["allocation_info"]["role"], "*");
        assert_eq!(j["attributes"][0]["text"]["value"], "a");
        assert_eq!(j["attributes"][1]["scalar"]["value"], 1.0);
        assert_eq!(
            j["unavailability"]["start"]["nanoseconds"],
            10_000_000_000i64
        );
        let m = master_info_to_json(&MasterInfo {
            id: "x".into(),
            hostname: "h".into(),
            ip: "10.0.0.1".into(),
            port: 5050,
            version: "1".into(),
        });
        assert_eq!(m["ip"], 16777226);
        assert_eq!(m["address"]["ip"], "10.0.0.1");
    }

    #[test]
    fn dynamic_reservations_are_labelled() {
        let offered =
            Resources::parse("cpus:1;cpus(ops):3;disk(ops)[v:data]:8;mem(ops):64").unwrap();
        let dynamic = Resources::parse("cpus(ops):2;disk(ops)[v:data]:8").unwrap();
        let j = resources_to_json(&offered, &dynamic);
        let kinds: Vec<(String, String, f64)> = j
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_string(),
                    r["reservations"][0]["type"]
                        .as_str()
                        .unwrap_or("-")
                        .to_string(),
                    r["scalar"]["value"].as_f64().unwrap(),
                )
            })
            .collect();
        let mut kinds = kinds;
        kinds.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(
            kinds,
            [
                ("cpus".to_string(), "-".to_string(), 1.0),
                ("cpus".to_string(), "DYNAMIC".to_string(), 2.0),
                ("cpus".to_string(), "STATIC".to_string(), 1.0),
                ("disk".to_string(), "DYNAMIC".to_string(), 8.0),
                ("mem".to_string(), "STATIC".to_string(), 64.0),
            ]
        );
        // Read back, the split items add up again.
        assert_eq!(Resources::from_mesos_json(&j).unwrap(), offered);
        assert_eq!(
            resources_to_json(&offered, &Resources::new()),
            offered.to_mesos_json()
        );
    }

    #[test]
    fn labels_and_bytes() {
        let e = labels_from_json(&json!({"labels": [{"value": "v"}]}), "l").unwrap_err();
        assert_eq!(e.to_string(), "l.labels[0].key: missing");
        assert_eq!(decode_bytes("aGVsbG8", "d").unwrap(), b"hello");
        assert_eq!(decode_bytes("aGVsbG8=", "d").unwrap(), b"hello");
        assert!(decode_bytes("***", "d").is_err());
    }

    #[test]
    fn records_split_and_bad_lengths_are_refused() {
        let event = json!({"type": "HEARTBEAT"});
        let mut stream = record(&event);
        stream.extend_from_slice(b"2\n{}");
        let (first, taken) = split_record(&stream).unwrap().unwrap();
        assert_eq!(first, event.to_string().as_bytes());
        assert_eq!(
            split_record(&stream[taken..]).unwrap(),
            Some((&b"{}"[..], 4))
        );
        // Not yet whole: more bytes needed.
        assert_eq!(split_record(b"10\n{}").unwrap(), None);
        assert_eq!(split_record(b"123").unwrap(), None);
        // Malformed or too large lengths are refused before anything is allocated.
        for bad in [
            &b"x\n"[..],
            b"\n",
            b"-1\n",
            b"1 \n",
            b"999999999999999999999\n",
        ] {
            assert!(split_record(bad).is_err(), "{bad:?}");
        }
        let err = split_record(b"18446744073709551615\n").unwrap_err();
        assert!(err.contains("larger than the limit"), "{err}");
        assert!(split_record(&[b'1'; 40]).is_err());
        assert_eq!(record_length(b"67108864"), Ok(MAX_RECORD_BYTES));
        assert!(record_length(b"67108865").is_err());
    }
}
