"""The Worker's accounting and executor states with a fake launcher: no child process.

The Worker takes a `Launcher` (issue 11, step 7); here it gets a `FakeLauncher`,
whose processes never run and end when the test says, with memory figures the
test sets. Its handlers are called directly; what it tells the Master and posts
to itself lands on `FakeRef`s. So cores and MiB held, refusals, exit codes and
signals, kills, memory limits and the RUNNING rule are checked in milliseconds.
`test_worker.py` keeps the tests that need real processes (argv substitution,
process groups, stop on shutdown, real RSS).
"""

from __future__ import annotations

import pathlib
import signal

import pytest

from cluster.testing import FakeClock, FakeLauncher, FakeProcess, FakeRef
from cluster.worker import Worker
from cluster.worker_base import STOP_GRACE_S
from rpcenv import Conf, RpcAddress
from sparkctl.v1 import deploy_pb2 as pb

ES = pb.ExecutorState
MIB = 1 << 20


class _Env:
    """The one thing of an env the Worker reads outside on_start: its address."""

    address = RpcAddress("127.0.0.1", 7201)


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


def make_worker(
    tmp_path: pathlib.Path,
    launcher: FakeLauncher,
    cores: int = 2,
    memory_mb: int = 300,
    conf: dict[str, str] | None = None,
    clock: FakeClock | None = None,
) -> Worker:
    settings = {"spark.sparkctl.worker.executorStartupGrace": "0", **(conf or {})}
    worker = Worker(
        Conf(settings),
        "w0",
        ["spark://127.0.0.1:7077"],
        cores,
        memory_mb,
        tmp_path / "work",
        launcher=launcher,
        clock=clock if clock is not None else FakeClock(),
    )
    worker._rpc_env = _Env()  # type: ignore[assignment]
    worker._self_ref = FakeRef("Worker", 7201)
    worker.master_ref = FakeRef("Master", 7077)
    return worker


def deliver(worker: Worker) -> None:
    """Hand the Worker what it posted to itself (exits, memory reports), in order."""
    inbox = worker.self_ref
    assert isinstance(inbox, FakeRef)
    while inbox.sent:
        worker.receive(inbox.sent.pop(0), None)


def reports(worker: Worker) -> list[pb.ExecutorStateChanged]:
    master = worker.master_ref
    assert isinstance(master, FakeRef)
    return master.of(pb.ExecutorStateChanged)


def launch(
    worker: Worker,
    executor_id: int,
    cores: int = 1,
    memory_mb: int = 128,
    app_id: str = "app-1",
    awaits_registration: bool = False,
) -> None:
    description = pb.ApplicationDescription(
        name="a",
        command=pb.Command(argv=["{{PYTHON}}", "-m", "executor", "{{EXECUTOR_ID}}"]),
        executors_report_registration=awaits_registration,
    )
    worker.receive(
        pb.LaunchExecutor(
            app_id=app_id,
            executor_id=executor_id,
            cores=cores,
            memory_mb=memory_mb,
            app_description=description,
        ),
        None,
    )


def child(launcher: FakeLauncher, executor_id: int, app_id: str = "app-1") -> FakeProcess:
    return launcher.named(f"executor-{app_id}-{executor_id}")


def test_launches_hold_cores_and_memory_until_their_processes_exit(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher, cores=4, memory_mb=1024)
    launch(worker, 0, cores=1, memory_mb=128)
    launch(worker, 1, cores=2, memory_mb=512)
    assert (worker.cores_used, worker.memory_used_mb) == (3, 640)
    assert [p.argv[-1] for p in launcher.processes] == ["0", "1"]  # {{EXECUTOR_ID}}
    assert all(p.running for p in launcher.processes)
    assert [(r.executor_id, r.state) for r in reports(worker)] == [
        (0, ES.EXECUTOR_STATE_RUNNING),
        (1, ES.EXECUTOR_STATE_RUNNING),
    ]
    child(launcher, 1).exit(0)
    deliver(worker)
    assert (worker.cores_used, worker.memory_used_mb) == (1, 128)
    assert reports(worker)[-1].state == ES.EXECUTOR_STATE_EXITED
    assert [r.executor_id for r in worker.finished_executors] == [1]


