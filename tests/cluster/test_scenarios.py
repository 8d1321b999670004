"""Scenarios of the issue-10 campaign kept as tests of their own (T6, T10, T14-T18, T23).

Each prints its measured figure (run with `-s` to see it: bodies fuzzed per
second, p99 of calls under load, ...); none asserts a time. The other scenarios
live beside the code they exercise (test_senders, test_stale_reports,
test_e2e, test_zookeeper_ha, tests/rpcenv/test_grpc_transport, ...).
"""

from __future__ import annotations

import builtins
import concurrent.futures
import contextlib
import pathlib
import pickle
import random
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from cluster.launch import MasterHandle, start_master
from cluster.testing import LocalCluster, wait_until
from rpcenv import Conf, RpcEnv, RpcRemoteError, RpcTimeoutError
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

SERVICE = "/sparkctl.v1.MasterService/"
#: Codes a hostile body may get: a clear refusal, never a crash (UNKNOWN, INTERNAL).
REFUSALS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@pytest.fixture
def master(tmp_path: pathlib.Path) -> Iterator[MasterHandle]:
    handle = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    try:
        yield handle
    finally:
        handle.stop()


def raw(channel: grpc.Channel, method: str) -> Callable[..., bytes]:
    return channel.unary_unary(  # type: ignore[no-any-return]
        SERVICE + method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )


def call_code(channel: grpc.Channel, method: str, data: bytes, timeout: float = 10.0) -> Any:
    try:
        raw(channel, method)(data, timeout=timeout)
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def valid_bodies() -> dict[str, bytes]:
    description = pb.DriverDescription(
        app_resource="/tmp/app.py", app_args=["a"], cores=1, memory_mb=256, conf={"k": "v"}
    )
    return {
        "GetClusterState": api.GetClusterStateRequest().SerializeToString(),
        "SubmitDriver": api.SubmitDriverRequest(description=description).SerializeToString(),
        "GetDriverStatus": api.GetDriverStatusRequest(driver_id="driver-1").SerializeToString(),
        "KillDriver": api.KillDriverRequest(driver_id="driver-1").SerializeToString(),
        "KillApplication": api.KillApplicationRequest(app_id="app-1").SerializeToString(),
    }


def mutate(rng: random.Random, body: bytes) -> bytes:
    """One fuzzed body: bytes flipped, cut, repeated or random, from a valid one."""
    choice = rng.randrange(5)
    data = bytearray(body)
    if choice == 0 and data:
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1 and data:
        data = data[: rng.randrange(len(data))]
    elif choice == 2:
        data = data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif choice == 3:
        data = data * rng.randint(2, 8)
    else:
        data = bytearray(rng.randbytes(rng.randint(0, 256)))
    return bytes(data)


def test_t16_fuzzed_bodies_get_a_status_and_the_master_keeps_serving(
    master: MasterHandle,
) -> None:
    rng = random.Random(16)
    bodies = valid_bodies()
    methods = sorted(bodies)
    seen: dict[str, int] = {}
    count = 2000
    started = time.monotonic()
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        for _ in range(count):
            method = rng.choice(methods)
            code, details = call_code(channel, method, mutate(rng, bodies[method]))
            assert code in REFUSALS, (method, code, details[:300])
            seen[code.name] = seen.get(code.name, 0) + 1
        elapsed = time.monotonic() - started
        assert call_code(channel, "GetClusterState", b"")[0] == grpc.StatusCode.OK
    print(f"\nT16: {count} fuzzed bodies in {elapsed:.1f}s = {count / elapsed:.0f}/s; codes {seen}")
    assert len(seen) >= 2  # the fuzz reached both accepted and refused bodies


