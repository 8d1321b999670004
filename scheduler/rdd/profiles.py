"""Which resource profile a stage runs with: the one `withResources` put on its RDDs."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scheduler.resource.profile import ResourceProfile

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["PROFILE_CONFLICT_MESSAGE", "stage_profile", "stage_profiles"]

#: Spark's refusal of a stage whose RDDs carry different profiles.
PROFILE_CONFLICT_MESSAGE = (
    "Multiple ResourceProfiles specified in the RDDs for this stage, either resolve the "
    "conflicting ResourceProfiles yourself or enable "
    "spark.scheduler.resource.profileMergeConflicts and understand how Spark handles the merge."
)

log = logging.getLogger(__name__)


def stage_profile(rdd: RDD | None) -> ResourceProfile | None:
    """The profile of the stage ending in `rdd` (None: the application's default).

    The RDDs of a stage are `rdd` and those it reaches without a shuffle. When they
    carry different profiles (a job with such a stage is refused before it runs), the
    one nearest `rdd` wins and a warning says so.
    """
    if rdd is None:  # (a task set made by hand in a unit test)
        return None
    found = stage_profiles(rdd)
    if len(found) > 1:
        log.warning(
            "the RDDs of one stage carry %d resource profiles (%s): using profile %d",
            len(found),
            ", ".join(str(p.id) for p in found),
            found[0].id,
        )
    return found[0] if found else None


def stage_profiles(rdd: RDD) -> list[ResourceProfile]:
    """The distinct profiles on the RDDs of the stage ending in `rdd`, nearest first."""
    from scheduler.rdd.deps import ShuffleDependency

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
    return found
