"""Executors serve their shuffle blocks to each other; the driver relays only as a fallback.

End-to-end tests run a master and two one-core workers as processes on
127.0.0.1 (one cluster per test, stopped by PID) with
SPARKCTL_FORCE_REMOTE_FETCH=1, so every map output is fetched over the RpcEnv
as if it lived on another host. The driver's relay counter tells which path
the bytes took. The unit tests of the executor's env creation bind 127.0.0.1
or nothing at all.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

from cluster.testing import tls_files, wait_until

pytestmark = pytest.mark.timeout(240)

FORCE_REMOTE = {"spark.executorEnv.SPARKCTL_FORCE_REMOTE_FETCH": "1"}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A master and two one-core workers, each its own process; stopped by PID."""
    if support.cluster_unavailable_reason():
        pytest.skip(support.cluster_unavailable_reason() or "")
    (tmp_path / "cluster").mkdir()
    procs = support.start_cluster(tmp_path / "cluster")
    try:
        yield procs.url
    finally:
        procs.close(support.CLUSTER_STOP_TIMEOUT_S)


def _context(master: str, name: str, **conf: str) -> Any:
    sc = support.new_context(master, name, **{**FORCE_REMOTE, **conf})
    wait_until(lambda: len(sc._scheduler.executors) == 2, 60, "two executors to register")
    return sc


def _shuffle_jobs(sc: Any) -> None:
    """A reduceByKey and a groupByKey whose every block crosses the RpcEnv: exact results."""
    words = sc.parallelize([f"w{i % 37}" for i in range(20_000)], 4)
    counts = dict(words.map(lambda w: (w, 1)).reduceByKey(lambda a, b: a + b, 3).collect())
    assert counts == {f"w{k}": sum(1 for i in range(20_000) if i % 37 == k) for k in range(37)}
    big = sc.parallelize(range(400_000), 4).map(lambda x: (x % 3, x)).groupByKey(2)
    sizes = dict(big.mapValues(len).collect())
    sums = dict(big.mapValues(sum).collect())
    assert sizes == {k: len(range(k, 400_000, 3)) for k in range(3)}
    assert sums == {k: sum(range(k, 400_000, 3)) for k in range(3)}
    # sortByKey's sorted runs are read by key range, over the RpcEnv too.
    pairs = [((i * 7919) % 50_021, i) for i in range(60_000)]
    ordered = sc.parallelize(pairs, 4).sortByKey(False, 3).collect()
    assert ordered == sorted(pairs, key=lambda kv: kv[0], reverse=True)


def _map_outputs(sc: Any) -> list[Any]:
    with sc._scheduler.lock:
        return [o for outs in sc._scheduler.dag.map_outputs.values() for o in outs if o]


def test_executors_fetch_from_each_other_and_the_driver_relays_nothing(cluster: str) -> None:
    sc = _context(cluster, "direct-fetch")
    try:
        endpoint = sc._endpoint
        handles = dict(sc._scheduler.executors)
        assert set(endpoint.block_addresses) == set(handles)
        for executor_id, address in endpoint.block_addresses.items():
            host, port = address.rsplit(":", 1)
            assert host == "127.0.0.1" and int(port) > 0, (executor_id, address)
        _shuffle_jobs(sc)
        outputs = _map_outputs(sc)
        assert outputs
        assert {o.executor_id for o in outputs} == set(handles)  # both served blocks
        assert all(o.address == endpoint.block_addresses[o.executor_id] for o in outputs)
        assert endpoint.relayed_fetches == 0
    finally:
        sc.stop()


