#!/usr/bin/env python3
"""Writes the text-based seed corpora of the fuzz targets (fuzz/corpus/<target>/seed-*).
The Cap'n Proto seeds of `wire` are written by `cargo test -p strata-fuzzing -- --ignored
write_wire_seeds`, from the v1 JSON seeds written here. Run from the repository root; the
output is checked in."""
import base64, gzip, io, json, os, tarfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)

def js(v):
    return json.dumps(v, separators=(",", ":"))

FW_ID = {"value": "2a1b7d90-7d6c-4c37-a2b4-0f0e0d0c0b0a-0001"}
AGENT_ID = {"value": "5f0e3a61-2b9c-4a7e-8d5c-1a2b3c4d5e6f-S0"}
RES = [
    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.5}, "role": "*"},
    {"name": "mem", "type": "SCALAR", "scalar": {"value": 128}, "reservations": [{"type": "DYNAMIC", "role": "ops", "principal": "ops"}]},
    {"name": "ports", "type": "RANGES", "ranges": {"range": [{"begin": 31000, "end": 31001}]}},
    {"name": "disk", "type": "SCALAR", "scalar": {"value": 64}, "role": "ops",
     "disk": {"persistence": {"id": "v1", "principal": "ops"}, "volume": {"container_path": "data", "mode": "RW"}}},
    {"name": "zones", "type": "SET", "set": {"item": ["a", "b"]}},
]
FRAMEWORK = {"user": "root", "name": "batch", "id": FW_ID, "roles": ["ops", "eng/batch"],
             "failover_timeout": 604800, "checkpoint": True, "hostname": "sched-1", "principal": "batch",
             "webui_url": "http://sched-1:8080", "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
             "labels": {"labels": [{"key": "team", "value": "data"}]}}
COMMAND = {"value": "echo hello && sleep 1", "shell": True,
           "environment": {"variables": [{"name": "A", "value": "1"}]}, "user": "nobody"}
ARGV = {"value": "/bin/sleep", "shell": False, "arguments": ["sleep", "10"]}
CONTAINER = {"type": "MESOS", "mesos": {"image": {"type": "DOCKER", "docker": {"name": "127.0.0.1:5000/busybox:1"}}},
             "volumes": [{"container_path": "/data", "host_path": "/srv/data", "mode": "RO"}],
             "hostname": "task-host"}
EXECUTOR = {"executor_id": {"value": "exec-1"}, "type": "CUSTOM", "name": "my executor",
            "command": {"value": "./executor.py", "shell": True}, "resources": RES[:1],
            "framework_id": FW_ID}
TASK = {"name": "t1", "task_id": {"value": "t1"}, "agent_id": AGENT_ID, "resources": RES,
        "command": COMMAND, "kill_policy": {"grace_period": {"nanoseconds": 3000000000}},
        "container": CONTAINER, "data": base64.b64encode(b"payload").decode(),
        "labels": {"labels": [{"key": "k", "value": "v"}]}}
TASK_EXEC = {"name": "t2", "task_id": {"value": "t2"}, "agent_id": AGENT_ID, "resources": RES[:2], "executor": EXECUTOR}
STATUS = {"task_id": {"value": "t1"}, "state": "TASK_RUNNING", "message": "running", "source": "SOURCE_EXECUTOR",
          "reason": "REASON_COMMAND_EXECUTOR_FAILED", "agent_id": AGENT_ID, "executor_id": {"value": "exec-1"},
          "timestamp": 1700000000.25, "uuid": base64.b64encode(bytes(range(16))).decode(),
          "container_status": {"executor_pid": 42}}
OPS = [
    {"type": "LAUNCH", "launch": {"task_infos": [TASK]}},
    {"type": "LAUNCH_GROUP", "launch_group": {"executor": dict(EXECUTOR, type="DEFAULT"), "task_group": {"tasks": [TASK_EXEC]}}},
    {"type": "RESERVE", "reserve": {"resources": RES[:2]}},
    {"type": "UNRESERVE", "unreserve": {"resources": RES[1:2]}},
    {"type": "CREATE", "create": {"volumes": RES[3:4]}},
    {"type": "DESTROY", "destroy": {"volumes": RES[3:4]}},
]

# v1_json: first byte picks the message (0 framework, 1 task, 2 executor, 3 status, 4 operation,
# 5 command, 6 container).
put("v1_json", "framework", b"\x00" + js(FRAMEWORK).encode())
put("v1_json", "framework-min", b"\x00" + js({"user": "u", "name": "n"}).encode())
put("v1_json", "task", b"\x01" + js(TASK).encode())
put("v1_json", "task-executor", b"\x01" + js(TASK_EXEC).encode())
put("v1_json", "task-argv", b"\x01" + js(dict(TASK, command=ARGV, container=None)).encode())
put("v1_json", "executor", b"\x02" + js(EXECUTOR).encode())
put("v1_json", "status", b"\x03" + js(STATUS).encode())
for i, op in enumerate(OPS):
    put("v1_json", f"operation-{i}", b"\x04" + js(op).encode())
