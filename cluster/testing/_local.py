"""In-process clusters for tests: a real Master on the local backend, fake workers and drivers.

Reached through `cluster.testing` (which imports this module only when one of
these names is asked for, so that its process helpers load without gRPC or
protobuf, as the PySpark oracle and benchmark venvs need).
"""

from __future__ import annotations

import collections.abc
import concurrent.futures
import pathlib
import threading
from typing import Any

from google.protobuf.message import Message

from cluster._timers import Ticker
from cluster.launch import MasterHandle, WorkerHandle, start_master, start_worker
from cluster.testing import wait_until
from rpcenv import Conf, RpcAddress, RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = [
    "LOCAL_CONF",
    "FakeContext",
    "FakeDriver",
    "FakeRef",
    "FakeWorker",
    "LocalCluster",
    "Recorder",
]


class FakeRef(RpcEndpointRef):
    """A ref that records what is sent to it: an endpoint's handlers driven without an env."""

    def __init__(self, name: str, port: int, host: str = "127.0.0.1") -> None:
        self._name = name
        self._address = RpcAddress(host, port)
        self.sent: list[Message] = []

    @property
    def address(self) -> RpcAddress:
        return self._address

    @property
    def name(self) -> str:
        return self._name

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def ask(
        self, message: Message, timeout: float | None = None
    ) -> concurrent.futures.Future[Message]:
        raise NotImplementedError("a FakeRef records sends; nothing answers asks")

    def of(self, kind: type[Message]) -> list[Any]:
        """The messages of `kind` sent so far."""
        return [m for m in self.sent if isinstance(m, kind)]


class FakeContext(RpcCallContext):
    """The context of an ask made by `sender`: keeps the reply (or failure) in `answer`."""

    def __init__(self, sender: FakeRef | None, address: RpcAddress | None = None) -> None:
        self._sender = sender
        if address is None:
            assert sender is not None, "a FakeContext needs a sender or an address"
            address = sender.address
        self._address = address
        self.answer: Any = None

    @property
    def sender_address(self) -> RpcAddress:
        return self._address

    @property
    def sender(self) -> RpcEndpointRef | None:
        return self._sender

    def reply(self, message: Message) -> None:
        self.answer = message

    def send_failure(self, error: BaseException) -> None:
        self.answer = error


class Recorder(RpcEndpoint):
    """An endpoint that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        with self._lock:
            self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if isinstance(m, kind)]

    def wait_of(self, kind: type[Message], count: int = 1, timeout: float = 10.0) -> list[Any]:
        """The messages of `kind` once there are at least `count` (bounded by `timeout`)."""

        def enough() -> list[Any]:
            found = self.of(kind)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, f"{count} {kind.__name__}")


class FakeDriver(Recorder):
    """A driver's app client: registers an application from inside its endpoint."""

    def __init__(self, master: RpcEndpointRef, description: pb.ApplicationDescription) -> None:
        super().__init__()
        self.master = master
        self.description = description
        self.registered: concurrent.futures.Future[Message] | None = None

    def on_start(self) -> None:
        # A ref made by our own env, so that the Master sees us as the sender.
        self.master = self.rpc_env.endpoint_ref(self.master.address, self.master.name)
        request = pb.RegisterApplicationRequest(
            description=self.description, driver_endpoint="AppClient"
        )
        self.registered = self.master.ask(request, timeout=10.0)

    @property
    def app_id(self) -> str:
        assert self.registered is not None
        reply = self.registered.result(timeout=10.0)
        assert isinstance(reply, pb.RegisterApplicationResponse)
        return reply.app_id


