@0x8ebc9cfe07e406db;
# Agent <-> master. The master's bootstrap capability is `Master` (see scheduler.capnp for the
# scheduler half). An agent registers with an `Agent` capability the master calls back; the master
# answers with an `AgentSession` for the agent's calls. Ordinals are append-only.

using Common = import "common.capnp";

# A task the agent is running, reported on re-registration.
struct RunningTask {
  frameworkId @0 :Text;
  task @1 :Common.TaskInfo;
  state @2 :Common.TaskState;
  framework @3 :Common.FrameworkInfo;
}

# Agent -> master; the master must keep each update until it is forwarded; the agent resends it
# until the framework's acknowledgement comes back through `Agent.acknowledge`.
interface AgentSession {
  statusUpdate @0 (update :Common.TaskStatus) -> ();
  # Sent by an agent that shuts down for good (not on restart).
  unregister @1 () -> ();
  # A framework message from an executor to its scheduler.
  frameworkMessage @2 (frameworkId :Text, executorId :Text, data :Data) -> ();
  # An executor's process ended; `status` is its wait status (as Mesos' ExitedExecutorMessage).
  executorExited @3 (frameworkId :Text, executorId :Text, status :Int32) -> ();
  # Several updates in one call, in order (what `statusUpdate` does for each). An agent sends the
  # updates it has ready together; the master answers once it applied them all, failing (naming
  # the first it refused) when it refused any. The agent resends what is not acknowledged.
  statusUpdates @4 (updates :List(Common.TaskStatus)) -> ();
}

# An acknowledgement the master forwards to an agent (`Agent.acknowledgeAll`).
struct Acknowledgement {
  frameworkId @0 :Text;
  taskId @1 :Text;
  uuid @2 :Data;
}

# Master -> agent.
interface Agent {
  ping @0 () -> ();
  launch @1 (framework :Common.FrameworkInfo, task :Common.TaskInfo) -> ();
  kill @2 (frameworkId :Text, taskId :Text, gracePeriodSecs :Float64) -> ();
  acknowledge @3 (frameworkId :Text, taskId :Text, uuid :Data) -> ();
  # The master no longer knows this agent (e.g. it was removed): kill everything and re-register.
  shutdown @4 (reason :Text) -> ();
  shutdownFramework @5 (frameworkId :Text) -> ();
  # DESTROY: removes the persistent volumes' data. Fails, naming the volume, while a task uses one.
  destroyVolumes @6 (volumes :List(Common.Resource)) -> ();
  # LAUNCH_GROUP: all of the tasks or none, under one executor.
  launchGroup @7 (framework :Common.FrameworkInfo, executor :Common.ExecutorInfo, tasks :List(Common.TaskInfo)) -> ();
  # A framework message from a scheduler to one of its executors.
  frameworkMessage @8 (frameworkId :Text, executorId :Text, data :Data) -> ();
  # SHUTDOWN: stop the executor; its tasks are killed.
  shutdownExecutor @9 (frameworkId :Text, executorId :Text) -> ();
  # Several tasks of one framework, each as by `launch` (not a group: each stands alone). The
  # master sends the launches it has ready for an agent together.
  launchTasks @10 (framework :Common.FrameworkInfo, tasks :List(Common.TaskInfo)) -> ();
  # Several acknowledgements, each as by `acknowledge`.
  acknowledgeAll @11 (acks :List(Acknowledgement)) -> ();
}
