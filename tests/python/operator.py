"""pymesos' operator clients against Strata: the master's and the agent's v1 operator API.

Usage: operator.py MASTER AGENT FRAMEWORK_ID TASK_ID SANDBOX_FILE
Prints OK at the end; any failed check raises (exit status 1).
"""
import base64
import os
import sys
import threading
import traceback

from pymesos import MesosOperatorAgentDriver, MesosOperatorMasterDriver, OperatorMaster

master, agent, framework_id, task_id, sandbox_file = sys.argv[1:6]


def check(cond, what):
    if not cond:
        raise AssertionError(what)


class Operator(OperatorMaster):
    def __init__(self):
        self.removed = threading.Event()
        self.removed_ids = []

    def frameworkRemoved(self, framework_info):
        self.removed_ids.append(framework_info['id']['value'])
        self.removed.set()


class Driver(MesosOperatorMasterDriver):
    subscribed = threading.Event()

    def on_subscribed(self, info):
        check('get_agents' in info['get_state'], 'SUBSCRIBED has no get_state: %r' % info)
        Driver.subscribed.set()



def main():
    operator = Operator()
    driver = Driver(master, operator)

    health = driver.getHealth()
    check(health['get_health']['healthy'] is True, health)
    version = driver.getVersion()
    check(version['get_version']['version_info']['version'], version)
    flags = driver.getFlags()
    check(any(f['name'] == 'ip' for f in flags['get_flags']['flags']), flags)
    metrics = driver.getMetrics(None)
    names = {m['name']: m['value'] for m in metrics['get_metrics']['metrics']}
    check(names['master/tasks_running'] == 1, names)
    check(names['master/elected'] == 1, names)

    state = driver.getState()['get_state']
    check(state['get_tasks']['tasks'][0]['task_id']['value'] == task_id, state)
    agents = driver.getAgents()['get_agents']['agents']
    check(len(agents) == 1 and agents[0]['active'], agents)
    agent_id = agents[0]['agent_info']['id']['value']
    frameworks = driver.getFrameworks()['get_frameworks']['frameworks']
    check(frameworks[0]['framework_info']['id']['value'] == framework_id, frameworks)
    tasks = driver.getTasks()['get_tasks']['tasks']
    check(tasks[0]['state'] == 'TASK_RUNNING', tasks)
    check(tasks[0]['agent_id']['value'] == agent_id, tasks)
    master_info = driver.getMaster()['get_master']['master_info']
    check(master_info['address']['port'] == int(master.split(':')[1]), master_info)
    check('roles' in driver.getRoles()['get_roles'], 'GET_ROLES')
    driver.updateWeights([dict(role='pyops', weight=2.5)])
    weights = driver.getWeights()['get_weights']['weight_infos']
    check(dict(role='pyops', weight=2.5) in weights, weights)
    check('status' in driver.getQuota()['get_quota'], 'GET_QUOTA')

    # The event stream: subscribed, then the framework torn down by the operator is removed.
    driver.start()
    check(Driver.subscribed.wait(30), 'not subscribed within 30 s')
    driver._send(dict(type='TEARDOWN', teardown=dict(framework_id=dict(value=framework_id))))
    check(operator.removed.wait(30), 'no FRAMEWORK_REMOVED within 30 s')
    check(operator.removed_ids == [framework_id], operator.removed_ids)
    driver.stop()

    # The agent's operator API.
    agent_driver = MesosOperatorAgentDriver(agent)
    check(agent_driver.getHealth()['get_health']['healthy'] is True, 'agent GET_HEALTH')
    agent_state = agent_driver.getState()['get_state']
    check('get_tasks' in agent_state and 'get_frameworks' in agent_state, agent_state)
    check('containers' in agent_driver.getContainers()['get_containers'], 'GET_CONTAINERS')
    listing = agent_driver.listFiles(sandbox_file.rsplit('/', 1)[0])['list_files']['file_infos']
    check(any(f['path'] == sandbox_file for f in listing), listing)
    read = agent_driver.readFile(sandbox_file, 5, 0)['read_file']
    check(base64.b64decode(read['data']) == b'hello', read)
    print('OK', flush=True)


try:
    main()
except BaseException:
    traceback.print_exc()
    sys.stderr.flush()
    # pymesos' threads must not keep a failed run alive.
    os._exit(1)
os._exit(0)
