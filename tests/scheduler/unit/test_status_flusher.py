"""The executor's status flusher (issue 13): held statuses go out within the delay,
and holding many of them wakes the flusher thread once, not once (twice) each."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _fakes import fake_executor

from cluster.testing import wait_until
from scheduler.executor import runtime as runtime_module


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    yield from fake_executor(monkeypatch)


def _done(task_id: int) -> tuple[Any, ...]:
    return ("done", task_id, "FINISHED", b"", b"", "", "", None, 0.001)


def test_held_statuses_wake_the_flusher_once_and_go_out_within_the_delay(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A linger far longer than any stall of this test thread on a loaded machine: the
    # count below is of the mechanism, not of timing.
    monkeypatch.setattr(runtime_module, "_FLUSHER_LINGER_SECONDS", 30.0)
    sent: list[list[int]] = []
    runtime.on_statuses = lambda batch: sent.append([r[1] for r in batch])
    wakes = 0
    real_set = runtime._status_pending.set

    def counting_set() -> None:
        nonlocal wakes
        wakes += 1
        real_set()

    runtime._status_pending.set = counting_set
    # Plenty of queued work: each status may wait for company (the flusher sends them).
    runtime._queue.extend((1000 + i, "s", i, 0) for i in range(10))
    delays = []
    for round_ in range(20):
        held_at = time.monotonic()
        runtime._report(_done(round_))
        assert wait_until(lambda r=round_: any(r in batch for batch in sent), timeout=2.0)
        delays.append(time.monotonic() - held_at)
    assert wakes == 1  # the flusher kept looking between rounds: no wake-up each
    assert sorted(t for batch in sent for t in batch) == list(range(20))
    # Within the delay (with generous slack for a loaded machine: the median round).
    assert sorted(delays)[len(delays) // 2] < runtime_module._STATUS_DELAY_SECONDS + 0.25


def test_the_flusher_sleeps_after_the_linger_and_is_woken_again(
    runtime: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runtime_module, "_FLUSHER_LINGER_SECONDS", 0.02)
    sent: list[int] = []
    got = threading.Event()

    def on_statuses(batch: list[Any]) -> None:
        sent.extend(r[1] for r in batch)
        got.set()

    runtime.on_statuses = on_statuses
    runtime._queue.extend((1000 + i, "s", i, 0) for i in range(10))
    runtime._report(_done(1))
    assert got.wait(2.0)
    assert wait_until(lambda: not runtime._flusher_polling, timeout=2.0)  # lingered, slept
    got.clear()
    runtime._report(_done(2))
    assert got.wait(2.0) and sent == [1, 2]
