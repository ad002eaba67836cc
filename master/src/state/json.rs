//! `/state` written straight to bytes: [`Master::state_json_chunks`] writes the document
//! [`Master::state_json`] builds as a `serde_json::Value` (same fields, same key order: a
//! `serde_json::Map` keeps its keys sorted, so the fields here are written in that order), agents
//! through structs that borrow from the state, frameworks and tasks by hand. A large cluster's
//! `/state` then costs one pass over the state into a few reused buffers, not a tree of small
//! allocations built on the actor and walked again.

use super::{Agent, AgentState, Framework, Master, Task};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use strata_schema::resources::ResourcesJson;
use strata_schema::Resources;

/// Serializes the items of an iterator as a JSON array without collecting them.
struct Seq<I>(std::cell::Cell<Option<I>>);

impl<I> Seq<I> {
    fn new(items: I) -> Self {
        Seq(std::cell::Cell::new(Some(items)))
    }
}

impl<I> Serialize for Seq<I>
where
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        if let Some(items) = self.0.take() {
            for item in items {
                seq.serialize_element(&item)?;
            }
        }
        seq.end()
    }
}

/// Writes `s` as a JSON string, as serde_json does: ids and names need no escaping, and are
/// copied as they are.
fn write_str(buf: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        buf.reserve(s.len() + 2);
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(buf, s)
    }
}

/// A task as `/state` shows it (the keys in `state_json`'s sorted order), written by hand: at
/// 100,000 tasks serde's escaping of every key was a fifth of the answer's time.
fn write_task(task: &Task, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    buf.push(b'{');
    // The task's `ContainerInfo` (its image), when it has one: through a `Value`, for the keys
    // in `state_json`'s (sorted) order.
    if let Some(container) = task
        .info
        .container
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok())
    {
        buf.extend_from_slice(b"\"container\":");
        serde_json::to_writer(&mut *buf, &container)?;
        buf.push(b',');
    }
    buf.extend_from_slice(b"\"container_id\":");
    match task.latest.as_ref().and_then(|s| s.container_id.as_ref()) {
        Some(id) => write_str(buf, id.as_str())?,
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"framework_id\":");
    write_str(buf, task.framework_id.as_str())?;
    buf.extend_from_slice(b",\"id\":");
    write_str(buf, task.info.task_id.as_str())?;
    buf.extend_from_slice(b",\"name\":");
    write_str(buf, &task.info.name)?;
    buf.extend_from_slice(b",\"resources\":");
    serde_json::to_writer(&mut *buf, &task.info.resources.json())?;
    buf.extend_from_slice(b",\"slave_id\":");
    write_str(buf, task.info.agent_id.as_str())?;
    buf.extend_from_slice(b",\"state\":");
    write_str(buf, task.state.mesos_name())?;
    buf.extend_from_slice(b",\"statuses\":[");
    for (i, (state, timestamp, message)) in task.statuses.iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"message\":");
        write_str(buf, message)?;
        buf.extend_from_slice(b",\"state\":");
        write_str(buf, state.mesos_name())?;
        buf.extend_from_slice(b",\"timestamp\":");
        serde_json::to_writer(&mut *buf, timestamp)?;
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
    Ok(())
}

fn write_tasks<'a>(
    tasks: impl Iterator<Item = &'a Task>,
    buf: &mut Vec<u8>,
) -> serde_json::Result<()> {
    buf.push(b'[');
    for (i, task) in tasks.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        write_task(task, buf)?;
    }
    buf.push(b']');
    Ok(())
}

#[derive(Serialize)]
struct OfferIdJson<'a> {
    id: &'a str,
}

#[derive(Serialize)]
struct LabelJson<'a> {
    key: &'a str,
    value: &'a str,
}

