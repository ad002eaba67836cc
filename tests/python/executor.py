"""A pymesos custom executor for Strata's end-to-end tests (tests/tests/it/executor.rs).

Each task's `data` says what to do with it:
  finish (default)  TASK_RUNNING, then TASK_FINISHED
  hang              TASK_RUNNING, then nothing until KILL (answered TASK_KILLED)
  exit              TASK_RUNNING, then the executor exits with status 3 mid-task
Framework messages are echoed back prefixed with "echo:". SHUTDOWN ends the executor.
"""

import os
import sys
import threading
import time

from pymesos import Executor, MesosExecutorDriver, decode_data, encode_data


class TestExecutor(Executor):
    def registered(self, driver, executor_info, framework_info, agent_info):
        print("registered", executor_info["executor_id"]["value"], flush=True)

    def launchTask(self, driver, task):
        threading.Thread(target=self.run, args=(driver, task), daemon=True).start()

    def launchTaskGroup(self, driver, tasks):
        print("group", ",".join(t["task_id"]["value"] for t in tasks), flush=True)
        for task in tasks:
            self.launchTask(driver, task)

    def run(self, driver, task):
        what = decode_data(task["data"]).decode() if task.get("data") else "finish"
        task_id = task["task_id"]
        print("launch", task_id["value"], what, flush=True)
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_RUNNING"})
        if what == "exit":
            time.sleep(0.5)
            print("exiting mid-task", flush=True)
            os._exit(3)
        if what == "finish":
            time.sleep(0.2)
            driver.sendStatusUpdate(
                {"task_id": task_id, "state": "TASK_FINISHED", "message": "done by the executor"}
            )

    def killTask(self, driver, task_id):
        print("kill", task_id["value"], flush=True)
        driver.sendStatusUpdate(
            {"task_id": task_id, "state": "TASK_KILLED", "message": "killed by the executor"}
        )

    def frameworkMessage(self, driver, message):
        data = decode_data(message)
        print("message", data, flush=True)
        driver.sendFrameworkMessage(encode_data(b"echo:" + data))

    def shutdown(self, driver):
        print("shutdown", flush=True)


class Driver(MesosExecutorDriver):
    """Says which updates the agent acknowledged (the ACKNOWLEDGED event)."""

    def on_acknowledged(self, event):
        print("acknowledged", event["task_id"]["value"], flush=True)
        super().on_acknowledged(event)


if __name__ == "__main__":
    driver = Driver(TestExecutor(), use_addict=True)
    status = driver.run()
    print("driver stopped", status, flush=True)
    sys.exit(0)
