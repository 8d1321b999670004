"""PySpark compatibility: public names user programs import from outside ``pyspark.__all__``.

``pyspark.keyword_only`` (methods that take keywords only, recording them in
``self._input_kwargs``), ``pyspark.accumulators``' ``INT/FLOAT/COMPLEX_ACCUMULATOR_PARAM``
(passed to ``sc.accumulator``), ``pyspark.serializers.PickleSerializer`` (passed
to ``SparkContext(serializer=...)``) and ``CloudPickleSerializer`` (what ships closures;
programs check with it that an object will travel), and ``pyspark.util.VersionUtils``.
sparkctl exports each from ``scheduler``.
"""

from __future__ import annotations

import operator
import pickle
import threading
from typing import Any

import _compat_support as support
import pytest

from scheduler import (
    COMPLEX_ACCUMULATOR_PARAM,
    FLOAT_ACCUMULATOR_PARAM,
    INT_ACCUMULATOR_PARAM,
    CloudPickleSerializer,
    PickleSerializer,
    VersionUtils,
    keyword_only,
)


class _Params:
    @keyword_only
    def set(self, a: Any = None, b: Any = None) -> Any:
        return self._input_kwargs, a, b  # type: ignore[attr-defined]


def test_keyword_only_records_the_given_keywords_and_refuses_positions() -> None:
    p, q = _Params(), _Params()
    assert p.set(b=2) == ({"b": 2}, None, 2)
    assert q.set() == ({}, None, None)
    assert p._input_kwargs == {"b": 2}  # type: ignore[attr-defined]  # each instance its own
    with pytest.raises(TypeError, match="forces keyword arguments"):
        p.set(1, b=2)
    assert _Params.set.__name__ == "set"


def test_the_accumulator_params_add_ints_floats_and_complex_numbers(master: str) -> None:
    sc = support.new_context(master, "compat-accumulator-params")
    try:
        ints = sc.accumulator(0, INT_ACCUMULATOR_PARAM)
        floats = sc.accumulator(0.5, FLOAT_ACCUMULATOR_PARAM)
        complexes = sc.accumulator(0j, COMPLEX_ACCUMULATOR_PARAM)

        def add(x: int) -> None:
            ints.add(x)
            floats.add(x / 2)
            complexes.add(complex(0, x))

        sc.parallelize(range(10), 5).foreach(add)
        assert (ints.value, floats.value, complexes.value) == (45, 23.0, 45j)
    finally:
        sc.stop()
    assert (INT_ACCUMULATOR_PARAM.zero(7), FLOAT_ACCUMULATOR_PARAM.zero(7.0)) == (0, 0.0)


def test_a_context_takes_the_pickle_serializer(master: str) -> None:
    value = {"k": [1, 2.5, "x", (3, None)]}
    assert PickleSerializer().loads(PickleSerializer().dumps(value)) == value
    from scheduler import SparkConf, SparkContext

    conf = support.compat_conf("compat-pickle-serializer").setMaster(master)
    sc = SparkContext(conf=conf, serializer=PickleSerializer())
    try:
        assert sc.parallelize(range(6), 2).map(lambda x: (x % 2, [x])).reduceByKey(
            lambda a, b: a + b
        ).collectAsMap() == {0: [0, 2, 4], 1: [1, 3, 5]}
    finally:
        sc.stop()
    assert SparkConf is not None


class _Refuses:
    """An object whose pickling fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __reduce__(self) -> Any:
        raise self.error


def test_the_cloudpickle_serializer_ships_what_plain_pickle_cannot() -> None:
    ser = CloudPickleSerializer()
    assert ser == CloudPickleSerializer() and repr(ser) == "CloudPickleSerializer()"
    offset = 10

    def local(x: int) -> int:
        return x + offset

    assert ser.loads(ser.dumps(local))(1) == 11
    assert ser.loads(ser.dumps(local)).__module__ == local.__module__
    assert ser.loads(ser.dumps(lambda x: x * 3))(2) == 6
    assert ser.loads(ser.dumps(operator.itemgetter(0, 3)))("abcd") == ("a", "d")
    assert ser.loads(ser.dumps(operator.attrgetter("real", "imag")))(2 + 5j) == (2.0, 5.0)

    class Local:
        def __init__(self, v: int) -> None:
            self.v = v

    assert ser.loads(ser.dumps(Local(4))).v == 4
    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        PickleSerializer().dumps(local)  # plain pickle: "Can't pickle local object"


def test_the_cloudpickle_serializer_names_what_could_not_be_serialized() -> None:
    ser = CloudPickleSerializer()
    # Any failure is a PicklingError naming the cause; a PicklingError passes as raised.
    with pytest.raises(pickle.PicklingError) as refused:
        ser.dumps(_Refuses(RuntimeError("not picklable")))
    assert str(refused.value) == "Could not serialize object: RuntimeError: not picklable"
    with pytest.raises(pickle.PicklingError) as lock:
        ser.dumps({"lock": threading.Lock()})
    assert str(lock.value).startswith("Could not serialize object: TypeError: ")
    assert "_thread.lock" in str(lock.value)
    with pytest.raises(pickle.PicklingError) as own:
        ser.dumps(_Refuses(pickle.PicklingError("as raised")))
    assert str(own.value) == "as raised"
    with pytest.raises(pickle.UnpicklingError):
        ser.loads(b"not a pickle")


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.4.0", (2, 4)),
        ("2.3.0-SNAPSHOT", (2, 3)),
        ("10.12.3", (10, 12)),
        ("3.5", (3, 5)),
        ("3.5.", (3, 5)),
        ("03.07.1", (3, 7)),
        ("4.0.0 ", (4, 0)),
    ],
)
def test_version_utils_reads_major_and_minor(version: str, expected: tuple[int, int]) -> None:
    assert VersionUtils.majorMinorVersion(version) == expected


@pytest.mark.parametrize("version", ["abc", "2", "", "2.x", "3.5-SNAPSHOT", " 3.5.0", "3..5"])
def test_version_utils_refuses_what_is_no_version(version: str) -> None:
    with pytest.raises(ValueError) as refused:
        VersionUtils.majorMinorVersion(version)
    assert str(refused.value) == (
        f"Spark tried to parse {version!r} as a Spark version string, but it could not "
        "find the major and minor version numbers."
    )


def test_the_package_version_is_the_contexts(sc: Any) -> None:
    import scheduler

    assert scheduler.__version__ == sc.version
    assert VersionUtils.majorMinorVersion(scheduler.__version__)[0] >= 3