def _gate(marker_dir: str) -> Any:
    """A reduce-side function that waits for a "go" file before reading its shuffle input."""

    def gate(it: Iterator[Any]) -> Iterator[Any]:
        Path(marker_dir, f"reduce-{os.getppid()}-{os.getpid()}").touch()
        deadline = time.monotonic() + 90
        while not Path(marker_dir, "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield from it  # the shuffle is read only now

    return gate


@pytest.mark.parametrize("shuffle", ["partitionBy", "sortByKey"])
def test_an_owner_killed_between_map_and_reduce_is_a_fetch_failure_and_is_recomputed(
    cluster: str, tmp_path: Path, shuffle: str
) -> None:
    sc = _context(cluster, "direct-fetch-owner-killed")
    failures: list[tuple[Any, ...]] = []
    dag = sc._scheduler.dag
    original = dag.fetch_failed

    def spy(*args: Any) -> None:
        failures.append(args)
        original(*args)

    dag.fetch_failed = spy
    markers = tmp_path / "markers"
    markers.mkdir()
    try:
        pairs = sc.parallelize(range(2_000), 4).map(lambda x: (x % 10, x))
        if shuffle == "sortByKey":  # its map stage runs here, in sortByKey
            reduced = pairs.sortByKey(True, 2).mapPartitions(_gate(str(markers)))
            expected = sorted(((x % 10, x) for x in range(2_000)), key=lambda kv: kv[0])
        else:
            reduced = pairs.partitionBy(2).mapPartitions(_gate(str(markers)))
            expected = sorted((x % 10, x) for x in range(2_000))
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                values = reduced.collect()
                result["value"] = values if shuffle == "sortByKey" else sorted(values)
            except BaseException as exc:
                result["error"] = exc

        job = threading.Thread(target=run)
        job.start()
        wait_until(lambda: any(markers.iterdir()), 60, "a reduce task to start")
        reducer_pids = {int(p.name.split("-")[1]) for p in markers.iterdir()}
        handles = dict(sc._scheduler.executors)
        owners = {o.executor_id for o in _map_outputs(sc)}
        victims = [h for h in handles.values() if h.executor_id in owners]
        # A victim whose map outputs a reducer elsewhere still has to read.
        victims = [h for h in victims if reducer_pids - {h.pid}] or victims
        assert victims, f"no map output owner among {handles}"
        victim = victims[0]
        os.kill(victim.pid, signal.SIGKILL)
        wait_until(
            lambda: victim.executor_id not in sc._scheduler.executors, 30, "the driver to notice"
        )
        (markers / "go").touch()
        job.join(180)
        assert not job.is_alive()
        assert "error" not in result, result.get("error")
        assert result["value"] == expected
        assert failures, "no fetch failure was reported"
        assert any(f[4] == victim.executor_id for f in failures), failures
        assert sc._endpoint.relayed_fetches == 0  # the failure came from the direct path
    finally:
        (markers / "go").touch()
        sc.stop()


def test_a_fetch_outside_the_local_dir_is_refused(cluster: str, tmp_path: Path) -> None:
    from rpcenv import RpcEnv, RpcRemoteError
    from sparkctl.v1 import scheduler_pb2 as pb

    sc = _context(cluster, "direct-fetch-refusals")
    # The probe speaks the executors' backend (tcp unless the app names one or TLS).
    executor_rpc = json.loads(sc._runtime.executor_env["SPARKCTL_RPC_CONF"])
    backend = {"spark.rpc.backend": executor_rpc.get("spark.rpc.backend", "grpc")}
    client = RpcEnv.create("probe", "127.0.0.1", 0, backend, client_mode=True)
    try:
        assert (
            sc.parallelize(range(100), 2)
            .map(lambda x: (x % 5, 1))
            .reduceByKey(lambda a, b: a + b)
            .count()
            == 5
        )
        out = _map_outputs(sc)[0]
        owner = client.endpoint_ref(f"spark://Executor@{out.address}")
        local_dir = sc._scheduler.executors[out.executor_id].local_dir

        def ask(path: str, executor_id: str = out.executor_id) -> bytes:
            request = pb.FetchBlockRequest(executor_id=executor_id, path=path, offset=0, length=16)
            reply = owner.ask_sync(request, 30.0)
            assert isinstance(reply, pb.FetchBlockResponse)
            return reply.data

        assert len(ask(out.path + ".index")) == 16  # a real block is served
        secret = tmp_path / "secret.txt"
        secret.write_text("not a block")
        for path in (
            str(secret),
            "/etc/hostname",
            os.path.join(local_dir, "..", "..", "secret.txt"),
            os.path.join(local_dir, "sub", "..", "..", os.path.basename(local_dir) + "x"),
        ):
            with pytest.raises(RpcRemoteError, match="is not a block of executor"):
                ask(path)
        # A symlink inside the local dir that points outside it is refused too.
        link = os.path.join(local_dir, "shuffle_999_0_0.data")
        os.symlink(secret, link)
        with pytest.raises(RpcRemoteError, match="is not a block of executor"):
            ask(link)
        # Asked for another executor's block, it answers for nobody else.
        with pytest.raises(RpcRemoteError, match="this is executor"):
            ask(out.path + ".index", executor_id="some-other-executor")
    finally:
        client.shutdown()
        sc.stop()


def test_executors_that_cannot_listen_fall_back_to_the_driver_relay(cluster: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sc = _context(
            cluster,
            "direct-fetch-fallback",
            **{"spark.blockManager.port": str(port), "spark.port.maxRetries": "0"},
        )
        try:
            assert sc._endpoint.block_addresses == {}
            _shuffle_jobs(sc)
            assert all(o.address == "" for o in _map_outputs(sc))
            assert sc._endpoint.relayed_fetches > 0
        finally:
            sc.stop()


def test_direct_fetch_can_be_switched_off(cluster: str) -> None:
    sc = _context(cluster, "direct-fetch-off", **{"spark.sparkctl.shuffle.directFetch": "false"})
    try:
        assert sc._endpoint.block_addresses == {}
        words = sc.parallelize(range(1_000), 4).map(lambda x: (x % 7, 1))
        assert dict(words.reduceByKey(lambda a, b: a + b).collect()) == {
            k: len(range(k, 1_000, 7)) for k in range(7)
        }
        assert sc._endpoint.relayed_fetches > 0
    finally:
        sc.stop()


# -- the executor's env: same security as every server of the cluster -------------------


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)


LOCAL_DRIVER = "spark://CoarseGrainedScheduler@127.0.0.1:7077"


def test_a_non_loopback_executor_without_a_secret_does_not_listen(no_secret: None) -> None:
    from scheduler.executor.endpoint import _create_env

    # The loopback rule refuses before binding anything: client mode, no port.
    env, port = _create_env("0.0.0.0", "spark://CoarseGrainedScheduler@10.0.0.1:7077", {})
    try:
        assert port == 0 and env.address.is_client
    finally:
        env.shutdown()


def test_a_loopback_executor_of_a_remote_driver_does_not_listen(no_secret: None) -> None:
    from scheduler.executor.endpoint import _create_env

    # Executors on other hosts could not reach 127.0.0.1: relay instead.
    env, port = _create_env("127.0.0.1", "spark://CoarseGrainedScheduler@10.0.0.1:7077", {})
    try:
        assert port == 0 and env.address.is_client
    finally:
        env.shutdown()


def test_the_block_server_requires_the_clusters_secret(no_secret: None) -> None:
    from rpcenv import RpcAuthenticationError, RpcEndpoint, RpcEnv
    from scheduler.executor.endpoint import _create_env

    secret = {"spark.authenticate.secret": "s3cret-of-the-app"}
    env, port = _create_env("127.0.0.1", LOCAL_DRIVER, secret)
    env.setup_endpoint("Executor", RpcEndpoint())
    intruder = RpcEnv.create("intruder", "127.0.0.1", 0, {}, client_mode=True)
    member = RpcEnv.create("member", "127.0.0.1", 0, secret, client_mode=True)
    try:
        assert port > 0 and not env.address.is_client
        with pytest.raises(RpcAuthenticationError):
            intruder.endpoint_ref(f"spark://Executor@127.0.0.1:{port}", timeout=10.0)
        assert member.endpoint_ref(f"spark://Executor@127.0.0.1:{port}", timeout=10.0)
    finally:
        member.shutdown()
        intruder.shutdown()
        env.shutdown()


def test_the_block_server_uses_the_clusters_tls(no_secret: None, tmp_path: Path) -> None:
    from rpcenv import RpcConnectionError, RpcEndpoint, RpcEnv
    from scheduler.executor.endpoint import _create_env

    pytest.importorskip("trustme")
    pki = tls_files(tmp_path)
    tls = {"spark.ssl.rpc.enabled": "true", "spark.ssl.rpc.trustStore": pki["ca"]}
    node = {**tls, "spark.ssl.rpc.privateKey": pki["key"], "spark.ssl.rpc.certChain": pki["chain"]}
    env, port = _create_env("127.0.0.1", LOCAL_DRIVER, node)
    env.setup_endpoint("Executor", RpcEndpoint())
    member = RpcEnv.create("member", "127.0.0.1", 0, tls, client_mode=True)
    plain = RpcEnv.create("plain", "127.0.0.1", 0, {}, client_mode=True)
    try:
        assert port > 0
        assert member.endpoint_ref(f"spark://Executor@127.0.0.1:{port}", timeout=10.0)
        with pytest.raises(RpcConnectionError):
            plain.endpoint_ref(f"spark://Executor@127.0.0.1:{port}", timeout=10.0)
    finally:
        for each in (plain, member, env):
            each.shutdown()
    # Without its key an executor cannot serve TLS: it falls back to client mode.
    env, port = _create_env("127.0.0.1", LOCAL_DRIVER, tls)
    try:
        assert port == 0 and env.address.is_client
    finally:
        env.shutdown()
