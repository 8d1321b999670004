"""The Master endpoint ("Master"): workers, applications, executors and drivers.

It translates messages into changes of its records (`master_state`, held by
`master_base.MasterBase`, which asks `Placement` where new executors and
drivers go); driver handling is in `master_drivers`, leadership (standby,
election, revocation) in `master_leadership`. Pushes to workers and
drivers are one-way sends. Everything runs on the endpoint's own thread: timers only
post messages here (`_timers`), and the handlers never block on an ask. It
never starts processes and never unpickles anything.
"""

from __future__ import annotations

import logging
import pathlib
import re
from collections.abc import Callable
from typing import Any

from google.protobuf import empty_pb2
from google.protobuf.message import Message

from cluster import master_views
from cluster._timers import SYSTEM_CLOCK, Clock, Ticker
from cluster.heartbeat_datagrams import DatagramListener, HeartbeatDatagrams
from cluster.master_base import StandbyMasterError
from cluster.master_leadership import MasterLeadership
from cluster.master_peers import IdlePeers
from cluster.master_state import (
    FINISHED_EXECUTOR_STATES,
    AppInfo,
    DriverInfo,
    ExecutorInfo,
    WorkerInfo,
    resources_from,
)
from cluster.request_limits import check_app_description, worker_resources_problem
from cluster.senders import MASTER_SENDERS
from cluster.settings import MAX_FILES_SIZE, WORKER_UDP_HEARTBEATS, ZOOKEEPER_MAX_FILES_SIZE
from rpcenv import Conf, RpcAddress, RpcCallContext, RpcEndpointRef, RpcError, current_origin
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = ["ENDPOINT_NAME", "Master"]

log = logging.getLogger(__name__)

ENDPOINT_NAME = "Master"

#: What a standby Master still answers or handles (everything else is refused).
_STANDBY_ASKS = (api.GetClusterStateRequest,)
_STANDBY_NOTICES = (pb.ElectedLeader, pb.RevokedLeadership, pb.CheckWorkerTimeouts)

ES = pb.ExecutorState
AS = pb.ApplicationState
DS = pb.DriverState
WS = pb.WorkerState
MS = pb.MasterStatus
_STANDBY = int(pb.MASTER_STATUS_STANDBY)  # a plain int: read on every message
#: How stale a cached cluster state's heartbeat times may get while nothing else changes.
_STATE_CACHE_S = 1.0
#: How often dropped heartbeat datagrams are reported in the log, at most.
_DROP_LOG_INTERVAL_S = 60.0
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:%-]{0,199}$")


