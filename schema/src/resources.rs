//! Resources in Mesos' model: named scalars (cpus, mem and disk in MB, gpus), ranges (ports) and
//! sets, each optionally reserved for a role.
//!
//! A [`Resources`] is always normalized:
//! - at most one [`Resource`] per (name, role, disk info), sorted by (name, role, disk info);
//! - no zero scalars, empty range lists or empty sets;
//! - ranges sorted and coalesced (`[1-3],[4-5]` is `[1-5]`);
//! - scalars in Mesos' fixed-point form: rounded to 0.001 after parsing and after every operation,
//!   so `0.1 + 0.2 == 0.3` and [`Resources::contains`] has no float drift;
//! - one value type per name, across roles (`ports:5;ports:[1-2]` is rejected).
//!
//! [`Resources::parse`], [`Resources::from_vec`] and deserialization are the only ways in, and
//! they validate. The one way to break "one type per name" is [`Resources::add`] of two values
//! that each pass validation but disagree on the type of a custom name; as Mesos does, `add` then
//! keeps both side by side (ordered scalar, ranges, set) rather than losing either.
//!
//! # Persistent volumes
//!
//! A persistent volume is a `disk` scalar reserved for a role that carries a [`DiskInfo`]: its
//! persistence id and where it is mounted in a task's sandbox. In the `--resources` syntax it is
//! `disk(ROLE)[PERSISTENCE_ID:CONTAINER_PATH]:SIZE` (Mesos' text form), with `:ro` after the path
//! for a read-only mount: `disk(ops)[v1:data]:64`, `disk(ops)[v1:data:ro]:64`.
//!
//! As in Mesos, a volume is a unit of its own: it never merges with plain disk or with another
//! volume (items differ by their whole [`DiskInfo`]), and it is indivisible: it covers only
//! itself at its full size, and subtracting it removes all of it or nothing (a smaller amount of
//! the same volume leaves it whole). Adding a volume that is already there changes nothing: it
//! is the same volume (were the sizes to differ, the larger is kept).

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path};
use std::str::FromStr;

/// The role of unreserved resources.
pub const DEFAULT_ROLE: &str = "*";

/// The largest scalar one resource may hold (1e12, e.g. an exabyte of `mem` in MB). Above it the
/// fixed-point arithmetic could no longer be exact.
pub const MAX_SCALAR: f64 = 1e12;

/// Scalars are kept as multiples of 1/SCALE (Mesos: three decimal places).
const SCALE: f64 = 1000.0;

/// Names that have one meaning everywhere, and the only value type they may take.
const WELL_KNOWN: &[(&str, Kind)] = &[
    ("cpus", Kind::Scalar),
    ("disk", Kind::Scalar),
    ("gpus", Kind::Scalar),
    ("mem", Kind::Scalar),
    ("ports", Kind::Ranges),
];

/// The separator Mesos prints between ranges and between set items in `/state` JSON.
pub(crate) const JSON_SEPARATOR: &str = ", ";

/// An inclusive range of integers, e.g. ports `[31000-32000]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Range {
    pub begin: u64,
    pub end: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Scalar(f64),
    /// Sorted and coalesced.
    Ranges(Vec<Range>),
    Set(BTreeSet<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub name: String,
    /// `*` when unreserved.
    pub role: String,
    pub value: Value,
    /// Set on persistent volumes only (a reserved `disk` scalar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: most resources have none, and every `Resource` stays small.
    pub disk: Option<Box<DiskInfo>>,
}

/// Mesos' `Resource.disk` of a persistent volume: `disk.persistence.id` and
/// `disk.volume.container_path` / `mode`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Unique among the volumes of an agent: ASCII letters, digits and `- _ .`, at most
    /// [`MAX_PERSISTENCE_ID_LEN`] bytes, not `.` or `..`.
    pub persistence_id: String,
    /// Where the volume appears in a task, relative to its sandbox; no `..` component.
    pub container_path: String,
    /// Mounted read-only (Mesos' `mode: RO`).
    #[serde(default)]
    pub read_only: bool,
}

/// The longest persistence id accepted (it becomes a directory name).
pub const MAX_PERSISTENCE_ID_LEN: usize = 200;

/// The longest volume container path accepted.
pub const MAX_CONTAINER_PATH_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourcesError {
    #[error("invalid resource {text:?}: {why}")]
    Invalid { text: String, why: String },
}

/// A normalized bag of resources; see the module documentation for the invariants.
///
/// Deserialization goes through [`Resources::from_vec`], so it validates and normalizes too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawResources")]
pub struct Resources {
    items: Vec<Resource>,
}

/// The serialized shape of [`Resources`], before validation.
#[derive(Deserialize)]
struct RawResources {
    items: Vec<Resource>,
}

impl TryFrom<RawResources> for Resources {
    type Error = ResourcesError;

    fn try_from(raw: RawResources) -> Result<Self, Self::Error> {
        Resources::from_vec(raw.items)
    }
}

/// The type of a [`Value`]; its order is the order of same-named items of different types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Scalar,
    Ranges,
    Set,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Scalar(_) => Kind::Scalar,
            Value::Ranges(_) => Kind::Ranges,
            Value::Set(_) => Kind::Set,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Scalar => "a scalar",
            Kind::Ranges => "ranges",
            Kind::Set => "a set",
        }
    }
}

impl Range {
    /// The inclusive range `[begin-end]`.
    pub fn new(begin: u64, end: u64) -> Range {
        Range { begin, end }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.begin, self.end)
    }
}

/// Prints the value in the `--resources` syntax: `4`, `0.5`, `[1-3,7-9]`, `{a,b}`.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(x) => f.write_str(&format_scalar(*x)),
            Value::Ranges(ranges) => f.write_str(&format_ranges(ranges, ",")),
            Value::Set(set) => f.write_str(&format_set(set, ",")),
        }
    }
}

impl Resources {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses Mesos' `--resources` syntax: `;`-separated `name(role):value` items, the role
    /// optional, e.g. `cpus:4;mem(ops):2048;ports:[31000-32000,40000-40010];disks:{a,b}`.
    /// A persistent volume is `disk(role)[id:container_path]:size`, or
    /// `disk(role)[id:container_path:ro]:size` when read-only (see the module documentation).
    ///
    /// A value is a number (scalar), `[a-b,c-d]` (ranges) or `{x,y}` (set). Whitespace around
    /// tokens and empty items (a trailing `;`) are tolerated; repeated items of one name and role
    /// add up.
    pub fn parse(text: &str) -> Result<Self, ResourcesError> {
        let mut out = Resources::new();
        for token in text.split(';') {
            let token = token.trim();
            if token.is_empty() {
                continue;
            }
            let invalid = |why: String| ResourcesError::Invalid {
                text: token.to_string(),
                why,
            };
            let (head, disk, value) = split_item(token).map_err(invalid)?;
            let (name, role) = parse_head(head.trim()).map_err(invalid)?;
            let disk = disk.map(parse_disk).transpose().map_err(invalid)?;
            let value = parse_value(value.trim()).map_err(invalid)?;
            let resource = validate(Resource {
                name,
                role,
                value,
                disk: disk.map(Box::new),
            })
            .map_err(invalid)?;
            out.check_kind(&resource).map_err(invalid)?;
            out.add_one(resource);
        }
        Ok(out)
    }

    /// Validates every resource as [`Resources::parse`] does, then normalizes (summing items of
    /// the same name and role).
    pub fn from_vec(items: Vec<Resource>) -> Result<Self, ResourcesError> {
        let mut out = Resources::new();
        for item in items {
            let text = render_raw(&item);
            let invalid = |why: String| ResourcesError::Invalid {
                text: text.clone(),
                why,
            };
            let resource = validate(item).map_err(invalid)?;
            out.check_kind(&resource).map_err(invalid)?;
            out.add_one(resource);
        }
        Ok(out)
    }

    /// An unreserved scalar, e.g. `Resources::scalar_resource("cpus", 4.0)`. The name is taken as
    /// given; a value that is negative, not finite, above [`MAX_SCALAR`] or that rounds to zero
    /// gives an empty `Resources` (use [`Resources::from_vec`] to get an error instead).
    pub fn scalar_resource(name: &str, value: f64) -> Resources {
        if !(0.0..=MAX_SCALAR).contains(&value) {
            return Resources::new();
        }
        Resources::single(name, Value::Scalar(canonical(value)))
    }

    /// Unreserved ranges, e.g. `Resources::ranges_resource("ports", vec![Range::new(31000,
    /// 32000)])`. The name is taken as given; ranges whose begin is above their end are dropped,
    /// the rest coalesced.
    pub fn ranges_resource(name: &str, ranges: Vec<Range>) -> Resources {
        let ranges = coalesce(ranges.into_iter().filter(|r| r.begin <= r.end).collect());
        Resources::single(name, Value::Ranges(ranges))
    }

