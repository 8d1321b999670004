"""PySpark compatibility: a stage profile's task cpus count against executor cores.

``TaskResourceRequests().cpus(n)`` on a stage (``rdd.withResources``) makes each of
its tasks take n of its executor's cores, as ``spark.task.cpus`` does for every
stage: on a 4-core executor 3-cpu tasks run one at a time and 2-cpu tasks two
(PySpark's test_stage_sched checks the same). Task-only profiles need no dynamic
allocation on a standalone cluster. Each task records when it ran.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

from scheduler import TaskContext
from scheduler.resource import ResourceProfileBuilder, TaskResourceRequests

#: PySpark's local-cluster takes 30 s to start and, on a loaded host, as long again.
pytestmark = pytest.mark.timeout(300)


#: How long each task runs once its group is together: a task the scheduler should
#: not have started meanwhile would start within it and overlap them.
TASK_SECONDS = 1.5
#: How long a task waits for the others that should run beside it. Their Python
#: workers start one by one, seconds apart on a loaded host (a fixed sleep saw 3 of 4
#: at once under load 6-8), so the tasks meet before they hold; a scheduler that
#: starts fewer at once makes them wait this long and then fail the count.
MEET_SECONDS = 30.0


def _timed(path: str, at_once: int, tasks: int) -> Any:
    """Each task marks its start, waits (bounded) until as many tasks run as should run
    at once (fewer at the end: as many as are left), then holds `TASK_SECONDS`."""

    def run(index: int, iterator: Any) -> Any:
        start = time.time()
        open(os.path.join(path, f"started-{index}"), "w").close()
        deadline = time.monotonic() + MEET_SECONDS
        while time.monotonic() < deadline:
            names = os.listdir(path)
            began = sum(name.startswith("started-") for name in names)
            ended = sum(name.startswith("task-") for name in names)
            if began - ended >= min(at_once, tasks - ended):
                break
            time.sleep(0.02)
        time.sleep(TASK_SECONDS)
        ctx = TaskContext.get()
        assert ctx is not None
        with open(os.path.join(path, f"task-{index}.tmp"), "w") as f:
            json.dump([start, time.time()], f)
        os.rename(os.path.join(path, f"task-{index}.tmp"), os.path.join(path, f"task-{index}"))
        return [(index, ctx.cpus())]

    return run


def _most_at_once(path: Path) -> int:
    """How many of the tasks recorded under `path` ran at the same moment, at most."""
    spans = [json.loads(p.read_text()) for p in path.glob("task-*") if p.suffix != ".tmp"]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_a_stage_profiles_cpus_limit_its_tasks_at_once(tmp_path: Path) -> None:
    sc = support.new_context(
        "local-cluster[1,4,1024]", "compat-stage-cpus", **{"spark.executor.memory": "512m"}
    )
    try:
        for cpus, tasks, at_once in ((3, 2, 1), (2, 4, 2)):
            marks = tmp_path / f"cpus-{cpus}"
            marks.mkdir()
            profile = ResourceProfileBuilder().require(TaskResourceRequests().cpus(cpus)).build
            rdd = sc.parallelize(range(tasks), tasks).withResources(profile)
            got = rdd.mapPartitionsWithIndex(_timed(str(marks), at_once, tasks)).collect()
            assert got == [(i, cpus) for i in range(tasks)]
            assert _most_at_once(marks) == at_once, cpus
        # The default profile's tasks still take one core each: four at once.
        marks = tmp_path / "default"
        marks.mkdir()
        got = sc.parallelize(range(4), 4).mapPartitionsWithIndex(_timed(str(marks), 4, 4)).collect()
        assert got == [(i, 1) for i in range(4)]
        assert _most_at_once(marks) == 4
    finally:
        sc.stop()


def test_a_profile_asking_fewer_cpus_than_spark_task_cpus_runs_more_at_once(
    tmp_path: Path,
) -> None:
    sc = support.new_context(
        "local-cluster[1,4,1024]",
        "compat-stage-fewer-cpus",
        **{"spark.executor.memory": "512m", "spark.task.cpus": "2"},
    )
    try:
        profile = ResourceProfileBuilder().require(TaskResourceRequests().cpus(1)).build
        marks = tmp_path / "cpus-1"
        marks.mkdir()
        rdd = sc.parallelize(range(4), 4).withResources(profile)
        got = rdd.mapPartitionsWithIndex(_timed(str(marks), 4, 4)).collect()
        assert got == [(i, 1) for i in range(4)]
        assert _most_at_once(marks) == 4
        # The default profile's 2-cpu tasks after it: two at once, never more.
        marks = tmp_path / "default"
        marks.mkdir()
        got = sc.parallelize(range(6), 6).mapPartitionsWithIndex(_timed(str(marks), 2, 6)).collect()
        assert got == [(i, 2) for i in range(6)]
        assert _most_at_once(marks) == 2
    finally:
        sc.stop()