put("v1_json", "command", b"\x05" + js(COMMAND).encode())
put("v1_json", "command-argv", b"\x05" + js(ARGV).encode())
put("v1_json", "container", b"\x06" + js(CONTAINER).encode())

# master_http: 0 scheduler API, 1 v1 operator API, 2 v0 operator body (next byte: which).
sched = [
    {"type": "SUBSCRIBE", "subscribe": {"framework_info": FRAMEWORK, "suppressed_roles": ["ops"]}, "framework_id": FW_ID},
    {"type": "ACCEPT", "framework_id": FW_ID, "accept": {"offer_ids": [{"value": "o-1"}], "operations": OPS, "filters": {"refuse_seconds": 5}}},
    {"type": "DECLINE", "framework_id": FW_ID, "decline": {"offer_ids": [{"value": "o-1"}, {"value": "o-2"}], "filters": {"refuse_seconds": 1}}},
    {"type": "ACCEPT_INVERSE_OFFERS", "framework_id": FW_ID, "accept_inverse_offers": {"inverse_offer_ids": [{"value": "i-1"}]}},
    {"type": "REVIVE", "framework_id": FW_ID, "revive": {"roles": ["ops"]}},
    {"type": "SUPPRESS", "framework_id": FW_ID, "suppress": {"roles": ["ops"]}},
    {"type": "KILL", "framework_id": FW_ID, "kill": {"task_id": {"value": "t1"}, "agent_id": AGENT_ID, "kill_policy": {"grace_period": {"nanoseconds": 1}}}},
    {"type": "SHUTDOWN", "framework_id": FW_ID, "shutdown": {"executor_id": {"value": "exec-1"}, "agent_id": AGENT_ID}},
    {"type": "ACKNOWLEDGE", "framework_id": FW_ID, "acknowledge": {"agent_id": AGENT_ID, "task_id": {"value": "t1"}, "uuid": STATUS["uuid"]}},
    {"type": "RECONCILE", "framework_id": FW_ID, "reconcile": {"tasks": [{"task_id": {"value": "t1"}, "agent_id": AGENT_ID}]}},
    {"type": "MESSAGE", "framework_id": FW_ID, "message": {"agent_id": AGENT_ID, "executor_id": {"value": "exec-1"}, "data": "aGk="}},
    {"type": "UPDATE_FRAMEWORK", "framework_id": FW_ID, "update_framework": {"framework_info": FRAMEWORK, "suppressed_roles": []}},
    {"type": "TEARDOWN", "framework_id": FW_ID},
]
for c in sched:
    put("master_http", "scheduler-" + c["type"].lower(), b"\x00" + js(c).encode())
MACHINES = [{"hostname": "node-1", "ip": "10.0.0.1"}]
SCHEDULE = {"windows": [{"machine_ids": MACHINES, "unavailability": {"start": {"nanoseconds": 1700000000000000000}, "duration": {"nanoseconds": 3600000000000}}}]}
QUOTA = {"role": "ops", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}, "mem": {"value": 1024}}}
WEIGHTS = [{"role": "ops", "weight": 2.5}]
oper = [
    {"type": "GET_STATE"},
    {"type": "UPDATE_MAINTENANCE_SCHEDULE", "update_maintenance_schedule": {"schedule": SCHEDULE}},
    {"type": "START_MAINTENANCE", "start_maintenance": {"machines": MACHINES}},
    {"type": "CREATE_VOLUMES", "create_volumes": {"agent_id": AGENT_ID, "volumes": RES[3:4]}},
    {"type": "RESERVE_RESOURCES", "reserve_resources": {"agent_id": AGENT_ID, "resources": RES[:2]}},
    {"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": WEIGHTS}},
    {"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [QUOTA]}},
    {"type": "DRAIN_AGENT", "drain_agent": {"agent_id": AGENT_ID, "max_grace_period": {"nanoseconds": 1000}, "mark_gone": False}},
    {"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": AGENT_ID}},
]
for c in oper:
    put("master_http", "operator-" + c["type"].lower(), b"\x01" + js(c).encode())
v0 = [
    (0, js(SCHEDULE)), (1, js(QUOTA)), (2, js(WEIGHTS)),
    (3, js({"agent_id": AGENT_ID, "max_grace_period": {"nanoseconds": 5}})),
    (4, js({"agent_id": AGENT_ID})), (5, js(MACHINES)),
    (6, js({"agent_id": AGENT_ID["value"], "resources": "cpus(ops):1;mem(ops):64"})),
    (7, "slaveId=" + AGENT_ID["value"] + "&resources=" + js(RES[:2])),
]
for i, body in v0:
    put("master_http", f"v0-{i}", bytes([2, i]) + body.encode())

