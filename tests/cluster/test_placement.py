"""Placement decisions on their own: examples from Spark's semantics, then properties."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from cluster.placement import (
    AppDemand,
    DriverDemand,
    ExecutorAssignment,
    Placement,
    WorkerResources,
)


def workers(n: int, cores: int = 4, memory: int = 4096) -> list[WorkerResources]:
    return [WorkerResources(f"w{i}", cores, memory) for i in range(n)]


def by_worker(assignments: list[ExecutorAssignment]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for a in assignments:
        out[a.worker_id].append(a.cores)
    return dict(out)


def test_spread_out_uses_every_worker() -> None:
    app = AppDemand("app-1", cores_left=6, memory_per_executor_mb=512, cores_per_executor=1)
    got = by_worker(Placement(spread_out=True).place_executors([app], workers(3)))
    assert {w: len(c) for w, c in got.items()} == {"w0": 2, "w1": 2, "w2": 2}


def test_consolidate_fills_one_worker_first() -> None:
    app = AppDemand("app-1", cores_left=6, memory_per_executor_mb=512, cores_per_executor=1)
    got = by_worker(Placement(spread_out=False).place_executors([app], workers(3)))
    assert sorted(len(c) for c in got.values()) == [2, 4]


def test_one_executor_per_worker_takes_assigned_cores() -> None:
    app = AppDemand("app-1", cores_left=100, memory_per_executor_mb=512, cores_per_executor=0)
    got = Placement().place_executors([app], workers(2, cores=3))
    assert sorted((a.worker_id, a.cores) for a in got) == [("w0", 3), ("w1", 3)]


def test_one_executor_per_worker_with_cores_max_spreads() -> None:
    app = AppDemand("app-1", cores_left=4, memory_per_executor_mb=512, cores_per_executor=0)
    got = Placement().place_executors([app], workers(2, cores=8))
    assert sorted(a.cores for a in got) == [2, 2]
    got = Placement(spread_out=False).place_executors([app], workers(2, cores=8))
    assert [a.cores for a in got] == [4]


def test_cores_max_is_respected() -> None:
    app = AppDemand("app-1", cores_left=3, memory_per_executor_mb=1, cores_per_executor=2)
    got = Placement().place_executors([app], workers(4))
    assert sum(a.cores for a in got) == 2  # a third core cannot make a 2-core executor


def test_memory_limits_executors_per_worker() -> None:
    app = AppDemand("app-1", cores_left=100, memory_per_executor_mb=1500, cores_per_executor=1)
    got = by_worker(Placement().place_executors([app], workers(2, cores=8, memory=4000)))
    assert {w: len(c) for w, c in got.items()} == {"w0": 2, "w1": 2}


def test_worker_without_memory_is_skipped() -> None:
    small = [WorkerResources("tiny", 8, 100), WorkerResources("big", 2, 4096)]
    app = AppDemand("app-1", cores_left=10, memory_per_executor_mb=1024, cores_per_executor=0)
    got = Placement().place_executors([app], small)
    assert [(a.worker_id, a.cores) for a in got] == [("big", 2)]


def test_fifo_first_app_takes_everything() -> None:
    first = AppDemand("app-1", cores_left=1000, memory_per_executor_mb=1, cores_per_executor=1)
    second = AppDemand("app-2", cores_left=1000, memory_per_executor_mb=1, cores_per_executor=1)
    got = Placement().place_executors([first, second], workers(2))
    assert {a.app_id for a in got} == {"app-1"}
    assert len(got) == 8


def test_second_app_gets_what_is_left() -> None:
    first = AppDemand("app-1", cores_left=3, memory_per_executor_mb=1, cores_per_executor=1)
    second = AppDemand("app-2", cores_left=1000, memory_per_executor_mb=1, cores_per_executor=1)
    got = Placement().place_executors([first, second], workers(2))
    counts = Counter(a.app_id for a in got)
    assert counts == {"app-1": 3, "app-2": 5}


def test_executor_limit_caps_new_executors() -> None:
    app = AppDemand(
        "app-1",
        cores_left=100,
        memory_per_executor_mb=1,
        cores_per_executor=1,
        executors_running=2,
        executor_limit=3,
    )
    assert len(Placement().place_executors([app], workers(4))) == 1
    zero = AppDemand("app-2", 100, 1, 1, executors_running=0, executor_limit=0)
    assert Placement().place_executors([zero], workers(4)) == []


def test_no_workers_no_assignments() -> None:
    app = AppDemand("app-1", cores_left=4, memory_per_executor_mb=1)
    assert Placement().place_executors([app], []) == []


def test_drivers_need_room_and_round_robin() -> None:
    placement = Placement(rng=random.Random(7))
    drivers = [DriverDemand(f"d{i}", 1, 512) for i in range(4)]
    placed, remaining = placement.place_drivers(drivers, workers(2, cores=2, memory=1024))
    assert len(placed) == 4
    assert Counter(w for _, w in placed) == {"w0": 2, "w1": 2}
    assert all(r.cores_free == 0 and r.memory_free_mb == 0 for r in remaining)
    too_big = [DriverDemand("huge", 16, 1)]
    assert placement.place_drivers(too_big, workers(2))[0] == []


# ---- properties -------------------------------------------------------------

worker_strategy = st.lists(
    st.tuples(st.integers(0, 16), st.integers(0, 16384)), min_size=0, max_size=12
)
app_strategy = st.lists(
    st.tuples(
        st.integers(0, 64),  # cores left
        st.integers(0, 4096),  # memory per executor
        st.integers(0, 5),  # cores per executor (0 = one per worker)
        st.integers(0, 4),  # executors running
        st.one_of(st.none(), st.integers(0, 10)),  # executor limit
    ),
    min_size=0,
    max_size=8,
)


def build(
    raw_workers: list[tuple[int, int]], raw_apps: list[tuple[int, int, int, int, int | None]]
) -> tuple[list[WorkerResources], list[AppDemand]]:
    ws = [WorkerResources(f"w{i}", c, m) for i, (c, m) in enumerate(raw_workers)]
    apps = [
        AppDemand(f"app-{i}", left, mem, cpe, running, limit)
        for i, (left, mem, cpe, running, limit) in enumerate(raw_apps)
    ]
    return ws, apps


@settings(max_examples=400, deadline=None)
@given(worker_strategy, app_strategy, st.booleans())
def test_never_overcommits(
    raw_workers: list[tuple[int, int]],
    raw_apps: list[tuple[int, int, int, int, int | None]],
    spread: bool,
) -> None:
    ws, apps = build(raw_workers, raw_apps)
    got = Placement(spread_out=spread).place_executors(apps, ws)
    free = {w.worker_id: w for w in ws}
    used_cores: Counter[str] = Counter()
    used_mem: Counter[str] = Counter()
    for a in got:
        used_cores[a.worker_id] += a.cores
        used_mem[a.worker_id] += a.memory_mb
        assert a.cores > 0
    for wid, cores in used_cores.items():
        assert cores <= free[wid].cores_free
        assert used_mem[wid] <= free[wid].memory_free_mb
    demands = {app.app_id: app for app in apps}
    per_app_cores: Counter[str] = Counter()
    per_app_execs: Counter[str] = Counter()
    per_app_workers: dict[str, Counter[str]] = defaultdict(Counter)
    for a in got:
        per_app_cores[a.app_id] += a.cores
        per_app_execs[a.app_id] += 1
        per_app_workers[a.app_id][a.worker_id] += 1
        app = demands[a.app_id]
        assert a.memory_mb == app.memory_per_executor_mb
        if app.cores_per_executor:
            assert a.cores == app.cores_per_executor
    for app_id, cores in per_app_cores.items():
        app = demands[app_id]
        assert cores <= app.cores_left
        if app.executor_limit is not None:
            assert app.executors_running + per_app_execs[app_id] <= app.executor_limit
        if app.cores_per_executor == 0:
            assert max(per_app_workers[app_id].values()) == 1


@settings(max_examples=300, deadline=None)
@given(worker_strategy, app_strategy, st.booleans())
def test_first_app_is_not_starved_by_later_ones(
    raw_workers: list[tuple[int, int]],
    raw_apps: list[tuple[int, int, int, int, int | None]],
    spread: bool,
) -> None:
    """FIFO: the first app gets exactly what it would get alone."""
    ws, apps = build(raw_workers, raw_apps)
    if not apps:
        return
    placement = Placement(spread_out=spread)
    alone = [a for a in placement.place_executors(apps[:1], ws)]
    together = [a for a in placement.place_executors(apps, ws) if a.app_id == apps[0].app_id]
    assert sum(a.cores for a in alone) == sum(a.cores for a in together)


@settings(max_examples=300, deadline=None)
@given(worker_strategy, st.integers(1, 64), st.integers(1, 4), st.booleans())
def test_grants_all_it_can(
    raw_workers: list[tuple[int, int]], cores_left: int, per_exec: int, spread: bool
) -> None:
    """After placement, no worker could still host another executor the app wants."""
    ws = [WorkerResources(f"w{i}", c, m) for i, (c, m) in enumerate(raw_workers)]
    app = AppDemand("app-0", cores_left, 256, per_exec)
    got = Placement(spread_out=spread).place_executors([app], ws)
    granted = sum(a.cores for a in got)
    left = cores_left - granted
    used: Counter[str] = Counter()
    for a in got:
        used[a.worker_id] += 1
    for w in ws:
        cores_after = w.cores_free - used[w.worker_id] * per_exec
        mem_after = w.memory_free_mb - used[w.worker_id] * 256
        assert not (left >= per_exec and cores_after >= per_exec and mem_after >= 256)


@settings(max_examples=200, deadline=None)
@given(
    worker_strategy,
    st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8192)), max_size=10),
    st.integers(0, 1000),
)
def test_drivers_never_overcommit(
    raw_workers: list[tuple[int, int]], raw_drivers: list[tuple[int, int]], seed: int
) -> None:
    ws = [WorkerResources(f"w{i}", c, m) for i, (c, m) in enumerate(raw_workers)]
    drivers = [DriverDemand(f"d{i}", c, m) for i, (c, m) in enumerate(raw_drivers)]
    placed, remaining = Placement(rng=random.Random(seed)).place_drivers(drivers, ws)
    assert len({d for d, _ in placed}) == len(placed)
    assert all(r.cores_free >= 0 and r.memory_free_mb >= 0 for r in remaining)
    demand = {d.driver_id: d for d in drivers}
    for w, r in zip(ws, remaining, strict=True):
        on_it = [demand[d] for d, wid in placed if wid == w.worker_id]
        assert r.cores_free == w.cores_free - sum(d.cores for d in on_it)
        assert r.memory_free_mb == w.memory_free_mb - sum(d.memory_mb for d in on_it)
