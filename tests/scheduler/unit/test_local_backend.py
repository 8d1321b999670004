"""The local backend replaces a dead executor a bounded number of times; past that it
fails the running jobs and lets the context go, instead of leaving them waiting."""

from __future__ import annotations

import threading
from typing import Any

from scheduler.backend.local import LocalBackend


class _Dag:
    def __init__(self) -> None:
        self.jobs: dict[int, Any] = {7: object(), 9: object()}
        self.cancelled: list[tuple[int, str]] = []

    def cancel_job(self, job_id: int, reason: str) -> None:
        self.cancelled.append((job_id, reason))
        self.jobs.pop(job_id, None)


class _Scheduler:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.dag = _Dag()


def test_past_its_restarts_the_backend_fails_the_jobs_and_gives_up() -> None:
    scheduler = _Scheduler()
    backend = LocalBackend(scheduler, "spark://x@127.0.0.1:1", "local-1", 2, {}, max_restarts=0)  # type: ignore[arg-type]
    dead = threading.Event()
    backend.on_dead = dead.set
    backend.executor_lost("0", "executor disconnected")
    assert [job for job, _ in scheduler.dag.cancelled] == [7, 9]
    reason = scheduler.dag.cancelled[0][1]
    assert "local executor was lost 1 times" in reason and "executor disconnected" in reason
    assert dead.wait(5)
    assert not backend.processes  # nothing relaunched
