"""A standalone application's driver and executors speak tcp; the cluster stays on gRPC.

One Master and one Worker (real processes on 127.0.0.1, with the shared
secret) serve every test of the module. The driver keeps a gRPC env for the
Master and opens a tcp env for its executors, which reach their Worker over
gRPC and each other over tcp; `spark.rpc.backend=grpc` keeps every peer on
gRPC, and so does TLS (`test_a_tls_cluster_keeps_the_application_on_grpc`).
An executor with the wrong credential is refused with a reason it prints, and
an executor that dies is noticed by its driver through its closed connection.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _executor_cluster import app_context, executor_pids, run_foreign_executor, secret_cluster

from cluster.testing import ProcCluster, tls_files, wait_until
from rpcenv import SECRET_ENV_VAR, Conf
from scheduler.api.driver import CLUSTER_TCP_MAX_CONNECTIONS, executors_rpc_backend

pytestmark = pytest.mark.timeout(180)

SECRET = "executor-rpc-backend-test-secret"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    """A Master and a Worker of two cores, holding the secret (so are the drivers)."""
    with secret_cluster(tmp_path_factory.mktemp("cluster"), SECRET) as c:
        yield c


def _context(master: str, **conf: str) -> Any:
    return app_context(master, "rpc-backend", **conf)


def test_the_backend_follows_the_conf() -> None:
    assert executors_rpc_backend(Conf({}), {}, local=False) == "tcp"
    assert executors_rpc_backend(Conf({}), {}, local=True) == "tcp"
    named = {"spark.rpc.backend": "grpc"}
    assert executors_rpc_backend(Conf(named), named, local=False) is None
    tls = {"spark.ssl.rpc.enabled": "true"}
    assert executors_rpc_backend(Conf(tls), tls, local=False) is None
    # One pinned port serves one backend: a firewall opened for it lets executors in.
    pinned = {"spark.driver.port": "7078"}
    assert executors_rpc_backend(Conf(pinned), pinned, local=False) is None
    assert executors_rpc_backend(Conf(pinned), pinned, local=True) == "tcp"


def test_driver_and_executors_speak_tcp_and_the_master_grpc(cluster: ProcCluster) -> None:
    sc = _context(cluster.url, **{"spark.cores.max": "2", "spark.executor.cores": "1"})
    try:
        runtime = sc._runtime
        wait_until(lambda: len(sc._scheduler.executors) == 2, 60, "two executors")
        assert type(runtime.env).__name__ == "GrpcRpcEnv"  # the Master's
        assert type(runtime.scheduler_env).__name__ == "TcpRpcEnv"  # the executors'
        assert runtime.driver_url.endswith(f":{runtime.scheduler_env.address.port}")
        assert sc.getConf().get("spark.driver.port") == str(runtime.scheduler_env.address.port)
        executor_rpc = json.loads(runtime.executor_env["SPARKCTL_RPC_CONF"])
        assert executor_rpc["spark.rpc.backend"] == "tcp"
        # Every executor dials the driver, and every other one fetching its blocks: the
        # tcp envs of a cluster application take more connections than local[N]'s.
        limit = "spark.sparkctl.rpc.tcp.maxConnections"
        assert executor_rpc[limit] == str(CLUSTER_TCP_MAX_CONNECTIONS)
        assert runtime.scheduler_env.conf.get(limit) == str(CLUSTER_TCP_MAX_CONNECTIONS)
        # Shuffle blocks go from executor to executor (tcp), none relayed by the driver.
        pairs = sc.parallelize(range(2000), 4).map(lambda x: (x % 11, 1))
        assert dict(pairs.reduceByKey(lambda a, b: a + b, 3).collect()) == {
            k: len(range(k, 2000, 11)) for k in range(11)
        }
        assert sc._endpoint.relayed_fetches == 0
        with sc._scheduler.lock:
            addresses = {h.block_address for h in sc._scheduler.executors.values()}
        assert len(addresses) == 2 and "" not in addresses
        # Statuses are handled on the executor's reader thread (the env says it may).
        assert runtime.scheduler_env.delivers_on_peer_threads
        assert not runtime.env.delivers_on_peer_threads
        # The Master sees the executors RUNNING: they told their Worker over gRPC.
        app = next(a for a in cluster.state().active_apps if a.id == sc.applicationId)
        assert len(app.executors) == 2
    finally:
        sc.stop()


def test_grpc_named_keeps_every_peer_on_grpc(cluster: ProcCluster) -> None:
    sc = _context(cluster.url, **{"spark.rpc.backend": "grpc", "spark.cores.max": "1"})
    try:
        runtime = sc._runtime
        assert runtime.executors_env is None
        assert type(runtime.scheduler_env).__name__ == "GrpcRpcEnv"
        assert json.loads(runtime.executor_env["SPARKCTL_RPC_CONF"])["spark.rpc.backend"] == "grpc"
        assert sc.parallelize(range(100), 4).map(lambda x: x * 2).sum() == 9900
    finally:
        sc.stop()


def test_a_dead_executor_is_noticed_by_its_closed_connection(cluster: ProcCluster) -> None:
    # A heartbeat timeout far away: only the closed connection can tell the driver.
    sc = _context(cluster.url, **{"spark.cores.max": "1", "spark.network.timeout": "300s"})
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 1, 60, "the executor")
        assert sc.parallelize(range(10), 2).sum() == 45
        (old,) = list(sc._scheduler.executors)
        pids = executor_pids(cluster.workers[0].pid)
        assert len(pids) == 1
        killed = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        wait_until(lambda: old not in sc._scheduler.executors, 10, "the executor's loss")
        assert time.monotonic() - killed < 10
        # The Master replaces it; jobs run on the new one.
        wait_until(lambda: len(sc._scheduler.executors) == 1, 60, "a new executor")
        assert sc.parallelize(range(10), 2).sum() == 45
    finally:
        sc.stop()


def test_an_executor_with_the_wrong_credential_is_refused_saying_why(
    cluster: ProcCluster,
) -> None:
    sc = _context(cluster.url, **{"spark.cores.max": "1"})
    try:
        done = run_foreign_executor(sc._runtime, "77", sc.applicationId, "0" * 64)
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("executor 77 failed: cannot reach the driver at"), done.stderr
        assert "refused the connection" in last and "Traceback" not in done.stderr
        assert "77" not in sc._scheduler.executors
        assert sc.parallelize(range(10), 2).sum() == 45  # the application is unharmed
    finally:
        sc.stop()


def test_a_tls_cluster_keeps_the_application_on_grpc(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trustme")
    pki = tls_files(tmp_path)
    tls = {
        "spark.ssl.rpc.enabled": "true",
        "spark.ssl.rpc.trustStore": pki["ca"],
        "spark.ssl.rpc.privateKey": pki["key"],
        "spark.ssl.rpc.certChain": pki["chain"],
    }
    monkeypatch.setenv(SECRET_ENV_VAR, SECRET)
    with ProcCluster(tmp_path / "cluster", tls, workers=1, cores=1) as c:
        sc = _context(c.url, **tls)
        try:
            runtime = sc._runtime
            assert runtime.executors_env is None
            assert type(runtime.scheduler_env).__name__ == "GrpcRpcEnv"
            rpc = json.loads(runtime.executor_env["SPARKCTL_RPC_CONF"])
            assert "spark.rpc.backend" not in rpc and rpc["spark.ssl.rpc.enabled"] == "true"
            assert sc.parallelize(range(100), 2).map(lambda x: (x % 3, x)).groupByKey().count() == 3
        finally:
            sc.stop()
