"""Timers that post messages to an endpoint's own inbox.

Endpoints never sleep or block: a periodic `Ticker` or a one-shot `later()`
sends a message to the endpoint's self ref, and the endpoint handles it on its
own thread. This module must never touch endpoint state directly.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

__all__ = ["Ticker", "later"]

log = logging.getLogger(__name__)


class Ticker:
    """Calls `action` every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(self, name: str, interval: float, action: Callable[[], None]) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {interval}")
        self._interval = interval
        self._action = action
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        """Start ticking; returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                self._action()
            except Exception:  # a failed tick must not end the ticker
                log.exception("timer %s failed", self._thread.name)

    def stop(self) -> None:
        """Stop ticking (does not wait for a running action)."""
        self._stopped.set()


def later(delay: float, action: Callable[[], None], name: str = "timer") -> threading.Timer:
    """Run `action` once after `delay` seconds on a daemon thread."""
    timer = threading.Timer(max(0.0, delay), action)
    timer.name = name
    timer.daemon = True
    timer.start()
    return timer
