"""The Master endpoint over the in-process backend, with fake workers and drivers."""

from __future__ import annotations

import pathlib
import shutil
import time
from collections import Counter
from collections.abc import Callable

import pytest

from cluster.testing import LocalCluster, wait_until
from rpcenv import RpcRemoteError
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]


def test_worker_registration_is_idempotent(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("worker-a", cores=4, memory_mb=2048)
    assert w.reply is not None and w.reply.result().accepted
    assert w.reply.result().master_url == c.master.url
    # Register again with the same id and incarnation: still one worker.
    w.self_ref.send(pb.RegisterWorkerRequest())
    wait_until(lambda: w.reply is not None and w.reply.done())
    state = c.state()
    assert [s.id for s in state.workers if s.id == "worker-a"] == ["worker-a"]
    assert state.alive_workers == 1
    assert state.cores == 4 and state.memory_mb == 2048


def test_stale_incarnation_is_refused(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    newer = c.worker("worker-a", incarnation=10)
    assert newer.reply is not None and newer.reply.result().accepted
    stale = c.worker("worker-a", incarnation=5)
    assert stale.reply is not None
    answer = stale.reply.result()
    assert not answer.accepted
    assert "stale incarnation 5" in answer.reason


def test_bad_worker_request_is_refused_with_reason(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("worker-a", cores=-1)
    assert w.reply is not None
    assert not w.reply.result().accepted
    assert "cores" in w.reply.result().reason


def test_a_worker_id_unfit_for_a_file_name_is_refused_with_reason(
    local_cluster: MakeCluster,
) -> None:
    # It names the worker's recovery record: '../w' made the registration fail with a
    # bare ValueError from the persistence layer (FILESYSTEM), and was taken otherwise.
    c = local_cluster({"spark.deploy.recoveryMode": "FILESYSTEM"})
    for bad in ("../w", "a/b", ".hidden", "x" * 300):
        w = c.worker(bad)
        assert w.reply is not None
        answer = w.reply.result()
        assert not answer.accepted and "bad worker_id" in answer.reason, answer
    ok = c.worker("worker-20260101000000-::1-7078")
    assert ok.reply is not None and ok.reply.result().accepted


def test_spread_out_across_workers(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    workers = [c.worker(f"w{i}", cores=4) for i in range(2)]
    driver = c.driver(max_cores=4, cores_per_executor=1)
    added = driver.wait_of(pb.ExecutorAdded, 4)
    assert Counter(a.worker_id for a in added) == {"w0": 2, "w1": 2}
    launches = [len(w.wait_of(pb.LaunchExecutor, 2)) for w in workers]
    assert launches == [2, 2]
    state = c.state()
    assert state.active_apps[0].state == pb.APPLICATION_STATE_RUNNING
    assert state.active_apps[0].cores == 4


def test_consolidate_fills_one_worker(local_cluster: MakeCluster) -> None:
    c = local_cluster({"spark.deploy.spreadOut": "false"})
    for i in range(2):
        c.worker(f"w{i}", cores=4)
    driver = c.driver(max_cores=4, cores_per_executor=1)
    added = driver.wait_of(pb.ExecutorAdded, 4)
    assert len({a.worker_id for a in added}) == 1


def test_memory_is_never_overcommitted(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("w0", cores=8, memory_mb=1000)
    driver = c.driver(cores_per_executor=1, memory_per_executor_mb=400)
    driver.wait_of(pb.ExecutorAdded, 2)
    wait_until(lambda: c.state().workers[0].memory_used_mb == 800)
    assert len(w.wait_of(pb.LaunchExecutor, 2)) == 2


def test_failed_executor_is_replaced(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("w0", cores=1)
    driver = c.driver(cores_per_executor=1)
    first = w.wait_of(pb.LaunchExecutor, 1)[0]
    w.self_ref.send(
        pb.ExecutorStateChanged(
            app_id=first.app_id,
            executor_id=first.executor_id,
            state=pb.EXECUTOR_STATE_FAILED,
            message="boom",
            exit_status=1,
        )
    )
    second = w.wait_of(pb.LaunchExecutor, 2)[1]
    assert second.executor_id != first.executor_id
    updates = driver.wait_of(pb.ExecutorUpdated, 1)
    assert updates[0].state == pb.EXECUTOR_STATE_FAILED and updates[0].exit_status == 1


def test_max_retries_fail_the_app(local_cluster: MakeCluster) -> None:
    c = local_cluster({"spark.deploy.maxExecutorRetries": "3"})
    w = c.worker("w0", cores=1)
    driver = c.driver(cores_per_executor=1)
    for n in range(3):
        launch = w.wait_of(pb.LaunchExecutor, n + 1)[n]
        w.self_ref.send(
            pb.ExecutorStateChanged(
                app_id=launch.app_id,
                executor_id=launch.executor_id,
                state=pb.EXECUTOR_STATE_FAILED,
                message=f"crash {n}",
                exit_status=3,
            )
        )
    removed = driver.wait_of(pb.ApplicationRemoved)[0]
    assert removed.state == pb.APPLICATION_STATE_FAILED
    assert "maxExecutorRetries=3" in removed.message and "crash 2" in removed.message
    state = c.state()
    assert not state.active_apps
    assert state.completed_apps[0].state == pb.APPLICATION_STATE_FAILED
    assert "crash 2" in state.completed_apps[0].message
    assert len(w.of(pb.LaunchExecutor)) == 3


def test_running_executor_resets_retries(local_cluster: MakeCluster) -> None:
    c = local_cluster({"spark.deploy.maxExecutorRetries": "2"})
    w = c.worker("w0", cores=1)
    driver = c.driver(cores_per_executor=1)
    for n in range(4):
        launch = w.wait_of(pb.LaunchExecutor, n + 1)[n]
        for state in (pb.EXECUTOR_STATE_RUNNING, pb.EXECUTOR_STATE_FAILED):
            w.self_ref.send(
                pb.ExecutorStateChanged(
                    app_id=launch.app_id, executor_id=launch.executor_id, state=state, exit_status=1
                )
            )
    w.wait_of(pb.LaunchExecutor, 5)
    assert not driver.of(pb.ApplicationRemoved)


def test_driver_disconnect_finishes_the_app(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("w0", cores=2)
    driver = c.driver(cores_per_executor=1)
    app_id = driver.app_id
    driver.wait_of(pb.ExecutorAdded, 2)
    driver.rpc_env.shutdown()
    wait_until(lambda: not c.state().active_apps)
    done = c.state().completed_apps[0]
    assert done.id == app_id and done.state == pb.APPLICATION_STATE_FINISHED
    assert w.wait_of(pb.ApplicationFinished)[0].app_id == app_id


def test_unregister_and_kill_application(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    c.worker("w0", cores=2)
    first = c.driver(cores_per_executor=1, max_cores=1)
    second = c.driver(cores_per_executor=1, max_cores=1)
    first.master.send(pb.UnregisterApplication(app_id=first.app_id))
    reply = c.master.ref.ask_sync(api.KillApplicationRequest(app_id=second.app_id), 5)
    assert isinstance(reply, api.KillApplicationResponse) and reply.killed
    removed = second.wait_of(pb.ApplicationRemoved)[0]
    assert removed.state == pb.APPLICATION_STATE_KILLED
    states = {
        a.id: a.state
        for a in wait_until(lambda: len(c.state().completed_apps) == 2 and c.state().completed_apps)
    }
    assert states == {
        first.app_id: pb.APPLICATION_STATE_FINISHED,
        second.app_id: pb.APPLICATION_STATE_KILLED,
    }
    with pytest.raises(RpcRemoteError, match="no application"):
        c.master.ref.ask_sync(api.KillApplicationRequest(app_id="app-nope"), 5)


def test_fifo_second_app_waits(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    c.worker("w0", cores=2)
    first = c.driver(cores_per_executor=1)
    first.wait_of(pb.ExecutorAdded, 2)
    second = c.driver(cores_per_executor=1)
    state = c.state()
    assert [a.state for a in state.active_apps] == [
        pb.APPLICATION_STATE_RUNNING,
        pb.APPLICATION_STATE_WAITING,
    ]
    first.master.send(pb.UnregisterApplication(app_id=first.app_id))
    second.wait_of(pb.ExecutorAdded, 2)


def test_dynamic_allocation_limits_and_kills(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    w = c.worker("w0", cores=4)
    driver = c.driver(cores_per_executor=1, initial_executor_limit=1)
    driver.wait_of(pb.ExecutorAdded, 1)
    assert len(c.state().active_apps[0].executors) == 1
    reply = c.master.ref.ask_sync(
        pb.RequestExecutorsRequest(app_id=driver.app_id, requested_total=3), 5
    )
    assert isinstance(reply, pb.RequestExecutorsResponse) and reply.acknowledged
    added = driver.wait_of(pb.ExecutorAdded, 3)
    reply = c.master.ref.ask_sync(
        pb.KillExecutorsRequest(app_id=driver.app_id, executor_ids=[added[0].executor_id]), 5
    )
    assert isinstance(reply, pb.KillExecutorsResponse) and reply.acknowledged
    kill = w.wait_of(pb.KillExecutor)[0]
    assert kill.executor_id == added[0].executor_id
    with pytest.raises(RpcRemoteError, match="requested_total"):
        c.master.ref.ask_sync(
            pb.RequestExecutorsRequest(app_id=driver.app_id, requested_total=-1), 5
        )


def test_initial_executor_limit_zero_starts_without_executors(local_cluster: MakeCluster) -> None:
    """Dynamic allocation with initialExecutors=0: nothing until the driver asks."""
    c = local_cluster()
    c.worker("w0", cores=4)
    driver = c.driver(cores_per_executor=1, initial_executor_limit=0)
    time.sleep(0.2)
    assert len(c.state().active_apps[0].executors) == 0
    c.master.ref.ask_sync(pb.RequestExecutorsRequest(app_id=driver.app_id, requested_total=2), 5)
    driver.wait_of(pb.ExecutorAdded, 2)
    assert len(c.state().active_apps[0].executors) == 2


def test_bad_application_is_refused(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    with pytest.raises(RpcRemoteError, match="memory_per_executor_mb"):
        c.master.ref.ask_sync(
            pb.RegisterApplicationRequest(
                description=pb.ApplicationDescription(name="x", memory_per_executor_mb=-5)
            ),
            5,
        )


def test_driver_lifecycle_and_supervise(local_cluster: MakeCluster) -> None:
    """Submit, finish, supervise, relaunch, kill, through a real Master endpoint.

    Its one relaunch waits out the real first back-off (1 s) on purpose: the
    back-off sequence is tested on a fake clock (test_master_clock.py), but only
    here does the real `SystemClock`'s timer thread post RelaunchDriver through
    the RpcEnv to the Master's own inbox, as a running Master's does.
    """
    c = local_cluster()
    w = c.worker("w0", cores=4, memory_mb=4096)
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource="/x/app.py", cores=1)
        ),
        5,
    )
    assert isinstance(submit, api.SubmitDriverResponse)
    launch = w.wait_of(pb.LaunchDriver)[0]
    assert launch.driver_id == submit.driver_id
    assert launch.description.memory_mb == 1024  # Spark's default driver memory
    w.self_ref.send(
        pb.DriverStateChanged(driver_id=launch.driver_id, state=pb.DRIVER_STATE_FINISHED)
    )
    status = wait_until(
        lambda: (
            (
                r := c.master.ref.ask_sync(
                    api.GetDriverStatusRequest(driver_id=submit.driver_id), 5
                )
            ).driver.state
            == pb.DRIVER_STATE_FINISHED
            and r
        )
    )
    assert status.driver.worker_id == "w0"

    supervised = c.master.ref.ask_sync(
        api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource="/x/app.py", cores=1, supervise=True)
        ),
        5,
    )
    assert isinstance(supervised, api.SubmitDriverResponse)
    w.wait_of(pb.LaunchDriver, 2)
    w.self_ref.send(
        pb.DriverStateChanged(
            driver_id=supervised.driver_id, state=pb.DRIVER_STATE_FAILED, exception="exit 1"
        )
    )
    wait_until(
        lambda: (
            c.master.ref.ask_sync(
                api.GetDriverStatusRequest(driver_id=supervised.driver_id), 5
            ).driver.state
            == pb.DRIVER_STATE_RELAUNCHING
        )
    )
    relaunch = w.wait_of(pb.LaunchDriver, 3, timeout=5)[2]  # after a 1 s back-off
    assert relaunch.driver_id == supervised.driver_id
    killed = c.master.ref.ask_sync(api.KillDriverRequest(driver_id=supervised.driver_id), 5)
    assert isinstance(killed, api.KillDriverResponse) and killed.killed
    assert w.wait_of(pb.KillDriver)[0].driver_id == supervised.driver_id
    w.self_ref.send(
        pb.DriverStateChanged(driver_id=supervised.driver_id, state=pb.DRIVER_STATE_KILLED)
    )
    wait_until(
        lambda: (
            c.master.ref.ask_sync(
                api.GetDriverStatusRequest(driver_id=supervised.driver_id), 5
            ).driver.state
            == pb.DRIVER_STATE_KILLED
        )
    )
    with pytest.raises(RpcRemoteError, match="no driver"):
        c.master.ref.ask_sync(api.GetDriverStatusRequest(driver_id="driver-nope"), 5)
    with pytest.raises(RpcRemoteError, match="app_resource"):
        c.master.ref.ask_sync(api.SubmitDriverRequest(description=pb.DriverDescription()), 5)


def test_waiting_driver_can_be_killed(local_cluster: MakeCluster) -> None:
    c = local_cluster()
    submit = c.master.ref.ask_sync(
        api.SubmitDriverRequest(description=pb.DriverDescription(app_resource="/a.py")), 5
    )
    assert isinstance(submit, api.SubmitDriverResponse)
    killed = c.master.ref.ask_sync(api.KillDriverRequest(driver_id=submit.driver_id), 5)
    assert isinstance(killed, api.KillDriverResponse) and killed.killed
    state = c.state()
    assert state.completed_drivers[0].state == pb.DRIVER_STATE_KILLED
    again = c.master.ref.ask_sync(api.KillDriverRequest(driver_id=submit.driver_id), 5)
    assert isinstance(again, api.KillDriverResponse) and not again.killed
    assert again.message == f"{submit.driver_id} already ended (KILLED)"


def test_default_cores_caps_apps_without_cores_max(local_cluster: MakeCluster) -> None:
    c = local_cluster({"spark.deploy.defaultCores": "3"})
    c.worker("w0", cores=8)
    driver = c.driver(cores_per_executor=1)
    driver.wait_of(pb.ExecutorAdded, 3)
    app = wait_until(
        lambda: (s := c.state()).active_apps and s.active_apps[0].cores == 3 and s.active_apps[0]
    )
    assert app.max_cores == 3


def test_a_recovery_directory_that_cannot_be_written_refuses_drivers_only(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    # A full disk under spark.deploy.recoveryDirectory: the failed write escaped the
    # handlers, so a worker could not register, an application could not start, and a
    # driver refused with an OSError stayed SUBMITTED and would have run anyway.
    recovery = tmp_path / "recovery"
    c = local_cluster(
        {"spark.deploy.recoveryMode": "FILESYSTEM", "spark.deploy.recoveryDirectory": str(recovery)}
    )
    shutil.rmtree(recovery)
    recovery.write_text("a file where the directory was: every record write fails\n")
    w = c.worker("w0", cores=2)
    assert w.reply is not None and w.reply.result().accepted
    with pytest.raises(RpcRemoteError, match="cannot record the driver for recovery") as info:
        c.master.ref.ask_sync(
            api.SubmitDriverRequest(description=pb.DriverDescription(app_resource="/x/app.py")), 5
        )
    assert info.value.remote_type.endswith("PersistenceError")
    driver = c.driver(cores_per_executor=1, max_cores=1)
    assert driver.wait_of(pb.ExecutorAdded)[0].worker_id == "w0"
    reply = c.master.ref.ask_sync(api.KillApplicationRequest(app_id=driver.app_id), 5)
    assert isinstance(reply, api.KillApplicationResponse) and reply.killed
    state = c.state()
    assert not state.active_drivers and not state.completed_drivers
    assert [a.state for a in state.completed_apps] == [pb.APPLICATION_STATE_KILLED]
    assert not w.of(pb.LaunchDriver)


def test_recovery_skips_records_that_cannot_be_ours(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    # An empty file parsed as an app with id '' (listed forever as running); a driver
    # named '../../etc' reached _schedule, whose write of its record raised and broke
    # that scheduling round (its worker would have been told to use <work>/../../etc).
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    good = pb.DriverDescription(app_resource="/x/app.py", cores=1, memory_mb=64)
    records = {
        "app_empty": pb.PersistedApplication(),
        "driver_evil": pb.PersistedDriver(driver_id="../../etc", description=good),
        "driver_odd": pb.PersistedDriver(driver_id="driver-1-0001", description=good, state=99),
        "driver_hollow": pb.PersistedDriver(driver_id="driver-1-0002"),
        "worker_none": pb.PersistedWorker(worker_id="w-x", host="h", port=1),
        "driver_ok": pb.PersistedDriver(driver_id="driver-1-0007", description=good),
    }
    for name, record in records.items():
        (recovery / name).write_bytes(record.SerializeToString())
    c = local_cluster(
        {"spark.deploy.recoveryMode": "FILESYSTEM", "spark.deploy.recoveryDirectory": str(recovery)}
    )
    state = c.state()
    assert [d.id for d in state.active_drivers] == ["driver-1-0007"]
    assert not state.active_apps and not state.workers
    w = c.worker("w0", cores=2, memory_mb=1024)
    launch = w.wait_of(pb.LaunchDriver, timeout=15)[0]
    assert launch.driver_id == "driver-1-0007"
    assert c.state().status == pb.MASTER_STATUS_ALIVE
    submitted = c.master.ref.ask_sync(api.SubmitDriverRequest(description=good), 5)
    assert isinstance(submitted, api.SubmitDriverResponse)
    assert submitted.driver_id.endswith("-0008")  # numbering goes on past the good record


def test_an_app_name_cannot_forge_master_log_lines(
    local_cluster: MakeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    c = local_cluster()
    with caplog.at_level("INFO", logger="cluster.master"):
        c.driver(name="x\n2026-01-01 00:00:00,000 ERROR cluster.master: forged")
    lines = [r.getMessage() for r in caplog.records if "registered application" in r.message]
    assert lines and all("\n" not in line for line in lines)


def test_a_kill_asked_while_the_worker_cannot_hear_it_is_said_again_when_it_returns(
    local_cluster: MakeCluster,
) -> None:
    # A recovering Master has no ref to a worker until it re-registers: the KillDriver went
    # nowhere, `sparkctl kill` said "kill requested", and the re-registering worker's
    # driver was adopted and ran on.
    c = local_cluster({"spark.deploy.recoveryMode": "FILESYSTEM", "spark.worker.timeout": "30"})
    w = c.worker("w0", cores=2, memory_mb=2048, heartbeat=False)
    description = pb.DriverDescription(app_resource="/x/app.py", cores=1, memory_mb=64)
    submit = c.master.ref.ask_sync(api.SubmitDriverRequest(description=description), 5)
    assert isinstance(submit, api.SubmitDriverResponse)
    w.wait_of(pb.LaunchDriver)
    c.restart_master()
    assert c.state().status == pb.MASTER_STATUS_RECOVERING
    reply = c.master.ref.ask_sync(api.KillDriverRequest(driver_id=submit.driver_id), 5)
    assert isinstance(reply, api.KillDriverResponse) and reply.killed
    running = pb.DriverRuntime(
        driver_id=submit.driver_id, description=description, state=pb.DRIVER_STATE_RUNNING
    )
    w.self_ref.send(pb.RegisterWorkerRequest(drivers=[running]))
    kill = w.wait_of(pb.KillDriver)[0]
    assert kill.driver_id == submit.driver_id
    w.self_ref.send(pb.DriverStateChanged(driver_id=submit.driver_id, state=pb.DRIVER_STATE_KILLED))
    wait_until(lambda: [d.state for d in c.state().completed_drivers] == [pb.DRIVER_STATE_KILLED])
