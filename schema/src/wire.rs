//! Conversions between the generated Cap'n Proto readers/builders and the domain types. Readers
//! validate everything they convert (ids, resources, task states), so the rest of the workspace
//! only ever sees well-formed values.

use crate::common_capnp::{
    agent_info, attribute, command_info, executor_info, framework_info, label, master_info,
    resource, task_info, task_status,
};
use crate::{
    AgentId, AgentInfo, Attribute, AttributeValue, Attributes, CommandInfo, ContainerId, DiskInfo,
    ExecutorId, ExecutorInfo, ExecutorKind, FrameworkId, FrameworkInfo, MasterInfo, Range,
    Resource, Resources, StatusSource, TaskId, TaskInfo, TaskState, TaskStatus, UpdateUuid, Value,
};
use crate::{ContainerInfo, ContainerType, Image, ImageType, Volume, VolumeMode};
use capnp::struct_list;
use std::collections::BTreeSet;

/// Largest message, in 8-byte words, a Strata RPC connection reads (64 MiB), and the most words
/// one message may make its reader traverse. Cap'n Proto's default is 64 Mi words (512 MiB), and a
/// peer's frame header alone makes the reader allocate what it announces, so each connection could
/// hold half a gigabyte before sending it. The largest legitimate messages are an agent's
/// registration with its running tasks and a batch of offers: a registration carrying 10,000
/// tasks with commands, resources and labels is under 2 Mi words (`registration_fits` measures
/// it), a quarter of this.
pub const RPC_TRAVERSAL_LIMIT_WORDS: usize = 8 << 20;

/// Deepest pointer nesting an RPC message may have (Cap'n Proto's default, stated here): Strata's
/// deepest structure (a registration's task's container's image) is under 10.
pub const RPC_NESTING_LIMIT: i32 = 64;

/// The reader options of every Strata Cap'n Proto RPC connection (master, agent, scheduler
/// driver): [`RPC_TRAVERSAL_LIMIT_WORDS`] and [`RPC_NESTING_LIMIT`]. A message past them ends its
/// connection, and no other.
pub fn rpc_reader_options() -> capnp::message::ReaderOptions {
    let mut options = capnp::message::ReaderOptions::new();
    options.traversal_limit_in_words(Some(RPC_TRAVERSAL_LIMIT_WORDS));
    options.nesting_limit(RPC_NESTING_LIMIT);
    options
}

