"""Stand-ins shared by the scheduler unit tests: a DAG's sink and listener, an executor's pipes."""

from __future__ import annotations

import pickle
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.core.dag import Job, TaskSet
from scheduler.executor import runtime as _executor
from scheduler.executor.runtime import ExecutorRuntime, _Slot


class Sink:
    """Where a DAGScheduler announces jobs, submits task sets, cancels stages: it records all."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.task_sets: list[TaskSet] = []
        self.cancelled: list[int] = []

    def job_started(self, job: Job) -> None:
        self.started.append(job.id)

    def submit_task_set(self, task_set: TaskSet) -> None:
        self.task_sets.append(task_set)

    def cancel_stage(self, stage_id: int, reason: str) -> None:
        self.cancelled.append(stage_id)


class Listener:
    """A job's listener: its results by partition, and the error it failed with."""

    def __init__(self) -> None:
        self.results: dict[int, Any] = {}
        self.error: BaseException | None = None

    def task_succeeded(self, index: int, result: Any) -> None:
        self.results[index] = result

    def job_failed(self, error: BaseException) -> None:
        self.error = error


def collect(_: Any, it: Any) -> list[Any]:
    return list(it)


class FakePipe:
    """Stands in for a Python worker's connection: records the tasks sent to it."""

    def __init__(self) -> None:
        self.tasks: list[int] = []
        self.sent = threading.Event()

    def send_bytes(self, data: bytes) -> None:
        message = pickle.loads(data)
        # Several messages for one worker travel as one ("tasks", [...]).
        for one in message[1] if message[0] == "tasks" else [message]:
            if one[0] == "task":
                self.tasks.append(one[1])
                self.sent.set()

    def close(self) -> None:
        pass


def fake_executor(monkeypatch: pytest.MonkeyPatch) -> Iterator[ExecutorRuntime]:
    """An ExecutorRuntime of 2 cores whose Python workers are FakePipes (no processes)."""

    def start(slot: _Slot) -> None:
        slot.conn = FakePipe()  # type: ignore[assignment]
        slot.stages = set()
        slot.cached.clear()
        slot.splits.clear()

    monkeypatch.setattr(_Slot, "start", start)
    monkeypatch.setattr(_Slot, "kill", lambda slot: None)
    monkeypatch.setattr(ExecutorRuntime, "_start_reader", lambda self, slot: None)
    monkeypatch.setattr(_executor.os, "cpu_count", lambda: 2)
    rt = ExecutorRuntime("0", "127.0.0.1", 2, "/nonexistent", 512.0)
    rt.on_statuses = lambda batch: None
    try:
        yield rt
    finally:
        rt.stop()
