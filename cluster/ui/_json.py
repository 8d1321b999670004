"""Cluster state as Spark's `/json` documents (shared by the UIs and `sparkctl status --json`).

Field names are exactly those of Spark's standalone master and worker `/json`,
so existing scripts and dashboards keep working; memory is in MiB and times in
milliseconds since the epoch, as Spark reports them. Pure functions of the
protobuf state: no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from sparkctl.v1 import deploy_pb2, master_service_pb2

__all__ = [
    "app_json",
    "app_state_name",
    "driver_json",
    "driver_state_name",
    "executor_state_name",
    "master_state_json",
    "master_status_name",
    "worker_state_json",
    "worker_state_name",
]


def _enum_name(enum: Any, prefix: str, value: int) -> str:
    try:
        name: str = enum.Name(value)
    except ValueError:
        return "UNKNOWN"
    return name.removeprefix(prefix)


def worker_state_name(value: int) -> str:
    """`ALIVE`, `DEAD`, ... for a WorkerState."""
    return _enum_name(deploy_pb2.WorkerState, "WORKER_STATE_", value)


def app_state_name(value: int) -> str:
    """`WAITING`, `RUNNING`, ... for an ApplicationState."""
    return _enum_name(deploy_pb2.ApplicationState, "APPLICATION_STATE_", value)


def executor_state_name(value: int) -> str:
    """`LAUNCHING`, `RUNNING`, ... for an ExecutorState."""
    return _enum_name(deploy_pb2.ExecutorState, "EXECUTOR_STATE_", value)


def driver_state_name(value: int) -> str:
    """`SUBMITTED`, `RUNNING`, ... for a DriverState."""
    return _enum_name(deploy_pb2.DriverState, "DRIVER_STATE_", value)


def master_status_name(value: int) -> str:
    """`ALIVE`, `STANDBY`, `RECOVERING`, ... for a MasterStatus."""
    return _enum_name(deploy_pb2.MasterStatus, "MASTER_STATUS_", value)


def _submit_date(ms: int) -> str:
    """Spark's `submitdate`: a human-readable date of a millisecond timestamp."""
    if ms <= 0:
        return ""
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return moment.strftime("%a %b %d %H:%M:%S UTC %Y")


def _worker(worker: master_service_pb2.WorkerSummary) -> dict[str, Any]:
    return {
        "id": worker.id,
        "host": worker.host,
        "port": worker.port,
        "webuiaddress": worker.webui_address,
        "cores": worker.cores,
        "coresused": worker.cores_used,
        "coresfree": worker.cores - worker.cores_used,
        "memory": worker.memory_mb,
        "memoryused": worker.memory_used_mb,
        "memoryfree": worker.memory_mb - worker.memory_used_mb,
        "state": worker_state_name(worker.state),
        "lastheartbeat": worker.last_heartbeat_ms,
        # Spark's name -> {name, addresses} maps of the custom resources.
        "resources": _resources(worker.resources),
        "resourcesused": _resources(_used(worker)),
        "resourcesfree": _resources(worker.resources_free),
    }


def _resources(resources: Iterable[deploy_pb2.ResourceAddresses]) -> dict[str, Any]:
    return {r.name: {"name": r.name, "addresses": list(r.addresses)} for r in resources}


def _used(worker: master_service_pb2.WorkerSummary) -> list[deploy_pb2.ResourceAddresses]:
    free = {r.name: set(r.addresses) for r in worker.resources_free}
    return [
        deploy_pb2.ResourceAddresses(
            name=r.name, addresses=[a for a in r.addresses if a not in free.get(r.name, set())]
        )
        for r in worker.resources
    ]


def app_json(app: master_service_pb2.ApplicationSummary) -> dict[str, Any]:
    """One application as Spark's master `/json` lists it (plus why it ended, if it failed)."""
    doc: dict[str, Any] = {
        "id": app.id,
        "starttime": app.start_time_ms,
        "name": app.name,
        "cores": app.cores,
        "user": app.user,
        "memoryperexecutor": app.memory_per_executor_mb,
        "memoryperslave": app.memory_per_executor_mb,
        "submitdate": _submit_date(app.start_time_ms),
        "state": app_state_name(app.state),
        "duration": app.duration_ms,
    }
    if app.message:
        # Not a field of Spark's: why the Master removed it ("... cannot reach the driver").
        doc["message"] = app.message
    return doc


def driver_json(driver: master_service_pb2.DriverSummary) -> dict[str, Any]:
    """One driver as Spark's master `/json` lists it."""
    return {
        "id": driver.id,
        "starttime": str(driver.submit_time_ms),
        "state": driver_state_name(driver.state),
        "cores": driver.cores,
        "memory": driver.memory_mb,
        "submitdate": _submit_date(driver.submit_time_ms),
        "worker": driver.worker_id or "None",
        "mainclass": driver.app_resource,
    }


def master_state_json(state: master_service_pb2.GetClusterStateResponse) -> dict[str, Any]:
    """The master's `/json` document for `state`."""
    return {
        "url": state.url,
        "workers": [_worker(w) for w in state.workers],
        "aliveworkers": state.alive_workers,
        "cores": state.cores,
        "coresused": state.cores_used,
        "memory": state.memory_mb,
        "memoryused": state.memory_used_mb,
        "activeapps": [app_json(a) for a in state.active_apps],
        "completedapps": [app_json(a) for a in state.completed_apps],
        "activedrivers": [driver_json(d) for d in state.active_drivers],
        "completeddrivers": [driver_json(d) for d in state.completed_drivers],
        "status": master_status_name(state.status),
    }


def _executor(executor: deploy_pb2.ExecutorRunnerSummary) -> dict[str, Any]:
    return {
        "id": executor.executor_id,
        "memory": executor.memory_mb,
        "cores": executor.cores,
        "appid": executor.app_id,
        "state": executor_state_name(executor.state),
    }


def _worker_driver(driver: deploy_pb2.DriverRunnerSummary) -> dict[str, Any]:
    return {
        "id": driver.driver_id,
        "state": driver_state_name(driver.state),
        "cores": driver.cores,
        "memory": driver.memory_mb,
    }


def worker_state_json(state: deploy_pb2.GetWorkerStateResponse) -> dict[str, Any]:
    """The worker's `/json` document for `state`."""
    return {
        "id": state.worker_id,
        "masterurl": state.master_url,
        "masterwebuiurl": state.master_webui_url,
        "cores": state.cores,
        "coresused": state.cores_used,
        "memory": state.memory_mb,
        "memoryused": state.memory_used_mb,
        "executors": [_executor(e) for e in state.executors],
        "finishedexecutors": [_executor(e) for e in state.finished_executors],
        "drivers": [_worker_driver(d) for d in state.drivers],
        "finisheddrivers": [_worker_driver(d) for d in state.finished_drivers],
    }
