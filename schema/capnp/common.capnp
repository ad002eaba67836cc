@0xf7d0e3224b8cdab6;
# Shared vocabulary of the wire protocols. Ordinals are append-only: never renumber or reuse one.

struct Range {
  begin @0 :UInt64;
  end @1 :UInt64;      # inclusive
}

struct Resource {
  name @0 :Text;       # "cpus", "mem" (MB), "disk" (MB), "gpus", "ports", ...
  role @1 :Text;       # "" or "*" = unreserved
  value :union {
    scalar @2 :Float64;
    ranges @3 :List(Range);
    set @4 :List(Text);
  }
  disk @5 :DiskInfo;   # absent: not a persistent volume
}

# Mesos' Resource.DiskInfo of a persistent volume (a reserved "disk" scalar).
struct DiskInfo {
  persistenceId @0 :Text;
  containerPath @1 :Text;   # relative to the task's sandbox
  readOnly @2 :Bool;
}

struct Attribute {
  name @0 :Text;
  value :union {
    scalar @1 :Float64;
    ranges @2 :List(Range);
    set @3 :List(Text);
    text @4 :Text;
  }
}

struct EnvVar {
  name @0 :Text;
  value @1 :Text;
}

# Mesos' CommandInfo: with `shell` the value runs through `/bin/sh -c`, otherwise `value` is the
# executable and `arguments` its argv (argv[0] included, as in Mesos).
struct CommandInfo {
  shell @0 :Bool = true;
  value @1 :Text;
  arguments @2 :List(Text);
  environment @3 :List(EnvVar);
  user @4 :Text;
}

struct TaskInfo {
  taskId @0 :Text;
  name @1 :Text;
  agentId @2 :Text;
  resources @3 :List(Resource);
  command @4 :CommandInfo;
  killGracePeriodSecs @5 :Float64;   # 0 = agent default
  hostname @6 :Text;                 # uts hostname; "" = task id
  container @7 :ContainerInfo;       # absent: a command task on the agent's own filesystem
  executor @8 :ExecutorInfo;         # absent: the agent's command executor runs `command`
  data @9 :Data;                     # opaque, for the task's executor
  labels @10 :List(Label);
}

struct Label {
  key @0 :Text;
  value @1 :Text;
}

# Mesos' ExecutorInfo.
struct ExecutorInfo {
  type @0 :Type;
  executorId @1 :Text;
  name @2 :Text;
  command @3 :CommandInfo;           # CUSTOM: the executor's program; DEFAULT: absent
  resources @4 :List(Resource);      # the executor's own, besides its tasks'
  container @5 :ContainerInfo;
  data @6 :Data;

  enum Type {
    custom @0;
    default @1;      # the agent's own executor for task groups (LAUNCH_GROUP)
  }
}

# Mesos' ContainerInfo, for the MESOS containerizer: the task's root filesystem from an image,
# and host paths bound into it.
struct ContainerInfo {
  type @0 :Type;
  mesos @1 :MesosInfo;
  volumes @2 :List(Volume);

  enum Type {
    mesos @0;
    docker @1;       # Mesos' Docker containerizer: not supported (the task ends TASK_ERROR)
  }
}

struct MesosInfo {
  image @0 :Image;   # absent: no image
}

struct Image {
  type @0 :Type;
  name @1 :Text;     # a registry reference, or oci:DIR, oci-archive:FILE, docker-archive:FILE

  enum Type {
    docker @0;
    oci @1;
  }
}

struct Volume {
  containerPath @0 :Text;   # absolute, or relative to the sandbox
  hostPath @1 :Text;        # absolute
  mode @2 :Mode;

  enum Mode {
    rw @0;
    ro @1;
  }
}

enum TaskState {
  staging @0;
  starting @1;
  running @2;
  killing @3;
  finished @4;
  failed @5;
  killed @6;
  error @7;
  lost @8;
  dropped @9;
  unreachable @10;
  gone @11;
  goneByOperator @12;
  unknown @13;
}

enum StatusSource {
  master @0;
  agent @1;
  executor @2;
}

struct TaskStatus {
  taskId @0 :Text;
  state @1 :TaskState;
  message @2 :Text;
  source @3 :StatusSource;
  reason @4 :Text;           # Mesos reason name, e.g. "REASON_COMMAND_EXECUTOR_FAILED"; "" = none
  agentId @5 :Text;
  frameworkId @6 :Text;
  timestamp @7 :Float64;     # seconds since the epoch
  uuid @8 :Data;             # empty for updates that need no acknowledgement
  hasExitCode @9 :Bool;
  exitCode @10 :Int32;
  containerId @11 :Text;
}

struct FrameworkInfo {
  id @0 :Text;               # "" on first subscription
  name @1 :Text;
  user @2 :Text;
  roles @3 :List(Text);
  failoverTimeoutSecs @4 :Float64;
  checkpoint @5 :Bool;
  hostname @6 :Text;
  partitionAware @7 :Bool;
  principal @8 :Text;        # "" = none
  webuiUrl @9 :Text;         # "" = none
  capabilities @10 :List(Text);   # Mesos' names: MULTI_ROLE, PARTITION_AWARE, ...
  labels @11 :List(Label);
}

struct AgentInfo {
  id @0 :Text;               # "" on first registration
  hostname @1 :Text;
  port @2 :UInt16;           # the agent's HTTP port
  resources @3 :List(Resource);
  attributes @4 :List(Attribute);
}

struct MasterInfo {
  id @0 :Text;
  hostname @1 :Text;
  ip @2 :Text;
  port @3 :UInt16;
  version @4 :Text;
}

struct Filters {
  refuseSeconds @0 :Float64 = 5.0;
}

# A principal and its secret (Mesos' Credential): how agents and frameworks authenticate to the
# master without a client certificate. Sent over TLS unless the operator chose `--insecure`.
struct Credential {
  principal @0 :Text;
  secret @1 :Text;
}
