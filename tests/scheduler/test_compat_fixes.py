"""PySpark compatibility: results that once differed from PySpark's (issue 14).

Local checkpoints report themselves checkpointed once computed; a
StopIteration in ``reduceByKeyLocally``'s function fails as PySpark says;
``toLocalIterator(prefetchPartitions=True)`` computes the next partition while
the current one is read; a namedtuple class that executors cannot import
travels by value. Every expected value was observed on PySpark 4.3 first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _compat_programs as programs
import _compat_support as support
import pytest

#: How long a prefetched partition may take to start while the current one is read.
PREFETCH_TIMEOUT_S = 20.0


def test_local_checkpoint_is_checkpointed_once_computed(sc: Any) -> None:
    rdd = sc.parallelize(range(10), 2).map(lambda x: x * 2)
    assert not rdd.isCheckpointed() and not rdd.isLocallyCheckpointed()
    rdd.localCheckpoint()
    assert rdd.isLocallyCheckpointed()
    assert not rdd.isCheckpointed()
    assert rdd.collect() == list(range(0, 20, 2))
    assert rdd.isCheckpointed() and rdd.isLocallyCheckpointed()
    assert rdd.getCheckpointFile() is None
    child = rdd.map(lambda x: x + 1)
    assert not child.isCheckpointed()
    assert child.sum() == 100
    assert not child.isCheckpointed()


def test_only_collect_marks_a_local_checkpoint(sc: Any) -> None:
    """PySpark marks it in the one action that runs a job on the RDD itself: collect."""
    parent = sc.parallelize(range(6), 3).map(lambda x: (x % 2, x))
    parent.localCheckpoint()
    assert parent.count() == 6 and parent.take(2) == [(0, 0), (1, 1)]
    assert parent.reduceByKey(lambda a, b: a + b).collectAsMap() == {0: 6, 1: 9}
    assert parent.map(lambda kv: kv[1]).sum() == 15
    assert not parent.isCheckpointed()
    assert parent.collectAsMap() == {0: 4, 1: 5}
    assert parent.isCheckpointed()


def _stop_iteration(a: int, b: int) -> int:
    raise StopIteration()


def test_stop_iteration_in_reduce_by_key_locally_fails_with_pysparks_message(sc: Any) -> None:
    pairs = sc.parallelize([(1, 1), (1, 2), (2, 3)], 1)
    with pytest.raises(Exception, match="Caught StopIteration thrown from user's code"):
        pairs.reduceByKeyLocally(_stop_iteration)
    # Only merged on the driver: each partition holds one value per key.
    spread = sc.parallelize([(1, 1), (1, 2)], 2)
    with pytest.raises(RuntimeError, match="Caught StopIteration thrown from user's code"):
        spread.reduceByKeyLocally(_stop_iteration)


def _mark_started(marks: str) -> Any:
    def compute(index: int, iterator: Any) -> Any:
        Path(marks, f"started-{index}").touch()
        return iterator

    return compute


def test_to_local_iterator_prefetches_the_next_partition(sc: Any, tmp_path: Path) -> None:
    rdd = sc.parallelize(range(8), 4).mapPartitionsWithIndex(_mark_started(str(tmp_path)))
    items = rdd.toLocalIterator(prefetchPartitions=True)
    assert next(items) == 0
    support.wait_until(
        lambda: (tmp_path / "started-1").exists(), PREFETCH_TIMEOUT_S, "partition 1's job"
    )
    assert not (tmp_path / "started-2").exists()
    assert list(items) == list(range(1, 8))


def test_to_local_iterator_without_prefetch_computes_on_demand(sc: Any, tmp_path: Path) -> None:
    rdd = sc.parallelize(range(8), 4).mapPartitionsWithIndex(_mark_started(str(tmp_path)))
    items = rdd.toLocalIterator()
    assert next(items) == 0
    time.sleep(1.0)
    assert not (tmp_path / "started-1").exists()
    assert list(items) == list(range(1, 8))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"started-{i}" for i in range(4)]


# -- namedtuple classes the executors cannot import ---------------------------------------

SHAPES = """\
from collections import namedtuple

