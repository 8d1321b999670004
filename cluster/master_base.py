"""The Master's state and the actions every Master handler shares.

`MasterBase` holds the records (`master_state`) and does what several message
handlers need: placing waiting drivers and executors (`_schedule`, through
`Placement`), launching them, ending an application, losing an executor, and
one-way pushes that never raise. The handlers themselves live in
`cluster.master` and its mixins (`master_drivers`, `master_workers`, ...).
Nothing here blocks or starts processes.
"""

from __future__ import annotations

import collections
import logging
import pathlib
import time
from collections.abc import Mapping

from google.protobuf.message import Message

from cluster import settings
from cluster._timers import SYSTEM_CLOCK, Clock, Ticker
from cluster.master_liveness import WorkerLiveness
from cluster.master_state import (
    AppInfo,
    AppStateValue,
    DriverInfo,
    ExecutorInfo,
    IdGenerator,
    WorkerInfo,
    resource_addresses,
)
from cluster.persistence import PersistenceError, persistence_from_conf
from cluster.placement import AppDemand, DriverDemand, Placement, WorkerResources
from cluster.request_limits import shown_id
from rpcenv import (
    Conf,
    RpcAddress,
    RpcEndpoint,
    RpcEndpointRef,
    RpcError,
    current_origin,
    derive_app_credential,
    resolve_secret,
)
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["MasterBase", "StandbyMasterError", "origin_peer_id"]

log = logging.getLogger("cluster.master")

ES = pb.ExecutorState
AS = pb.ApplicationState
DS = pb.DriverState
WS = pb.WorkerState
MS = pb.MasterStatus


def origin_peer_id() -> str:
    """The env id of the connection the message being handled came over ("" if local)."""
    origin = current_origin()
    return origin.peer_id if origin is not None else ""


class StandbyMasterError(RpcError):
    """A standby (not elected) Master refuses the request: ask the ALIVE one."""

    GRPC_STATUS = "UNAVAILABLE"