/// A framework as `/state` shows it, its fields in `state_json`'s (sorted) order.
fn write_framework(fw: &Framework, active: bool, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    let roles = fw.info.effective_roles();
    let mut o = Object::start(buf);
    o.field("active", &(active && fw.active()))?;
    o.field("capabilities", &fw.info.capabilities)?;
    o.field("checkpoint", &fw.info.checkpoint)?;
    o.key("completed_tasks")?;
    write_tasks(fw.completed_tasks.iter().map(|t| &**t), o.out)?;
    o.field("connected", &fw.active())?;
    o.field("failover_timeout", &fw.info.failover_timeout_secs)?;
    o.field("hostname", &fw.info.hostname)?;
    o.field("id", fw.id.as_str())?;
    let labels: Vec<LabelJson<'_>> = fw
        .info
        .labels
        .iter()
        .map(|(key, value)| LabelJson { key, value })
        .collect();
    o.field("labels", &labels)?;
    o.field("name", &fw.info.name)?;
    o.field("offered_resources", &fw.offered.json())?;
    o.field(
        "offers",
        &Seq::new(fw.offers.iter().map(|id| OfferIdJson { id: id.as_str() })),
    )?;
    o.field("principal", &fw.info.principal)?;
    o.field("registered_time", &fw.registered_time)?;
    o.field("role", &roles.first().cloned().unwrap_or_default())?;
    o.field("roles", &roles)?;
    o.key("tasks")?;
    write_tasks(fw.tasks.values().map(|t| &**t), o.out)?;
    o.field("used_resources", &fw.used.json())?;
    o.field("user", &fw.info.user)?;
    o.field("webui_url", &fw.info.webui_url)?;
    o.end();
    Ok(())
}

#[derive(Serialize)]
struct DrainConfigJson {
    mark_gone: bool,
    max_grace_period: Option<f64>,
}

#[derive(Serialize)]
struct DrainInfoJson {
    config: DrainConfigJson,
    state: &'static str,
}

/// What an agent's JSON computes from its resources (owned, borrowed by [`AgentJson`]).
struct AgentResources {
    total: Resources,
    free: Resources,
    unreserved: Resources,
    reserved: Vec<(String, Resources)>,
}

#[derive(Serialize)]
struct AgentJson<'a> {
    active: bool,
    attributes: Json,
    deactivated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    drain_info: Option<DrainInfoJson>,
    dynamic_reservations: String,
    free_resources: ResourcesJson<'a>,
    hostname: &'a str,
    id: &'a str,
    maintenance: &'static str,
    offered_resources: ResourcesJson<'a>,
    pid: String,
    port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    registered_time: f64,
    reserved_resources: BTreeMap<&'a str, ResourcesJson<'a>>,
    resources: ResourcesJson<'a>,
    state: &'static str,
    unreserved_resources: ResourcesJson<'a>,
    used_resources: ResourcesJson<'a>,
}

/// One agent's entry of `slaves`, written to `serializer`.
fn serialize_agent<S: Serializer>(
    master: &Master,
    a: &Agent,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let total = a.total();
    let mut reserved: Vec<(String, Resources)> = Vec::new();
    for role in total
        .iter()
        .map(|r| r.role.as_str())
        .filter(|r| *r != strata_schema::DEFAULT_ROLE)
    {
        if !reserved.iter().any(|(r, _)| r == role) {
            reserved.push((role.to_string(), total.reserved(role)));
        }
    }
    let owned = AgentResources {
        free: total.saturating_sub(&a.used),
        unreserved: total.unreserved(),
        total,
        reserved,
    };
    let service = master.agent_service(&a.id);
    AgentJson {
        active: a.state == AgentState::Active,
        attributes: a.info.attributes.to_json(),
        deactivated: a.drain.is_some() || a.down,
        drain_info: a.drain.as_ref().map(|drain| DrainInfoJson {
            config: DrainConfigJson {
                mark_gone: drain.mark_gone,
                max_grace_period: drain.max_grace_period_secs,
            },
            state: service,
        }),
        dynamic_reservations: a.reservations.to_string(),
        free_resources: owned.free.json(),
        hostname: &a.info.hostname,
        id: a.id.as_str(),
        maintenance: service,
        offered_resources: a.offered.json(),
        pid: format!("slave(1)@{}:{}", a.info.hostname, a.info.port),
        port: a.info.port,
        principal: a.principal.as_deref(),
        registered_time: a.registered_time,
        reserved_resources: owned
            .reserved
            .iter()
            .map(|(role, res)| (role.as_str(), res.json()))
            .collect(),
        resources: owned.total.json(),
        state: a.state.name(),
        unreserved_resources: owned.unreserved.json(),
        used_resources: a.used.json(),
    }
    .serialize(serializer)
}

