"""Shuffle fetches between executors: the driver relay against direct executor-to-executor.

Starts a master and two workers (one executor each) on 127.0.0.1 and runs
shuffle-heavy jobs with SPARKCTL_FORCE_REMOTE_FETCH=1, so that every map
output is fetched over the RpcEnv as it would be on a multi-host cluster:
once with `spark.sparkctl.shuffle.directFetch=false` (every block relayed
through the driver) and once with direct fetches (the default). Prints the
median seconds of each job per mode, side by side, and the driver's relay
count and its CPU seconds. Rounds alternate the two modes. Everything it
starts is stopped by PID.

Usage: python bench/bench_shuffle_fetch.py [--pairs 3000000] [--rounds 3] [--cores 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _bench_clusters import SparkctlCluster


def two_worker_cluster(cores: int, memory_mb: int = 2048) -> SparkctlCluster:
    """A master and two workers, each its own process (so two executors per app)."""
    return SparkctlCluster(cores, memory_mb, workers=2)


def _jobs(pairs: int) -> dict[str, Any]:
    def reduce_by_key(sc: Any) -> int:
        # Distinct keys: the map-side combine saves nothing, every pair is shuffled.
        rdd = sc.range(pairs, numSlices=4).map(lambda x: (x, 1))
        return int(rdd.reduceByKey(lambda a, b: a + b, 4).count())

    def group_by_key(sc: Any) -> int:
        rdd = sc.range(pairs, numSlices=4).map(lambda x: (x % 50_000, x))
        return int(rdd.groupByKey(4).mapValues(len).values().sum())

    return {"reduceByKey": reduce_by_key, "groupByKey": group_by_key}


def _run_mode(url: str, direct: bool, pairs: int) -> tuple[dict[str, float], float, int]:
    """One round of every job in a fresh app: seconds per job, driver CPU seconds, relays."""
    from scheduler import SparkConf, SparkContext

    conf = (
        SparkConf(loadDefaults=False)
        .setMaster(url)
        .setAppName(f"shuffle-fetch-{'direct' if direct else 'relay'}")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.executorEnv.SPARKCTL_FORCE_REMOTE_FETCH", "1")
        .set("spark.sparkctl.shuffle.directFetch", "true" if direct else "false")
    )
    sc = SparkContext(conf=conf)
    try:
        deadline = time.monotonic() + 60
        while len(sc._scheduler.executors) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("two executors did not register within 60 s")
            time.sleep(0.05)
        assert bool(sc._endpoint.block_addresses) == direct
        seconds = {}
        cpu = time.process_time()
        for name, job in _jobs(pairs).items():
            start = time.perf_counter()
            value = job(sc)
            seconds[name] = time.perf_counter() - start
            assert value == pairs, (name, value)
        return seconds, time.process_time() - cpu, int(sc._endpoint.relayed_fetches)
    finally:
        sc.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_shuffle_fetch.py")
    parser.add_argument("--pairs", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", type=int, default=1, help="cores per worker")
    args = parser.parse_args(argv)
    runs: dict[bool, list[tuple[dict[str, float], float, int]]] = {False: [], True: []}
    with two_worker_cluster(args.cores) as cluster:
        for _ in range(args.rounds):  # interleaved, so that a busy machine hurts both alike
            for direct in (False, True):
                runs[direct].append(_run_mode(cluster.url, direct, args.pairs))
    print(
        f"{args.pairs:,} pairs, 2 workers x {args.cores} core(s), 4 map x 4 reduce tasks, "
        f"SPARKCTL_FORCE_REMOTE_FETCH=1, median of {args.rounds} interleaved rounds"
    )
    print(f"{'':<22}{'relay':>10}{'direct':>10}{'ratio':>9}")

    def row(label: str, relay: float, direct: float, unit: str) -> None:
        ratio = relay / direct if direct else float("nan")
        print(f"{label:<22}{relay:>9.2f}{unit}{direct:>9.2f}{unit}{ratio:>8.2f}x")

    for name in _jobs(0):
        row(
            f"{name} wall",
            statistics.median(r[0][name] for r in runs[False]),
            statistics.median(r[0][name] for r in runs[True]),
            "s",
        )
    row(
        "driver CPU (both jobs)",
        statistics.median(r[1] for r in runs[False]),
        statistics.median(r[1] for r in runs[True]),
        "s",
    )
    relayed = [r[2] for r in runs[False]], [r[2] for r in runs[True]]
    print(f"blocks relayed by the driver per round: relay {relayed[0]}, direct {relayed[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