class MasterBase(RpcEndpoint):
    """The Master's records and shared actions (see `cluster.master.Master`).

    Args:
        conf: settings (`spark.worker.timeout`, `spark.deploy.*`).
        work_dir: where FILESYSTEM recovery keeps its records by default.
        webui_url: the Master web UI's URL, told to workers (may be empty).
        clock: monotonic seconds and one-shot timers, for every timeout and back-off
            the Master judges or sets (tests pass a `FakeClock` and drive
            `CheckWorkerTimeouts` and the timers without sleeping).
    """

    def __init__(
        self,
        conf: Conf,
        work_dir: pathlib.Path,
        webui_url: str = "",
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.conf = conf
        self.clock = clock
        # Only to derive applications' credentials (docs/security.md); never logged.
        self._secret = resolve_secret(conf)
        self.webui_url = webui_url or (conf.get(settings.MASTER_WEBUI_URL) or "")
        self.worker_timeout = conf.get(settings.WORKER_TIMEOUT)
        self.liveness = WorkerLiveness.from_conf(conf, self.worker_timeout, clock)
        self.max_executor_retries = conf.get(settings.MAX_EXECUTOR_RETRIES)
        # Cores of an application that does not set spark.cores.max (0 = all).
        self.default_cores = conf.get(settings.DEFAULT_CORES)
        self.placement = Placement(spread_out=conf.get(settings.SPREAD_OUT))
        self.recovery_mode = conf.get(settings.RECOVERY_MODE)
        self.persistence = persistence_from_conf(conf, work_dir)
        #: Where the Master keeps its own files (those submitted with drivers, ...).
        self.work_dir = work_dir
        # ZOOKEEPER: where recovered drivers' AppClients listen, told of a new leader.
        self.recovered_drivers: list[tuple[RpcAddress, str]] = []
        #: Why leadership was revoked ('' while not): the Master then stops for good.
        self.revoked = ""
        retained_apps = conf.get(settings.RETAINED_APPLICATIONS)
        retained_drivers = conf.get(settings.RETAINED_DRIVERS)
        self.ids = IdGenerator()
        self.epoch = time.time_ns() // 1_000_000
        self.status: pb.MasterStatus.ValueType = MS.MASTER_STATUS_ALIVE
        self.url = ""
        self.workers: dict[str, WorkerInfo] = {}
        self.worker_by_address: dict[RpcAddress, str] = {}
        # Active applications and drivers, oldest first (FIFO placement order).
        self.apps: dict[str, AppInfo] = {}
        self.app_by_address: dict[RpcAddress, str] = {}
        self.completed_apps: collections.deque[AppInfo] = collections.deque(maxlen=retained_apps)
        self.drivers: dict[str, DriverInfo] = {}
        self.waiting_drivers: list[str] = []
        self.completed_drivers: collections.deque[DriverInfo] = collections.deque(
            maxlen=retained_drivers
        )
        self._ticker: Ticker | None = None

    def app_credential(self, app_id: str) -> str:
        """The credential of application `app_id` ("" without a shared secret)."""
        return derive_app_credential(self._secret, app_id) if self._secret is not None else ""

    def app_owns_driver(self, app_id: str, driver_id: str) -> bool:
        """Whether cluster-mode driver `driver_id` registered application `app_id`."""
        app = self.apps.get(app_id)
        if app is None:
            app = next((a for a in self.completed_apps if a.app_id == app_id), None)
        return app is not None and bool(driver_id) and app.driver_id == driver_id

    def _executor_lost(self, executor: ExecutorInfo, reason: str) -> None:
        worker = self.workers.get(executor.worker_id)
        if worker is not None:
            worker.executors.pop(executor.key, None)
        app = self.apps.get(executor.app_id)
        if app is None or app.executors.pop(executor.executor_id, None) is None:
            return
        executor.state = ES.EXECUTOR_STATE_LOST
        self._send(
            app.driver_ref,
            pb.ExecutorUpdated(
                executor_id=executor.executor_id,
                state=ES.EXECUTOR_STATE_LOST,
                message=reason,
                worker_lost=True,
            ),
        )

    def _finish_app(
        self, app: AppInfo, state: AppStateValue, message: str, tell_driver: bool
    ) -> None:
        if app.finished:
            return
        log.info("application %s %s: %s", app.app_id, AS.Name(state), message)
        app.state = state
        app.message = message
        app.end_time_ms = int(time.time() * 1000)
        self.apps.pop(app.app_id, None)
        if (
            app.driver_address is not None
            and self.app_by_address.get(app.driver_address) == app.app_id
        ):
            del self.app_by_address[app.driver_address]
        self.completed_apps.append(app)
        for executor in app.executors.values():
            worker = self.workers.get(executor.worker_id)
            if worker is not None:
                worker.executors.pop(executor.key, None)
        # A finished app is shown as a summary: its executor records would keep
        # up to 200 apps x thousands of executors alive and in every cluster state.
        app.final_cores = app.cores_granted
        app.executors.clear()
        told = (
            self.workers.values()
            if app.worker_ids is None
            else (self.workers[w] for w in app.worker_ids if w in self.workers)
        )
        for worker in told:
            if worker.alive:
                self._send(
                    worker.ref, pb.ApplicationFinished(app_id=app.app_id, master_epoch=self.epoch)
                )
        if tell_driver:
            self._send(
                app.driver_ref,
                pb.ApplicationRemoved(app_id=app.app_id, message=message, state=state),
            )
        self._unstore("app", app.app_id)
        self._schedule()

    def _active_app(self, app_id: str) -> AppInfo:
        app = self.apps.get(app_id)
        if app is None:
            raise LookupError(f"no active application {shown_id(app_id)}")
        return app

    # -- placement -----------------------------------------------------------------

    def _schedule(self) -> None:
        """Place waiting drivers, then executors of waiting applications."""
        if self.status != MS.MASTER_STATUS_ALIVE:
            return
        waiting = [self.drivers[d] for d in self.waiting_drivers if d in self.drivers]
        apps = [
            a
            for a in self.apps.values()
            if not a.finished and a.state != AS.APPLICATION_STATE_UNKNOWN and _wants_more(a)
        ]
        if not waiting and not apps:
            return  # the common case (a registration, an exit): nothing to place, O(1)
        # Only workers with something free: a full cluster costs one pass, not a placement.
        usable = {
            w.worker_id: w
            for w in self.workers.values()
            if w.alive and not w.suspected and w.ref and w.cores_free > 0
        }
        if not usable:
            return
        resources = [
            WorkerResources(w.worker_id, w.cores_free, w.memory_free_mb, w.resources_free)
            for w in usable.values()
        ]
        demands = [
            DriverDemand(d.driver_id, d.description.cores, d.description.memory_mb) for d in waiting
        ]
        placed, resources = self.placement.place_drivers(demands, resources)
        for driver_id, worker_id in placed:
            self._launch_driver(self.drivers[driver_id], usable[worker_id])
        app_demands = [demand for a in apps for demand in _demands(a)]
        launched: collections.Counter[str] = collections.Counter()
        for assignment in self.placement.place_executors(app_demands, resources):
            self._launch_executor(
                self.apps[assignment.app_id],
                usable[assignment.worker_id],
                assignment.cores,
                assignment.memory_mb,
                assignment.resources,
                assignment.profile_id,
            )
            launched[assignment.app_id] += 1
        for app_id, count in launched.items():  # one line per app, not per executor
            log.info("launching %d executor(s) of application %s", count, app_id)

    def _launch_driver(self, driver: DriverInfo, worker: WorkerInfo) -> None:
        # The description (with its files' bytes) is built before any state changes: a
        # failure there must end the driver with its reason, not leave it RUNNING unlaunched.
        try:
            description = self._launch_description(driver)
        except Exception as exc:  # any cause ends this driver, never the Master
            log.exception("cannot build the launch of driver %s", driver.driver_id)
            self._driver_unlaunchable(driver, f"the Master could not prepare its launch: {exc!r}")
            return
        self.waiting_drivers.remove(driver.driver_id)
        driver.worker_id = worker.worker_id
        driver.state = DS.DRIVER_STATE_RUNNING
        driver.launched_at = self.clock()
        driver.attempt += 1
        worker.drivers[driver.driver_id] = driver
        self._persist_driver(driver)
        log.info("launching driver %s on worker %s", driver.driver_id, worker.worker_id)
        self._send(
            worker.ref,
            pb.LaunchDriver(
                driver_id=driver.driver_id,
                description=description,
                master_epoch=self.epoch,
                attempt=driver.attempt,
            ),
        )

    def _launch_description(self, driver: DriverInfo) -> pb.DriverDescription:
        """What a LaunchDriver carries: the description, with its files' bytes (MasterDrivers)."""
        return driver.description

    def _driver_unlaunchable(self, driver: DriverInfo, reason: str) -> None:
        """End a driver whose launch cannot be prepared: ERROR, with the reason.

        MasterDrivers also moves it to the completed drivers and releases its files.
        """
        driver.state = DS.DRIVER_STATE_ERROR
        driver.exception = reason
        if driver.driver_id in self.waiting_drivers:
            self.waiting_drivers.remove(driver.driver_id)

    def _launch_executor(
        self,
        app: AppInfo,
        worker: WorkerInfo,
        cores: int,
        memory_mb: int,
        resources: Mapping[str, tuple[str, ...]] | None = None,
        profile_id: int = 0,
    ) -> None:
        executor = ExecutorInfo(
            app.app_id,
            app.new_executor_id(),
            worker.worker_id,
            cores,
            memory_mb,
            resources=dict(resources or {}),
            profile_id=profile_id,
        )
        granted = resource_addresses(executor.resources)
        profile = app.profiles.get(profile_id) if profile_id else None
        app.executors[executor.executor_id] = executor
        worker.executors[executor.key] = executor
        app.ran_on(worker.worker_id)
        app.state = AS.APPLICATION_STATE_RUNNING
        log.debug(
            "launching executor %s/%d on worker %s (%d cores, %d MiB)",
            app.app_id,
            executor.executor_id,
            worker.worker_id,
            cores,
            memory_mb,
        )
        self._send(
            worker.ref,
            pb.LaunchExecutor(
                master_url=self.url,
                app_id=app.app_id,
                executor_id=executor.executor_id,
                app_description=app.description,
                cores=cores,
                memory_mb=memory_mb,
                master_epoch=self.epoch,
                app_credential=self.app_credential(app.app_id),
                resources=granted,
                resource_profile_id=profile_id,
                python_worker_limit_mb=profile.python_worker_limit_mb if profile else 0,
            ),
        )
        self._send(
            app.driver_ref,
            pb.ExecutorAdded(
                executor_id=executor.executor_id,
                worker_id=worker.worker_id,
                host_port=worker.address.host_port,
                cores=cores,
                memory_mb=memory_mb,
                resources=granted,
                resource_profile_id=profile_id,
            ),
        )

    def _persist_driver(self, driver: DriverInfo, strict: bool = False) -> None:
        """Record `driver` for recovery; `strict` raises PersistenceError instead of logging."""
        record = pb.PersistedDriver(
            driver_id=driver.driver_id,
            description=driver.description,
            submit_time_ms=driver.submit_time_ms,
            worker_id=driver.worker_id,
            state=driver.state,
            attempt=driver.attempt,
        )
        if strict:
            self.persistence.put("driver", driver.driver_id, record)
        else:
            self._store("driver", driver.driver_id, record)

    def _store(self, kind: str, key: str, record: Message) -> None:
        """Write a recovery record. A failed write (a full disk) is logged, never raised:
        the cluster runs on from memory; only a restarted Master would miss the record."""
        try:
            self.persistence.put(kind, key, record)
        except PersistenceError as exc:
            log.error("a restarted Master will not recover %s %s: %s", kind, key, exc)

    def _unstore(self, kind: str, key: str) -> None:
        """Delete a recovery record; a failure is logged, as in `_store`."""
        try:
            self.persistence.remove(kind, key)
        except PersistenceError as exc:
            log.error("a restarted Master may recover the ended %s %s: %s", kind, key, exc)

    def _kill_executor(self, ref: RpcEndpointRef | None, app_id: str, executor_id: int) -> None:
        """Tell a worker to kill an executor, stamped with this Master's url and epoch."""
        self._send(
            ref,
            pb.KillExecutor(
                master_url=self.url,
                app_id=app_id,
                executor_id=executor_id,
                master_epoch=self.epoch,
            ),
        )

    @staticmethod
    def _send(ref: RpcEndpointRef | None, message: Message) -> None:
        """One-way push that never raises: a vanished peer is handled by its timeout."""
        if ref is None:
            return
        try:
            ref.send(message)
        except RpcError as exc:
            log.warning("could not send %s to %s: %s", message.DESCRIPTOR.full_name, ref, exc)


def _wants_more(app: AppInfo) -> bool:
    """Whether `app` may be granted another executor or core (cheap: no worker looked at)."""
    min_cores = app.description.cores_per_executor or 1
    if app.cores_left < min_cores:
        return False
    if any(app.executors_of(p) < limit for p, limit in app.profile_limits.items()):
        return True
    return app.executor_limit is None or app.executors_of(0) < app.executor_limit


def _demands(app: AppInfo) -> list[AppDemand]:
    """What `app` waits for: executors of its default profile, then of each other one."""
    desc = app.description
    demands = [
        AppDemand(
            app_id=app.app_id,
            cores_left=app.cores_left,
            memory_per_executor_mb=desc.memory_per_executor_mb,
            cores_per_executor=desc.cores_per_executor,
            executors_running=app.executors_of(0),
            executor_limit=app.executor_limit,
            executor_resources=dict(desc.executor_resources),
        )
    ]
    for profile_id, limit in sorted(app.profile_limits.items()):
        profile = app.profiles.get(profile_id)
        if profile is None or app.executors_of(profile_id) >= limit:
            continue
        demands.append(
            AppDemand(
                app_id=app.app_id,
                cores_left=app.cores_left,
                memory_per_executor_mb=profile.memory_mb or desc.memory_per_executor_mb,
                # A profile's executors always have a size: one per worker cannot be told apart.
                cores_per_executor=profile.cores or desc.cores_per_executor or 1,
                executors_running=app.executors_of(profile_id),
                executor_limit=limit,
                executor_resources=dict(profile.resources),
                profile_id=profile_id,
            )
        )
    return demands
