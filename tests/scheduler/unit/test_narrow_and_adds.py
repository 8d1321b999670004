"""Fused map/filter/flatMap steps and reduceByKey(add)'s inline merge give exactly
what the unfused steps and the generic merge give (issue 13).

Runs the partition functions and the merger in this process: no context, no workers.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import pytest

from scheduler.rdd.rdd import _FILTER, _FLAT_MAP, _MAP, _narrow, fuse_narrow, narrow_steps
from scheduler.shuffle.aggregation import Aggregator, ExternalMerger


def _step(kind: int, f: Callable[[Any], Any]) -> Callable[[int, Iterator[Any]], Any]:
    return functools.partial(_narrow, ((kind, f),))


def _chained(*steps: Callable[[int, Iterator[Any]], Any]) -> Callable[[int, Iterator[Any]], Any]:
    fused = steps[0]
    for step in steps[1:]:
        joined = fuse_narrow(step, fused)
        assert joined is not None
        fused = joined
    return fused


def _stop(x: Any) -> Any:
    raise StopIteration


def test_fused_steps_are_one_function_with_every_step_in_order() -> None:
    double, odd, twice = (lambda x: 2 * x), (lambda x: x % 3 == 1), (lambda x: [x, -x])
    fused = _chained(_step(_MAP, double), _step(_FILTER, odd), _step(_FLAT_MAP, twice))
    assert narrow_steps(fused) == ((_MAP, double), (_FILTER, odd), (_FLAT_MAP, twice))
    expected = [y for x in range(20) if (2 * x) % 3 == 1 for y in (2 * x, -2 * x)]
    assert list(fused(0, iter(range(20)))) == expected
    # A function that is no narrow step is not fused.
    assert fuse_narrow(lambda split, it: it, fused) is None
    assert fuse_narrow(fused, lambda split, it: it) is None


@pytest.mark.parametrize("position", range(3))
@pytest.mark.parametrize("at", [0, 5, 9])
def test_a_stop_iteration_in_any_fused_step_fails_instead_of_shortening(
    position: int, at: int
) -> None:
    def stop_at(x: int) -> Any:
        if x == at:
            raise StopIteration
        return x

    kinds = [_MAP, _FILTER, _FLAT_MAP]
    steps = [
        _step(_MAP, lambda x: x),
        _step(_FILTER, lambda x: True),
        _step(_FLAT_MAP, lambda x: [x]),
    ]
    steps[position] = _step(
        kinds[position], stop_at if kinds[position] != _FLAT_MAP else (lambda x: [stop_at(x)])
    )
    fused = _chained(*steps)
    with pytest.raises(RuntimeError, match="Caught StopIteration thrown from user's code"):
        list(fused(0, iter(range(10))))


def test_an_iterator_that_ends_normally_inside_flat_map_is_no_failure() -> None:
    fused = _chained(_step(_FLAT_MAP, lambda x: iter(range(x))), _step(_MAP, _stop_never))
    assert list(fused(0, iter([0, 2, 3]))) == [0, 1, 0, 1, 2]


def _stop_never(x: Any) -> Any:
    return x


def _merged(
    pairs: list[Any], adds: bool, memory_mb: float = 1 << 20
) -> list[tuple[Any, Any, type]]:
    agg = Aggregator(lambda v: v, operator.add, operator.add)
    agg.adds = adds
    merger = ExternalMerger(agg, memory_mb)
    half = len(pairs) // 2
    merger.mergeValues(pairs[:half])
    merger.mergeCombiners(pairs[half:])  # combiners arrive as (key, combiner) pairs
    return sorted(((k, v, type(v)) for k, v in merger.items()), key=repr)


@pytest.mark.parametrize(
    "values",
    [
        [1] * 50,
        [True, 1, 2, False, 3] * 10,
        [1.5, 1, 2, 0.1, 3, 0.2] * 10,
        [Fraction(1, 3), 1, Fraction(2, 7)] * 10,
        ["a", "bc", "d"] * 10,
        [[1], [2, 3], []] * 10,
        [(1,), (2,)] * 10,
    ],
)
def test_reduce_by_key_add_inline_is_exactly_operator_add(values: list[Any]) -> None:
    pairs = [(i % 7, v) for i, v in enumerate(values)]
    assert _merged(pairs, adds=True) == _merged(pairs, adds=False)


def test_reduce_by_key_add_inline_after_spilling() -> None:
    pairs = [(i % 300, i if i % 2 else float(i)) for i in range(20_000)]
    assert _merged(pairs, adds=True, memory_mb=0) == _merged(pairs, adds=False, memory_mb=0)
    assert _merged(pairs, adds=True, memory_mb=0) == _merged(pairs, adds=False)


def test_reduce_by_key_add_inline_fails_as_operator_add() -> None:
    pairs = [(1, 1), (1, "x")]
    with pytest.raises(TypeError, match="unsupported operand"):
        _merged(pairs * 2, adds=True)
    with pytest.raises(ValueError, match="too many values to unpack"):
        _merged([(1, 2, 3)] * 2, adds=True)


class _AddRaisesKeyError(int):
    """An int whose + raises KeyError: the merge must not take it for a new key."""

    def __add__(self, other: Any) -> Any:
        raise KeyError("from __add__")


@pytest.mark.parametrize("adds", [True, False])
def test_keys_mostly_known_merge_exactly_and_errors_pass_through(adds: bool) -> None:
    # Thousands of pairs over few keys (the try lookup), then new keys late in the input.
    pairs = [(i % 5, i) for i in range(10_000)] + [(f"late{i}", float(i)) for i in range(50)]
    pairs += [(i % 5, 0.5) for i in range(3_000)]
    expected: dict[Any, Any] = {}
    for k, v in pairs:
        expected[k] = expected[k] + v if k in expected else v
    merged = _merged(pairs, adds=adds)
    assert merged == sorted(((k, v, type(v)) for k, v in expected.items()), key=repr)
    # A new key's value whose + raises KeyError, merged while keys are mostly known.
    bad = [(i % 5, i) for i in range(5_000)] + [("k", _AddRaisesKeyError(3)), ("k", 1)]
    with pytest.raises(KeyError, match="from __add__"):
        _merged(bad * 2, adds=adds)
