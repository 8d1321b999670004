"""Per-partition random samplers behind sample, randomSplit and sampleByKey.

Each partition seeds its own generator from (seed, partition index) so that a
recomputed partition draws the same sample. No I/O.
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["BernoulliRangeSampler", "PartitionSampler", "StratifiedSampler"]


class _Seeded:
    def __init__(self, seed: int | None) -> None:
        self._seed = seed if seed is not None else random.randint(0, sys.maxsize)
        self._random = random.Random(0)

    def _start(self, split: int) -> None:
        self._random = random.Random(self._seed ^ split)
        # Seeds of neighbouring partitions differ in few bits: stir a little.
        for _ in range(10):
            self._random.randint(0, 1)

    def _poisson(self, mean: float) -> int:
        if mean < 20.0:
            limit = math.exp(-mean)
            p = self._random.random()
            k = 0
            while p > limit:
                k += 1
                p *= self._random.random()
            return k
        total = self._random.expovariate(mean)
        k = 0
        while total < 1.0:
            k += 1
            total += self._random.expovariate(mean)
        return k


class PartitionSampler(_Seeded):
    """Bernoulli (without replacement) or Poisson (with replacement) sampling."""

    def __init__(self, withReplacement: bool, fraction: float, seed: int | None = None) -> None:
        super().__init__(seed)
        self._with_replacement = withReplacement
        self._fraction = fraction

    def start_draws(self, split: int) -> Callable[[], float]:
        """The uniform draws `func` makes for partition `split`, one per item, in order."""
        self._start(split)
        return self._random.random

    def func(self, split: int, iterator: Iterable[Any]) -> Iterator[Any]:
        self._start(split)
        if self._with_replacement:
            for obj in iterator:
                for _ in range(self._poisson(self._fraction)):
                    yield obj
        else:
            draw, fraction = self._random.random, self._fraction
            for obj in iterator:
                if draw() < fraction:
                    yield obj


class BernoulliRangeSampler(_Seeded):
    """Keeps the items whose draw falls in [lower, upper): one split of randomSplit."""

    def __init__(self, lower: float, upper: float, seed: int | None = None) -> None:
        super().__init__(seed)
        self._lower = lower
        self._upper = upper

    def func(self, split: int, iterator: Iterable[Any]) -> Iterator[Any]:
        self._start(split)
        for obj in iterator:
            if self._lower <= self._random.random() < self._upper:
                yield obj


class StratifiedSampler(_Seeded):
    """Samples (key, value) pairs with a fraction per key."""

    def __init__(
        self, withReplacement: bool, fractions: dict[Any, float], seed: int | None = None
    ) -> None:
        super().__init__(seed)
        self._with_replacement = withReplacement
        self._fractions = fractions

    def func(self, split: int, iterator: Iterable[Any]) -> Iterator[Any]:
        self._start(split)
        for key, value in iterator:
            fraction = self._fractions[key]
            if self._with_replacement:
                for _ in range(self._poisson(fraction)):
                    yield key, value
            elif self._random.random() < fraction:
                yield key, value
