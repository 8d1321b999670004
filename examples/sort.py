"""Sort numbers with a range-partitioned sort (sortByKey).

Usage: sort.py [FILE]. Sorts the integers of FILE (one per line), or 10,000
pseudo-random integers from a fixed seed when no file is given, into 4 sorted
partitions; prints the count, the 5 smallest and 5 largest numbers, and
whether the partitions came back in order.

This is a plain PySpark program: change the import line to
``from pyspark import SparkConf, SparkContext`` and it runs on PySpark
unchanged, with the same output. The master comes from ``sparkctl submit``
(or spark-submit) and defaults to local[2] when the file is run directly.
"""

from __future__ import annotations

import random
import sys
from itertools import pairwise

from scheduler import SparkConf, SparkContext

GENERATED_COUNT = 10_000


def main(argv: list[str]) -> int:
    conf = SparkConf().setAppName("PythonSort").setIfMissing("spark.master", "local[2]")
    with SparkContext(conf=conf) as sc:
        if len(argv) > 1:
            numbers = sc.textFile(argv[1]).filter(lambda line: line.strip()).map(int)
        else:
            rng = random.Random(2024)
            generated = [rng.randrange(1_000_000) for _ in range(GENERATED_COUNT)]
            numbers = sc.parallelize(generated, 4)
        ordered = numbers.map(lambda n: (n, None)).sortByKey(numPartitions=4).keys()
        partitions = ordered.glom().map(lambda p: (min(p), max(p)) if p else None).collect()
        bounds = [b for b in partitions if b is not None]
        in_order = all(left[1] <= right[0] for left, right in pairwise(bounds))
        result = ordered.collect()
    print(f"sorted {len(result)} numbers into {len(partitions)} partitions")
    print(f"smallest: {result[:5]}")
    print(f"largest: {result[-5:]}")
    print(f"partitions in order: {in_order}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
