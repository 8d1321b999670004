"""The word-count rule (`scheduler/rdd/idioms.py`): what it recognises, and that counting
keys gives exactly what merging `(key, C)` pairs with `+` gives (issue 13).

Runs the recognisers, the merger and the partition functions in this process: no
context, no workers.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.rdd.idioms import (
    constant_pair_value,
    count_keys_locally,
    count_keys_rule,
    is_plain_add,
)
from scheduler.rdd.kinds import _pipeline
from scheduler.rdd.pairs import _combine_locally, _identity
from scheduler.rdd.rdd import _FILTER, _FLAT_MAP, _MAP, _narrow, _on_iterator
from scheduler.shuffle.aggregation import Aggregator, ExternalMerger

ONE = 1


def _pair_def(word: Any) -> Any:
    """A docstring is a constant the code does not load."""
    return (word, 1)


def _nested_pair() -> Any:
    return lambda w: (w, 7)


def test_recognises_exactly_a_pair_with_an_int_constant() -> None:
    assert constant_pair_value(lambda w: (w, 1)) == 1
    assert constant_pair_value(_pair_def) == 1
    assert constant_pair_value(_nested_pair()) == 7
    assert constant_pair_value(lambda w: (w, 0)) == 0
    assert constant_pair_value(lambda w: (w, -3)) == -3
    big = constant_pair_value(lambda w: (w, 1208925819614629174706176))
    assert big == 2**80 and type(big) is int


def _with_default(w: Any, n: int = 1) -> Any:
    return (w, 1)


@pytest.mark.parametrize(
    "f",
    [
        lambda w: (w, True),  # bool: True + True is 2, a lone True stays True
        lambda w: (w, 1.0),
        lambda w: (w, "1"),
        lambda w: (w, None),
        lambda w: (1, w),
        lambda w: (w, w),
        lambda w: [w, 1],
        lambda w: (w, 1, 1),
        lambda w: (w, ONE),  # a global: may change between tasks
        lambda w: (w.lower(), 1),
        lambda *w: (w, 1),
        lambda w, *rest: (w, 1),
        lambda *, w: (w, 1),
        _with_default,
        operator.itemgetter(0),
        functools.partial(lambda w, n: (w, n), n=1),
        len,
    ],
)
def test_anything_else_is_not_recognised(f: Any) -> None:
    assert constant_pair_value(f) is None


def test_a_closure_or_default_is_not_recognised() -> None:
    n = 1
    closure = lambda w: (w, n)  # noqa: E731
    assert constant_pair_value(closure) is None
    defaults = lambda w=0: (w, 1)  # noqa: E731
    assert constant_pair_value(defaults) is None


def test_plain_add_is_exactly_a_plus_b() -> None:
    def add(a: Any, b: Any) -> Any:
        return a + b

    assert is_plain_add(lambda a, b: a + b)
    assert is_plain_add(add)
    # b + a calls b's __add__ first (strings and lists do not commute): not the same.
    for f in (
        lambda a, b: b + a,
        lambda a, b: a - b,
        lambda a, b: a + b + 0,
        lambda a, b, c=0: a + b,
        lambda a: a + a,
        operator.add,
        operator.iadd,
    ):
        assert not is_plain_add(f)


def _merged(keys: list[Any], value: int, memory_mb: float = 1 << 20) -> list[Any]:
    agg = Aggregator(_identity, operator.add, operator.add)
    agg.adds = True
    merger = ExternalMerger(agg, memory_mb)
    merger.mergeValues((k, value) for k in keys)
    return [(k, v, type(k), type(v)) for k, v in merger.items()]


def _counted(keys: list[Any], value: int, memory_mb: float = 1 << 20) -> list[Any]:
    agg = Aggregator(_identity, operator.add, operator.add)
    agg.adds = True
    merger = ExternalMerger(agg, memory_mb)
    merger.countKeys(iter(keys), value)
    return [(k, v, type(k), type(v)) for k, v in merger.items()]


KEYS = [
    ["the", "a", "the", "of", "a", "the"] * 700,
    [True, 1, 1.0, 2, False, 0, 0.0, 2.0] * 300,  # equal keys of other types: the first stays
    [float("nan")] * 5 + [(1, 2), (1, 2), frozenset({1})] * 400,
    [i % 1500 for i in range(10_000)],  # more than one batch, mostly known keys
    [],
]


@pytest.mark.parametrize("keys", KEYS)
@pytest.mark.parametrize("value", [1, 0, -3, 2**70])
def test_counting_keys_is_merging_pairs_in_order_and_type(keys: list[Any], value: int) -> None:
    assert _counted(keys, value) == _merged(keys, value)


@pytest.mark.parametrize("value", [1, 5])
def test_counting_keys_after_spilling(value: int) -> None:
    keys = [i % 3000 for i in range(40_000)]
    spilled = sorted(_counted(keys, value, memory_mb=0))
    assert spilled == sorted(_merged(keys, value, memory_mb=0))
    assert spilled == sorted(_merged(keys, value))


def test_an_unhashable_key_fails_as_the_merge_does() -> None:
    keys = ["a", "b", ["unhashable"], "c"]
    with pytest.raises(TypeError) as merged:
        _merged(keys, 1)
    with pytest.raises(TypeError) as counted:
        _counted(keys, 1)
    assert str(counted.value) == str(merged.value)


class _EqualsRaise:
    def __hash__(self) -> int:
        return 1

    def __eq__(self, other: object) -> bool:
        raise ValueError("eq called")


def test_a_key_whose_comparison_raises_fails_as_the_merge_does() -> None:
    keys = [_EqualsRaise(), _EqualsRaise()]
    with pytest.raises(ValueError, match="eq called"):
        _merged(keys, 1)
    with pytest.raises(ValueError, match="eq called"):
        _counted(keys, 1)


def _split(line: str) -> list[str]:
    return line.split()


LINES = ["to be or not", "to be", "", "that is the question to be"] * 50


def _steps(pair: Any) -> tuple[tuple[int, Any], ...]:
    return ((_FILTER, lambda line: line != "x"), (_FLAT_MAP, _split), (_MAP, pair))


def _fused(pair: Any, agg: Aggregator) -> tuple[Any, Any]:
    """What MapPartitionsRDD fuses for reduceByKey's map side after the steps."""
    combine = functools.partial(_combine_locally, agg, 1 << 20)
    return functools.partial(
        _pipeline,
        functools.partial(_on_iterator, combine),
        functools.partial(_narrow, _steps(pair)),
    ), combine


