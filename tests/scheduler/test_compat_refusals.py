"""PySpark compatibility: what PySpark refuses (and its error classes), stats() of arrays.

Ported (re-expressed) from the behaviours of apache/spark
python/pyspark/tests/test_context.py (SPARK-32160), test_broadcast.py
(SPARK-39029) and test_serializers.py's NumPyTests (skipped without numpy);
expected outcomes as PySpark 4.x gives them (local[2]).
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


def test_stats_of_numpy_arrays_are_element_wise(sc: Any) -> None:
    np = pytest.importorskip("numpy")
    rows = [np.array([1.0, 1.0]), np.array([2.0, 2.0]), np.array([3.0, 3.0])]
    s = sc.parallelize(rows, 2).stats()
    assert s.count() == 3
    assert s.mean().tolist() == [2.0, 2.0]
    assert s.min().tolist() == [1.0, 1.0]
    assert s.max().tolist() == [3.0, 3.0]
    assert s.sum().tolist() == [6.0, 6.0]
    assert s.sampleStdev().tolist() == [1.0, 1.0]
    assert s.sampleVariance().tolist() == [1.0, 1.0]
    population = s.asDict(sample=True)
    assert population["variance"].tolist() == pytest.approx([2.0 / 3, 2.0 / 3])
    assert population["stdev"].tolist() == pytest.approx([(2.0 / 3) ** 0.5] * 2)


def test_stats_of_numbers_stay_floats(sc: Any) -> None:
    s = sc.parallelize([1, 2, 3, 4], 2).stats()
    assert (s.count(), s.mean(), s.sum(), s.variance()) == (4, 2.5, 10.0, 1.25)
    assert all(isinstance(v, float) for v in (s.mean(), s.sum(), s.variance(), s.stdev()))