/// How long the buffers of a `/state` answer are kept for the next one.
const RETAIN_BUFFERS: std::time::Duration = std::time::Duration::from_secs(30);

/// The writer threads' buffers of `/state` answers, kept for the next answer while answers come
/// (the web UI polls `/state`): a 50 MB answer written into fresh memory spends about as long
/// faulting its pages in as serializing. Let go once no answer took them for
/// [`RETAIN_BUFFERS`] ([`BufferPool::expire`], on the actor's tick).
#[derive(Debug, Clone, Default)]
pub struct BufferPool(std::sync::Arc<std::sync::Mutex<PoolInner>>);

#[derive(Debug, Default)]
struct PoolInner {
    free: Vec<Vec<u8>>,
    last_taken: Option<std::time::Instant>,
}

impl BufferPool {
    /// At most this many buffers are kept.
    const MAX_FREE: usize = 8;

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An empty buffer with room for `capacity` bytes: the smallest kept one that has it, or a
    /// new one.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let mut inner = self.lock();
        inner.last_taken = Some(std::time::Instant::now());
        let best = inner
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= capacity)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => inner.free.swap_remove(i),
            None => Vec::with_capacity(capacity),
        }
    }

    /// Keeps `buf` for a later answer.
    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut inner = self.lock();
        if inner.free.len() < Self::MAX_FREE {
            inner.free.push(buf);
        }
    }

    /// Lets the kept buffers go when no answer took one for [`RETAIN_BUFFERS`].
    pub fn expire(&self, now: std::time::Instant) {
        let mut inner = self.lock();
        if inner
            .last_taken
            .is_none_or(|t| now.saturating_duration_since(t) >= RETAIN_BUFFERS)
        {
            inner.free = Vec::new();
        }
    }

    /// Bytes held in kept buffers.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.lock().free.iter().map(Vec::capacity).sum()
    }
}

/// A buffer on its way out as a body chunk, returned to its pool once sent.
struct Pooled {
    buf: Vec<u8>,
    pool: BufferPool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

/// A document written in pieces: the parts the writer threads wrote stay as they are (sent as
/// the body's chunks) rather than being copied into one buffer, which for a 50 MB `/state` cost
/// as much as writing it (fresh pages to fault in, and the copy).
#[derive(Debug, Default)]
pub struct Chunks {
    done: Vec<Vec<u8>>,
    cur: Vec<u8>,
    /// Where the large parts' buffers came from, and go back to.
    pool: Option<BufferPool>,
}

impl Chunks {
    fn with_pool(pool: BufferPool) -> Self {
        Chunks {
            pool: Some(pool),
            ..Chunks::default()
        }
    }

    /// An empty buffer for a part of about `capacity` bytes.
    fn buffer(&self, capacity: usize) -> Vec<u8> {
        match &self.pool {
            Some(pool) => pool.take(capacity),
            None => Vec::with_capacity(capacity),
        }
    }

    /// The chunks as body parts; pooled buffers go back to their pool once sent.
    pub fn into_bytes(mut self) -> Vec<bytes::Bytes> {
        let pool = self.pool.take();
        self.into_parts()
            .into_iter()
            .map(|buf| match &pool {
                Some(pool) => bytes::Bytes::from_owner(Pooled {
                    buf,
                    pool: pool.clone(),
                }),
                None => bytes::Bytes::from(buf),
            })
            .collect()
    }

    fn push(&mut self, byte: u8) {
        self.cur.push(byte);
    }

    /// Appends a finished part as a chunk of its own.
    fn append(&mut self, part: Vec<u8>) {
        if !self.cur.is_empty() {
            self.done.push(std::mem::take(&mut self.cur));
        }
        self.done.push(part);
    }

