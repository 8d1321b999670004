"""Worker membership at the Master: registration, reconciliation, removal.

A worker registers (again after any drop, or after a Master failover) saying
what it runs; the Master checks the request, takes the newest incarnation,
matches the executors and drivers reported against what it believed (killing
copies it no longer counts on, losing those missing) and enrolls the worker
for heartbeat datagrams. A DEAD or stopping worker's executors are LOST and
its drivers relaunched or failed. The end of a recovery belongs here too: it
forgets the recovered workers and applications that did not come back. A
mixin of the Master endpoint (single-threaded like it); it never blocks.
"""

from __future__ import annotations

import logging
import re

from cluster.master_base import origin_peer_id
from cluster.master_heartbeats import MasterHeartbeats
from cluster.master_state import DriverInfo, ExecutorInfo, WorkerInfo, resources_from
from cluster.request_limits import worker_resources_problem
from rpcenv import RpcAddress, RpcCallContext, RpcEndpointRef
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["MasterWorkers"]

log = logging.getLogger("cluster.master")

ES = pb.ExecutorState
AS = pb.ApplicationState
DS = pb.DriverState
WS = pb.WorkerState
MS = pb.MasterStatus
_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:%-]{0,199}$")


class MasterWorkers(MasterHeartbeats):
    """Worker registration and removal handlers of the Master endpoint."""

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
            peer_id=origin_peer_id(),
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
                self._kill_executor(worker.ref, desc.app_id, desc.executor_id)
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

    def _on_worker_stopping(self, msg: pb.WorkerStopping, _s: RpcEndpointRef | None) -> None:
        worker = self.workers.get(msg.worker_id)
        if worker is not None and worker.alive and worker.incarnation == msg.incarnation:
            self._remove_worker(worker, msg.reason or "worker stopped")

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

    # -- the end of a recovery ------------------------------------------------------

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
