"""PySpark compatibility: the Python workers' limits and checks.

- ``spark.executor.pyspark.memory`` caps each Python worker's address space
  (RLIMIT_AS) at the setting over ``spark.executor.cores`` (1 when unset): a
  task allocating past it fails with MemoryError, and the next task runs.
- A worker whose Python minor version is not the driver's fails the task with
  PySpark's PYTHON_VERSION_MISMATCH message (the driver's version is faked).
- ``spark.python.worker.faulthandler.enabled`` turns a segfault's bare
  "worker exited" into the faulthandler's "Fatal Python error: Segmentation
  fault" dump with the Python stack.

The messages start as PySpark's ("Python worker exited unexpectedly (crashed)");
sparkctl adds the worker's exit code, so only their common substrings are asserted.
"""

from __future__ import annotations

import ctypes
import resource
from typing import Any

import _compat_support as support
import pytest

#: How both begin a crashed worker's task failure.
CRASHED = r"Python worker exited unexpectedly \(crashed\)"


def address_space_limit(_: Any) -> int:
    return resource.getrlimit(resource.RLIMIT_AS)[0]


def allocate_gib(n: int) -> int:
    return len(bytearray(n << 30))


def crash(_: Any) -> int:
    return len(ctypes.string_at(0))


def test_without_pyspark_memory_the_workers_are_not_capped(master: str) -> None:
    """First in the module: in PySpark a context with the setting leaks it to later ones."""
    sc = support.new_context(master, "compat-pyspark-memory-off")
    try:
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        assert sc.parallelize([0], 1).map(address_space_limit).collect() == [soft]
    finally:
        sc.stop()


def test_pyspark_memory_caps_the_python_workers(master: str) -> None:
    sc = support.new_context(
        master, "compat-pyspark-memory", **{"spark.executor.pyspark.memory": "1g"}
    )
    try:
        limits = sc.parallelize(range(4), 2).map(address_space_limit).collect()
        assert all(0 < limit <= 1 << 30 for limit in limits), limits
        with pytest.raises(Exception, match="MemoryError"):
            sc.parallelize([2], 1).map(allocate_gib).collect()
        assert sc.parallelize(range(10), 2).map(lambda x: len(bytearray(1 << 20))).sum() == (
            10 << 20
        )
    finally:
        sc.stop()


def test_each_worker_gets_the_memory_over_spark_executor_cores(master: str) -> None:
    """PySpark divides by spark.executor.cores (1 when unset), not by its Python workers."""
    sc = support.new_context(
        master, "compat-pyspark-memory-whole", **{"spark.executor.pyspark.memory": "512m"}
    )
    try:
        limits = set(sc.parallelize(range(8), 4).map(address_space_limit).collect())
        assert limits == {512 << 20}
    finally:
        sc.stop()


@pytest.mark.timeout(300)  # PySpark's local-cluster takes 30 s to start
@pytest.mark.parametrize(
    ("where", "cores", "limit_mb"),
    [
        # A two-core executor without spark.executor.cores: still the whole amount.
        # (First: in PySpark a context's spark.executor.cores outlives it in its JVM.)
        ("local-cluster[1,2,1024]", None, 512),
        ("local[2]", "2", 256),
        ("local-cluster[1,2,1024]", "2", 256),
    ],
)
def test_pyspark_memory_is_split_by_spark_executor_cores(
    where: str, cores: str | None, limit_mb: int
) -> None:
    conf = {"spark.executor.pyspark.memory": "512m", "spark.executor.memory": "512m"}
    if cores is not None:
        conf["spark.executor.cores"] = cores
    sc = support.new_context(where, "compat-pyspark-memory-split", **conf)
    try:
        limits = set(sc.parallelize(range(8), 4).map(address_space_limit).collect())
        assert limits == {limit_mb << 20}
    finally:
        sc.stop()


def test_a_python_version_mismatch_fails_the_task(master: str) -> None:
    sc = support.new_context(master, "compat-python-version")
    try:
        rdd = sc.parallelize(range(4), 2).map(lambda x: x + 1)
        assert rdd.count() == 4
        version = sc.pythonVer  # as PySpark's test_worker does: the driver's claimed version
        sc.pythonVer = "2.7"
        expected = (
            r"Python in worker has different version: .* than that in driver: 2\.7, "
            "PySpark cannot run with different minor versions"
        )
        with pytest.raises(Exception, match=expected) as info:
            rdd.collect()
        assert "PYSPARK_PYTHON and PYSPARK_DRIVER_PYTHON" in str(info.value)
        sc.pythonVer = version
        assert rdd.count() == 4
    finally:
        sc.stop()


def test_a_segfault_without_the_faulthandler_says_the_worker_crashed(master: str) -> None:
    sc = support.new_context(master, "compat-segfault")
    try:
        with pytest.raises(
            Exception, match=r"Python worker exited unexpectedly \(crashed\)"
        ) as info:
            sc.parallelize([0], 1).map(crash).collect()
        text = str(info.value)
        assert "Fatal Python error" not in text
        assert "'spark.python.worker.faulthandler.enabled'" in text  # how to get the dump
        assert sc.parallelize(range(3), 1).sum() == 3
    finally:
        sc.stop()


def test_a_segfault_with_the_faulthandler_reports_its_dump(master: str) -> None:
    sc = support.new_context(
        master, "compat-segfault-dump", **{"spark.python.worker.faulthandler.enabled": "true"}
    )
    try:
        with pytest.raises(
            Exception, match=r"Python worker exited unexpectedly \(crashed\)"
        ) as info:
            sc.parallelize([0], 1).map(crash).collect()
        text = str(info.value)
        assert "Fatal Python error: Segmentation fault" in text, text
        assert "in crash" in text, text  # the Python stack names the task's function
        assert sc.parallelize(range(3), 1).sum() == 3
    finally:
        sc.stop()


@pytest.mark.timeout(300)  # PySpark's local-cluster takes 30 s to start
@pytest.mark.parametrize(
    ("where", "dynamic", "limit_mb"),
    [
        # Without dynamic allocation: the tasks 3 cores hold at 2 cpus each, rounded up.
        ("local-cluster[1,3,1024]", "false", 300),
        # local mode ignores dynamic allocation, as Spark does.
        ("local[4]", "true", 300),
        # With it, the default profile is sized as any profile: rounded down.
        # (Last: in PySpark a context's settings outlive it in its JVM.)
        ("local-cluster[1,3,1024]", "true", 600),
    ],
)
def test_pyspark_memory_over_task_cpus_and_under_dynamic_allocation(
    where: str, dynamic: str, limit_mb: int
) -> None:
    """PySpark 4.3 divides by the tasks an executor holds; how it rounds depends on
    dynamic allocation (observed: 3 cores, spark.task.cpus 2, 600m)."""
    conf = {
        "spark.executor.pyspark.memory": "600m",
        "spark.executor.memory": "512m",
        "spark.executor.cores": "3",
        "spark.task.cpus": "2",
        "spark.dynamicAllocation.enabled": dynamic,
        "spark.dynamicAllocation.shuffleTracking.enabled": "true",
    }
    sc = support.new_context(where, "compat-pyspark-memory-task-cpus", **conf)
    try:
        limits = set(sc.parallelize(range(4), 2).map(address_space_limit).collect())
        assert limits == {limit_mb << 20}
    finally:
        sc.stop()
