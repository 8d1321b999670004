"""Rebuilding a restarted Master's records from its persistence engine.

With `spark.deploy.recoveryMode=FILESYSTEM` a new Master (with ZOOKEEPER, a
newly elected leader) reads back the applications, workers and drivers its
predecessor stored, marks them UNKNOWN and comes up RECOVERING; workers and
drivers that re-register claim their records back (see
`MasterWorkers._on_register_worker`), and `CompleteRecovery` forgets the rest. This
module only loads records into the Master's dictionaries; it never sends
messages.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from cluster.master_state import AppInfo, DriverInfo, WorkerInfo, resources_from
from rpcenv import RpcAddress
from sparkctl.v1 import deploy_pb2 as pb

if TYPE_CHECKING:
    from cluster.master_base import MasterBase

__all__ = ["recover"]

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"-(\d+)$")
#: What the ids a Master hands out look like; they also name files and work dirs.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _usable(kind: str, record: Message, record_id: str, problem: str | None = None) -> bool:
    """False, with a warning, for a record that parsed but cannot be one we wrote
    (an empty file parses as an empty record; a torn or tampered one as anything)."""
    if not _ID.match(record_id):
        problem = f"bad id {record_id[:80]!r}"
    if problem is None:
        return True
    log.warning("skipping %s recovery record %s: %s", kind, record_id[:80] or "''", problem)
    return False


def _driver_problem(record: pb.PersistedDriver) -> str | None:
    if record.state not in pb.DriverState.values():
        return f"unknown state {record.state}"
    desc = record.description
    if desc.cores < 0 or desc.memory_mb < 0:
        return f"negative cores or memory ({desc.cores}, {desc.memory_mb})"
    if not (desc.app_resource or desc.command.argv or desc.app_content):
        return "no app_resource, command or app_content"
    return None


def _worker_problem(record: pb.PersistedWorker) -> str | None:
    if record.cores <= 0 or record.memory_mb <= 0 or not record.host:
        return f"bad resources or address ({record.cores} cores, {record.memory_mb} MiB)"
    if not 0 < record.port < 65536:
        return f"bad port {record.port}"
    return None


def _next_number(ids: list[str]) -> int:
    numbers = [int(m.group(1)) for i in ids if (m := _NUMBER.search(i))]
    return max(numbers, default=-1) + 1


def recover(master: MasterBase) -> bool:
    """Load persisted records into `master`; True when there was anything to recover."""
    engine = master.persistence
    if not engine.enabled:
        return False
    apps = [r for r in engine.read("app", pb.PersistedApplication) if _usable("app", r, r.app_id)]
    workers = [
        r
        for r in engine.read("worker", pb.PersistedWorker)
        if _usable("worker", r, r.worker_id, _worker_problem(r))
    ]
    drivers = [
        r
        for r in engine.read("driver", pb.PersistedDriver)
        if _usable("driver", r, r.driver_id, _driver_problem(r))
    ]
    if not (apps or workers or drivers):
        return False
    master.status = pb.MASTER_STATUS_RECOVERING
    master.recovered_drivers = [
        (RpcAddress(r.driver_host, r.driver_port), r.driver_endpoint)
        for r in apps
        if r.driver_host and r.driver_port and r.driver_endpoint
    ]
    for record in apps:
        app = AppInfo(
            app_id=record.app_id,
            description=record.description,
            driver_ref=None,
            driver_address=None,
            start_time_ms=record.start_time_ms,
            state=pb.APPLICATION_STATE_UNKNOWN,
        )
        master.apps[app.app_id] = app
    for w in workers:
        worker = WorkerInfo(
            worker_id=w.worker_id,
            host=w.host,
            port=w.port,
            cores=w.cores,
            memory_mb=w.memory_mb,
            webui_address=w.webui_address,
            incarnation=w.incarnation,
            ref=None,
            state=pb.WORKER_STATE_UNKNOWN,
            resources=resources_from(w.resources),
            last_heartbeat=master.clock(),
        )
        master.workers[worker.worker_id] = worker
        master.worker_by_address[worker.address] = worker.worker_id
    for d in drivers:
        driver = DriverInfo(
            driver_id=d.driver_id,
            description=d.description,
            submit_time_ms=d.submit_time_ms,
            state=d.state or pb.DRIVER_STATE_SUBMITTED,
            attempt=d.attempt,
        )
        master.drivers[driver.driver_id] = driver
        owner = master.workers.get(d.worker_id) if d.worker_id else None
        if owner is not None and driver.state == pb.DRIVER_STATE_RUNNING:
            driver.worker_id = owner.worker_id
            owner.drivers[driver.driver_id] = driver
        else:
            # Waiting (or relaunching) drivers go back in the queue.
            driver.state = pb.DRIVER_STATE_SUBMITTED
            master.waiting_drivers.append(driver.driver_id)
    master.ids.skip_past(
        _next_number([a.app_id for a in apps]), _next_number([d.driver_id for d in drivers])
    )
    return True
