"""PySpark compatibility: stage-level profiles in Spark's testing mode.

With the SPARK_TESTING environment variable set (as PySpark's own test runner
sets it) Spark accepts ``rdd.withResources`` on any master, so that its tests can
build profiles on ``local[N]``; ``spark.testing.resourceProfileManager=true``
brings the refusal back. Each case is a program of its own: the variable is read
when the driver (in PySpark, its JVM) starts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _compat_programs as programs
import _compat_support as support

_PROGRAM = """
import sys
from scheduler import SparkConf, SparkContext
from scheduler.resource import (
    ExecutorResourceRequests, ResourceProfileBuilder, TaskResourceRequests,
)

conf = SparkConf().setMaster("local[2]").setAppName("profiles-testing-mode")
if sys.argv[1] == "refuse":
    conf.set("spark.testing.resourceProfileManager", "true")
sc = SparkContext(conf=conf)
try:
    executor = ExecutorResourceRequests().cores(2).memory("1g")
    task = TaskResourceRequests().cpus(2)
    profile = ResourceProfileBuilder().require(executor).require(task).build
    try:
        rdd = sc.parallelize(range(4), 2).withResources(profile)
    except Exception as error:
        print("refused:", "only supported on YARN and Kubernetes" in str(error))
    else:
        got = rdd.getResourceProfile()
        print("accepted:", got.taskResources["cpus"].amount, got.executorResources["cores"].amount)
finally:
    sc.stop()
"""


def _run(tmp_path: Path, mode: str) -> str:
    source = _PROGRAM
    if support.IMPL == "pyspark":
        source = source.replace("from scheduler.resource import", "from pyspark.resource import")
    script = programs.write_program(source, tmp_path)
    env = programs.launcher_env()
    env["SPARK_TESTING"] = "1"
    done = subprocess.run(
        [sys.executable, str(script), mode],
        capture_output=True,
        text=True,
        timeout=programs.RUN_TIMEOUT_S,
        cwd=str(tmp_path),
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_testing_mode_accepts_profiles_on_local_mode(tmp_path: Path) -> None:
    assert _run(tmp_path, "accept") == "accepted: 2.0 2"


def test_testing_mode_refuses_them_when_asked_to(tmp_path: Path) -> None:
    assert _run(tmp_path, "refuse") == "refused: True"
