"""Worker liveness at the Master: lag-aware timeouts, the disconnect grace, the
heartbeat interval the Master hands out, bounded finished records (issue 9 items
7-8, issue 10 item 5).

The Master's handlers are called directly with a fake clock (no sleeps); one
test runs a real Worker against a Master whose timeout is its own, and one
SIGKILLs a worker process.
"""

from __future__ import annotations

import pathlib
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from cluster import master_views
from cluster._timers import Ticker
from cluster.launch import start_worker
from cluster.master import Master
from cluster.master_liveness import WorkerLiveness
from cluster.master_state import ExecutorInfo, Holdings, executor_holdings
from cluster.testing import FakeClock, FakeContext, FakeRef, LocalCluster, ProcCluster, wait_until
from rpcenv import Conf, RpcAddress
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

MakeCluster = Callable[..., LocalCluster]
ALIVE = pb.WORKER_STATE_ALIVE
DEAD = pb.WORKER_STATE_DEAD


def make_master(tmp_path: pathlib.Path, clock: FakeClock, **conf: str) -> Master:
    master = Master(Conf({"spark.worker.timeout": "60", **conf}), tmp_path, clock=clock)
    master._self_ref = FakeRef("Master", 7077)
    master.url = "spark://127.0.0.1:7077"
    return master


def register(master: Master, worker_id: str, port: int) -> pb.RegisterWorkerResponse:
    ref = FakeRef("Worker", port)
    request = pb.RegisterWorkerRequest(
        worker_id=worker_id, host="127.0.0.1", port=port, cores=2, memory_mb=2048, incarnation=1
    )
    ctx = FakeContext(ref, ref.address)
    master._on_register_worker(request, ctx)
    assert isinstance(ctx.answer, pb.RegisterWorkerResponse) and ctx.answer.accepted
    return ctx.answer


def heartbeat(master: Master, worker_id: str) -> None:
    master._on_heartbeat(pb.WorkerHeartbeat(worker_id=worker_id, incarnation=1), None)


def check(master: Master) -> None:
    master._on_check_worker_timeouts(pb.CheckWorkerTimeouts(), None)


def test_a_busy_master_judges_timeouts_as_of_when_the_check_was_issued(
    tmp_path: pathlib.Path,
) -> None:
    clock = FakeClock()
    master = make_master(tmp_path, clock)
    register(master, "w1", 20001)
    register(master, "w2", 20002)
    # The timer issues a check 15 s in; the master is busy for 100 s, and the
    # workers' heartbeats of that time sit behind the check in its inbox.
    clock.now += 15
    master.liveness.issue()
    clock.now += 85
    check(master)
    assert all(w.state == ALIVE for w in master.workers.values()), "killed by the master's lag"
    heartbeat(master, "w1")  # the queued heartbeats come next; w2's never came
    # Real silence still kills: a check issued now finds w2 silent for 100 s.
    master.liveness.issue()
    clock.now += 1
    check(master)
    assert master.workers["w1"].state == ALIVE
    assert master.workers["w2"].state == DEAD