def test_t17_bad_values_are_refused_naming_the_field(master: MasterHandle) -> None:
    refused = 0
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        for description, says in (
            (pb.DriverDescription(app_resource="/x.py", cores=-1, memory_mb=256), "cores"),
            (pb.DriverDescription(app_resource="/x.py", cores=1, memory_mb=-5), "memory"),
            (pb.DriverDescription(cores=1, memory_mb=256), "app_resource"),
        ):
            body = api.SubmitDriverRequest(description=description).SerializeToString()
            code, details = call_code(channel, "SubmitDriver", body)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and says in details, details
            refused += 1
        for method, body in (
            ("GetDriverStatus", api.GetDriverStatusRequest(driver_id="").SerializeToString()),
            ("KillApplication", api.KillApplicationRequest(app_id="").SerializeToString()),
        ):
            code, details = call_code(channel, method, body)
            assert code == grpc.StatusCode.INVALID_ARGUMENT and "required" in details, details
            refused += 1
    env = RpcEnv.create("bad-values", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = env.endpoint_ref(master.rpc_env.address, "Master")
        for description, says in (
            (pb.ApplicationDescription(name="a", max_cores=-3), "max_cores"),
            (pb.ApplicationDescription(name="a", cores_per_executor=-1), "cores_per_executor"),
        ):
            request = pb.RegisterApplicationRequest(description=description)
            with pytest.raises(RpcRemoteError, match=says):
                ref.ask_sync(request, 10)
            refused += 1
        for request, says in (
            (
                pb.RegisterWorkerRequest(
                    worker_id="w1", host="127.0.0.1", port=-1, cores=1, memory_mb=1
                ),
                "bad worker address",
            ),
            (
                pb.RegisterWorkerRequest(
                    worker_id="../../etc", host="h", port=1, cores=1, memory_mb=1
                ),
                "bad worker_id",
            ),
        ):
            answer = ref.ask_sync(request, 10)
            assert isinstance(answer, pb.RegisterWorkerResponse)
            assert not answer.accepted and says in answer.reason, answer
            refused += 1
        state = ref.ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(state, api.GetClusterStateResponse)
        assert not state.workers and not state.active_apps and not state.active_drivers
    finally:
        env.shutdown()
    print(f"\nT17: {refused} bad values refused with a reason naming them")


def test_t18_deadlines_that_expire_in_a_busy_master_leave_it_serving(
    master: MasterHandle,
) -> None:
    # The Master is made slow (0.2 s a GetClusterState) so that the deadlines
    # surely expire while it works; afterwards nothing is left stuck.
    endpoint = master.endpoint
    handlers: dict[Any, Any] = endpoint._handlers  # the slow-down hook
    real = handlers[api.GetClusterStateRequest]
    slow = {"on": True}

    def slow_state(message: Any, context: Any) -> None:
        if slow["on"]:
            time.sleep(0.2)
        real(message, context)

    handlers[api.GetClusterStateRequest] = slow_state
    try:
        expired = timeouts = 0
        with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
            state = raw(channel, "GetClusterState")
            for _ in range(5):
                try:
                    state(b"", timeout=0.05)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED, exc
                    expired += 1
            env = RpcEnv.create("deadlines", "127.0.0.1", 0, {}, client_mode=True)
            try:
                ref = env.endpoint_ref(master.rpc_env.address, "Master")
                for _ in range(5):
                    with pytest.raises(RpcTimeoutError):
                        ref.ask_sync(api.GetClusterStateRequest(), 0.05)
                    timeouts += 1
                slow["on"] = False
                started = time.monotonic()
                answer = ref.ask_sync(api.GetClusterStateRequest(), 10)
                assert isinstance(answer, api.GetClusterStateResponse)
                ask_after = time.monotonic() - started
            finally:
                env.shutdown()
            started = time.monotonic()
            assert call_code(channel, "GetClusterState", b"")[0] == grpc.StatusCode.OK
            call_after = time.monotonic() - started
    finally:
        handlers[api.GetClusterStateRequest] = real
    assert expired == 5 and timeouts == 5
    print(
        f"\nT18: {expired} public calls and {timeouts} asks expired in a busy Master; then "
        f"an ask took {ask_after * 1000:.0f} ms and a public call {call_after * 1000:.1f} ms"
    )


def test_t14_public_calls_under_load(master: MasterHandle) -> None:
    address = master.rpc_env.address.host_port
    description = pb.DriverDescription(app_resource="/x.py", cores=1, memory_mb=64)
    submit = api.SubmitDriverRequest(description=description).SerializeToString()
    with grpc.insecure_channel(address) as channel:
        for _ in range(20):  # waiting drivers: the state is not empty
            assert call_code(channel, "SubmitDriver", submit)[0] == grpc.StatusCode.OK

    def client(calls: int) -> list[float]:
        latencies = []
        with grpc.insecure_channel(address) as channel:
            state = raw(channel, "GetClusterState")
            for _ in range(calls):
                started = time.monotonic()
                state(b"", timeout=30)
                latencies.append(time.monotonic() - started)
        return latencies

    def churn(rounds: int) -> int:  # writers beside the readers
        with grpc.insecure_channel(address) as channel:
            for _ in range(rounds):
                driver = api.SubmitDriverResponse.FromString(raw(channel, "SubmitDriver")(submit))
                kill = api.KillDriverRequest(driver_id=driver.driver_id)
                raw(channel, "KillDriver")(kill.SerializeToString(), timeout=30)
        return rounds

    threads, calls = 4, 750
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads + 1) as pool:
        readers = [pool.submit(client, calls) for _ in range(threads)]
        writes = pool.submit(churn, 100)
        latencies = sorted(x for f in readers for x in f.result(timeout=120))
        assert writes.result(timeout=120) == 100
    elapsed = time.monotonic() - started
    assert len(latencies) == threads * calls
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"\nT14: {len(latencies)} GetClusterState calls from {threads} clients beside 100 "
        f"submit+kill in {elapsed:.1f}s = {len(latencies) / elapsed:.0f}/s; "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


