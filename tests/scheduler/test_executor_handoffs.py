"""Fewer hand-offs per tiny job (issue 13): a small job's statuses share one message.

Each StatusUpdates message costs a gRPC write on the executor and a read, a
dispatch and the scheduler's lock on the driver. A two-task job whose tasks end
together reports both in one message; code larger than the lazy-forget bound
is still dropped by the workers right away, and jobs keep giving right answers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google.protobuf.message import Message

from rpcenv import RpcEndpointRef
from scheduler import SparkConf, SparkContext
from scheduler.backend.endpoint import SchedulerEndpoint
from sparkctl.v1 import scheduler_pb2 as pb

JOBS = 40


@pytest.fixture
def updates(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The number of statuses in each StatusUpdates the driver gets."""
    seen: list[int] = []
    receive = SchedulerEndpoint.receive

    def counting(self: SchedulerEndpoint, message: Message, sender: RpcEndpointRef | None) -> None:
        if isinstance(message, pb.StatusUpdates):
            seen.append(len(message.statuses))
        receive(self, message, sender)

    monkeypatch.setattr(SchedulerEndpoint, "receive", counting)
    yield seen


def _adder(n: int, code: list[int] | None = None) -> Callable[[int], int]:
    """x + n (+ len(code)): `code` travels in the stage's code, making it that large."""
    extra = len(code) if code is not None else 0
    return lambda x: x + n + extra + 0 * len(code or ())


def _scaler(n: int) -> Callable[[int], int]:
    return lambda x: x * n


def _context() -> SparkContext:
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("executor-handoffs")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    return SparkContext(conf=conf)


def test_a_tiny_two_task_job_reports_both_tasks_in_one_message(updates: list[int]) -> None:
    sc = _context()
    try:
        for _ in range(5):  # warm: the executor learns its tasks are tiny
            assert sc.parallelize(range(100), 2).count() == 100
        updates.clear()
        for n in range(JOBS):
            shifted = sc.parallelize(range(1000), 2).map(_adder(n))
            assert shifted.sum() == sum(range(1000)) + 1000 * n
        assert sum(updates) == 2 * JOBS
        # One message a job when both end together; under load a sibling may miss the
        # few milliseconds a status waits for it, so allow some jobs two.
        assert len(updates) < 1.75 * JOBS, f"{len(updates)} messages for {JOBS} jobs"
    finally:
        sc.stop()


def test_large_and_small_stage_code_is_forgotten_and_jobs_stay_right() -> None:
    sc = _context()
    try:
        big = list(range(40_000))  # ~200 KB of code: forgotten at once, not lazily
        for n in range(3):
            shift = n + len(big)
            rdd = sc.parallelize(range(10), 2).map(_adder(n, big))
            assert rdd.sum() == 45 + 10 * shift
        for n in range(80):  # more forgotten task sets than wait for a task in one go
            assert sc.parallelize(range(10), 2).map(_scaler(n)).sum() == 45 * n
    finally:
        sc.stop()
