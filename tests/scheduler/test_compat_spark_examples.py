"""Spark's own current RDD example programs print on sparkctl what they print on PySpark.

test_compat_current_examples.py runs programs of ours written the way today's
examples are; this file runs the real ones: apache/spark's
``examples/src/main/python/{pi,wordcount,sort,transitive_closure,pagerank,
logistic_regression,kmeans,als}.py`` as the PySpark wheel ships them
(``pyspark/examples/src/main/python``; ``make test-oracle`` installs PySpark 4.3
into ``.bench-venv/``), or from ``SPARK_EXAMPLES_DIR``. The files are read, not
copied here. For sparkctl their ``pyspark`` import lines are changed to
``scheduler`` (nothing else); for the oracle they run as they are. Each runs as
``python app.py`` on local[2] and, submitted with ``sparkctl submit``, on the
test cluster. Inputs are written by the test; logistic_regression starts from
``np.random.ranf``, so every program runs under a launcher that seeds numpy's
global generator first (pi's darts are unseeded, as in Spark: its figure is
checked for closeness). Expected outputs were printed by PySpark 4.3.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
from pathlib import Path

import _compat_programs as programs
import _compat_support as support
import pytest

NAMES = (
    "als",
    "kmeans",
    "logistic_regression",
    "pagerank",
    "pi",
    "sort",
    "transitive_closure",
    "wordcount",
)
NEEDS_NUMPY = {"logistic_regression", "kmeans", "als"}
#: transitive_closure's `tc.union(...).distinct()` doubles its partitions each round
#: unless spark.default.parallelism is set (PySpark's own _defaultReducePartitions):
#: 2^15 partitions by its last round, hours on either side. A setting, not an edit.
CONF = {"transitive_closure": {"spark.default.parallelism": "2"}}
#: PySpark (the oracle) takes minutes for the iterative ones on a loaded 2-core machine.
ORACLE_RUN_TIMEOUT_S = 600

#: Each ``pyspark`` import line of the examples, as it reads for sparkctl.
IMPORTS = {
    "from pyspark.sql import SparkSession": "from scheduler import SparkSession",
    "from pyspark import RDD": "from scheduler import RDD",
    "from pyspark.resultiterable import ResultIterable": "from scheduler import ResultIterable",
}

#: Runs `argv[1]` as ``__main__`` with the rest as its arguments, numpy seeded.
LAUNCHER = """\
import runpy
import sys

try:
    import numpy
except ImportError:
    pass
else:
    numpy.random.seed(7)
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def examples_dir() -> Path | None:
    """Where Spark's Python examples are: SPARK_EXAMPLES_DIR, or a PySpark install's copy."""
    given = os.environ.get("SPARK_EXAMPLES_DIR")
    if given:
        return Path(given)
    if support.IMPL == "pyspark":
        import pyspark

        candidates = [Path(pyspark.__file__).parent]
    else:
        venv = support.REPO / ".bench-venv"
        candidates = sorted(venv.glob("lib/python*/site-packages/pyspark"))
    for root in candidates:
        path = root / "examples" / "src" / "main" / "python"
        if (path / "pi.py").is_file():
            return path
    return None


def program_text(name: str) -> str:
    """Spark's example `name`, with its import lines changed for sparkctl."""
    directory = examples_dir()
    if directory is None:
        pytest.skip(
            "Spark's example programs were not found: set SPARK_EXAMPLES_DIR or install "
            "PySpark into .bench-venv (make test-oracle does)"
        )
    text = (directory / f"{name}.py").read_text()
    if support.IMPL == "pyspark":
        return text
    for pyspark_line, ours in IMPORTS.items():
        text = text.replace(pyspark_line, ours)
    left = [line for line in text.splitlines() if re.match(r"\s*(from|import) pyspark", line)]
    assert not left, f"{name}.py has a pyspark import this test does not map: {left}"
    return text


def _inputs(directory: Path) -> dict[str, list[str]]:
    """Write each program's input files; return its arguments."""
    rand = random.Random(5)
    words = [
        "it",
        "was",
        "the",
        "best",
        "of",
        "times",
        "it",
        "was",
        "the",
        "worst",
        "of",
        "times",
        "the",
        "age",
        "of",
        "wisdom",
    ]
    (directory / "words.txt").write_text(
        "".join(
            " ".join(rand.choice(words) for _ in range(rand.randint(3, 9))) + "\n"
            for _ in range(40)
        )
    )
    (directory / "numbers.txt").write_text(
        "".join(" ".join(str(rand.randint(0, 999)) for _ in range(5)) + "\n" for _ in range(8))
    )
    pages = [f"url_{i}" for i in range(6)]
    (directory / "links.txt").write_text(
        "".join(f"{a} {b}\n" for a in pages for b in pages if a != b and rand.random() < 0.4)
    )
    # logistic_regression: <label> <x1> ... <x10> (its D is 10)
    (directory / "points.txt").write_text(
        "".join(
            f"{rand.choice([-1, 1])} "
            + " ".join(f"{rand.uniform(-1, 1):.3f}" for _ in range(10))
            + "\n"
            for _ in range(50)
        )
    )
    (directory / "kmeans.txt").write_text(
        "".join(
            f"{cx + rand.randint(-3, 3)} {cy + rand.randint(-3, 3)}\n"
            for cx, cy in ((0, 0), (20, 20), (-20, 15))
            for _ in range(10)
        )
    )
    return {
        "als": ["12", "15", "3", "2", "2"],
        "kmeans": [str(directory / "kmeans.txt"), "3", "0.01"],
        "logistic_regression": [str(directory / "points.txt"), "3"],
        "pagerank": [str(directory / "links.txt"), "4"],
        "pi": ["2"],
        "sort": [str(directory / "numbers.txt")],
        "transitive_closure": ["2"],
        "wordcount": [str(directory / "words.txt")],
    }