# executor_call
EX = {"framework_id": FW_ID, "executor_id": {"value": "exec-1"}}
put("executor_call", "subscribe", js(dict(EX, type="SUBSCRIBE", subscribe={"unacknowledged_tasks": [TASK], "unacknowledged_updates": []})))
put("executor_call", "update", js(dict(EX, type="UPDATE", update={"status": STATUS})))
put("executor_call", "message", js(dict(EX, type="MESSAGE", message={"data": "aGVsbG8="})))

# resources: 0 text, 1 attributes, 2 Mesos JSON, 3 role / duration
for i, t in enumerate(["cpus:2;mem:1024;disk:4096;ports:[31000-32000]",
                       "cpus(ops):1;mem(ops/eng):64;gpus:{a,b,c};ports:[1-2,5-9]",
                       "disk(ops)[v1:data]:64;disk(a/b)[v2:x/y:ro]:1.5;cpus:0.001",
                       "cpus:1.5,mem:512"]):
    put("resources", f"text-{i}", b"\x00" + t.encode())
for i, t in enumerate(["rack:r1;zone:us-east-1a;cores:8;range:[1-10];set:{a,b}", "os:linux"]):
    put("resources", f"attributes-{i}", b"\x01" + t.encode())
put("resources", "json", b"\x02" + js(RES).encode())
for i, t in enumerate(["eng/batch", "*", "10secs", "1.5hrs", "250ms"]):
    put("resources", f"role-duration-{i}", b"\x03" + t.encode())

# recordio
def record(v):
    b = js(v).encode()
    return str(len(b)).encode() + b"\n" + b
put("recordio", "stream", record({"type": "SUBSCRIBED", "subscribed": {"framework_id": FW_ID, "heartbeat_interval_seconds": 15}}) + record({"type": "HEARTBEAT"}))
put("recordio", "json", js({"type": "UPDATE", "update": {"status": STATUS}}))
put("recordio", "cut", b"120\n{\"type\"")

# tar: files, dirs, links, whiteouts, xattrs, gzip
def layer(entries, gz=False):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, arg in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            data = None
            if kind == "file":
                data = arg.encode(); info.size = len(data); info.mode = 0o644
            elif kind == "dir":
                info.type = tarfile.DIRTYPE; info.mode = 0o755
            elif kind == "sym":
                info.type = tarfile.SYMTYPE; info.linkname = arg
            elif kind == "hard":
                info.type = tarfile.LNKTYPE; info.linkname = arg
            elif kind == "xattr":
                data = b"x"; info.size = 1; info.pax_headers = {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.overlay.opaque": "y"}
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    # Trim the trailing zero blocks to keep seeds small (tar readers stop at EOF too).
    raw = raw.rstrip(b"\0")
    raw += b"\0" * ((-len(raw)) % 512) + b"\0" * 1024
    return gzip.compress(raw, mtime=0) if gz else raw
put("tar", "files", layer([("dir", "etc/", ""), ("file", "etc/hostname", "box\n"), ("sym", "bin", "usr/bin"), ("hard", "etc/h2", "etc/hostname")]))
put("tar", "whiteouts", layer([("dir", "var/", ""), ("file", "var/.wh.old", ""), ("dir", "opt/", ""), ("file", "opt/.wh..wh..opq", "")]))
put("tar", "xattrs", layer([("xattr", "f", "")]))
put("tar", "gzip", layer([("file", "a", "a"), ("dir", "d/", "")], gz=True))
put("tar", "hostile", layer([("sym", "l", "/"), ("file", "l/escaped", "x"), ("file", "../up", "x"), ("hard", "h", "/etc/passwd")]))

# image: 0 manifest, 1 config, 2 reference, 3 digest
D = "sha256:" + "ab" * 32
put("image", "manifest", b"\x00" + js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 100},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 1000}]}).encode())
put("image", "index", b"\x00" + js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 500,
                   "platform": {"architecture": "amd64", "os": "linux"}}]}).encode())
put("image", "config", b"\x01" + js({"architecture": "amd64", "os": "linux",
    "config": {"Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "User": "1000:1000", "WorkingDir": "/w"},
    "rootfs": {"type": "layers", "diff_ids": [D]}}).encode())
for i, r in enumerate(["busybox", "127.0.0.1:5000/library/busybox:1.36", "ghcr.io/a/b@" + D, "oci-archive:/tmp/x.tar:ref", "docker-archive:/tmp/y.tar"]):
    put("image", f"reference-{i}", b"\x02" + r.encode())
put("image", "digest", b"\x03" + D.encode())

# sandbox_path: 0 = relative to the sandbox root, else as sent
for i, p in enumerate(["fw/run/stdout", "in/run/stdout", "out/secret", "abs/etc/passwd", "fw/../../secret", "fw/run", ""]):
    put("sandbox_path", f"root-{i}", b"\x00" + p.encode())
for i, p in enumerate(["/etc/passwd", "relative/path", "/proc/self/root/etc/passwd"]):
    put("sandbox_path", f"raw-{i}", b"\x01" + p.encode())
