"""Stale reports and old leaders: what they say must not change live records.

Finding 3 of issue 10: a supervised driver on a worker that hung past
spark.worker.timeout is relaunched elsewhere; when the hung worker resumes, its
copy is killed and reports KILLED, and that report must not end the live
relaunched driver's record. Epoch fencing: a Worker ignores commands stamped
with an older Master epoch than the one it registered with.
"""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import time
from collections.abc import Callable

import pytest

from cluster.testing import LocalCluster, ProcCluster, wait_until
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]


def driver_status(c: LocalCluster, driver_id: str) -> api.DriverSummary:
    reply = c.master.ref.ask_sync(api.GetDriverStatusRequest(driver_id=driver_id), 5)
    assert isinstance(reply, api.GetDriverStatusResponse)
    return reply.driver


def test_a_hung_workers_killed_report_does_not_end_the_relaunched_driver(
    local_cluster: MakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = local_cluster()
    first = c.worker("w-hung", cores=2)
    submitted = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource="/x/app.py", cores=1, supervise=True)
        ),
        5,
    )
    assert isinstance(submitted, api.SubmitDriverResponse)
    driver_id = submitted.driver_id
    assert first.wait_of(pb.LaunchDriver)[0].attempt == 1
    second = c.worker("w-live", cores=2)

    first.silence()  # SIGSTOP, as far as the Master can tell: DEAD after the timeout
    relaunch = wait_until(lambda: second.of(pb.LaunchDriver), 15, "the relaunch elsewhere")[0]
    assert relaunch.attempt == 2
    wait_until(lambda: driver_status(c, driver_id).worker_id == "w-live", 5, "the relaunch")

    # SIGCONT: the hung worker re-registers with its copy, which the Master has it kill;
    # the copy's KILLED report (as its worker sends it) must not touch the live record.
    caplog.set_level(logging.WARNING, logger="rpcenv._senders")
    first.self_ref.send(
        pb.RegisterWorkerRequest(
            drivers=[pb.DriverRuntime(driver_id=driver_id, state=pb.DRIVER_STATE_RUNNING)]
        )
    )
    wait_until(lambda: first.of(pb.KillDriver), 5, "the stale copy's kill")
    for worker_id, attempt in (("w-hung", 1), ("", 0), ("w-live", 2)):
        first.self_ref.send(
            pb.DriverStateChanged(
                driver_id=driver_id,
                state=pb.DRIVER_STATE_KILLED,
                exception="killed by request",
                worker_id=worker_id,
                attempt=attempt,
            )
        )
    wait_until(
        lambda: any("DriverStateChanged" in r.getMessage() for r in caplog.records),
        5,
        "the refusal of the stale report",
    )
    status = driver_status(c, driver_id)
    assert status.state == pb.DRIVER_STATE_RUNNING and status.worker_id == "w-live"
    live = next(w for w in c.state().workers if w.id == "w-live")
    assert live.cores_used == 1

    # The live copy's own report still counts.
    second.self_ref.send(pb.DriverStateChanged(driver_id=driver_id, state=pb.DRIVER_STATE_FINISHED))
    wait_until(lambda: driver_status(c, driver_id).state == pb.DRIVER_STATE_FINISHED, 5, "FINISHED")


def test_a_report_on_an_earlier_attempt_on_the_same_worker_is_ignored(
    local_cluster: MakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """Relaunched on the same worker: only the attempt number tells the copies apart."""
    c = local_cluster()
    w = c.worker("w0", cores=2)
    submitted = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource="/x/app.py", cores=1, supervise=True)
        ),
        5,
    )
    assert isinstance(submitted, api.SubmitDriverResponse)
    driver_id = submitted.driver_id
    assert w.wait_of(pb.LaunchDriver)[0].attempt == 1
    w.self_ref.send(
        pb.DriverStateChanged(
            driver_id=driver_id, state=pb.DRIVER_STATE_FAILED, exception="exit 1", attempt=1
        )
    )
    relaunch = w.wait_of(pb.LaunchDriver, 2, timeout=15)[1]
    assert relaunch.driver_id == driver_id and relaunch.attempt == 2
    wait_until(lambda: driver_status(c, driver_id).state == pb.DRIVER_STATE_RUNNING, 5, "RUNNING")

    caplog.set_level(logging.WARNING, logger="rpcenv._senders")
    w.self_ref.send(
        pb.DriverStateChanged(driver_id=driver_id, state=pb.DRIVER_STATE_KILLED, attempt=1)
    )
    wait_until(
        lambda: any("DriverStateChanged" in r.getMessage() for r in caplog.records),
        5,
        "the refusal of the first attempt's report",
    )
    assert driver_status(c, driver_id).state == pb.DRIVER_STATE_RUNNING
    w.self_ref.send(
        pb.DriverStateChanged(driver_id=driver_id, state=pb.DRIVER_STATE_FINISHED, attempt=2)
    )
    wait_until(lambda: driver_status(c, driver_id).state == pb.DRIVER_STATE_FINISHED, 5, "FINISHED")


