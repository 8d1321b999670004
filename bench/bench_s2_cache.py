"""Is S2's growth above linear a cache effect? Per-record CPU of its map-side combine.

Usage:
    bench_s2_cache.py [--rounds N]

S2 (groupByKey of N records over N/50 keys, 8 partitions) gives each map task
N/8 records over all N/50 keys, and each reduce task N/400 keys with 8 lists
each: both tasks' dicts of lists grow with N. This runs both (the engine's own
ExternalMerger and ExternalGroupBy, in this process, no framework, no I/O) with
the values per key fixed as in S2 and only the key count changing, as S2 sees
it at 0.125M to 64M records. Same code, same records per key: a per-record cost
that rises with the key count and then stays flat is the working set outgrowing
the CPU caches, not an algorithm growing faster than its input. Prints min and
median ns per record per size and the load average (take the min on a shared
machine).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.shuffle.aggregation import Aggregator, ExternalGroupBy, ExternalMerger

#: Records per key in each of S2's map tasks (N/8 records over N/50 keys).
PER_KEY = 50 / 8
#: Key counts of S2's map tasks at N = 0.125M, 1M, 4M, 16M and 64M records.
KEYS = (2_500, 20_000, 80_000, 320_000, 1_280_000)


def _combine_ns_per_record(keys: int) -> float:
    agg = Aggregator(lambda x: [x], lambda a, x: a, lambda a, b: a)
    agg.lists = True  # groupByKey's combiners, as the engine runs them
    n = int(keys * PER_KEY)
    start = time.process_time()
    merger = ExternalMerger(agg, float(1 << 20))  # no spilling: the combine alone
    merger.mergeValues(map(lambda i: (i % keys, i), range(n)))
    del merger
    return (time.process_time() - start) / n * 1e9


def _group_ns_per_record(keys: int) -> float:
    """A reduce task's grouping: N/400 keys, a list of 6.25 values from each of 8 maps."""
    agg = Aggregator(lambda x: [x], lambda a, x: a, lambda a, b: a)
    agg.lists = True
    own = keys // 8
    per_map = int(PER_KEY)
    values = iter(range(1 << 40, 1 << 41))  # distinct int objects, as unpickled ones are
    pairs = [(k, [next(values) for _ in range(per_map)]) for _ in range(8) for k in range(own)]
    n = len(pairs) * per_map
    start = time.process_time()
    merger = ExternalGroupBy(agg, float(1 << 20))
    merger.mergeCombiners(pairs)
    groups = sum(1 for _ in merger.items())
    del merger, pairs
    elapsed = time.process_time() - start
    assert groups == own
    return elapsed / n * 1e9


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv[1:])
    if args.rounds < 1:
        parser.error("--rounds must be positive")
    gc.set_threshold(50_000, 1000, 1000)  # a Python worker's thresholds while a task runs
    combine: dict[int, list[float]] = {k: [] for k in KEYS}
    group: dict[int, list[float]] = {k: [] for k in KEYS}
    load = os.getloadavg()
    for _ in range(args.rounds):
        for keys in KEYS:
            combine[keys].append(_combine_ns_per_record(keys))
            group[keys].append(_group_ns_per_record(keys))
    print(f"ns per record, {args.rounds} rounds: map-side combine ({PER_KEY} records per key),")
    print("reduce-side group (8 lists per key; without unpickling)")
    print(f"{'S2 records':>11} {'map keys':>10} {'combine min':>12} {'median':>7}"
          f" {'group min':>10} {'median':>7}")  # fmt: skip
    for keys in KEYS:
        print(
            f"{keys * 50 / 1e6:>10g}M {keys:>10,} {min(combine[keys]):>12.0f}"
            f" {statistics.median(combine[keys]):>7.0f} {min(group[keys]):>10.0f}"
            f" {statistics.median(group[keys]):>7.0f}"
        )
    after = os.getloadavg()
    print("load average before / after: " + " ".join(f"{x:.1f}" for x in (*load, *after)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
