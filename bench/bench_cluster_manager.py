"""Cluster-manager figures: readiness, executor launch latency, idle memory.

Usage: ``.venv/bin/python bench/bench_cluster_manager.py [--rounds N] [--json]``

Measures, on 127.0.0.1 over the gRPC backend:
- master start-to-ready: `start_master()` in this process, and a
  `python -m cluster.run master` process from spawn to its ready line;
- worker start-to-registered: `start_worker()` + `wait_registered()`, and a
  worker process from spawn to its registered ready line;
- executor launch: LaunchExecutor received by the worker to the process
  started (the worker's own clock), and ExecutorAdded at the driver to the
  executor's first Python statement (an interpreter start included);
- idle RSS of a master and a worker process (psutil), after 2 s idle.
Goals (issue 3): each under 1 s; idle master and worker under 60 MiB.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from google.protobuf.message import Message  # noqa: E402

from cluster.launch import start_master, start_worker  # noqa: E402
from rpcenv import Conf, RpcEndpoint, RpcEndpointRef, RpcEnv  # noqa: E402
from sparkctl.v1 import deploy_pb2 as pb  # noqa: E402

CONF = Conf({"spark.worker.timeout": "60"})


def spawn_ready(args: list[str]) -> tuple[subprocess.Popen[bytes], float, dict[str, object]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "cluster.run", *args], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.monotonic() - started
    info = json.loads(line)
    if not info.get("ready"):
        raise SystemExit(f"not ready: {info}")
    return proc, elapsed, info


class Driver(RpcEndpoint):
    """Registers an app and notes when each ExecutorAdded arrives (wall clock)."""

    def __init__(self, master: RpcEndpointRef, argv: list[str]) -> None:
        self.master = master
        self.argv = argv
        self.added: dict[int, float] = {}
        self.event = threading.Event()

    def on_start(self) -> None:
        master = self.rpc_env.endpoint_ref(self.master.address, self.master.name)
        desc = pb.ApplicationDescription(
            name="bench",
            cores_per_executor=1,
            max_cores=1,
            memory_per_executor_mb=128,
            command=pb.Command(argv=self.argv),
        )
        master.ask(pb.RegisterApplicationRequest(description=desc))

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.ExecutorAdded):
            self.added[message.executor_id] = time.time()
            self.event.set()


def one_round(tmp: pathlib.Path) -> dict[str, float]:
    out: dict[str, float] = {}
    t0 = time.monotonic()
    master = start_master(CONF, "127.0.0.1", 0, tmp / "m")
    out["master_in_process_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    worker = start_worker(CONF, [master.url], 2, 2048, "127.0.0.1", 0, tmp / "w")
    assert worker.wait_registered(30)
    out["worker_in_process_s"] = time.monotonic() - t0

    stamp = tmp / "first_statement"
    argv = [
        sys.executable,
        "-c",
        f"import time; open({str(stamp)!r}, 'w').write(repr(time.time())); time.sleep(30)",
    ]
    env = RpcEnv.create("bench-driver", "127.0.0.1", 0, CONF, client_mode=True)
    driver = Driver(master.ref, argv)
    env.setup_endpoint("AppClient", driver)
    assert driver.event.wait(30)
    deadline = time.monotonic() + 30
    while not (stamp.exists() and stamp.read_text()) and time.monotonic() < deadline:
        time.sleep(0.005)
    out["executor_added_to_first_statement_s"] = float(stamp.read_text()) - driver.added[0]
    out["launch_to_process_started_s"] = worker.endpoint.launch_times()[0]
    env.shutdown()
    worker.stop()
    master.stop()

    mproc, out["master_process_spawn_to_ready_s"], minfo = spawn_ready(
        ["master", "--port", "0", "--work-dir", str(tmp / "pm")]
    )
    wproc, out["worker_process_spawn_to_registered_s"], winfo = spawn_ready(
        [
            "worker",
            str(minfo["url"]),
            "--cores",
            "2",
            "--memory",
            "1g",
            "--work-dir",
            str(tmp / "pw"),
        ]
    )
    assert winfo["registered"]
    time.sleep(2.0)  # idle before sampling memory
    out["master_idle_rss_mib"] = psutil.Process(mproc.pid).memory_info().rss / (1 << 20)
    out["worker_idle_rss_mib"] = psutil.Process(wproc.pid).memory_info().rss / (1 << 20)
    for proc in (wproc, mproc):
        proc.terminate()
        proc.wait(15)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rounds = []
    for i in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="sparkctl-bench-") as tmp:
            rounds.append(one_round(pathlib.Path(tmp) / str(i)))
    summary = {
        key: {
            "median": statistics.median(r[key] for r in rounds),
            "max": max(r[key] for r in rounds),
        }
        for key in rounds[0]
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{'figure':42} {'median':>10} {'max':>10}   ({args.rounds} rounds)")
    for key, value in summary.items():
        unit = "MiB" if key.endswith("mib") else "s"
        print(f"{key:42} {value['median']:>10.3f} {value['max']:>10.3f}   {unit}")


if __name__ == "__main__":
    main()