    /// The document's length in bytes.
    pub fn len(&self) -> usize {
        self.done.iter().map(Vec::len).sum::<usize>() + self.cur.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The chunks, in order.
    pub fn into_parts(mut self) -> Vec<Vec<u8>> {
        if !self.cur.is_empty() {
            self.done.push(self.cur);
        }
        self.done
    }

    /// The document in one buffer.
    pub fn concat(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for part in self.into_parts() {
            out.extend_from_slice(&part);
        }
        out
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.cur.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where [`Object`] writes: a buffer, or a document in [`Chunks`].
trait Out: std::io::Write {
    fn byte(&mut self, byte: u8);
}

impl Out for Vec<u8> {
    fn byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

impl Out for Chunks {
    fn byte(&mut self, byte: u8) {
        self.push(byte);
    }
}

/// Writes a JSON object's fields in the order they are given.
struct Object<'a, W: Out> {
    out: &'a mut W,
    empty: bool,
}

impl<'a, W: Out> Object<'a, W> {
    fn start(out: &'a mut W) -> Self {
        out.byte(b'{');
        Object { out, empty: true }
    }

    fn key(&mut self, key: &str) -> serde_json::Result<()> {
        if !self.empty {
            self.out.byte(b',');
        }
        self.empty = false;
        serde_json::to_writer(&mut *self.out, key)?;
        self.out.byte(b':');
        Ok(())
    }

    fn field(&mut self, key: &str, value: &(impl Serialize + ?Sized)) -> serde_json::Result<()> {
        self.key(key)?;
        serde_json::to_writer(&mut *self.out, value)
    }

    fn end(self) {
        self.out.byte(b'}');
    }
}

/// Writes `items` as a JSON array, each item by `write`; with `threads` > 1 and enough weight,
/// contiguous parts of about equal `weight` are written on threads of their own and joined in
/// order.
fn write_array<T: Sync>(
    out: &mut Chunks,
    items: &[T],
    threads: usize,
    (weight, bytes_per_weight): (impl Fn(&T) -> usize, usize),
    write: impl Fn(&T, &mut Vec<u8>) -> serde_json::Result<()> + Sync,
) -> serde_json::Result<()> {
    let write_part = |part: &[T], buf: &mut Vec<u8>| -> serde_json::Result<()> {
        for (i, item) in part.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            write(item, buf)?;
        }
        Ok(())
    };
    out.push(b'[');
    let total: usize = items.iter().map(&weight).sum();
    if threads <= 1 || items.len() < 2 || total < PARALLEL_ABOVE {
        write_part(items, &mut out.cur)?;
        out.push(b']');
        return Ok(());
    }
    // Cut where the running weight passes each thread's share.
    let share = total.div_ceil(threads).max(1);
    let mut parts: Vec<&[T]> = Vec::with_capacity(threads);
    let (mut from, mut sum) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        sum += weight(item);
        if sum >= share * (parts.len() + 1) && parts.len() + 1 < threads {
            parts.push(&items[from..=i]);
            from = i + 1;
        }
    }
    if from < items.len() {
        parts.push(&items[from..]);
    }
    // Sized up front from the weight: a buffer grown by doubling to tens of MB is copied and
    // faulted in again at each step. Capacity not written to costs no memory.
    let buffers: Vec<Vec<u8>> = parts
        .iter()
        .map(|part| out.buffer(part.iter().map(&weight).sum::<usize>() * bytes_per_weight))
        .collect();
    let written: Vec<serde_json::Result<Vec<u8>>> = std::thread::scope(|scope| {
        let mut jobs = parts.iter().zip(buffers);
        let first = jobs.next();
        let handles: Vec<_> = jobs
            .map(|(part, mut buf)| scope.spawn(move || write_part(part, &mut buf).map(|()| buf)))
            .collect();
        // The first part on this thread, meanwhile.
        let mut all = vec![first.map_or(Ok(Vec::new()), |(part, mut buf)| {
            write_part(part, &mut buf).map(|()| buf)
        })];
        for handle in handles {
            all.push(handle.join().unwrap_or_else(|_| {
                Err(serde::ser::Error::custom("a /state writer thread panicked"))
            }));
        }
        all
    });
    let mut wrote_any = false;
    for part in written {
        let part = part?;
        if part.is_empty() {
            continue;
        }
        if wrote_any {
            out.push(b',');
        }
        out.append(part);
        wrote_any = true;
    }
    out.push(b']');
    Ok(())
}

/// Below this many tasks and agents an array is written on the actor's thread alone.
const PARALLEL_ABOVE: usize = 20_000;

/// Threads that write a large `/state`: the actor's and up to three more.
fn writer_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

impl Master {
    /// The `/state` document of [`Master::state_json`], serialized: the same bytes as
    /// `serde_json::to_vec(&self.state_json())`, without building the `Value` tree. The
    /// frameworks (by their tasks) and the agents of a large cluster are written by several
    /// threads, each borrowing the state while the actor waits; their parts are the chunks.
    pub fn state_json_chunks(&self) -> Chunks {
        let mut out = Chunks::with_pool(self.state_buffers.clone());
        // Writing borrowed data fails only if a map had a non-string key.
        if let Err(err) = self.write_state(&mut out) {
            tracing::error!(cause = %err, "failed to serialize /state");
            out = Chunks::default();
        }
        out
    }

