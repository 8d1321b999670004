"""T19 of the issue-10 campaign: a keepalive soak, 5 minutes of pings in 60 s (marked `slow`).

The property: our own keepalive pings never trip the servers' ping-abuse
policy (no ping strike, no GOAWAY `too_many_pings`), on every connection of a
cluster: worker -> master, driver -> master, executor -> driver and worker,
and an idle status client -> master.

Why 60 s at `spark.rpc.keepalive.interval=4s` stands for 5 minutes at the
default 20 s (every timer is scaled by 1/5):

- A connection pings only after a keepalive interval without data (a ping
  received counts as data, so the two ends take turns), so each idle one
  carries 60 / 4 = 15 pings, as many as in 5 minutes at 20 s.
  The worker heartbeat (`spark.worker.timeout` / 4) and the executor
  heartbeat are scaled by the same 1/5, so busy connections keep the same
  ratio of data to pings as in production; the status client sends nothing
  at all, the worst case (on an idle connection, strikes are never forgiven).
- A server counts a strike for a ping that arrives sooner than
  `min(5 s, interval / 2)` after the previous one. That verdict depends only
  on the ratio of the gap to that bound, and scaling makes it stricter: at
  4 s the bound is half the interval (2 s), at 20 s only a quarter (5 s).
- gRPC clients space their pings at least 1 s apart, so an interval below
  1 s (e.g. the 200 ms of the hand-run soak) would not scale faithfully;
  4 s stays above that floor.

The servers' own count is the evidence: every process runs with
`GRPC_TRACE=http_keepalive`, whose "SERVER: received ping ... now=@T
next_allowed_ping=@N" lines say for each ping received whether it was early
(a strike: T < N). The test asserts zero strikes, zero `too_many_pings`,
enough pings seen (so a changed trace format fails, never passes vacuously),
and exact job results before and after. Figures are printed (`-s`).

The soak takes about 80 s on 2 cores, so it is marked `slow`: `make test`
(CI) runs it, `make test-fast` skips it. A second, fast test proves that the
evidence can fail: a peer pinging more often than the server allows is seen.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from cluster.testing import ROOT, ProcCluster, wait_until
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

#: 5 minutes at the default 20 s keepalive, scaled by 1/5.
SOAK_SECONDS = 60.0
SCALED = {
    "spark.rpc.keepalive.interval": "4s",  # 20 s / 5
    "spark.worker.timeout": "12",  # 60 s / 5: heartbeats every 3 s
}
_RECEIVED = re.compile(
    r"SERVER\[[^\]]*\]: received ping \d+: now=@(-?\d+)ms .*next_allowed_ping=@(-∞|-?\d+ms)"
)

DRIVER = """
import json, sys, time
from scheduler import SparkConf, SparkContext
conf = SparkConf().setAll([tuple(kv.split("=", 1)) for kv in sys.argv[3:]])
with SparkContext(master=sys.argv[1], appName="keepalive-soak", conf=conf) as sc:
    before = sc.parallelize(range(1000), 4).map(lambda x: x * x).sum()
    time.sleep(float(sys.argv[2]))  # idle: only keepalive pings and heartbeats
    after = sc.parallelize(range(1000), 4).map(lambda x: x * x).sum()
    print(json.dumps({"before": before, "after": after}), flush=True)
    sys.stdin.readline()  # the test copies the executors' logs while they still exist
"""


def copy_executor_logs(cluster_dir: pathlib.Path, into: pathlib.Path) -> list[pathlib.Path]:
    """Copies of the executors' stderr (their worker deletes the originals with the app)."""
    into.mkdir()
    copies = []
    for index, path in enumerate(sorted(cluster_dir.glob("worker*/*/*/stderr"))):
        copy = into / f"executor{index}.stderr"
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


def ping_verdicts(paths: list[pathlib.Path]) -> tuple[int, int, int]:
    """(pings received by servers, of which strikes, `too_many_pings` mentions) in `paths`."""
    pings = strikes = goaways = 0
    for path in paths:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            goaways += "too_many_pings" in line
            match = _RECEIVED.search(line)
            if match is None:
                continue
            pings += 1
            now, allowed = match.groups()
            strikes += allowed != "-∞" and int(now) < int(allowed.removesuffix("ms"))
    return pings, strikes, goaways


