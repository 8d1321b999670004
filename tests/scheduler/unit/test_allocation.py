"""The dynamic allocation policy with a fake clock: targets, ramp-up, idle removal, storage."""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection
from typing import Any

import pytest

from rpcenv import Conf
from scheduler.core.allocation import (
    STORAGE_RECHECK,
    UNBOUNDED,
    AllocationPolicy,
    AllocationSettings,
    ExecutorState,
    Snapshot,
    Storage,
    allocation_settings,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ex(executor_id: str, running: int = 0, finished: int = 0, cores: int = 1) -> ExecutorState:
    return ExecutorState(executor_id, cores, running, finished)


def snap(
    pending: int = 0,
    executors: list[ExecutorState] | None = None,
    active: bool | None = None,
    storage: Storage | None = None,
) -> Snapshot:
    held = storage or Storage()

    def read(ids: Collection[str]) -> Storage:
        return held

    return Snapshot(
        pending,
        bool(pending) if active is None else active,
        executors or [],
        read,
    )


def make(**values: object) -> tuple[AllocationPolicy, Clock]:
    settings = AllocationSettings(**values)  # type: ignore[arg-type]
    clock = Clock()
    return AllocationPolicy(settings, clock), clock


# -- settings ------------------------------------------------------------------------------


def conf(**values: str) -> Conf:
    base = {"spark.dynamicAllocation.enabled": "true"}
    base.update(
        {
            (k if k.startswith("spark.") else "spark.dynamicAllocation." + k): v
            for k, v in values.items()
        }
    )
    return Conf(base)


def test_settings_defaults_are_sparks() -> None:
    s = allocation_settings(conf(), local=False)
    assert s is not None
    assert (s.min_executors, s.max_executors, s.initial_executors) == (0, UNBOUNDED, 0)
    assert (s.backlog_timeout, s.sustained_backlog_timeout, s.idle_timeout) == (1.0, 1.0, 60.0)
    assert s.cached_idle_timeout == math.inf and s.shuffle_timeout == math.inf
    assert s.allocation_ratio == 1.0 and s.shuffle_tracking and s.tasks_per_executor is None


def test_settings_off_and_local_mode() -> None:
    assert allocation_settings(Conf({}), local=False) is None
    assert allocation_settings(conf(minExecutors="-1"), local=True) is None  # ignored, warned


def test_initial_follows_min_and_executor_instances() -> None:
    s = allocation_settings(conf(minExecutors="2", maxExecutors="5"), local=False)
    assert s is not None and s.initial_executors == 2
    s = allocation_settings(
        conf(minExecutors="1", **{"spark.executor.instances": "3"}), local=False
    )
    assert s is not None and s.initial_executors == 3
    s = allocation_settings(conf(sustainedSchedulerBacklogTimeout="5s"), local=False)
    assert s is not None and (s.backlog_timeout, s.sustained_backlog_timeout) == (1.0, 5.0)
    s = allocation_settings(conf(schedulerBacklogTimeout="200ms"), local=False)
    assert s is not None and s.sustained_backlog_timeout == 0.2
    s = allocation_settings(conf(**{"shuffleTracking.timeout": "1500"}), local=False)
    assert s is not None and s.shuffle_timeout == 1.5  # a bare number is in ms, as Spark
    s = allocation_settings(conf(**{"spark.executor.cores": "4"}), local=False)
    assert s is not None and s.tasks_per_executor == 4


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"minExecutors": "-1"}, "minExecutors"),
        ({"maxExecutors": "0"}, "maxExecutors"),
        ({"minExecutors": "3", "maxExecutors": "2"}, "minExecutors"),
        ({"minExecutors": "1", "initialExecutors": "0"}, "initialExecutors"),
        ({"maxExecutors": "2", "initialExecutors": "3"}, "initialExecutors"),
        ({"schedulerBacklogTimeout": "0s"}, "schedulerBacklogTimeout"),
        ({"executorIdleTimeout": "-1s"}, "executorIdleTimeout"),
        ({"executorAllocationRatio": "1.5"}, "executorAllocationRatio"),
        ({"shuffleTracking.enabled": "false"}, "shuffleTracking.enabled"),
        ({"minExecutors": "two"}, "minExecutors"),
        ({"spark.executor.instances": "-2"}, "spark.executor.instances"),
    ],
)
def test_invalid_settings_name_the_key(values: dict[str, str], key: str) -> None:
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        allocation_settings(conf(**values), local=False)


