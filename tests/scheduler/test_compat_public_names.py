"""PySpark compatibility: public names user programs import from outside ``pyspark.__all__``.

``pyspark.keyword_only`` (methods that take keywords only, recording them in
``self._input_kwargs``), ``pyspark.accumulators``' ``INT/FLOAT/COMPLEX_ACCUMULATOR_PARAM``
(passed to ``sc.accumulator``) and ``pyspark.serializers.PickleSerializer`` (passed
to ``SparkContext(serializer=...)``). sparkctl exports each from ``scheduler``.
"""

from __future__ import annotations

from typing import Any

import _compat_support as support
import pytest

from scheduler import (
    COMPLEX_ACCUMULATOR_PARAM,
    FLOAT_ACCUMULATOR_PARAM,
    INT_ACCUMULATOR_PARAM,
    PickleSerializer,
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
