#!/usr/bin/env python3
"""A pymesos framework, unmodified Mesos client code, against Strata's v1 scheduler API.

Usage: scheduler.py MASTER N TIMEOUT_SECS

MASTER is host:port or a zk://host:port/path URL (pymesos then finds the leading master in
ZooKeeper, as with Mesos). Launches N command tasks (`true`) from the offers it gets and exits 0
once all of them reached TASK_FINISHED; any other terminal state, an error from the master, or
TIMEOUT_SECS passing exits non-zero.
"""

import logging
import os
import sys
import threading
import time
import uuid

from pymesos import MesosSchedulerDriver, Scheduler

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
log = logging.getLogger("scheduler.py")

TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}


def scalar(offer, name):
    return sum(r["scalar"]["value"] for r in offer.get("resources", [])
               if r["name"] == name and r.get("type", "SCALAR") == "SCALAR")


class TestScheduler(Scheduler):
    def __init__(self, count):
        self.count = count
        self.launched = 0
        self.finished = set()
        self.failure = None
        self.registered_id = None
        self.done = threading.Event()

    def registered(self, driver, framework_id, master_info):
        self.registered_id = framework_id["value"]
        log.info("registered as %s with %s", self.registered_id, master_info)

    def reregistered(self, driver, master_info):
        log.info("re-registered with %s", master_info)

    def resourceOffers(self, driver, offers):
        for offer in offers:
            cpus, mem = scalar(offer, "cpus"), scalar(offer, "mem")
            tasks = []
            while (self.launched < self.count and cpus >= 0.1 and mem >= 32):
                task_id = "py-%d-%s" % (self.launched, uuid.uuid4().hex[:6])
                tasks.append({
                    "task_id": {"value": task_id},
                    "agent_id": offer["agent_id"],
                    "name": task_id,
                    "command": {"value": "true"},
                    "resources": [
                        {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                        {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                    ],
                })
                self.launched += 1
                cpus -= 0.1
                mem -= 32
            if tasks:
                log.info("launching %s on %s", [t["name"] for t in tasks], offer["hostname"])
                driver.launchTasks(offer["id"], tasks)
            else:
                driver.declineOffer(offer["id"], {"refuse_seconds": 1})

    def statusUpdate(self, driver, status):
        state = status["state"]
        task = status["task_id"]["value"]
        log.info("%s: %s %s", task, state, status.get("message", ""))
        if state == "TASK_FINISHED":
            self.finished.add(task)
            if len(self.finished) == self.count:
                self.done.set()
        elif state in TERMINAL:
            self.failure = "%s ended %s: %s" % (task, state, status.get("message", ""))
            self.done.set()

    def error(self, driver, message):
        self.failure = "error from the master: %s" % message
        self.done.set()


def main():
    master, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    framework = {"user": "root", "name": "pymesos-test", "hostname": "localhost",
                 "failover_timeout": 0}
    sched = TestScheduler(count)
    # With PYMESOS_PRINCIPAL and PYMESOS_SECRET, pymesos authenticates (HTTP Basic).
    principal = os.environ.get("PYMESOS_PRINCIPAL")
    secret = os.environ.get("PYMESOS_SECRET")
    driver = MesosSchedulerDriver(sched, framework, master, use_addict=False,
                                  principal=principal, secret=secret)
    driver.start()
    finished_in_time = sched.done.wait(timeout)
    driver.stop()
    driver.join()
    if sched.failure:
        print("FAILED: " + sched.failure, flush=True)
        return 1
    if not finished_in_time:
        print("FAILED: timed out after %ss with %d of %d tasks finished"
              % (timeout, len(sched.finished), count), flush=True)
        return 2
    print("all %d tasks finished (framework %s)" % (count, sched.registered_id), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
