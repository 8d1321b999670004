"""PySpark compatibility: what a whole program sees when it starts its own context.

A bare ``SparkContext()`` run with ``python app.py`` gets PySpark's launcher
defaults (``local[*]``, app name ``pyspark-shell``); ``sparkctl submit`` sets
the master instead. Each program runs in its own process (see
_compat_programs.py); every expected output was observed on PySpark 4.3 first.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _compat_programs as programs
import _compat_support as support

BARE_CONTEXT = """\
import os
from scheduler import SparkContext

sc = SparkContext()
print(sc.master, sc.appName)
print(sc.getConf().get("spark.master"), sc.getConf().get("spark.app.name"))
print(sc.defaultParallelism == (os.cpu_count() if sc.master == "local[*]" else 2))
print(sc.parallelize(range(10)).sum())
sc.stop()
sc = SparkContext(appName="named")
print(sc.master, sc.appName)
sc.stop()
with SparkContext("local[2]") as sc:
    print(sc.master, sc.appName, sc.defaultParallelism)
"""


def test_a_bare_context_runs_on_every_local_core_as_pyspark_shell(tmp_path: Path) -> None:
    out = programs.run_program(BARE_CONTEXT, tmp_path).stdout
    assert out == (
        "local[*] pyspark-shell\n"
        "local[*] pyspark-shell\n"
        "True\n"
        "45\n"
        "local[*] named\n"
        "local[2] pyspark-shell 2\n"
    )


def test_a_submitted_bare_context_takes_the_launchers_master(
    spark_cluster: str, tmp_path: Path
) -> None:
    script = programs.write_program(BARE_CONTEXT, tmp_path)
    sparkctl = Path(sys.executable).parent / "sparkctl"
    flags = ["--master", spark_cluster, "--name", "bare", "--conf", "spark.ui.enabled=false"]
    done = subprocess.run(
        [str(sparkctl), "submit", *flags, str(script)],
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(support.REPO)},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[:4] == [
        f"{spark_cluster} bare",
        f"{spark_cluster} bare",
        "True",
        "45",
    ]
    # Arguments given in code win over the launcher's, as in PySpark.
    assert lines[4:] == [f"{spark_cluster} named", "local[2] bare 2"]