    /// An unreserved set, e.g. `Resources::set_resource("disks", ["a", "b"])`. The name and items
    /// are taken as given; empty items are dropped.
    pub fn set_resource<I, S>(name: &str, items: I) -> Resources
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let set = items
            .into_iter()
            .map(Into::into)
            .filter(|s: &String| !s.is_empty())
            .collect();
        Resources::single(name, Value::Set(set))
    }

    fn single(name: &str, value: Value) -> Resources {
        let mut out = Resources::new();
        out.add_one(Resource {
            name: name.to_string(),
            role: DEFAULT_ROLE.to_string(),
            value,
            disk: None,
        });
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.items.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The number of (name, role) items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// The items, sorted by (name, role).
    pub fn as_slice(&self) -> &[Resource] {
        &self.items
    }

    /// Adds `other` in: scalars sum, ranges and sets unite, per (name, role, disk info); a
    /// persistent volume already here stays as it is.
    pub fn add(&mut self, other: &Resources) {
        for resource in &other.items {
            self.add_one(resource.clone());
        }
    }

    /// Whether every (name, role, disk info) of `other` is covered here: scalar at least as
    /// large, ranges and sets a superset; a persistent volume only by itself at the same size.
    pub fn contains(&self, other: &Resources) -> bool {
        other
            .items
            .iter()
            .all(|theirs| match self.position(theirs) {
                Ok(i) => self.items.get(i).is_some_and(|ours| {
                    if ours.is_volume() {
                        to_milli_value(&ours.value) == to_milli_value(&theirs.value)
                    } else {
                        covers(&ours.value, &theirs.value)
                    }
                }),
                Err(_) => false,
            })
    }

    /// The persistent volumes, with their disk info, in order.
    pub fn volumes(&self) -> impl Iterator<Item = (&Resource, &DiskInfo)> {
        self.items
            .iter()
            .filter_map(|r| r.disk.as_deref().map(|disk| (r, disk)))
    }

    /// Everything but the persistent volumes.
    pub fn without_volumes(&self) -> Resources {
        let items = self
            .items
            .iter()
            .filter(|r| !r.is_volume())
            .cloned()
            .collect();
        Resources { items }
    }

    /// `self - other` when `self` contains `other`, `None` otherwise.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        self.contains(other).then(|| self.saturating_sub(other))
    }

    /// Subtracts what can be subtracted: scalars clamp at zero, ranges and sets lose the
    /// elements `other` has; what `other` has and `self` lacks is ignored.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        let mut items = Vec::with_capacity(self.items.len());
        for ours in &self.items {
            let value = match other.position(ours) {
                Ok(i) => match other.items.get(i) {
                    // A volume goes whole or not at all.
                    Some(theirs) if ours.is_volume() => {
                        if covers(&theirs.value, &ours.value) {
                            Value::Scalar(0.0)
                        } else {
                            ours.value.clone()
                        }
                    }
                    Some(theirs) => difference(&ours.value, &theirs.value),
                    None => ours.value.clone(),
                },
                Err(_) => ours.value.clone(),
            };
            if !is_zero(&value) {
                items.push(Resource {
                    name: ours.name.clone(),
                    role: ours.role.clone(),
                    value,
                    disk: ours.disk.clone(),
                });
            }
        }
        Resources { items }
    }

    /// The scalar `name` summed over roles; 0.0 when absent.
    pub fn scalar(&self, name: &str) -> f64 {
        let milli = self
            .named(name)
            .filter_map(|r| match r.value {
                Value::Scalar(x) => Some(to_milli(x)),
                _ => None,
            })
            .fold(0i64, i64::saturating_add);
        from_milli(milli)
    }

    pub fn cpus(&self) -> f64 {
        self.scalar("cpus")
    }

    pub fn mem(&self) -> f64 {
        self.scalar("mem")
    }

    pub fn disk(&self) -> f64 {
        self.scalar("disk")
    }

    pub fn gpus(&self) -> f64 {
        self.scalar("gpus")
    }

    /// The ranges `name`, merged over roles; empty when absent.
    pub fn ranges(&self, name: &str) -> Vec<Range> {
        let all = self
            .named(name)
            .filter_map(|r| match &r.value {
                Value::Ranges(ranges) => Some(ranges.iter().copied()),
                _ => None,
            })
            .flatten()
            .collect();
        coalesce(all)
    }

    /// The set `name`, merged over roles; empty when absent.
    pub fn set(&self, name: &str) -> BTreeSet<String> {
        self.named(name)
            .filter_map(|r| match &r.value {
                Value::Set(set) => Some(set.iter().cloned()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// The distinct resource names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.items.iter().map(|r| r.name.as_str()).collect();
        names.dedup();
        names
    }

    /// Only the unreserved resources (role `*`).
    pub fn unreserved(&self) -> Resources {
        self.reserved(DEFAULT_ROLE)
    }

    /// Only the resources of exactly `role` (`*` gives the unreserved ones).
    pub fn reserved(&self, role: &str) -> Resources {
        let items = self
            .items
            .iter()
            .filter(|r| r.role == role)
            .cloned()
            .collect();
        Resources { items }
    }

    /// The Mesos `/state` JSON shape, summed over roles: `{"cpus":4.0,"disk":0.0,"gpus":0.0,
    /// "mem":8192.0,"ports":"[31000-32000, 40000-40010]"}`. cpus, mem, disk and gpus are always
    /// there; ranges and sets are strings as Mesos prints them.
    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for name in ["cpus", "mem", "disk", "gpus"] {
            object.insert(name.to_string(), serde_json::Value::from(0.0));
        }
        for name in self.names() {
            let Some(first) = self.named(name).next() else {
                continue;
            };
            let value = match first.value {
                Value::Scalar(_) => serde_json::Value::from(self.scalar(name)),
                Value::Ranges(_) => {
                    serde_json::Value::from(format_ranges(&self.ranges(name), JSON_SEPARATOR))
                }
                Value::Set(_) => {
                    serde_json::Value::from(format_set(&self.set(name), JSON_SEPARATOR))
                }
            };
            object.insert(name.to_string(), value);
        }
        serde_json::Value::Object(object)
    }

    /// [`Resources::to_json`] as a borrowing [`Serialize`]: the same object (keys in order), written
    /// straight to a serializer without building a `serde_json::Value`.
    pub fn json(&self) -> ResourcesJson<'_> {
        ResourcesJson(self)
    }

    /// Mesos' `Resource` JSON of every item, as in an offer or a task's `resources`: see
    /// [`Resource::to_mesos_json`].
    pub fn to_mesos_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.items.iter().map(Resource::to_mesos_json).collect())
    }

    /// The items named `name`, over all roles.
    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        let start = self.items.partition_point(|r| r.name.as_str() < name);
        self.items[start..]
            .iter()
            .take_while(move |r| r.name == name)
    }

    /// Where the item with the key of `resource` is, or would be inserted.
    fn position(&self, resource: &Resource) -> Result<usize, usize> {
        self.items
            .binary_search_by(|probe| compare_keys(probe, resource))
    }

    /// Errors when `resource` has another type than what this bag holds under its name.
    fn check_kind(&self, resource: &Resource) -> Result<(), String> {
        let kind = Kind::of(&resource.value);
        match self
            .named(&resource.name)
            .map(|r| Kind::of(&r.value))
            .find(|k| *k != kind)
        {
            Some(existing) => Err(format!(
                "{:?} is {} elsewhere and {} here",
                resource.name,
                existing.describe(),
                kind.describe()
            )),
            None => Ok(()),
        }
    }

    /// Adds one valid, canonical resource, keeping the invariants.
    fn add_one(&mut self, resource: Resource) {
        if is_zero(&resource.value) {
            return;
        }
        match self.position(&resource) {
            Ok(i) => {
                if let Some(ours) = self.items.get_mut(i) {
                    ours.value = if ours.is_volume() {
                        larger(&ours.value, &resource.value)
                    } else {
                        sum(&ours.value, &resource.value)
                    };
                }
            }
            Err(i) => self.items.insert(i, resource),
        }
    }
}

/// Prints the `--resources` syntax that [`Resources::parse`] reads back:
/// `cpus:4;cpus(ops):0.5;mem:8192;ports:[31000-32000]`.
/// What [`Resources::json`] returns.
#[derive(Debug, Clone, Copy)]
pub struct ResourcesJson<'a>(&'a Resources);

/// One value of [`ResourcesJson`]: a scalar, or ranges and sets as Mesos prints them.
enum JsonEntry {
    Scalar(f64),
    Text(String),
}

