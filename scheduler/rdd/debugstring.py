"""RDD.toDebugString in Spark's layout: the lineage as an indented tree.

Each line is `(partitions) Name[id] at <api> at <file>:<line> [storage level]`
for the first RDD and for every RDD read through a shuffle (drawn with `+-`),
and `|  Name[id] at ... [...]` for the narrow parents that share its stage, so
stage boundaries show as they do in Spark.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from scheduler.rdd.deps import ShuffleDependency

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["debug_string"]


def debug_string(rdd: RDD) -> str:
    """The lineage of `rdd`, one RDD per line, in Spark's layout."""
    count = f"({rdd.getNumPartitions()})"
    offset = (len(count) - 1) // 2
    below = " " * offset + "|" + " " * (len(count) - offset)
    return "\n".join([f"{count} {_describe(rdd)}", *_parents(rdd, below)])


def _describe(rdd: RDD) -> str:
    persisted = str(rdd.getStorageLevel()) if rdd.is_cached else ""
    site = rdd._creation_site
    return f"{rdd!r} at {site} [{persisted}]" if site else f"{rdd!r} [{persisted}]"


def _parents(rdd: RDD, prefix: str) -> list[str]:
    deps = rdd.dependencies
    lines: list[str] = []
    for i, dep in enumerate(deps):
        last = i == len(deps) - 1
        if isinstance(dep, ShuffleDependency):
            lines.extend(_shuffled(dep.rdd, prefix, last))
        else:
            lines.append(f"{prefix}{_describe(dep.rdd)}")
            lines.extend(_parents(dep.rdd, prefix))
    return lines


def _shuffled(rdd: RDD, prefix: str, last: bool) -> list[str]:
    """A parent across a shuffle: `+-(n)` under the child's bar, its own bar below."""
    count = f"({rdd.getNumPartitions()})"
    offset = (len(count) - 1) // 2
    here = prefix.rstrip(" ").removesuffix("|")
    below = here + ("  " if last else "| ") + " " * offset + "|" + " " * (len(count) - offset)
    return [f"{here}+-{count} {_describe(rdd)}", *_parents(rdd, below)]
