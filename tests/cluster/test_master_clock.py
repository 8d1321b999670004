"""The Master's timeouts and back-offs on a fake clock: no env, no timer, no sleep.

The Master takes its monotonic clock as an argument (issue 11, step 7). Here its
handlers are called directly, with `FakeRef`s recording what it pushes, and
time moves only by `FakeClock.advance`: a worker silent for `spark.worker.timeout`
is DEAD at the first check after it, not one tick earlier, with what that does to
its executors and drivers, and a supervised driver's relaunch waits 1, 2, 4 ... s,
reset once it ran longer than the cap. (The liveness rules themselves, lag and
the disconnect grace, are in test_master_liveness.py, on the same clock.)
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator

import pytest

from cluster import master_drivers
from cluster.master import Master
from cluster.master_drivers import MAX_RELAUNCH_BACKOFF_S
from cluster.master_liveness import FORGET_AFTER_TIMEOUTS
from cluster.testing import FakeClock, FakeContext, FakeRef
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

TIMEOUT_S = 2.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def master(tmp_path: pathlib.Path, clock: FakeClock) -> Master:
    conf = Conf(
        {
            "spark.worker.timeout": str(TIMEOUT_S),
            "spark.sparkctl.worker.disconnectGrace": "1s",
        }
    )
    m = Master(conf, tmp_path, clock=clock)
    m._self_ref = FakeRef("Master", 7077)  # what its own timers would post to
    m.url = "spark://127.0.0.1:7077"
    return m


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[float, Callable[[], None]]]]:
    """The relaunch timers the Master sets, as (delay, action), instead of threads."""
    set_: list[tuple[float, Callable[[], None]]] = []

    def later(delay: float, action: Callable[[], None], name: str) -> None:
        set_.append((delay, action))

    monkeypatch.setattr(master_drivers, "later", later)
    yield set_


def register_worker(master: Master, worker_id: str, port: int, cores: int = 2) -> FakeRef:
    ref = FakeRef("Worker", port)
    request = pb.RegisterWorkerRequest(
        worker_id=worker_id, host="127.0.0.1", port=port, cores=cores, memory_mb=4096, incarnation=1
    )
    context = FakeContext(ref)
    master._on_register_worker(request, context)
    assert isinstance(context.answer, pb.RegisterWorkerResponse) and context.answer.accepted
    return ref


def register_app(master: Master, port: int = 9000) -> FakeRef:
    ref = FakeRef("AppClient", port)
    desc = pb.ApplicationDescription(name="a", cores_per_executor=1, memory_per_executor_mb=512)
    context = FakeContext(ref)
    master._on_register_application(pb.RegisterApplicationRequest(description=desc), context)
    assert isinstance(context.answer, pb.RegisterApplicationResponse)
    return ref


def heartbeat(master: Master, worker_id: str, ref: FakeRef) -> None:
    master._on_heartbeat(pb.WorkerHeartbeat(worker_id=worker_id, incarnation=1), ref)


def check(master: Master) -> None:
    """One `CheckWorkerTimeouts`, issued and handled now (as the Master's ticker does)."""
    master.liveness.issue()
    master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)


def state_of(master: Master, worker_id: str) -> int:
    return master.workers[worker_id].state


def test_a_silent_worker_is_dead_once_the_timeout_passed_and_loses_its_executors(
    master: Master, clock: FakeClock
) -> None:
    worker = register_worker(master, "w0", 7101)
    driver = register_app(master)
    assert len(driver.of(pb.ExecutorAdded)) == 2
    clock.advance(TIMEOUT_S)  # exactly the timeout: not yet
    check(master)
    assert state_of(master, "w0") == pb.WORKER_STATE_ALIVE
    clock.advance(0.01)
    check(master)
    assert state_of(master, "w0") == pb.WORKER_STATE_DEAD
    lost = driver.of(pb.ExecutorUpdated)
    assert [u.state for u in lost] == [pb.EXECUTOR_STATE_LOST] * 2
    assert all(u.worker_lost for u in lost)
    assert master.apps[next(iter(master.apps))].cores_granted == 0
    # Heard from again: told to register anew, not revived in place.
    heartbeat(master, "w0", worker)
    assert worker.of(pb.ReconnectWorker)
    assert state_of(master, "w0") == pb.WORKER_STATE_DEAD


def test_heartbeats_keep_a_worker_alive_past_many_timeouts(
    master: Master, clock: FakeClock
) -> None:
    worker = register_worker(master, "w0", 7101)
    for _ in range(20):  # 20 s of heartbeats every 0.5 s: ten timeouts' worth
        clock.advance(TIMEOUT_S / 4)
        heartbeat(master, "w0", worker)
        check(master)
    assert state_of(master, "w0") == pb.WORKER_STATE_ALIVE
    assert not worker.of(pb.ReconnectWorker)