impl Serialize for JsonEntry {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            JsonEntry::Scalar(x) => serializer.serialize_f64(*x),
            JsonEntry::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl Serialize for ResourcesJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        // One pass over the items, which are sorted by name: each run of one name is what
        // `scalar`, `ranges` or `set` would gather for it.
        let items = &self.0.items;
        let mut entries: Vec<(&str, JsonEntry)> = Vec::with_capacity(items.len() + 4);
        let mut start = 0;
        while let Some(first) = items.get(start) {
            let name = first.name.as_str();
            let end = start + items[start..].iter().take_while(|r| r.name == name).count();
            let run = &items[start..end];
            let value = match first.value {
                Value::Scalar(_) => JsonEntry::Scalar(from_milli(
                    run.iter()
                        .filter_map(|r| to_milli_value(&r.value))
                        .fold(0i64, i64::saturating_add),
                )),
                Value::Ranges(_) => {
                    let all = run
                        .iter()
                        .filter_map(|r| match &r.value {
                            Value::Ranges(ranges) => Some(ranges.iter().copied()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    JsonEntry::Text(format_ranges(&coalesce(all), JSON_SEPARATOR))
                }
                Value::Set(_) => {
                    let set: BTreeSet<String> = run
                        .iter()
                        .filter_map(|r| match &r.value {
                            Value::Set(set) => Some(set.iter().cloned()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    JsonEntry::Text(format_set(&set, JSON_SEPARATOR))
                }
            };
            entries.push((name, value));
            start = end;
        }
        for name in ["cpus", "mem", "disk", "gpus"] {
            if !entries.iter().any(|(n, _)| *n == name) {
                entries.push((name, JsonEntry::Scalar(0.0)));
            }
        }
        // `to_json`'s object keeps its keys sorted.
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (name, value) in &entries {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, resource) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            write!(f, "{resource}")?;
        }
        Ok(())
    }
}

/// One item in the `--resources` syntax: `cpus(ops):0.5`, `disk(ops)[v1:data]:64`.
impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if self.role != DEFAULT_ROLE {
            write!(f, "({})", self.role)?;
        }
        if let Some(disk) = &self.disk {
            write!(f, "{disk}")?;
        }
        write!(f, ":{}", self.value)
    }
}

/// `[id:container_path]`, or `[id:container_path:ro]` when read-only.
impl fmt::Display for DiskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}:{}", self.persistence_id, self.container_path)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        f.write_str("]")
    }
}

impl Resource {
    /// Whether this is a persistent volume (it carries a [`DiskInfo`]).
    pub fn is_volume(&self) -> bool {
        self.disk.is_some()
    }

    /// Mesos' `Resource` JSON: `{"name":"cpus","type":"SCALAR","scalar":{"value":4.0},
    /// "role":"*"}`; a reserved item adds `"reservations":[{"type":"STATIC","role":ROLE}]` (Strata
    /// has no dynamic reservations), a volume `"disk":{"persistence":{"id":ID},"volume":
    /// {"container_path":PATH,"mode":"RW"|"RO"}}`. Ranges are `{"range":[{"begin":..,"end":..}]}`,
    /// sets `{"item":[..]}`.
    pub fn to_mesos_json(&self) -> serde_json::Value {
        use serde_json::json;
        let mut object = serde_json::Map::new();
        object.insert("name".into(), json!(self.name));
        let (kind, key, value) = match &self.value {
            Value::Scalar(x) => ("SCALAR", "scalar", json!({ "value": x })),
            Value::Ranges(ranges) => (
                "RANGES",
                "ranges",
                json!({ "range": ranges.iter().map(|r| json!({"begin": r.begin, "end": r.end})).collect::<Vec<_>>() }),
            ),
            Value::Set(set) => ("SET", "set", json!({ "item": set })),
        };
        object.insert("type".into(), json!(kind));
        object.insert(key.into(), value);
        object.insert("role".into(), json!(self.role));
        if self.role != DEFAULT_ROLE {
            object.insert(
                "reservations".into(),
                json!([{ "type": "STATIC", "role": self.role }]),
            );
        }
        if let Some(disk) = &self.disk {
            object.insert(
                "disk".into(),
                json!({
                    "persistence": { "id": disk.persistence_id },
                    "volume": {
                        "container_path": disk.container_path,
                        "mode": if disk.read_only { "RO" } else { "RW" },
                    },
                }),
            );
        }
        serde_json::Value::Object(object)
    }
}

impl FromStr for Resources {
    type Err = ResourcesError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Resources::parse(text)
    }
}

impl<'a> IntoIterator for &'a Resources {
    type Item = &'a Resource;
    type IntoIter = std::slice::Iter<'a, Resource>;

    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl std::ops::AddAssign<&Resources> for Resources {
    fn add_assign(&mut self, other: &Resources) {
        Resources::add(self, other);
    }
}

impl std::ops::AddAssign for Resources {
    fn add_assign(&mut self, other: Resources) {
        Resources::add(self, &other);
    }
}

impl std::ops::Add<&Resources> for &Resources {
    type Output = Resources;

    fn add(self, other: &Resources) -> Resources {
        let mut out = self.clone();
        Resources::add(&mut out, other);
        out
    }
}

impl std::ops::Add for Resources {
    type Output = Resources;

    fn add(mut self, other: Resources) -> Resources {
        Resources::add(&mut self, &other);
        self
    }
}

/// Saturating, like [`Resources::saturating_sub`].
impl std::ops::SubAssign<&Resources> for Resources {
    fn sub_assign(&mut self, other: &Resources) {
        *self = self.saturating_sub(other);
    }
}

/// Saturating, like [`Resources::saturating_sub`].
impl std::ops::SubAssign for Resources {
    fn sub_assign(&mut self, other: Resources) {
        *self = self.saturating_sub(&other);
    }
}

/// Saturating, like [`Resources::saturating_sub`].
impl std::ops::Sub<&Resources> for &Resources {
    type Output = Resources;

    fn sub(self, other: &Resources) -> Resources {
        self.saturating_sub(other)
    }
}

/// Saturating, like [`Resources::saturating_sub`].
impl std::ops::Sub for Resources {
    type Output = Resources;

    fn sub(self, other: Resources) -> Resources {
        self.saturating_sub(&other)
    }
}

fn compare_keys(a: &Resource, b: &Resource) -> Ordering {
    (
        a.name.as_str(),
        a.role.as_str(),
        &a.disk,
        Kind::of(&a.value),
    )
        .cmp(&(
            b.name.as_str(),
            b.role.as_str(),
            &b.disk,
            Kind::of(&b.value),
        ))
}

// --- values -------------------------------------------------------------------------------------

fn to_milli(x: f64) -> i64 {
    // `as` saturates, and maps NaN to 0; validated scalars are far inside the range.
    (x * SCALE).round() as i64
}

fn from_milli(milli: i64) -> f64 {
    milli as f64 / SCALE
}

/// `x` rounded to Mesos' fixed point.
fn canonical(x: f64) -> f64 {
    from_milli(to_milli(x))
}

/// A scalar's fixed-point value; `None` for ranges and sets.
fn to_milli_value(value: &Value) -> Option<i64> {
    match value {
        Value::Scalar(x) => Some(to_milli(*x)),
        _ => None,
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Scalar(x) => to_milli(*x) <= 0,
        Value::Ranges(ranges) => ranges.is_empty(),
        Value::Set(set) => set.is_empty(),
    }
}

/// `a + b` for values of one kind; `a` unchanged for mismatched kinds (never reached: items are
/// matched by kind).
fn sum(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            Value::Scalar(from_milli(to_milli(*x).saturating_add(to_milli(*y))))
        }
        (Value::Ranges(x), Value::Ranges(y)) => {
            Value::Ranges(coalesce(x.iter().chain(y).copied().collect()))
        }
        (Value::Set(x), Value::Set(y)) => Value::Set(x.union(y).cloned().collect()),
        _ => a.clone(),
    }
}

/// The larger of two scalars: a volume added to itself stays one volume.
fn larger(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) if to_milli(*y) > to_milli(*x) => b.clone(),
        _ => a.clone(),
    }
}

/// `a - b` clamped at zero for values of one kind; `a` unchanged for mismatched kinds.
fn difference(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => {
            Value::Scalar(from_milli(to_milli(*x).saturating_sub(to_milli(*y)).max(0)))
        }
        (Value::Ranges(x), Value::Ranges(y)) => Value::Ranges(ranges_difference(x, y)),
        (Value::Set(x), Value::Set(y)) => Value::Set(x.difference(y).cloned().collect()),
        _ => a.clone(),
    }
}

/// Whether `a` covers `b`; false for mismatched kinds.
fn covers(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Scalar(x), Value::Scalar(y)) => to_milli(*x) >= to_milli(*y),
        (Value::Ranges(x), Value::Ranges(y)) => ranges_subset(y, x),
        (Value::Set(x), Value::Set(y)) => y.is_subset(x),
        _ => false,
    }
}

/// Sorts and merges overlapping and adjacent ranges. Expects `begin <= end` in each.
pub(crate) fn coalesce(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.sort_unstable();
    let mut out: Vec<Range> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(last) = out.last_mut() {
            if range.begin <= last.end.saturating_add(1) {
                last.end = last.end.max(range.end);
                continue;
            }
        }
        out.push(range);
    }
    out
}

/// Whether every element of `a` is in `b`; both coalesced.
fn ranges_subset(a: &[Range], b: &[Range]) -> bool {
    let mut candidates = b.iter().peekable();
    for range in a {
        while candidates.next_if(|c| c.end < range.begin).is_some() {}
        match candidates.peek() {
            // `b` is coalesced, so a range of `a` lies within one range of `b` or is not covered.
            Some(c) if c.begin <= range.begin && range.end <= c.end => {}
            _ => return false,
        }
    }
    true
}

/// The elements of `a` not in `b`; both coalesced, and so is the result.
fn ranges_difference(a: &[Range], b: &[Range]) -> Vec<Range> {
    let mut out = Vec::with_capacity(a.len());
    for range in a {
        let mut begin = range.begin;
        let mut rest = true;
        for cut in b.iter().skip_while(|c| c.end < range.begin) {
            if cut.begin > range.end {
                break;
            }
            if cut.begin > begin {
                out.push(Range {
                    begin,
                    end: cut.begin - 1,
                });
            }
            if cut.end >= range.end {
                rest = false;
                break;
            }
            // cut.end < range.end <= u64::MAX, so this cannot overflow.
            begin = cut.end + 1;
        }
        if rest {
            out.push(Range {
                begin,
                end: range.end,
            });
        }
    }
    out
}

