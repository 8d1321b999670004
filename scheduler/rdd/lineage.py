"""A stage's RDDs as plain data, taken from the lineage once per job (for JobStart).

`stage_rdds` walks a stage's final RDD through its narrow dependencies (a
shuffle dependency is where the stage ends) and returns plain dicts, so the
status store, the event log and the DAG pictures never hold RDD objects.
The task scheduler calls it when a job starts, only if a listener is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scheduler.rdd.deps import ShuffleDependency

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["stage_rdds"]

#: RDDs described per stage at most: a lineage longer than this is cut (the page says so).
MAX_RDDS_PER_STAGE = 200


def stage_rdds(rdd: RDD) -> list[dict[str, Any]]:
    """The RDDs computed in the stage whose final RDD is `rdd`, parents first.

    Each: `id`, `name` (Spark's "[name ]Class[id]"), `callsite`, `parents` (ids,
    including parents across a shuffle, which belong to earlier stages),
    `shuffle_parents` (those ids only), `partitions`, `storage` ("" when not
    persisted).
    """
    found: dict[int, dict[str, Any]] = {}
    todo = [rdd]
    while todo and len(found) < MAX_RDDS_PER_STAGE:
        current = todo.pop()
        rdd_id = current.id()
        if rdd_id in found:
            continue
        parents: list[int] = []
        shuffled: list[int] = []
        for dep in current.dependencies:
            parent_id = dep.rdd.id()
            parents.append(parent_id)
            if isinstance(dep, ShuffleDependency):
                shuffled.append(parent_id)
            else:
                todo.append(dep.rdd)
        level = current.getStorageLevel() if current.is_cached else None
        found[rdd_id] = {
            "id": rdd_id,
            "name": repr(current),
            "callsite": current._creation_site or "",
            "parents": parents,
            "shuffle_parents": shuffled,
            "partitions": current.getNumPartitions(),
            "storage": str(level) if level is not None else "",
        }
    return [found[k] for k in sorted(found)]