# -- target ----------------------------------------------------------------------------------


def test_target_stays_initial_until_a_stage_starts() -> None:
    policy, clock = make(initial_executors=3, max_executors=10)
    for _ in range(5):
        clock.now += 1
        assert policy.tick(snap(executors=[ex("0")])).total is None
    assert policy.target == 3


def test_backlog_ramps_up_exponentially_after_the_timeouts() -> None:
    policy, clock = make(backlog_timeout=1.0, sustained_backlog_timeout=2.0, max_executors=100)
    executors: list[ExecutorState] = []
    totals = []
    for _ in range(120):  # 12 s of 100 ms ticks with 50 tasks waiting
        decision = policy.tick(snap(pending=50, executors=executors))
        if decision.total is not None:
            totals.append((round(clock.now - 1000.0, 1), decision.total))
            executors = [ex(str(i)) for i in range(decision.total)]  # granted at once
        clock.now += 0.1
    # +1 after 1 s, then +2, +4, +8 every 2 s (the target starts from what is registered).
    assert totals[:4] == [(1.0, 1), (3.0, 3), (5.0, 7), (7.0, 15)]
    assert totals[-1][1] <= 50


def test_target_capped_by_need_ratio_and_max() -> None:
    policy, clock = make(backlog_timeout=0.1, sustained_backlog_timeout=0.1, max_executors=4)
    for _ in range(100):
        policy.tick(snap(pending=100))
        clock.now += 0.1
    assert policy.target == 4
    policy, clock = make(
        backlog_timeout=0.1, sustained_backlog_timeout=0.1, allocation_ratio=0.5,
        tasks_per_executor=2,
    )  # fmt: skip
    for _ in range(100):
        policy.tick(snap(pending=10))
        clock.now += 0.1
    assert policy.target == math.ceil(10 * 0.5 / 2)


def test_executor_cores_divide_the_need() -> None:
    policy, clock = make(backlog_timeout=0.1, sustained_backlog_timeout=0.1)
    executors = [ex("0", running=4, cores=4)]
    for _ in range(50):
        policy.tick(snap(pending=8, executors=executors))
        clock.now += 0.1
    assert policy.target == 3  # 12 tasks / 4 cores


def test_queued_tasks_beyond_cores_count_as_backlog() -> None:
    policy, clock = make(backlog_timeout=0.5)
    executors = [ex("0", running=10, cores=2)]  # all launched, 8 wait behind 2 cores
    decision = policy.tick(snap(pending=0, executors=executors, active=True))
    clock.now += 0.6
    decision = policy.tick(snap(pending=0, executors=executors, active=True))
    assert decision.total == 2


def test_target_drops_at_once_when_the_backlog_shrinks() -> None:
    policy, clock = make(backlog_timeout=0.1, sustained_backlog_timeout=0.1, min_executors=1,
                         initial_executors=1)  # fmt: skip
    for _ in range(60):
        policy.tick(snap(pending=20))
        clock.now += 0.1
    assert policy.target == 20
    decision = policy.tick(snap(pending=3, active=True))
    assert decision.total == 3 and decision.previous_total == 20
    decision = policy.tick(snap(pending=0, active=False))
    assert decision.total == 1  # never below minExecutors


def test_backlog_cleared_resets_ramp() -> None:
    policy, clock = make(backlog_timeout=1.0, sustained_backlog_timeout=1.0)
    policy.tick(snap(pending=5))
    clock.now += 0.9
    policy.tick(snap(pending=0, active=True, executors=[ex("0", running=1)]))  # drained
    clock.now += 0.2
    assert policy.tick(snap(pending=5, executors=[ex("0", running=1)])).total is None
    clock.now += 1.0
    assert policy.tick(snap(pending=5, executors=[ex("0", running=1)])).total == 2


def test_unacknowledged_request_restores_the_target() -> None:
    policy, clock = make(backlog_timeout=0.1)
    policy.tick(snap(pending=5))
    clock.now += 0.2
    decision = policy.tick(snap(pending=5))
    assert decision.total == 1
    policy.not_acknowledged(decision)
    assert policy.target == 0