// --- text ---------------------------------------------------------------------------------------

/// A scalar in the shortest fixed-point form: `4`, `0.5`, `1234.567`.
fn format_scalar(x: f64) -> String {
    let milli = to_milli(x);
    let sign = if milli < 0 { "-" } else { "" };
    let abs = milli.unsigned_abs();
    let (int, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        format!("{sign}{int}")
    } else {
        let frac = format!("{frac:03}");
        format!("{sign}{int}.{}", frac.trim_end_matches('0'))
    }
}

/// `[a-b<sep>c-d]`.
pub(crate) fn format_ranges(ranges: &[Range], separator: &str) -> String {
    let inner: Vec<String> = ranges.iter().map(Range::to_string).collect();
    format!("[{}]", inner.join(separator))
}

/// `{a<sep>b}`.
pub(crate) fn format_set(set: &BTreeSet<String>, separator: &str) -> String {
    let inner: Vec<&str> = set.iter().map(String::as_str).collect();
    format!("{{{}}}", inner.join(separator))
}

/// A resource as given, for error messages about resources that may not be valid.
fn render_raw(resource: &Resource) -> String {
    let value = match &resource.value {
        Value::Scalar(x) => x.to_string(),
        Value::Ranges(ranges) => format_ranges(ranges, ","),
        Value::Set(set) => format_set(set, ","),
    };
    let disk = resource
        .disk
        .as_ref()
        .map(|d| d.to_string())
        .unwrap_or_default();
    if resource.role == DEFAULT_ROLE {
        format!("{}{disk}:{value}", resource.name)
    } else {
        format!("{}({}){disk}:{value}", resource.name, resource.role)
    }
}

/// Splits one item into its head (`name` or `name(role)`), its disk info text (between `[` and
/// `]`, when a `[` follows the head directly) and its value.
fn split_item(token: &str) -> Result<(&str, Option<&str>, &str), String> {
    // Without a role the head ends at the first `:` (a name holds no `[`); with one, after the
    // role's `)` (a role holds no `:` or `)`, but may hold `[`).
    let colon = token.find(':');
    let open = match token.find('(') {
        Some(paren) if colon.is_none_or(|c| paren < c) => {
            let head_end = token[paren..]
                .find(')')
                .map_or(token.len(), |i| paren + i + 1);
            let rest = &token[head_end..];
            let skipped = rest.len() - rest.trim_start().len();
            rest.trim_start()
                .starts_with('[')
                .then_some(head_end + skipped)
        }
        _ => token[..colon.unwrap_or(token.len())].find('['),
    };
    match open {
        Some(open) if colon.is_none_or(|c| open < c) => {
            let close = token[open..]
                .find(']')
                .map(|i| open + i)
                .ok_or_else(|| format!("{token:?} is missing the \"]\" after the disk info"))?;
            let value = token[close + 1..]
                .trim_start()
                .strip_prefix(':')
                .ok_or_else(|| "expected name(role)[id:path]:value".to_string())?;
            Ok((&token[..open], Some(&token[open + 1..close]), value))
        }
        _ => {
            let (head, value) = token
                .split_once(':')
                .ok_or_else(|| "expected name:value or name(role):value".to_string())?;
            Ok((head, None, value))
        }
    }
}

/// `id:container_path` or `id:container_path:ro` (or `:rw`), whitespace around tokens allowed.
fn parse_disk(text: &str) -> Result<DiskInfo, String> {
    let (id, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("disk info {text:?} is not of the form id:container_path"))?;
    let (path, read_only) = match rest.rsplit_once(':') {
        Some((path, mode)) => match mode.trim() {
            "ro" => (path, true),
            "rw" => (path, false),
            other => {
                return Err(format!(
                    "disk info {text:?} has the mode {other:?}, not \"ro\" or \"rw\""
                ))
            }
        },
        None => (rest, false),
    };
    Ok(DiskInfo {
        persistence_id: id.trim().to_string(),
        container_path: path.trim().to_string(),
        read_only,
    })
}

/// `name` or `name(role)`.
fn parse_head(head: &str) -> Result<(String, String), String> {
    match head.split_once('(') {
        Some((name, rest)) => {
            let role = rest
                .strip_suffix(')')
                .ok_or_else(|| format!("{head:?} is missing the \")\" after the role"))?;
            Ok((name.trim().to_string(), role.trim().to_string()))
        }
        None => Ok((head.to_string(), DEFAULT_ROLE.to_string())),
    }
}

fn parse_value(text: &str) -> Result<Value, String> {
    if text.is_empty() {
        return Err("empty value".to_string());
    }
    if text.starts_with('[') {
        return parse_ranges(text).map(Value::Ranges);
    }
    if text.starts_with('{') {
        return parse_set(text).map(Value::Set);
    }
    text.parse::<f64>()
        .map(Value::Scalar)
        .map_err(|_| format!("{text:?} is not a number, a range list [a-b] or a set {{a,b}}"))
}

/// `[a-b,c-d]`, whitespace around tokens allowed; `[]` is empty. Sorted and coalesced.
pub(crate) fn parse_ranges(text: &str) -> Result<Vec<Range>, String> {
    let inner = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| format!("{text:?} is missing the closing \"]\""))?
        .trim();
    if inner.is_empty() {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for piece in inner.split(',') {
        let piece = piece.trim();
        if piece.is_empty() {
            return Err(format!("{text:?} has an empty range"));
        }
        let (begin, end) = piece
            .split_once('-')
            .ok_or_else(|| format!("range {piece:?} is not of the form a-b"))?;
        let bound = |b: &str| {
            let b = b.trim();
            b.parse::<u64>()
                .map_err(|_| format!("{b:?} in range {piece:?} is not a non-negative integer"))
        };
        let range = Range {
            begin: bound(begin)?,
            end: bound(end)?,
        };
        if range.begin > range.end {
            return Err(format!("range {piece:?} begins after it ends"));
        }
        ranges.push(range);
    }
    Ok(coalesce(ranges))
}

/// `{a,b}`, whitespace around items allowed; `{}` is empty.
pub(crate) fn parse_set(text: &str) -> Result<BTreeSet<String>, String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("{text:?} is missing the closing \"}}\""))?
        .trim();
    if inner.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut set = BTreeSet::new();
    for item in inner.split(',') {
        let item = item.trim();
        validate_set_item(item).map_err(|why| format!("{text:?}: {why}"))?;
        set.insert(item.to_string());
    }
    Ok(set)
}

// --- validation ---------------------------------------------------------------------------------

/// Checks a resource and puts it in canonical form (scalar rounded, ranges coalesced).
fn validate(resource: Resource) -> Result<Resource, String> {
    let Resource {
        name,
        role,
        value,
        disk,
    } = resource;
    validate_name(&name)?;
    validate_role(&role)?;
    if let Some(disk) = &disk {
        if name != "disk" {
            return Err(format!(
                "only \"disk\" may be a persistent volume, not {name:?}"
            ));
        }
        if role == DEFAULT_ROLE {
            return Err(format!(
                "persistent volume {:?} must be reserved for a role",
                disk.persistence_id
            ));
        }
        validate_disk(disk)?;
    }
    let value = match value {
        Value::Scalar(x) => {
            if !x.is_finite() {
                return Err(format!("scalar {x} is not a finite number"));
            }
            if x < 0.0 {
                return Err(format!("scalar {x} is negative"));
            }
            if x > MAX_SCALAR {
                return Err(format!("scalar {x} is above the maximum {MAX_SCALAR}"));
            }
            Value::Scalar(canonical(x))
        }
        Value::Ranges(ranges) => {
            if let Some(r) = ranges.iter().find(|r| r.begin > r.end) {
                return Err(format!("range \"{r}\" begins after it ends"));
            }
            Value::Ranges(coalesce(ranges))
        }
        Value::Set(set) => {
            for item in &set {
                validate_set_item(item)?;
            }
            Value::Set(set)
        }
    };
    let kind = Kind::of(&value);
    if let Some((_, expected)) = WELL_KNOWN.iter().find(|(known, _)| *known == name) {
        if *expected != kind {
            return Err(format!(
                "{name:?} must be {}, not {}",
                expected.describe(),
                kind.describe()
            ));
        }
    }
    Ok(Resource {
        name,
        role,
        value,
        disk,
    })
}