def test_a_worker_ignores_commands_of_an_older_master_epoch(
    local_cluster: MakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = local_cluster()
    handle = c.real_worker()
    epoch = handle.endpoint.master_epoch
    assert epoch > 0
    # The old leader: the same Master address (a Master the worker knows), an older epoch.
    worker = c.master.rpc_env.endpoint_ref(handle.ref.address, handle.ref.name)
    caplog.set_level(logging.WARNING, logger="cluster")
    old = epoch - 1
    commands = [
        pb.LaunchExecutor(app_id="app-old", executor_id=0, cores=1, master_epoch=old),
        pb.KillExecutor(app_id="app-old", executor_id=0, master_epoch=old),
        pb.ApplicationFinished(app_id="app-old", master_epoch=old),
        pb.LaunchDriver(driver_id="driver-old", master_epoch=old),
        pb.KillDriver(driver_id="driver-old", master_epoch=old),
        pb.MasterChanged(master_url="spark://127.0.0.1:1", master_epoch=old),
    ]
    for command in commands:
        worker.send(command)

    def rejections() -> int:
        return sum("from an older master" in r.getMessage() for r in caplog.records)

    wait_until(lambda: rejections() == len(commands), 10, "every stale command rejected")
    logging.getLogger(__name__).warning("epoch fencing: %d of %d rejected", rejections(), 6)
    state = handle.endpoint
    assert not state.executors and not state.drivers and state.registered.is_set()
    assert "app-old" not in state.finished_apps


def test_finding_3_with_processes_sigstop_sigcont_keeps_the_relaunched_driver(
    tmp_path: pathlib.Path,
) -> None:
    """The issue's scenario end to end: real workers, a real supervised driver process."""
    c = ProcCluster(tmp_path, {"spark.worker.timeout": "3"})
    try:
        hung = c.add_worker(cores=1)
        hung_id = str(hung.info["worker_id"])
        env = c.client_env()
        master = c.master_ref(env)
        submitted = master.ask_sync(
            api.SubmitDriverRequest(
                description=pb.DriverDescription(
                    app_resource="sleeper.py",
                    app_content=b"import time\ntime.sleep(600)\n",
                    cores=1,
                    memory_mb=64,
                    supervise=True,
                )
            ),
            10,
        )
        assert isinstance(submitted, api.SubmitDriverResponse)
        driver_id = submitted.driver_id

        def driver() -> api.DriverSummary | None:
            return next((d for d in c.state().active_drivers if d.id == driver_id), None)

        wait_until(lambda: (d := driver()) and d.worker_id == hung_id, 15, "running on the first")
        wait_until(lambda: hung.children(), 15, "the first copy's process")
        live = c.add_worker(cores=1)
        live_id = str(live.info["worker_id"])
        os.kill(hung.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: (d := driver()) and d.worker_id == live_id, 30, "the relaunch")
            wait_until(lambda: live.children(), 15, "the relaunched copy's process")
        finally:
            os.kill(hung.pid, signal.SIGCONT)
        # Back: the stale copy is killed, and its KILLED report must change nothing.
        wait_until(lambda: not hung.children(), 20, "the stale copy killed")
        wait_until(
            lambda: any(
                w.id == hung_id and w.state == pb.WORKER_STATE_ALIVE for w in c.state().workers
            ),
            15,
            "the hung worker re-registered",
        )
        time.sleep(1.0)  # time for a stale report to arrive and (not) be applied
        summary = driver()
        assert summary is not None and summary.state == pb.DRIVER_STATE_RUNNING
        assert summary.worker_id == live_id
        cores = {w.id: w.cores_used for w in c.state().workers}
        assert cores == {hung_id: 0, live_id: 1}
        assert f"driver {driver_id} DRIVER_STATE_KILLED" not in c.master.log_path.read_text()

        # Still supervised and controllable: a kill ends the live copy.
        killed = master.ask_sync(api.KillDriverRequest(driver_id=driver_id), 10)
        assert isinstance(killed, api.KillDriverResponse) and killed.killed
        wait_until(lambda: not live.children(), 20, "the live copy killed")
        wait_until(
            lambda: any(
                d.id == driver_id and d.state == pb.DRIVER_STATE_KILLED
                for d in c.state().completed_drivers
            ),
            15,
            "KILLED",
        )
    finally:
        c.close()
