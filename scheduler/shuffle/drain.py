"""Iterators that end with a check, and how a consumer that drains them skips a layer.

Fused narrow steps (map, filter, flatMap; `rdd/rdd.py`) must fail a task whose
user function raised StopIteration, which would otherwise end the builtin
`map` or `filter` silently. Their output is `chain(items, ends)`, where `ends`
yields nothing and raises if the input did not really end. A consumer that
drains its input to the end in one pass anyway (a reduce, a count: one
builtin call over it) takes `items` itself and runs `ends` after: every item
then passes one C iterator layer fewer (7% of a cached map+reduce pass).

One pass only: a builtin `map` whose function raised StopIteration ends, but
asked again it goes on with the next item, so a consumer that pulls batches
(`islice` after `islice`) would read past the failure; those keep the chain,
which never returns to an ended part. Runs in Python workers; no I/O.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["CheckedChain", "drain_parts"]


class CheckedChain(itertools.chain):  # type: ignore[type-arg]
    """`chain(items, ends)`, remembering both parts: `ends` must yield nothing."""

    items: Iterator[Any]
    ends: Iterator[Any]

    def __new__(cls, items: Iterator[Any], ends: Iterator[Any]) -> CheckedChain:
        chained = super().__new__(cls, items, ends)
        chained.items = items
        chained.ends = ends
        return chained

    def finish(self) -> None:
        """Run the end check (once `items` is drained): raises what `ends` raises."""
        for _ in self.ends:
            raise AssertionError("a CheckedChain's ends yielded an item")


def _nothing() -> None:
    return None


def drain_parts(iterable: Iterable[Any]) -> tuple[Iterable[Any], Callable[[], None]]:
    """(items, finish): what a draining consumer iterates, and what it calls at the end.

    Iterate `items` in one pass, never again once it ended; call `finish` after it
    ended (not after an error or an early stop); never iterate `iterable` itself after
    taking its parts.
    """
    if type(iterable) is CheckedChain:
        return iterable.items, iterable.finish
    return iterable, _nothing
