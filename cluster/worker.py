"""The Worker endpoint ("Worker"): registers with a Master and runs its processes.

It launches each executor (here) and cluster-mode driver (`worker_drivers`)
as an OS process of its own (`process_runner`), reports their states to the
Master, heartbeats, keeps its cores and memory accounting, and cleans up
after finished applications. The handlers never block: finding a Master,
watching processes, memory sampling and timers all run on helper threads that
only post messages to this endpoint's own inbox. On stop it kills every
process it started.
"""

from __future__ import annotations

import concurrent.futures
import logging
import pathlib
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from google.protobuf.message import Message

from cluster._timers import SYSTEM_CLOCK, Clock, Ticker
from cluster.heartbeat_datagrams import DatagramSender
from cluster.launcher import Launcher
from cluster.master_finder import MasterFinder, master_endpoint_uri
from cluster.memory_monitor import MemoryMonitor
from cluster.process_runner import describe_exit, tail
from cluster.senders import WORKER_SENDERS
from cluster.settings import WORKER_RESOURCES_FILE
from cluster.work_dirs import remove_expired_later, remove_scratch_later
from cluster.worker_base import ENDPOINT_NAME, STOP_GRACE_S
from cluster.worker_drivers import WorkerDrivers
from cluster.worker_runners import (
    ExecutorRunner,
    executor_launch_spec,
)
from rpcenv import Conf, RpcAddress, RpcCallContext, RpcEndpointRef
from rpcenv.resources import discover_resources
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["ENDPOINT_NAME", "Worker"]

log = logging.getLogger(__name__)

#: Heartbeats between probe datagrams after a first move to the stream: one timeout.
_FIRST_PROBE_EVERY = 4
#: At most this many (64 timeouts, about an hour at the default): a flood that goes on
#: makes a worker flap between the paths ever less often.
_MAX_PROBE_EVERY = 256

ES = pb.ExecutorState
DS = pb.DriverState


