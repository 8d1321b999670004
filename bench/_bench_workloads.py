"""The driver benchmark's workloads (W1-W4, W6, S1-S4), written against the PySpark RDD API.

Each workload takes a live SparkContext (ours or PySpark's: only the public
RDD API is used), checks its own result so a wrong answer never passes as a
fast one, and returns plain numbers. W5 (submit) lives in bench_driver.py
because it runs a separate process. Nothing here starts or stops a context.

The scale rows (S1-S4, issue 13) grow the input; each has a plain-Python floor
here too (`floor_*`: one process, no framework, the same answer checked), so
that a table can say how far an engine is from what Python itself does.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import os
import random
import statistics
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import add
from pathlib import Path
from typing import Any

import psutil
from _bench_clusters import descendant_pids  # cluster.testing's; puts the repo on sys.path

DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", "/tmp/sparkctl-bench-data"))


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; `quick()` shrinks them for a smoke run (BENCH_QUICK=1)."""

    w1_runs: int = 50
    w2_tasks: int = 2000
    w2_runs: int = 3
    #: Runs of W3 and W4 each; the median is reported.
    heavy_runs: int = 3
    w2_elements: int = 20000
    w3_megabytes: int = 100
    w4_group_pairs: int = 5_000_000
    w4_group_keys: int = 100_000
    w4_sort_pairs: int = 2_000_000
    #: S1: partitions on both sides of one wide shuffle (M x M blocks).
    s1_partitions: int = 500
    #: S2: records of groupByKey at each size (N/50 keys, 8 partitions).
    s2_records: tuple[int, ...] = (1_000_000, 4_000_000, 16_000_000)
    #: S3: cached floats and map+reduce passes over them.
    s3_records: int = 1_000_000
    s3_passes: int = 10
    #: S4: records of each side of the join at each size.
    s4_records: tuple[int, ...] = (500_000, 2_000_000)
    #: Runs of each S2 and S4 size (engines and floors alike); the median is reported.
    scale_runs: int = 3

    @staticmethod
    def quick() -> Sizes:
        return Sizes(
            w1_runs=20,
            w2_tasks=500,
            w2_runs=1,
            heavy_runs=1,
            w2_elements=5000,
            w3_megabytes=10,
            w4_group_pairs=500_000,
            w4_group_keys=10_000,
            w4_sort_pairs=200_000,
            s1_partitions=100,
            s2_records=(100_000, 400_000),
            s3_records=100_000,
            s3_passes=5,
            s4_records=(50_000, 200_000),
            scale_runs=1,
        )


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` quantile of `samples` (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


def w1_tiny_job_latency(sc: Any, sizes: Sizes) -> dict[str, float]:
    """W1: latency of parallelize(range(1000), 2).count() on a warm context."""
    for _ in range(3):
        sc.parallelize(range(1000), 2).count()
    samples = []
    for _ in range(sizes.w1_runs):
        start = time.perf_counter()
        n = sc.parallelize(range(1000), 2).count()
        samples.append((time.perf_counter() - start) * 1000.0)
        if n != 1000:
            raise AssertionError(f"W1 counted {n}, expected 1000")
    return {
        "w1_p50_ms": percentile(samples, 0.50),
        "w1_p95_ms": percentile(samples, 0.95),
        "w1_mean_ms": statistics.fmean(samples),
    }


def w2_many_tiny_tasks(sc: Any, sizes: Sizes) -> dict[str, float]:
    """W2: parallelize(range(20000), 2000).map(f).count(), in tasks per second.

    The median of `w2_runs` runs: one run of a few hundred milliseconds is at the
    mercy of whatever else the machine does in that moment.
    """
    rates = []
    for _ in range(sizes.w2_runs):
        start = time.perf_counter()
        rdd = sc.parallelize(range(sizes.w2_elements), sizes.w2_tasks)
        n = rdd.map(lambda x: x + 1).count()
        seconds = time.perf_counter() - start
        if n != sizes.w2_elements:
            raise AssertionError(f"W2 counted {n}, expected {sizes.w2_elements}")
        rates.append(sizes.w2_tasks / seconds)
    return {"w2_tasks_per_s": statistics.median(rates), "w2_first_tasks_per_s": rates[0]}


def _vocabulary(size: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 10))))
    return sorted(words)


VOCABULARY_SIZE = 20_000


def text_file(megabytes: int) -> Path:
    """A generated text of about `megabytes` MB (made once, then reused)."""
    path = DATA_DIR / f"words-{megabytes}mb.txt"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.Random(megabytes)
    vocabulary = _vocabulary(VOCABULARY_SIZE, rng)
    target = megabytes * 1_000_000
    written = 0
    tmp = path.with_suffix(".partial")
    with open(tmp, "w") as out:
        # Every word appears at least once, so the distinct count is known.
        out.write(" ".join(vocabulary) + "\n")
        while written < target:
            lines = [" ".join(rng.choices(vocabulary, k=12)) for _ in range(5000)]
            chunk = "\n".join(lines) + "\n"
            out.write(chunk)
            written += len(chunk)
    tmp.rename(path)
    return path


def _median_seconds(runs: int, job: Callable[[], None]) -> float:
    """The median wall time of `runs` runs of `job` (one run is at the mercy of the machine)."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        job()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def w3_word_count(sc: Any, sizes: Sizes) -> dict[str, float]:
    """W3: word count of a ~100 MB text (textFile, 8 partitions, reduceByKey, collect)."""
    path = text_file(sizes.w3_megabytes)

    def job() -> None:
        counts = (
            sc.textFile(str(path), 8)
            .flatMap(lambda line: line.split())
            .map(lambda word: (word, 1))
            .reduceByKey(add)
            .collect()
        )
        if len(counts) != VOCABULARY_SIZE:
            raise AssertionError(
                f"W3 found {len(counts)} distinct words, expected {VOCABULARY_SIZE}"
            )

    seconds = _median_seconds(sizes.heavy_runs, job)
    return {"w3_s": seconds, "w3_mb": path.stat().st_size / 1e6}


def w4_group_and_sort(sc: Any, sizes: Sizes) -> dict[str, float]:
    """W4: groupByKey of 5M pairs over 100k keys; sortByKey of 2M pairs."""
    keys, pairs = sizes.w4_group_keys, sizes.w4_group_pairs

    def group() -> None:
        grouped = (
            sc.parallelize(range(pairs), 8)
            .map(lambda i: (i % keys, i))
            .groupByKey()
            .mapValues(len)
            .values()
            .sum()
        )
        if grouped != pairs:
            raise AssertionError(f"W4 groupByKey grouped {grouped} values, expected {pairs}")

    total = sizes.w4_sort_pairs

    def sort() -> None:
        ordered = (
            sc.parallelize(range(total), 8)
            .map(lambda i: ((i * 7919) % total, i))
            .sortByKey()
            .keys()
            .glom()
            .map(lambda p: (len(p), p[0] if p else None, p[-1] if p else None))
            .collect()
        )
        if sum(n for n, _, _ in ordered) != total:
            raise AssertionError("W4 sortByKey lost elements")
        bounds = [(lo, hi) for n, lo, hi in ordered if n]
        if any(a[1] > b[0] for a, b in itertools.pairwise(bounds)):
            raise AssertionError("W4 sortByKey partitions are out of order")

    return {
        "w4_group_s": _median_seconds(sizes.heavy_runs, group),
        "w4_sort_s": _median_seconds(sizes.heavy_runs, sort),
    }


def rss_mib(pids: list[int]) -> list[float]:
    """Resident set size of each live process in `pids`, in MiB."""
    sizes = []
    for pid in pids:
        try:
            sizes.append(psutil.Process(pid).memory_info().rss / (1 << 20))
        except psutil.Error:
            continue
    return sizes


def w6_idle_memory(executor_pids: list[int], cluster_pids: list[int]) -> dict[str, float]:
    """W6: RSS of this driver process and of the executor-side processes, idle.

    ``cluster_pids`` (master, worker, executors) are children of the benchmark
    too but not of the driver proper, so they are left out of its children.
    """
    time.sleep(1.0)  # let the warm-up job's garbage settle
    outside = set(cluster_pids)
    driver_children = rss_mib([p for p in descendant_pids(os.getpid()) if p not in outside])
    executors = rss_mib(executor_pids)
    return {
        "w6_driver_mib": rss_mib([os.getpid()])[0],
        "w6_driver_children_mib": sum(driver_children),
        "w6_driver_children": float(len(driver_children)),
        "w6_executors_mib": sum(executors),
        "w6_executor_max_mib": max(executors, default=0.0),
        "w6_executors": float(len(executors)),
    }


# -- scale rows (issue 13) ---------------------------------------------------------------

#: Partitions of the S2-S4 inputs.
SCALE_PARTITIONS = 8
#: S2's records per key.
S2_RECORDS_PER_KEY = 50
#: S4's key permutation: a prime that divides none of the sizes, so keys stay distinct.
S4_STRIDE = 7919


def growth_exponent(sizes: tuple[int, ...], seconds: list[float]) -> float:
    """The exponent k of seconds ~ size**k, fitted by least squares on the log-log points."""
    xs = [math.log(n) for n in sizes]
    ys = [math.log(max(t, 1e-9)) for t in seconds]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / spread


def tree_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and every live descendant.

    On a loaded machine wall time measures the machine as much as the engine; the
    CPU an engine's processes (driver, executors, workers, a JVM) burn for a job
    does not depend on how many other programs share the cores.
    """
    total = 0.0
    try:
        me = psutil.Process(os.getpid())
        procs = [me, *me.children(recursive=True)]
    except psutil.Error:
        return time.process_time()
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _timed(job: Callable[[], None]) -> float:
    return _timed_cpu(job)[0]


def _timed_cpu(job: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process tree) of one run of `job`."""
    cpu = tree_cpu_seconds()
    start = time.perf_counter()
    job()
    wall = time.perf_counter() - start
    return wall, tree_cpu_seconds() - cpu


def _sized(
    prefix: str, sizes: tuple[int, ...], runs: list[tuple[float, float]]
) -> dict[str, float]:
    """Wall and CPU seconds per size, and the growth exponent of each."""
    result: dict[str, float] = {}
    for n, (wall, cpu) in zip(sizes, runs, strict=True):
        result[f"{prefix}_{n}_s"] = wall
        result[f"{prefix}_{n}_cpu_s"] = cpu
    result[f"{prefix}_exponent"] = growth_exponent(sizes, [w for w, _ in runs])
    result[f"{prefix}_cpu_exponent"] = growth_exponent(sizes, [c for _, c in runs])
    return result


def _median_sized(
    prefix: str, sizes: tuple[int, ...], runs: int, run: Callable[[int], tuple[float, float]]
) -> dict[str, float]:
    """`run(n)` (wall, CPU) `runs` times at each size, the sizes interleaved; medians.

    With one run per size a two-point growth exponent swung by 0.1 and more between
    quiet runs (the plain-Python floor's S4 exponent 0.96 in one, 1.13 in another):
    interleaving spreads a burst of load over every size, and the median drops it.
    """
    samples: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
    for _ in range(runs):
        for n in sizes:
            samples[n].append(run(n))
    medians = [
        (statistics.median(w for w, _ in samples[n]), statistics.median(c for _, c in samples[n]))
        for n in sizes
    ]
    return _sized(prefix, sizes, medians)


def s1_wide_shuffle(sc: Any, sizes: Sizes) -> dict[str, float]:
    """S1: one shuffle of M map partitions into M reduce partitions (M*M blocks)."""
    m = sizes.s1_partitions

    def job() -> None:
        n = sc.parallelize(range(m * m), m).map(lambda i: (i, 1)).reduceByKey(add, m).count()
        if n != m * m:
            raise AssertionError(f"S1 counted {n} keys, expected {m * m}")

    wall, cpu = _timed_cpu(job)
    return {"s1_s": wall, "s1_cpu_s": cpu}


def _s2_job(sc: Any, records: int) -> None:
    keys = records // S2_RECORDS_PER_KEY
    groups = (
        sc.parallelize(range(records), SCALE_PARTITIONS)
        .map(lambda i: (i % keys, i))
        .groupByKey()
        .mapValues(len)
        .values()
        .map(lambda n: (1, n))
        .reduce(lambda a, b: (a[0] + b[0], a[1] + b[1]))
    )
    if groups != (keys, records):
        raise AssertionError(f"S2 made (groups, values) {groups}, expected {(keys, records)}")


def s2_group_by_key(sc: Any, sizes: Sizes) -> dict[str, float]:
    """S2: groupByKey of N records over N/50 keys at each size, and the growth exponent."""
    return _median_sized(
        "s2", sizes.s2_records, sizes.scale_runs, lambda n: _timed_cpu(lambda: _s2_job(sc, n))
    )


def s3_cached_passes(sc: Any, sizes: Sizes) -> dict[str, float]:
    """S3: passes of map+reduce over cached floats (an ML-style loop); caching not timed."""
    n = sizes.s3_records
    data = sc.parallelize(range(n), SCALE_PARTITIONS).map(float).cache()
    try:
        if data.count() != n:
            raise AssertionError("S3 cached the wrong number of floats")
        # Integers below 2**53 as floats: every sum is exact whatever the order.
        expected = float(n * (n - 1))

        def job() -> None:
            for _ in range(sizes.s3_passes):
                total = data.map(lambda x: x * 2.0).reduce(add)
                if total != expected:
                    raise AssertionError(f"S3 pass summed {total}, expected {expected}")

        wall, cpu = _timed_cpu(job)
        return {"s3_s": wall, "s3_cpu_s": cpu}
    finally:
        data.unpersist()


def _s4_job(sc: Any, records: int) -> None:
    left = sc.parallelize(range(records), SCALE_PARTITIONS).map(lambda i: (i, i))
    right = sc.parallelize(range(records), SCALE_PARTITIONS).map(
        lambda i: ((i * S4_STRIDE) % records, 2 * ((i * S4_STRIDE) % records))
    )
    joined = left.join(right).map(lambda kv: (1, kv[1][0] + kv[1][1]))
    found = joined.reduce(lambda a, b: (a[0] + b[0], a[1] + b[1]))
    expected = (records, 3 * records * (records - 1) // 2)
    if found != expected:
        raise AssertionError(f"S4 joined (count, sum) {found}, expected {expected}")


def s4_join(sc: Any, sizes: Sizes) -> dict[str, float]:
    """S4: join of two pair RDDs at each size, and the growth exponent."""
    return _median_sized(
        "s4", sizes.s4_records, sizes.scale_runs, lambda n: _timed_cpu(lambda: _s4_job(sc, n))
    )


# The floors: the same work and the same check in one plain Python process.


def floor_s2(records: int) -> tuple[float, float]:
    """groupByKey's floor: a dict of lists, then the group count and sizes."""

    def job() -> None:
        keys = records // S2_RECORDS_PER_KEY
        groups: dict[int, list[int]] = {}
        for i in range(records):
            k = i % keys
            group = groups.get(k)
            if group is None:
                groups[k] = [i]
            else:
                group.append(i)
        found = (len(groups), sum(map(len, groups.values())))
        if found != (keys, records):
            raise AssertionError(f"S2 floor made {found}")

    return _timed_cpu(job)


def floor_s3(sizes: Sizes) -> tuple[float, float]:
    """The ML loop's floor: the floats held in a list, map and reduce per pass."""
    n = sizes.s3_records
    data = [float(i) for i in range(n)]
    expected = float(n * (n - 1))

    def job() -> None:
        for _ in range(sizes.s3_passes):
            total = functools.reduce(add, map(lambda x: x * 2.0, data))
            if total != expected:
                raise AssertionError(f"S3 floor summed {total}")

    return _timed_cpu(job)


def floor_w3(megabytes: int) -> tuple[float, float]:
    """Word count's floor: Counter over the whole text's split(), one process (issue 13)."""
    path = text_file(megabytes)

    def job() -> None:
        with open(path) as f:
            counts = collections.Counter(f.read().split())
        if len(counts) != VOCABULARY_SIZE:
            raise AssertionError(f"W3 floor found {len(counts)} distinct words")

    return _timed_cpu(job)


def floor_s4(records: int) -> tuple[float, float]:
    """The join's floor: a dict of one side probed by the other."""
    left = [(i, i) for i in range(records)]
    right = [((i * S4_STRIDE) % records, 2 * ((i * S4_STRIDE) % records)) for i in range(records)]

    def job() -> None:
        table = dict(left)
        count = total = 0
        for k, w in right:
            v = table.get(k)
            if v is not None:
                count += 1
                total += v + w
        if (count, total) != (records, 3 * records * (records - 1) // 2):
            raise AssertionError("S4 floor joined the wrong pairs")

    return _timed_cpu(job)


def scale_floors(sizes: Sizes, only: tuple[str, ...]) -> dict[str, float]:
    """The one-process floors of the S rows in `only` (S1 has none: it is all shuffle)."""
    floors: dict[str, float] = {}
    if "s2" in only:
        floors.update(_median_sized("s2", sizes.s2_records, sizes.scale_runs, floor_s2))
    if "s3" in only:
        floors["s3_s"], floors["s3_cpu_s"] = floor_s3(sizes)
    if "s4" in only:
        floors.update(_median_sized("s4", sizes.s4_records, sizes.scale_runs, floor_s4))
    return floors
