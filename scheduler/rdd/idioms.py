"""Exact rewrites of common pair-RDD idioms, as a query planner's rules.

Two rules, both decided on the driver when the RDD is built, both exact (the
rewritten job gives the same keys, values, types, order and errors as the
general path) and both falling back to the general path on anything they do
not recognise:

- `is_plain_add(f)`: `f` is `lambda a, b: a + b` (or a `def` with that body):
  the same `+` as `operator.add`, so a reduceByKey with it merges inline
  (`Aggregator.adds`) instead of calling `f` per pair.
- `count_keys_rule`: a map step `lambda x: (x, C)`, C an exact int constant,
  right before a reduceByKey that adds (`operator.add` or a plain-add lambda):
  the map-side combine counts the keys with the C counter of
  `collections.Counter` and multiplies by C, instead of building a `(x, C)`
  tuple per item and merging it in a Python loop (a word count's whole map
  side; `ExternalMerger.countKeys`).

A function is recognised by its code object against a reference compiled by this
same interpreter: the same bytecode, the same arity, no closure, no defaults, no
globals, and for the map the one constant it loads an exact `int` (not a bool,
float or int subclass). The bytecode alone fixes which constant is loaded and
what is built, so nothing else the function could do is skipped: it cannot read
a global, a free variable or an accumulator, and building a 2-tuple raises
nothing but MemoryError. Runs on the driver (recognition) and in Python workers
(`count_keys_locally`).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from scheduler.shuffle.aggregation import Aggregator, ExternalMerger

__all__ = ["constant_pair_value", "count_keys_locally", "count_keys_rule", "is_plain_add"]

#: Code flags that do not change what a function computes (a lambda nested in a function).
_CO_NESTED = 0x10


def _reference_pair(x: Any) -> Any:
    return (x, 1)


def _reference_add(a: Any, b: Any) -> Any:
    return a + b


_PAIR_CODE = _reference_pair.__code__
_ADD_CODE = _reference_add.__code__
#: Where the reference's constant 1 sits in its co_consts (LOAD_CONST's argument).
_PAIR_CONST = next(i for i, c in enumerate(_PAIR_CODE.co_consts) if type(c) is int and c == 1)


def _same_shape(f: Any, ref: types.CodeType) -> types.CodeType | None:
    """f's code object when f is a plain function with ref's bytecode and signature."""
    if type(f) is not types.FunctionType:
        return None
    if f.__closure__ is not None or f.__defaults__ is not None or f.__kwdefaults__:
        return None
    code = f.__code__
    if (
        code.co_code != ref.co_code
        or code.co_argcount != ref.co_argcount
        or code.co_posonlyargcount != 0
        or code.co_kwonlyargcount != 0
        or code.co_nlocals != ref.co_nlocals
        or (code.co_flags & ~_CO_NESTED) != (ref.co_flags & ~_CO_NESTED)
        or code.co_names
        or code.co_freevars
        or code.co_cellvars
        or code.co_exceptiontable != ref.co_exceptiontable
    ):
        return None
    return code


def constant_pair_value(f: Any) -> int | None:
    """C when `f` is exactly `lambda x: (x, C)` with C an exact int; else None."""
    code = _same_shape(f, _PAIR_CODE)
    if code is None or len(code.co_consts) <= _PAIR_CONST:
        return None
    value = code.co_consts[_PAIR_CONST]
    return value if type(value) is int else None


def is_plain_add(f: Any) -> bool:
    """True when `f` is exactly `lambda a, b: a + b`: the same `+` as operator.add."""
    return _same_shape(f, _ADD_CODE) is not None


def count_keys_locally(
    steps: tuple[tuple[int, Callable[[Any], Any]], ...],
    value: int,
    agg: Aggregator,
    memory_mb: float,
    split: int,
    iterator: Iterator[Any],
) -> Iterable[Any]:
    """The map-side combine of `steps` + map(x -> (x, value)) + reduceByKey(add).

    Same pairs as merging `(x, value)` with `+`: each key once, in first-seen
    order, holding the first-seen key object, with `n * value` for n occurrences
    (an int, as `value + value + ...` is).
    """
    from scheduler.rdd.rdd import _narrow

    source = _narrow(steps, split, iterator) if steps else iterator
    merger = ExternalMerger(agg, memory_mb)
    merger.countKeys(source, value)
    return merger.items()


def count_keys_rule(
    func: Callable[[int, Iterator[Any]], Iterable[Any]],
    combine: Callable[[Iterator[Any]], Iterable[Any]],
    agg: Aggregator,
    memory_mb: float,
) -> Callable[[int, Iterator[Any]], Iterable[Any]] | None:
    """The counting function for a fused map-side combine `func`, or None to keep it.

    `func` is what MapPartitionsRDD fused: `combine` (the map-side combine of a
    reduceByKey that adds) after narrow steps whose last is a recognised
    `lambda x: (x, C)` map.
    """
    from scheduler.rdd.kinds import _pipeline
    from scheduler.rdd.rdd import _MAP, _on_iterator, narrow_steps

    if not agg.adds or not isinstance(func, functools.partial) or func.func is not _pipeline:
        return None
    outer, prev_func = func.args
    if not (
        isinstance(outer, functools.partial)
        and outer.func is _on_iterator
        and len(outer.args) == 1
        and outer.args[0] is combine
    ):
        return None
    steps = narrow_steps(prev_func)
    if not steps or steps[-1][0] != _MAP:
        return None
    value = constant_pair_value(steps[-1][1])
    if value is None:
        return None
    return functools.partial(count_keys_locally, steps[:-1], value, agg, memory_mb)