@pytest.mark.slow
@pytest.mark.timeout(SOAK_SECONDS + 120)
def test_t19_keepalive_soak_no_ping_strike_on_any_connection(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRPC_TRACE", "http_keepalive")  # children inherit it, executors too
    cluster = ProcCluster(tmp_path / "cluster", SCALED, workers=2, cores=1)
    driver_log = tmp_path / "driver.log"
    try:
        status = cluster.client_env()  # pings the master for the whole soak, sends nothing
        state = cluster.master_ref(status).ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(state, api.GetClusterStateResponse) and len(state.workers) == 2
        script = tmp_path / "driver.py"
        script.write_text(DRIVER)
        spark_conf = [
            "spark.ui.enabled=false",
            "spark.executor.memory=256m",
            "spark.rpc.keepalive.interval=4s",
            "spark.executor.heartbeatInterval=2s",  # 10 s / 5
        ]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out_path = tmp_path / "driver.out"
        with driver_log.open("wb") as log, out_path.open("wb") as out:
            driver = subprocess.Popen(
                [sys.executable, str(script), cluster.url, str(SOAK_SECONDS), *spark_conf],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=log,
                env=env,
                cwd=tmp_path,
            )
            try:
                wait_until(
                    lambda: b"after" in out_path.read_bytes() or driver.poll() is not None,
                    SOAK_SECONDS + 60,
                    "the driver's jobs around the soak",
                )
                executor_logs = copy_executor_logs(cluster.tmp, tmp_path / "executors")
                assert driver.stdin is not None
                driver.stdin.close()  # the driver stops its SparkContext
                driver.wait(30)
            finally:
                if driver.poll() is None:
                    driver.kill()
                    driver.wait(10)
        assert driver.returncode == 0, driver_log.read_text(errors="replace")[-3000:]
        lines = [json.loads(x) for x in out_path.read_text().splitlines() if x.startswith("{")]
        assert lines == [{"before": 332833500, "after": 332833500}], lines
        workers = {w.id: w.state for w in cluster.state().workers}
        assert list(workers.values()) == [pb.WORKER_STATE_ALIVE] * 2, workers
    finally:
        cluster.close()
    cluster.assert_no_leaks()
    logs = [driver_log, *cluster.tmp.glob("*.log"), *executor_logs]
    pings, strikes, goaways = ping_verdicts(logs)
    executors = len(executor_logs)
    print(
        f"\nT19: {pings} keepalive pings received by servers in {SOAK_SECONDS:g}s at a 4s "
        f"interval ({len(logs)} logs, {executors} executor logs): {strikes} strikes, "
        f"{goaways} too_many_pings"
    )
    assert executors >= 1, "no executor log: the executors' connections were not soaked"
    # The idle status client alone pings the master about 15 times.
    assert pings >= 10, "too few pings seen: is GRPC_TRACE's format still understood?"
    assert strikes == 0 and goaways == 0


EAGER_PEER = """
import time
from rpcenv import RpcEndpoint, RpcEnv
server = RpcEnv.create("server", "127.0.0.1", 0, {"spark.rpc.keepalive.interval": "4s"})
server.setup_endpoint("e", RpcEndpoint())
client_conf = {"spark.rpc.keepalive.interval": "200ms"}  # pings every 1 s: under the 2 s bound
client = RpcEnv.create("client", "127.0.0.1", 0, client_conf, client_mode=True)
client.endpoint_ref(server.address, "e", timeout=5)
time.sleep(6)
client.shutdown()
server.shutdown()
"""


def test_the_soak_sees_the_strikes_of_a_peer_that_pings_too_often(tmp_path: pathlib.Path) -> None:
    # The soak's evidence can fail: a client whose keepalive is shorter than the server
    # allows earns strikes, then GOAWAY too_many_pings, and ping_verdicts counts both.
    script = tmp_path / "eager.py"
    script.write_text(EAGER_PEER)
    log = tmp_path / "eager.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GRPC_TRACE": "http_keepalive"}
    with log.open("wb") as err:
        subprocess.run([sys.executable, str(script)], stderr=err, env=env, timeout=60, check=True)
    pings, strikes, goaways = ping_verdicts([log])
    print(f"\nan eager peer: {pings} pings, {strikes} strikes, {goaways} too_many_pings")
    assert strikes >= 1 and goaways >= 1, log.read_text(errors="replace")[-2000:]
