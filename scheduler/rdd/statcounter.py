"""StatCounter: count, mean, variance, min and max of numbers (or numpy arrays), mergeable.

Uses a running (Welford-style) update so that partial counters computed per
partition merge exactly on the driver. No I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["StatCounter"]

_OPS: list[Any] = []


def _ops() -> tuple[Any, Any, Any]:
    """max, min and sqrt: numpy's when it is installed, as PySpark's StatCounter picks them.

    With numpy, min/max (and stdev) come back as numpy floats, as they do in PySpark.
    """
    if not _OPS:
        try:
            from numpy import maximum, minimum, sqrt  # type: ignore[import-not-found, unused-ignore]

            _OPS.extend((maximum, minimum, sqrt))
        except ImportError:
            _OPS.extend((max, min, math.sqrt))
    return _OPS[0], _OPS[1], _OPS[2]


class StatCounter:
    """Running statistics over a stream of numbers (PySpark's `StatCounter`)."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        self.n = 0
        self.mu = 0.0
        self.m2 = 0.0
        self.maxValue: Any = float("-inf")
        self.minValue: Any = float("inf")
        for v in values or ():
            self.merge(v)

    def merge(self, value: Any) -> StatCounter:
        """Add one value."""
        delta = value - self.mu
        self.n += 1
        self.mu += delta / self.n
        self.m2 += delta * (value - self.mu)
        maximum, minimum, _ = _ops()
        self.maxValue = maximum(self.maxValue, value)
        self.minValue = minimum(self.minValue, value)
        return self

    def mergeStats(self, other: StatCounter) -> StatCounter:
        """Add another counter's values."""
        if not isinstance(other, StatCounter):
            raise TypeError(f"Can only merge StatCounter but got {type(other)}")
        if other is self:
            return self.mergeStats(other.copy())
        if self.n == 0:
            self.mu, self.m2, self.n = other.mu, other.m2, other.n
            self.maxValue, self.minValue = other.maxValue, other.minValue
        elif other.n != 0:
            delta = other.mu - self.mu
            if other.n * 10 < self.n:
                self.mu = self.mu + (delta * other.n) / (self.n + other.n)
            elif self.n * 10 < other.n:
                self.mu = other.mu - (delta * self.n) / (self.n + other.n)
            else:
                self.mu = (self.mu * self.n + other.mu * other.n) / (self.n + other.n)
            maximum, minimum, _ = _ops()
            self.maxValue = maximum(self.maxValue, other.maxValue)
            self.minValue = minimum(self.minValue, other.minValue)
            self.m2 += other.m2 + (delta * delta * self.n * other.n) / (self.n + other.n)
            self.n += other.n
        return self

    def copy(self) -> StatCounter:
        """An independent copy."""
        clone = StatCounter()
        clone.n, clone.mu, clone.m2 = self.n, self.mu, self.m2
        clone.maxValue, clone.minValue = self.maxValue, self.minValue
        return clone

    def count(self) -> int:
        return int(self.n)

    # Not cast to float: over numpy arrays the statistics are arrays, element-wise, as
    # in PySpark (over plain numbers they are floats already: mu and m2 start at 0.0).
    def mean(self) -> Any:
        return self.mu

    def sum(self) -> Any:
        return self.n * self.mu

    def min(self) -> Any:
        return self.minValue

    def max(self) -> Any:
        return self.maxValue

    def variance(self) -> Any:
        """Population variance (divides by n); NaN when empty."""
        return float("nan") if self.n == 0 else self.m2 / self.n

    def sampleVariance(self) -> Any:
        """Sample variance (divides by n - 1); NaN with fewer than two values."""
        return float("nan") if self.n <= 1 else self.m2 / (self.n - 1)

    def stdev(self) -> Any:
        return _ops()[2](self.variance())

    def sampleStdev(self) -> Any:
        return _ops()[2](self.sampleVariance())

    def asDict(self, sample: bool = False) -> dict[str, Any]:
        """The statistics as a dict; like PySpark, sample statistics unless `sample` is true."""
        return {
            "count": self.count(),
            "mean": self.mean(),
            "sum": self.sum(),
            "min": self.min(),
            "max": self.max(),
            "stdev": self.stdev() if sample else self.sampleStdev(),
            "variance": self.variance() if sample else self.sampleVariance(),
        }

    def __repr__(self) -> str:
        return (
            f"(count: {self.count()}, mean: {self.mean()}, stdev: {self.stdev()}, "
            f"max: {self.max()}, min: {self.min()})"
        )