class Master(MasterLeadership):
    """The standalone cluster's Master.

    Args:
        conf: settings (`spark.worker.timeout`, `spark.deploy.*`).
        work_dir: where FILESYSTEM recovery keeps its records by default.
        webui_url: the Master web UI's URL, told to workers (may be empty).
        clock: monotonic seconds and one-shot timers for its timeouts, back-offs and
            recovery wait (tests pass a `FakeClock`).
    """

    #: Checked before every handler: who may send which message (`cluster.senders`).
    sender_policy = MASTER_SENDERS

    def __init__(
        self,
        conf: Conf,
        work_dir: pathlib.Path,
        webui_url: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(conf, work_dir, webui_url, clock)
        self._handlers: dict[type[Message], Callable[[Any, RpcCallContext], None]] = {
            pb.RegisterWorkerRequest: self._on_register_worker,
            pb.RegisterApplicationRequest: self._on_register_application,
            pb.RequestExecutorsRequest: self._on_request_executors,
            pb.KillExecutorsRequest: self._on_kill_executors,
            api.GetClusterStateRequest: self._on_get_cluster_state,
            api.SubmitDriverRequest: self._on_submit_driver,
            api.GetDriverStatusRequest: self._on_get_driver_status,
            api.KillDriverRequest: self._on_kill_driver,
            api.KillApplicationRequest: self._on_kill_application,
            pb.UnregisterApplication: self._on_unregister_ask,
        }
        self._notices: dict[type[Message], Callable[[Any, RpcEndpointRef | None], None]] = {
            pb.WorkerHeartbeat: self._on_heartbeat,
            pb.WorkerStopping: self._on_worker_stopping,
            pb.ExecutorStateChanged: self._on_executor_state_changed,
            pb.DriverStateChanged: self._on_driver_state_changed,
            pb.UnregisterApplication: self._on_unregister_application,
            pb.CheckWorkerTimeouts: self._on_check_worker_timeouts,
            pb.RelaunchDriver: self._on_relaunch_driver,
            pb.CompleteRecovery: self._on_complete_recovery,
            pb.ElectedLeader: self._on_elected_leader,
            pb.RevokedLeadership: self._on_revoked_leadership,
        }
        self._state_cache: api.GetClusterStateResponse | None = None
        self._state_cache_at = 0.0
        #: Connected peers with no role, closed once silent too long (`master_peers`).
        self.idle_peers = IdlePeers.from_conf(conf)
        #: Heartbeat datagrams (`cluster.heartbeat_datagrams`); None: stream heartbeats only.
        self.datagrams: HeartbeatDatagrams | None = None
        if conf.get(WORKER_UDP_HEARTBEATS):
            self.datagrams = HeartbeatDatagrams(self.liveness.clock)
        self._listener: DatagramListener | None = None
        self._drops_logged_at = self.liveness.clock()
        # Used only once a driver is submitted or launched, where a bad value left the
        # driver RUNNING with no LaunchDriver sent: read now, so the start fails naming it.
        conf.get(MAX_FILES_SIZE)
        conf.get(ZOOKEEPER_MAX_FILES_SIZE)
        #: The timeout timer's period, and when it last issued a check (`_issue_timeout_check`).
        self._check_period = self.liveness.check_interval
        self._last_check_issued: float | None = None

    # -- lifecycle -----------------------------------------------------------------

    def on_start(self) -> None:
        self.url = self.rpc_env.address.to_spark_url()
        # Callers with an application's credential are limited to it (cluster.senders,
        # _on_get_cluster_state): the Master is the one env that may let them in.
        self.rpc_env.accept_app_credentials()
        ref = self.self_ref
        liveness = self.liveness

        def check() -> None:
            self._issue_timeout_check()
            ref.send(pb.CheckWorkerTimeouts())

        # The same check reaps idle unregistered peers: often enough for their timeout too.
        interval = min(liveness.check_interval, max(0.05, self.idle_peers.timeout / 2))
        self._check_period = interval
        self._ticker = Ticker("master-timeouts", interval, check)
        self._ticker.start()
        self._listen_for_datagrams()
        if self.recovery_mode == "ZOOKEEPER":
            self.status = MS.MASTER_STATUS_STANDBY
            self._start_election()
            log.info("master %s is STANDBY until elected leader", self.url)
        else:
            self._lead()

    def _issue_timeout_check(self) -> None:
        """Note a timeout check about to be queued (the timer's thread): judged as of now,
        however long the inbox makes it wait.

        A timer that fires later than twice its period was frozen with the whole
        process (SIGSTOP, swapped out, a long pause): the heartbeats of that time
        still wait in the kernel's buffers, read only after this check would run, so
        the check is judged as of when it was due. The next, on time, judges the rest.
        """
        liveness = self.liveness
        now = liveness.clock()
        last, self._last_check_issued = self._last_check_issued, now
        period = self._check_period
        if last is not None and now - last > 2 * period:
            log.warning(
                "the master's timer fired %.1fs late (the process was stopped or starved); "
                "its worker timeout check is judged as of when it was due",
                now - last - period,
            )
            liveness.issue(last + period)
        else:
            liveness.issue()

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        if self._listener is not None:
            self._listener.stop()
        if self.election is not None:
            self.election.stop()  # leaves the election: a standby takes over at once

    def receives_inline(self, message: Message) -> bool:
        """A registered worker's heartbeat runs on the I/O thread: a lookup and a time.

        At 2,000 heartbeats a second the hop to the pool cost more than the handler.
        Anything else, and a heartbeat of a worker not registered here (it is told to
        register again, and logged), goes through the pool as before.
        """
        return type(message) is pb.WorkerHeartbeat and message.worker_id in self.workers

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        self._heard_from_peer()
        if type(message) is not pb.WorkerHeartbeat:
            self._state_cache = None  # anything but a heartbeat may change what it shows
        handler = self._notices.get(type(message))
        if handler is None:
            log.warning("master ignores unexpected %s", message.DESCRIPTOR.full_name)
            return
        if self.status == _STANDBY and not isinstance(message, _STANDBY_NOTICES):
            log.debug("standby master ignores %s", message.DESCRIPTOR.full_name)
            return
        handler(message, sender)

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        self._heard_from_peer()
        if type(message) is not api.GetClusterStateRequest:
            self._state_cache = None
        if self.status == MS.MASTER_STATUS_STANDBY and not isinstance(message, _STANDBY_ASKS):
            reason = self._standby_reason()
            if isinstance(message, pb.RegisterWorkerRequest):
                context.reply(
                    pb.RegisterWorkerResponse(
                        accepted=False, reason=reason, master_in_standby=True, master_url=self.url
                    )
                )
            else:
                context.send_failure(StandbyMasterError(reason))
            return
        handler = self._handlers.get(type(message))
        if handler is None:
            context.send_failure(
                ValueError(f"the Master does not answer {message.DESCRIPTOR.full_name}")
            )
            return
        try:
            handler(message, context)
        except (ValueError, LookupError) as exc:  # the caller's mistake: tell it why
            context.send_failure(exc)

    def _listen_for_datagrams(self) -> None:
        """Bind the heartbeat socket beside the RPC port (same address, same number if free)."""
        if self.datagrams is None:
            return
        address = self.rpc_env.address
        try:
            self._listener = DatagramListener(self.datagrams, address.host, address.port)
        except OSError as exc:
            log.warning(
                "no UDP heartbeats (workers heartbeat on their streams): cannot bind a UDP "
                "socket on %s: %s",
                address.host,
                exc,
            )
            self.datagrams = None
            return
        self._listener.start()
        log.info(
            "heartbeat datagrams on udp %s:%d (spark.sparkctl.worker.udpHeartbeats)",
            self._listener.host,
            self._listener.port,
        )

    def _check_heartbeat_datagrams(self, now: float, as_of: float | None = None) -> None:
        """Move UDP workers unheard `as_of` (a check's issue time, else `now`) to their
        streams; tell DEAD ones to register again."""
        table = self.datagrams
        if table is None:
            return
        liveness = self.liveness
        judged = now if as_of is None else as_of
        for entry, reason in table.unheard(judged, liveness.heartbeat_interval, liveness.timeout):
            worker = entry.worker
            log.warning(
                "worker %s heartbeats on its stream from now on: %s", worker.worker_id, reason
            )
            self._send(
                worker.ref,
                pb.UseStreamHeartbeats(master_url=self.url, master_epoch=self.epoch, reason=reason),
            )
        for entry in table.heard_again():
            log.info(
                "worker %s heartbeats by datagram again: its probe got through",
                entry.worker.worker_id,
            )
            self._send(
                entry.worker.ref,
                pb.UseDatagramHeartbeats(master_url=self.url, master_epoch=self.epoch),
            )
        for entry in table.heard_from_dead():
            log.info(
                "DEAD worker %s still heartbeats; asking it to reconnect", entry.worker.worker_id
            )
            self._send(
                entry.worker.ref, pb.ReconnectWorker(master_url=self.url, master_epoch=self.epoch)
            )
        if now - self._drops_logged_at >= _DROP_LOG_INTERVAL_S:
            self._drops_logged_at = now
            drops = table.take_drops()
            if drops:
                counts = ", ".join(f"{n} {why}" for why, n in sorted(drops.items()))
                log.warning("dropped bad heartbeat datagrams in the last minute: %s", counts)

    def on_connected(self, address: RpcAddress) -> None:
        self.idle_peers.heard(address, self.liveness.clock())

    def _heard_from_peer(self) -> None:
        """A message passed the sender policy: its peer is not idle (see `master_peers`)."""
        origin = current_origin()
        if origin is not None and not origin.local:
            self.idle_peers.heard(origin.address, self.liveness.clock())

    def _reap_idle_peers(self, now: float) -> None:
        """Close connections that authenticated but never took a role, and went quiet."""

        # A worker is keyed by the address it claims; its connection's is its ref's.
        workers = {w.ref.address for w in self.workers.values() if w.alive and w.ref is not None}

        def has_role(address: RpcAddress) -> bool:
            return (
                address in self.worker_by_address
                or address in self.app_by_address
                or address in workers
            )

        for address in self.idle_peers.take_idle(now, has_role):
            timeout = self.idle_peers.timeout
            reason = (
                f"no worker or application registered over it and nothing sent for {timeout:g}s "
                "(spark.sparkctl.master.unregisteredPeerTimeout)"
            )
            if self.rpc_env.disconnect(address, reason):
                log.info("closed the idle connection of %s: %s", address, reason)

    def on_disconnected(self, address: RpcAddress) -> None:
        self.idle_peers.forget(address)
        self._state_cache = None
        worker_id = self.worker_by_address.get(address)
        if worker_id is not None:
            worker = self.workers[worker_id]
            if worker.alive:
                # Suspected at once: no new work goes there; DEAD unless it comes
                # back within spark.sparkctl.worker.disconnectGrace.
                log.info("worker %s disconnected; suspected until heard from again", worker_id)
                worker.lost_connection(self.liveness.clock())
        app_id = self.app_by_address.get(address)
        if app_id is not None and app_id in self.apps:
            self._finish_app(
                self.apps[app_id], AS.APPLICATION_STATE_FINISHED, "driver disconnected", False
            )

    # -- workers -------------------------------------------------------------------

    def _on_register_worker(self, msg: pb.RegisterWorkerRequest, context: RpcCallContext) -> None:
        problem = _check_worker_request(msg)
        if problem:
            context.reply(pb.RegisterWorkerResponse(accepted=False, reason=problem))
            return
        existing = self.workers.get(msg.worker_id)
        if existing is not None and existing.incarnation > msg.incarnation:
            reason = (
                f"stale incarnation {msg.incarnation} of worker {msg.worker_id}: a newer "
                f"incarnation ({existing.incarnation}) is registered"
            )
            log.warning("refused registration: %s", reason)
            context.reply(
                pb.RegisterWorkerResponse(accepted=False, reason=reason, master_url=self.url)
            )
            return
        address = RpcAddress(msg.host, msg.port)
        other_id = self.worker_by_address.get(address)
        if other_id is not None and other_id != msg.worker_id:
            # A new worker process on the same host and port: the old one is gone.
            self._remove_worker(self.workers[other_id], f"replaced by {msg.worker_id} at {address}")
        ref = context.sender
        if ref is None:
            log.warning("worker %s registered from outside an endpoint: no pushes", msg.worker_id)
        worker = WorkerInfo(
            worker_id=msg.worker_id,
            host=msg.host,
            port=msg.port,
            cores=msg.cores,
            memory_mb=msg.memory_mb,
            webui_address=msg.webui_address,
            incarnation=msg.incarnation,
            ref=ref,
            last_heartbeat=self.liveness.clock(),
            peer_id=_peer_id(),
            resources=resources_from(msg.resources),
        )
        enrollment, udp_port = None, 0
        if msg.udp_heartbeats and self.datagrams is not None and self._listener is not None:
            enrollment, udp_port = self.datagrams.enroll(worker), self._listener.port
        elif self.datagrams is not None:
            self.datagrams.withdraw(worker.worker_id)
        previous = existing.executors if existing is not None else {}
        previous_drivers = existing.drivers if existing is not None else {}
        if existing is not None:
            self.worker_by_address.pop(existing.address, None)
        self.workers[worker.worker_id] = worker
        self.worker_by_address[address] = worker.worker_id
        self._store(
            "worker",
            worker.worker_id,
            pb.PersistedWorker(
                worker_id=worker.worker_id,
                host=worker.host,
                port=worker.port,
                cores=worker.cores,
                memory_mb=worker.memory_mb,
                webui_address=worker.webui_address,
                incarnation=worker.incarnation,
                resources=msg.resources,
            ),
        )
        context.reply(
            pb.RegisterWorkerResponse(
                accepted=True,
                master_url=self.url,
                master_webui_url=self.webui_url,
                master_epoch=self.epoch,
                heartbeat_interval_ms=round(self.liveness.heartbeat_interval * 1000),
                # (A Master driven without an env, in unit tests, has none.)
                master_env_id=self._rpc_env.env_id if self._rpc_env is not None else "",
                heartbeat_udp_port=udp_port if enrollment is not None else 0,
                heartbeat_slot=enrollment.slot if enrollment is not None else 0,
                heartbeat_key=enrollment.key if enrollment is not None else b"",
            )
        )
        log.info(
            "registered worker %s at %s with %d cores, %d MiB",
            worker.worker_id,
            address,
            worker.cores,
            worker.memory_mb,
        )
        self._reconcile_worker(worker, msg, previous, previous_drivers)
        self._maybe_finish_recovery()
        self._schedule()

    def _reconcile_worker(
        self,
        worker: WorkerInfo,
        msg: pb.RegisterWorkerRequest,
        previous: dict[tuple[str, int], ExecutorInfo],
        previous_drivers: dict[str, DriverInfo],
    ) -> None:
        """Match what a (re-)registering worker runs against what we believed."""
        reported: set[tuple[str, int]] = set()
        for desc in msg.executors:
            key = (desc.app_id, desc.executor_id)
            reported.add(key)
            app = self.apps.get(desc.app_id)
            executor = app.executors.get(desc.executor_id) if app is not None else None
            if app is not None and executor is None and self.status == MS.MASTER_STATUS_RECOVERING:
                # A recovered application's executors are known only from workers.
                executor = ExecutorInfo(
                    desc.app_id,
                    desc.executor_id,
                    worker.worker_id,
                    desc.cores,
                    desc.memory_mb,
                    resources=resources_from(desc.resources),
                    profile_id=desc.resource_profile_id,
                )
                app.executors[desc.executor_id] = executor
                app.next_executor_id = max(app.next_executor_id, desc.executor_id + 1)
            if app is None or app.finished or executor is None:
                # We no longer count on it (its app ended or it was reported LOST).
                self._send(
                    worker.ref,
                    pb.KillExecutor(
                        master_url=self.url,
                        app_id=desc.app_id,
                        executor_id=desc.executor_id,
                        master_epoch=self.epoch,
                    ),
                )
                continue
            old_worker = self.workers.get(executor.worker_id)
            if old_worker is not None and old_worker is not worker:
                old_worker.executors.pop(key, None)
            executor.worker_id = worker.worker_id
            executor.state = desc.state or ES.EXECUTOR_STATE_RUNNING
            worker.executors[key] = executor
            app.ran_on(worker.worker_id)
            if (
                executor.state == ES.EXECUTOR_STATE_RUNNING
                and app.state == AS.APPLICATION_STATE_WAITING
            ):
                app.state = AS.APPLICATION_STATE_RUNNING  # a re-claimed app with a live executor
        for key, executor in previous.items():
            if key not in reported:
                self._executor_lost(executor, f"worker {worker.worker_id} re-registered without it")
        reported_drivers: set[str] = set()
        for runtime in msg.drivers:
            reported_drivers.add(runtime.driver_id)
            driver = self.drivers.get(runtime.driver_id)
            placed_elsewhere = (
                driver is not None
                and driver.worker_id not in ("", worker.worker_id)
                and driver.worker_id in self.workers
                and self.workers[driver.worker_id].alive
            )
            # A copy of an earlier launch (0: a worker that does not say) is not the driver.
            stale = driver is not None and runtime.attempt not in (0, driver.attempt)
            if driver is None or placed_elsewhere or stale:
                # Unknown, or relaunched on another worker meanwhile: one copy only.
                self._send(
                    worker.ref, pb.KillDriver(driver_id=runtime.driver_id, master_epoch=self.epoch)
                )
                continue
            driver.worker_id = worker.worker_id
            driver.state = DS.DRIVER_STATE_RUNNING
            driver.backing_off = False  # it never died: cancel a pending relaunch
            if runtime.driver_id in self.waiting_drivers:
                self.waiting_drivers.remove(runtime.driver_id)
            worker.drivers[driver.driver_id] = driver
            if driver.kill_requested:  # asked while the worker could not be told
                kill = pb.KillDriver(driver_id=driver.driver_id, master_epoch=self.epoch)
                self._send(worker.ref, kill)
        for driver_id, driver in previous_drivers.items():
            if driver_id not in reported_drivers and not driver.finished:
                self._driver_lost(driver, f"worker {worker.worker_id} re-registered without it")

    def _on_heartbeat(self, msg: pb.WorkerHeartbeat, sender: RpcEndpointRef | None) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None and worker.alive and worker.incarnation == msg.incarnation:
            # A worker on datagrams may still send this (sent before it was told): its
            # datagram record stays; if it went to its stream for good, the unheard
            # rule parks it (`_check_heartbeat_datagrams`).
            worker.heard_from(self.liveness.clock())
            return
        if worker is not None and worker.incarnation > msg.incarnation:
            log.debug("ignoring a heartbeat of a stale incarnation of %s", msg.worker_id)
            return
        # Unknown, DEAD or recovered-but-not-yet-registered: ask it to register again.
        log.info("worker %s is not registered (or was DEAD); asking it to reconnect", msg.worker_id)
        self._send(sender, pb.ReconnectWorker(master_url=self.url, master_epoch=self.epoch))

    def _on_worker_stopping(self, msg: pb.WorkerStopping, _s: RpcEndpointRef | None) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None and worker.alive and worker.incarnation == msg.incarnation:
            self._remove_worker(worker, msg.reason or "worker stopped")

    def _on_check_worker_timeouts(
        self, _msg: pb.CheckWorkerTimeouts, _s: RpcEndpointRef | None
    ) -> None:
        liveness = self.liveness
        issued = liveness.take_issue_time()
        now = liveness.clock()
        if now - issued > liveness.timeout / 4:
            log.warning(
                "master is %.1fs behind its inbox; worker timeouts are judged as of "
                "when the check was issued",
                now - issued,
            )
        for verdict in liveness.verdicts(list(self.workers.values()), issued):
            if verdict.worker.alive:  # an earlier removal may have replaced it meanwhile
                self._remove_worker(verdict.worker, verdict.reason)
        for worker in liveness.forgettable(list(self.workers.values()), now):
            del self.workers[worker.worker_id]  # the UI shows the dead for a while, not forever
            if self.datagrams is not None:
                self.datagrams.withdraw(worker.worker_id)
        # As of the issue time too: after a freeze the datagrams still wait in the kernel.
        self._check_heartbeat_datagrams(now, issued)
        self._reap_idle_peers(now)

    def _remove_worker(self, worker: WorkerInfo, reason: str) -> None:
        """Declare `worker` DEAD: its executors are LOST, its drivers relaunched or failed."""
        log.warning("worker %s is DEAD: %s", worker.worker_id, reason)
        worker.state = WS.WORKER_STATE_DEAD
        worker.suspected = False
        if self.worker_by_address.get(worker.address) == worker.worker_id:
            del self.worker_by_address[worker.address]
        for executor in list(worker.executors.values()):
            self._executor_lost(executor, f"worker {worker.worker_id} lost: {reason}")
        worker.executors.clear()
        for driver in list(worker.drivers.values()):
            self._driver_lost(driver, f"worker {worker.worker_id} lost: {reason}")
        worker.drivers.clear()
        self._unstore("worker", worker.worker_id)
        self._schedule()

    # -- executors -----------------------------------------------------------------

    def _on_executor_state_changed(
        self, msg: pb.ExecutorStateChanged, sender: RpcEndpointRef | None
    ) -> None:
        app = self.apps.get(msg.app_id)
        executor = app.executors.get(msg.executor_id) if app is not None else None
        if app is None or executor is None:
            if msg.state in (ES.EXECUTOR_STATE_LAUNCHING, ES.EXECUTOR_STATE_RUNNING):
                self._send(
                    sender,
                    pb.KillExecutor(
                        master_url=self.url,
                        app_id=msg.app_id,
                        executor_id=msg.executor_id,
                        master_epoch=self.epoch,
                    ),
                )
            return
        executor.state = msg.state
        update = pb.ExecutorUpdated(
            executor_id=msg.executor_id, state=msg.state, message=msg.message
        )
        if msg.HasField("exit_status"):
            update.exit_status = msg.exit_status
        self._send(app.driver_ref, update)
        if msg.state == ES.EXECUTOR_STATE_RUNNING:
            app.retry_count = 0
            return
        if msg.state not in FINISHED_EXECUTOR_STATES:
            return
        del app.executors[msg.executor_id]
        worker = self.workers.get(executor.worker_id)
        if worker is not None:
            worker.executors.pop(executor.key, None)
        normal = msg.HasField("exit_status") and msg.exit_status == 0
        if not normal:
            app.retry_count += 1
            limit = self.max_executor_retries
            running = any(e.state == ES.EXECUTOR_STATE_RUNNING for e in app.executors.values())
            if limit is not None and 0 <= limit <= app.retry_count and not running:
                detail = msg.message or pb.ExecutorState.Name(msg.state)
                reason = (
                    f"application {app.app_id} failed: {app.retry_count} executors failed in a row "
                    f"with none running (spark.deploy.maxExecutorRetries={limit}); last: {detail}"
                )
                self._finish_app(app, AS.APPLICATION_STATE_FAILED, reason, True)
                return
        self._schedule()

    def _on_request_executors(
        self, msg: pb.RequestExecutorsRequest, context: RpcCallContext
    ) -> None:
        app = self._active_app(msg.app_id)
        if msg.requested_total < 0:
            raise ValueError(f"requested_total must be >= 0, not {msg.requested_total}")
        if any(total < 0 for total in msg.profile_totals.values()):
            raise ValueError("profile_totals must be >= 0")
        app.executor_limit = msg.requested_total
        for profile in msg.profiles:
            sizes = (profile.cores, profile.memory_mb, profile.python_worker_limit_mb)
            if profile.id <= 0 or min(sizes) < 0:
                raise ValueError(f"bad ExecutorProfile {profile.id}: id > 0, sizes >= 0")
            if any(amount < 0 for amount in profile.resources.values()):
                raise ValueError(f"ExecutorProfile {profile.id} asks negative resources")
            app.profiles[profile.id] = profile
        unknown = [p for p in msg.profile_totals if p not in app.profiles]
        if unknown:
            raise ValueError(f"profile_totals names unknown profile(s) {unknown}")
        app.profile_limits.update(msg.profile_totals)
        log.info(
            "application %s asks for %d executors in total%s",
            app.app_id,
            msg.requested_total,
            "".join(f", {n} of profile {p}" for p, n in sorted(msg.profile_totals.items())),
        )
        context.reply(pb.RequestExecutorsResponse(acknowledged=True))
        self._schedule()

    def _on_kill_executors(self, msg: pb.KillExecutorsRequest, context: RpcCallContext) -> None:
        app = self._active_app(msg.app_id)
        unknown = [i for i in msg.executor_ids if i not in app.executors]
        for executor_id in msg.executor_ids:
            executor = app.executors.pop(executor_id, None)
            if executor is None:
                continue
            worker = self.workers.get(executor.worker_id)
            if worker is not None:
                worker.executors.pop(executor.key, None)
                self._send(
                    worker.ref,
                    pb.KillExecutor(
                        master_url=self.url,
                        app_id=app.app_id,
                        executor_id=executor_id,
                        master_epoch=self.epoch,
                    ),
                )
        if unknown:
            log.info("application %s asked to kill unknown executors %s", app.app_id, unknown)
        context.reply(pb.KillExecutorsResponse(acknowledged=not unknown))
        # Their cores and memory are free now (as in Spark, which schedules here): an
        # executor of another profile may be waiting for them, and the killed ones'
        # exit reports find no executor left to schedule after.
        if len(unknown) < len(msg.executor_ids):
            self._schedule()

    # -- applications --------------------------------------------------------------

    def _on_register_application(
        self, msg: pb.RegisterApplicationRequest, context: RpcCallContext
    ) -> None:
        desc = pb.ApplicationDescription()
        desc.CopyFrom(msg.description)
        check_app_description(desc, self.default_cores or 0)  # ValueError: INVALID_ARGUMENT
        if desc.max_cores == 0 and self.default_cores:
            desc.max_cores = self.default_cores  # spark.deploy.defaultCores
        ref = context.sender
        if ref is None and msg.driver_endpoint:
            try:
                ref = self.rpc_env.endpoint_ref(
                    context.sender_address, msg.driver_endpoint, timeout=5.0
                )
            except RpcError as exc:
                log.warning("cannot reach driver endpoint %s: %s", msg.driver_endpoint, exc)
        recovered = self.apps.get(msg.app_id) if msg.app_id else None
        if recovered is not None and recovered.state == AS.APPLICATION_STATE_UNKNOWN:
            app = recovered
            app.driver_ref = ref
            app.driver_address = context.sender_address
            app.driver_peer_id = _peer_id()
            app.state = (
                AS.APPLICATION_STATE_RUNNING if app.executors else AS.APPLICATION_STATE_WAITING
            )
        else:
            app = AppInfo(
                app_id=self.ids.app_id(),
                description=desc,
                driver_ref=ref,
                driver_address=context.sender_address,
                driver_peer_id=_peer_id(),
            )
            if desc.HasField("initial_executor_limit"):
                app.executor_limit = desc.initial_executor_limit
            self.apps[app.app_id] = app
        # The admin's claim (registering takes the secret): the application's credential
        # then reaches this driver too, unless another live application has it already.
        if msg.driver_id in self.drivers and not any(
            a.driver_id == msg.driver_id for a in self.apps.values() if a is not app
        ):
            app.driver_id = msg.driver_id
        self.app_by_address[context.sender_address] = app.app_id
        self._store(
            "app",
            app.app_id,
            pb.PersistedApplication(
                app_id=app.app_id,
                description=app.description,
                start_time_ms=app.start_time_ms,
                driver_endpoint=msg.driver_endpoint,
                # Where a newly elected leader tells the driver (0: a client-mode env).
                driver_host=context.sender_address.host,
                driver_port=context.sender_address.port,
            ),
        )
        log.info("registered application %s (%r)", app.app_id, desc.name)  # a name can forge lines
        context.reply(
            pb.RegisterApplicationResponse(
                app_id=app.app_id,
                master_url=self.url,
                master_epoch=self.epoch,
                app_credential=self.app_credential(app.app_id),
            )
        )
        self._maybe_finish_recovery()
        self._schedule()

    def _on_unregister_application(
        self, msg: pb.UnregisterApplication, _sender: RpcEndpointRef | None
    ) -> None:
        app = self.apps.get(msg.app_id)
        if app is not None:
            self._finish_app(
                app, AS.APPLICATION_STATE_FINISHED, "unregistered by its driver", False
            )

    def _on_unregister_ask(self, msg: pb.UnregisterApplication, context: RpcCallContext) -> None:
        self._on_unregister_application(msg, context.sender)
        context.reply(empty_pb2.Empty())

    def _on_kill_application(
        self, msg: api.KillApplicationRequest, context: RpcCallContext
    ) -> None:
        app = self.apps.get(msg.app_id)
        if app is None:
            if any(a.app_id == msg.app_id for a in self.completed_apps):
                context.reply(
                    api.KillApplicationResponse(killed=False, message=f"{msg.app_id} already ended")
                )
                return
            raise LookupError(f"no application {msg.app_id!r}")
        self._finish_app(app, AS.APPLICATION_STATE_KILLED, "killed by request", True)
        context.reply(api.KillApplicationResponse(killed=True, message=f"killed {msg.app_id}"))

    # -- recovery ------------------------------------------------------------------

    def _maybe_finish_recovery(self) -> None:
        if self.status != MS.MASTER_STATUS_RECOVERING:
            return
        waiting_workers = any(w.state == WS.WORKER_STATE_UNKNOWN for w in self.workers.values())
        waiting_apps = any(a.state == AS.APPLICATION_STATE_UNKNOWN for a in self.apps.values())
        if not waiting_workers and not waiting_apps:
            self._on_complete_recovery(pb.CompleteRecovery(), None)

    def _on_complete_recovery(self, _msg: pb.CompleteRecovery, _s: RpcEndpointRef | None) -> None:
        if self.status != MS.MASTER_STATUS_RECOVERING:
            return
        self.status = MS.MASTER_STATUS_COMPLETING_RECOVERY
        for worker in list(self.workers.values()):
            if worker.state == WS.WORKER_STATE_UNKNOWN:
                self._remove_worker(worker, "did not re-register after master recovery")
                del self.workers[worker.worker_id]
        for app in list(self.apps.values()):
            if app.state == AS.APPLICATION_STATE_UNKNOWN:
                self._finish_app(
                    app,
                    AS.APPLICATION_STATE_FINISHED,
                    "driver did not re-register after recovery",
                    False,
                )
        for driver in list(self.drivers.values()):
            if not driver.worker_id and driver.state == DS.DRIVER_STATE_RUNNING:
                self._driver_lost(driver, "not found on any worker after master recovery")
        self.status = MS.MASTER_STATUS_ALIVE
        log.info("master %s completed recovery and is ALIVE", self.url)
        self._schedule()

    # -- queries -------------------------------------------------------------------

    def _on_get_cluster_state(
        self, _msg: api.GetClusterStateRequest, context: RpcCallContext
    ) -> None:
        # Rebuilt only after a change, or once a second for the heartbeat times: at
        # 2,000 workers a build costs ~7 ms of the Master's one thread, and a /json
        # or status poller must not take that from heartbeats and registrations.
        now = self.liveness.clock()
        if self._state_cache is None or now - self._state_cache_at > _STATE_CACHE_S:
            self._state_cache = master_views.cluster_state(self)
            self._state_cache_at = now
        origin = current_origin()
        scope = origin.app_id if origin is not None else ""
        if scope:  # a caller with an application's credential sees that application only
            context.reply(master_views.scoped_state(self._state_cache, scope, self))
            return
        context.reply(self._state_cache)


def _peer_id() -> str:
    """The env id of the connection the message being handled came over."""
    origin = current_origin()
    return origin.peer_id if origin is not None else ""


def _check_worker_request(msg: pb.RegisterWorkerRequest) -> str:
    # The id names the worker's recovery record file and appears in pages and paths.
    if not _WORKER_ID.match(msg.worker_id):
        return f"bad worker_id {msg.worker_id[:80]!r}: letters, digits and . _ : % - only"
    if not msg.host or not 0 < msg.port < 65536:
        return f"bad worker address {msg.host!r}:{msg.port}"
    for resource in msg.resources:
        if not resource.name or len(set(resource.addresses)) != len(resource.addresses):
            return f"bad custom resource {resource.name[:80]!r}: a name and distinct addresses"
    return worker_resources_problem(msg.cores, msg.memory_mb)
