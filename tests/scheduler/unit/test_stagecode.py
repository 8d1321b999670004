"""Which stage specs a Python worker may share between tasks (scheduler/task/stagecode.py)."""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest

from scheduler.task.stagecode import StageCode, dumps_stage, has_private_state

COUNTS: list[int] = []
LIMIT = 10


def _shipped(obj: Any) -> Any:
    """`obj` as a worker sees it: this module's functions come by value, as __main__'s do."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.loads(cloudpickle.dumps(obj))
    finally:
        cloudpickle.unregister_pickle_by_value(module)


def _pure(x: int) -> int:
    return min(x, LIMIT) * 2


def _counting(x: int) -> int:
    COUNTS.append(x)
    return x


def _calls_counting(x: int) -> int:
    return _counting(x) + 1


class _Stateful:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self, x: int) -> int:
        self.n += 1
        return x


def _pipeline(f: Any) -> Any:
    def run(split: int, iterator: Iterator[Any]) -> Iterator[Any]:
        return map(f, iterator)

    return run


@pytest.mark.parametrize(
    ("function", "stateful"),
    [
        (_pure, False),
        (lambda x: x + 1, False),
        (_counting, True),
        (_calls_counting, True),
        (_Stateful(), True),
        (COUNTS.append, True),
        ({1: 2}.get, True),
        (len, False),
        (operator.itemgetter(0), False),
    ],
)
def test_a_users_function_with_state_is_found(function: Any, stateful: bool) -> None:
    assert has_private_state(_shipped(function)) is stateful
    assert has_private_state(_shipped((1, "x", _pipeline(function)))) is stateful


def test_a_worker_shares_a_stateless_spec_and_copies_a_stateful_one() -> None:
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        stateless = StageCode(dumps_stage(_pipeline(_pure)))
        stateful = StageCode(dumps_stage(_pipeline(_counting)))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    first = stateless.spec()  # not walked yet: a worker may run only this one task
    second = stateless.spec()
    assert first is not second
    assert stateless.spec() is second and stateless.spec() is second
    specs = [stateful.spec() for _ in range(4)]
    assert len({id(spec) for spec in specs}) == 4


def test_what_goes_by_reference_is_remembered_until_the_by_value_registry_changes() -> None:
    """dumps_stage remembers importable functions; registering their module undoes it."""
    spec = (_pure, operator.add, _Stateful)
    by_reference = dumps_stage(spec)
    assert dumps_stage(spec) == by_reference  # the remembered answers give the same bytes
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    try:
        by_value = dumps_stage(spec)
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert b"min" in by_value and b"min" not in by_reference  # _pure's code travels now
    assert dumps_stage(spec) == by_reference
    loaded = StageCode(by_value).spec()
    assert loaded[0](30) == 20 and loaded[1](2, 3) == 5


class _Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


def _celsius_from_kelvin(kelvin: float) -> _Celsius:
    return _Celsius(kelvin - 273.15)


def test_a_copyreg_reducer_registered_after_a_stage_was_pickled_is_used() -> None:
    """The pickler's flattened dispatch table is rebuilt when copyreg's table changes."""
    import copyreg

    before = dumps_stage((_Celsius(20.0),))
    assert b"_celsius_from_kelvin" not in before
    copyreg.pickle(_Celsius, lambda c: (_celsius_from_kelvin, (c.degrees + 273.15,)))
    try:
        after = dumps_stage((_Celsius(20.0),))
    finally:
        del copyreg.dispatch_table[_Celsius]
    assert b"_celsius_from_kelvin" in after
    assert StageCode(after).spec()[0].degrees == pytest.approx(20.0)
    assert dumps_stage((_Celsius(20.0),)) == before
