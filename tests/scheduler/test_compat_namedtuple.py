"""PySpark compatibility: namedtuple classes from a module the executors cannot import.

PySpark 4 pickles namedtuple classes and their instances by value only with
``PYSPARK_ENABLE_NAMEDTUPLE_PATCH=1``; without it, a namedtuple from a module
only the driver has fails the tasks with "No module named ...". Each case runs
a whole program (``python app.py`` on local[2], ``sparkctl submit`` on the
cluster); expected outputs were printed by PySpark 4.3 first. This module has
no module-scoped SparkContext: a submitted program needs the cluster's cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import _compat_programs as programs
import _compat_support as support
import pytest

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
