"""JobWaiter: a finished job's thread is woken after the status batch that finished it."""

from __future__ import annotations

import threading

from scheduler.core.jobs import JobWaiter, wakeups_after


def test_a_waiter_finished_inside_wakeups_after_wakes_when_it_ends() -> None:
    waiter = JobWaiter(2)
    with wakeups_after():
        waiter.task_succeeded(0, "a")
        waiter.task_succeeded(1, "b")
        with wakeups_after():  # nested: the outer context's end wakes it
            failed = JobWaiter(1)
            failed.job_failed(RuntimeError("lost"))
        assert not waiter.wait(0) and not failed.wait(0)
    assert waiter.wait(0) and waiter.results == ["a", "b"]
    assert failed.wait(0) and isinstance(failed.error, RuntimeError)


def test_a_waiter_outside_wakeups_after_wakes_at_once_and_on_other_threads() -> None:
    waiter = JobWaiter(1)
    waiter.task_succeeded(0, 1)
    assert waiter.wait(0)
    other = JobWaiter(1)
    with wakeups_after():  # per thread: another thread's finish is not held back
        thread = threading.Thread(target=other.task_succeeded, args=(0, 2))
        thread.start()
        thread.join(5)
        assert other.wait(0)


def test_wakeups_after_wakes_even_when_the_batch_raises() -> None:
    waiter = JobWaiter(1)
    try:
        with wakeups_after():
            waiter.task_succeeded(0, 1)
            raise ValueError("a bad status")
    except ValueError:
        pass
    assert waiter.wait(0)
