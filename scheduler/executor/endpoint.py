"""The "Executor" endpoint: the executor's side of the driver conversation.

Registers from `on_start` (so the driver keeps a ref back to this env, over the
connection it opened), turns LaunchTasks / KillTasks / RemoveBlocks into calls
on the ExecutorRuntime, sends batched StatusUpdates and heartbeats, serves its
shuffle files to other executors (FetchBlockRequest, files of its local dir
only) and ends the process when the driver or the watched Worker disconnects.
It never runs tasks on its own thread.

The env listens on `spark.blockManager.port` with the cluster's security (its
secret, TLS and loopback rule), so reducers elsewhere fetch from it directly;
when it cannot listen it runs in client mode and the driver relays its blocks.
It speaks the driver's backend for its executors (tcp unless TLS or the app
says); the Worker, on gRPC always, is reached from a client-mode env of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.protobuf.message import Message

from rpcenv import (
    APP_CREDENTIAL_ENV_VAR,
    Conf,
    RpcAddress,
    RpcCallContext,
    RpcEndpoint,
    RpcEndpointRef,
    RpcEnv,
    RpcMessageTooLargeError,
    hide_process_environment,
    is_loopback_host,
    parse_endpoint_uri,
)
from rpcenv import settings as rpc_settings
from scheduler import settings as sched_settings
from scheduler.executor.runtime import ExecutorRuntime, heartbeat_interval
from scheduler.executor.senders import EXECUTOR_SENDERS
from scheduler.task.broadcast import broadcast_path
from sparkctl.v1 import deploy_pb2 as dpb
from sparkctl.v1 import scheduler_pb2 as pb

__all__ = [
    "DRIVER_CONNECT_SECONDS",
    "LOCAL_DRIVER_CONNECT_SECONDS",
    "ExecutorEndpoint",
    "run_endpoint",
]

log = logging.getLogger("scheduler.executor")

#: The largest byte range one FetchBlockRequest may ask for.
_MAX_FETCH = 16 << 20
#: Threads reading blocks for other executors at once.
_BLOCK_READERS = 4
#: The most task code a launch handled on the I/O thread carries (see `receives_inline`).
_INLINE_LAUNCH_BYTES = 32 << 10
#: How long an executor started by a Worker tries to reach its driver (and its worker):
#: one that cannot must fail while the Worker still counts it as starting.
DRIVER_CONNECT_SECONDS = 5.0
#: The same for local[N]'s executor, whose driver is its parent: only load delays it,
#: and failing would fail the SparkContext.
LOCAL_DRIVER_CONNECT_SECONDS = 60.0

#: How long an executor waits for the driver's answer to a barrier sync: longer than any
#: spark.barrier.sync.timeout, which the driver applies (it fails the sync then).
BARRIER_ASK_SECONDS = 400 * 86400.0

_STATES = {
    "FINISHED": pb.TASK_STATE_FINISHED,
    "FAILED": pb.TASK_STATE_FAILED,
    "KILLED": pb.TASK_STATE_KILLED,
}


class ExecutorEndpoint(RpcEndpoint):
    """Receives work from the driver; reports back through `driver`."""

    #: Checked before every handler: commands only from our driver.
    sender_policy = EXECUTOR_SENDERS

    def __init__(
        self,
        args: argparse.Namespace,
        runtime: ExecutorRuntime,
        driver: RpcEndpointRef,
        worker: RpcEndpointRef | None,
        done: threading.Event,
        block_port: int = 0,
        fail: Callable[[str], None] | None = None,
    ) -> None:
        self._args = args
        self._runtime = runtime
        self._driver = driver
        #: The env id of our driver's connection, once it accepted us.
        self._driver_env_id = ""
        self._worker_ref = worker
        self._worker = worker.address if worker is not None else None
        self._done = done
        self._block_port = block_port
        self._fail = fail or (lambda reason: done.set())
        #: Block reads for other executors run here, off the endpoint's ordered inbox:
        #: a reducer's 8 MiB read must not hold up our next LaunchTasks, nor wait for
        #: another reducer's read.
        self._block_readers = ThreadPoolExecutor(
            max_workers=_BLOCK_READERS, thread_name_prefix="block-reader"
        )

    @property
    def app_id(self) -> str:
        """Our application: other executors fetching blocks must hold its credential."""
        return str(self._args.app_id)

    @property
    def driver_address(self) -> RpcAddress:
        """Where our driver's commands come from."""
        return self._driver.address

    @property
    def driver_env_id(self) -> str:
        """The env id our driver's commands come with ("" until it accepted us)."""
        return self._driver_env_id

    def on_start(self) -> None:
        request = pb.RegisterExecutorRequest(
            executor_id=self._args.executor_id,
            hostname=self._args.hostname,
            cores=self._args.cores,
            app_id=self._args.app_id,
            pid=os.getpid(),
            local_dir=self._runtime.local_dir,
            block_manager_port=self._block_port,
            log_urls=_log_urls(os.environ),
            resources=[
                pb.TaskResource(name=name, addresses=addresses)
                for name, addresses in sorted(executor_resources(os.environ).items())
            ],
            resource_profile_id=int(os.environ.get(RESOURCE_PROFILE_ENV) or "0"),
        )
        future = self._driver.ask(request, 30.0)
        driver_url = self._args.driver_url

        def registered(f: object) -> None:
            try:
                reply = future.result()
            except Exception as exc:
                self._fail(f"could not register with the driver at {driver_url}: {exc}")
                return
            assert isinstance(reply, pb.RegisterExecutorResponse)
            if not reply.accepted:
                self._fail(f"the driver at {driver_url} refused this executor: {reply.reason}")
                return
            # Set before the driver's next message on this stream is handed to our inbox.
            self._driver_env_id = reply.driver_env_id
            self._tell_worker_registered()

        future.add_done_callback(registered)

    def _tell_worker_registered(self) -> None:
        """The Worker reports us RUNNING (and the Master resets its retries) only now."""
        if self._worker_ref is None:
            return
        try:
            app_executor = int(self._args.executor_id)
        except ValueError:
            return  # not an id a Worker gave
        message = dpb.ExecutorRegistered(app_id=self._args.app_id, executor_id=app_executor)
        try:
            self._worker_ref.send(message)
        except Exception as exc:  # the worker is gone: its disconnect ends us anyway
            log.warning("could not tell the worker this executor registered: %s", exc)

    def receives_inline(self, message: Message) -> bool:
        """Small launches and task set removals run on the I/O thread: a wake-up less each.

        Launching is queueing and a pipe write to an idle or lightly loaded worker (a
        task's code under the pipe's 64 KiB buffer never waits for a busy worker).
        Launches that fetch a blob or write a broadcast go through the pool.
        """
        if isinstance(message, pb.RemoveBlocks):  # a finished task set: no files to delete
            return not (message.rdd_ids or message.shuffle_ids or message.broadcast_ids)
        if not isinstance(message, pb.LaunchTasks) or message.broadcasts:
            return False
        size = 0
        for stage in message.stages:
            if stage.blob:
                return False
            size += len(stage.data)
        return size <= _INLINE_LAUNCH_BYTES

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.LaunchTasks):
            if message.finished_tasksets:  # as a RemoveBlocks sent just before would
                self._runtime.forget(list(message.finished_tasksets), [], [])
            for block in message.broadcasts:
                path = broadcast_path(self._runtime.local_dir, block.broadcast_id)
                tmp = path + ".tmp"
                with open(tmp, "wb") as f:
                    if block.blob:
                        for piece in self._fetch_blob(block.blob, block.size):
                            f.write(piece)
                    else:
                        f.write(block.data)
                os.replace(tmp, path)
            for stage in message.stages:
                data = stage.data
                if stage.blob:
                    data = b"".join(self._fetch_blob(stage.blob, stage.size))
                limit = stage.python_worker_limit_mb  # a task-only profile's, else 0
                self._runtime.add_stage(stage.taskset, data, stage.barrier, limit)
            for t in message.tasks:
                if t.resources or t.cpus:
                    resources = {r.name: list(r.addresses) for r in t.resources}
                    self._runtime.set_task_resources(t.task_id, resources, t.cpus)
            self._runtime.launch(
                [(t.task_id, t.taskset, t.partition, t.attempt) for t in message.tasks]
            )
        elif isinstance(message, pb.KillTasks):
            self._runtime.kill(set(message.task_ids), message.reason)
        elif isinstance(message, pb.RemoveBlocks):
            self._remove(message)
        elif isinstance(message, pb.StopExecutor):
            self._done.set()

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        if isinstance(message, pb.FetchBlockRequest):
            self._block_readers.submit(self._serve_block, message, context)
            return
        if isinstance(message, pb.StopExecutor):
            context.reply(pb.RegisterExecutorResponse(accepted=True))
            self._done.set()
            return
        super().receive_and_reply(message, context)

    def _fetch_blob(self, blob: str, size: int) -> list[bytes]:
        """A large stage payload or broadcast, read from the driver in chunks."""
        pieces = []
        for offset in range(0, size, _MAX_FETCH):
            request = pb.FetchBlockRequest(
                executor_id="driver",
                path=blob,
                offset=offset,
                length=min(_MAX_FETCH, size - offset),
            )
            reply = self._driver.ask_sync(request, 120.0)
            assert isinstance(reply, pb.FetchBlockResponse)
            pieces.append(reply.data)
        return pieces

    def on_stop(self) -> None:
        self._block_readers.shutdown(wait=False, cancel_futures=True)

    def _serve_block(self, message: pb.FetchBlockRequest, context: RpcCallContext) -> None:
        try:
            data = self._read_block(message)
        except Exception as exc:  # the asker gets it as a fetch failure
            context.send_failure(exc)
            return
        context.reply(pb.FetchBlockResponse(data=data))

    def _read_block(self, message: pb.FetchBlockRequest) -> bytes:
        """A byte range of a file directly in our local dir; anything else is refused."""
        if message.executor_id and message.executor_id != self._args.executor_id:
            # A stale address now served by another executor: never answer for someone else.
            raise LookupError(
                f"this is executor {self._args.executor_id}, not {message.executor_id}"
            )
        root = os.path.realpath(self._runtime.local_dir)
        path = os.path.realpath(message.path)
        if os.path.dirname(path) != root:
            raise PermissionError(
                f"{message.path} is not a block of executor {self._args.executor_id}"
            )
        if message.length < 0 or message.length > _MAX_FETCH:
            raise ValueError(f"bad fetch length {message.length}")
        with open(path, "rb") as f:
            f.seek(message.offset)
            return f.read(message.length)

    def _remove(self, message: pb.RemoveBlocks) -> None:
        local = self._runtime.local_dir
        prefixes = [f"rdd_{r}_" for r in message.rdd_ids]
        prefixes += [f"shuffle_{s}_" for s in message.shuffle_ids]
        names = {f"broadcast_{b}" for b in message.broadcast_ids}
        if prefixes or names:
            for name in os.listdir(local):
                if name in names or name.startswith(tuple(prefixes)):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(local, name))
        self._runtime.forget(
            list(message.tasksets), list(message.rdd_ids), list(message.broadcast_ids)
        )

    def on_disconnected(self, address: RpcAddress) -> None:
        if address == self._driver.address:
            log.warning("driver %s disconnected: exiting", address)
            self._done.set()
        elif self._worker is not None and address == self._worker:
            log.warning("worker %s disconnected: exiting", address)
            self._done.set()


