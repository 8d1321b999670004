"""Which workers are DEAD: silent past `spark.worker.timeout`, or disconnected past a grace.

A plain decision class with no I/O: the Master asks it on every
`CheckWorkerTimeouts` and acts on the answer. Two rules shape it:

- **The Master's own lag never kills a worker.** A check is judged as of the
  moment its timer *issued* it, not the moment the Master got round to it:
  the inbox is FIFO, so every heartbeat that arrived before the check was
  queued has been handled by then. A Master busy for a minute (placing
  thousands of executors, a status storm) finds its workers' heartbeats
  queued ahead of the check, not missing.
- **A closed connection is a stronger sign than silence.** A worker whose
  connection closed and that did not come back (a heartbeat or a new
  registration) within `spark.sparkctl.worker.disconnectGrace` is DEAD then,
  instead of a whole `spark.worker.timeout` later: a live worker re-registers
  at once after a drop (`Worker.on_disconnected`).

It must never send anything or change a worker's state itself.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Iterable

from cluster.master_state import WorkerInfo
from cluster.settings import WORKER_DISCONNECT_GRACE
from rpcenv import Conf
from sparkctl.v1 import deploy_pb2 as pb

__all__ = ["DEFAULT_DISCONNECT_GRACE_S", "Verdict", "WorkerLiveness"]

#: `spark.sparkctl.worker.disconnectGrace`: how long a dropped worker may take to return.
DEFAULT_DISCONNECT_GRACE_S = 5.0
#: DEAD workers stay listed (in the UI, in /json) for this many timeouts, then are forgotten.
FORGET_AFTER_TIMEOUTS = 15
_MIN_INTERVAL_S = 0.05


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One worker to declare DEAD, and why (for the log and its drivers)."""

    worker: WorkerInfo
    reason: str


class WorkerLiveness:
    """Liveness rules of the Master (see the module docstring).

    Args:
        timeout: `spark.worker.timeout` in seconds (silence that makes a worker DEAD).
        disconnect_grace: seconds a worker whose connection closed may take to come back.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        timeout: float,
        disconnect_grace: float = DEFAULT_DISCONNECT_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not timeout > 0:
            raise ValueError(f"spark.worker.timeout must be positive, not {timeout}")
        if not disconnect_grace >= 0:
            raise ValueError(
                f"spark.sparkctl.worker.disconnectGrace must be >= 0, not {disconnect_grace}"
            )
        self.timeout = timeout
        self.disconnect_grace = disconnect_grace
        self.clock = clock
        # When each queued CheckWorkerTimeouts was issued, oldest first (appended by
        # the timer thread, taken by the endpoint: deque ends are thread-safe).
        self._issued: collections.deque[float] = collections.deque(maxlen=1024)

    @classmethod
    def from_conf(
        cls, conf: Conf, timeout: float, clock: Callable[[], float] = time.monotonic
    ) -> WorkerLiveness:
        """The rules `conf` asks for (`spark.sparkctl.worker.disconnectGrace`)."""
        return cls(timeout, conf.get(WORKER_DISCONNECT_GRACE), clock)

    @property
    def heartbeat_interval(self) -> float:
        """What the Master tells its workers: a quarter of the timeout."""
        return max(_MIN_INTERVAL_S, self.timeout / 4)

    @property
    def check_interval(self) -> float:
        """How often to check: every timeout/4, and at least twice per grace."""
        interval = self.timeout / 4
        if self.disconnect_grace > 0:
            interval = min(interval, self.disconnect_grace / 2)
        return max(_MIN_INTERVAL_S, interval)

    def issue(self, as_of: float | None = None) -> None:
        """Note that a check is being queued now (called by the timer, before it posts).

        Args:
            as_of: judge it as of this earlier time instead (a timer that fired late).
        """
        self._issued.append(self.clock() if as_of is None else as_of)

    def take_issue_time(self) -> float:
        """When the check being handled was issued (now, for one nobody issued)."""
        now = self.clock()
        try:
            return min(now, self._issued.popleft())
        except IndexError:
            return now

    def verdicts(self, workers: Iterable[WorkerInfo], as_of: float) -> list[Verdict]:
        """The ALIVE workers that are DEAD as of `as_of` (a check's issue time)."""
        dead: list[Verdict] = []
        for worker in workers:
            if not worker.alive:
                continue
            silent = as_of - worker.last_heartbeat
            if silent > self.timeout:
                reason = f"no heartbeat for {silent:.1f}s (spark.worker.timeout={self.timeout:g}s)"
                dead.append(Verdict(worker, reason))
                continue
            closed_at = worker.disconnected_at
            if closed_at is not None and as_of - closed_at > self.disconnect_grace:
                reason = (
                    f"its connection closed {as_of - closed_at:.1f}s ago and it did not come "
                    f"back (spark.sparkctl.worker.disconnectGrace={self.disconnect_grace:g}s)"
                )
                dead.append(Verdict(worker, reason))
        return dead

    def forgettable(self, workers: Iterable[WorkerInfo], now: float) -> list[WorkerInfo]:
        """DEAD workers listed long enough: dropped from the Master's records."""
        horizon = FORGET_AFTER_TIMEOUTS * self.timeout
        return [
            w
            for w in workers
            if w.state == pb.WORKER_STATE_DEAD and now - w.last_heartbeat > horizon
        ]
