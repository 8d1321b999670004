"""The Master's timeouts and back-offs on a fake clock: no env, no timer thread, no sleep.

The Master takes its clock (monotonic seconds and one-shot timers) as an
argument (issue 11, step 7). Here its handlers are called directly, with
`FakeRef`s recording what it pushes, and time moves only by
`FakeClock.advance`, which also fires the timers the Master set (they post to
its own `FakeRef`, handed back by `deliver`): a worker silent for
`spark.worker.timeout` is DEAD at the first check after it, not one tick
earlier, with what that does to its executors and drivers, and a supervised
driver's relaunch waits 1, 2, 4 ... s, reset once it ran longer than the cap.
(The liveness rules themselves, lag and the disconnect grace, are in
test_master_liveness.py, on the same clock.)
"""

from __future__ import annotations

import pathlib

import pytest

from cluster.master import Master
from cluster.master_drivers import MAX_RELAUNCH_BACKOFF_S
from cluster.master_liveness import FORGET_AFTER_TIMEOUTS
from cluster.testing import FakeClock, FakeContext, FakeRef, FakeTimer
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


def deliver(master: Master) -> int:
    """Hand the Master what its timers posted to itself, in order; return how many."""
    inbox = master.self_ref
    assert isinstance(inbox, FakeRef)
    count = 0
    while inbox.sent:
        master.receive(inbox.sent.pop(0), None)
        count += 1
    return count


def backoff(clock: FakeClock) -> FakeTimer:
    """The one relaunch timer set and not fired yet."""
    (timer,) = clock.pending("driver-backoff")
    return timer


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
    master: Master, clock: FakeClock
) -> None:
    worker = register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    assert len(worker.of(pb.LaunchDriver)) == 1
    delays = []
    for attempt in range(8):
        clock.advance(1.0)  # each run dies after a second
        fail(master, driver_id)
        assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING
        timer = backoff(clock)
        delays.append(timer.delay)
        clock.advance(timer.delay - 0.01)  # not yet: nothing posted, nothing launched
        assert deliver(master) == 0
        assert len(worker.of(pb.LaunchDriver)) == attempt + 1
        clock.advance(0.01)  # the timer fires: it posts RelaunchDriver to the Master itself
        assert deliver(master) == 1
        assert len(worker.of(pb.LaunchDriver)) == attempt + 2
    assert delays == [1, 2, 4, 8, 16, 32, MAX_RELAUNCH_BACKOFF_S, MAX_RELAUNCH_BACKOFF_S]


def test_a_driver_that_ran_longer_than_the_cap_starts_its_back_off_over(
    master: Master, clock: FakeClock
) -> None:
    register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    for _ in range(3):
        clock.advance(1.0)
        fail(master, driver_id)
        clock.advance(backoff(clock).delay)
        deliver(master)
    assert [t.delay for t in clock.timers] == [1, 2, 4]
    clock.advance(MAX_RELAUNCH_BACKOFF_S + 1)  # this run lasted longer than the cap
    fail(master, driver_id)
    assert backoff(clock).delay == 1


def test_a_relaunch_waits_for_its_timer(master: Master, clock: FakeClock) -> None:
    """Until the back-off's RelaunchDriver arrives, the driver is not placed again."""
    worker = register_worker(master, "w0", 7101)
    driver_id = submit_supervised(master)
    fail(master, driver_id)
    register_worker(master, "w1", 7102)  # a reason to schedule: capacity appeared
    assert len(worker.of(pb.LaunchDriver)) == 1
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING
    clock.advance(backoff(clock).delay)
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RELAUNCHING  # posted, not handled
    deliver(master)
    assert master.drivers[driver_id].state == pb.DRIVER_STATE_RUNNING


def test_a_supervised_driver_is_relaunched_once_when_its_dead_worker_returns(
    master: Master, clock: FakeClock
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
    assert [t.delay for t in clock.timers] == [1]
    clock.advance(1)
    deliver(master)
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
    assert len(second.of(pb.LaunchDriver)) == 1 and len(clock.timers) == 1


def test_a_recovering_master_waits_one_worker_timeout_then_drops_the_silent(
    tmp_path: pathlib.Path, clock: FakeClock
) -> None:
    """FILESYSTEM recovery: what did not re-register within spark.worker.timeout goes."""
    conf = Conf({"spark.worker.timeout": str(TIMEOUT_S), "spark.deploy.recoveryMode": "FILESYSTEM"})
    first = Master(conf, tmp_path, clock=FakeClock())
    first._self_ref = FakeRef("Master", 7077)
    register_worker(first, "w0", 7101)
    register_worker(first, "w1", 7102)  # both persisted; the first Master then dies
    master = Master(conf, tmp_path, clock=clock)
    master._self_ref = FakeRef("Master", 7077)
    master._lead()
    assert master.status == pb.MASTER_STATUS_RECOVERING
    assert [(t.name, t.delay) for t in clock.pending()] == [("master-recovery", TIMEOUT_S)]
    register_worker(master, "w0", 7101)  # w0 comes back in time, w1 never does
    clock.advance(TIMEOUT_S - 0.01)
    assert deliver(master) == 0 and master.status == pb.MASTER_STATUS_RECOVERING
    clock.advance(0.01)
    assert deliver(master) == 1
    assert master.status == pb.MASTER_STATUS_ALIVE
    assert state_of(master, "w0") == pb.WORKER_STATE_ALIVE and "w1" not in master.workers


def test_a_driver_whose_launch_cannot_be_prepared_ends_in_error_not_running(
    master: Master, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(driver: object) -> pb.DriverDescription:
        raise RuntimeError("store unreadable")

    monkeypatch.setattr(master, "_launch_description", broken)
    context = FakeContext(FakeRef("client", 9500))
    desc = pb.DriverDescription(app_resource="/a.py", cores=1, memory_mb=512)
    master._on_submit_driver(api.SubmitDriverRequest(description=desc), context)
    assert isinstance(context.answer, api.SubmitDriverResponse)
    driver_id = context.answer.driver_id
    worker = register_worker(master, "w0", 7101)  # placement runs: the launch fails
    assert worker.of(pb.LaunchDriver) == []
    assert driver_id not in master.drivers and driver_id not in master.waiting_drivers
    (done,) = [d for d in master.completed_drivers if d.driver_id == driver_id]
    assert done.state == pb.DRIVER_STATE_ERROR
    assert "could not prepare its launch" in done.exception and "store unreadable" in done.exception
    assert master.workers["w0"].drivers == {}
