"""The Master's handling of cluster-mode drivers.

Submission, status, kill, state changes reported by workers, loss with a
worker, and the back-off relaunch of supervised drivers. A mixin of the
Master endpoint (single-threaded like it); it never starts a process itself:
workers do, on LaunchDriver.
"""

from __future__ import annotations

import logging
import secrets
import threading

from cluster import master_views
from cluster.master_base import MasterBase
from cluster.master_state import DriverInfo, DriverStateValue
from cluster.persistence import FileSystemPersistence, PersistenceError
from cluster.request_limits import (
    check_driver_description,
    conf_resources,
    shown_id,
    unplaceable_reason,
)
from cluster.settings import MAX_FILES_SIZE, ZOOKEEPER_MAX_FILES_SIZE
from cluster.submitted_files import SubmittedFileStore
from rpcenv import RpcCallContext, RpcEndpointRef
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

__all__ = ["DEFAULT_DRIVER_CORES", "DEFAULT_DRIVER_MEMORY_MB", "MasterDrivers"]

log = logging.getLogger("cluster.master")

DS = pb.DriverState

#: Default resources of a driver that does not say (Spark's defaults).
DEFAULT_DRIVER_CORES = 1
DEFAULT_DRIVER_MEMORY_MB = 1024
#: Back-off of supervised driver relaunches: 1 s, 2 s, 4 s ... at most this.
MAX_RELAUNCH_BACKOFF_S = 60.0
#: How long a submission whose files were stored off-thread waits for the endpoint.
_RESUBMIT_TIMEOUT_S = 30.0
#: Conf key marking a resubmission whose files this Master stored (a one-time token).
_STORED_TOKEN_KEY = "spark.sparkctl.master.storedFilesToken"


