"""Fake cluster state for the web UI tests (no master or worker process needed)."""

from __future__ import annotations

from pathlib import Path

from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

EVIL = "<script>alert('x')</script>"


def cluster_state(worker_ui: str) -> api.GetClusterStateResponse:
    """Two workers (one with a hostile web UI address), one running app, drivers."""
    state = api.GetClusterStateResponse(
        url="spark://127.0.0.1:7077",
        status=pb.MASTER_STATUS_ALIVE,
        alive_workers=1,
        cores=4,
        cores_used=2,
        memory_mb=4096,
        memory_used_mb=1024,
    )
    state.workers.add(
        id="worker-20261122-0001",
        host="127.0.0.1",
        port=40001,
        webui_address=worker_ui,
        cores=4,
        cores_used=2,
        memory_mb=4096,
        memory_used_mb=1024,
        state=pb.WORKER_STATE_ALIVE,
        last_heartbeat_ms=1_763_000_000_000,
    )
    state.workers.add(
        id="worker-20261122-0002",
        host="127.0.0.1",
        port=40002,
        webui_address="javascript:alert(1)",
        cores=2,
        memory_mb=2048,
        state=pb.WORKER_STATE_DEAD,
    )
    app = state.active_apps.add(
        id="app-20261122-0000",
        name=EVIL,
        cores=2,
        memory_per_executor_mb=1024,
        state=pb.APPLICATION_STATE_RUNNING,
        start_time_ms=1_763_000_000_000,
        duration_ms=65_000,
        user="alice",
    )
    app.executors.add(
        id=0,
        worker_id="worker-20261122-0001",
        cores=2,
        memory_mb=1024,
        state=pb.EXECUTOR_STATE_RUNNING,
    )
    state.completed_apps.add(
        id="app-20261122-0001", name="done", state=pb.APPLICATION_STATE_FINISHED
    )
    state.active_drivers.add(
        id="driver-20261122-0000",
        state=pb.DRIVER_STATE_RUNNING,
        worker_id="worker-20261122-0001",
        cores=1,
        memory_mb=512,
        app_resource="/tmp/app.py",
    )
    return state


def worker_state(work_dir: Path) -> pb.GetWorkerStateResponse:
    """A worker with one running executor (log files on disk) and a finished one."""
    state = pb.GetWorkerStateResponse(
        worker_id="worker-20261122-0001",
        host="127.0.0.1",
        port=40001,
        cores=4,
        cores_used=2,
        memory_mb=4096,
        memory_used_mb=1024,
        master_url="spark://127.0.0.1:7077",
        master_webui_url="http://127.0.0.1:8080",
        work_dir=str(work_dir),
    )
    executor_dir = work_dir / "app-20261122-0000" / "0"
    executor_dir.mkdir(parents=True, exist_ok=True)
    (executor_dir / "stdout").write_text("hello from executor 0\n" + EVIL + "\n")
    (executor_dir / "stderr").write_text("some warnings\n")
    state.executors.add(
        app_id="app-20261122-0000",
        executor_id=0,
        cores=2,
        memory_mb=1024,
        state=pb.EXECUTOR_STATE_RUNNING,
        work_dir=str(executor_dir),
        pid=4242,
    )
    state.finished_executors.add(
        app_id="app-20261122-0001",
        executor_id=3,
        cores=1,
        memory_mb=512,
        state=pb.EXECUTOR_STATE_EXITED,
    )
    driver_dir = work_dir / "driver-20261122-0000"
    driver_dir.mkdir(parents=True, exist_ok=True)
    (driver_dir / "stdout").write_text("driver output\n")
    state.drivers.add(
        driver_id="driver-20261122-0000",
        state=pb.DRIVER_STATE_RUNNING,
        cores=1,
        memory_mb=512,
        work_dir=str(driver_dir),
    )
    return state