/// A volume's persistence id and container path (see [`DiskInfo`]).
pub(crate) fn validate_disk(disk: &DiskInfo) -> Result<(), String> {
    let id = &disk.persistence_id;
    if id.is_empty() {
        return Err("empty persistence id".to_string());
    }
    if id.len() > MAX_PERSISTENCE_ID_LEN {
        return Err(format!(
            "persistence id {id:?} is longer than {MAX_PERSISTENCE_ID_LEN} bytes"
        ));
    }
    if id == "." || id == ".." {
        return Err(format!(
            "persistence id {id:?} is a relative path component"
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "persistence id {id:?} contains {c:?} (only ASCII letters, digits and - _ . are allowed)"
        ));
    }
    let path = &disk.container_path;
    let what = format!("volume {id:?}");
    if path.is_empty() {
        return Err(format!("{what}: empty container path"));
    }
    if path.len() > MAX_CONTAINER_PATH_LEN {
        return Err(format!(
            "{what}: container path is longer than {MAX_CONTAINER_PATH_LEN} bytes"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "{what}: container path {path:?} must be relative (to the sandbox)"
        ));
    }
    if let Some(c) = path
        .chars()
        .find(|c| c.is_control() || c.is_whitespace() || ":;[](){}".contains(*c))
    {
        return Err(format!("{what}: container path {path:?} contains {c:?}"));
    }
    let components = Path::new(path).components();
    let mut normal = 0;
    for component in components {
        match component {
            Component::Normal(_) => normal += 1,
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "{what}: container path {path:?} must not contain \"..\""
                ))
            }
        }
    }
    if normal == 0 {
        return Err(format!(
            "{what}: container path {path:?} names the sandbox itself"
        ));
    }
    Ok(())
}

/// Resource and attribute names: non-empty, no whitespace, control characters or syntax.
pub(crate) fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty name".to_string());
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "name {name:?} contains the whitespace or control character {c:?}"
        ));
    }
    if let Some(c) = name.chars().find(|c| "():;,[]{}".contains(*c)) {
        return Err(format!("name {name:?} contains {c:?}"));
    }
    Ok(())
}

/// Mesos' role rules: `*`, or `/`-separated components that are not empty, `.`, `..` or `*`, do
/// not start with `-` and hold no whitespace or control characters; also none of the characters
/// the `--resources` syntax uses.
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == DEFAULT_ROLE {
        return Ok(());
    }
    if role.is_empty() {
        return Err("empty role".to_string());
    }
    if role.starts_with('/') || role.ends_with('/') {
        return Err(format!("role {role:?} starts or ends with \"/\""));
    }
    if let Some(c) = role.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "role {role:?} contains the whitespace or control character {c:?}"
        ));
    }
    if let Some(c) = role.chars().find(|c| "():;".contains(*c)) {
        return Err(format!("role {role:?} contains {c:?}"));
    }
    for component in role.split('/') {
        if component.is_empty() {
            return Err(format!("role {role:?} contains \"//\""));
        }
        if matches!(component, "." | ".." | "*") {
            return Err(format!(
                "role {role:?} has {component:?} as a path component"
            ));
        }
        if component.starts_with('-') {
            return Err(format!(
                "role {role:?} has a path component starting with \"-\""
            ));
        }
    }
    Ok(())
}