EXPECTED: dict[str, str] = {
    "als": (
        "Running ALS with M=12, U=15, F=3, iters=2, partitions=2\n"
        "\n"
        "Iteration 0:\n"
        "\n"
        "RMSE: 0.0987\n"
        "\n"
        "Iteration 1:\n"
        "\n"
        "RMSE: 0.0252\n"
        "\n"
    ),
    "kmeans": ("Final centers: [array([-19.8,  14. ]), array([0.4, 0. ]), array([20.4, 21.1])]\n"),
    "logistic_regression": (
        "Initial w: [-8.47383421e-01  5.59837584e-01 -1.23181537e-01  4.46930356e-01\n"
        "  9.55979024e-01  7.69917408e-02  2.24092732e-03 -8.55897733e-01\n"
        " -4.63122040e-01 -2.34998349e-04]\n"
        "On iteration 1\n"
        "On iteration 2\n"
        "On iteration 3\n"
        "Final w: [ 1.9323529   1.37447309 -1.44037918  0.14520108 -1.81988841  1.18522812\n"
        " -5.19925905  3.97611347  4.04839297 -3.26928438]\n"
    ),
    "pagerank": (
        "url_3 has rank: 0.7316700520833332.\n"
        "url_1 has rank: 0.4640410590277777.\n"
        "url_2 has rank: 0.9239397569444444.\n"
        "url_4 has rank: 0.7316700520833332.\n"
        "url_0 has rank: 0.4640410590277777.\n"
    ),
    "sort": (
        "13\n"
        "20\n"
        "24\n"
        "37\n"
        "40\n"
        "124\n"
        "139\n"
        "146\n"
        "158\n"
        "249\n"
        "251\n"
        "251\n"
        "274\n"
        "280\n"
        "292\n"
        "293\n"
        "300\n"
        "300\n"
        "314\n"
        "326\n"
        "401\n"
        "454\n"
        "485\n"
        "488\n"
        "491\n"
        "501\n"
        "503\n"
        "545\n"
        "573\n"
        "636\n"
        "675\n"
        "738\n"
        "800\n"
        "800\n"
        "846\n"
        "864\n"
        "951\n"
        "957\n"
        "967\n"
        "983\n"
    ),
    "transitive_closure": ("TC has 6816 edges\n"),
    "wordcount": (
        "the: 43\ntimes: 50\nit: 26\nof: 42\nwas: 21\nwisdom: 19\nbest: 8\nage: 17\nworst: 18\n"
    ),
}


def _check(name: str, out: str) -> None:
    if name == "pi":
        match = re.fullmatch(r"Pi is roughly (\d\.\d{6})\n", out)
        assert match is not None, out
        assert abs(float(match.group(1)) - 3.14159) < 0.05
        return
    assert out == EXPECTED[name]


def _prepare(name: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    """(launcher and script paths, the program's arguments) for `name` in tmp_path."""
    if name in NEEDS_NUMPY:
        pytest.importorskip("numpy")
    source = program_text(name)
    script = tmp_path / f"{name}.py"
    script.write_text(source)
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER)
    return [str(launcher), str(script)], _inputs(tmp_path)[name]


@pytest.mark.timeout(ORACLE_RUN_TIMEOUT_S + 60)
@pytest.mark.parametrize("name", NAMES)
def test_spark_example_prints_what_pyspark_prints(name: str, tmp_path: Path) -> None:
    paths, args = _prepare(name, tmp_path)
    done = subprocess.run(
        [sys.executable, *paths, *args],
        capture_output=True,
        text=True,
        timeout=ORACLE_RUN_TIMEOUT_S if support.IMPL == "pyspark" else programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env=programs.launcher_env({"spark.master": "local[2]", **CONF.get(name, {})}),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _check(name, done.stdout)


@pytest.mark.parametrize("name", NAMES)
def test_spark_example_submitted_to_the_cluster_prints_the_same(
    name: str, spark_cluster: str, tmp_path: Path
) -> None:
    paths, args = _prepare(name, tmp_path)
    sparkctl = Path(sys.executable).parent / "sparkctl"
    flags = ["--master", spark_cluster, "--conf", "spark.ui.enabled=false"]
    for key, value in CONF.get(name, {}).items():
        flags += ["--conf", f"{key}={value}"]
    done = subprocess.run(
        [str(sparkctl), "submit", *flags, *paths, *args],
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(support.REPO), "PYTHONHASHSEED": "0"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    _check(name, done.stdout)
