"""A Python worker's held-back replies go within ~_HOLD_SECONDS whatever runs next.

The worker holds the replies of tiny tasks to send them with the next task's; when
the next task runs long, its flusher thread sends them once they have waited
_HOLD_SECONDS, in one write that never interleaves with the main thread's.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

import pytest

from scheduler.executor import pyworker
from scheduler.executor.pyworker import WorkerRuntime

WAIT_S = 5.0


def _done(task_id: int, seconds: float = 0.0001) -> tuple[Any, ...]:
    """A finished task's reply, as run_task builds it (field 8: its run time)."""
    return ("done", task_id, "FINISHED", b"", b"", None, None, None, seconds)


@pytest.fixture
def worker(tmp_path: Any) -> Iterator[tuple[WorkerRuntime, Connection]]:
    """A runtime wired to one end of a pipe; the test plays the executor at the other."""
    ours, theirs = Pipe()
    runtime = WorkerRuntime(str(tmp_path), "exec-1", "127.0.0.1", 512.0)
    runtime.conn = ours
    # Another task is queued: a tiny task's reply may be held.
    runtime.inbox.append(("task", 99, "set", 0, 0, None, None, 8))
    try:
        yield runtime, theirs
    finally:
        ours.close()
        theirs.close()


def _receive(conn: Connection) -> Any:
    assert conn.poll(WAIT_S), f"no message from the worker within {WAIT_S} s"
    return pickle.loads(conn.recv_bytes())


def test_a_held_reply_goes_without_a_next_reply(
    worker: tuple[WorkerRuntime, Connection],
) -> None:
    runtime, executor = worker
    started = time.monotonic()
    runtime.reply(8, _done(1))
    assert runtime.held == [_done(1)]  # held: more tasks are queued
    # No other reply comes (the next task hangs): the flusher sends it.
    assert _receive(executor) == _done(1)
    waited = time.monotonic() - started
    assert waited >= pyworker._HOLD_SECONDS * 0.9
    assert waited < 1.0, f"the held reply took {waited:.3f} s"
    assert runtime.held == []
    assert not executor.poll(0.05)  # sent once


def test_replies_held_together_go_in_one_message(
    worker: tuple[WorkerRuntime, Connection],
) -> None:
    runtime, executor = worker
    runtime.reply(8, _done(1))
    runtime.reply(8, ("cached", [(3, 0)]), _done(2))
    # A task that is not tiny: its reply takes the held ones along, in one write.
    runtime.reply(8, _done(3, seconds=0.5))
    assert _receive(executor) == (
        "batch",
        [_done(1), ("cached", [(3, 0)]), _done(2), _done(3, 0.5)],
    )
    assert not executor.poll(pyworker._HOLD_SECONDS * 4)  # the flusher finds nothing to send


def test_batches_after_a_flush_are_bounded_too(
    worker: tuple[WorkerRuntime, Connection],
) -> None:
    runtime, executor = worker
    for task_id in range(1, 6):
        started = time.monotonic()
        runtime.reply(8, _done(task_id))
        assert _receive(executor) == _done(task_id)
        assert time.monotonic() - started < 1.0
    flusher = runtime._flusher
    assert flusher is not None and flusher.daemon  # one thread, started once
    assert flusher in threading.enumerate()


def test_nothing_is_held_when_no_task_is_queued(
    worker: tuple[WorkerRuntime, Connection],
) -> None:
    runtime, executor = worker
    runtime.inbox.clear()
    runtime.reply(8, _done(1))
    assert runtime.held == []
    assert executor.poll(0) and pickle.loads(executor.recv_bytes()) == _done(1)
    assert runtime._flusher is None  # nothing was ever held: no thread


def test_nothing_is_held_when_the_flusher_cannot_start(
    worker: tuple[WorkerRuntime, Connection], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, executor = worker

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    runtime.reply(8, _done(1))
    assert runtime.held == []  # nothing would bound its wait: it goes at once
    assert executor.poll(0) and pickle.loads(executor.recv_bytes()) == _done(1)
    assert runtime._flusher is None
