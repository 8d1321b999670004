"""Hash partitioning with PySpark's `portable_hash`, and the Partitioner value.

`portable_hash` must give the same bucket on every executor, so executors run
with a fixed PYTHONHASHSEED (the driver's, else 0) exactly as PySpark does.
No I/O.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["Partitioner", "portable_hash"]


#: Read once: checking os.environ per key would dominate the cost of hashing.
_HASH_SEED_SET = "PYTHONHASHSEED" in os.environ


def portable_hash(x: Any) -> int:
    """A hash of `x` that is stable across processes sharing PYTHONHASHSEED.

    None hashes to 0 and tuples combine their items' hashes, as in PySpark.

    Raises:
        RuntimeError: PYTHONHASHSEED is not set in this (executor) process.
    """
    if x is None:
        return 0
    if isinstance(x, tuple):
        h = 0x345678
        for item in x:
            h ^= portable_hash(item)
            h *= 1000003
            h &= sys.maxsize
        h ^= len(x)
        if h == -1:
            h = -2
        return int(h)
    if not _HASH_SEED_SET and isinstance(x, (str, bytes)):
        raise RuntimeError("Randomness of hash of string should be disabled via PYTHONHASHSEED")
    return hash(x)


class Partitioner:
    """Which of `numPartitions` partitions a key goes to."""

    def __init__(self, numPartitions: int, partitionFunc: Callable[[Any], int]) -> None:
        self.numPartitions = numPartitions
        self.partitionFunc = partitionFunc

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Partitioner)
            and self.numPartitions == other.numPartitions
            and self.partitionFunc == other.partitionFunc
        )

    def __hash__(self) -> int:
        return hash((self.numPartitions, id(self.partitionFunc)))

    def __call__(self, k: Any) -> int:
        return self.partitionFunc(k) % self.numPartitions
