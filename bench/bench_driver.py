"""Driver benchmark (issues 4, 13): W1-W6 and S1-S4 on local[2] and on a master + worker.

Usage:
    bench_driver.py [run] [--impl sparkctl|pyspark] [--masters local,standalone]
                    [--only w1,w2,...,s4] [--scale] [--json OUT] [--timeout S]
    bench_driver.py compare SPARKCTL.json PYSPARK.json

``run`` executes the workloads with one implementation (``pyspark`` needs a
Python with pyspark installed: ``make bench-compare`` makes ``.bench-venv/``)
and prints a table; ``compare`` prints two runs side by side with ratios
(> 1 means sparkctl is better). ``BENCH_QUICK=1`` shrinks every workload.

Workloads: W1 tiny-job latency on a warm context; W2 2,000 tiny tasks; W3
word count of ~100 MB; W4 groupByKey of 5M pairs and sortByKey of 2M pairs;
W5 submit of a one-job app, end to end; W6 idle RSS of driver and executors.
The scale rows (issue 13, long: not run by default; ``--scale`` runs them alone
on local[2], or name them in ``--only``): S1 one M x M wide shuffle; S2
groupByKey at growing sizes; S3 passes of map+reduce over cached floats; S4 a
join at growing sizes. Their plain-Python floors (one process, no framework)
are measured by the sparkctl run and printed beside both engines, with the
growth exponents of S2 and S4.
A workload that fails or exceeds its timeout is reported as such, never as a
number. The benchmark binds only 127.0.0.1 and stops every process it starts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _bench_clusters as clusters
import _bench_workloads as workloads

REPO = Path(__file__).resolve().parent.parent
Result = dict[str, Any]

#: (metric, label, unit, higher is better, target from issue 4 or 13, or ""). Where
#: local[2] and a master + worker have different targets: "local / standalone".
METRICS = [
    ("w1_p50_ms", "W1 tiny job p50", "ms", False, "<= 1 / 1.5"),
    ("w1_p95_ms", "W1 tiny job p95", "ms", False, ""),
    ("w2_tasks_per_s", "W2 many tiny tasks", "tasks/s", True, ">= 20k / 15k"),
    ("w3_s", "W3 word count", "s", False, "2x PySpark"),
    ("w4_group_s", "W4 groupByKey", "s", False, "2x PySpark"),
    ("w4_sort_s", "W4 sortByKey", "s", False, "2x PySpark"),
    ("w5_submit_s", "W5 submit one-job app", "s", False, "< 1.5"),
    ("w6_driver_mib", "W6 driver RSS idle", "MiB", False, "< 80"),
    ("w6_driver_children_mib", "W6 driver's child procs", "MiB", False, ""),
    ("w6_executor_max_mib", "W6 largest executor proc", "MiB", False, "< 80"),
    ("w6_executors_mib", "W6 all executor procs", "MiB", False, ""),
]

SUBMIT_APP = """\
{import_line}

