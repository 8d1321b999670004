"""PySpark compatibility: bad input and failing jobs raise, in the driver, what PySpark raises.

Where PySpark raises a plain Python exception, we raise the same class; where
PySpark's error comes out of the JVM (Py4JJavaError), we only require an
exception whose text says what went wrong. The ``sparkctl_only`` tests pin
down where our messages are clearer than PySpark's (they are skipped in
oracle mode). Expected behaviour was checked on PySpark 4.x (local[2]) first.
"""

from __future__ import annotations

import pickle
import threading
from operator import add
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

sparkctl_only = pytest.mark.skipif(
    support.IMPL == "pyspark", reason="checks sparkctl's own, clearer message"
)


def test_empty_rdd_reductions_raise_value_error(sc: Any) -> None:
    for action in (
        lambda: sc.parallelize([]).reduce(add),
        lambda: sc.parallelize([], 3).min(),
        lambda: sc.parallelize([]).max(),
    ):
        with pytest.raises(ValueError, match=r"Can not reduce\(\) empty RDD"):
            action()
    assert sc.parallelize([]).mean() == 0.0
    assert sc.parallelize([], 3).zipWithIndex().collect() == []
    assert sc.parallelize([1, 2]).take(-1) == []
    assert sc.parallelize([1, 2]).top(0) == []


def test_bad_arguments_raise_value_error_in_the_driver(sc: Any) -> None:
    with pytest.raises(ValueError):
        sc.range(0, 10, 0)
    with pytest.raises(ValueError):
        sc.parallelize(range(10)).sample(False, -0.1, 1)


def test_missing_input_path_names_it(sc: Any, tmp_path: Path) -> None:
    missing = tmp_path / "does-not-exist.txt"
    with pytest.raises(Exception, match="Input path does not exist"):
        sc.textFile(str(missing)).collect()


class _RefusesPickling:
    """An object whose own pickling raises a PicklingError of its own."""

    def __reduce__(self) -> Any:
        raise pickle.PicklingError("refused by the object")


def test_an_unpicklable_closure_is_refused(sc: Any) -> None:
    lock = threading.Lock()
    # One exception type, PicklingError, naming the cause, whatever the action.
    cannot = r"^Could not serialize object: TypeError: cannot pickle '_thread.lock' object$"
    with pytest.raises(pickle.PicklingError, match=cannot):
        sc.parallelize([1]).map(lambda x: lock).collect()
    with pytest.raises(pickle.PicklingError, match=cannot):
        sc.parallelize([(1, 1), (1, 2)]).reduceByKey(lambda a, b: lock).collect()
    with pytest.raises(pickle.PicklingError, match=cannot):
        sc.parallelize([1]).foreach(lambda x: lock)
    own = _RefusesPickling()
    with pytest.raises(pickle.PicklingError, match=r"^refused by the object$"):
        sc.parallelize([1]).map(lambda x: own).collect()
    assert sc.parallelize([1, 2]).count() == 2


def test_an_rdd_in_a_closure_is_a_pickling_error(sc: Any) -> None:
    other = sc.parallelize([1, 2])
    refused = (
        r"^Could not serialize (object|broadcast): "
        r"PySparkRuntimeError: \[RDD_TRANSFORM_ONLY_VALID_ON_DRIVER\]"
    )
    with pytest.raises(pickle.PicklingError, match=refused):
        sc.parallelize([1]).map(lambda x: other.count()).collect()
    with pytest.raises(pickle.PicklingError, match=refused):  # refused even if never called
        sc.parallelize([0]).map(lambda x: x or other).collect()
    with pytest.raises(pickle.PicklingError, match=refused):
        sc.broadcast(other)
    # The job's own lineage still travels: unions, zips, cartesians, caches, checkpoints.
    base = sc.parallelize(range(4), 2)
    assert sorted(base.union(base.map(lambda x: x * 10)).collect()) == [0, 0, 1, 2, 3, 10, 20, 30]
    assert base.zip(base.map(str)).collect() == [(0, "0"), (1, "1"), (2, "2"), (3, "3")]
    assert base.cartesian(other).count() == 8
    cached = base.map(lambda x: (x % 2, x)).cache()
    assert sorted(cached.join(cached.mapValues(str)).collect())[:2] == [
        (0, (0, "0")),
        (0, (0, "2")),
    ]
    local = base.map(lambda x: x + 1)
    local.localCheckpoint()
    assert local.collect() == [1, 2, 3, 4] and local.map(lambda x: -x).sum() == -10
    assert other.count() == 2


def test_the_context_in_a_closure_is_a_pickling_error(sc: Any) -> None:
    with pytest.raises(
        pickle.PicklingError,
        match=r"^Could not serialize object: PySparkRuntimeError: \[CONTEXT_ONLY_VALID_ON_DRIVER\]",
    ):
        sc.parallelize([1]).map(lambda x: sc.version).count()
    assert sc.parallelize([1, 2]).count() == 2


def test_an_unpicklable_task_result_fails_the_job(sc: Any) -> None:
    with pytest.raises(Exception, match="pickle"):
        sc.parallelize([1], 1).map(lambda x: threading.Lock()).collect()


def test_records_of_the_wrong_shape_fail_the_job_with_the_python_error(sc: Any) -> None:
    with pytest.raises(Exception, match="TypeError"):
        sc.parallelize(["a", "b"]).sum()
    with pytest.raises(Exception, match=r"(TypeError|ValueError)"):
        sc.parallelize([1, 2, 3]).reduceByKey(add).collect()


@sparkctl_only
def test_parallelize_names_a_bad_slice_count(sc: Any) -> None:
    with pytest.raises(ValueError, match="numSlices"):
        sc.parallelize([1, 2], 0)


@sparkctl_only
def test_a_destroyed_broadcast_says_so_on_the_driver(sc: Any) -> None:
    bc = sc.broadcast([1, 2, 3])
    bc.destroy()
    with pytest.raises(Exception, match="destroyed"):
        _ = bc.value