Point = namedtuple("Point", ["x", "y"])
"""

NAMEDTUPLE_APP = """\
import sys

from scheduler import SparkContext

sys.path.insert(0, "driver_only")
from shapes import Point  # importable here only: executors do not have driver_only/

Pair = namedtuple_in_main = __import__("collections").namedtuple("Pair", "left right")

sc = SparkContext()
points = sc.parallelize(range(4), 2).map(lambda i: Point(i, i * i)).collect()
print(points)
print([p.y for p in points], points[1] == Point(1, 1), type(points[0]).__name__)
print(sc.parallelize([Point(1, 2), Point(3, 4)], 2).map(lambda p: p.x + p.y).collect())
print(sc.parallelize(range(3), 2).map(lambda i: Pair(i, -i)).collect())
grouped = sc.parallelize(range(6), 2).map(lambda i: (i % 2, Point(i, 0))).groupByKey()
print(sorted((k, sorted(p.x for p in v)) for k, v in grouped.collect()))
sc.stop()
"""

NAMEDTUPLE_OUTPUT = (
    "[Point(x=0, y=0), Point(x=1, y=1), Point(x=2, y=4), Point(x=3, y=9)]\n"
    "[0, 1, 4, 9] True Point\n"
    "[3, 7]\n"
    "[Pair(left=0, right=0), Pair(left=1, right=-1), Pair(left=2, right=-2)]\n"
    "[(0, [0, 2, 4]), (1, [1, 3, 5])]\n"
)


def _namedtuple_app(directory: Path) -> Path:
    (directory / "driver_only").mkdir()
    (directory / "driver_only" / "shapes.py").write_text(SHAPES)
    return programs.write_program(NAMEDTUPLE_APP, directory)


def _run_namedtuple_app(master: str, tmp_path: Path, patch: bool) -> Any:
    """Run the app with python (local[2]) or sparkctl submit (a spark:// master)."""
    script = _namedtuple_app(tmp_path)
    patch_env = {"PYSPARK_ENABLE_NAMEDTUPLE_PATCH": "1"} if patch else {}
    if master.startswith("local"):
        command = [sys.executable, str(script)]
        env = programs.launcher_env({"spark.master": master})
    else:
        sparkctl = Path(sys.executable).parent / "sparkctl"
        flags = ["--master", master, "--conf", "spark.ui.enabled=false"]
        command = [str(sparkctl), "submit", *flags, str(script)]
        env = {**os.environ, "PYTHONPATH": str(support.REPO), "PYTHONHASHSEED": "0"}
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env={**env, **patch_env},
        check=False,
    )


def test_namedtuples_travel_by_value_with_pysparks_patch(master: str, tmp_path: Path) -> None:
    """PYSPARK_ENABLE_NAMEDTUPLE_PATCH=1: classes and instances go by value (PySpark 4)."""
    done = _run_namedtuple_app(master, tmp_path, patch=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == NAMEDTUPLE_OUTPUT


def test_a_driver_only_namedtuple_module_is_named_in_the_failure(
    master: str, tmp_path: Path
) -> None:
    """Without the patch (PySpark 4's default) the executors' import of it fails, saying so.

    sparkctl's local executors run with the driver's sys.path, so they can import it.
    """
    if support.IMPL == "sparkctl" and master.startswith("local"):
        pytest.skip("sparkctl's local executors see the driver's sys.path")
    done = _run_namedtuple_app(master, tmp_path, patch=False)
    assert done.returncode != 0
    assert "No module named 'shapes'" in done.stderr
    if support.IMPL == "sparkctl":
        assert "could not deserialize the stage's code" in done.stderr
        assert "ship it with --py-files" in done.stderr
