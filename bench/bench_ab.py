"""A/B benchmark: one workload on two source trees, alternating, in one session.

Usage:
    bench_ab.py --base REV_OR_DIR [--new DIR] [--rounds N] WORKLOAD [SIZE ...]

WORKLOAD is s2 (groupByKey of SIZE records), s4 (join of SIZE x SIZE records),
w1 (SIZE tiny jobs) or w2 (one job of SIZE tiny tasks). The base is a
directory holding a sparkctl tree, or a git revision of this repository, checked
out into a temporary worktree (removed at the end). Each round runs the
workload once on each tree, in a fresh driver process of its own (local[2]),
base and new in turn; the table gives the median wall and CPU seconds (the
whole process tree: driver, executor, Python workers) per tree, new/base ratios
and the load average. CPU is the figure to trust on a shared machine. The s2
and s4 rows also give the one-process floor of the same work (CPU, measured
between rounds) and, with more than one SIZE, CPU growth exponents.
Binds 127.0.0.1 only; every process it starts ends with its driver.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
if len(sys.argv) > 1 and sys.argv[1] == "_child":
    # A child runs the workload on the tree its PYTHONPATH names, which may predate the
    # process helpers _bench_clusters imports from cluster.testing: the workloads it
    # runs need none of them.
    sys.modules["_bench_clusters"] = types.SimpleNamespace(descendant_pids=None)  # type: ignore[assignment]

import _bench_workloads as workloads

REPO = Path(__file__).resolve().parent.parent
WORKLOADS = ("s2", "s4", "w1", "w2")


def _child(workload: str, sizes: list[int]) -> dict[str, Any]:
    """Run `workload` at each size in this process (scheduler from PYTHONPATH)."""
    from scheduler import SparkConf, SparkContext

    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName(f"bench-ab-{workload}")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    sc = SparkContext(conf=conf)
    out: dict[str, Any] = {}
    try:
        sc.parallelize(range(100), 2).count()  # warm: executor and workers up
        for n in sizes:
            if workload == "s2":
                wall, cpu = workloads._timed_cpu(lambda n=n: workloads._s2_job(sc, n))
            elif workload == "s4":
                wall, cpu = workloads._timed_cpu(lambda n=n: workloads._s4_job(sc, n))
            elif workload == "w1":
                for _ in range(20):
                    sc.parallelize(range(1000), 2).count()
                samples = []
                cpu = workloads.tree_cpu_seconds()
                for _ in range(n):
                    start = time.perf_counter()
                    sc.parallelize(range(1000), 2).count()
                    samples.append(time.perf_counter() - start)
                cpu = workloads.tree_cpu_seconds() - cpu
                wall = statistics.median(samples)  # p50 latency of one job
                cpu /= n
            else:
                rdd = sc.parallelize(range(10 * n), n)
                wall, cpu = workloads._timed_cpu(lambda rdd=rdd: rdd.map(lambda x: x + 1).count())
            out[str(n)] = (wall, cpu)
    finally:
        sc.stop()
    return out


def _run(tree: Path, workload: str, sizes: list[int], timeout: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as cwd:  # cwd is on executors' path
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "_child", workload, *map(str, sizes)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"{workload} on {tree} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _floor(workload: str, n: int) -> float:
    if workload == "s2":
        return workloads.floor_s2(n)[1]
    if workload == "s4":
        return workloads.floor_s4(n)[1]
    return float("nan")


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "_child":
        print(json.dumps(_child(argv[2], [int(s) for s in argv[3:]])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="a sparkctl tree, or a git revision")
    parser.add_argument("--new", type=Path, default=REPO, help="the tree to test (this one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("sizes", nargs="*", type=int)
    args = parser.parse_args(argv[1:])
    default = {"s2": [1_000_000, 4_000_000], "s4": [500_000, 2_000_000], "w1": [200], "w2": [2000]}
    sizes = args.sizes or default[args.workload]
    if args.rounds < 1 or any(n < 1 for n in sizes):
        parser.error("--rounds and every SIZE must be positive")
    worktree = None
    base = Path(args.base)
    if not (base / "scheduler").is_dir():
        worktree = Path(tempfile.mkdtemp(prefix="bench-ab-base-"))
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), args.base],
            check=True,
            capture_output=True,
        )
        base = worktree
    trees = {"base": base.resolve(), "new": args.new.resolve()}
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
    floors: dict[int, list[float]] = {n: [] for n in sizes}
    load_before = os.getloadavg()
    try:
        for _ in range(args.rounds):
            for name, tree in trees.items():
                runs[name].append(_run(tree, args.workload, sizes, args.timeout))
            for n in sizes:
                floors[n].append(_floor(args.workload, n))
    finally:
        if worktree is not None:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)],
                check=False,
                capture_output=True,
            )
    unit = {"w1": "p50 s / CPU s per job", "w2": "s / CPU s per job"}.get(args.workload, "s")
    print(f"{args.workload} ({unit}), median of {args.rounds} rounds; base {trees['base']}")
    print(f"{'size':>10} {'base wall':>10} {'new wall':>10} {'base cpu':>10} {'new cpu':>10}"
          f" {'cpu new/base':>13} {'floor cpu':>10} {'new cpu/floor':>14}")  # fmt: skip
    medians: dict[str, list[float]] = {"base": [], "new": []}
    for n in sizes:
        cells = {}
        for name in trees:
            walls = [r[str(n)][0] for r in runs[name]]
            cpus = [r[str(n)][1] for r in runs[name]]
            cells[name] = (statistics.median(walls), statistics.median(cpus))
            medians[name].append(cells[name][1])
        floor = statistics.median(floors[n])
        (bw, bc), (nw, nc) = cells["base"], cells["new"]
        versus = f" {floor:>10.3f} {nc / floor:>14.2f}" if floor == floor else ""  # nan: none
        print(f"{n:>10} {bw:>10.4f} {nw:>10.4f} {bc:>10.4f} {nc:>10.4f} {nc / bc:>13.2f}{versus}")
    if args.workload == "w2":
        n = sizes[-1]
        for name in trees:
            wall = statistics.median(r[str(n)][0] for r in runs[name])
            cpu = statistics.median(r[str(n)][1] for r in runs[name])
            print(f"  {name}: {n / wall:,.0f} tasks/s, {cpu / n * 1e6:.0f} us CPU per task")
    if len(sizes) > 1:
        grow = {k: workloads.growth_exponent(tuple(sizes), v) for k, v in medians.items()}
        fl = workloads.growth_exponent(tuple(sizes), [statistics.median(floors[n]) for n in sizes])
        print(
            f"CPU growth exponent: base {grow['base']:.3f}, new {grow['new']:.3f}, floor {fl:.3f}"
        )
    after = os.getloadavg()
    print("load average (1, 5, 15 min) before / after: "
          + " ".join(f"{x:.1f}" for x in load_before) + " / "
          + " ".join(f"{x:.1f}" for x in after))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
