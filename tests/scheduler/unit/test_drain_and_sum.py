"""Consumers that drain fused narrow steps themselves still fail on a user's StopIteration,
and reduce(operator.add) through sum() gives exactly what functools.reduce gives (issue 13).

Runs the partition functions in this process: no context, no workers.
"""

from __future__ import annotations

import functools
import math
import operator
import os
import sys
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from scheduler.rdd.actions import _SUM_IS_LEFT_FOLD, _count_partition, _reduce_partition
from scheduler.rdd.rdd import _FILTER, _FLAT_MAP, _MAP, _narrow, fuse_narrow
from scheduler.shuffle.aggregation import Aggregator, ExternalMerger
from scheduler.shuffle.drain import CheckedChain, drain_parts
from scheduler.shuffle.files import write_shuffle_output

_STOP = "Caught StopIteration thrown from user's code"


def _fused(*steps: tuple[int, Callable[[Any], Any]]) -> Callable[[int, Iterator[Any]], Any]:
    fused = functools.partial(_narrow, (steps[0],))
    for step in steps[1:]:
        joined = fuse_narrow(functools.partial(_narrow, (step,)), fused)
        assert joined is not None
        fused = joined
    return fused


def _stop_at(at: int) -> Callable[[int], Any]:
    def f(x: int) -> Any:
        if x == at:
            raise StopIteration
        return x

    return f


def _pairs(x: int) -> tuple[int, int]:
    return (x % 7, x)


def _merge(items: Any) -> dict[Any, Any]:
    merger = ExternalMerger(Aggregator(lambda v: v, operator.add, operator.add), 1e9)
    merger.mergeValues(items)
    return dict(merger.items())


def _write(tmp: Path) -> Callable[[Any], int]:
    def write(items: Any) -> int:
        path = str(tmp / "out.data")
        write_shuffle_output(items, hash, 3, path, 1e9)
        return os.path.getsize(path)

    return write


def test_a_narrow_output_keeps_its_parts_and_any_other_iterable_has_none() -> None:
    out = _fused((_MAP, lambda x: x + 1))(0, iter(range(3)))
    assert type(out) is CheckedChain
    items, finish = drain_parts(out)
    assert list(items) == [1, 2, 3]
    finish()  # the input really ended: no error
    plain = iter([1, 2])
    items, finish = drain_parts(plain)
    assert items is plain
    finish()


@pytest.mark.parametrize("at", [0, 4, 9])
@pytest.mark.parametrize("kind", [_MAP, _FILTER, _FLAT_MAP])
@pytest.mark.parametrize("consumer", ["reduce", "sum_reduce", "count", "merge", "write"])
# merge and write pull batches: they keep the chain (a builtin map goes on past a
# StopIteration when asked again); the test holds them to the same rule.
def test_a_draining_consumer_fails_on_a_stop_iteration_in_any_step(
    at: int, kind: int, consumer: str, tmp_path: Path
) -> None:
    stop = _stop_at(at)
    step = (kind, stop if kind != _FLAT_MAP else (lambda x: [stop(x)]))
    pairs = consumer in ("merge", "write")
    steps = [step, (_MAP, _pairs)] if pairs else [step]
    out = _fused(*steps)(0, iter(range(10)))
    run: dict[str, Callable[[Any], Any]] = {
        "reduce": lambda it: list(_reduce_partition(max, it)),
        "sum_reduce": lambda it: list(_reduce_partition(operator.add, it)),
        "count": _count_partition,
        "merge": _merge,
        "write": _write(tmp_path),
    }
    with pytest.raises(RuntimeError, match=_STOP):
        run[consumer](out)


def test_draining_consumers_give_what_the_chained_output_gives(tmp_path: Path) -> None:
    def source() -> Any:
        return _fused((_FILTER, lambda x: x % 3 != 0), (_MAP, lambda x: x * 2))(0, iter(range(50)))

    expected = list(source())
    assert list(_reduce_partition(operator.add, source())) == [sum(expected)]
    assert list(_reduce_partition(max, source())) == [max(expected)]
    assert _count_partition(source()) == [len(expected)]
    assert list(_reduce_partition(operator.add, _fused((_FILTER, bool))(0, iter([0])))) == []
    keyed = _fused((_MAP, _pairs))
    assert _merge(keyed(0, iter(range(50)))) == _merge(list(map(_pairs, range(50))))
    write = _write(tmp_path)
    assert write(keyed(0, iter(range(50)))) == write(list(map(_pairs, range(50))))


_BIG = sys.maxsize
_ADDS: list[list[Any]] = [
    [0.1, 0.2, 0.3, 1e16, 1.0, -1e16, 3.0],  # every step rounds
    [1e308, 1e308, -1e308],  # overflows to inf and stays there, as a left fold does
    [-0.0],
    [-0.0, -0.0],
    [1.5, 2, True, 2**60 + 1, 3],  # ints and bools into a float
    [2**53, 1, 1.0, 1],  # a float start's int items are rounded one at a time
    [1, 2, 3, True, False],
    [_BIG, _BIG, -_BIG, 1],  # past a C long and back
    [-_BIG, -_BIG, 5],
    [1, 2.5, 3],  # an int start meets a float
    [3, Fraction(1, 3), 2],
    [2, Decimal("1.5"), 1],
    [1.0, float("inf"), float("-inf"), 2.0],
    [float("nan"), 1.0],
]


@pytest.mark.parametrize("values", _ADDS, ids=range(len(_ADDS)))
def test_reduce_add_of_numbers_is_exactly_a_left_fold(values: list[Any]) -> None:
    expected = functools.reduce(operator.add, values)
    (got,) = list(_reduce_partition(operator.add, iter(values)))
    assert type(got) is type(expected)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == expected
        assert repr(got) == repr(expected)  # -0.0 stays -0.0


def test_reduce_add_keeps_its_errors_and_non_numbers() -> None:
    with pytest.raises(TypeError, match="unsupported operand"):
        list(_reduce_partition(operator.add, iter([1.0, "x"])))
    assert list(_reduce_partition(operator.add, iter(["a", "b"]))) == ["ab"]
    assert list(_reduce_partition(operator.add, iter([[1], [2]]))) == [[1, 2]]


@pytest.mark.skipif(not _SUM_IS_LEFT_FOLD, reason="sum() compensates float rounding from 3.12")
def test_sum_is_the_left_fold_on_this_python() -> None:
    values = [0.1] * 10 + [1e16, -1e16]
    assert sum(values[1:], values[0]) == functools.reduce(operator.add, values)


def test_text_decoded_a_piece_at_a_time_gives_the_lines_of_the_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pieces end after a \\n: no character, invalid byte or \\r\\n straddles two (W3's read)."""
    import random

    from scheduler.rdd import fileio

    monkeypatch.setattr(fileio, "_PIECE", 7)  # tiny pieces: every boundary case
    rng = random.Random(13)
    parts = [b"a", b"b", b" ", b"\n", b"\r", b"\r\n", "é".encode(), "€".encode()]
    parts += [b"\xe2\x82", b"\xff", b"\x80"]  # a cut-short sequence, invalid bytes
    for _ in range(3000):
        data = b"".join(rng.choice(parts) for _ in range(rng.randint(0, 40)))
        whole = list(fileio._split_lines(data.decode("utf-8", "replace")))
        assert list(fileio._decoded_lines(data)) == whole, data
