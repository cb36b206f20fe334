"""A Ray cluster of several nodes on this machine, on loopback, for tests/test_cluster.py and
benchmarks/cluster.py.

Ray advertises the machine's network address even when told --node-ip-address 127.0.0.1
(it swaps loopback for the routable address so that other machines could join). Here the
nodes are started through `ray start`'s own entry point with that swap turned off, and
drivers get DRIVER_ENV (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0: Ray's switch that keeps a
driver's addresses on loopback); `local_cluster` checks that every node is on 127.0.0.1 and
that nothing of the cluster listens beyond it.

Each node is a `ray start --block` in a process group of its own, which stops its node when
it ends and is sent SIGTERM when the process that started it dies. Only that process and,
if they outlast it, the node's own processes (its process group, and the workers its raylet
started, by pid) are ever signalled, so no other Ray on the machine is touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

LAUNCH = ("import sys, ray._private.services as services; services.resolve_ip_for_localhost = lambda host: host; "
          "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()")
NODE_ADDRESSES = ("import json, sys, ray; ray.init(address=sys.argv[1]); "
                  "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))")
# Ray's memory monitor kills workers when the machine's memory runs low, whoever uses it; on a
# shared machine that is other people's jobs, and these workers need little.
NODE_ENV = {**os.environ, "RAY_memory_monitor_refresh_ms": "0"}
DRIVER_ENV = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when the process that started it ends, however it ends."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_node(args: list[str], temp_dir: str) -> subprocess.Popen:
    """`ray start --block` with `args`, once it says it runs."""
    log = Path(temp_dir) / "node.log"
    ports = ["--dashboard-agent-listen-port", str(free_port()), "--metrics-export-port", str(free_port()),
             "--runtime-env-agent-port", str(free_port())]
    node = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "start", "--block", "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
         "--temp-dir", temp_dir, *ports, *args],
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent, env=NODE_ENV,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while "block forever" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            stop([node])
            raise RuntimeError(f"ray start failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.3)
    return node


def members(node: subprocess.Popen) -> list[tuple[int, str]]:
    """(pid, command) of the node's live processes: its process group, and the workers its
    raylet started (in process groups of their own)."""
    table = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [row for row in (line.split(None, 4) for line in table.splitlines()) if len(row) == 5 and not row[3].startswith("Z")]
    group = [row for row in rows if row[2] == str(node.pid)]
    raylets = {row[0] for row in group if row[4].split()[0].endswith("/raylet")}
    return [(int(row[0]), row[4]) for row in rows if row in group or row[1] in raylets]


def stop(nodes: list[subprocess.Popen]) -> None:
    """SIGTERM to each `ray start`, the last node first (it stops its node's processes), then
    SIGKILL to whatever of them is left after a few seconds (a node that ran jobs may drain
    for up to 30 s, which a test cluster does not need)."""
    for node in reversed(nodes):
        processes = [pid for pid, _ in members(node)]
        node.terminate()
        for signal_number in (None, signal.SIGKILL):
            if signal_number is not None:
                for pid in alive(processes):
                    os.kill(pid, signal_number)
            deadline = time.monotonic() + 5
            while alive(processes) and time.monotonic() < deadline:
                time.sleep(0.2)
        node.wait(10)


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (a zombie has finished)."""
    table = subprocess.run(["ps", "-eo", "pid=,stat="], capture_output=True, text=True).stdout
    running = {int(pid) for pid, stat in (line.split() for line in table.splitlines()) if not stat.startswith("Z")}
    return [pid for pid in pids if pid in running]


def listening_beyond_loopback(pids: set[int]) -> list[str]:
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    return [line for line in table.splitlines()
            if any(f"pid={pid}," in line for pid in pids) and not line.split()[3].startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:", "[::1]:"))]


@contextlib.contextmanager
def local_cluster(cpus: list[int]) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """(address, nodes): a head with cpus[0] CPUs and a node per further entry, stopped at the end."""
    temp = [tempfile.mkdtemp(prefix="bw-ray-", dir="/tmp") for _ in cpus]  # short: socket paths have a limit
    port = free_port()
    address = f"127.0.0.1:{port}"
    nodes = [start_node(["--head", "--port", str(port), "--num-cpus", str(cpus[0]), "--include-dashboard=false",
                         "--dashboard-port", str(free_port())], temp[0])]
    try:
        for count, folder in zip(cpus[1:], temp[1:]):
            nodes.append(start_node(["--address", address, "--num-cpus", str(count)], folder))
        facts = subprocess.run([sys.executable, "-c", NODE_ADDRESSES, address], env=DRIVER_ENV,
                               capture_output=True, text=True, timeout=120)
        assert json.loads(facts.stdout.strip().splitlines()[-1]) == ["127.0.0.1"] * len(cpus), facts.stderr[-2000:]
        assert listening_beyond_loopback({pid for node in nodes for pid, _ in members(node)}) == []
        yield address, nodes
    finally:
        before = [pid for node in nodes for pid, _ in members(node)]
        stop(nodes)
        for folder in temp:
            shutil.rmtree(folder, ignore_errors=True)
        assert alive(before) == []
