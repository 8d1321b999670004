"""PySpark compatibility: what PySpark refuses, and the error classes it names.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_context.py (SPARK-32160) and test_broadcast.py
(SPARK-39029); expected outcomes as PySpark 4.x gives them (local[2]).
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from scheduler import SparkContext


def start_a_context(_: Any) -> None:
    """A task body: PySpark refuses to start a driver inside a task."""
    SparkContext()


def test_a_task_cannot_create_a_spark_context(sc: Any) -> None:
    with pytest.raises(Exception, match="CONTEXT_ONLY_VALID_ON_DRIVER"):
        sc.range(2).foreach(start_a_context)
    assert sc.range(3).count() == 3  # the context is still fine


def test_refusing_a_spark_context_is_a_pyspark_runtime_error(sc: Any) -> None:
    from scheduler.errors import PySparkRuntimeError

    def refused(_: Any) -> list[tuple[str, Any, Any, bool]]:
        try:
            SparkContext()
        except PySparkRuntimeError as e:
            return [
                (
                    type(e).__name__,
                    e.getErrorClass(),
                    e.getMessageParameters(),
                    isinstance(e, RuntimeError),
                )
            ]
        return []

    got = sc.parallelize([0], 1).mapPartitions(refused).collect()
    assert got == [("PySparkRuntimeError", "CONTEXT_ONLY_VALID_ON_DRIVER", {}, True)]


def test_broadcasting_a_context_is_a_pickling_error(sc: Any) -> None:
    with pytest.raises(pickle.PicklingError, match=r"^Could not serialize broadcast"):
        sc.broadcast(sc)


def test_destroy_and_unpersist_of_a_broadcast_only_on_the_driver(sc: Any) -> None:
    bs = sc.broadcast([1])
    with pytest.raises(Exception, match="Broadcast can only be destroyed in driver"):
        sc.parallelize([1], 1).map(lambda x: bs.destroy()).collect()
    with pytest.raises(Exception, match="Broadcast can only be unpersisted in driver"):
        sc.parallelize([1], 1).map(lambda x: bs.unpersist()).collect()
    # Neither touched the broadcast: tasks still read it, and the driver may drop it.
    assert sc.parallelize([0], 1).map(lambda x: bs.value[0]).collect() == [1]
    bs.unpersist()
    bs.destroy()
