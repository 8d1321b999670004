"""What the listener bus costs per task on the driver's hot path (issue 11 leftover 5).

Usage:
    bench_task_events.py [--tasks N] [--rounds R] [--batch B]

A real TaskScheduler and DAGScheduler run jobs of 10,000 one-element
partitions, N tasks in all, on a fake executor of B cores: every round of the
loop hands the scheduler the FINISHED statuses of every task launched since
the last one in one `status_update` (which also launches the next tasks), as
an executor's batched replies do. Nothing leaves the process; times are the
process's CPU seconds (steadier than wall time on a shared machine). The same job
runs with four sets of listeners, interleaved R times:

- none: nobody listens (no per-task event is built);
- tracker: the status tracker's registry only (what every SparkContext has);
- noop: one listener of every event that does nothing (the cost of building
  and posting the events themselves);
- tracker+ui: the registry and the UI's status store.

The table gives the median CPU microseconds per task (job submission, launch,
status, result, events) of each, and its difference to `none`.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "scheduler" / "unit"))

from conftest import FakeContext  # noqa: E402  (the unit tests' RDDHost without processes)
from scheduler.api.tracker import JobRegistry  # noqa: E402
from scheduler.core.events import SchedulerEvent  # noqa: E402
from scheduler.core.taskscheduler import (  # noqa: E402
    ExecutorHandle,
    SchedulerSettings,
    TaskScheduler,
)
from sparkctl.v1 import scheduler_pb2 as pb  # noqa: E402

MODES = ("none", "tracker", "noop", "tracker+ui")
#: Tasks per job: a TaskSetManager's pending list is not made for 200k at once.
JOB_SIZE = 10_000


class _Listener:
    def task_succeeded(self, index: int, result: Any) -> None:
        pass

    def job_failed(self, error: BaseException) -> None:
        raise error


def _collect(_: Any, it: Any) -> list[Any]:
    return list(it)


def _noop(event: SchedulerEvent) -> None:
    pass


def run(mode: str, tasks: int, batch: int) -> float:
    """Seconds per task of one job of `tasks` tasks with `mode`'s listeners."""
    sched = TaskScheduler(SchedulerSettings(), lambda bid: b"", lambda updates: None)
    if mode in ("tracker", "tracker+ui"):
        JobRegistry().listen(sched.bus)
    if mode == "noop":
        sched.bus.add(_noop)
    if mode == "tracker+ui":
        from scheduler.status.ui import AppStatusStore

        store = AppStatusStore("app-bench", "bench")
        sched.bus.add(store)
    sent: list[Any] = []
    sched.register_executor(ExecutorHandle("e1", "h1", batch, sent.append))
    ctx = FakeContext()
    accumulators = pickle.dumps(({}, [], {}))
    result = pickle.dumps([0])
    spent = 0.0
    left = tasks
    while left > 0:
        size = min(left, JOB_SIZE)
        left -= size
        rdd = ctx.parallelize(list(range(size)), size)
        gc.collect()
        start = time.process_time()
        with sched.lock:
            sched.dag.submit_job(rdd, _collect, list(range(size)), _Listener())
        done = 0
        while done < size:
            launched = [t.task_id for m in sent if isinstance(m, pb.LaunchTasks) for t in m.tasks]
            sent.clear()
            if not launched:
                raise RuntimeError(f"{mode}: nothing launched after {done} tasks")
            statuses = [
                pb.TaskStatus(
                    task_id=task_id,
                    state=pb.TASK_STATE_FINISHED,
                    result=result,
                    accumulators=accumulators,
                    run_seconds=0.001,
                )
                for task_id in launched
            ]
            sched.status_update("e1", statuses)
            done += len(launched)
        spent += time.process_time() - start
    return spent / tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    modes = args.modes.split(",")
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for mode in modes:
            times[mode].append(run(mode, args.tasks, args.batch))
    base = statistics.median(times["none"]) if "none" in times else 0.0
    print(f"{args.tasks} tasks, batches of {args.batch}, {args.rounds} rounds (median)")
    print(f"{'listeners':<12} {'us/task':>8} {'vs none':>8}")
    for mode in modes:
        median = statistics.median(times[mode])
        print(f"{mode:<12} {median * 1e6:8.2f} {(median - base) * 1e6:+8.2f}")


if __name__ == "__main__":
    main()
