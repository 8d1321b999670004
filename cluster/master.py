"""The Master endpoint ("Master"): workers, applications, executors and drivers.

This module is the endpoint itself: its lifecycle (timers, the heartbeat
socket, election or leading at once), the dispatch of each message to its
handler (what a standby still answers), connections (idle peers, a worker or
driver that disconnects), the periodic worker-timeout check and the cluster
state queries. The handlers live in mixins along the Master's seams, lowest
first: `master_base` (records, placement, launches), `master_drivers`,
`master_leadership` (standby, election, revocation), `master_heartbeats`
(stream and datagram heartbeats), `master_workers` (registration, removal,
the end of a recovery) and `master_apps` (applications and executors).
Pushes to workers and drivers are one-way sends. Everything runs on the
endpoint's own thread: timers only post messages here (`_timers`), and the
handlers never block on an ask. It never starts processes and never
unpickles anything.
"""

from __future__ import annotations

import logging
import pathlib
from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from cluster import master_views
from cluster._timers import SYSTEM_CLOCK, Clock, Ticker
from cluster.master_apps import MasterApps
from cluster.master_base import StandbyMasterError
from cluster.master_peers import IdlePeers
from cluster.senders import MASTER_SENDERS
from cluster.settings import MAX_FILES_SIZE, ZOOKEEPER_MAX_FILES_SIZE
from rpcenv import Conf, RpcAddress, RpcCallContext, RpcEndpointRef, current_origin
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = ["ENDPOINT_NAME", "Master"]

log = logging.getLogger(__name__)

ENDPOINT_NAME = "Master"

#: What a standby Master still answers or handles (everything else is refused).
_STANDBY_ASKS = (api.GetClusterStateRequest,)
_STANDBY_NOTICES = (pb.ElectedLeader, pb.RevokedLeadership, pb.CheckWorkerTimeouts)

AS = pb.ApplicationState
MS = pb.MasterStatus
_STANDBY = int(pb.MASTER_STATUS_STANDBY)  # a plain int: read on every message
#: How stale a cached cluster state's heartbeat times may get while nothing else changes.
_STATE_CACHE_S = 1.0


class Master(MasterApps):
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
        # Used only once a driver is submitted or launched, where a bad value left the
        # driver RUNNING with no LaunchDriver sent: read now, so the start fails naming it.
        conf.get(MAX_FILES_SIZE)
        conf.get(ZOOKEEPER_MAX_FILES_SIZE)

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

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()
        self._stop_listening()
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
