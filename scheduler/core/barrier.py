"""The driver's barrier coordinator: barrier() and allGather() of a barrier stage.

Inside a barrier task, `BarrierTaskContext` reaches the coordinator on the
driver (through its executor): a sync round completes when every task of the
stage attempt sent the request of the same epoch, and fails them all after
spark.barrier.sync.timeout. The coordinator holds no lock of its own: the task
scheduler's lock serialises calls, and the timer thread takes it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["BarrierCoordinator"]


@dataclass
class _Round:
    """The requests of one barrier epoch of one stage attempt, by partition."""

    epoch: int
    method: str
    messages: dict[int, str] = field(default_factory=dict)
    #: partition -> (reply(messages), fail(error text)).
    waiters: dict[int, tuple[Callable[[list[str]], None], Callable[[str], None]]] = field(
        default_factory=dict
    )
    timer: threading.Timer | None = None


class BarrierCoordinator:
    """Syncs the tasks of each barrier stage attempt (Spark's BarrierCoordinator).

    Args:
        timeout: spark.barrier.sync.timeout in seconds.
        lock: the task scheduler's lock, taken by the timeout timer.
    """

    def __init__(self, timeout: float, lock: threading.RLock) -> None:
        self.timeout = timeout
        self._lock = lock
        #: (stage id, attempt) -> how many tasks, their addresses by partition.
        self._attempts: dict[tuple[int, int], dict[int, str]] = {}
        self._epochs: dict[tuple[int, int], int] = {}
        self._rounds: dict[tuple[int, int], _Round] = {}

    def launched(self, stage_id: int, attempt: int, addresses: dict[int, str]) -> None:
        """All tasks of a barrier stage attempt were launched, at these addresses."""
        self._attempts[(stage_id, attempt)] = dict(addresses)
        self._epochs[(stage_id, attempt)] = 0

    def finished(self, stage_id: int, attempt: int, reason: str) -> None:
        """The attempt ended: fail whatever still waits, forget it."""
        key = (stage_id, attempt)
        self._attempts.pop(key, None)
        self._epochs.pop(key, None)
        self._fail_round(key, reason)

    def request(
        self,
        stage_id: int,
        attempt: int,
        partition: int,
        epoch: int,
        method: str,
        message: str,
        reply: Callable[[list[str]], None],
        fail: Callable[[str], None],
    ) -> None:
        """A task's barrier()/allGather()/getTaskInfos(); answers through reply or fail."""
        key = (stage_id, attempt)
        name = f"Stage {stage_id} (Stage Attempt {attempt})"
        addresses = self._attempts.get(key)
        if addresses is None:
            fail(f"{name} is not a running barrier stage attempt")
            return
        if partition not in addresses:
            fail(f"{name} has no barrier task for partition {partition}")
            return
        if method == "getTaskInfos":
            reply([addresses[p] for p in sorted(addresses)])
            return
        current = self._epochs[key]
        if epoch != current:
            fail(
                f"The request to sync of {name} with barrier epoch {epoch} has already "
                f"finished. Maybe the caller has called barrier() more than once, or the "
                f"coordinator is at barrier epoch {current}"
            )
            return
        round_ = self._rounds.get(key)
        if round_ is None:
            round_ = self._rounds[key] = _Round(epoch, method)
            if self.timeout > 0:
                timer = threading.Timer(self.timeout, self._timed_out, (key, epoch))
                timer.daemon = True
                round_.timer = timer
                timer.start()
        if method != round_.method:
            self._fail_round(
                key,
                f"Different barrier sync types found for the sync {name}: {round_.method}, "
                f"{method}. Please use the same barrier sync type within a single sync.",
            )
            fail(f"Different barrier sync types found for the sync {name}")
            return
        round_.messages[partition] = message
        round_.waiters[partition] = (reply, fail)
        if len(round_.waiters) < len(addresses):
            return
        del self._rounds[key]
        if round_.timer is not None:
            round_.timer.cancel()
        self._epochs[key] = current + 1
        ordered = [round_.messages[p] for p in sorted(round_.messages)]
        for done, _ in round_.waiters.values():
            done(ordered if method == "allGather" else [])

    def _timed_out(self, key: tuple[int, int], epoch: int) -> None:
        with self._lock:
            round_ = self._rounds.get(key)
            if round_ is None or round_.epoch != epoch:
                return
            seconds = f"{self.timeout:g}"
            self._fail_round(
                key,
                f"The coordinator didn't get all barrier sync requests for barrier epoch "
                f"{epoch} from Stage {key[0]} (Stage Attempt {key[1]}) within {seconds} "
                f"second(s).",
            )

    def _fail_round(self, key: tuple[int, int], reason: str) -> None:
        round_ = self._rounds.pop(key, None)
        if round_ is None:
            return
        if round_.timer is not None:
            round_.timer.cancel()
        for _, fail in round_.waiters.values():
            fail(reason)