def _status_message(executor_id: str, batch: list[tuple[Any, ...]]) -> pb.StatusUpdates:
    update = pb.StatusUpdates(executor_id=executor_id)
    for reply in batch:
        _, task_id, state, result, extra, error, error_type, fetch, seconds = reply
        status = update.statuses.add(
            task_id=int(task_id),
            state=_STATES[str(state)],
            result=result,
            accumulators=extra,
            error=str(error),
            error_type=str(error_type),
            run_seconds=float(seconds),
        )
        if fetch is not None:
            shuffle_id, map_index, exec_id, text = fetch
            status.fetch_failure.shuffle_id = shuffle_id
            status.fetch_failure.map_index = map_index
            status.fetch_failure.executor_id = exec_id
            status.fetch_failure.message = text
    return update


def _rpc_conf() -> dict[str, str]:
    """The app's RPC settings, as its driver passed them (SPARKCTL_RPC_CONF)."""
    try:
        values = json.loads(os.environ.get("SPARKCTL_RPC_CONF") or "{}")
    except ValueError:
        log.warning("ignoring a malformed SPARKCTL_RPC_CONF")
        return {}
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def _create_env(hostname: str, driver_url: str, conf: dict[str, str]) -> tuple[RpcEnv, int]:
    """The executor's env and its block-manager port: listening if it can, else client mode.

    The listening env gets the app's conf unchanged, so the loopback rule applies as
    for any server of the cluster: no secret on a non-loopback host means no port,
    unless the app opted into spark.rpc.allowInsecure.
    """
    settings = Conf(conf)
    reason = ""
    if not settings.get(sched_settings.SHUFFLE_DIRECT_FETCH):
        reason = f"{sched_settings.SHUFFLE_DIRECT_FETCH.key} is false"
    elif is_loopback_host(hostname) and not _driver_on_loopback(driver_url):
        reason = f"{hostname} is a loopback address, which executors on other hosts cannot reach"
    if not reason:
        port = settings.get(sched_settings.BLOCK_MANAGER_PORT)
        retries = 0 if port == 0 else settings.get(rpc_settings.PORT_MAX_RETRIES)
        for candidate in range(port, port + retries + 1):
            try:
                env = RpcEnv.create("sparkExecutor", hostname, candidate, conf)
            except Exception as exc:  # taken port, refused bind, bad TLS files...
                reason = f"{type(exc).__name__}: {exc}"
                continue
            return env, env.address.port
    log.warning(
        "not serving shuffle blocks on %s (%s): other executors will fetch them through the driver",
        hostname,
        reason,
    )
    # A client-mode env never listens, so the loopback rule does not concern it.
    client_conf = {**conf, rpc_settings.ALLOW_INSECURE.key: "true"}
    return RpcEnv.create("sparkExecutor", hostname, 0, client_conf, client_mode=True), 0


