"""Accumulators: add-only variables whose task-side updates merge on the driver.

A task's copy starts at zero; after the task succeeds its partial value
travels back with the status update and the driver adds it exactly once per
successful task. Reading `.value` inside a task is an error, as in PySpark.
No I/O.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = [
    "COMPLEX_ACCUMULATOR_PARAM",
    "FLOAT_ACCUMULATOR_PARAM",
    "INT_ACCUMULATOR_PARAM",
    "Accumulator",
    "AccumulatorParam",
    "collect_updates",
    "reset_registry",
]

T = TypeVar("T")

#: Executor side: the accumulators deserialized in this worker process.
_registry: dict[int, Accumulator[Any]] = {}


class AccumulatorParam(Generic[T]):
    """How to add values of a data type: a zero and an in-place addition."""

    def zero(self, value: T) -> T:
        raise NotImplementedError

    def addInPlace(self, value1: T, value2: T) -> T:
        raise NotImplementedError


class AddingAccumulatorParam(AccumulatorParam[T]):
    """Addition with a fixed zero (ints, floats, complex numbers)."""

    def __init__(self, zero_value: T) -> None:
        self.zero_value = zero_value

    def zero(self, value: T) -> T:
        return self.zero_value

    def addInPlace(self, value1: T, value2: T) -> T:
        value1 += value2  # type: ignore[operator]
        return value1


INT_ACCUMULATOR_PARAM: AddingAccumulatorParam[int] = AddingAccumulatorParam(0)
FLOAT_ACCUMULATOR_PARAM: AddingAccumulatorParam[float] = AddingAccumulatorParam(0.0)
COMPLEX_ACCUMULATOR_PARAM: AddingAccumulatorParam[complex] = AddingAccumulatorParam(0.0j)


def _restore(aid: int, zero_value: Any, accum_param: AccumulatorParam[Any]) -> Accumulator[Any]:
    acc: Accumulator[Any] = Accumulator(aid, zero_value, accum_param)
    acc._deserialized = True
    _registry[aid] = acc
    return acc


class Accumulator(Generic[T]):
    """A shared variable tasks can only add to (`sc.accumulator(0)`)."""

    def __init__(self, aid: int, value: T, accum_param: AccumulatorParam[T]) -> None:
        self.aid = aid
        self.accum_param = accum_param
        self._value = value
        self._deserialized = False

    def __reduce__(self) -> Any:
        return _restore, (self.aid, self.accum_param.zero(self._value), self.accum_param)

    @property
    def value(self) -> T:
        """The total (driver only)."""
        if self._deserialized:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        return self._value

    @value.setter
    def value(self, value: T) -> None:
        if self._deserialized:
            raise RuntimeError("Accumulator.value cannot be accessed inside tasks")
        self._value = value

    def add(self, term: T) -> None:
        """Add `term`."""
        self._value = self.accum_param.addInPlace(self._value, term)

    def __iadd__(self, term: T) -> Accumulator[T]:
        self.add(term)
        return self

    def __str__(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        return f"Accumulator<id={self.aid}, value={self._value}>"


def reset_registry() -> None:
    """Executor side, before a task: every known accumulator restarts at zero."""
    for acc in _registry.values():
        acc._value = acc.accum_param.zero(acc._value)


def collect_updates() -> dict[int, Any]:
    """Executor side, after a task: the partial value of every known accumulator."""
    return {aid: acc._value for aid, acc in _registry.items()}