def test_a_silent_worker_waits_the_whole_timeout(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    master = make_master(tmp_path, clock, **{"spark.worker.timeout": "8"})
    register(master, "w1", 20001)
    clock.now += 7.9
    check(master)  # nobody issued it: judged as of now
    assert master.workers["w1"].state == ALIVE
    clock.now += 0.2
    check(master)
    assert master.workers["w1"].state == DEAD


def test_a_disconnected_worker_is_dead_after_the_grace(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    master = make_master(tmp_path, clock, **{"spark.sparkctl.worker.disconnectGrace": "3s"})
    register(master, "w1", 20001)
    register(master, "w2", 20002)
    master.on_disconnected(RpcAddress("127.0.0.1", 20001))
    master.on_disconnected(RpcAddress("127.0.0.1", 20002))
    assert master.workers["w1"].suspected
    clock.now += 2
    heartbeat(master, "w2")  # w2 came back within the grace
    check(master)
    assert master.workers["w1"].state == ALIVE
    clock.now += 1.5  # 3.5 s after the drop: past the grace, far short of the timeout
    check(master)
    assert master.workers["w1"].state == DEAD
    w2 = master.workers["w2"]
    assert w2.state == ALIVE and not w2.suspected and w2.disconnected_at is None


def test_a_worker_that_registers_again_after_a_drop_is_not_dead(tmp_path: pathlib.Path) -> None:
    clock = FakeClock()
    master = make_master(tmp_path, clock, **{"spark.sparkctl.worker.disconnectGrace": "1"})
    register(master, "w1", 20001)
    master.on_disconnected(RpcAddress("127.0.0.1", 20001))
    clock.now += 0.5
    register(master, "w1", 20001)
    clock.now += 5
    check(master)
    assert master.workers["w1"].state == ALIVE


def test_check_interval_is_at_most_a_quarter_timeout_and_half_the_grace() -> None:
    assert WorkerLiveness(60.0, 5.0).check_interval == 2.5
    assert WorkerLiveness(60.0, 0.0).check_interval == 15.0
    assert WorkerLiveness(4.0, 5.0).check_interval == 1.0
    assert WorkerLiveness(60.0).heartbeat_interval == 15.0
    with pytest.raises(ValueError, match="disconnectGrace"):
        WorkerLiveness(60.0, -1.0)
    with pytest.raises(ValueError, match=r"spark\.sparkctl\.worker\.disconnectGrace"):
        Master(Conf({"spark.sparkctl.worker.disconnectGrace": "-2s"}), pathlib.Path("/tmp"))


def test_registration_tells_the_worker_the_masters_heartbeat_interval(
    tmp_path: pathlib.Path,
) -> None:
    master = make_master(tmp_path, FakeClock(), **{"spark.worker.timeout": "3"})
    assert register(master, "w1", 20001).heartbeat_interval_ms == 750


def test_a_worker_heartbeats_at_the_masters_interval_not_its_own(
    local_cluster: MakeCluster, tmp_path: pathlib.Path
) -> None:
    # The master alone is given a short timeout; the worker keeps its default (60 s,
    # i.e. 15 s heartbeats): without the master's interval it would flap every 15 s.
    c = local_cluster({"spark.worker.timeout": "1"})
    worker_conf = Conf({"spark.rpc.backend": "local", "spark.rpc.askTimeout": "10s"})
    handle = start_worker(worker_conf, [c.master.url], 1, 512, "127.0.0.1", 0, tmp_path / "worker")
    try:
        assert handle.wait_registered(5)
        heartbeat_ticker = handle.endpoint._heartbeat
        assert heartbeat_ticker is not None
        wait_until(lambda: heartbeat_ticker.interval == 0.25, 5, "the master's interval")
        (worker,) = c.state().workers
        first_ms = worker.last_heartbeat_ms

        def heartbeats_spanned_a_timeout_and_a_half() -> bool:
            (worker,) = c.state().workers
            assert worker.state == ALIVE, "the worker flapped: it heartbeats too rarely"
            return worker.last_heartbeat_ms - first_ms > 1500

        # A bounded wait for what it proves, not a sleep: the Master has heard the
        # worker over 1.5 of its timeouts and never declared it DEAD meanwhile.
        wait_until(heartbeats_spanned_a_timeout_and_a_half, 10, "heartbeats over 1.5 s")
    finally:
        handle.stop()


def test_finished_apps_and_drivers_are_capped_and_summarised(tmp_path: pathlib.Path) -> None:
    master = make_master(
        tmp_path,
        FakeClock(),
        **{"spark.deploy.retainedApplications": "3", "spark.deploy.retainedDrivers": "2"},
    )
    register(master, "w1", 20001)
    for n in range(5):
        desc = pb.ApplicationDescription(name=f"a{n}", max_cores=1, memory_per_executor_mb=64)
        ctx = FakeContext(FakeRef("AppClient", 30000 + n), RpcAddress("127.0.0.1", 30000 + n))
        master._on_register_application(pb.RegisterApplicationRequest(description=desc), ctx)
        assert isinstance(ctx.answer, pb.RegisterApplicationResponse)
        app = master.apps[ctx.answer.app_id]
        assert len(app.executors) == 1
        master._on_unregister_application(pb.UnregisterApplication(app_id=app.app_id), None)
    for _ in range(4):
        ctx = FakeContext(None, RpcAddress("127.0.0.1", 1))
        submit = api.SubmitDriverRequest(
            description=pb.DriverDescription(app_resource="x.py", cores=1, memory_mb=64)
        )
        master._on_submit_driver(submit, ctx)
        assert isinstance(ctx.answer, api.SubmitDriverResponse), ctx.answer
        kill = FakeContext(None, RpcAddress("127.0.0.1", 1))
        master._on_kill_driver(api.KillDriverRequest(driver_id=ctx.answer.driver_id), kill)
        master._on_driver_state_changed(
            pb.DriverStateChanged(driver_id=ctx.answer.driver_id, state=pb.DRIVER_STATE_KILLED),
            None,
        )
    state = master_views.cluster_state(master)
    assert [a.name for a in state.completed_apps] == ["a4", "a3", "a2"]
    assert all(not a.executors and a.cores == 1 for a in state.completed_apps)
    assert len(state.completed_drivers) == 2
    assert master.workers["w1"].cores_used == 0


def test_holdings_keep_their_sums() -> None:
    held: Holdings[tuple[str, int], ExecutorInfo] = executor_holdings()
    held[("a", 0)] = ExecutorInfo("a", 0, "w", 2, 100)
    held[("a", 1)] = ExecutorInfo("a", 1, "w", 3, 200)
    held[("a", 1)] = ExecutorInfo("a", 1, "w", 1, 50)  # replaced, not added
    assert (held.cores, held.memory_mb) == (3, 150)
    held.pop(("a", 0))
    assert held.pop(("b", 9), None) is None
    assert (held.cores, held.memory_mb) == (1, 50)
    del held[("a", 1)]
    assert (held.cores, held.memory_mb) == (0, 0)
    held[("a", 2)] = ExecutorInfo("a", 2, "w", 4, 10)
    held.clear()
    assert (held.cores, held.memory_mb, len(held)) == (0, 0, 0)
    with pytest.raises(TypeError, match="Holdings"):
        held.update({})


def test_a_ticker_takes_a_shorter_interval_at_once() -> None:
    ticks = threading.Event()
    ticker = Ticker("test", 60.0, ticks.set).start()
    try:
        ticker.set_interval(0.05)
        assert ticks.wait(5), "the new interval waited for the old one"
    finally:
        ticker.stop()


@pytest.fixture
def proc_cluster(tmp_path: pathlib.Path) -> Iterator[ProcCluster]:
    c = ProcCluster(
        tmp_path, {"spark.worker.timeout": "60", "spark.sparkctl.worker.disconnectGrace": "1s"}
    )
    try:
        yield c
    finally:
        c.close()


def test_a_sigkilled_worker_is_dead_after_the_grace_not_the_timeout(
    proc_cluster: ProcCluster,
) -> None:
    worker = proc_cluster.add_worker()
    survivor = proc_cluster.add_worker()
    wait_until(lambda: proc_cluster.state().alive_workers == 2, 10, "two workers")
    killed_at = time.monotonic()
    worker.popen.send_signal(signal.SIGKILL)
    worker.popen.wait(10)

    def dead() -> bool:
        states = {w.id: w.state for w in proc_cluster.state().workers}
        return states.get(str(worker.info["worker_id"])) == DEAD

    wait_until(dead, 1 + 8, "DEAD within the grace")  # timeout is 60 s
    elapsed = time.monotonic() - killed_at
    print(f"SIGKILLed worker DEAD after {elapsed:.1f}s (grace 1s, timeout 60s)")
    states = {w.id: w.state for w in proc_cluster.state().workers}
    assert states[str(survivor.info["worker_id"])] == ALIVE


def test_cluster_state_is_rebuilt_after_changes_not_after_heartbeats(
    tmp_path: pathlib.Path,
) -> None:
    clock = FakeClock()
    master = make_master(tmp_path, clock)

    def state() -> api.GetClusterStateResponse:
        ctx = FakeContext(None, RpcAddress("127.0.0.1", 1))
        master.receive_and_reply(api.GetClusterStateRequest(), ctx)
        assert isinstance(ctx.answer, api.GetClusterStateResponse)
        return ctx.answer

    ref = FakeRef("Worker", 20001)
    request = pb.RegisterWorkerRequest(
        worker_id="w1", host="127.0.0.1", port=20001, cores=2, memory_mb=64, incarnation=1
    )
    master.receive_and_reply(request, FakeContext(ref, ref.address))
    first = state()
    assert [w.id for w in first.workers] == ["w1"]
    master.receive(pb.WorkerHeartbeat(worker_id="w1", incarnation=1), None)
    assert state() is first  # a heartbeat alone: the cached answer
    clock.now += 1.5
    assert state() is not first  # heartbeat times are at most a second stale
    master.on_disconnected(RpcAddress("127.0.0.1", 20001))
    master.liveness.disconnect_grace = 0.0
    cached = state()
    clock.now += 0.1
    master.receive(pb.CheckWorkerTimeouts(), None)
    assert state() is not cached and state().workers[0].state == DEAD


def test_only_the_workers_an_app_ran_on_are_told_it_finished(tmp_path: pathlib.Path) -> None:
    master = make_master(tmp_path, FakeClock())
    refs = {}
    for n in range(3):
        refs[n] = FakeRef("Worker", 20000 + n)
        request = pb.RegisterWorkerRequest(
            worker_id=f"w{n}", host="127.0.0.1", port=20000 + n, cores=1, memory_mb=64,
            incarnation=1,
        )  # fmt: skip
        master._on_register_worker(request, FakeContext(refs[n], refs[n].address))
    desc = pb.ApplicationDescription(name="a", max_cores=2, memory_per_executor_mb=64)
    ctx = FakeContext(FakeRef("AppClient", 30000), RpcAddress("127.0.0.1", 30000))
    master._on_register_application(pb.RegisterApplicationRequest(description=desc), ctx)
    assert isinstance(ctx.answer, pb.RegisterApplicationResponse)
    app_id = ctx.answer.app_id
    used = {e.worker_id for e in master.apps[app_id].executors.values()}
    assert len(used) == 2
    master._on_unregister_application(pb.UnregisterApplication(app_id=app_id), None)
    told = {
        f"w{n}"
        for n, ref in refs.items()
        if any(isinstance(m, pb.ApplicationFinished) for m in ref.sent)
    }
    assert told == used


def test_only_a_registered_workers_heartbeat_skips_the_pool(tmp_path: pathlib.Path) -> None:
    master = make_master(tmp_path, FakeClock())
    beat = pb.WorkerHeartbeat(worker_id="w1", incarnation=1)
    assert not master.receives_inline(beat)  # unknown: told to register, via the pool
    register(master, "w1", 7101)
    assert master.receives_inline(beat)
    assert not master.receives_inline(pb.WorkerStopping(worker_id="w1", incarnation=1))
    assert not master.receives_inline(pb.CheckWorkerTimeouts())