class Worker(WorkerDrivers):
    """A standalone Worker: `WorkerBase`'s state plus its message handlers (same arguments)."""

    #: Checked before every handler: who may send which message (`cluster.senders`).
    sender_policy = WORKER_SENDERS

    def __init__(
        self,
        conf: Conf,
        worker_id: str,
        master_urls: Sequence[str],
        cores: int,
        memory_mb: int,
        work_dir: pathlib.Path,
        webui_address: str = "",
        launcher: Launcher | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            conf, worker_id, master_urls, cores, memory_mb, work_dir, webui_address, launcher, clock
        )
        #: Custom resources (spark.worker.resource.*): name -> every address it offers.
        #: Found here, so a bad script or file stops the worker before it registers.
        self.resources = discover_resources(conf, resources_file=conf.get(WORKER_RESOURCES_FILE))
        # Made here, started by on_start: a test without an env drives `check_once`.
        self._monitor = MemoryMonitor(
            self.memory_check_interval, self._memory_exceeded, self.launcher.rss_bytes
        )
        self._asks: dict[type[Message], Callable[[Any, RpcCallContext], None]] = {
            pb.GetWorkerStateRequest: self._on_get_state,
        }
        self._notices: dict[type[Message], Callable[[Any, RpcEndpointRef | None], None]] = {
            pb.MasterReachable: self._on_master_reachable,
            pb.RegisterWorkerResponse: self._on_registered,
            pb.RegistrationFailed: self._on_registration_failed,
            pb.ReconnectWorker: self._on_reconnect,
            pb.UseStreamHeartbeats: self._on_use_stream_heartbeats,
            pb.UseDatagramHeartbeats: self._on_use_datagram_heartbeats,
            pb.MasterChanged: self._on_master_changed,
            pb.SendHeartbeat: self._on_send_heartbeat,
            pb.LaunchExecutor: self._on_launch_executor,
            pb.KillExecutor: self._on_kill_executor,
            pb.ApplicationFinished: self._on_application_finished,
            pb.LaunchDriver: self._on_launch_driver,
            pb.KillDriver: self._on_kill_driver,
            pb.ProcessExited: self._on_process_exited,
            pb.MemoryExceeded: self._on_memory_exceeded,
            pb.ExecutorStartupCheck: self._on_startup_check,
            pb.ExecutorRegistered: self._on_executor_registered,
            pb.CleanupWorkDirs: self._on_cleanup,
        }

    # -- lifecycle -----------------------------------------------------------------
    def on_start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Our executors connect with their application's credential, not the secret:
        # they may say ExecutorRegistered for that application and nothing else
        # (cluster.senders).
        self.rpc_env.accept_app_credentials()
        ref = self.self_ref
        self._finder = MasterFinder(self.rpc_env, self.master_urls, self._master_found)
        self._finder.start()
        self._heartbeat = Ticker(
            "worker-heartbeat", self.heartbeat_interval, lambda: ref.send(pb.SendHeartbeat())
        )
        self._tickers.append(self._heartbeat)
        if self.cleanup_enabled:
            self._tickers.append(
                Ticker(
                    "worker-cleanup", self.cleanup_interval, lambda: ref.send(pb.CleanupWorkDirs())
                )
            )
        for ticker in self._tickers:
            ticker.start()
        if self._monitor is not None:
            self._monitor.start()

    def on_stop(self) -> None:
        try:
            self._stop_everything()
        finally:
            self.stopped.set()

    def _stop_everything(self) -> None:
        self._stopping.set()
        if self._finder is not None:
            self._finder.stop()
        for ticker in self._tickers:
            ticker.stop()
        self._stop_datagrams()
        if self._monitor is not None:
            self._monitor.stop()
        processes = [r.process for r in self.executors.values()]
        processes += [d.process for d in self.drivers.values() if d.process is not None]
        for process in processes:
            process.stop(grace=STOP_GRACE_S)
        deadline = time.monotonic() + STOP_GRACE_S + 2.0
        for process in processes:
            process.wait(max(0.0, deadline - time.monotonic()))
        for process in processes:
            if process.running:
                process.stop(grace=0)
                process.wait(2.0)
        log.info("worker %s stopped %d process(es)", self.worker_id, len(processes))
        if self.registered.is_set() and self.master_ref is not None:
            # Delivered only when the endpoint stops before its env (WorkerHandle.stop).
            self._send(
                self.master_ref,
                pb.WorkerStopping(
                    worker_id=self.worker_id, incarnation=self.incarnation, reason="worker stopped"
                ),
            )

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        handler = self._notices.get(type(message))
        if handler is None:
            log.warning("worker ignores unexpected %s", message.DESCRIPTOR.full_name)
            return
        handler(message, sender)

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        handler = self._asks.get(type(message))
        if handler is None:
            context.send_failure(
                ValueError(f"the Worker does not answer {message.DESCRIPTOR.full_name}")
            )
            return
        handler(message, context)

    def on_disconnected(self, address: RpcAddress) -> None:
        if self.master_ref is not None and address == self.master_ref.address:
            log.warning("lost the connection to master %s; registering again", self.master_url)
            self._reregister()

    # -- registration ---------------------------------------------------------------

    def _master_found(self, url: str, ref: RpcEndpointRef) -> None:
        """On the finder thread: hand the ref to the endpoint through its inbox."""
        # A single dict store (atomic in CPython) published before the message
        # that tells the endpoint to read it.
        self._found[url] = ref
        self._post(pb.MasterReachable(master_url=url))

    def _on_master_reachable(self, msg: pb.MasterReachable, _s: RpcEndpointRef | None) -> None:
        ref = self._found.pop(msg.master_url, None)
        if ref is None or self.registered.is_set():
            return
        # State changes from while we were unregistered go first (same stream, so
        # in order): a recovering Master then knows which drivers and executors
        # ended before it reconciles our registration. Every Master asked gets them
        # (a standby ignores them); they are dropped once one accepted us.
        sent = len(self._unsent)
        for message in list(self._unsent):
            self._send(ref, message)
        request = pb.RegisterWorkerRequest(
            worker_id=self.worker_id,
            host=self.rpc_env.address.host,
            port=self.rpc_env.address.port,
            cores=self.cores,
            memory_mb=self.memory_mb,
            webui_address=self.webui_address,
            incarnation=self.incarnation,
            executors=[
                pb.ExecutorDescription(
                    app_id=r.app_id,
                    executor_id=r.executor_id,
                    cores=r.cores,
                    memory_mb=r.memory_mb,
                    state=r.state,
                    resources=[
                        pb.ResourceAddresses(name=n, addresses=a) for n, a in r.resources.items()
                    ],
                    resource_profile_id=r.profile_id,
                )
                for r in self.executors.values()
                if not r.stop_reason
            ],
            drivers=[
                pb.DriverRuntime(
                    driver_id=d.driver_id,
                    description=d.description,
                    state=d.state,
                    attempt=d.attempt,
                )
                for d in self.drivers.values()
                if not d.killed
            ],
            resources=[
                pb.ResourceAddresses(name=n, addresses=a) for n, a in sorted(self.resources.items())
            ],
            udp_heartbeats=self.udp_heartbeats,
        )
        url = msg.master_url

        def answered(future: concurrent.futures.Future[Message]) -> None:
            try:
                reply = future.result()
            except Exception as exc:  # timeout, connection lost: try again later
                self._post(pb.RegistrationFailed(master_url=url, reason=str(exc)))
                return
            if isinstance(reply, pb.RegisterWorkerResponse):
                self._responders[reply.master_url] = (ref, sent)  # read by _on_registered
            self._post(reply)

        # Asked from inside the handler so the Master gets our ref as the sender.
        ref.ask(request, timeout=10.0).add_done_callback(answered)

    def _on_registered(self, msg: pb.RegisterWorkerResponse, _s: RpcEndpointRef | None) -> None:
        responder = self._responders.pop(msg.master_url, None)
        if not msg.accepted:
            if msg.master_in_standby:
                log.info("master %s is in standby; waiting for the leader", msg.master_url)
            else:
                log.error("master refused to register worker %s: %s", self.worker_id, msg.reason)
            if "stale incarnation" in msg.reason:
                self._refused = True  # a newer incarnation of us exists: stop trying
                return
            if not self.registered.is_set():
                self._retry_registration(msg.reason)
            return
        if responder is None:
            return
        ref, sent = responder
        if self.registered.is_set():
            if self.master_ref is not None and ref.address != self.master_ref.address:
                # Two Masters accepted us (both ALIVE: not an HA setup): keep the first.
                log.warning(
                    "master %s also accepted worker %s; staying with %s",
                    msg.master_url,
                    self.worker_id,
                    self.master_url,
                )
                self._send(
                    ref,
                    pb.WorkerStopping(
                        worker_id=self.worker_id,
                        incarnation=self.incarnation,
                        reason=f"registered with master {self.master_url}",
                    ),
                )
            return
        for _ in range(min(sent, len(self._unsent))):
            self._unsent.popleft()
        self.master_ref = ref
        self.master_url = msg.master_url
        self.master_webui_url = msg.master_webui_url
        self.master_epoch = msg.master_epoch
        self.master_env_id = msg.master_env_id
        if msg.heartbeat_interval_ms > 0 and self._heartbeat is not None:
            # The Master owns the interval: a timeout set on it alone must not make
            # workers that keep their own (longer) default flap.
            self.heartbeat_interval = max(0.05, msg.heartbeat_interval_ms / 1000)
            self._heartbeat.set_interval(self.heartbeat_interval)
        self._failures = 0
        self.registered.set()
        while self._unsent:  # changes that happened while the registration was on its way
            self._send(ref, self._unsent.popleft())
        self._start_datagrams(msg, ref)
        log.info(
            "worker %s registered with master %s (heartbeats by %s)",
            self.worker_id,
            msg.master_url,
            "UDP datagram" if self._datagrams is not None else "stream",
        )

    def _start_datagrams(self, msg: pb.RegisterWorkerResponse, ref: RpcEndpointRef) -> None:
        """Heartbeat by datagram if the Master offered it; the first one goes now."""
        self._stop_datagrams()
        if not self.udp_heartbeats or msg.heartbeat_udp_port <= 0:
            return
        try:
            self._datagrams = DatagramSender(
                ref.address.host, msg.heartbeat_udp_port, msg.heartbeat_slot, msg.heartbeat_key
            )
        except OSError as exc:
            log.warning("heartbeats on the stream: no UDP socket to the master: %s", exc)
            return
        self._probe_every = 0
        self._on_send_heartbeat(pb.SendHeartbeat(), None)  # so the Master knows UDP works

    def _stop_datagrams(self) -> None:
        self._on_stream = False
        if self._datagrams is not None:
            self._datagrams.close()
            self._datagrams = None

    def _on_registration_failed(
        self, msg: pb.RegistrationFailed, _s: RpcEndpointRef | None
    ) -> None:
        log.warning("registering with %s failed: %s", msg.master_url, msg.reason)
        if not self.registered.is_set():
            self._retry_registration(msg.reason)

    def _retry_registration(self, _reason: str) -> None:
        self._failures += 1
        if self._finder is not None:
            self._finder.start(delay=min(5.0, 0.1 * 2**self._failures))

    def _reregister(self) -> None:
        if self._refused:
            return
        self._stop_datagrams()
        self.registered.clear()
        self.master_ref = None
        if self._finder is not None:
            self._finder.start()

    def _on_reconnect(self, msg: pb.ReconnectWorker, _s: RpcEndpointRef | None) -> None:
        log.info("master %s asks worker %s to register again", msg.master_url, self.worker_id)
        self._reregister()

    def _on_master_changed(self, msg: pb.MasterChanged, _s: RpcEndpointRef | None) -> None:
        """A newly elected leader recovers us: register with it (Spark's masterChanged)."""
        if self._refused or self._stale(msg, msg.master_epoch):
            return
        if self.registered.is_set() and msg.master_epoch == self.master_epoch:
            return  # already registered with it
        log.info("master changed to %s; registering with it", msg.master_url)
        self._stop_datagrams()
        self.registered.clear()
        self.master_ref = None
        url, env = msg.master_url, self.rpc_env

        def connect() -> None:
            try:
                ref = env.endpoint_ref(master_endpoint_uri(url), timeout=10.0)
            except Exception as exc:
                log.warning("new master %s not reachable (%s); looking for one", url, exc)
                self._post(pb.ReconnectWorker(master_url=url))
                return
            self._master_found(url, ref)

        threading.Thread(target=connect, name="master-changed", daemon=True).start()

    def _on_use_stream_heartbeats(
        self, msg: pb.UseStreamHeartbeats, _s: RpcEndpointRef | None
    ) -> None:
        if self._stale(msg, msg.master_epoch) or self._datagrams is None or self._on_stream:
            return
        # A probe datagram now and then (once a timeout, then half as often after each
        # move) lets the Master bring us back when UDP gets through again.
        self._probe_every = min(_MAX_PROBE_EVERY, 2 * self._probe_every or _FIRST_PROBE_EVERY)
        log.warning(
            "master %s: heartbeats on the stream (a datagram every %d heartbeats to see if "
            "UDP gets through again): %s",
            msg.master_url,
            self._probe_every,
            msg.reason,
        )
        self._on_stream = True
        self._beats_since_probe = 0
        self._on_send_heartbeat(pb.SendHeartbeat(), None)  # at once: it has heard none lately

    def _on_use_datagram_heartbeats(
        self, msg: pb.UseDatagramHeartbeats, _s: RpcEndpointRef | None
    ) -> None:
        if self._stale(msg, msg.master_epoch) or self._datagrams is None or not self._on_stream:
            return
        log.info("master %s heard our datagram: heartbeats by datagram again", msg.master_url)
        self._on_stream = False
        self._on_send_heartbeat(pb.SendHeartbeat(), None)

    def _on_send_heartbeat(self, _msg: pb.SendHeartbeat, _s: RpcEndpointRef | None) -> None:
        if not self.registered.is_set() or self.master_ref is None:
            return
        sender = self._datagrams
        if sender is not None:
            probe = not self._on_stream
            if self._on_stream:
                self._beats_since_probe += 1
                probe = self._beats_since_probe >= self._probe_every
                if probe:
                    self._beats_since_probe = 0
            try:
                if probe:
                    sender.send()
                if not self._on_stream:
                    return
            except OSError as exc:  # e.g. the port was found closed: the stream always works
                log.warning("heartbeats on the stream from now on: UDP send failed: %s", exc)
                self._stop_datagrams()
        self._send(
            self.master_ref,
            pb.WorkerHeartbeat(worker_id=self.worker_id, incarnation=self.incarnation),
        )

    # -- executors -------------------------------------------------------------------

    def _on_launch_executor(self, msg: pb.LaunchExecutor, _s: RpcEndpointRef | None) -> None:
        if self._stale(msg, msg.master_epoch):
            return
        received = self.clock()
        key = (msg.app_id, msg.executor_id)

        def failed(reason: str) -> None:
            log.error("cannot launch executor %s/%d: %s", msg.app_id, msg.executor_id, reason)
            self._to_master(
                pb.ExecutorStateChanged(
                    app_id=msg.app_id,
                    executor_id=msg.executor_id,
                    state=ES.EXECUTOR_STATE_FAILED,
                    message=reason,
                    worker_id=self.worker_id,
                )
            )

        if key in self.executors:
            log.info("executor %s/%d already runs here", *key)
            return
        if (
            self.cores_used + msg.cores > self.cores
            or self.memory_used_mb + msg.memory_mb > self.memory_mb
        ):
            failed(
                f"worker {self.worker_id} has {self.cores - self.cores_used} cores and "
                f"{self.memory_mb - self.memory_used_mb} MiB free; asked {msg.cores} cores, "
                f"{msg.memory_mb} MiB"
            )
            return
        problem = self._resources_problem(msg)
        if problem:
            failed(problem)
            return
        try:
            spec = executor_launch_spec(
                msg,
                self.work_dir,
                self.executor_host,
                self.url,
                self.local_dirs,
                self.webui_address,
            )
        except ValueError as exc:
            failed(str(exc))
            return
        process = self.launcher.process(
            f"executor-{msg.app_id}-{msg.executor_id}",
            spec.argv,
            spec.cwd,
            spec.env,
            lambda code: self._post(
                pb.ProcessExited(
                    kind="executor",
                    app_id=msg.app_id,
                    executor_id=msg.executor_id,
                    exit_status=code,
                )
            ),
        )
        runner = ExecutorRunner(msg.app_id, msg.executor_id, msg.cores, msg.memory_mb, process)
        runner.resources = {r.name: tuple(r.addresses) for r in msg.resources}
        runner.profile_id = msg.resource_profile_id
        runner.awaits_registration = msg.app_description.executors_report_registration
        try:
            process.start()
        except OSError as exc:
            failed(f"could not start {spec.argv[0]!r}: {exc}")
            return
        self._launch_times.append(self.clock() - received)
        self.finished_apps.pop(msg.app_id, None)
        self.executors[key] = runner
        if self._monitor is not None:
            self._monitor.watch(("executor", key), process.pid, msg.memory_mb)
        log.info("started executor %s/%d (pid %d)", msg.app_id, msg.executor_id, process.pid)
        check = pb.ExecutorStartupCheck(app_id=msg.app_id, executor_id=msg.executor_id)
        if self.startup_grace > 0:
            self.clock.later(self.startup_grace, lambda: self._post(check), "executor-startup")
        else:
            self._on_startup_check(check, None)

    def _resources_problem(self, msg: pb.LaunchExecutor) -> str:
        """Why the custom resources a launch names are not ours to give ("" if they are)."""
        held = {
            (name, address)
            for runner in self.executors.values()
            for name, addresses in runner.resources.items()
            for address in addresses
        }
        for resource in msg.resources:
            ours = self.resources.get(resource.name, ())
            for address in resource.addresses:
                if address not in ours:
                    return f"worker {self.worker_id} has no {resource.name} address {address!r}"
                if (resource.name, address) in held:
                    return f"{resource.name} address {address!r} is held by another executor"
        return ""

    def _on_startup_check(self, msg: pb.ExecutorStartupCheck, _s: RpcEndpointRef | None) -> None:
        runner = self.executors.get((msg.app_id, msg.executor_id))
        if runner is None or runner.stop_reason or runner.state != ES.EXECUTOR_STATE_LAUNCHING:
            return  # it already ended (and was reported) or is being stopped
        rss_mb = self.launcher.rss_bytes(runner.process.pid) >> 20
        if runner.memory_mb > 0 and rss_mb > runner.memory_mb:
            # Over its memory already: it fails before RUNNING, so that it counts towards
            # spark.deploy.maxExecutorRetries. Killed by the monitor a moment after RUNNING,
            # executors below Python's own footprint were relaunched forever.
            exceeded = pb.MemoryExceeded(
                app_id=msg.app_id,
                executor_id=msg.executor_id,
                limit_mb=runner.memory_mb,
                rss_mb=rss_mb,
            )
            self._on_memory_exceeded(exceeded, None)
            return
        runner.grace_over = True
        if runner.awaits_registration and not runner.driver_registered:
            # Alive is not enough: an executor that cannot reach its driver lives a few
            # seconds, and RUNNING would reset spark.deploy.maxExecutorRetries each time.
            return
        self._report_running(runner)

    def _on_executor_registered(
        self, msg: pb.ExecutorRegistered, _s: RpcEndpointRef | None
    ) -> None:
        """The executor registered with its driver: RUNNING once its startup grace is over."""
        runner = self.executors.get((msg.app_id, msg.executor_id))
        if runner is None or runner.stop_reason or runner.state != ES.EXECUTOR_STATE_LAUNCHING:
            return
        runner.driver_registered = True
        if runner.grace_over:
            self._report_running(runner)

    def _report_running(self, runner: ExecutorRunner) -> None:
        runner.state = ES.EXECUTOR_STATE_RUNNING
        self._to_master(
            pb.ExecutorStateChanged(
                app_id=runner.app_id,
                executor_id=runner.executor_id,
                state=ES.EXECUTOR_STATE_RUNNING,
                worker_id=self.worker_id,
            )
        )

    def _stop_executor(
        self, runner: ExecutorRunner, reason: str, grace: float = STOP_GRACE_S
    ) -> None:
        if runner.stop_reason:
            return
        runner.stop_reason = reason
        if self._monitor is not None:
            self._monitor.unwatch(("executor", runner.key))
        runner.process.stop(grace)

    def _on_kill_executor(self, msg: pb.KillExecutor, _s: RpcEndpointRef | None) -> None:
        if self._stale(msg, msg.master_epoch):
            return
        runner = self.executors.get((msg.app_id, msg.executor_id))
        if runner is not None:
            log.info("killing executor %s/%d as asked", msg.app_id, msg.executor_id)
            self._stop_executor(runner, "killed by the master")

    def _on_application_finished(
        self, msg: pb.ApplicationFinished, _s: RpcEndpointRef | None
    ) -> None:
        if self._stale(msg, msg.master_epoch):
            return
        self.finished_apps[msg.app_id] = None
        while len(self.finished_apps) > 1000:
            self.finished_apps.popitem(last=False)
        runners = [r for r in self.executors.values() if r.app_id == msg.app_id]
        for runner in runners:
            self._stop_executor(runner, f"application {msg.app_id} finished")
        if not runners:
            self._clean_app_scratch(msg.app_id)

    def _on_memory_exceeded(self, msg: pb.MemoryExceeded, _s: RpcEndpointRef | None) -> None:
        runner = self.executors.get((msg.app_id, msg.executor_id))
        if runner is None or runner.stop_reason:
            return
        runner.over_memory = True
        reason = f"exceeded {msg.limit_mb} MiB (resident {msg.rss_mb} MiB, with its children)"
        log.warning("stopping executor %s/%d: %s", msg.app_id, msg.executor_id, reason)
        self._stop_executor(runner, reason, grace=0)

    def _memory_exceeded(self, key: Hashable, limit_mb: int, rss_mb: int) -> None:
        """On the monitor thread: report through the inbox."""
        assert isinstance(key, tuple)
        _, (app_id, executor_id) = key
        self._post(
            pb.MemoryExceeded(
                app_id=app_id, executor_id=executor_id, limit_mb=limit_mb, rss_mb=rss_mb
            )
        )

    def _on_process_exited(self, msg: pb.ProcessExited, _s: RpcEndpointRef | None) -> None:
        if msg.kind == "driver":
            self._driver_exited(msg)
            return
        runner = self.executors.pop((msg.app_id, msg.executor_id), None)
        if runner is None:
            return
        if self._monitor is not None:
            self._monitor.unwatch(("executor", runner.key))
        code = msg.exit_status
        runner.exit_status = code
        if runner.over_memory:
            state, text = ES.EXECUTOR_STATE_FAILED, f"{runner.stop_reason}; {describe_exit(code)}"
        elif runner.stop_reason:
            state, text = ES.EXECUTOR_STATE_KILLED, runner.stop_reason
        elif code == 0:
            state, text = ES.EXECUTOR_STATE_EXITED, describe_exit(code)
        else:
            state, text = ES.EXECUTOR_STATE_FAILED, describe_exit(code)
            stderr = tail(runner.process.stderr_path)
            if stderr:
                text += f"; stderr ends with:\n{stderr}"
        runner.state = state
        # Its summary only (ids, state, work dir): the process record holds a copy of
        # the environment, and spark.worker.ui.retainedExecutors of them are kept.
        self.finished_executors.append(runner.summary())
        log.info("executor %s/%d %s: %s", msg.app_id, msg.executor_id, ES.Name(state), text)
        self._to_master(
            pb.ExecutorStateChanged(
                app_id=msg.app_id,
                executor_id=msg.executor_id,
                state=state,
                message=text,
                exit_status=code,
                worker_id=self.worker_id,
            )
        )
        if msg.app_id in self.finished_apps and not any(
            r.app_id == msg.app_id for r in self.executors.values()
        ):
            self._clean_app_scratch(msg.app_id)

    # -- cleanup ---------------------------------------------------------------------

    def _clean_app_scratch(self, app_id: str) -> None:
        """Delete the ended application's local dirs; its executors' logs stay.

        As Spark's Worker does: stdout and stderr remain readable in the worker UI
        until the TTL cleanup (`_on_cleanup`) removes the whole app dir.
        """
        remove_scratch_later(app_id, self.work_dir, self.local_dirs)

    def _on_cleanup(self, _msg: pb.CleanupWorkDirs, _s: RpcEndpointRef | None) -> None:
        """Remove work dirs of applications and drivers that ended more than appDataTtl ago."""
        active = {r.app_id for r in self.executors.values()} | set(self.drivers)
        remove_expired_later(self.work_dir, active, self.app_data_ttl)

    # -- queries ---------------------------------------------------------------------

    def _on_get_state(self, _msg: pb.GetWorkerStateRequest, context: RpcCallContext) -> None:
        context.reply(
            pb.GetWorkerStateResponse(
                worker_id=self.worker_id,
                host=self.rpc_env.address.host,
                port=self.rpc_env.address.port,
                cores=self.cores,
                cores_used=self.cores_used,
                memory_mb=self.memory_mb,
                memory_used_mb=self.memory_used_mb,
                master_url=self.master_url,
                master_webui_url=self.master_webui_url,
                executors=[r.summary() for r in self.executors.values()],
                finished_executors=list(self.finished_executors),
                drivers=[d.summary() for d in self.drivers.values()],
                finished_drivers=[d.summary() for d in self.finished_drivers],
                work_dir=str(self.work_dir),
            )
        )
