"""Broadcast variables: a read-only value shipped once to each executor.

On the driver a Broadcast holds its value and its pickled bytes; pickling a
Broadcast (inside a task's closure) records its id, so the driver ships the
bytes with the stage to executors that lack them, and executors write them to
their local dir where every worker process loads them once. Never ships data
itself.
"""

from __future__ import annotations

import os
import pickle
import threading
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import cloudpickle

from scheduler.errors import PySparkRuntimeError

if TYPE_CHECKING:
    from scheduler.task.host import SharedVariableHost

__all__ = ["Broadcast", "broadcast_path", "collect_broadcast_ids"]

T = TypeVar("T")

_tracking = threading.local()
#: Executor side: the local dir holding broadcast files of this worker's executor.
BROADCAST_DIR: list[str] = []
_loaded: dict[int, Any] = {}


def broadcast_path(local_dir: str, broadcast_id: int) -> str:
    """Where an executor keeps a broadcast's bytes."""
    return os.path.join(local_dir, f"broadcast_{broadcast_id}")


class collect_broadcast_ids:
    """Within this block, pickled Broadcasts record their ids in `.ids`."""

    def __init__(self) -> None:
        self.ids: set[int] = set()

    def __enter__(self) -> collect_broadcast_ids:
        _tracking.ids = self.ids
        return self

    def __exit__(self, *exc: object) -> None:
        _tracking.ids = None


def _restore(broadcast_id: int) -> Broadcast[Any]:
    b: Broadcast[Any] = Broadcast.__new__(Broadcast)
    b._id = broadcast_id
    b._sc = None
    b._destroyed = False
    return b


class Broadcast(Generic[T]):
    """A read-only value available on every executor (`sc.broadcast(value)`)."""

    def __init__(self, sc: SharedVariableHost, value: T, broadcast_id: int) -> None:
        self._sc: SharedVariableHost | None = sc
        self._id = broadcast_id
        self._value = value
        self._destroyed = False
        try:
            self._bytes: bytes = cloudpickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        except pickle.PickleError:
            raise
        except Exception as e:
            # As PySpark: whatever refuses pickling (a SparkContext, a lock) is a PicklingError.
            raise pickle.PicklingError(
                f"Could not serialize broadcast: {type(e).__name__}: {e}"
            ) from e

    @property
    def id(self) -> int:
        return self._id

    @property
    def value(self) -> T:
        """The value (loaded once per executor worker process)."""
        if self._destroyed:
            raise RuntimeError(f"Attempted to use broadcast {self._id} after it was destroyed")
        if self._sc is not None:
            return self._value
        if self._id not in _loaded:
            if not BROADCAST_DIR:
                raise RuntimeError(f"broadcast {self._id} is not available in this process")
            with open(broadcast_path(BROADCAST_DIR[0], self._id), "rb") as f:
                _loaded[self._id] = pickle.load(f)
        return _loaded[self._id]  # type: ignore[no-any-return]

    def unpersist(self, blocking: bool = False) -> None:
        """Drop the executors' copies; they are shipped again if used later.

        Raises:
            PySparkRuntimeError: called in a task (INVALID_BROADCAST_OPERATION).
        """
        self._on_driver("unpersisted")
        assert self._sc is not None
        self._sc.remove_broadcast(self._id, destroy=False)

    def destroy(self, blocking: bool = False) -> None:
        """Drop every copy; the broadcast cannot be used afterwards.

        Raises:
            PySparkRuntimeError: called in a task (INVALID_BROADCAST_OPERATION).
        """
        self._on_driver("destroyed")
        assert self._sc is not None
        self._sc.remove_broadcast(self._id, destroy=True)
        self._destroyed = True
        self._value = None  # type: ignore[assignment]

    def _on_driver(self, operation: str) -> None:
        """Refuse `operation` on a task's copy: only the driver's Broadcast reaches its context."""
        if self._sc is None:
            raise PySparkRuntimeError(
                errorClass="INVALID_BROADCAST_OPERATION",
                messageParameters={"operation": operation},
            )

    def data(self) -> bytes:
        """The pickled value (driver side)."""
        if self._destroyed:
            raise RuntimeError(f"Attempted to use broadcast {self._id} after it was destroyed")
        return self._bytes

    def __reduce__(self) -> Any:
        if self._destroyed:
            raise RuntimeError(f"Attempted to use broadcast {self._id} after it was destroyed")
        ids = getattr(_tracking, "ids", None)
        if ids is not None:
            ids.add(self._id)
        return _restore, (self._id,)

    def __repr__(self) -> str:
        return f"Broadcast({self._id})"


def forget_loaded(broadcast_ids: list[int]) -> None:
    """Executor side: drop loaded values of removed broadcasts."""
    for bid in broadcast_ids:
        _loaded.pop(bid, None)
