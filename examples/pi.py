"""Estimate pi by throwing darts at the unit square (Monte Carlo).

Usage: pi.py [PARTITIONS]. Each partition throws 100,000 darts with its own
seeded generator, so the estimate is the same on every run and on PySpark.

This is a plain PySpark program: change the import line to
``from pyspark import SparkConf, SparkContext`` and it runs on PySpark
unchanged. The master comes from ``sparkctl submit`` (or spark-submit) and
defaults to local[2] when the file is run directly.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable, Iterator

from scheduler import SparkConf, SparkContext

DARTS_PER_PARTITION = 100_000


def hits_in_partition(index: int, _items: Iterable[int]) -> Iterator[int]:
    """Throw this partition's darts; yield how many fell inside the quarter circle."""
    rng = random.Random(index)
    hits = 0
    for _ in range(DARTS_PER_PARTITION):
        x, y = rng.random(), rng.random()
        if x * x + y * y <= 1.0:
            hits += 1
    yield hits


def main(argv: list[str]) -> int:
    partitions = int(argv[1]) if len(argv) > 1 else 2
    if partitions < 1:
        print(f"PARTITIONS must be at least 1, got {partitions}", file=sys.stderr)
        return 2
    conf = SparkConf().setAppName("PythonPi").setIfMissing("spark.master", "local[2]")
    with SparkContext(conf=conf) as sc:
        hits = (
            sc.parallelize(range(partitions), partitions)
            .mapPartitionsWithIndex(hits_in_partition)
            .sum()
        )
    darts = partitions * DARTS_PER_PARTITION
    print(f"Pi is roughly {4.0 * hits / darts:.6f} ({darts} darts in {partitions} partitions)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
