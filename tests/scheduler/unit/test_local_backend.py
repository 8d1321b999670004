"""The local backend replaces a dead executor a bounded number of times; past that it
fails the running jobs and lets the context go, instead of leaving them waiting."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from scheduler.backend.local import LocalBackend


class _Scheduler:
    """The task scheduler's job control, over two running jobs."""

    def __init__(self) -> None:
        self.jobs: dict[int, dict[str, str]] = {7: {}, 9: {}}
        self.cancelled: list[tuple[int, str]] = []

    def cancel_jobs(self, where: Callable[[Mapping[str, str]], bool] | None, reason: str) -> None:
        for job_id, props in list(self.jobs.items()):
            if where is None or where(props):
                self.cancelled.append((job_id, reason))
                del self.jobs[job_id]


def test_past_its_restarts_the_backend_fails_the_jobs_and_gives_up() -> None:
    scheduler = _Scheduler()
    backend = LocalBackend(scheduler, "spark://x@127.0.0.1:1", "local-1", 2, {}, max_restarts=0)  # type: ignore[arg-type]
    dead = threading.Event()
    backend.on_dead = dead.set
    backend.executor_lost("0", "executor disconnected")
    assert [job for job, _ in scheduler.cancelled] == [7, 9]
    reason = scheduler.cancelled[0][1]
    assert "local executor was lost 1 times" in reason and "executor disconnected" in reason
    assert dead.wait(5)
    assert not backend.processes  # nothing relaunched