/// Set items: non-empty, no surrounding whitespace, no control characters or set syntax.
pub(crate) fn validate_set_item(item: &str) -> Result<(), String> {
    if item.is_empty() {
        return Err("empty set item".to_string());
    }
    if item.trim() != item {
        return Err(format!("set item {item:?} has surrounding whitespace"));
    }
    if let Some(c) = item.chars().find(|c| c.is_control() || ",;{}".contains(*c)) {
        return Err(format!("set item {item:?} contains {c:?}"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn res(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    fn err(text: &str) -> String {
        Resources::parse(text).unwrap_err().to_string()
    }

    fn r(begin: u64, end: u64) -> Range {
        Range { begin, end }
    }

    #[test]
    fn parses_the_mesos_syntax() {
        let parsed = res("cpus:4;mem(ops):2048;ports:[31000-32000,40000-40010];disks:{a,b}");
        let expected = vec![
            Resource {
                name: "cpus".into(),
                role: "*".into(),
                value: Value::Scalar(4.0),
                disk: None,
            },
            Resource {
                name: "disks".into(),
                role: "*".into(),
                value: Value::Set(["a".to_string(), "b".to_string()].into()),
                disk: None,
            },
            Resource {
                name: "mem".into(),
                role: "ops".into(),
                value: Value::Scalar(2048.0),
                disk: None,
            },
            Resource {
                name: "ports".into(),
                role: "*".into(),
                value: Value::Ranges(vec![r(31000, 32000), r(40000, 40010)]),
                disk: None,
            },
        ];
        assert_eq!(parsed.iter().cloned().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn tolerates_whitespace_empty_items_and_trailing_separator() {
        assert_eq!(
            res("  cpus : 4 ; mem ( ops ) : 2048 ;; ports: [ 1 - 3 , 5-6 ] ; disks:{ a , b };"),
            res("cpus:4;mem(ops):2048;ports:[1-3,5-6];disks:{a,b}")
        );
        assert!(res("").is_empty());
        assert!(res(" ; ;").is_empty());
        assert_eq!(res("cpus:1;"), res("cpus:1"));
    }

    #[test]
    fn normalizes() {
        let parsed = res("ports:[4-5];cpus:1;ports:[1-3,10-10,9-9];cpus:0.5;mem:0;disks:{}");
        assert_eq!(parsed.to_string(), "cpus:1.5;ports:[1-5,9-10]");
        assert_eq!(res("ports:[5-5]").ranges("ports"), vec![r(5, 5)]);
        assert_eq!(res("ports:[1-10,3-4]").ranges("ports"), vec![r(1, 10)]);
        assert!(res("ports:[]").is_empty());
        assert!(res("cpus:0.0004").is_empty());
        assert_eq!(res("cpus:0.0005").cpus(), 0.001);
        assert_eq!(res("cpus:-0").len(), 0);
        // Sorted by (name, role), `*` first.
        let names: Vec<(String, String)> = res("mem(b):1;mem:1;cpus(a):1;mem(a):1")
            .iter()
            .map(|r| (r.name.clone(), r.role.clone()))
            .collect();
        let want = [("cpus", "a"), ("mem", "*"), ("mem", "a"), ("mem", "b")];
        assert_eq!(names, want.map(|(n, r)| (n.to_string(), r.to_string())));
    }

    #[test]
    fn scalars_are_fixed_point() {
        let a = res("cpus:0.1");
        let b = res("cpus:0.2");
        assert_eq!((&a + &b).cpus(), 0.3);
        assert_eq!(&a + &b, res("cpus:0.3"));
        assert!(res("cpus:0.3").contains(&(&a + &b)));
        assert_eq!(res("cpus:0.3").checked_sub(&a), Some(b.clone()));
        assert_eq!(res("cpus:1.23456").cpus(), 1.235);
        let mut total = Resources::new();
        for _ in 0..10 {
            total += &a;
        }
        assert_eq!(total, res("cpus:1"));
    }

    #[test]
    fn rejects_bad_input_with_a_clear_message() {
        let cases = [
            (
                "cpus:abc",
                r#"invalid resource "cpus:abc": "abc" is not a number, a range list [a-b] or a set {a,b}"#,
            ),
            (
                "cpus",
                r#"invalid resource "cpus": expected name:value or name(role):value"#,
            ),
            ("cpus:", r#"invalid resource "cpus:": empty value"#),
            (":4", r#"invalid resource ":4": empty name"#),
            (
                "cpus:-1",
                r#"invalid resource "cpus:-1": scalar -1 is negative"#,
            ),
            (
                "cpus:NaN",
                r#"invalid resource "cpus:NaN": scalar NaN is not a finite number"#,
            ),
            (
                "cpus:inf",
                r#"invalid resource "cpus:inf": scalar inf is not a finite number"#,
            ),
            (
                "mem:1e13",
                r#"invalid resource "mem:1e13": scalar 10000000000000 is above the maximum 1000000000000"#,
            ),
            (
                "ports:[5-3]",
                r#"invalid resource "ports:[5-3]": range "5-3" begins after it ends"#,
            ),
            (
                "ports:[1-2",
                r#"invalid resource "ports:[1-2": "[1-2" is missing the closing "]""#,
            ),
            (
                "ports:[1]",
                r#"invalid resource "ports:[1]": range "1" is not of the form a-b"#,
            ),
            (
                "ports:[a-2]",
                r#"invalid resource "ports:[a-2]": "a" in range "a-2" is not a non-negative integer"#,
            ),
            (
                "ports:[-1-2]",
                r#"invalid resource "ports:[-1-2]": "" in range "-1-2" is not a non-negative integer"#,
            ),
            (
                "ports:[1-2,]",
                r#"invalid resource "ports:[1-2,]": "[1-2,]" has an empty range"#,
            ),
            (
                "disks:{a",
                r#"invalid resource "disks:{a": "{a" is missing the closing "}""#,
            ),
            (
                "disks:{a,,b}",
                r#"invalid resource "disks:{a,,b}": "{a,,b}": empty set item"#,
            ),
            (
                "ports:5;ports:[1-2]",
                r#"invalid resource "ports:5": "ports" must be ranges, not a scalar"#,
            ),
            (
                "foo:5;foo(ops):[1-2]",
                r#"invalid resource "foo(ops):[1-2]": "foo" is a scalar elsewhere and ranges here"#,
            ),
            (
                "cpus:[1-2]",
                r#"invalid resource "cpus:[1-2]": "cpus" must be a scalar, not ranges"#,
            ),
            (
                "cpus(ops:1",
                r#"invalid resource "cpus(ops:1": "cpus(ops" is missing the ")" after the role"#,
            ),
            ("cpus():1", r#"invalid resource "cpus():1": empty role"#),
            (
                "cp us:1",
                r#"invalid resource "cp us:1": name "cp us" contains the whitespace or control character ' '"#,
            ),
            (
                "cpus(/a):1",
                r#"invalid resource "cpus(/a):1": role "/a" starts or ends with "/""#,
            ),
            (
                "cpus(a/):1",
                r#"invalid resource "cpus(a/):1": role "a/" starts or ends with "/""#,
            ),
            (
                "cpus(a//b):1",
                r#"invalid resource "cpus(a//b):1": role "a//b" contains "//""#,
            ),
            (
                "cpus(.):1",
                r#"invalid resource "cpus(.):1": role "." has "." as a path component"#,
            ),
            (
                "cpus(a/..):1",
                r#"invalid resource "cpus(a/..):1": role "a/.." has ".." as a path component"#,
            ),
            (
                "cpus(a/*):1",
                r#"invalid resource "cpus(a/*):1": role "a/*" has "*" as a path component"#,
            ),
            (
                "cpus(-a):1",
                r#"invalid resource "cpus(-a):1": role "-a" has a path component starting with "-""#,
            ),
            (
                "cpus(a b):1",
                r#"invalid resource "cpus(a b):1": role "a b" contains the whitespace or control character ' '"#,
            ),
            (
                "cpus(a)(b):1",
                r#"invalid resource "cpus(a)(b):1": role "a)(b" contains ')'"#,
            ),
        ];
        for (input, message) in cases {
            assert_eq!(err(input), message, "input {input:?}");
        }
    }

    #[test]
    fn accepts_mesos_roles() {
        for role in ["ops", "a/b/c", "team-1.prod", "a.b", "x_y", "*"] {
            let parsed = res(&format!("cpus({role}):1"));
            assert_eq!(parsed.iter().next().unwrap().role, role);
        }
    }

    #[test]
    fn from_vec_validates_and_sums() {
        let items = vec![
            Resource {
                name: "cpus".into(),
                role: "*".into(),
                value: Value::Scalar(1.0),
                disk: None,
            },
            Resource {
                name: "cpus".into(),
                role: "*".into(),
                value: Value::Scalar(0.5),
                disk: None,
            },
            Resource {
                name: "ports".into(),
                role: "*".into(),
                value: Value::Ranges(vec![r(4, 5), r(1, 3)]),
                disk: None,
            },
            Resource {
                name: "mem".into(),
                role: "*".into(),
                value: Value::Scalar(0.0),
                disk: None,
            },
        ];
        assert_eq!(
            Resources::from_vec(items).unwrap(),
            res("cpus:1.5;ports:[1-5]")
        );

        let bad = |value: Value| {
            Resources::from_vec(vec![Resource {
                name: "x".into(),
                role: "*".into(),
                value,
                disk: None,
            }])
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            bad(Value::Scalar(-2.5)),
            r#"invalid resource "x:-2.5": scalar -2.5 is negative"#
        );
        assert_eq!(
            bad(Value::Scalar(f64::NAN)),
            r#"invalid resource "x:NaN": scalar NaN is not a finite number"#
        );
        assert_eq!(
            bad(Value::Ranges(vec![r(3, 1)])),
            r#"invalid resource "x:[3-1]": range "3-1" begins after it ends"#
        );
        assert_eq!(
            bad(Value::Set([" a".to_string()].into())),
            r#"invalid resource "x:{ a}": set item " a" has surrounding whitespace"#
        );
        assert_eq!(
            bad(Value::Set(["a;b".to_string()].into())),
            r#"invalid resource "x:{a;b}": set item "a;b" contains ';'"#
        );
        let mixed = vec![
            Resource {
                name: "x".into(),
                role: "*".into(),
                value: Value::Scalar(1.0),
                disk: None,
            },
            Resource {
                name: "x".into(),
                role: "r".into(),
                value: Value::Set(["a".into()].into()),
                disk: None,
            },
        ];
        assert_eq!(
            Resources::from_vec(mixed).unwrap_err().to_string(),
            r#"invalid resource "x(r):{a}": "x" is a scalar elsewhere and a set here"#
        );
    }

    #[test]
    fn deserialization_validates() {
        let good = res("cpus:1;ports:[1-2]");
        let json = serde_json::to_string(&good).unwrap();
        assert_eq!(serde_json::from_str::<Resources>(&json).unwrap(), good);
        let unnormalized = r#"{"items":[{"name":"cpus","role":"*","value":{"Scalar":1.0}},{"name":"cpus","role":"*","value":{"Scalar":2.0}}]}"#;
        assert_eq!(
            serde_json::from_str::<Resources>(unnormalized).unwrap(),
            res("cpus:3")
        );
        let negative = r#"{"items":[{"name":"cpus","role":"*","value":{"Scalar":-1.0}}]}"#;
        let e = serde_json::from_str::<Resources>(negative)
            .unwrap_err()
            .to_string();
        assert!(e.contains("scalar -1 is negative"), "{e}");
    }

    #[test]
    fn arithmetic_examples() {
        let agent = res("cpus:4;mem:8192;ports:[31000-32000];disks:{a,b}");
        let task = res("cpus:1.5;mem:1024;ports:[31000-31000,31005-31010];disks:{a}");
        assert!(agent.contains(&task));
        assert!(!task.contains(&agent));
        let left = agent.checked_sub(&task).unwrap();
        assert_eq!(
            left.to_string(),
            "cpus:2.5;disks:{b};mem:7168;ports:[31001-31004,31011-32000]"
        );
        assert_eq!(&left + &task, agent);
        assert_eq!(task.checked_sub(&agent), None);
        assert_eq!(
            res("cpus:1;mem:10").saturating_sub(&res("cpus:2;mem:4;gpus:1")),
            res("mem:6")
        );
        // Reservations are distinct: unreserved cpus do not cover ops' cpus.
        assert!(!res("cpus:8").contains(&res("cpus(ops):1")));
        assert!(res("cpus(ops):1").contains(&res("cpus(ops):1")));
        assert!(agent.contains(&Resources::new()));
        assert!(Resources::new().contains(&Resources::new()));
        assert_eq!(&agent - &agent, Resources::new());
        let mut x = agent.clone();
        x -= &task;
        assert_eq!(x, left);
    }

    #[test]
    fn range_edges() {
        let max = u64::MAX;
        let all = Resources::ranges_resource("ports", vec![r(0, max)]);
        assert_eq!(all.ranges("ports"), vec![r(0, max)]);
        let top = Resources::ranges_resource("ports", vec![r(max, max)]);
        let bottom = Resources::ranges_resource("ports", vec![r(0, 0)]);
        assert_eq!(
            all.saturating_sub(&top)
                .saturating_sub(&bottom)
                .ranges("ports"),
            vec![r(1, max - 1)]
        );
        assert_eq!((&top + &all).ranges("ports"), vec![r(0, max)]);
        assert_eq!(res(&format!("ports:[{max}-{max}]")), top);
        assert!(all.contains(&top));
        assert!(!bottom.contains(&top));
    }

    #[test]
    fn queries() {
        let x = res("cpus:1;cpus(ops):2.5;mem:100;ports:[1-3];ports(ops):[4-6,10-12];disks(ops):{b};disks:{a}");
        assert_eq!(x.cpus(), 3.5);
        assert_eq!(x.mem(), 100.0);
        assert_eq!(x.disk(), 0.0);
        assert_eq!(x.gpus(), 0.0);
        assert_eq!(x.scalar("nothing"), 0.0);
        assert_eq!(x.ranges("ports"), vec![r(1, 6), r(10, 12)]);
        assert_eq!(x.ranges("cpus"), vec![]);
        assert_eq!(x.set("disks"), ["a".to_string(), "b".to_string()].into());
        assert_eq!(x.names(), vec!["cpus", "disks", "mem", "ports"]);
        assert_eq!(x.unreserved(), res("cpus:1;mem:100;ports:[1-3];disks:{a}"));
        assert_eq!(
            x.reserved("ops"),
            res("cpus(ops):2.5;ports(ops):[4-6,10-12];disks(ops):{b}")
        );
        assert_eq!(x.len(), 7);
        assert_eq!((&x).into_iter().count(), 7);
    }

    #[test]
    fn constructors() {
        assert_eq!(Resources::scalar_resource("cpus", 4.0), res("cpus:4"));
        assert_eq!(
            Resources::scalar_resource("cpus", 0.1 + 0.2),
            res("cpus:0.3")
        );
        assert!(Resources::scalar_resource("cpus", -1.0).is_empty());
        assert!(Resources::scalar_resource("cpus", f64::NAN).is_empty());
        assert!(Resources::scalar_resource("cpus", 0.0).is_empty());
        assert_eq!(
            Resources::ranges_resource("ports", vec![r(5, 6), r(1, 4), r(9, 8)]),
            res("ports:[1-6]")
        );
        assert!(Resources::ranges_resource("ports", vec![]).is_empty());
        assert_eq!(
            Resources::set_resource("disks", ["b", "a", ""]),
            res("disks:{a,b}")
        );
        let sum = Resources::scalar_resource("cpus", 2.0)
            + Resources::scalar_resource("mem", 512.0)
            + Resources::ranges_resource("ports", vec![r(31000, 32000)]);
        assert_eq!(sum, res("cpus:2;mem:512;ports:[31000-32000]"));
    }

    #[test]
    fn mismatched_types_from_separate_sources_are_kept_side_by_side() {
        let mut x = res("foo:2");
        x.add(&res("foo:[1-2]"));
        assert_eq!(x.len(), 2);
        assert_eq!(x.scalar("foo"), 2.0);
        assert_eq!(x.ranges("foo"), vec![r(1, 2)]);
        assert!(x.contains(&res("foo:1")));
        assert!(!res("foo:2").contains(&res("foo:[1-1]")));
        assert_eq!(x.saturating_sub(&res("foo:[1-2]")), res("foo:2"));
    }

    #[test]
    fn display() {
        assert_eq!(
            res("ports:[31000-32000];mem:8192;cpus:4;cpus(ops):0.5;disks:{b,a};gpus:1.250")
                .to_string(),
            "cpus:4;cpus(ops):0.5;disks:{a,b};gpus:1.25;mem:8192;ports:[31000-32000]"
        );
        assert_eq!(res("cpus:1234.567").to_string(), "cpus:1234.567");
        assert_eq!(res("cpus:0.01").to_string(), "cpus:0.01");
        assert_eq!(res("mem:1e12").to_string(), "mem:1000000000000");
        assert_eq!(Resources::new().to_string(), "");
        assert_eq!(
            res("ports:[1-2,4-5]")
                .to_string()
                .parse::<Resources>()
                .unwrap(),
            res("ports:[1-2,4-5]")
        );
    }

    #[test]
    fn json_shape() {
        let x = res("cpus:4;mem:8192;ports:[31000-32000,40000-40010];disks:{a,b};cpus(ops):0.5");
        assert_eq!(
            x.to_json(),
            serde_json::json!({
                "cpus": 4.5,
                "mem": 8192.0,
                "disk": 0.0,
                "gpus": 0.0,
                "ports": "[31000-32000, 40000-40010]",
                "disks": "{a, b}",
            })
        );
        assert_eq!(
            Resources::new().to_json(),
            serde_json::json!({"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0})
        );
        assert!(Resources::new().to_json()["cpus"].is_f64());
    }

    #[test]
    fn borrowed_json_writes_what_to_json_builds() {
        for text in [
            "",
            "cpus:0.1;mem:32",
            "cpus:4;mem:8192;ports:[31000-32000,40000-40010];disks:{a,b};cpus(ops):0.5",
            "aaa:1;zzz:2;gpus(x):1;disk:10",
            "ports:[1-2,7-9];ports(ops):[3-5];disks:{a};disks(ops):{b,c};mem(ops):1.5;mem:2.25",
        ] {
            let x = res(text);
            assert_eq!(
                serde_json::to_string(&x.json()).unwrap(),
                serde_json::to_string(&x.to_json()).unwrap(),
                "{text:?}"
            );
        }
    }

    fn volume(role: &str, id: &str, path: &str, read_only: bool, size: f64) -> Resource {
        Resource {
            name: "disk".into(),
            role: role.into(),
            value: Value::Scalar(size),
            disk: Some(Box::new(DiskInfo {
                persistence_id: id.into(),
                container_path: path.into(),
                read_only,
            })),
        }
    }

    #[test]
    fn volumes_parse_and_display() {
        let x = res("disk(ops)[v1:data]:64;disk(ops):100;cpus:1;disk(ops)[v2:a/b:ro]:1.5");
        assert_eq!(
            x.to_string(),
            "cpus:1;disk(ops):100;disk(ops)[v1:data]:64;disk(ops)[v2:a/b:ro]:1.5"
        );
        assert_eq!(res(&x.to_string()), x);
        let volumes: Vec<_> = x.volumes().map(|(r, d)| (r.clone(), d.clone())).collect();
        assert_eq!(
            volumes,
            vec![
                (
                    volume("ops", "v1", "data", false, 64.0),
                    *volume("ops", "v1", "data", false, 64.0).disk.unwrap()
                ),
                (
                    volume("ops", "v2", "a/b", true, 1.5),
                    *volume("ops", "v2", "a/b", true, 1.5).disk.unwrap()
                ),
            ]
        );
        assert_eq!(x.without_volumes(), res("cpus:1;disk(ops):100"));
        assert_eq!(x.disk(), 165.5);
        assert!(x.iter().filter(|r| r.is_volume()).count() == 2);
        // Whitespace, an explicit `rw`, nested roles, roles holding `[`.
        assert_eq!(
            res(" disk ( a/b ) [ v1 : data : rw ] : 64 "),
            Resources::from_vec(vec![volume("a/b", "v1", "data", false, 64.0)]).unwrap()
        );
        assert_eq!(res("cpus(a[b):1").to_string(), "cpus(a[b):1");
        assert_eq!(res("disk(a[b)[v1:x]:1").to_string(), "disk(a[b)[v1:x]:1");
        assert_eq!(
            volume("ops", "v1", "data", true, 2.0).to_string(),
            "disk(ops)[v1:data:ro]:2"
        );
    }

    #[test]
    fn volumes_are_validated() {
        assert_eq!(
            err("disk[v1:data]:64"),
            r#"invalid resource "disk[v1:data]:64": persistent volume "v1" must be reserved for a role"#
        );
        assert_eq!(
            err("mem(ops)[v1:data]:64"),
            r#"invalid resource "mem(ops)[v1:data]:64": only "disk" may be a persistent volume, not "mem""#
        );
        assert!(err("disk(ops)[v1:data]:[1-2]").contains("\"disk\" must be a scalar"));
        assert!(err("disk(ops)[v1:/data]:1").contains("must be relative"));
        assert!(err("disk(ops)[v1:a/../b]:1").contains("must not contain \"..\""));
        assert!(err("disk(ops)[v1:.]:1").contains("names the sandbox itself"));
        assert!(err("disk(ops)[v1:]:1").contains("empty container path"));
        assert!(err("disk(ops)[:data]:1").contains("empty persistence id"));
        assert!(err("disk(ops)[..:data]:1").contains("relative path component"));
        assert!(err("disk(ops)[a/b:data]:1").contains("contains '/'"));
        assert!(err("disk(ops)[v1:data:rx]:1").contains("not \"ro\" or \"rw\""));
        assert!(err("disk(ops)[v1]:1").contains("not of the form id:container_path"));
        assert!(err("disk(ops)[v1:data:1").contains("missing the \"]\""));
        assert!(err("disk(ops)[v1:data]64").contains("expected name(role)[id:path]:value"));
        let long = "x".repeat(MAX_PERSISTENCE_ID_LEN + 1);
        assert!(err(&format!("disk(ops)[{long}:data]:1")).contains("longer than 200 bytes"));
        let e = Resources::from_vec(vec![volume("ops", "v1", "a b", false, 1.0)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            r#"invalid resource "disk(ops)[v1:a b]:1": volume "v1": container path "a b" contains ' '"#
        );
        // Old JSON, without `disk`, still reads.
        let old = r#"{"items":[{"name":"disk","role":"ops","value":{"Scalar":1.0}}]}"#;
        assert_eq!(
            serde_json::from_str::<Resources>(old).unwrap(),
            res("disk(ops):1")
        );
        let x = res("disk(ops)[v1:data:ro]:64;cpus:1");
        let json = serde_json::to_string(&x).unwrap();
        assert!(
            !json.contains(r#""name":"cpus","role":"*","value":{"Scalar":1.0},"disk""#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Resources>(&json).unwrap(), x);
        let bad = r#"{"items":[{"name":"disk","role":"*","value":{"Scalar":1.0},"disk":{"persistence_id":"v1","container_path":"d"}}]}"#;
        let e = serde_json::from_str::<Resources>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("must be reserved"), "{e}");
    }

    #[test]
    fn volumes_are_units_of_their_own() {
        let agent = res("disk(ops):100;disk(ops)[v1:data]:64;disk(ops)[v2:data]:64");
        // A volume and plain disk, or two volumes, never merge or cover each other.
        assert_eq!(agent.len(), 3);
        assert!(!agent.contains(&res("disk(ops)[v3:data]:1")));
        assert!(!agent.contains(&res("disk(ops)[v1:other]:64")));
        assert!(!agent.contains(&res("disk(ops)[v1:data:ro]:64")));
        assert!(!agent.contains(&res("disk(ops):101")));
        assert!(!res("disk(ops)[v1:data]:64").contains(&res("disk(ops):1")));
        assert!(!res("disk(ops):1000").contains(&res("disk(ops)[v1:data]:1")));
        // Indivisible: covered only whole.
        assert!(agent.contains(&res("disk(ops)[v1:data]:64")));
        assert!(!agent.contains(&res("disk(ops)[v1:data]:32")));
        assert_eq!(agent.checked_sub(&res("disk(ops)[v1:data]:32")), None);
        assert_eq!(
            agent.checked_sub(&res("disk(ops)[v1:data]:64;disk(ops):10")),
            Some(res("disk(ops):90;disk(ops)[v2:data]:64"))
        );
        assert_eq!(
            agent.saturating_sub(&res("disk(ops)[v1:data]:32;disk(ops)[v2:data]:100")),
            res("disk(ops):100;disk(ops)[v1:data]:64")
        );
        // Adding a volume that is there changes nothing.
        assert_eq!(&agent + &res("disk(ops)[v1:data]:64"), agent);
        assert_eq!(
            (&agent + &res("disk(ops)[v1:data]:64;disk(ops):1")).disk(),
            agent.disk() + 1.0
        );
        assert_eq!(agent.reserved("ops"), agent);
        assert!(agent.unreserved().is_empty());
    }

    #[test]
    fn mesos_json_of_volumes() {
        let x = res("disk(ops)[v1:data]:64;cpus:0.5;ports:[1-2];disks(r):{a};disk(ops)[v2:x:ro]:1");
        assert_eq!(
            x.to_mesos_json(),
            serde_json::json!([
                {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"},
                {"name": "disk", "type": "SCALAR", "scalar": {"value": 64.0}, "role": "ops",
                 "reservations": [{"type": "STATIC", "role": "ops"}],
                 "disk": {"persistence": {"id": "v1"},
                          "volume": {"container_path": "data", "mode": "RW"}}},
                {"name": "disk", "type": "SCALAR", "scalar": {"value": 1.0}, "role": "ops",
                 "reservations": [{"type": "STATIC", "role": "ops"}],
                 "disk": {"persistence": {"id": "v2"},
                          "volume": {"container_path": "x", "mode": "RO"}}},
                {"name": "disks", "type": "SET", "set": {"item": ["a"]}, "role": "r",
                 "reservations": [{"type": "STATIC", "role": "r"}]},
                {"name": "ports", "type": "RANGES",
                 "ranges": {"range": [{"begin": 1, "end": 2}]}, "role": "*"},
            ])
        );
        // The summed `/state` shape counts volumes as disk.
        assert_eq!(x.to_json()["disk"], 65.0);
    }

    // --- properties -----------------------------------------------------------------------------

    fn arb_scalar() -> impl Strategy<Value = f64> {
        // Milli-units, with a bias to small numbers so that sums collide.
        prop_oneof![0i64..5_000, 0i64..10_000_000_000].prop_map(|m| m as f64 / 1000.0)
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<Range>> {
        prop::collection::vec((0u64..200, 0u64..20), 0..5)
            .prop_map(|v| v.into_iter().map(|(b, len)| r(b, b + len)).collect())
    }

    fn arb_set() -> impl Strategy<Value = BTreeSet<String>> {
        prop::collection::btree_set(prop::sample::select(vec!["a", "b", "c", "d", "sda1"]), 0..4)
            .prop_map(|s| s.into_iter().map(str::to_string).collect())
    }

    fn arb_role() -> impl Strategy<Value = String> {
        prop::sample::select(vec!["*", "ops", "a/b", "web-1"]).prop_map(str::to_string)
    }

    /// One value type per name, as validation requires.
    fn arb_resource() -> impl Strategy<Value = Resource> {
        let scalar = (
            prop::sample::select(vec!["cpus", "mem", "disk", "gpus", "custom"]),
            arb_scalar(),
        )
            .prop_map(|(n, x)| (n.to_string(), Value::Scalar(x)));
        let ranges = (prop::sample::select(vec!["ports", "vlans"]), arb_ranges())
            .prop_map(|(n, v)| (n.to_string(), Value::Ranges(v)));
        let set = (prop::sample::select(vec!["disks", "zones"]), arb_set())
            .prop_map(|(n, s)| (n.to_string(), Value::Set(s)));
        let plain =
            (prop_oneof![scalar, ranges, set], arb_role()).prop_map(|((name, value), role)| {
                Resource {
                    name,
                    role,
                    value,
                    disk: None,
                }
            });
        // One size per persistence id, as on a real agent.
        let volumes = (
            prop::sample::select(vec!["ops", "a/b"]),
            prop::sample::select(vec![("v1", 64.0), ("v2", 0.5)]),
            prop::sample::select(vec!["data", "a/b"]),
            any::<bool>(),
        )
            .prop_map(|(role, (id, size), path, ro)| volume(role, id, path, ro, size));
        prop_oneof![4 => plain, 1 => volumes]
    }

    fn arb_resources() -> impl Strategy<Value = Resources> {
        prop::collection::vec(arb_resource(), 0..8).prop_map(|v| Resources::from_vec(v).unwrap())
    }

    /// The invariants every `Resources` keeps.
    fn assert_normalized(x: &Resources) {
        for pair in x.items.windows(2) {
            assert_eq!(compare_keys(&pair[0], &pair[1]), Ordering::Less, "{x:?}");
        }
        for item in &x.items {
            assert!(!is_zero(&item.value), "{x:?}");
            match &item.value {
                Value::Scalar(v) => {
                    assert!(*v > 0.0 && *v == canonical(*v), "{x:?}");
                }
                Value::Ranges(ranges) => {
                    assert!(ranges.iter().all(|r| r.begin <= r.end), "{x:?}");
                    assert_eq!(coalesce(ranges.clone()), *ranges, "{x:?}");
                }
                Value::Set(_) => {}
            }
        }
    }

    proptest! {
        #[test]
        fn sum_contains_both(a in arb_resources(), b in arb_resources()) {
            let s = &a + &b;
            assert_normalized(&s);
            prop_assert!(s.contains(&a));
            prop_assert!(s.contains(&b));
            prop_assert_eq!(&s, &(&b + &a));
        }

        #[test]
        fn sub_undoes_add(a in arb_resources(), b in arb_resources()) {
            // Exact for scalars and for disjoint ranges and sets; overlap is absorbed by union.
            let s = &a + &b;
            let back = s.checked_sub(&b).unwrap();
            assert_normalized(&back);
            let overlap = a.saturating_sub(&a.saturating_sub(&b));
            // Volumes, like ranges and sets, are not summed.
            let overlaps_only_in_scalars =
                overlap.iter().all(|r| matches!(r.value, Value::Scalar(_)) && !r.is_volume());
            if overlaps_only_in_scalars {
                prop_assert_eq!(back, a);
            } else {
                prop_assert!(a.contains(&back));
            }
        }

        #[test]
        fn sub_undoes_add_for_scalars(a in arb_resources(), b in arb_resources()) {
            let only_scalars = |x: &Resources| {
                Resources::from_vec(
                    x.iter()
                        .filter(|r| matches!(r.value, Value::Scalar(_)) && !r.is_volume())
                        .cloned()
                        .collect(),
                ).unwrap()
            };
            let (a, b) = (only_scalars(&a), only_scalars(&b));
            prop_assert_eq!((&a + &b).checked_sub(&b), Some(a));
        }

        #[test]
        fn contains_is_reflexive_and_transitive(a in arb_resources(), b in arb_resources(), c in arb_resources()) {
            prop_assert!(a.contains(&a));
            prop_assert!(a.contains(&Resources::new()));
            let ab = &a + &b;
            let abc = &ab + &c;
            prop_assert!(abc.contains(&ab));
            prop_assert!(abc.contains(&a));
            if a.contains(&b) && b.contains(&c) {
                prop_assert!(a.contains(&c));
            }
        }

        #[test]
        fn checked_sub_matches_contains(a in arb_resources(), b in arb_resources()) {
            match a.checked_sub(&b) {
                Some(rest) => {
                    prop_assert!(a.contains(&b));
                    assert_normalized(&rest);
                    prop_assert_eq!(&rest + &b, a.clone());
                    prop_assert!(a.contains(&rest));
                }
                None => prop_assert!(!a.contains(&b)),
            }
        }

        #[test]
        fn saturating_sub_stays_within_the_original(a in arb_resources(), b in arb_resources()) {
            let rest = a.saturating_sub(&b);
            assert_normalized(&rest);
            prop_assert!(a.contains(&rest));
            for item in rest.iter() {
                if let Value::Scalar(x) = item.value {
                    prop_assert!(x > 0.0);
                }
            }
            // Nothing left that `b` could still take away from ranges and sets.
            let again = rest.saturating_sub(&b);
            for item in again.iter() {
                if !matches!(item.value, Value::Scalar(_)) {
                    prop_assert!(rest.iter().any(|x| x == item));
                }
            }
            prop_assert_eq!(&rest - &Resources::new(), rest.clone());
            prop_assert_eq!(&a - &a, Resources::new());
        }

        #[test]
        fn display_round_trips(a in arb_resources()) {
            let text = a.to_string();
            prop_assert_eq!(Resources::parse(&text).unwrap(), a);
        }

        #[test]
        fn json_has_the_sums(a in arb_resources()) {
            let json = a.to_json();
            prop_assert_eq!(json["cpus"].as_f64(), Some(a.cpus()));
            prop_assert_eq!(json["mem"].as_f64(), Some(a.mem()));
            prop_assert_eq!(json["disk"].as_f64(), Some(a.disk()));
            prop_assert_eq!(json["gpus"].as_f64(), Some(a.gpus()));
        }

        #[test]
        fn parse_never_panics(text in ".{0,64}") {
            let _ = Resources::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_near_misses(text in "[a-z()*/:;,{}\\[\\]0-9. -]{0,40}") {
            if let Ok(x) = Resources::parse(&text) {
                assert_normalized(&x);
                prop_assert_eq!(Resources::parse(&x.to_string()).unwrap(), x);
            }
        }
    }
}