#: The backend Workers speak (and every other cluster daemon): gRPC, the default.
_WORKER_RPC_BACKEND = "grpc"


def _worker_env(env: RpcEnv, hostname: str) -> RpcEnv:
    """The env that reaches our Worker: ours, unless ours speaks a backend Workers do not.

    A driver may have its executors speak tcp with it and with each other
    (`scheduler.api.driver.executors_rpc_backend`); the Worker stays on gRPC, reached
    then from a client-mode gRPC env of its own (which never listens, so the
    loopback rule does not concern it), with the same credential and settings.
    """
    conf = env.conf
    if conf.get(rpc_settings.RPC_BACKEND) == _WORKER_RPC_BACKEND:
        return env
    worker_conf = {k: v for k, v in conf.items() if k != rpc_settings.RPC_BACKEND.key}
    worker_conf[rpc_settings.ALLOW_INSECURE.key] = "true"
    return RpcEnv.create("sparkExecutor", hostname, 0, worker_conf, client_mode=True)


class _WorkerWatcher(RpcEndpoint):
    """Ends the executor when its Worker's connection closes (the Worker died or left)."""

    def __init__(self, worker: RpcEndpointRef, done: threading.Event) -> None:
        self._worker = worker.address
        self._done = done

    def on_disconnected(self, address: RpcAddress) -> None:
        if address == self._worker:
            log.warning("worker %s disconnected: exiting", address)
            self._done.set()