class _Marker:
    """Unpickling this touches `path`: proof that someone unpickled it."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.path,))


def test_t23_the_master_never_unpickles_what_it_is_sent(
    master: MasterHandle, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Marker(marker))
    text = payload.decode("latin-1")
    calls: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(pickle, "loads", spy("pickle.loads", pickle.loads))
    monkeypatch.setattr(pickle, "load", spy("pickle.load", pickle.load))
    monkeypatch.setattr(pickle, "Unpickler", spy("pickle.Unpickler", pickle.Unpickler))
    real_import = builtins.__import__
    imported: list[str] = []

    def watch_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name in ("cloudpickle", "dill", "_pickle"):
            imported.append(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", watch_import)
    command = pb.Command(argv=[text, "--x", text], environment={text: text})
    app = pb.ApplicationDescription(
        name=text, command=command, memory_per_executor_mb=64, cores_per_executor=1
    )
    driver = pb.DriverDescription(
        app_resource=text,
        app_args=[text],
        cores=1,
        memory_mb=64,
        conf={text: text},
        command=command,
        app_content=payload,
    )
    sent = 0
    with grpc.insecure_channel(master.rpc_env.address.host_port) as channel:
        for method, body in (
            ("SubmitDriver", api.SubmitDriverRequest(description=driver).SerializeToString()),
            ("GetDriverStatus", api.GetDriverStatusRequest(driver_id=text).SerializeToString()),
            ("KillDriver", api.KillDriverRequest(driver_id=text).SerializeToString()),
            ("KillApplication", api.KillApplicationRequest(app_id=text).SerializeToString()),
            ("GetClusterState", payload),
        ):
            call_code(channel, method, body)
            sent += 1
    env = RpcEnv.create("pickles", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = env.endpoint_ref(master.rpc_env.address, "Master")
        messages: list[Message] = [
            pb.RegisterApplicationRequest(description=app),
            pb.RegisterWorkerRequest(worker_id="w1", host=text, port=1, cores=1, memory_mb=64),
            pb.UnregisterApplication(app_id=text),
            api.GetClusterStateRequest(),
        ]
        for message in messages:
            with contextlib.suppress(RpcRemoteError):  # refused is fine; unpickled is not
                ref.ask_sync(message, 10)
            sent += 1
        state = ref.ask_sync(api.GetClusterStateRequest(), 10)
        assert isinstance(state, api.GetClusterStateResponse)
    finally:
        env.shutdown()
    assert calls == [] and not marker.exists(), calls
    assert imported == [], imported
    print(f"\nT23: {sent} requests with a pickle in every field; nothing unpickled")


def test_t6_a_master_with_an_empty_recovery_store_leads_at_once(tmp_path: pathlib.Path) -> None:
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    conf = Conf(
        {"spark.deploy.recoveryMode": "FILESYSTEM", "spark.deploy.recoveryDirectory": str(recovery)}
    )
    started = time.monotonic()
    handle = start_master(conf, "127.0.0.1", 0, tmp_path / "master")
    env = RpcEnv.create("empty-recovery", "127.0.0.1", 0, {}, client_mode=True)
    try:
        ref = env.endpoint_ref(handle.rpc_env.address, "Master")

        def alive() -> api.GetClusterStateResponse | None:
            state = ref.ask_sync(api.GetClusterStateRequest(), 10)
            assert isinstance(state, api.GetClusterStateResponse)
            return state if state.status == pb.MASTER_STATUS_ALIVE else None

        state = wait_until(alive, 10, "an ALIVE master")
        took = time.monotonic() - started
        assert not state.workers and not state.active_apps and not state.completed_apps
        assert not state.active_drivers and not state.completed_drivers
    finally:
        env.shutdown()
        handle.stop()
    print(f"\nT6: ALIVE {took * 1000:.0f} ms after start with an empty recovery directory")


def test_t10_an_executor_command_that_cannot_start_fails_the_app_not_the_worker(
    local_cluster: Callable[..., LocalCluster],
) -> None:
    c = local_cluster({"spark.deploy.maxExecutorRetries": "3"})
    worker = c.real_worker(cores=2)
    started = time.monotonic()
    driver = c.driver(
        cores_per_executor=1,
        memory_per_executor_mb=64,
        command=pb.Command(argv=["/nonexistent/sparkctl-no-such-executor-binary"]),
    )
    removed = driver.wait_of(pb.ApplicationRemoved, timeout=20)[0]
    took = time.monotonic() - started
    assert removed.state == pb.APPLICATION_STATE_FAILED
    assert "maxExecutorRetries=3" in removed.message
    failed = [u for u in driver.of(pb.ExecutorUpdated) if u.state == pb.EXECUTOR_STATE_FAILED]
    assert failed and all(u.message for u in failed)
    state = c.state()
    assert [w.id for w in state.workers] == [worker.worker_id]
    assert state.alive_workers == 1 and state.workers[0].cores_used == 0
    print(
        f"\nT10: app FAILED after {len(failed)} failed launches in {took * 1000:.0f} ms; "
        f"first reason: {failed[0].message[:120]!r}"
    )