    /// Lets the buffers of `/state` answers go once answers stopped coming.
    pub fn expire_state_buffers(&self, now: std::time::Instant) {
        self.state_buffers.expire(now);
    }

    /// [`Self::state_json_chunks`] in one buffer.
    pub fn state_json_bytes(&self) -> Vec<u8> {
        self.state_json_chunks().concat()
    }

    fn write_state(&self, out: &mut Chunks) -> serde_json::Result<()> {
        let mut agents: Vec<&Agent> = self.agents.values().collect();
        agents.sort_by(|a, b| a.id.cmp(&b.id));
        let mut frameworks: Vec<&Framework> = self.frameworks.values().collect();
        frameworks.sort_by(|a, b| a.id.cmp(&b.id));
        let count = |s| self.agents.values().filter(|a| a.state == s).count();
        let (mut total, mut used, mut offered) =
            (Resources::new(), Resources::new(), Resources::new());
        for a in self
            .agents
            .values()
            .filter(|a| a.state != AgentState::Unreachable)
        {
            total.add(&a.total());
            used.add(&a.used);
            offered.add(&a.offered);
        }
        let threads = writer_threads();
        let framework_weight = |f: &&Framework| 1 + f.tasks.len() + f.completed_tasks.len();
        let mut o = Object::start(out);
        o.field("activated_slaves", &count(AgentState::Active))?;
        o.key("completed_frameworks")?;
        let completed: Vec<&Framework> = self.completed_frameworks.iter().collect();
        write_array(
            o.out,
            &completed,
            threads,
            (framework_weight, 512),
            |f, buf| write_framework(f, false, buf),
        )?;
        o.field("deactivated_slaves", &count(AgentState::Disconnected))?;
        o.field("elected_time", &self.start_time)?;
        o.key("frameworks")?;
        write_array(
            o.out,
            &frameworks,
            threads,
            (framework_weight, 512),
            |f, buf| write_framework(f, true, buf),
        )?;
        o.field("free_resources", &total.saturating_sub(&used).json())?;
        o.field("hostname", &self.info.hostname)?;
        o.field("id", &self.info.id)?;
        o.field("maintenance_status", &self.maintenance_json())?;
        o.field("offered_resources", &offered.json())?;
        o.field(
            "pid",
            &format!("master@{}:{}", self.info.ip, self.info.port),
        )?;
        o.field("port", &self.info.port)?;
        o.field(
            "quota",
            &self
                .quota_json()
                .as_object_mut()
                .and_then(|q| q.remove("configs"))
                .unwrap_or_default(),
        )?;
        o.key("slaves")?;
        write_array(
            o.out,
            &agents,
            threads,
            // About 700 bytes an agent.
            (|_: &&Agent| 10, 100),
            |a, buf| serialize_agent(self, a, &mut serde_json::Serializer::new(buf)),
        )?;
        o.field("start_time", &self.start_time)?;
        o.field("total_resources", &total.json())?;
        o.field("unreachable_slaves", &count(AgentState::Unreachable))?;
        o.field("used_resources", &used.json())?;
        o.field("version", &self.info.version)?;
        o.field("weights", &self.weights_json())?;
        o.end();
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{AgentCommand, ConnId, Operation, SchedulerEvent, StateConfig};
    use super::*;
    use crate::registry::{DrainConfig, MaintenanceWindow, QuotaConfig};
    use std::time::Instant;
    use strata_schema::{
        AgentId, AgentInfo, Attributes, CommandInfo, FrameworkId, FrameworkInfo, MasterInfo,
        StatusSource, TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid,
    };
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn res(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    fn master() -> Master {
        let info = MasterInfo {
            id: "m".into(),
            hostname: "h".into(),
            ip: "127.0.0.1".into(),
            port: 5050,
            version: "0".into(),
        };
        Master::new(info, StateConfig::default())
    }

    fn agent(
        m: &mut Master,
        conn: ConnId,
        host: &str,
        text: &str,
    ) -> (AgentId, UnboundedReceiver<AgentCommand>) {
        let (tx, rx) = unbounded_channel();
        let info = AgentInfo {
            hostname: host.into(),
            port: 5051,
            resources: res(text),
            attributes: "rack:r1;u:2;zone:{a,b}".parse::<Attributes>().unwrap(),
            ..Default::default()
        };
        (m.register_agent(conn, info, tx, vec![]).unwrap(), rx)
    }

    fn framework(
        m: &mut Master,
        conn: ConnId,
        roles: &[&str],
    ) -> (FrameworkId, UnboundedReceiver<SchedulerEvent>) {
        let (tx, rx) = unbounded_channel();
        let info = FrameworkInfo {
            name: format!("f{conn}"),
            user: "root".into(),
            hostname: "fh".into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        (m.subscribe(conn, info, tx).unwrap(), rx)
    }

    fn offers(rx: &mut UnboundedReceiver<SchedulerEvent>) -> Vec<super::super::OfferEvent> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let SchedulerEvent::Offers(o) = e {
                out.extend(o);
            }
        }
        out
    }

    fn task(id: &str, agent: &AgentId, text: &str) -> TaskInfo {
        TaskInfo {
            task_id: TaskId::new(id).unwrap(),
            name: format!("task \"{id}\"\n"),
            agent_id: agent.clone(),
            resources: res(text),
            command: CommandInfo::shell("true"),
            kill_grace_period_secs: None,
            hostname: None,
            container: None,
            executor: None,
            data: Vec::new(),
            labels: Vec::new(),
        }
    }

    fn status(fw: &FrameworkId, agent: &AgentId, id: &str, state: TaskState) -> TaskStatus {
        TaskStatus {
            task_id: TaskId::new(id).unwrap(),
            state,
            message: format!("now {state}: \u{e9}\t"),
            source: StatusSource::Executor,
            reason: None,
            agent_id: Some(agent.clone()),
            framework_id: Some(fw.clone()),
            container_id: Some(strata_schema::ContainerId::new(format!("c-{id}")).unwrap()),
            timestamp: 1.5,
            uuid: Some(UpdateUuid::random()),
            exit_code: None,
        }
    }

    #[test]
    fn a_large_array_is_written_in_parallel_parts_kept_as_chunks() {
        let items: Vec<u32> = (0..50_000).collect();
        let mut out = Chunks::default();
        out.push(b'{');
        write_array(&mut out, &items, 3, (|_: &u32| 1, 8), |i, buf| {
            serde_json::to_writer(buf, i)
        })
        .unwrap();
        out.push(b'}');
        let len = out.len();
        let parts = out.into_parts();
        // "{[" , the three parts with the commas between them, "]}".
        assert!(parts.len() >= 5, "{} parts", parts.len());
        let text = String::from_utf8(parts.concat()).unwrap();
        assert_eq!(text.len(), len);
        assert_eq!(
            text,
            format!("{{{}}}", serde_json::to_string(&items).unwrap())
        );
        // Small arrays stay on this thread, in one chunk.
        let mut small = Chunks::default();
        write_array(&mut small, &items[..10], 3, (|_: &u32| 1, 8), |i, buf| {
            serde_json::to_writer(buf, i)
        })
        .unwrap();
        assert_eq!(small.into_parts().len(), 1);
    }

    #[test]
    fn state_buffers_are_reused_while_answers_come_then_let_go() {
        let pool = BufferPool::default();
        let items: Vec<u32> = (0..50_000).collect();
        let write = |out: &mut Chunks| {
            write_array(out, &items, 2, (|_: &u32| 1, 8), |i, buf| {
                serde_json::to_writer(buf, i)
            })
            .unwrap()
        };
        let mut first = Chunks::with_pool(pool.clone());
        write(&mut first);
        let sent = first.into_bytes();
        let addresses: Vec<usize> = sent.iter().map(|b| b.as_ptr() as usize).collect();
        assert_eq!(pool.kept(), 0, "the buffers are out with the answer");
        // Sent: the parts' buffers come back.
        drop(sent);
        let kept = pool.kept();
        assert!(kept >= 50_000 * 8, "{kept} bytes kept");
        // The next answer writes into the same memory.
        let mut second = Chunks::with_pool(pool.clone());
        write(&mut second);
        let again = second.into_bytes();
        assert!(
            again
                .iter()
                .filter(|b| addresses.contains(&(b.as_ptr() as usize)))
                .count()
                >= 2,
            "the parts' buffers are reused"
        );
        assert_eq!(
            again
                .iter()
                .flat_map(|b| b.iter().copied())
                .collect::<Vec<u8>>(),
            serde_json::to_vec(&items).unwrap()
        );
        drop(again);
        // Kept while answers come; let go once none came for a while.
        pool.expire(Instant::now());
        assert!(pool.kept() > 0);
        pool.expire(Instant::now() + RETAIN_BUFFERS);
        assert_eq!(pool.kept(), 0);
    }

    fn assert_same(m: &Master) {
        let built = serde_json::to_string(&m.state_json()).unwrap();
        let written = String::from_utf8(m.state_json_bytes()).unwrap();
        assert_eq!(written, built);
    }

    #[test]
    fn bytes_are_those_of_the_value() {
        let mut m = master();
        let now = Instant::now();
        assert_same(&m);
        let (a, _arx) = agent(&mut m, 1, "a", "cpus:4;mem:1024;ports:[31000-32000]");
        let (b, _brx) = agent(&mut m, 2, "b", "cpus:2;mem:512;disk:100;gpus:1");
        let (c, _crx) = agent(&mut m, 3, "c", "cpus:1;mem:64");
        m.operator_reserve(&b, res("cpus(ops):1;mem(ops):128"))
            .unwrap();
        m.set_weights(vec![("ops".into(), 2.0)]).unwrap();
        m.set_quota(
            "ops",
            QuotaConfig {
                guarantees: res("cpus:1"),
                limits: res("cpus:3;mem:1024"),
            },
        )
        .unwrap();
        m.set_schedule(vec![MaintenanceWindow {
            machines: vec!["c".into()],
            start: 10.0,
            duration: Some(60.0),
        }])
        .unwrap();
        let (f, mut frx) = framework(&mut m, 10, &[]);
        let (g, mut grx) = framework(&mut m, 11, &["ops", "eng"]);
        m.allocate(now);
        assert_same(&m);
        // f launches two tasks on what it was offered; one finishes.
        let fo = offers(&mut frx);
        let on_a = fo.iter().find(|o| o.agent_id == a).map(|o| o.id.clone());
        if let Some(offer) = on_a {
            m.accept(
                10,
                &f,
                &[offer],
                vec![Operation::Launch(vec![
                    task("t1", &a, "cpus:1;mem:128;ports:[31000-31001]"),
                    TaskInfo {
                        container: Some(strata_schema::ContainerInfo::image(
                            strata_schema::ImageType::Docker,
                            "busybox:1.36",
                        )),
                        ..task("t2", &a, "cpus:1;mem:128")
                    },
                ])],
                0.0,
                now,
            )
            .unwrap();
            for (id, state) in [
                ("t1", TaskState::Running),
                ("t2", TaskState::Running),
                ("t2", TaskState::Finished),
            ] {
                m.status_update(1, &a, status(&f, &a, id, state)).unwrap();
            }
        }
        let _ = offers(&mut grx);
        assert_same(&m);
        let written = String::from_utf8(m.state_json_bytes()).unwrap();
        assert!(
            !written.contains(r#""id":"t2""#) || written.contains(r#""name":"busybox:1.36""#),
            "{written}"
        );
        m.drain_agent(
            &c,
            DrainConfig {
                max_grace_period_secs: Some(5.0),
                mark_gone: true,
            },
        )
        .unwrap();
        m.connection_closed(2, now);
        assert_same(&m);
        m.teardown(11, &g).unwrap();
        m.allocate(now);
        assert_same(&m);
    }
}
