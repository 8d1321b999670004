"""Which RDDs a stage's code may carry: its own lineage, never an RDD a closure captured.

A stage ships its RDD and the parents it computes through. An RDD that a
user's function captures (``rdd1.map(lambda x: rdd2.count())``) would arrive
on the executors without its context and fail there, or ride along unused;
PySpark refuses such a job on the driver, before any task runs, with a
PicklingError of class RDD_TRANSFORM_ONLY_VALID_ON_DRIVER. While the driver
pickles a stage inside `shipping(rdd)`, `check_shipped` (called by
``RDD.__getstate__``) raises that error for any RDD outside the lineage.
State is per thread; nothing here does I/O.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from scheduler.errors import PySparkRuntimeError

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["check_shipped", "shipping"]

_state = threading.local()


def _reachable(rdd: RDD, neighbours: Callable[[RDD], Iterable[RDD]]) -> set[int]:
    """Object ids of `rdd` and every RDD reachable from it through `neighbours`."""
    found: set[int] = set()
    todo = [rdd]
    while todo:
        current = todo.pop()
        if id(current) not in found:
            found.add(id(current))
            todo.extend(neighbours(current))
    return found


def _stage_part(rdd: RDD) -> set[int]:
    """Object ids of the RDDs a stage of `rdd` pickles: what is checked first.

    Its narrow ancestors and the RDDs they hold as attributes (a hash join's two
    inputs, across its shuffle): as many RDDs as the stage's code carries, so the
    check costs what the pickling costs, however long the lineage behind it.
    """
    from scheduler.rdd.deps import ShuffleDependency
    from scheduler.rdd.rdd import RDD

    def carried(current: RDD) -> Iterator[RDD]:
        yield from (d.rdd for d in current.dependencies if not isinstance(d, ShuffleDependency))
        yield from (v for v in vars(current).values() if isinstance(v, RDD))

    return _reachable(rdd, carried)


def _lineage(rdd: RDD) -> set[int]:
    """Object ids of `rdd` and every RDD it depends on, through shuffles and checkpoints."""

    def parents(current: RDD) -> Iterator[RDD]:
        yield from (dep.rdd for dep in current._deps)
        yield from (dep.rdd for dep in current.dependencies)
        if current._checkpoint_rdd is not None:
            yield current._checkpoint_rdd

    return _reachable(rdd, parents)


class _Allowed:
    """The RDDs a stage may carry: its own part first, its whole lineage only if needed."""

    def __init__(self, rdd: RDD) -> None:
        self._rdd = rdd
        self._near = _stage_part(rdd)
        self._all: set[int] | None = None

    def __contains__(self, rdd_object_id: int) -> bool:
        if rdd_object_id in self._near:
            return True
        if self._all is None:
            self._all = _lineage(self._rdd)
        return rdd_object_id in self._all


def shipping(rdd: RDD | None) -> _Shipping:
    """While a stage whose final RDD is `rdd` is pickled: other RDDs are refused.

    A stage without an RDD (the scheduler's unit tests make some) checks nothing.
    A context manager (a class: a generator's costs more, once per stage).
    """
    return _Shipping(rdd)


class _Shipping:
    """`shipping`'s context: the allowed set for `rdd`, the previous one restored after."""

    __slots__ = ("_previous", "_rdd")

    def __init__(self, rdd: RDD | None) -> None:
        self._rdd = rdd
        self._previous: _Allowed | None = None

    def __enter__(self) -> None:
        self._previous = getattr(_state, "allowed", None)
        _state.allowed = _Allowed(self._rdd) if self._rdd is not None else None

    def __exit__(self, *exc: object) -> None:
        _state.allowed = self._previous


def check_shipped(rdd: RDD) -> None:
    """Refuse to pickle `rdd` into a stage whose lineage it is not part of.

    Raises:
        PySparkRuntimeError: RDD_TRANSFORM_ONLY_VALID_ON_DRIVER (the stage's pickling
            turns it into PySpark's PicklingError).
    """
    allowed: _Allowed | None = getattr(_state, "allowed", None)
    if allowed is not None and id(rdd) not in allowed:
        raise PySparkRuntimeError(
            errorClass="RDD_TRANSFORM_ONLY_VALID_ON_DRIVER", messageParameters={}
        )