def test_a_launch_beyond_free_memory_or_cores_fails_with_what_is_free(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher, cores=4, memory_mb=300)
    launch(worker, 0)
    launch(worker, 1)
    launch(worker, 2)  # 3 x 128 MiB > 300 MiB
    launch(worker, 3, cores=3)  # 2 + 3 cores > 4
    assert len(launcher.processes) == 2
    assert (worker.cores_used, worker.memory_used_mb) == (2, 256)
    failed = [r for r in reports(worker) if r.state == ES.EXECUTOR_STATE_FAILED]
    assert [r.executor_id for r in failed] == [2, 3]
    assert "has 2 cores and 44 MiB free; asked 1 cores, 128 MiB" in failed[0].message
    assert "asked 3 cores" in failed[1].message


def test_a_second_launch_of_the_same_executor_is_ignored(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0)
    launch(worker, 0)
    assert len(launcher.processes) == 1 and worker.cores_used == 1


def test_a_crash_reports_its_exit_code_and_the_end_of_its_stderr(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0)
    child(launcher, 0).exit(3, stderr="starting\nsomething broke\n")
    deliver(worker)
    failed = reports(worker)[-1]
    assert (failed.state, failed.exit_status) == (ES.EXECUTOR_STATE_FAILED, 3)
    assert "exited with code 3" in failed.message and "something broke" in failed.message
    assert worker.cores_used == 0


def test_death_by_a_signal_is_a_negative_status_named_after_it(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0)
    child(launcher, 0).exit(-signal.SIGKILL)
    deliver(worker)
    failed = reports(worker)[-1]
    assert (failed.state, failed.exit_status) == (ES.EXECUTOR_STATE_FAILED, -9)
    assert "killed by SIGKILL" in failed.message


def test_a_killed_executor_frees_its_share_at_once_and_ends_killed(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0)
    launch(worker, 1)
    worker.receive(pb.KillExecutor(app_id="app-1", executor_id=0), None)
    assert child(launcher, 0).stops == [STOP_GRACE_S]  # SIGTERM, SIGKILL after it
    # Memory is free as soon as it is stopping; its cores once it exited.
    assert worker.memory_used_mb == 128
    child(launcher, 0).exit(-signal.SIGTERM)
    deliver(worker)
    assert worker.cores_used == 1
    killed = reports(worker)[-1]
    assert (killed.executor_id, killed.state) == (0, ES.EXECUTOR_STATE_KILLED)
    assert killed.message == "killed by the master"


def test_application_end_stops_its_executors_only(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0, app_id="app-1")
    launch(worker, 0, app_id="app-2")
    worker.receive(pb.ApplicationFinished(app_id="app-1"), None)
    assert child(launcher, 0, "app-1").stops and not child(launcher, 0, "app-2").stops
    child(launcher, 0, "app-1").exit(-signal.SIGTERM)
    deliver(worker)
    assert [(r.app_id, r.state) for r in worker.finished_executors] == [
        ("app-1", ES.EXECUTOR_STATE_KILLED)
    ]
    assert list(worker.executors) == [("app-2", 0)]


def test_the_memory_monitor_stops_an_executor_over_its_limit_and_it_fails(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0, memory_mb=64)
    launch(worker, 1, memory_mb=64)
    process = child(launcher, 0)
    launcher.rss[process.pid] = 65 * MIB
    launcher.rss[child(launcher, 1).pid] = 64 * MIB  # at the limit is within it
    assert worker._monitor is not None
    worker._monitor.check_once()  # what its thread does every memoryCheckInterval
    deliver(worker)
    assert process.stops == [0]  # over its memory: SIGKILL at once
    assert not child(launcher, 1).stops
    process.exit(-signal.SIGKILL)
    deliver(worker)
    failed = reports(worker)[-1]
    assert (failed.executor_id, failed.state) == (0, ES.EXECUTOR_STATE_FAILED)
    assert "exceeded 64 MiB (resident 65 MiB" in failed.message


def test_over_its_memory_from_the_start_an_executor_fails_before_running(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    """Never RUNNING: a RUNNING would reset spark.deploy.maxExecutorRetries each time."""
    launcher.rss[(1 << 22) + 1] = 200 * MIB  # the pid the first fake process gets
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0, memory_mb=64)
    process = child(launcher, 0)
    assert process.stops == [0]
    process.exit(-signal.SIGKILL)
    deliver(worker)
    assert [r.state for r in reports(worker)] == [ES.EXECUTOR_STATE_FAILED]
    assert "exceeded 64 MiB (resident 200 MiB" in reports(worker)[0].message


