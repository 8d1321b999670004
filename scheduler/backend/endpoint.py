"""The driver's "CoarseGrainedScheduler" endpoint and how executors are started.

The endpoint turns executor messages (registration, batched status updates,
heartbeats, disconnects) into TaskScheduler calls; it keeps each executor's
ref from its registration ask, which reaches the executor over the connection
it opened. It relays shuffle bytes only for executors that serve no
block-manager port (the others serve each other directly). `executor_argv`
is the one `python -m scheduler.executor` command line, for a Worker and for
the local backend alike. Nothing here schedules tasks itself.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sys
import threading
from collections.abc import Mapping

from google.protobuf.message import Message

from rpcenv import (
    Conf,
    MessageOrigin,
    RpcAddress,
    RpcCallContext,
    RpcEndpoint,
    RpcEndpointRef,
    current_origin,
)
from scheduler import settings
from scheduler.backend.senders import SCHEDULER_SENDERS
from scheduler.core.taskscheduler import ExecutorHandle, TaskScheduler
from sparkctl.v1 import scheduler_pb2 as pb

__all__ = [
    "WORKER_PYTHON",
    "SchedulerEndpoint",
    "executor_argv",
    "executor_python",
]

log = logging.getLogger(__name__)

ENDPOINT_NAME = "CoarseGrainedScheduler"


#: The placeholder a Worker replaces with its own Python (`cluster.worker_runners`).
WORKER_PYTHON = "{{PYTHON}}"


def executor_python(conf: Conf, environ: Mapping[str, str]) -> str | None:
    """The Python the app asks its executors to run, as Spark resolves it; None: not set.

    `spark.pyspark.python`, else the driver's `PYSPARK_PYTHON`. Unset, executors on
    a Worker run the Worker's own interpreter (its path may differ from ours).
    """
    return conf.get(settings.PYSPARK_PYTHON) or environ.get("PYSPARK_PYTHON") or None


def executor_argv(
    driver_url: str,
    executor_id: str,
    hostname: str,
    cores: str,
    app_id: str,
    worker_url: str | None,
    python: str = sys.executable,
) -> list[str]:
    """The command line of an executor process, run by `python`."""
    argv = [
        python,
        "-m",
        "scheduler.executor",
        "--driver-url",
        driver_url,
        "--executor-id",
        executor_id,
        "--hostname",
        hostname,
        "--cores",
        cores,
        "--app-id",
        app_id,
    ]
    if worker_url is not None:
        argv += ["--worker-url", worker_url]
    return argv


class SchedulerEndpoint(RpcEndpoint):
    """Where executors register and report."""

    #: Checked before every handler: reports only from the executor they name.
    sender_policy = SCHEDULER_SENDERS

    def __init__(self, scheduler: TaskScheduler, app_id: str) -> None:
        self._scheduler = scheduler
        self._app_id = app_id
        self._former_ids: set[str] = set()
        self._by_address: dict[RpcAddress, str] = {}
        #: Executor id -> env id of the connection it registered over.
        self._peer_ids: dict[str, str] = {}
        #: Executor id -> "host:port" of its block manager, for those that listen.
        self.block_addresses: dict[str, str] = {}
        #: FetchBlockRequests relayed to an executor on another's behalf (driver blobs
        #: not counted): with direct fetches this stays 0 unless an executor cannot listen.
        self.relayed_fetches = 0
        #: Executor id -> what sends to it (holding back finished task sets' removals).
        self._senders: dict[str, _ExecutorSender] = {}

    def flush_removals(self) -> None:
        """Send the finished task sets' removals each executor's sender holds (any thread)."""
        for sender in list(self._senders.values()):  # list(): one step under the GIL
            sender.flush()

    @property
    def app_id(self) -> str:
        """This driver's application, which its executors register under."""
        return self._app_id

    def was_app(self, app_id: str) -> bool:
        """Whether this driver's application has had id `app_id`.

        A Master that forgot the application registers it under a new id; executors
        that connected with the old id's credential keep their streams until they end.
        """
        return bool(app_id) and (app_id == self._app_id or app_id in self._former_ids)

    def set_app_id(self, app_id: str) -> None:
        """The application id a Master assigned: executors must register under it.

        From now on the driver's env also lets in that application's credential (and
        no other's): a Worker starts the executors with it instead of the secret.
        """
        if self._app_id != app_id:
            self._former_ids.add(self._app_id)
        self._app_id = app_id
        env = self._rpc_env
        if env is not None:
            env.accept_app_credentials(app_id)

    def is_executor(self, executor_id: str, origin: MessageOrigin) -> bool:
        """Whether `origin` is the connection executor `executor_id` registered over."""
        if self._by_address.get(origin.address) != executor_id:
            return False
        return self._peer_ids.get(executor_id, "") in ("", origin.peer_id)

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        if isinstance(message, pb.RegisterExecutorRequest):
            ref = context.sender
            if ref is None:
                context.reply(
                    pb.RegisterExecutorResponse(accepted=False, reason="ask from an endpoint")
                )
                return
            if message.app_id and message.app_id != self._app_id:
                reason = (
                    f"executor belongs to app {message.app_id}, this driver runs {self._app_id}"
                )
                context.reply(pb.RegisterExecutorResponse(accepted=False, reason=reason))
                return
            sender = _ExecutorSender(ref)
            handle = ExecutorHandle(
                executor_id=message.executor_id,
                host=message.hostname,
                cores=max(1, message.cores),
                send=sender,
                address=context.sender_address,
                ref=ref,
                local_dir=message.local_dir,
                pid=message.pid,
                log_urls=dict(message.log_urls),
                resources={r.name: list(r.addresses) for r in message.resources},
                profile_id=message.resource_profile_id,
            )
            accepted = self._scheduler.register_executor(handle)
            if accepted:
                self._senders[message.executor_id] = sender
                self._by_address[context.sender_address] = message.executor_id
                origin = current_origin()
                self._peer_ids[message.executor_id] = origin.peer_id if origin else ""
                if message.block_manager_port:
                    address = f"{message.hostname}:{message.block_manager_port}"
                    self.block_addresses[message.executor_id] = address
                    handle.block_address = address
                    log.info("executor %s serves blocks at %s", message.executor_id, address)
                else:
                    log.info(
                        "executor %s serves no blocks: the driver relays them", message.executor_id
                    )
                env = self._rpc_env  # None only for an endpoint driven without an env
                driver_env_id = env.env_id if env is not None else ""
                context.reply(
                    pb.RegisterExecutorResponse(accepted=True, driver_env_id=driver_env_id)
                )
            else:
                reason = f"duplicate executor id {message.executor_id}"
                context.reply(pb.RegisterExecutorResponse(accepted=False, reason=reason))
            return
        if isinstance(message, pb.FetchBlockRequest):
            self._relay_fetch(message, context)
            return
        if isinstance(message, pb.BarrierRequest):
            self._barrier_sync(message, context)
            return
        super().receive_and_reply(message, context)

    def _barrier_sync(self, message: pb.BarrierRequest, context: RpcCallContext) -> None:
        """A barrier task's barrier()/allGather()/getTaskInfos(): replied when all synced."""
        if message.method not in ("barrier", "allGather", "getTaskInfos"):
            context.send_failure(ValueError(f"unknown barrier method {message.method!r}"))
            return

        def reply(messages: list[str]) -> None:
            context.reply(pb.BarrierResponse(messages=messages))

        def fail(reason: str) -> None:
            context.send_failure(RuntimeError(reason))

        with self._scheduler.lock:
            self._scheduler.barrier.request(
                message.stage_id,
                message.stage_attempt,
                message.partition,
                message.epoch,
                message.method,
                message.message,
                reply,
                fail,
            )

    def _relay_fetch(self, message: pb.FetchBlockRequest, context: RpcCallContext) -> None:
        """The owner serves no port: ask it on the asker's behalf, reply when it answers."""
        if message.executor_id == "driver":
            data = self._scheduler.read_blob(message.path, message.offset, message.length)
            context.reply(pb.FetchBlockResponse(data=data))
            return
        handle = self._scheduler.executors.get(message.executor_id)
        if handle is None or handle.ref is None:
            context.send_failure(LookupError(f"executor {message.executor_id} is gone"))
            return
        self.relayed_fetches += 1
        future = handle.ref.ask(message, 60.0)

        def relay(done: concurrent.futures.Future[Message]) -> None:
            try:
                context.reply(done.result())
            except Exception as exc:
                context.send_failure(exc)

        future.add_done_callback(relay)

    def receives_inline(self, message: Message) -> bool:
        """StatusUpdates skip the pool where the env lets an inline handler wait.

        There (`RpcEnv.delivers_on_peer_threads`: tcp) an executor's statuses are
        handled one at a time in order anyway, and the I/O loop is handed to another
        thread if one handler holds it long, so other executors are not stalled:
        handling them inline saves a thread hand-off per message, on the job's
        critical path. Never where the I/O loop has no such hand-over (gRPC): it must
        not wait for the scheduler's lock, listeners or results.
        """
        if not isinstance(message, pb.StatusUpdates):
            return False
        env = self._rpc_env
        return env is not None and env.delivers_on_peer_threads

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.StatusUpdates):
            self._scheduler.status_update(message.executor_id, list(message.statuses))
        elif isinstance(message, pb.ExecutorHeartbeat):
            self._scheduler.heartbeat(message.executor_id)

    def on_disconnected(self, address: RpcAddress) -> None:
        executor_id = self._by_address.pop(address, None)
        if executor_id is not None:
            self.block_addresses.pop(executor_id, None)
            self._peer_ids.pop(executor_id, None)
            self._senders.pop(executor_id, None)
            self._scheduler.executor_lost(executor_id, "executor disconnected")


