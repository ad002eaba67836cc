@0xc21acc04b6644193;
# Scheduler <-> master and the master's bootstrap interface. Ordinals are append-only.

using Common = import "common.capnp";
using AgentApi = import "agent.capnp";

struct Offer {
  id @0 :Text;
  frameworkId @1 :Text;
  agentId @2 :Text;
  hostname @3 :Text;
  resources @4 :List(Common.Resource);
  attributes @5 :List(Common.Attribute);
  allocationRole @6 :Text;   # the role the resources are allocated to (Mesos' allocation_info.role)
  # The agent's machine is in a maintenance window (Mesos' Offer.unavailability).
  hasUnavailability @7 :Bool;
  unavailabilityStart @8 :Float64;     # seconds since the epoch
  unavailabilityDuration @9 :Float64;  # seconds; negative = indefinitely
}

struct Operation {
  union {
    launch @0 :List(Common.TaskInfo);
    # Dynamic reservations: each item names the role it is reserved for (the offer's role).
    reserve @1 :List(Common.Resource);
    unreserve @2 :List(Common.Resource);
    # Persistent volumes (disk items with DiskInfo) made of, or given back to, reserved disk.
    create @3 :List(Common.Resource);
    destroy @4 :List(Common.Resource);
  }
}

struct ReconcileTask {
  taskId @0 :Text;
  agentId @1 :Text;
}

# Callback capability a framework hands to the master on subscribe. Events arrive in order.
interface Scheduler {
  subscribed @0 (frameworkId :Text, heartbeatIntervalSecs :Float64, master :Common.MasterInfo) -> ();
  offers @1 (offers :List(Offer)) -> ();
  rescind @2 (offerId :Text) -> ();
  update @3 (status :Common.TaskStatus) -> ();
  error @4 (message :Text) -> ();
  heartbeat @5 () -> ();
}

# The calls of a subscribed framework.
interface SchedulerSession {
  accept @0 (offerIds :List(Text), operations :List(Operation), filters :Common.Filters) -> ();
  decline @1 (offerIds :List(Text), filters :Common.Filters) -> ();
  kill @2 (taskId :Text, agentId :Text) -> ();
  acknowledge @3 (agentId :Text, taskId :Text, uuid :Data) -> ();
  reconcile @4 (tasks :List(ReconcileTask)) -> ();
  revive @5 (roles :List(Text)) -> ();
  suppress @6 (roles :List(Text)) -> ();
  teardown @7 () -> ();
}

# The master's bootstrap capability.
interface Master {
  registerAgent @0 (info :Common.AgentInfo, agent :AgentApi.Agent, running :List(AgentApi.RunningTask))
      -> (agentId :Text, session :AgentApi.AgentSession, master :Common.MasterInfo);
  subscribe @1 (framework :Common.FrameworkInfo, scheduler :Scheduler)
      -> (frameworkId :Text, session :SchedulerSession);
}
