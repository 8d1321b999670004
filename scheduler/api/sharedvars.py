"""Broadcast variables and accumulators of a SparkContext, as a mixin.

The driver keeps each broadcast's value and pickled bytes (shipped by the
task scheduler with the first task that needs them on an executor) and each
accumulator's total, to which successful tasks' partial values are added.
No job runs here.
"""

# Mixin methods are typed with `self: SparkContext`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any

from scheduler.task.accumulators import (
    COMPLEX_ACCUMULATOR_PARAM,
    FLOAT_ACCUMULATOR_PARAM,
    INT_ACCUMULATOR_PARAM,
    Accumulator,
    AccumulatorParam,
)
from scheduler.task.broadcast import Broadcast
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:
    from scheduler.api.context import SparkContext

__all__ = ["SharedVariables"]


class SharedVariables:
    """SparkContext's broadcast and accumulator methods."""

    def broadcast(self: SparkContext, value: Any) -> Broadcast[Any]:
        """A read-only value shipped once to each executor.

        Raises:
            pickle.PicklingError: `value` is an RDD (as PySpark refuses to broadcast one).
        """
        from scheduler.errors import PySparkRuntimeError
        from scheduler.rdd.rdd import RDD

        if isinstance(value, RDD):
            refused = PySparkRuntimeError(errorClass="RDD_TRANSFORM_ONLY_VALID_ON_DRIVER")
            raise pickle.PicklingError(
                f"Could not serialize broadcast: PySparkRuntimeError: {refused}"
            ) from refused
        with self._ids_lock:
            bid = next(self._broadcast_ids)
        b = Broadcast(self, value, bid)
        self._broadcasts[bid] = b
        return b

    def _broadcast_bytes(self: SparkContext, bid: int) -> bytes:
        b = self._broadcasts.get(bid)
        if b is None:
            raise RuntimeError(f"Attempted to use broadcast {bid} after it was destroyed")
        return b.data()

    def remove_broadcast(self: SparkContext, broadcast_id: int, destroy: bool) -> None:
        """Drop the executors' copies of a broadcast; `destroy`: the driver's too."""
        bid = broadcast_id
        with self._scheduler.lock:
            for handle in self._scheduler.executors.values():
                if bid in handle.broadcasts:
                    handle.broadcasts.discard(bid)
                    handle.send(pb.RemoveBlocks(broadcast_ids=[bid]))
            if destroy:
                self._broadcasts.pop(bid, None)
        self._scheduler.forget_broadcast_blob(bid)

    def accumulator(
        self: SparkContext, value: Any, accum_param: AccumulatorParam[Any] | None = None
    ) -> Accumulator[Any]:
        """An add-only shared variable; tasks add, the driver reads `.value`."""
        if accum_param is None:
            if isinstance(value, bool) or not isinstance(value, (int, float, complex)):
                raise TypeError(f"No default accumulator param for type {type(value)}")
            if isinstance(value, int):
                accum_param = INT_ACCUMULATOR_PARAM
            elif isinstance(value, float):
                accum_param = FLOAT_ACCUMULATOR_PARAM
            else:
                accum_param = COMPLEX_ACCUMULATOR_PARAM
        with self._ids_lock:
            aid = next(self._accumulator_ids)
        acc: Accumulator[Any] = Accumulator(aid, value, accum_param)
        self._accumulators[aid] = acc
        return acc

    def _apply_accumulators(self: SparkContext, updates: dict[int, Any]) -> None:
        for aid, value in updates.items():
            acc = self._accumulators.get(aid)
            if acc is not None:
                acc._value = acc.accum_param.addInPlace(acc._value, value)
