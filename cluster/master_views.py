"""Read-only views of the Master's records as `sparkctl.v1` summaries.

`GetClusterStateResponse` is what the web UI's `/json`, `sparkctl status` and
the public MasterService show. This module only reads; it must never change
the Master's state.
"""

from __future__ import annotations

from collections.abc import Set
from typing import TYPE_CHECKING

from cluster.master_state import AppInfo, DriverInfo, WorkerInfo, resource_addresses
from cluster.request_limits import unplaceable_reason
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

if TYPE_CHECKING:
    from cluster.master_base import MasterBase

AS = pb.ApplicationState
DS = pb.DriverState

__all__ = [
    "alive_worker_sizes",
    "app_summary",
    "cluster_state",
    "driver_summary",
    "scoped_state",
    "worker_summary",
]


def worker_summary(worker: WorkerInfo) -> api.WorkerSummary:
    """One worker as the UI lists it."""
    summary = api.WorkerSummary()
    _fill_worker(summary, worker)
    return summary


def _fill_worker(summary: api.WorkerSummary, worker: WorkerInfo) -> None:
    # Filled in place (`repeated.add()`): building each summary apart and copying
    # it into the list took twice as long, and a cluster state lists every worker.
    summary.id = worker.worker_id
    summary.host = worker.host
    summary.port = worker.port
    summary.webui_address = worker.webui_address
    summary.cores = worker.cores
    summary.cores_used = worker.cores_used
    summary.memory_mb = worker.memory_mb
    summary.memory_used_mb = worker.memory_used_mb
    summary.state = worker.state
    if worker.resources:
        summary.resources.extend(resource_addresses(worker.resources))
        summary.resources_free.extend(resource_addresses(worker.resources_free))
    summary.last_heartbeat_ms = worker.last_heartbeat_ms


def app_summary(app: AppInfo, sizes: Set[tuple[int, int]] = frozenset()) -> api.ApplicationSummary:
    """One application, with its executors while it runs (a finished one has none left).

    Args:
        app: the application.
        sizes: `alive_worker_sizes`: a waiting application whose executors no
            worker can hold says so in `message`.
    """
    message = app.message
    if app.state == AS.APPLICATION_STATE_WAITING and not app.executors and not message:
        desc = app.description
        message = unplaceable_reason(
            desc.cores_per_executor, desc.memory_per_executor_mb, sizes, "each executor"
        )
    return api.ApplicationSummary(
        id=app.app_id,
        name=app.description.name,
        cores=app.final_cores if app.finished else app.cores_granted,
        max_cores=app.description.max_cores,
        memory_per_executor_mb=app.description.memory_per_executor_mb,
        state=app.state,
        start_time_ms=app.start_time_ms,
        duration_ms=app.duration_ms(),
        user=app.description.user,
        executors=[
            api.ExecutorSummary(
                id=e.executor_id,
                worker_id=e.worker_id,
                cores=e.cores,
                memory_mb=e.memory_mb,
                state=e.state,
            )
            for e in app.executors.values()
        ],
        app_ui_url=app.description.app_ui_url,
        message=message,
    )


def alive_worker_sizes(master: MasterBase) -> set[tuple[int, int]]:
    """The distinct (cores, memory_mb) of the ALIVE workers: what one worker can hold."""
    return {(w.cores, w.memory_mb) for w in master.workers.values() if w.alive}


def driver_summary(
    master: MasterBase, driver: DriverInfo, sizes: Set[tuple[int, int]] | None = None
) -> api.DriverSummary:
    """One cluster-mode driver; a waiting one no worker can hold says so in `exception`.

    Args:
        master: the Master.
        driver: the driver.
        sizes: `alive_worker_sizes(master)`, when the caller has it already.
    """
    worker = master.workers.get(driver.worker_id) if driver.worker_id else None
    exception = driver.exception
    if driver.state == DS.DRIVER_STATE_SUBMITTED and not exception:
        exception = unplaceable_reason(
            driver.description.cores,
            driver.description.memory_mb,
            alive_worker_sizes(master) if sizes is None else sizes,
            "the driver",
        )
    return api.DriverSummary(
        id=driver.driver_id,
        state=driver.state,
        worker_id=driver.worker_id,
        worker_host_port=worker.address.host_port if worker is not None else "",
        cores=driver.description.cores,
        memory_mb=driver.description.memory_mb,
        submit_time_ms=driver.submit_time_ms,
        app_resource=driver.description.app_resource,
        exception=exception,
    )


def cluster_state(master: MasterBase) -> api.GetClusterStateResponse:
    """The whole cluster as the Master sees it now."""
    workers = list(master.workers.values())
    alive = [w for w in workers if w.state == pb.WORKER_STATE_ALIVE]
    sizes = alive_worker_sizes(master)
    state = api.GetClusterStateResponse(
        url=master.url,
        status=master.status,
        alive_workers=len(alive),
        # Totals are int32 on the wire: 16 workers of the largest size allowed
        # (cluster.request_limits) would overflow the memory total. Shown capped.
        cores=_int32(sum(w.cores for w in alive)),
        cores_used=_int32(sum(w.cores_used for w in alive)),
        memory_mb=_int32(sum(w.memory_mb for w in alive)),
        memory_used_mb=_int32(sum(w.memory_used_mb for w in alive)),
        active_apps=[app_summary(a, sizes) for a in master.apps.values()],
        completed_apps=[app_summary(a) for a in reversed(master.completed_apps)],
        active_drivers=[driver_summary(master, d, sizes) for d in master.drivers.values()],
        completed_drivers=[
            driver_summary(master, d, sizes) for d in reversed(master.completed_drivers)
        ],
        webui_url=master.webui_url,
    )
    add = state.workers.add
    for worker in workers:
        _fill_worker(add(), worker)
    return state


def _int32(total: int) -> int:
    return min(total, 2**31 - 1)


def scoped_state(
    state: api.GetClusterStateResponse, app_id: str, master: MasterBase
) -> api.GetClusterStateResponse:
    """What a caller holding only `app_id`'s credential may see of `state`.

    Its application (active or completed) and the cluster-mode driver that
    registered it; the Master's URL and status. No workers and no totals: they
    would show what other applications hold.
    """
    scoped = api.GetClusterStateResponse(
        url=state.url, status=state.status, webui_url=state.webui_url
    )
    scoped.active_apps.extend(a for a in state.active_apps if a.id == app_id)
    scoped.completed_apps.extend(a for a in state.completed_apps if a.id == app_id)
    scoped.active_drivers.extend(
        d for d in state.active_drivers if master.app_owns_driver(app_id, d.id)
    )
    scoped.completed_drivers.extend(
        d for d in state.completed_drivers if master.app_owns_driver(app_id, d.id)
    )
    return scoped