# -- removal ---------------------------------------------------------------------------------


def test_idle_executors_removed_after_timeout_down_to_min() -> None:
    policy, clock = make(idle_timeout=1.0, min_executors=1, initial_executors=3)
    executors = [ex("0"), ex("1"), ex("2")]
    assert policy.tick(snap(executors=executors)).kill == []
    clock.now += 0.5
    assert policy.tick(snap(executors=executors)).kill == []
    clock.now += 0.6
    decision = policy.tick(snap(executors=executors))
    assert decision.total == 1  # the idle timeout ends the initial period: target -> min
    assert decision.kill == ["0", "1"]
    assert policy.pending_removal == {"0", "1"}
    clock.now += 5
    assert policy.tick(snap(executors=executors)).kill == []  # never twice, never below min
    assert policy.tick(snap(executors=[ex("2")])).kill == []
    assert policy.pending_removal == set()


def test_busy_executor_is_not_idle_and_restarts_its_timer() -> None:
    policy, clock = make(idle_timeout=1.0)
    policy.tick(snap(executors=[ex("0", running=1)], active=True))
    clock.now += 2
    assert policy.tick(snap(executors=[ex("0", running=1)], active=True)).kill == []
    # Idle now, but it finished tasks since the last tick: the timer starts now.
    assert policy.tick(snap(executors=[ex("0", finished=3)])).kill == []
    clock.now += 0.9
    assert policy.tick(snap(executors=[ex("0", finished=3)])).kill == []
    clock.now += 0.2
    assert policy.tick(snap(executors=[ex("0", finished=3)])).kill == ["0"]


def test_removal_never_goes_below_target() -> None:
    policy, clock = make(idle_timeout=1.0, backlog_timeout=0.1)
    executors = [ex("0", running=2, cores=2), ex("1")]
    for _ in range(30):  # four tasks to run: the target grows past the 2 registered
        policy.tick(snap(pending=2, executors=executors))
        clock.now += 0.1
    assert policy.target >= 2
    assert policy.tick(snap(pending=2, executors=executors)).kill == []


def test_not_killed_executors_become_candidates_again() -> None:
    policy, clock = make(idle_timeout=1.0)
    policy.tick(snap(executors=[ex("0")]))
    clock.now += 1.5
    decision = policy.tick(snap(executors=[ex("0")]))
    assert decision.kill == ["0"]
    policy.not_killed(decision.kill)
    assert policy.tick(snap(executors=[ex("0")])).kill == ["0"]


def test_cached_blocks_use_the_cached_timeout() -> None:
    policy, clock = make(idle_timeout=1.0, cached_idle_timeout=5.0)
    storage = Storage(cached=frozenset({"0"}))
    executors = [ex("0"), ex("1")]
    policy.tick(snap(executors=executors, storage=storage))
    clock.now += 1.5
    assert policy.tick(snap(executors=executors, storage=storage)).kill == ["1"]
    clock.now += 3.6
    assert policy.tick(snap(executors=executors, storage=storage)).kill == ["0"]


def test_cached_blocks_default_keep_executor_forever() -> None:
    policy, clock = make(idle_timeout=1.0)
    storage = Storage(cached=frozenset({"0"}))
    policy.tick(snap(executors=[ex("0")], storage=storage))
    clock.now += 10_000
    assert policy.tick(snap(executors=[ex("0")], storage=storage)).kill == []


def test_shuffle_tracking() -> None:
    policy, clock = make(idle_timeout=1.0, shuffle_timeout=30.0)
    executors = [ex("0"), ex("1"), ex("2")]
    held = {"0": frozenset({7}), "1": frozenset({8}), "2": frozenset({9})}
    # Shuffle 7: a running job reads it. 8: still referenced. 9: no longer referenced.
    storage = Storage(
        shuffles=held, active_shuffles=frozenset({7}), live_shuffles=frozenset({7, 8})
    )
    policy.tick(snap(executors=executors, storage=storage, active=True))
    clock.now += 1.5
    assert policy.tick(snap(executors=executors, storage=storage, active=True)).kill == ["2"]
    clock.now += 29
    assert policy.tick(snap(executors=executors, storage=storage, active=True)).kill == ["1"]
    clock.now += 1000
    assert policy.tick(snap(executors=executors, storage=storage, active=True)).kill == []
    # The job ends and the program drops shuffle 7: executor 0 goes at its next look
    # (idle long enough already), which comes within STORAGE_RECHECK.
    done = Storage(shuffles=held)
    assert policy.tick(snap(executors=executors, storage=done)).kill == []
    clock.now += STORAGE_RECHECK
    assert policy.tick(snap(executors=executors, storage=done)).kill == ["0"]


