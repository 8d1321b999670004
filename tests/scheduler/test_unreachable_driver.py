"""Executors that cannot reach their driver fail the app fast, saying why (issue 9).

The driver listens on 127.0.0.1 but advertises 127.0.0.2 (spark.driver.bindAddress
apart from spark.driver.host), where nothing listens: every executor the real
cluster starts is refused. Before, each lived past the worker's startup grace, was
reported RUNNING, reset spark.deploy.maxExecutorRetries, and the app crash-looped
forever with "Initial job has not accepted any resources".
"""

from __future__ import annotations

import time

import pytest

from scheduler import JobCancelledError, SparkConf, SparkContext


def test_executors_that_cannot_reach_the_driver_fail_the_app_with_their_reason(
    spark_cluster: str,
) -> None:
    conf = (
        SparkConf()
        .setMaster(spark_cluster)
        .setAppName("unreachable-driver")
        .set("spark.driver.host", "127.0.0.2")
        .set("spark.driver.bindAddress", "127.0.0.1")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
    )
    started = time.monotonic()
    # The context waits up to 10 s for a first executor: on a loaded machine the
    # Master may remove the app just after, and the first job says why.
    with pytest.raises((RuntimeError, JobCancelledError)) as error, SparkContext(conf=conf) as sc:
        sc.parallelize([1]).count()
    took = time.monotonic() - started
    text = str(error.value)
    assert "Master removed our application:" in text, text
    assert "maxExecutorRetries" in text
    assert "cannot reach the driver at spark://CoarseGrainedScheduler@127.0.0.2:" in text
    # About 3 s on an idle 2-core machine (10 executors, each refused at once); the
    # bound leaves room for a loaded one. Before, it never failed at all.
    assert took < 60, f"the app took {took:.1f}s to fail"
    # The cluster is fine afterwards: a context that advertises a reachable address runs.
    good = SparkConf().setMaster(spark_cluster).setAppName("after").set("spark.ui.enabled", "false")
    with SparkContext(conf=good) as sc:
        assert sc.parallelize(range(10), 2).sum() == 45


def test_a_missing_executor_python_fails_the_app_naming_it(spark_cluster: str) -> None:
    conf = (
        SparkConf()
        .setMaster(spark_cluster)
        .setAppName("missing-python")
        .set("spark.pyspark.python", "/nonexistent/bin/python3")
        .set("spark.ui.enabled", "false")
    )
    started = time.monotonic()
    with pytest.raises((RuntimeError, JobCancelledError)) as error, SparkContext(conf=conf) as sc:
        sc.parallelize([1]).count()
    text = str(error.value)
    assert "Master removed our application:" in text, text
    assert "/nonexistent/bin/python3" in text
    assert time.monotonic() - started < 60