def _driver_on_loopback(driver_url: str) -> bool:
    try:
        return is_loopback_host(parse_endpoint_uri(driver_url)[1].host)
    except ValueError:
        return False


class _BlockFetcher:
    """Byte ranges of other executors' files: from the owner directly, else via the driver."""

    def __init__(self, env: RpcEnv, driver: RpcEndpointRef) -> None:
        self._env = env
        self._driver = driver
        self._owners: dict[str, RpcEndpointRef] = {}
        self._lock = threading.Lock()

    def __call__(self, owner: str, path: str, offset: int, length: int, address: str) -> bytes:
        request = pb.FetchBlockRequest(executor_id=owner, path=path, offset=offset, length=length)
        target = self._owner(address) if address else self._driver
        reply = target.ask_sync(request, 120.0)
        assert isinstance(reply, pb.FetchBlockResponse)
        return reply.data

    def _owner(self, address: str) -> RpcEndpointRef:
        with self._lock:
            ref = self._owners.get(address)
        if ref is None:
            # One lookup per owner; a dead owner fails here or on the ask, and the
            # reducer reports a fetch failure either way.
            ref = self._env.endpoint_ref(f"spark://Executor@{address}", timeout=30.0)
            with self._lock:
                self._owners[address] = ref
        return ref


def run_endpoint(
    args: argparse.Namespace,
    runtime: ExecutorRuntime,
    done: threading.Event,
    fail: Callable[[str], None] | None = None,
) -> None:
    """Serve blocks, connect to the driver (and worker), register, and serve until `done`.

    `fail(reason)` is called (and ends the executor) when the driver or the worker
    cannot be reached or the driver refuses us.
    """
    fail = fail or (lambda reason: done.set())
    if os.environ.get(APP_CREDENTIAL_ENV_VAR):
        # Other applications' tasks on this host run as our user: our /proc must not
        # show them our application's credential.
        hide_process_environment()
    env, block_port = _create_env(args.hostname, args.driver_url, _rpc_conf())
    timeout = DRIVER_CONNECT_SECONDS if args.worker_url else LOCAL_DRIVER_CONNECT_SECONDS
    try:
        # Bounded: an executor that cannot reach its driver must fail while its Worker
        # still counts it as starting, so that the app fails fast with this reason.
        driver = env.endpoint_ref(args.driver_url, timeout=timeout)
    except Exception as exc:
        env.shutdown()
        fail(f"cannot reach the driver at {args.driver_url}: {exc}")
        return
    worker_ref: RpcEndpointRef | None = None
    worker_env: RpcEnv | None = None
    if args.worker_url:
        try:
            worker_env = _worker_env(env, args.hostname)
            worker_ref = worker_env.endpoint_ref(args.worker_url, timeout=DRIVER_CONNECT_SECONDS)
            if worker_env is not env:  # its disconnect must end us as on one env
                worker_env.setup_endpoint("WorkerWatcher", _WorkerWatcher(worker_ref, done))
        except Exception as exc:
            if worker_env is not None and worker_env is not env:
                worker_env.shutdown()
            env.shutdown()
            fail(f"cannot reach the worker at {args.worker_url}: {exc}")
            return

    def send(batch: list[tuple[Any, ...]]) -> None:
        try:
            driver.send(_status_message(args.executor_id, batch))
        except RpcMessageTooLargeError as exc:
            if len(batch) > 1:
                for reply in batch:  # one big result must not sink the others
                    send([reply])
                return
            # A result larger than spark.rpc.message.maxSize fails its task, clearly.
            _, task_id, _, result, *_ = batch[0]
            reason = (
                f"the result of task {task_id} ({len(result)} bytes) is larger than "
                f"spark.rpc.message.maxSize: {exc}"
            )
            failed = ("done", task_id, "FAILED", b"", b"", reason, "ResultTooLarge", None, 0.0)
            driver.send(_status_message(args.executor_id, [failed]))

    runtime.on_statuses = send

    runtime.fetch_remote = _BlockFetcher(env, driver)

    def barrier_sync(
        stage_id: int,
        attempt: int,
        task_id: int,
        partition: int,
        epoch: int,
        method: str,
        message: str,
    ) -> list[str]:
        request = pb.BarrierRequest(
            executor_id=args.executor_id, stage_id=stage_id, stage_attempt=attempt,
            task_id=task_id, partition=partition, epoch=epoch, method=method, message=message,
        )  # fmt: skip
        # The driver bounds the wait (spark.barrier.sync.timeout) and fails it then.
        reply = driver.ask_sync(request, BARRIER_ASK_SECONDS)
        assert isinstance(reply, pb.BarrierResponse)
        return list(reply.messages)

    runtime.barrier_remote = barrier_sync
    endpoint = ExecutorEndpoint(args, runtime, driver, worker_ref, done, block_port, fail)
    # Before registering: the workers know where their map outputs will be served
    # before the driver can launch a task.
    if block_port:
        runtime.set_block_address(env.address.host_port)
    env.setup_endpoint("Executor", endpoint)

    def heartbeat() -> None:
        while not done.wait(heartbeat_interval()):
            with contextlib.suppress(Exception):
                driver.send(pb.ExecutorHeartbeat(executor_id=args.executor_id))

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()

    def shutdown_when_done() -> None:
        done.wait()
        env.shutdown()
        if worker_env is not None and worker_env is not env:
            worker_env.shutdown()

    threading.Thread(target=shutdown_when_done, name="env-shutdown", daemon=True).start()


#: Set by the Worker that launched this executor: the custom resource addresses the
#: Master gave it (JSON: name -> addresses), as Spark's executors get a resources file.
EXECUTOR_RESOURCES_ENV = "SPARKCTL_EXECUTOR_RESOURCES"
#: ... and the resource profile it was started for (unset: the default, 0).
RESOURCE_PROFILE_ENV = "SPARKCTL_RESOURCE_PROFILE_ID"


def executor_resources(environ: Mapping[str, str]) -> dict[str, list[str]]:
    """This executor's custom resource addresses; {} when its worker gave none.

    Raises:
        ValueError: the variable is set but is not JSON of name -> list of addresses.
    """
    raw = environ.get(EXECUTOR_RESOURCES_ENV)
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise ValueError(f"{EXECUTOR_RESOURCES_ENV} must map names to address lists: {raw!r}")
    return {str(k): [str(a) for a in v] for k, v in value.items()}


def _log_urls(environ: Mapping[str, str]) -> dict[str, str]:
    """SPARK_LOG_URL_STDOUT=... -> {"stdout": ...}: the links its worker gave this executor."""
    prefix = "SPARK_LOG_URL_"
    return {k[len(prefix) :].lower(): v for k, v in environ.items() if k.startswith(prefix) and v}
