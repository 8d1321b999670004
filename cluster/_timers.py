"""Timers that post messages to an endpoint's own inbox.

Endpoints never sleep or block: a periodic `Ticker` or a one-shot `later()`
sends a message to the endpoint's self ref, and the endpoint handles it on its
own thread. This module must never touch endpoint state directly.

A `Clock` is what an endpoint knows of time: monotonic seconds and one-shot
timers. The Master and the Worker take one (`SYSTEM_CLOCK` by default), so
tests pass `cluster.testing.FakeClock`, whose timers fire only when the test
advances it: back-offs and startup graces are tested without threads or sleeps.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "Ticker", "later"]

log = logging.getLogger(__name__)


class Ticker:
    """Calls `action` every `interval` seconds on a daemon thread until `stop()`.

    `set_interval` changes the period at once (a worker told its heartbeat
    interval by the Master must not wait out its old, longer period first).
    """

    def __init__(self, name: str, interval: float, action: Callable[[], None]) -> None:
        _check_interval(name, interval)
        self._name = name
        self._interval = interval
        self._action = action
        self._stopped = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def interval(self) -> float:
        """The current period in seconds."""
        return self._interval

    def start(self) -> Ticker:
        """Start ticking; returns self."""
        self._thread.start()
        return self

    def set_interval(self, interval: float) -> None:
        """Tick every `interval` seconds from now on, counted from the last tick."""
        _check_interval(self._name, interval)
        with self._changed:
            self._interval = interval
            self._changed.notify_all()

    def _run(self) -> None:
        last = time.monotonic()
        while True:
            with self._changed:
                while not self._stopped:
                    remaining = last + self._interval - time.monotonic()
                    if remaining <= 0:
                        break
                    self._changed.wait(remaining)
                if self._stopped:
                    return
            last = time.monotonic()
            try:
                self._action()
            except Exception:  # a failed tick must not end the ticker
                log.exception("timer %s failed", self._name)

    def stop(self) -> None:
        """Stop ticking (does not wait for a running action)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()


def _check_interval(name: str, interval: float) -> None:
    if not interval > 0:
        raise ValueError(f"{name}: the interval must be positive, not {interval}")


def later(delay: float, action: Callable[[], None], name: str = "timer") -> threading.Timer:
    """Run `action` once after `delay` seconds on a daemon thread."""
    timer = threading.Timer(max(0.0, delay), action)
    timer.name = name
    timer.daemon = True
    timer.start()
    return timer


class Clock(Protocol):
    """Monotonic seconds (`clock()`) and one-shot timers on the same time line."""

    def __call__(self) -> float:
        """Monotonic seconds now."""
        ...

    def later(self, delay: float, action: Callable[[], None], name: str) -> None:
        """Run `action` once, `delay` seconds from now (it must only post a message)."""
        ...


class SystemClock:
    """`time.monotonic` and daemon `threading.Timer`s: the clock of a real endpoint."""

    def __call__(self) -> float:
        return time.monotonic()

    def later(self, delay: float, action: Callable[[], None], name: str) -> None:
        later(delay, action, name)


SYSTEM_CLOCK: Clock = SystemClock()
