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
    # A task group: all of its tasks or none, under one executor (Mesos' LAUNCH_GROUP).
    launchGroup @5 :LaunchGroup;
  }
}

struct LaunchGroup {
  executor @0 :Common.ExecutorInfo;
  tasks @1 :List(Common.TaskInfo);
}

# Mesos' InverseOffer: the master asks for an agent back for a maintenance window.
struct InverseOffer {
  id @0 :Text;
  frameworkId @1 :Text;
  agentId @2 :Text;
  hostname @3 :Text;
  unavailabilityStart @4 :Float64;     # seconds since the epoch
  unavailabilityDuration @5 :Float64;  # seconds; negative = indefinitely
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
  # A framework message from one of the framework's executors.
  message @6 (agentId :Text, executorId :Text, data :Data) -> ();
  # An executor ended (executorId set, with its wait status if known), or an agent was removed
  # (executorId "").
  failure @7 (agentId :Text, executorId :Text, hasStatus :Bool, status :Int32) -> ();
  inverseOffers @8 (offers :List(InverseOffer)) -> ();
  rescindInverseOffer @9 (inverseOfferId :Text) -> ();
  # Several status updates, in order, each as by `update`: the master sends the updates it has
  # ready for a framework together.
  updates @10 (statuses :List(Common.TaskStatus)) -> ();
}

# A framework's acknowledgement of a status update (`SchedulerSession.acknowledgeAll`).
struct Acknowledgement {
  agentId @0 :Text;
  taskId @1 :Text;
  uuid @2 :Data;
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
  # A framework message to one of the framework's executors.
  message @8 (agentId :Text, executorId :Text, data :Data) -> ();
  # Shut one of the framework's executors down (its tasks are killed).
  shutdown @9 (agentId :Text, executorId :Text) -> ();
  # Change the framework's name, roles, capabilities, ... (Mesos' UPDATE_FRAMEWORK).
  updateFramework @10 (framework :Common.FrameworkInfo) -> ();
  acceptInverseOffers @11 (inverseOfferIds :List(Text), filters :Common.Filters) -> ();
  declineInverseOffers @12 (inverseOfferIds :List(Text), filters :Common.Filters) -> ();
  # Several acknowledgements, each as by `acknowledge`; fails naming the first refused, after
  # the others were taken.
  acknowledgeAll @13 (acks :List(Acknowledgement)) -> ();
}

# The master's bootstrap capability.
interface Master {
  # `credential`: the agent's principal and secret when the master authenticates agents with a
  # shared secret (`--authenticate-agents` without a client certificate); unset otherwise.
  registerAgent @0 (info :Common.AgentInfo, agent :AgentApi.Agent, running :List(AgentApi.RunningTask),
      credential :Common.Credential)
      -> (agentId :Text, session :AgentApi.AgentSession, master :Common.MasterInfo);
  # `credential`: the framework's principal and secret when the master authenticates frameworks
  # (`--authenticate-frameworks`); unset otherwise.
  subscribe @1 (framework :Common.FrameworkInfo, scheduler :Scheduler, credential :Common.Credential)
      -> (frameworkId :Text, session :SchedulerSession);
}
