"""The driver benchmark's workloads (W1-W4, W6), written against the PySpark RDD API.

Each workload takes a live SparkContext (ours or PySpark's: only the public
RDD API is used), checks its own result so a wrong answer never passes as a
fast one, and returns plain numbers. W5 (submit) lives in bench_driver.py
because it runs a separate process. Nothing here starts or stops a context.
"""

from __future__ import annotations

import itertools
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


def descendants(pid: int) -> list[int]:
    """PIDs of every live descendant of `pid`."""
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def w6_idle_memory(executor_pids: list[int], cluster_pids: list[int]) -> dict[str, float]:
    """W6: RSS of this driver process and of the executor-side processes, idle.

    ``cluster_pids`` (master, worker, executors) are children of the benchmark
    too but not of the driver proper, so they are left out of its children.
    """
    time.sleep(1.0)  # let the warm-up job's garbage settle
    outside = set(cluster_pids)
    driver_children = rss_mib([p for p in descendants(os.getpid()) if p not in outside])
    executors = rss_mib(executor_pids)
    return {
        "w6_driver_mib": rss_mib([os.getpid()])[0],
        "w6_driver_children_mib": sum(driver_children),
        "w6_driver_children": float(len(driver_children)),
        "w6_executors_mib": sum(executors),
        "w6_executor_max_mib": max(executors, default=0.0),
        "w6_executors": float(len(executors)),
    }