sc = SparkContext(appName="bench-submit")
print("counted", sc.parallelize(range(1000), 2).count())
sc.stop()
"""


class WorkloadTimeout(Exception):
    """A workload ran past --timeout."""


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise WorkloadTimeout(f"exceeded {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _guarded(result: Result, name: str, timeout: int, fn: Callable[[], Result]) -> None:
    """Run one workload into `result`; a failure is recorded under its name, not raised."""
    print(f"  {name} ...", end="", flush=True, file=sys.stderr)
    start = time.perf_counter()
    try:
        with _deadline(timeout):
            result.update(fn())
        print(f" {time.perf_counter() - start:.1f}s", file=sys.stderr)
    except Exception as exc:
        result[f"{name}_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        print(f" FAILED ({result[f'{name}_error']})", file=sys.stderr)


def _import_line(impl: str) -> str:
    package = "pyspark" if impl == "pyspark" else "scheduler"
    return f"from {package} import SparkConf, SparkContext"


def _new_context(impl: str, master: str) -> Any:
    if impl == "pyspark":
        from pyspark import SparkConf, SparkContext

        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    else:
        from scheduler import SparkConf, SparkContext
    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName(f"bench-driver-{impl}")
        .set("spark.ui.showConsoleProgress", "false")
        .set("spark.ui.enabled", "false")
    )
    sc = SparkContext(conf=conf)
    if impl == "pyspark":
        sc.setLogLevel("ERROR")
    return sc


def _submit_once(impl: str, master: str) -> Result:
    """W5: submit a one-job app and wait for it, end to end."""
    with tempfile.TemporaryDirectory(prefix="bench-submit-") as tmp:
        app = Path(tmp) / "app.py"
        app.write_text(SUBMIT_APP.format(import_line=_import_line(impl)))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        if impl == "pyspark":
            import pyspark

            home = Path(pyspark.__file__).resolve().parent
            command = [str(home / "bin" / "spark-submit"), "--master", master, str(app)]
            env.update(SPARK_HOME=str(home), PYSPARK_PYTHON=sys.executable)
        else:
            command = [str(Path(sys.executable).parent / "sparkctl"), "submit"]
            command += ["--master", master, str(app)]
        start = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=300, cwd=tmp
        )
        seconds = time.perf_counter() - start
    if done.returncode != 0 or "counted 1000" not in done.stdout:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"submit exited {done.returncode}: {tail[0][:200]}")
    return {"w5_submit_s": seconds}


WORKLOADS = ("w1", "w2", "w3", "w4", "w5", "w6")
SCALE_WORKLOADS = ("s1", "s2", "s3", "s4")


def run_master(
    impl: str,
    label: str,
    sizes: workloads.Sizes,
    timeout: int,
    only: tuple[str, ...] = WORKLOADS,
) -> Result:
    """The workloads in `only` on one master: 'local' (local[2]) or 'standalone'."""
    result: Result = {}
    cluster: clusters.Cluster | None = None
    print(f"{impl} on {label}:", file=sys.stderr)
    try:
        if label == "standalone":
            cluster = clusters.PySparkCluster() if impl == "pyspark" else clusters.SparkctlCluster()
            master = cluster.url
        else:
            master = "local[2]"
        before = set(cluster.pids()) if cluster else set()
        sc = _new_context(impl, master)
        try:
            sc.parallelize(range(4), 2).count()  # warm-up: executors up and registered
            if cluster is not None:
                executors = [p for p in cluster.pids() if p not in before]
            else:  # local[2]: the executor side runs in the driver's child processes
                executors = clusters.descendant_pids(os.getpid())
            in_cluster = cluster.pids() if cluster is not None else []
            steps: dict[str, Callable[[], Result]] = {
                "w6": lambda: workloads.w6_idle_memory(executors, in_cluster),
                "w1": lambda: workloads.w1_tiny_job_latency(sc, sizes),
                "w2": lambda: workloads.w2_many_tiny_tasks(sc, sizes),
                "w3": lambda: workloads.w3_word_count(sc, sizes),
                "w4": lambda: workloads.w4_group_and_sort(sc, sizes),
                "s1": lambda: workloads.s1_wide_shuffle(sc, sizes),
                "s2": lambda: workloads.s2_group_by_key(sc, sizes),
                "s3": lambda: workloads.s3_cached_passes(sc, sizes),
                "s4": lambda: workloads.s4_join(sc, sizes),
            }
            for name, step in steps.items():
                if name in only:
                    _guarded(result, name, timeout, step)
        finally:
            sc.stop()
        if "w5" in only:
            _guarded(result, "w5", timeout, lambda: _submit_once(impl, master))
    except Exception as exc:
        result["error"] = (
            f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        )
        print(f"  could not run: {result['error']}", file=sys.stderr)
    finally:
        if cluster is not None:
            cluster.stop()
    return result


def _cell(result: Result, metric: str) -> str:
    if metric in result:
        value = result[metric]
        return f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    workload = metric.split("_")[0]
    if f"{workload}_error" in result or "error" in result:
        return "failed"
    return "-"


def print_table(runs: dict[str, Result], title: str) -> None:
    """One row per metric, one column per run."""
    names = list(runs)
    print(f"\n{title}")
    header = f"{'workload':<28}{'unit':<9}" + "".join(f"{n:>22}" for n in names) + f"{'target':>14}"
    print(header)
    print("-" * len(header))
    for metric, label, unit, _, target in METRICS:
        cells = "".join(f"{_cell(runs[n], metric):>22}" for n in names)
        print(f"{label:<28}{unit:<9}{cells}{target:>14}")
    for name, result in runs.items():
        for key, value in result.items():
            if key.endswith("error"):
                print(f"  {name} {key}: {value}")


def _ratio(ours: Result, theirs: Result, metric: str, higher_better: bool) -> str:
    if metric not in ours or metric not in theirs or not ours[metric] or not theirs[metric]:
        return "-"
    ratio = ours[metric] / theirs[metric] if higher_better else theirs[metric] / ours[metric]
    return f"{ratio:.2f}x"


def print_comparison(ours: Result, theirs: Result) -> None:
    """sparkctl vs PySpark per master, with ratios (> 1 means sparkctl is better)."""
    for label in ours["masters"]:
        a, b = ours["masters"][label], theirs["masters"].get(label, {})
        if _has_scale(a) or _has_scale(b):
            sizes = workloads.Sizes(**_sizes_of(ours))
            floors = ours.get("floors", {})
            pyspark = f"pyspark {theirs.get('version', '')}".strip()
            print_scale({"sparkctl": a, pyspark: b}, floors, sizes, f"{label}: scale rows")
            for metric, name, unit in _scale_rows(sizes):
                if metric in a and metric in b and not metric.endswith("exponent") and b[metric]:
                    what = "less CPU than" if unit == "s cpu" else "faster than"
                    print(f"  {name}: sparkctl {b[metric] / a[metric]:.2f}x {what} PySpark")
        if not any(metric in a or metric in b for metric, *_ in METRICS):
            continue
        print(
            f"\n{label}: sparkctl vs PySpark {theirs.get('version', '')}"
            " (ratio > 1: sparkctl better)"
        )
        header = (
            f"{'workload':<28}{'unit':<9}{'sparkctl':>12}{'pyspark':>12}{'ratio':>10}{'target':>14}"
        )
        print(header)
        print("-" * len(header))
        for metric, name, unit, higher, target in METRICS:
            row = f"{name:<28}{unit:<9}{_cell(a, metric):>12}{_cell(b, metric):>12}"
            print(row + f"{_ratio(a, b, metric, higher):>10}{target:>14}")
        print_w3_floor(a, ours.get("floors", {}))
        for who, result in (("sparkctl", a), ("pyspark", b)):
            for key, value in result.items():
                if key.endswith("error"):
                    print(f"  {who} {key}: {value}")


def print_w3_floor(result: Result, floors: Result) -> None:
    """W3 beside its plain-Python floor (issue 13: within 1.3x of the 2-core floor)."""
    if "w3_s" not in result or "w3_s" not in floors:
        return
    floor = floors["w3_s"]
    print(
        f"  W3 floor (Counter over split(), one process): {floor:.2f} s, 2-core bound"
        f" {floor / 2:.2f} s; sparkctl is {result['w3_s'] / (floor / 2):.2f}x the 2-core"
        f" bound (target <= 1.3x)"
    )


def _scale_rows(sizes: workloads.Sizes) -> list[tuple[str, str, str]]:
    """(metric, label, unit) of the S rows at these sizes."""
    rows = [("s1", f"S1 wide shuffle {sizes.s1_partitions}x{sizes.s1_partitions}", "s")]
    rows += [(f"s2_{n}", f"S2 groupByKey {_count(n)}", "s") for n in sizes.s2_records]
    rows.append(("s2", "S2 growth exponent", "k"))
    rows.append(("s3", f"S3 {sizes.s3_passes} passes cached {_count(sizes.s3_records)}", "s"))
    rows += [(f"s4_{n}", f"S4 join {_count(n)} x {_count(n)}", "s") for n in sizes.s4_records]
    rows.append(("s4", "S4 growth exponent", "k"))
    # Each as wall time, then as CPU seconds of all the engine's processes.
    out = []
    for base, label, unit in rows:
        if unit == "k":
            out += [(f"{base}_exponent", label, unit), (f"{base}_cpu_exponent", label, "k cpu")]
        else:
            out += [(f"{base}_s", label, unit), (f"{base}_cpu_s", label, "s cpu")]
    return out


def _count(n: int) -> str:
    return f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n / 1e3:g}k"


def _has_scale(result: Result) -> bool:
    return any(k.startswith("s") and k[1:2].isdigit() for k in result)


def print_scale(
    columns: dict[str, Result], floors: Result, sizes: workloads.Sizes, title: str
) -> None:
    """The S rows: one column per run, the one-process floor and half of it (two cores).

    Ratios are engine / floor time (1.0 is the floor; a growth exponent is not a time
    and has no ratio).
    """
    names = list(columns)
    print(f"\n{title} (floor: plain Python, one process; floor/2: its 2-core bound)")
    print(
        "'s' rows: wall time, ratio to floor/2; 's cpu' rows: CPU seconds of every process"
        " of the run, ratio to the floor's CPU"
    )
    header = f"{'workload':<28}{'unit':<8}" + "".join(f"{n:>14}" for n in names)
    header += f"{'floor':>10}{'floor/2':>10}" + "".join(
        f"{n.split()[0][:9] + '/f2':>14}" for n in names
    )
    print(header)
    print("-" * len(header))
    for metric, label, unit in _scale_rows(sizes):
        cells = "".join(f"{_cell(columns[n], metric):>14}" for n in names)
        floor = floors.get(metric)
        if floor is None:
            cells += f"{'-':>10}{'-':>10}" + "".join(f"{'-':>14}" for _ in names)
        elif unit.startswith("k"):
            cells += f"{floor:>10.2f}{'':>10}" + "".join(f"{'':>14}" for _ in names)
        else:
            # CPU seconds do not halve on two cores: those rows compare with the floor itself.
            bound = floor if unit == "s cpu" else floor / 2
            cells += f"{floor:>10.2f}" + (f"{'':>10}" if unit == "s cpu" else f"{bound:>10.2f}")
            for n in names:
                ours = columns[n].get(metric)
                cells += f"{ours / bound:>13.1f}x" if ours and bound else f"{'-':>14}"
        print(f"{label:<28}{unit:<8}{cells}")
    for name, result in columns.items():
        for key, value in result.items():
            if key.endswith("error"):
                print(f"  {name} {key}: {value}")


def _describe_sizes(sizes: workloads.Sizes) -> str:
    return (
        f"sizes: W1 {sizes.w1_runs} runs; W2 {sizes.w2_tasks} tasks over {sizes.w2_elements}"
        f" elements, median of {sizes.w2_runs} runs; W3 {sizes.w3_megabytes} MB text,"
        f" 8 partitions; W4 groupByKey"
        f" {sizes.w4_group_pairs:,} pairs / {sizes.w4_group_keys:,} keys, sortByKey"
        f" {sizes.w4_sort_pairs:,} pairs; W3 and W4 median of {sizes.heavy_runs} runs;"
        f" S2 and S4 median of {sizes.scale_runs} runs per size (sizes interleaved), S1"
        f" and S3 one run; S2-S4 over {workloads.SCALE_PARTITIONS} partitions"
    )


def _sizes_of(results: Result) -> dict[str, Any]:
    """The Sizes fields of a results file (JSON made its tuples lists)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in results["sizes"].items()}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run the workloads with one implementation")
    run.add_argument("--impl", choices=["sparkctl", "pyspark"], default="sparkctl")
    run.add_argument("--masters", default="local,standalone", help="comma list: local,standalone")
    run.add_argument("--only", default=",".join(WORKLOADS), help="comma list: w1,...,w6,s1,...,s4")
    run.add_argument(
        "--scale", action="store_true", help="run only the scale rows S1-S4, on local[2]"
    )
    run.add_argument("--json", type=Path, help="also write the results to this file")
    run.add_argument("--timeout", type=int, default=900, help="seconds allowed per workload")
    compare = sub.add_parser("compare", help="print two runs side by side")
    compare.add_argument("ours", type=Path)
    compare.add_argument("theirs", type=Path)
    args = parser.parse_args(argv[1:] or ["run"])
    if args.command == "compare":
        for path in (args.ours, args.theirs):
            if not path.is_file():
                parser.error(f"no results file {path} (run 'bench_driver.py run --json' first)")
        ours = json.loads(args.ours.read_text())
        print_comparison(ours, json.loads(args.theirs.read_text()))
        print(_describe_sizes(workloads.Sizes(**_sizes_of(ours))))
        return 0
    masters = [m.strip() for m in args.masters.split(",") if m.strip()]
    unknown = sorted(set(masters) - {"local", "standalone"})
    if unknown:
        parser.error(f"--masters: unknown {unknown}; use local and/or standalone")
    only = tuple(w.strip().lower() for w in args.only.split(",") if w.strip())
    if args.scale:
        only, masters = SCALE_WORKLOADS, ["local"]
    known = WORKLOADS + SCALE_WORKLOADS
    if not only or set(only) - set(known):
        parser.error(f"--only: unknown {sorted(set(only) - set(known))}; use {known}")
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, not {args.timeout}")
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")
    sizes = workloads.Sizes.quick() if quick else workloads.Sizes()
    version = ""
    if args.impl == "pyspark":
        import pyspark

        version = pyspark.__version__
    results: Result = {
        "impl": args.impl,
        "version": version,
        "quick": quick,
        "load": os.getloadavg(),
        "sizes": sizes.__dict__,
        "masters": {m: run_master(args.impl, m, sizes, args.timeout, only) for m in masters},
    }
    scale = tuple(w for w in only if w in SCALE_WORKLOADS)
    if args.impl == "sparkctl" and (scale or "w3" in only):
        print("plain-Python floors ...", file=sys.stderr)
        results["floors"] = workloads.scale_floors(sizes, scale)
        if "w3" in only:
            results["floors"]["w3_s"], results["floors"]["w3_cpu_s"] = workloads.floor_w3(
                sizes.w3_megabytes
            )
    label = f"{args.impl} {version}".strip() + (" (BENCH_QUICK sizes)" if quick else "")
    columns = {
        ("local[2]" if m == "local" else "master+1 worker"): r
        for m, r in results["masters"].items()
    }
    if any(w in WORKLOADS for w in only):
        print_table(columns, f"driver benchmark: {label}")
        for column in columns.values():
            print_w3_floor(column, results.get("floors", {}))
    if scale:
        print_scale(columns, results.get("floors", {}), sizes, f"scale rows: {label}")
    print(_describe_sizes(sizes))
    before = " ".join(f"{x:.1f}" for x in results["load"])
    after = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min) before / after: {before} / {after}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