class FakeWorker(Recorder):
    """A worker that registers and records what the Master tells it, running nothing."""

    def __init__(
        self,
        master: RpcEndpointRef,
        worker_id: str,
        cores: int,
        memory_mb: int,
        incarnation: int = 1,
        heartbeat: bool = True,
        resources: collections.abc.Mapping[str, collections.abc.Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.master = master
        #: Custom resources it reports (name -> addresses).
        self.resources = dict(resources or {})
        self.worker_id = worker_id
        self.cores = cores
        self.memory_mb = memory_mb
        self.incarnation = incarnation
        self.reply: concurrent.futures.Future[Message] | None = None
        self.heartbeat = heartbeat
        self._ticker: Ticker | None = None

    def on_start(self) -> None:
        # A ref made by our own env, so that the Master sees us as the sender.
        self.master = self.rpc_env.endpoint_ref(self.master.address, self.master.name)
        self.register()
        if self.heartbeat:
            me = self.self_ref
            self._ticker = Ticker("fake-heartbeat", 0.2, lambda: me.send(pb.WorkerHeartbeat()))
            self._ticker.start()

    def silence(self) -> None:
        """Stop heartbeating (the worker hangs, as far as the Master can tell)."""
        if self._ticker is not None:
            self._ticker.stop()

    def on_stop(self) -> None:
        self.silence()

    def register(
        self,
        executors: collections.abc.Sequence[pb.ExecutorDescription] = (),
        drivers: collections.abc.Sequence[pb.DriverRuntime] = (),
    ) -> None:
        address = self.rpc_env.address
        self.reply = self.master.ask(
            pb.RegisterWorkerRequest(
                worker_id=self.worker_id,
                host=address.host,
                port=address.port,
                cores=self.cores,
                memory_mb=self.memory_mb,
                incarnation=self.incarnation,
                executors=executors,
                drivers=drivers,
                resources=[
                    pb.ResourceAddresses(name=n, addresses=a) for n, a in self.resources.items()
                ],
            ),
            timeout=10.0,
        )

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.RegisterWorkerRequest):  # a test asks us to register again
            self.register(message.executors, message.drivers)
            return
        if isinstance(message, pb.WorkerHeartbeat):  # a test asks us to heartbeat
            self.master.send(
                pb.WorkerHeartbeat(worker_id=self.worker_id, incarnation=self.incarnation)
            )
            return
        if isinstance(message, pb.ExecutorStateChanged):  # a test plays an executor's fate
            self.master.send(message)
            return
        if isinstance(message, pb.DriverStateChanged):
            self.master.send(message)
            return
        super().receive(message, sender)


LOCAL_CONF = {
    "spark.rpc.backend": "local",
    "spark.worker.timeout": "2",
    "spark.rpc.askTimeout": "10s",
}


class LocalCluster:
    """A Master on the local backend plus fake workers and drivers, all cleaned up."""

    def __init__(self, tmp_path: pathlib.Path, conf: dict[str, str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.conf = Conf({**LOCAL_CONF, **(conf or {})})
        self.envs: list[RpcEnv] = []
        self.workers: list[WorkerHandle] = []
        self.master: MasterHandle = start_master(self.conf, "127.0.0.1", 0, tmp_path / "master")

    def env(self, client: bool = False) -> RpcEnv:
        env = RpcEnv.create("test", "127.0.0.1", 0, self.conf, client_mode=client)
        self.envs.append(env)
        return env

    def worker(
        self, worker_id: str, cores: int = 4, memory_mb: int = 4096, **kw: Any
    ) -> FakeWorker:
        env = self.env()
        worker = FakeWorker(self.master.ref, worker_id, cores, memory_mb, **kw)
        env.setup_endpoint("Worker", worker)
        wait_until(lambda: worker.reply is not None and worker.reply.done(), 5, "registration")
        return worker

    def driver(self, **description: Any) -> FakeDriver:
        env = self.env(client=True)
        desc = pb.ApplicationDescription(
            name="test-app", command=pb.Command(argv=["true"]), memory_per_executor_mb=512
        )
        for key, value in description.items():
            if isinstance(value, Message):
                getattr(desc, key).CopyFrom(value)
            elif isinstance(value, dict):  # a map field
                getattr(desc, key).update(value)
            else:
                setattr(desc, key, value)
        driver = FakeDriver(self.master.ref, desc)
        env.setup_endpoint("AppClient", driver)
        wait_until(lambda: driver.registered is not None and driver.registered.done(), 5, "app")
        return driver

    def state(self) -> api.GetClusterStateResponse:
        reply = self.master.ref.ask_sync(api.GetClusterStateRequest(), 5.0)
        assert isinstance(reply, api.GetClusterStateResponse)
        return reply

    def real_worker(self, cores: int = 2, memory_mb: int = 2048, name: str = "w") -> WorkerHandle:
        handle = start_worker(
            self.conf,
            [self.master.url],
            cores,
            memory_mb,
            "127.0.0.1",
            0,
            self.tmp_path / f"{name}{len(self.workers)}",
        )
        self.workers.append(handle)
        assert handle.wait_registered(5), "worker did not register"
        return handle

    def restart_master(self) -> MasterHandle:
        port = self.master.rpc_env.address.port
        self.master.stop()
        self.master = start_master(self.conf, "127.0.0.1", port, self.tmp_path / "master")
        return self.master

    def close(self) -> None:
        for handle in self.workers:
            handle.stop()
        for env in self.envs:
            env.shutdown()
        self.master.stop()