def test_an_executor_that_must_register_is_running_only_once_it_did(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0, awaits_registration=True)
    assert reports(worker) == []  # alive, but not yet known to its driver
    worker.receive(pb.ExecutorRegistered(app_id="app-1", executor_id=0), None)
    assert [r.state for r in reports(worker)] == [ES.EXECUTOR_STATE_RUNNING]


def test_a_command_that_cannot_start_fails_the_launch_and_holds_nothing(
    tmp_path: pathlib.Path,
) -> None:
    launcher = FakeLauncher(start_error=FileNotFoundError("no such file: 'nope'"))
    worker = make_worker(tmp_path, launcher)
    launch(worker, 0)
    failed = reports(worker)[-1]
    assert failed.state == ES.EXECUTOR_STATE_FAILED
    assert "could not start" in failed.message and "no such file" in failed.message
    assert worker.cores_used == 0 and not worker.executors


def test_stale_commands_of_an_older_master_are_ignored(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher)
    worker.master_epoch = 20
    launch(worker, 0)
    worker.receive(pb.KillExecutor(app_id="app-1", executor_id=0, master_epoch=10), None)
    assert not child(launcher, 0).stops


def test_a_driver_holds_its_share_and_a_kill_ends_it_killed(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    worker = make_worker(tmp_path, launcher, cores=4, memory_mb=2048)
    description = pb.DriverDescription(
        app_resource=str(tmp_path / "app.py"), cores=1, memory_mb=512
    )
    (tmp_path / "app.py").write_text("print('hi')\n")
    worker.receive(pb.LaunchDriver(driver_id="driver-1", description=description), None)
    process = launcher.named("driver-driver-1")
    assert process.running
    assert (worker.cores_used, worker.memory_used_mb) == (1, 512)
    worker.receive(pb.KillDriver(driver_id="driver-1"), None)
    assert process.stops == [STOP_GRACE_S]
    assert worker.memory_used_mb == 0  # a driver being killed holds no memory
    process.exit(-signal.SIGTERM)
    deliver(worker)
    master = worker.master_ref
    assert isinstance(master, FakeRef)
    states = [m.state for m in master.of(pb.DriverStateChanged)]
    assert states == [pb.DRIVER_STATE_RUNNING, pb.DRIVER_STATE_KILLED]
    assert worker.cores_used == 0 and not worker.drivers


def test_running_needs_both_the_startup_grace_over_and_the_registration(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    clock = FakeClock()
    worker = make_worker(
        tmp_path, launcher, conf={"spark.sparkctl.worker.executorStartupGrace": "5s"}, clock=clock
    )
    launch(worker, 0, awaits_registration=True)
    clock.advance(1.0)
    launch(worker, 1, awaits_registration=True)
    assert [(t.name, t.delay) for t in clock.pending()] == [("executor-startup", 5.0)] * 2
    # Executor 0 registers within its grace: RUNNING only once the grace is over.
    worker.receive(pb.ExecutorRegistered(app_id="app-1", executor_id=0), None)
    clock.advance(3.99)
    deliver(worker)
    assert reports(worker) == []
    clock.advance(0.01)  # executor 0's grace ends: its ExecutorStartupCheck is posted
    deliver(worker)
    assert [(r.executor_id, r.state) for r in reports(worker)] == [(0, ES.EXECUTOR_STATE_RUNNING)]
    clock.advance(1.0)  # executor 1's grace ends too, but it never registered
    deliver(worker)
    assert len(reports(worker)) == 1
    # Executor 1, alive past its grace, is RUNNING once it registers.
    worker.receive(pb.ExecutorRegistered(app_id="app-1", executor_id=1), None)
    assert [(r.executor_id, r.state) for r in reports(worker)][-1] == (1, ES.EXECUTOR_STATE_RUNNING)


def test_an_executor_that_dies_within_its_grace_is_never_running(
    tmp_path: pathlib.Path, launcher: FakeLauncher
) -> None:
    clock = FakeClock()
    worker = make_worker(
        tmp_path, launcher, conf={"spark.sparkctl.worker.executorStartupGrace": "2s"}, clock=clock
    )
    launch(worker, 0)
    launcher.named("executor-app-1-0").exit(1, "boom")
    deliver(worker)
    clock.advance(2.0)  # the grace's check finds it gone
    deliver(worker)
    states = [r.state for r in reports(worker)]
    assert ES.EXECUTOR_STATE_RUNNING not in states and states[-1] == ES.EXECUTOR_STATE_FAILED
