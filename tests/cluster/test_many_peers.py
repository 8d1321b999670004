"""Issue 9's "done when": a real master answers with 1,000 idle peer streams open.

The master's gRPC transport once held a server thread per connected peer, so with
256 streams (`spark.rpc.io.serverThreads`) a new worker could not register and
`GetClusterState` timed out. Here one master process holds 1,000 handshaken,
authenticated, idle peer streams (held by one thread of this test process), and
must still register a worker and answer the public API within a second.

File descriptors: the test and the master each hold one socket per stream, so
the soft RLIMIT_NOFILE of this process (inherited by the master) is raised to
4,096 in-process when it is lower (skipped when the hard limit forbids it).
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import resource
import time
from collections.abc import Iterator

import grpc
import psutil
import pytest

from cluster.testing import ProcCluster
from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv
from rpcenv._security import make_auth_token
from rpcenv.grpc._server import AUTH_METADATA
from rpcenv.grpc.testing import IdlePeerStreams
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

PEERS = 1_000
SECRET = "many-peers-secret"
FD_LIMIT = 4_096


class FakeWorker(RpcEndpoint):
    """Registers with the master from on_start, as a worker does (its sender is this endpoint)."""

    def __init__(self, master_url: str) -> None:
        self.master_url = master_url
        self.registered: concurrent.futures.Future[object] = concurrent.futures.Future()

    def on_start(self) -> None:
        try:
            master = self.rpc_env.endpoint_ref(self.master_url, timeout=10)
            host, port = self.rpc_env.address.host, self.rpc_env.address.port
            request = pb.RegisterWorkerRequest(
                worker_id=f"worker-many-peers-{host}-{port}",
                host=host,
                port=port,
                cores=2,
                memory_mb=1024,
                webui_address="http://127.0.0.1:1",
                incarnation=time.time_ns(),
            )
            self.registered.set_result(master.ask_sync(request, 10))
        except Exception as exc:  # the test reports it
            self.registered.set_exception(exc)

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.send_failure(ValueError("a fake worker answers nothing"))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= FD_LIMIT:
        return
    if hard != resource.RLIM_INFINITY and hard < FD_LIMIT:
        pytest.skip(f"needs {FD_LIMIT} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))


@pytest.fixture
def cluster(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcCluster]:
    monkeypatch.setenv("SPARKCTL_SECRET", SECRET)
    _raise_fd_limit()
    c = ProcCluster(tmp_path, {"spark.worker.timeout": "60"})
    try:
        yield c
    finally:
        c.close()


def _public_cluster_state(target: str) -> tuple[api.GetClusterStateResponse, float]:
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/sparkctl.v1.MasterService/GetClusterState",
            request_serializer=api.GetClusterStateRequest.SerializeToString,
            response_deserializer=api.GetClusterStateResponse.FromString,
        )
        started = time.monotonic()
        token = make_auth_token(SECRET.encode(), "")
        reply = call(api.GetClusterStateRequest(), metadata=[(AUTH_METADATA, token)], timeout=10)
        return reply, time.monotonic() - started


def test_a_master_with_1000_idle_peer_streams_still_registers_and_answers(
    cluster: ProcCluster,
) -> None:
    target = cluster.url.removeprefix("spark://")
    master = psutil.Process(cluster.master.pid)
    threads_before = master.num_threads()
    fds_before = master.num_fds()
    with IdlePeerStreams(target, PEERS, secret=SECRET.encode()) as streams:
        started = time.monotonic()
        streams.open(timeout=60)
        opened = time.monotonic() - started
        assert streams.open_streams == PEERS, streams.endings[:5]
        threads_during = master.num_threads()
        fds_during = master.num_fds()

        env = RpcEnv.create("fake-worker", "127.0.0.1", 0, {})
        try:
            worker = FakeWorker(cluster.url.replace("spark://", "spark://Master@"))
            started = time.monotonic()
            env.setup_endpoint("Worker", worker)
            reply = worker.registered.result(timeout=30)
            registered = time.monotonic() - started
            assert isinstance(reply, pb.RegisterWorkerResponse) and reply.accepted, reply

            state, first = _public_cluster_state(target)
            _, second = _public_cluster_state(target)
            started = time.monotonic()
            internal = cluster.state()
            internal_time = time.monotonic() - started
        finally:
            env.shutdown()
        assert streams.open_streams == PEERS, "idle streams were dropped"

    print(
        f"\n{PEERS} idle streams opened in {opened:.2f}s; master threads {threads_before} -> "
        f"{threads_during}, fds {fds_before} -> {fds_during}; worker registered in "
        f"{registered * 1000:.0f} ms; GetClusterState public {first * 1000:.0f} / "
        f"{second * 1000:.0f} ms, over the RpcEnv {internal_time * 1000:.0f} ms"
    )
    assert any(w.id == f"worker-many-peers-127.0.0.1-{env.address.port}" for w in state.workers)
    assert len(internal.workers) == 1
    assert registered < 1.0
    assert first < 1.0 and second < 1.0 and internal_time < 1.0
    assert threads_during <= threads_before + 4, "the master grew a thread per stream"
    # The streams' sockets are gone from the master once they are closed.
    deadline = time.monotonic() + 15
    while master.num_fds() > fds_before + 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert master.num_fds() <= fds_before + 20, (fds_before, master.num_fds())
    assert os.getpid() != cluster.master.pid