def test_a_dead_worker_is_forgotten_after_many_timeouts(master: Master, clock: FakeClock) -> None:
    register_worker(master, "w0", 7101)
    clock.advance(TIMEOUT_S + 0.25)
    check(master)
    assert state_of(master, "w0") == pb.WORKER_STATE_DEAD
    clock.advance(FORGET_AFTER_TIMEOUTS * TIMEOUT_S - (TIMEOUT_S + 0.25))  # silent 15 timeouts
    check(master)
    assert "w0" in master.workers  # still listed (the UI shows the dead for a while)
    clock.advance(0.25)
    check(master)
    assert "w0" not in master.workers


def posted(master: Master) -> list[pb.RelaunchDriver]:
    """What the Master's timers posted to the Master itself."""
    ref = master.self_ref
    assert isinstance(ref, FakeRef)
    return ref.of(pb.RelaunchDriver)


def submit_supervised(master: Master) -> str:
    context = FakeContext(FakeRef("client", 9500))
    desc = pb.DriverDescription(app_resource="/a.py", cores=1, memory_mb=512, supervise=True)
    master._on_submit_driver(api.SubmitDriverRequest(description=desc), context)
    assert isinstance(context.answer, api.SubmitDriverResponse)
    return context.answer.driver_id


def fail(master: Master, driver_id: str) -> None:
    master._on_driver_state_changed(
        pb.DriverStateChanged(driver_id=driver_id, state=pb.DRIVER_STATE_FAILED, exception="x"),
        None,
    )


def test_a_supervised_driver_backs_off_exponentially_up_to_the_cap(
    master: Master, clock: FakeClock, timers: list[tuple[float, Callable[[], None]]]
) -> None:
    worker = register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    assert len(worker.of(pb.LaunchDriver)) == 1
    delays = []
    for attempt in range(8):
        clock.advance(1.0)  # each run dies after a second
        fail(master, driver_id)
        assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING
        delay, action = timers[-1]
        delays.append(delay)
        clock.advance(delay)
        action()  # the timer fires: it posts RelaunchDriver to the Master itself
        master._on_relaunch_driver(posted(master)[-1], None)
        assert len(worker.of(pb.LaunchDriver)) == attempt + 2
    assert delays == [1, 2, 4, 8, 16, 32, MAX_RELAUNCH_BACKOFF_S, MAX_RELAUNCH_BACKOFF_S]


def test_a_driver_that_ran_longer_than_the_cap_starts_its_back_off_over(
    master: Master, clock: FakeClock, timers: list[tuple[float, Callable[[], None]]]
) -> None:
    register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    for _ in range(3):
        clock.advance(1.0)
        fail(master, driver_id)
        timers[-1][1]()
        master._on_relaunch_driver(posted(master)[-1], None)
    assert [d for d, _ in timers] == [1, 2, 4]
    clock.advance(MAX_RELAUNCH_BACKOFF_S + 1)  # this run lasted longer than the cap
    fail(master, driver_id)
    assert timers[-1][0] == 1


def test_a_relaunch_waits_for_its_timer(
    master: Master, clock: FakeClock, timers: list[tuple[float, Callable[[], None]]]
) -> None:
    """Until the back-off's RelaunchDriver arrives, the driver is not placed again."""
    worker = register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    fail(master, driver_id)
    register_worker(master, "w1", 7102)  # a reason to schedule: capacity appeared
    clock.advance(100.0)
    assert len(worker.of(pb.LaunchDriver)) == 1
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING
    master._on_relaunch_driver(pb.RelaunchDriver(driver_id=driver_id), None)
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RUNNING


def test_a_supervised_driver_is_relaunched_once_when_its_dead_worker_returns(
    master: Master, clock: FakeClock, timers: list[tuple[float, Callable[[], None]]]
) -> None:
    first = register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    assert [m.driver_id for m in first.of(pb.LaunchDriver)] == [driver_id]
    second = register_worker(master, "w1", 7102)
    clock.advance(TIMEOUT_S / 2)
    heartbeat(master, "w1", second)  # only w0 goes silent
    clock.advance(TIMEOUT_S / 2 + 0.25)
    check(master)
    assert state_of(master, "w0") == pb.WORKER_STATE_DEAD
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING
    assert [d for d, _ in timers] == [1]
    clock.advance(1)
    timers[-1][1]()
    master._on_relaunch_driver(posted(master)[-1], None)
    assert [m.driver_id for m in second.of(pb.LaunchDriver)] == [driver_id]
    # w0 comes back still running its copy: that copy is killed, one driver stays.
    request = pb.RegisterWorkerRequest(
        worker_id="w0",
        host="127.0.0.1",
        port=7101,
        cores=2,
        memory_mb=4096,
        incarnation=1,
        drivers=[pb.DriverRuntime(driver_id=driver_id, state=pb.DRIVER_STATE_RUNNING)],
    )
    master._on_register_worker(request, FakeContext(first))
    assert [m.driver_id for m in first.of(pb.KillDriver)] == [driver_id]
    driver = master.drivers[driver_id]
    assert (driver.worker_id, driver.state) == ("w1", pb.DRIVER_STATE_RUNNING)
    assert len(second.of(pb.LaunchDriver)) == 1 and len(timers) == 1