/// A message could not be decoded or held an invalid value.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("malformed message: {0}")]
    Capnp(#[from] capnp::Error),
    #[error("invalid {field}: {why}")]
    Invalid { field: &'static str, why: String },
}

impl From<capnp::NotInSchema> for WireError {
    fn from(err: capnp::NotInSchema) -> Self {
        WireError::Capnp(err.into())
    }
}

impl From<WireError> for capnp::Error {
    fn from(err: WireError) -> Self {
        capnp::Error::failed(err.to_string())
    }
}

/// Most elements one list of a message may have. A list of zero-sized elements takes no bytes
/// of its message while Cap'n Proto charges its reader a word per element, so without a bound a
/// message of a few dozen bytes makes a decoder build millions of (empty) values, hundreds of
/// megabytes, within the traversal limit (found by the `wire` fuzzer:
/// `fuzz/regressions/wire/`). The longest legitimate lists (an agent's running tasks, an
/// ACCEPT's launches, a command's arguments) are far shorter.
pub const MAX_LIST_LEN: u32 = 1 << 16;

/// Refuses a list longer than [`MAX_LIST_LEN`], naming the field.
pub fn check_len(len: u32, field: &'static str) -> Result<(), WireError> {
    if len > MAX_LIST_LEN {
        return Err(invalid(
            field,
            format!("a list of {len} elements (at most {MAX_LIST_LEN})"),
        ));
    }
    Ok(())
}

fn invalid(field: &'static str, why: impl ToString) -> WireError {
    WireError::Invalid {
        field,
        why: why.to_string(),
    }
}

/// Reads a text field as an owned `String`.
pub fn text(reader: capnp::Result<capnp::text::Reader<'_>>) -> Result<String, WireError> {
    reader?
        .to_string()
        .map_err(|e| invalid("text", format!("not UTF-8: {e}")))
}

fn opt_text(reader: capnp::Result<capnp::text::Reader<'_>>) -> Result<Option<String>, WireError> {
    let value = text(reader)?;
    Ok((!value.is_empty()).then_some(value))
}

pub fn executor_id(
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<ExecutorId, WireError> {
    ExecutorId::new(text(reader)?).map_err(|e| invalid("executor id", e))
}

/// An executor id that may be empty (`""` = none).
pub fn opt_executor_id(
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<Option<ExecutorId>, WireError> {
    opt_text(reader)?
        .map(|v| ExecutorId::new(v).map_err(|e| invalid("executor id", e)))
        .transpose()
}

pub fn labels(
    reader: capnp::Result<struct_list::Reader<'_, label::Owned>>,
) -> Result<Vec<(String, String)>, WireError> {
    let reader = reader?;
    check_len(reader.len(), "labels")?;
    let mut out = Vec::new();
    for l in reader.iter() {
        out.push((text(l.get_key())?, text(l.get_value())?));
    }
    Ok(out)
}

pub fn set_labels(mut b: struct_list::Builder<'_, label::Owned>, labels: &[(String, String)]) {
    for (i, (key, value)) in labels.iter().enumerate() {
        let mut l = b.reborrow().get(i as u32);
        l.set_key(key.as_str());
        l.set_value(value.as_str());
    }
}

pub fn executor(reader: executor_info::Reader<'_>) -> Result<ExecutorInfo, WireError> {
    Ok(ExecutorInfo {
        kind: match reader.get_type()? {
            executor_info::Type::Custom => ExecutorKind::Custom,
            executor_info::Type::Default => ExecutorKind::Default,
        },
        executor_id: executor_id(reader.get_executor_id())?,
        name: text(reader.get_name())?,
        command: if reader.has_command() {
            command(reader.get_command()?)?
        } else {
            CommandInfo::default()
        },
        resources: resources(reader.get_resources())?,
        container: if reader.has_container() {
            Some(container(reader.get_container()?)?)
        } else {
            None
        },
        data: reader.get_data()?.to_vec(),
    })
}

pub fn set_executor(mut b: executor_info::Builder<'_>, e: &ExecutorInfo) {
    b.set_type(match e.kind {
        ExecutorKind::Custom => executor_info::Type::Custom,
        ExecutorKind::Default => executor_info::Type::Default,
    });
    b.set_executor_id(e.executor_id.as_str());
    b.set_name(e.name.as_str());
    if e.kind == ExecutorKind::Custom {
        set_command(b.reborrow().init_command(), &e.command);
    }
    set_resources(b.reborrow().init_resources(len(&e.resources)), &e.resources);
    if let Some(c) = &e.container {
        set_container(b.reborrow().init_container(), c);
    }
    b.set_data(&e.data);
}

pub fn task_id(reader: capnp::Result<capnp::text::Reader<'_>>) -> Result<TaskId, WireError> {
    TaskId::new(text(reader)?).map_err(|e| invalid("task id", e))
}

pub fn agent_id(reader: capnp::Result<capnp::text::Reader<'_>>) -> Result<AgentId, WireError> {
    AgentId::new(text(reader)?).map_err(|e| invalid("agent id", e))
}

pub fn framework_id(
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<FrameworkId, WireError> {
    FrameworkId::new(text(reader)?).map_err(|e| invalid("framework id", e))
}

/// An optional id: empty text means absent.
pub fn opt_agent_id(
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<Option<AgentId>, WireError> {
    opt_text(reader)?
        .map(|v| AgentId::new(v).map_err(|e| invalid("agent id", e)))
        .transpose()
}

pub fn opt_framework_id(
    reader: capnp::Result<capnp::text::Reader<'_>>,
) -> Result<Option<FrameworkId>, WireError> {
    opt_text(reader)?
        .map(|v| FrameworkId::new(v).map_err(|e| invalid("framework id", e)))
        .transpose()
}

pub fn text_list(
    reader: capnp::Result<capnp::text_list::Reader<'_>>,
) -> Result<Vec<String>, WireError> {
    let reader = reader?;
    check_len(reader.len(), "text list")?;
    reader.iter().map(text).collect()
}

pub fn set_text_list(mut builder: capnp::text_list::Builder<'_>, items: &[String]) {
    for (i, item) in items.iter().enumerate() {
        builder.set(i as u32, item.as_str());
    }
}

fn ranges_from(
    reader: capnp::Result<struct_list::Reader<'_, crate::common_capnp::range::Owned>>,
) -> Result<Vec<Range>, WireError> {
    let reader = reader?;
    check_len(reader.len(), "ranges")?;
    Ok(reader
        .iter()
        .map(|r| Range {
            begin: r.get_begin(),
            end: r.get_end(),
        })
        .collect())
}

fn set_ranges(
    mut builder: struct_list::Builder<'_, crate::common_capnp::range::Owned>,
    ranges: &[Range],
) {
    for (i, range) in ranges.iter().enumerate() {
        let mut b = builder.reborrow().get(i as u32);
        b.set_begin(range.begin);
        b.set_end(range.end);
    }
}

fn set_from(
    reader: capnp::Result<capnp::text_list::Reader<'_>>,
) -> Result<BTreeSet<String>, WireError> {
    Ok(text_list(reader)?.into_iter().collect())
}

pub fn resources(
    reader: capnp::Result<struct_list::Reader<'_, resource::Owned>>,
) -> Result<Resources, WireError> {
    let reader = reader?;
    check_len(reader.len(), "resources")?;
    let mut items = Vec::new();
    for r in reader.iter() {
        let value = match r.get_value().which()? {
            resource::value::Scalar(v) => Value::Scalar(v),
            resource::value::Ranges(v) => Value::Ranges(ranges_from(v)?),
            resource::value::Set(v) => Value::Set(set_from(v)?),
        };
        let role = text(r.get_role())?;
        let role = if role.is_empty() {
            crate::DEFAULT_ROLE.to_string()
        } else {
            role
        };
        let disk = if r.has_disk() {
            let d = r.get_disk()?;
            Some(DiskInfo {
                persistence_id: text(d.get_persistence_id())?,
                container_path: text(d.get_container_path())?,
                read_only: d.get_read_only(),
            })
        } else {
            None
        };
        items.push(Resource {
            name: text(r.get_name())?,
            role,
            value,
            disk: disk.map(Box::new),
        });
    }
    Resources::from_vec(items).map_err(|e| invalid("resources", e))
}

pub fn set_resources(mut builder: struct_list::Builder<'_, resource::Owned>, res: &Resources) {
    for (i, r) in res.iter().enumerate() {
        let mut b = builder.reborrow().get(i as u32);
        b.set_name(r.name.as_str());
        b.set_role(r.role.as_str());
        if let Some(disk) = &r.disk {
            let mut d = b.reborrow().init_disk();
            d.set_persistence_id(disk.persistence_id.as_str());
            d.set_container_path(disk.container_path.as_str());
            d.set_read_only(disk.read_only);
        }
        let mut v = b.init_value();
        match &r.value {
            Value::Scalar(x) => v.set_scalar(*x),
            Value::Ranges(ranges) => set_ranges(v.init_ranges(ranges.len() as u32), ranges),
            Value::Set(set) => {
                let items: Vec<String> = set.iter().cloned().collect();
                set_text_list(v.init_set(items.len() as u32), &items)
            }
        }
    }
}

/// Number of resources to `init_*` a list with.
pub fn len(res: &Resources) -> u32 {
    res.iter().count() as u32
}

pub fn attributes(
    reader: capnp::Result<struct_list::Reader<'_, attribute::Owned>>,
) -> Result<Attributes, WireError> {
    let reader = reader?;
    check_len(reader.len(), "attributes")?;
    let mut items = Vec::new();
    for a in reader.iter() {
        let value = match a.get_value().which()? {
            attribute::value::Scalar(v) => AttributeValue::Scalar(v),
            attribute::value::Ranges(v) => AttributeValue::Ranges(ranges_from(v)?),
            attribute::value::Set(v) => AttributeValue::Set(set_from(v)?),
            attribute::value::Text(v) => AttributeValue::Text(text(v)?),
        };
        items.push(Attribute {
            name: text(a.get_name())?,
            value,
        });
    }
    Ok(Attributes(items))
}

pub fn set_attributes(mut builder: struct_list::Builder<'_, attribute::Owned>, attrs: &Attributes) {
    for (i, a) in attrs.iter().enumerate() {
        let mut b = builder.reborrow().get(i as u32);
        b.set_name(a.name.as_str());
        let mut v = b.init_value();
        match &a.value {
            AttributeValue::Scalar(x) => v.set_scalar(*x),
            AttributeValue::Ranges(ranges) => {
                set_ranges(v.init_ranges(ranges.len() as u32), ranges)
            }
            AttributeValue::Set(set) => {
                let items: Vec<String> = set.iter().cloned().collect();
                set_text_list(v.init_set(items.len() as u32), &items)
            }
            AttributeValue::Text(t) => v.set_text(t.as_str()),
        }
    }
}

pub fn command(reader: command_info::Reader<'_>) -> Result<CommandInfo, WireError> {
    let env = reader.get_environment()?;
    check_len(env.len(), "environment")?;
    let mut environment = Vec::new();
    for e in env.iter() {
        environment.push((text(e.get_name())?, text(e.get_value())?));
    }
    Ok(CommandInfo {
        shell: reader.get_shell(),
        value: text(reader.get_value())?,
        arguments: text_list(reader.get_arguments())?,
        environment,
        user: opt_text(reader.get_user())?,
    })
}

pub fn set_command(mut b: command_info::Builder<'_>, c: &CommandInfo) {
    b.set_shell(c.shell);
    b.set_value(c.value.as_str());
    set_text_list(
        b.reborrow().init_arguments(c.arguments.len() as u32),
        &c.arguments,
    );
    let mut env = b.reborrow().init_environment(c.environment.len() as u32);
    for (i, (name, value)) in c.environment.iter().enumerate() {
        let mut e = env.reborrow().get(i as u32);
        e.set_name(name.as_str());
        e.set_value(value.as_str());
    }
    b.set_user(c.user.as_deref().unwrap_or(""));
}

pub fn task(reader: task_info::Reader<'_>) -> Result<TaskInfo, WireError> {
    let grace = reader.get_kill_grace_period_secs();
    if !grace.is_finite() || grace < 0.0 {
        return Err(invalid(
            "kill grace period",
            format!("{grace} is not a non-negative number"),
        ));
    }
    Ok(TaskInfo {
        task_id: task_id(reader.get_task_id())?,
        name: text(reader.get_name())?,
        agent_id: agent_id(reader.get_agent_id())?,
        resources: resources(reader.get_resources())?,
        command: command(reader.get_command()?)?,
        kill_grace_period_secs: (grace > 0.0).then_some(grace),
        hostname: opt_text(reader.get_hostname())?,
        container: if reader.has_container() {
            Some(container(reader.get_container()?)?)
        } else {
            None
        },
        executor: if reader.has_executor() {
            Some(Box::new(executor(reader.get_executor()?)?))
        } else {
            None
        },
        data: reader.get_data()?.to_vec(),
        labels: labels(reader.get_labels())?,
    })
}

/// One operation of an ACCEPT call.
pub fn operation(
    reader: crate::scheduler_capnp::operation::Reader<'_>,
) -> Result<crate::Operation, WireError> {
    use crate::scheduler_capnp::operation;
    use crate::Operation;
    let tasks = |list: capnp::Result<struct_list::Reader<'_, task_info::Owned>>| {
        let list = list?;
        check_len(list.len(), "tasks")?;
        list.iter().map(task).collect::<Result<Vec<_>, _>>()
    };
    Ok(match reader.which()? {
        operation::Launch(list) => Operation::Launch(tasks(list)?),
        operation::Reserve(res) => Operation::Reserve(resources(res)?),
        operation::Unreserve(res) => Operation::Unreserve(resources(res)?),
        operation::Create(res) => Operation::Create(resources(res)?),
        operation::Destroy(res) => Operation::Destroy(resources(res)?),
        operation::LaunchGroup(group) => {
            let group = group?;
            if !group.has_executor() {
                return Err(invalid("LAUNCH_GROUP", "it has no executor"));
            }
            Operation::LaunchGroup {
                executor: Box::new(executor(group.get_executor()?)?),
                tasks: tasks(group.get_tasks())?,
            }
        }
    })
}

pub fn set_operation(b: crate::scheduler_capnp::operation::Builder<'_>, op: &crate::Operation) {
    use crate::Operation;
    let set_tasks = |mut list: struct_list::Builder<'_, task_info::Owned>, tasks: &[TaskInfo]| {
        for (j, t) in tasks.iter().enumerate() {
            set_task(list.reborrow().get(j as u32), t);
        }
    };
    match op {
        Operation::Launch(tasks) => set_tasks(b.init_launch(tasks.len() as u32), tasks),
        Operation::Reserve(res) => set_resources(b.init_reserve(len(res)), res),
        Operation::Unreserve(res) => set_resources(b.init_unreserve(len(res)), res),
        Operation::Create(res) => set_resources(b.init_create(len(res)), res),
        Operation::Destroy(res) => set_resources(b.init_destroy(len(res)), res),
        Operation::LaunchGroup { executor, tasks } => {
            let mut g = b.init_launch_group();
            set_executor(g.reborrow().init_executor(), executor);
            set_tasks(g.init_tasks(tasks.len() as u32), tasks);
        }
    }
}

pub fn container(
    reader: crate::common_capnp::container_info::Reader<'_>,
) -> Result<ContainerInfo, WireError> {
    use crate::common_capnp::{container_info, image, volume};
    let kind = match reader.get_type()? {
        container_info::Type::Mesos => ContainerType::Mesos,
        container_info::Type::Docker => ContainerType::Docker,
    };
    let mut image = None;
    if reader.has_mesos() {
        let mesos = reader.get_mesos()?;
        if mesos.has_image() {
            let i = mesos.get_image()?;
            image = Some(Image {
                kind: match i.get_type()? {
                    image::Type::Docker => ImageType::Docker,
                    image::Type::Oci => ImageType::Oci,
                },
                name: text(i.get_name())?,
            });
        }
    }
    let volume_list = reader.get_volumes()?;
    check_len(volume_list.len(), "volumes")?;
    let mut volumes = Vec::new();
    for v in volume_list.iter() {
        volumes.push(Volume {
            container_path: text(v.get_container_path())?,
            host_path: text(v.get_host_path())?,
            mode: match v.get_mode()? {
                volume::Mode::Rw => VolumeMode::Rw,
                volume::Mode::Ro => VolumeMode::Ro,
            },
        });
    }
    Ok(ContainerInfo {
        kind,
        image,
        volumes,
    })
}

pub fn set_container(mut b: crate::common_capnp::container_info::Builder<'_>, c: &ContainerInfo) {
    use crate::common_capnp::{container_info, image, volume};
    b.set_type(match c.kind {
        ContainerType::Mesos => container_info::Type::Mesos,
        ContainerType::Docker => container_info::Type::Docker,
    });
    if let Some(i) = &c.image {
        let mut ib = b.reborrow().init_mesos().init_image();
        ib.set_type(match i.kind {
            ImageType::Docker => image::Type::Docker,
            ImageType::Oci => image::Type::Oci,
        });
        ib.set_name(i.name.as_str());
    }
    let mut vs = b.init_volumes(c.volumes.len() as u32);
    for (n, v) in c.volumes.iter().enumerate() {
        let mut vb = vs.reborrow().get(n as u32);
        vb.set_container_path(v.container_path.as_str());
        vb.set_host_path(v.host_path.as_str());
        vb.set_mode(match v.mode {
            VolumeMode::Rw => volume::Mode::Rw,
            VolumeMode::Ro => volume::Mode::Ro,
        });
    }
}

pub fn set_task(mut b: task_info::Builder<'_>, t: &TaskInfo) {
    b.set_task_id(t.task_id.as_str());
    b.set_name(t.name.as_str());
    b.set_agent_id(t.agent_id.as_str());
    set_resources(b.reborrow().init_resources(len(&t.resources)), &t.resources);
    set_command(b.reborrow().init_command(), &t.command);
    b.set_kill_grace_period_secs(t.kill_grace_period_secs.unwrap_or(0.0));
    b.set_hostname(t.hostname.as_deref().unwrap_or(""));
    if let Some(c) = &t.container {
        set_container(b.reborrow().init_container(), c);
    }
    if let Some(e) = &t.executor {
        set_executor(b.reborrow().init_executor(), e);
    }
    b.set_data(&t.data);
    set_labels(b.init_labels(t.labels.len() as u32), &t.labels);
}

fn state_from(s: crate::common_capnp::TaskState) -> TaskState {
    use crate::common_capnp::TaskState as W;
    match s {
        W::Staging => TaskState::Staging,
        W::Starting => TaskState::Starting,
        W::Running => TaskState::Running,
        W::Killing => TaskState::Killing,
        W::Finished => TaskState::Finished,
        W::Failed => TaskState::Failed,
        W::Killed => TaskState::Killed,
        W::Error => TaskState::Error,
        W::Lost => TaskState::Lost,
        W::Dropped => TaskState::Dropped,
        W::Unreachable => TaskState::Unreachable,
        W::Gone => TaskState::Gone,
        W::GoneByOperator => TaskState::GoneByOperator,
        W::Unknown => TaskState::Unknown,
    }
}

pub fn state_to(s: TaskState) -> crate::common_capnp::TaskState {
    use crate::common_capnp::TaskState as W;
    match s {
        TaskState::Staging => W::Staging,
        TaskState::Starting => W::Starting,
        TaskState::Running => W::Running,
        TaskState::Killing => W::Killing,
        TaskState::Finished => W::Finished,
        TaskState::Failed => W::Failed,
        TaskState::Killed => W::Killed,
        TaskState::Error => W::Error,
        TaskState::Lost => W::Lost,
        TaskState::Dropped => W::Dropped,
        TaskState::Unreachable => W::Unreachable,
        TaskState::Gone => W::Gone,
        TaskState::GoneByOperator => W::GoneByOperator,
        TaskState::Unknown => W::Unknown,
    }
}

pub fn task_state(
    reader: Result<crate::common_capnp::TaskState, capnp::NotInSchema>,
) -> Result<TaskState, WireError> {
    Ok(state_from(reader?))
}

/// A status update's 16-byte uuid (`field` names it in the error).
pub fn update_uuid(bytes: &[u8], field: &'static str) -> Result<UpdateUuid, WireError> {
    UpdateUuid::from_slice(bytes).ok_or_else(|| invalid(field, "not 16 bytes"))
}

pub fn status(reader: task_status::Reader<'_>) -> Result<TaskStatus, WireError> {
    use crate::common_capnp::StatusSource as W;
    let uuid = reader.get_uuid()?;
    let uuid = if uuid.is_empty() {
        None
    } else {
        Some(update_uuid(uuid, "status uuid")?)
    };
    let container_id = opt_text(reader.get_container_id())?
        .map(|v| ContainerId::new(v).map_err(|e| invalid("container id", e)))
        .transpose()?;
    Ok(TaskStatus {
        task_id: task_id(reader.get_task_id())?,
        state: state_from(reader.get_state()?),
        message: text(reader.get_message())?,
        source: match reader.get_source()? {
            W::Master => StatusSource::Master,
            W::Agent => StatusSource::Agent,
            W::Executor => StatusSource::Executor,
        },
        reason: opt_text(reader.get_reason())?,
        agent_id: opt_agent_id(reader.get_agent_id())?,
        framework_id: opt_framework_id(reader.get_framework_id())?,
        container_id,
        timestamp: reader.get_timestamp(),
        uuid,
        exit_code: reader.get_has_exit_code().then(|| reader.get_exit_code()),
    })
}

pub fn set_status(mut b: task_status::Builder<'_>, s: &TaskStatus) {
    use crate::common_capnp::StatusSource as W;
    b.set_task_id(s.task_id.as_str());
    b.set_state(state_to(s.state));
    b.set_message(s.message.as_str());
    b.set_source(match s.source {
        StatusSource::Master => W::Master,
        StatusSource::Agent => W::Agent,
        StatusSource::Executor => W::Executor,
    });
    b.set_reason(s.reason.as_deref().unwrap_or(""));
    b.set_agent_id(s.agent_id.as_ref().map(|i| i.as_str()).unwrap_or(""));
    b.set_framework_id(s.framework_id.as_ref().map(|i| i.as_str()).unwrap_or(""));
    b.set_container_id(s.container_id.as_ref().map(|i| i.as_str()).unwrap_or(""));
    b.set_timestamp(s.timestamp);
    b.set_uuid(s.uuid.as_ref().map(|u| &u.0[..]).unwrap_or(&[]));
    b.set_has_exit_code(s.exit_code.is_some());
    b.set_exit_code(s.exit_code.unwrap_or(0));
}

pub fn framework(reader: framework_info::Reader<'_>) -> Result<FrameworkInfo, WireError> {
    let failover = reader.get_failover_timeout_secs();
    if !failover.is_finite() || failover < 0.0 {
        return Err(invalid(
            "failover timeout",
            format!("{failover} is not a non-negative number"),
        ));
    }
    Ok(FrameworkInfo {
        id: opt_framework_id(reader.get_id())?,
        name: text(reader.get_name())?,
        user: text(reader.get_user())?,
        roles: text_list(reader.get_roles())?,
        failover_timeout_secs: failover,
        checkpoint: reader.get_checkpoint(),
        hostname: text(reader.get_hostname())?,
        partition_aware: reader.get_partition_aware(),
        principal: opt_text(reader.get_principal())?,
        webui_url: opt_text(reader.get_webui_url())?,
        capabilities: text_list(reader.get_capabilities())?,
        labels: labels(reader.get_labels())?,
    })
}

pub fn set_framework(mut b: framework_info::Builder<'_>, f: &FrameworkInfo) {
    b.set_id(f.id.as_ref().map(|i| i.as_str()).unwrap_or(""));
    b.set_name(f.name.as_str());
    b.set_user(f.user.as_str());
    set_text_list(b.reborrow().init_roles(f.roles.len() as u32), &f.roles);
    b.set_failover_timeout_secs(f.failover_timeout_secs);
    b.set_checkpoint(f.checkpoint);
    b.set_hostname(f.hostname.as_str());
    b.set_partition_aware(f.partition_aware);
    b.set_principal(f.principal.as_deref().unwrap_or(""));
    b.set_webui_url(f.webui_url.as_deref().unwrap_or(""));
    set_text_list(
        b.reborrow().init_capabilities(f.capabilities.len() as u32),
        &f.capabilities,
    );
    set_labels(b.init_labels(f.labels.len() as u32), &f.labels);
}

pub fn agent(reader: agent_info::Reader<'_>) -> Result<AgentInfo, WireError> {
    Ok(AgentInfo {
        id: opt_agent_id(reader.get_id())?,
        hostname: text(reader.get_hostname())?,
        port: reader.get_port(),
        resources: resources(reader.get_resources())?,
        attributes: attributes(reader.get_attributes())?,
    })
}

pub fn set_agent(mut b: agent_info::Builder<'_>, a: &AgentInfo) {
    b.set_id(a.id.as_ref().map(|i| i.as_str()).unwrap_or(""));
    b.set_hostname(a.hostname.as_str());
    b.set_port(a.port);
    set_resources(b.reborrow().init_resources(len(&a.resources)), &a.resources);
    set_attributes(
        b.reborrow().init_attributes(a.attributes.0.len() as u32),
        &a.attributes,
    );
}

pub fn master(reader: master_info::Reader<'_>) -> Result<MasterInfo, WireError> {
    Ok(MasterInfo {
        id: text(reader.get_id())?,
        hostname: text(reader.get_hostname())?,
        ip: text(reader.get_ip())?,
        port: reader.get_port(),
        version: text(reader.get_version())?,
    })
}

pub fn set_master(mut b: master_info::Builder<'_>, m: &MasterInfo) {
    b.set_id(m.id.as_str());
    b.set_hostname(m.hostname.as_str());
    b.set_ip(m.ip.as_str());
    b.set_port(m.port);
    b.set_version(m.version.as_str());
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod container_tests {
    use super::*;

    fn round_trip(t: &TaskInfo) -> TaskInfo {
        let mut message = capnp::message::Builder::new_default();
        set_task(message.init_root::<task_info::Builder>(), t);
        let reader = message.get_root_as_reader::<task_info::Reader>().unwrap();
        task(reader).unwrap()
    }

    #[test]
    fn tasks_with_images_and_volumes_round_trip() {
        let mut t = TaskInfo {
            task_id: TaskId::new("t").unwrap(),
            name: "t".into(),
            agent_id: AgentId::new("a").unwrap(),
            resources: Resources::parse("cpus:1").unwrap(),
            command: CommandInfo::shell("true"),
            kill_grace_period_secs: None,
            hostname: None,
            container: None,
            executor: None,
            data: Vec::new(),
            labels: Vec::new(),
        };
        assert_eq!(round_trip(&t), t);
        let mut container = ContainerInfo::image(ImageType::Oci, "127.0.0.1:5000/busybox:1");
        container.volumes.push(Volume {
            container_path: "/data".into(),
            host_path: "/srv/data".into(),
            mode: VolumeMode::Ro,
        });
        t.container = Some(container);
        assert_eq!(round_trip(&t), t);
        t.container = Some(ContainerInfo {
            kind: ContainerType::Docker,
            ..ContainerInfo::default()
        });
        assert_eq!(round_trip(&t), t);
    }

    #[test]
    fn persistent_volumes_round_trip() {
        let res = Resources::parse(
            "cpus:1;disk(ops):10;disk(ops)[v1:data]:64;disk(a/b)[v2:x/y:ro]:1.5;ports:[1-2]",
        )
        .unwrap();
        let mut message = capnp::message::Builder::new_default();
        let root = message.init_root::<crate::common_capnp::agent_info::Builder>();
        set_resources(root.init_resources(len(&res)), &res);
        let reader = message
            .get_root_as_reader::<crate::common_capnp::agent_info::Reader>()
            .unwrap();
        assert_eq!(resources(reader.get_resources()).unwrap(), res);
        let plain = reader.get_resources().unwrap().get(0);
        assert!(!plain.has_disk());

        // An invalid volume from the wire is refused, naming it.
        let mut message = capnp::message::Builder::new_default();
        let root = message.init_root::<crate::common_capnp::agent_info::Builder>();
        let mut list = root.init_resources(1);
        let mut r = list.reborrow().get(0);
        r.set_name("disk");
        r.set_role("ops");
        r.reborrow().init_value().set_scalar(1.0);
        let mut d = r.init_disk();
        d.set_persistence_id("v1");
        d.set_container_path("/abs");
        let reader = message
            .get_root_as_reader::<crate::common_capnp::agent_info::Reader>()
            .unwrap();
        let err = resources(reader.get_resources()).unwrap_err().to_string();
        assert!(
            err.contains(r#""disk(ops)[v1:/abs]:1""#) && err.contains("must be relative"),
            "{err}"
        );
    }

    /// A list of zero-sized structs: 16 bytes claiming `count` elements (a root list pointer to a
    /// tag word of `count` structs of no data and no pointers).
    fn zero_sized_list(count: u32) -> Vec<capnp::Word> {
        let mut words = capnp::Word::allocate_zeroed_vec(2);
        let bytes = capnp::Word::words_to_bytes_mut(&mut words);
        // List pointer: offset 0, element size 7 (inline composite), 0 words after the tag.
        bytes[0..8].copy_from_slice(&[1, 0, 0, 0, 7, 0, 0, 0]);
        // Tag: a struct "pointer" whose offset field is the element count.
        bytes[8..12].copy_from_slice(&(count << 2).to_le_bytes());
        words
    }

    /// Lists are bounded by [`MAX_LIST_LEN`]: 16 bytes may not make the decoder build a million
    /// labels (found by the `wire` fuzzer, with environments and operations' task lists).
    #[test]
    fn zero_sized_lists_cannot_amplify() {
        let read = |count: u32| {
            let words = zero_sized_list(count);
            let segments: [&[u8]; 1] = [capnp::Word::words_to_bytes(&words)];
            let message = capnp::message::Reader::new(
                capnp::message::SegmentArray::new(&segments),
                rpc_reader_options(),
            );
            labels(message.get_root::<struct_list::Reader<label::Owned>>())
        };
        assert_eq!(read(3).unwrap().len(), 3);
        assert_eq!(read(MAX_LIST_LEN).unwrap().len(), MAX_LIST_LEN as usize);
        let err = read(1_000_000).unwrap_err().to_string();
        assert!(
            err.contains("labels") && err.contains("1000000 elements"),
            "{err}"
        );
    }

    /// What [`RPC_TRAVERSAL_LIMIT_WORDS`] has to carry: an agent's re-registration with 10,000
    /// running tasks, each with its framework, a command, resources and labels.
    #[test]
    fn registration_fits() {
        use crate::agent_capnp::running_task;
        let fw = FrameworkInfo {
            id: Some(FrameworkId::new("2a1b7d90-7d6c-4c37-a2b4-0f0e0d0c0b0a-0001").unwrap()),
            name: "a framework with a typical name".into(),
            user: "root".into(),
            roles: vec!["engineering/batch".into()],
            failover_timeout_secs: 604800.0,
            checkpoint: true,
            hostname: "scheduler-1.example.com".into(),
            partition_aware: true,
            principal: Some("batch".into()),
            webui_url: None,
            capabilities: vec!["MULTI_ROLE".into(), "PARTITION_AWARE".into()],
            labels: vec![("team".into(), "data".into())],
        };
        let tasks = 10_000u32;
        let mut message = capnp::message::Builder::new_default();
        let mut list = message
            .init_root::<capnp::any_pointer::Builder>()
            .initn_as::<struct_list::Builder<running_task::Owned>>(tasks);
        for i in 0..tasks {
            let t = TaskInfo {
                task_id: TaskId::new(format!("batch-job-{i:06}.7c1e4a2e-44b1-11ef-9c1a-0242ac120002")).unwrap(),
                name: format!("batch job {i}"),
                agent_id: AgentId::new("5f0e3a61-2b9c-4a7e-8d5c-1a2b3c4d5e6f-S12").unwrap(),
                resources: Resources::parse("cpus(engineering/batch):0.5;mem(engineering/batch):512;disk:1024;ports:[31000-31001]").unwrap(),
                command: CommandInfo::shell("exec /usr/local/bin/batch-worker --queue=default --concurrency=4"),
                kill_grace_period_secs: Some(30.0),
                hostname: Some("node-0012.example.com".into()),
                container: None,
                executor: None,
                data: Vec::new(),
                labels: vec![("job".into(), format!("{i}")), ("owner".into(), "data".into())],
            };
            let mut r = list.reborrow().get(i);
            r.set_framework_id(fw.id.as_ref().unwrap().as_str());
            set_task(r.reborrow().init_task(), &t);
            set_framework(r.init_framework(), &fw);
        }
        let words = message
            .get_segments_for_output()
            .iter()
            .map(|s| s.len() / 8)
            .sum::<usize>();
        assert!(words < RPC_TRAVERSAL_LIMIT_WORDS / 4, "{words} words");
        // Read back whole under the connection's options.
        let bytes = capnp::serialize::write_message_to_words(&message);
        let reader = capnp::serialize::read_message(&mut &bytes[..], rpc_reader_options()).unwrap();
        let list = reader
            .get_root::<struct_list::Reader<running_task::Owned>>()
            .unwrap();
        for r in list.iter() {
            task(r.get_task().unwrap()).unwrap();
            framework(r.get_framework().unwrap()).unwrap();
        }
        eprintln!("a registration of {tasks} tasks is {words} words");
    }

    /// A message past the options is refused when read, from its frame header alone.
    #[test]
    fn oversized_and_deep_messages_are_refused() {
        // A frame announcing one segment of 2^31 words.
        let header = [0u8, 0, 0, 0, 0, 0, 0, 0x80];
        let err = capnp::serialize::read_message(&mut &header[..], rpc_reader_options())
            .err()
            .unwrap();
        assert!(err.to_string().contains("too large"), "{err}");
        // Structs nested deeper than the nesting limit: a frame of one segment whose words are
        // each a pointer to a struct of one pointer, the next word.
        let chain = |depth: u32| {
            let mut frame = Vec::new();
            frame.extend_from_slice(&0u32.to_le_bytes());
            frame.extend_from_slice(&(depth + 1).to_le_bytes());
            for _ in 0..depth {
                frame.extend_from_slice(&(1u64 << 48).to_le_bytes());
            }
            frame.extend_from_slice(&0u64.to_le_bytes());
            frame
        };
        let size = |frame: Vec<u8>| {
            let reader = capnp::serialize::read_message(&mut &frame[..], rpc_reader_options())?;
            reader
                .get_root::<capnp::any_pointer::Reader>()?
                .target_size()
        };
        assert!(size(chain(10)).is_ok());
        let err = size(chain(RPC_NESTING_LIMIT as u32 + 10)).unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
    }
}