def test_storage_is_read_only_for_idle_candidates() -> None:
    policy, clock = make(idle_timeout=1.0)
    asked: list[list[str]] = []

    def read(ids: Collection[str]) -> Storage:
        asked.append(sorted(ids))
        return Storage()

    busy = Snapshot(1, True, [ex("0", running=1), ex("1")], read)
    policy.tick(busy)
    assert asked == []
    clock.now += 1.0
    policy.tick(busy)
    assert asked == [["1"]]


def test_kept_executors_storage_is_reread_at_most_every_recheck() -> None:
    policy, clock = make(idle_timeout=1.0, min_executors=1, initial_executors=1)
    asked: list[float] = []

    def read(ids: Collection[str]) -> Storage:
        asked.append(clock.now)
        return Storage(cached=frozenset({"0"}))

    for _ in range(50):  # 5 s of ticks; "0" is kept (cached, and minExecutors is 1)
        policy.tick(Snapshot(0, False, [ex("0")], read))
        clock.now += 0.1
    assert 3 <= len(asked) <= 5
    assert all(b - a >= STORAGE_RECHECK - 1e-9 for a, b in itertools.pairwise(asked))


def test_a_job_shorter_than_a_tick_still_ends_the_initial_period() -> None:
    policy, clock = make(initial_executors=3)
    policy.tick(snap(executors=[ex("0")]))
    clock.now += 0.1
    decision = policy.tick(snap(executors=[ex("0", finished=2)]))  # ran 2 tasks in between
    assert decision.total == 0


# -- reading the task scheduler ---------------------------------------------------------------


def test_read_snapshot_and_storage_from_a_task_scheduler(ctx: Any) -> None:
    from scheduler.core.allocation import read_snapshot
    from scheduler.core.dag import Stage
    from scheduler.core.taskscheduler import ExecutorHandle, SchedulerSettings, TaskScheduler
    from scheduler.rdd.deps import ShuffleDependency
    from scheduler.shuffle.mapoutput import MapOutput
    from scheduler.shuffle.partitioner import Partitioner

    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    for executor_id, cores in (("0", 2), ("1", 1), ("2", 1)):
        sched.register_executor(ExecutorHandle(executor_id, "h", cores, lambda message: None))
    sched.executors["0"].running.update({10, 11, 12})
    sched.executors["1"].completed_tasks = 4
    rdd = ctx.parallelize([1, 2], 2)
    live = ShuffleDependency(rdd, 5, Partitioner(2, hash))
    gone = ShuffleDependency(rdd, 6, Partitioner(2, hash))
    sched.dag.shuffle_deps[5] = live
    sched.dag.shuffle_deps[6] = gone
    del gone  # the program dropped shuffle 6
    sched.dag.map_outputs[5] = [MapOutput("1", "h", "p"), None]
    sched.dag.map_outputs[6] = [MapOutput("2", "h", "p")]
    sched.dag.stages[0] = Stage(0, rdd, 2, [], live, 0)  # a running job needs shuffle 5
    sched.cache_locations[(3, 0)] = {"2"}

    snapshot = read_snapshot(sched)
    assert snapshot.pending_tasks == 0 and not snapshot.stages_active
    assert {(e.executor_id, e.cores, e.running, e.finished) for e in snapshot.executors} == {
        ("0", 2, 3, 0),
        ("1", 1, 0, 4),
        ("2", 1, 0, 0),
    }
    storage = snapshot.storage(["1", "2"])
    assert storage.cached == frozenset({"2"})
    assert storage.shuffles == {"1": frozenset({5}), "2": frozenset({6})}
    assert storage.active_shuffles == frozenset({5})
    assert storage.live_shuffles == frozenset({5})
