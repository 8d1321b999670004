"""Which resource profile a stage runs with: the one `withResources` put on its RDDs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scheduler.resource.profile import ResourceProfile

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["stage_profile"]

log = logging.getLogger(__name__)


def stage_profile(rdd: RDD | None) -> ResourceProfile | None:
    """The profile of the stage ending in `rdd` (None: the application's default).

    The RDDs of a stage are `rdd` and those it reaches without a shuffle. When they
    carry different profiles, the one nearest `rdd` wins and a warning says so (Spark
    refuses such a stage unless spark.scheduler.resource.profileMergeConflicts).
    """
    from scheduler.rdd.deps import ShuffleDependency

    if rdd is None:  # (a task set made by hand in a unit test)
        return None
    found: list[ResourceProfile] = []
    seen: set[int] = set()
    todo = [rdd]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        profile = getattr(current, "_resource_profile", None)
        if profile is not None and profile not in found:
            found.append(profile)
        todo.extend(d.rdd for d in current.dependencies if not isinstance(d, ShuffleDependency))
    if len(found) > 1:
        log.warning(
            "the RDDs of one stage carry %d resource profiles (%s): using profile %d",
            len(found),
            ", ".join(str(p.id) for p in found),
            found[0].id,
        )
    return found[0] if found else None