def _adds() -> Aggregator:
    agg = Aggregator(_identity, operator.add, operator.add)
    agg.adds = True
    return agg


def test_the_rule_rewrites_a_word_count_and_gives_the_same_pairs() -> None:
    agg = _adds()
    fused, combine = _fused(lambda w: (w, 1), agg)
    counted = count_keys_rule(fused, combine, agg, 1 << 20)
    assert isinstance(counted, functools.partial) and counted.func is count_keys_locally
    assert [kind for kind, _ in counted.args[0]] == [_FILTER, _FLAT_MAP]  # the map is gone
    assert counted.args[1] == 1
    general = list(fused(3, iter(LINES)))
    assert list(counted(3, iter(LINES))) == general
    assert dict(general)["be"] == 150


def test_the_rule_keeps_everything_else() -> None:
    agg = _adds()
    fused, combine = _fused(lambda w: (w, 1.0), agg)
    assert count_keys_rule(fused, combine, agg, 1 << 20) is None
    not_adding = Aggregator(_identity, max, max)
    fused, combine = _fused(lambda w: (w, 1), not_adding)
    assert count_keys_rule(fused, combine, not_adding, 1 << 20) is None
    # Another combine function than the one fused, or no narrow steps before it.
    fused, _ = _fused(lambda w: (w, 1), agg)
    other = functools.partial(_combine_locally, agg, 1 << 20)
    assert count_keys_rule(fused, other, agg, 1 << 20) is None
    combine = functools.partial(_combine_locally, agg, 1 << 20)
    assert count_keys_rule(functools.partial(_on_iterator, combine), combine, agg, 1) is None


def _stop_at_that(line: str) -> list[str]:
    if line.startswith("that"):
        raise StopIteration
    return line.split()


def test_a_stop_iteration_before_the_counted_map_still_fails_the_task() -> None:
    agg = _adds()
    steps = ((_FLAT_MAP, _stop_at_that), (_MAP, lambda w: (w, 1)))
    with pytest.raises(RuntimeError, match="Caught StopIteration thrown from user's code"):
        list(count_keys_locally(steps[:-1], 1, agg, 1 << 20, 0, iter(LINES)))


def test_no_steps_before_the_map_counts_the_input() -> None:
    words: Iterator[Any] = iter(["x", "y", "x"])
    assert list(count_keys_locally((), 2, _adds(), 1 << 20, 0, words)) == [("x", 4), ("y", 2)]


@pytest.mark.parametrize("keys", KEYS)
def test_count_by_value_partition_counts_as_the_python_loop(keys: list[Any]) -> None:
    from collections import defaultdict

    from scheduler.rdd.actions import _count_values

    expected: dict[Any, int] = defaultdict(int)
    for obj in keys:
        expected[obj] += 1
    (counted,) = list(_count_values(iter(keys)))
    assert type(counted) is defaultdict and counted.default_factory is int
    as_rows = [(k, v, type(k)) for k, v in counted.items()]
    assert as_rows == [(k, v, type(k)) for k, v in expected.items()]


def test_count_by_value_after_a_stop_iteration_still_fails() -> None:
    from scheduler.rdd.actions import _count_values

    chain = _narrow(((_FLAT_MAP, _stop_at_that),), 0, iter(LINES))
    with pytest.raises(RuntimeError, match="Caught StopIteration thrown from user's code"):
        list(_count_values(chain))