class _ExecutorSender:
    """Sends to one executor; finished task sets' removals ride with the next launch.

    A RemoveBlocks of its own after every job cost a write and a wake-up on each
    side; held back, the finished task sets travel inside the next LaunchTasks
    (`finished_tasksets`), or before any other message. `flush` (the driver's
    ticker, every 100 ms) bounds how long one waits.
    """

    def __init__(self, ref: RpcEndpointRef) -> None:
        self._ref = ref
        self._lock = threading.Lock()
        self._retired: list[str] = []

    def __call__(self, message: Message) -> None:
        if isinstance(message, pb.RemoveBlocks) and not (
            message.rdd_ids or message.shuffle_ids or message.broadcast_ids
        ):
            with self._lock:
                self._retired.extend(message.tasksets)
            return
        if isinstance(message, pb.LaunchTasks) and self._retired:
            with self._lock:
                retired, self._retired = self._retired, []
            message.finished_tasksets.extend(retired)
        else:
            self.flush()
        self._send(message)

    def flush(self) -> None:
        """Send the task set removals held back, if any."""
        if not self._retired:  # a racy read: a removal added meanwhile waits for the next
            return
        with self._lock:
            retired, self._retired = self._retired, []
        if retired:
            self._send(pb.RemoveBlocks(tasksets=retired))

    def _send(self, message: Message) -> None:
        try:
            self._ref.send(message)
        except Exception as exc:  # the executor is going away; its disconnect follows
            log.debug("could not send to %s: %s", self._ref, exc)