class MasterDrivers(MasterBase):
    """Driver handlers of the Master endpoint."""

    def _on_submit_driver(self, msg: api.SubmitDriverRequest, context: RpcCallContext) -> None:
        # The RpcEnv hands each endpoint a message decoded for it alone: changed in place
        # (a copy of up to spark.sparkctl.submit.maxFilesSize of file bytes is not free).
        desc = msg.description
        check_driver_description(desc)  # ValueError: INVALID_ARGUMENT naming the field
        # An unset field takes the driver's conf, as Spark's REST submission does.
        resources = conf_resources(desc.conf)
        desc.cores = desc.cores or resources.get("spark.driver.cores", DEFAULT_DRIVER_CORES)
        desc.memory_mb = desc.memory_mb or resources.get(
            "spark.driver.memory", DEFAULT_DRIVER_MEMORY_MB
        )
        if desc.files:
            token = desc.conf.pop(_STORED_TOKEN_KEY, "")
            if token not in self._stored_tokens():  # not yet stored (by us, below)
                # The bytes go to the store, never into a recovery record.
                self._store_files_then_submit(desc, context)
                return
            self._stored_tokens().discard(token)
            # Kept by this driver from here on, or released below (this thread alone
            # releases, so nothing runs in between).
            self._submitted_files().stored(desc)
        driver = DriverInfo(driver_id=self.ids.driver_id(), description=desc)
        try:  # recorded first: a driver the Master could not recover is refused, not kept
            self._persist_driver(driver, strict=True)
        except PersistenceError as exc:
            if desc.files:  # refused: its stored files are nobody's
                kept = [d.description for d in self.drivers.values()]
                self._submitted_files().release(desc, kept)
            raise PersistenceError(
                f"the Master cannot record the driver for recovery, so it refuses it: {exc}"
            ) from None
        self.drivers[driver.driver_id] = driver
        self.waiting_drivers.append(driver.driver_id)
        log.info(
            "submitted driver %s (%s)", driver.driver_id, desc.app_resource or desc.command.argv
        )
        text = f"submitted {driver.driver_id}"
        sizes = master_views.alive_worker_sizes(self)
        too_big = unplaceable_reason(desc.cores, desc.memory_mb, sizes, "the driver")
        if too_big:  # within bounds, so a larger worker may still join: said, not refused
            log.warning("driver %s is %s", driver.driver_id, too_big)
            text = f"{text}; {too_big}"
        context.reply(api.SubmitDriverResponse(driver_id=driver.driver_id, message=text))
        self._schedule()

    def _stored_tokens(self) -> set[str]:
        """One-time tokens of resubmissions whose files this Master stored."""
        tokens: set[str] | None = getattr(self, "_file_tokens", None)
        if tokens is None:
            tokens = set()
            self._file_tokens = tokens
        return tokens

    def _store_files_then_submit(self, desc: pb.DriverDescription, context: RpcCallContext) -> None:
        """Check the files' names here; store their bytes off this thread, then submit again.

        Reading, hashing and writing up to spark.sparkctl.submit.maxFilesSize (64 MiB)
        would hold up heartbeats and registrations for a good part of a second (every
        read of a protobuf bytes field copies it). The second submission carries no
        bytes, and a token only this Master knows, so that it is not stored again.

        Raises:
            ValueError: a bad name, kind or alias, or a duplicate.
        """
        store = self._submitted_files()
        store.check(desc)
        ref = self.self_ref
        tokens = self._stored_tokens()

        def store_and_submit() -> None:
            try:
                try:
                    store.store(desc)
                except OSError as exc:
                    raise PersistenceError(
                        f"the Master cannot store the driver's submitted files: {exc}"
                    ) from None
                token = secrets.token_hex(16)
                tokens.add(token)
                desc.conf[_STORED_TOKEN_KEY] = token
                answer = ref.ask_sync(
                    api.SubmitDriverRequest(description=desc), _RESUBMIT_TIMEOUT_S
                )
                context.reply(answer)
            except Exception as exc:
                context.send_failure(exc)

        threading.Thread(target=store_and_submit, name="master-store-files", daemon=True).start()

    def _on_get_driver_status(
        self, msg: api.GetDriverStatusRequest, context: RpcCallContext
    ) -> None:
        driver = self._find_driver(msg.driver_id)
        context.reply(api.GetDriverStatusResponse(driver=master_views.driver_summary(self, driver)))

    def _on_kill_driver(self, msg: api.KillDriverRequest, context: RpcCallContext) -> None:
        driver = self._find_driver(msg.driver_id)
        if driver.finished:
            state = DS.Name(driver.state).removeprefix("DRIVER_STATE_")  # as `status` shows it
            text = f"{driver.driver_id} already ended ({state})"
            context.reply(api.KillDriverResponse(killed=False, message=text))
            return
        worker = self.workers.get(driver.worker_id) if driver.worker_id else None
        if worker is not None and driver.driver_id in worker.drivers:
            driver.description.supervise = False  # a killed driver is not relaunched
            driver.kill_requested = True  # the worker may be unreachable (e.g. recovering)
            self._send(
                worker.ref, pb.KillDriver(driver_id=driver.driver_id, master_epoch=self.epoch)
            )
            text = f"kill requested for {driver.driver_id}"
        else:
            self._finish_driver(driver, DS.DRIVER_STATE_KILLED, "killed before it ran")
            text = f"killed {driver.driver_id}"
        context.reply(api.KillDriverResponse(killed=True, message=text))

    def _on_driver_state_changed(
        self, msg: pb.DriverStateChanged, _s: RpcEndpointRef | None
    ) -> None:
        driver = self.drivers.get(msg.driver_id)
        if driver is None:
            log.info("state %s of unknown driver %s ignored", DS.Name(msg.state), msg.driver_id)
            return
        if msg.state == DS.DRIVER_STATE_RUNNING:
            driver.state = DS.DRIVER_STATE_RUNNING
            return
        if msg.state not in (
            DS.DRIVER_STATE_FINISHED,
            DS.DRIVER_STATE_FAILED,
            DS.DRIVER_STATE_KILLED,
            DS.DRIVER_STATE_ERROR,
        ):
            return
        worker = self.workers.get(driver.worker_id)
        if worker is not None:
            worker.drivers.pop(driver.driver_id, None)
        if msg.state == DS.DRIVER_STATE_FAILED and driver.description.supervise:
            self._relaunch_later(driver, msg.exception)
        else:
            self._finish_driver(driver, msg.state, msg.exception)
        self._schedule()

    def _driver_lost(self, driver: DriverInfo, reason: str) -> None:
        worker = self.workers.get(driver.worker_id)
        if worker is not None:
            worker.drivers.pop(driver.driver_id, None)
        if driver.description.supervise:
            self._relaunch_later(driver, reason)
        else:
            self._finish_driver(driver, DS.DRIVER_STATE_ERROR, reason)

    def _relaunch_later(self, driver: DriverInfo, reason: str) -> None:
        if driver.launched_at and self.clock() - driver.launched_at > MAX_RELAUNCH_BACKOFF_S:
            driver.relaunches = 0  # it ran for a good while: start the back-off over
        delay = min(MAX_RELAUNCH_BACKOFF_S, 2.0**driver.relaunches)
        driver.relaunches += 1
        driver.state = DS.DRIVER_STATE_RELAUNCHING
        driver.worker_id = ""
        driver.exception = reason
        driver.backing_off = True
        self._persist_driver(driver)
        log.info("relaunching supervised driver %s in %.0fs (%s)", driver.driver_id, delay, reason)
        ref = self.self_ref
        self.clock.later(
            delay, lambda: ref.send(pb.RelaunchDriver(driver_id=driver.driver_id)), "driver-backoff"
        )

    def _on_relaunch_driver(self, msg: pb.RelaunchDriver, _s: RpcEndpointRef | None) -> None:
        driver = self.drivers.get(msg.driver_id)
        if driver is None or not driver.backing_off:
            return
        driver.backing_off = False
        if driver.driver_id not in self.waiting_drivers:
            self.waiting_drivers.append(driver.driver_id)
        self._schedule()

    def _finish_driver(self, driver: DriverInfo, state: DriverStateValue, exception: str) -> None:
        log.info("driver %s %s %s", driver.driver_id, DS.Name(state), exception)
        driver.state = state
        driver.exception = exception
        driver.backing_off = False
        # Only a (re)launch reads it: the retained drivers held every app file in memory.
        driver.description.ClearField("app_content")
        self.drivers.pop(driver.driver_id, None)
        if driver.driver_id in self.waiting_drivers:
            self.waiting_drivers.remove(driver.driver_id)
        self.completed_drivers.append(driver)
        self._unstore("driver", driver.driver_id)
        if driver.description.files:
            kept = [d.description for d in self.drivers.values()]
            self._submitted_files().release(driver.description, kept)

    def _submitted_files(self) -> SubmittedFileStore:
        """The store of submitted files: beside FILESYSTEM recovery records, else the work dir."""
        store: SubmittedFileStore | None = getattr(self, "_file_store", None)
        if store is None:
            engine = self.persistence
            base = engine.directory if isinstance(engine, FileSystemPersistence) else self.work_dir
            limit = self.conf.get(MAX_FILES_SIZE)
            replica = engine.file_replica()
            store = SubmittedFileStore(
                base / "submitted-files",
                limit,
                replica,
                self.conf.get(ZOOKEEPER_MAX_FILES_SIZE) if replica is not None else None,
                ZOOKEEPER_MAX_FILES_SIZE.key,
            )
            # Drivers were recovered (or not) by now: what none of them needs is left over.
            removed = store.sweep(d.description for d in self.drivers.values())
            if removed:
                log.info("removed %d submitted files no driver needs any more", removed)
            self._file_store = store
        return store

    def _launch_description(self, driver: DriverInfo) -> pb.DriverDescription:
        return self._submitted_files().with_contents(driver.description)

    def _driver_unlaunchable(self, driver: DriverInfo, reason: str) -> None:
        self._finish_driver(driver, DS.DRIVER_STATE_ERROR, reason)

    def _find_driver(self, driver_id: str) -> DriverInfo:
        driver = self.drivers.get(driver_id)
        if driver is not None:
            return driver
        for done in self.completed_drivers:
            if done.driver_id == driver_id:
                return done
        raise LookupError(f"no driver {shown_id(driver_id)}")
