"""Which resource profile a stage runs with: the one `withResources` put on its RDDs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from scheduler.resource.profile import ResourceProfile
from scheduler.resource.requests import ExecutorResourceRequest, TaskResourceRequest

if TYPE_CHECKING:
    from scheduler.rdd.rdd import RDD

__all__ = ["PROFILE_CONFLICT_MESSAGE", "merged_profile", "stage_profile", "stage_profiles"]

#: Spark's refusal of a stage whose RDDs carry different profiles.
PROFILE_CONFLICT_MESSAGE = (
    "Multiple ResourceProfiles specified in the RDDs for this stage, either resolve the "
    "conflicting ResourceProfiles yourself or enable "
    "spark.scheduler.resource.profileMergeConflicts and understand how Spark handles the merge."
)

#: Merged profiles by the ids they merge: a stage's tasks and executors share one.
_merged: dict[tuple[int, ...], ResourceProfile] = {}
_merged_lock = threading.Lock()


def stage_profile(rdd: RDD | None) -> ResourceProfile | None:
    """The profile of the stage ending in `rdd` (None: the application's default).

    The RDDs of a stage are `rdd` and those it reaches without a shuffle. When they
    carry different profiles, the stage runs with their merge (a job with such a
    stage is refused before it runs unless
    spark.scheduler.resource.profileMergeConflicts is on).
    """
    if rdd is None:  # (a task set made by hand in a unit test)
        return None
    found = stage_profiles(rdd)
    if len(found) > 1:
        return merged_profile(found)
    return found[0] if found else None


def merged_profile(profiles: Sequence[ResourceProfile]) -> ResourceProfile:
    """Spark's merge of a stage's profiles: each request at the largest amount asked.

    The same profiles always give the same merged profile (one id, so one set of
    executors); a merge equal to one of them is that one, as Spark reuses an
    equivalent profile.
    """
    key = tuple(sorted(p.id for p in profiles))
    with _merged_lock:
        found = _merged.get(key)
        if found is not None:
            return found
        executor: dict[str, ExecutorResourceRequest] = {}
        task: dict[str, TaskResourceRequest] = {}
        for profile in profiles:
            for name, req in profile.executorResources.items():
                if name not in executor or req.amount > executor[name].amount:
                    executor[name] = req
            for name, t_req in profile.taskResources.items():
                if name not in task or t_req.amount > task[name].amount:
                    task[name] = t_req
        merged = ResourceProfile(executor, task)
        found = next((p for p in profiles if p == merged), merged)
        _merged[key] = found
        return found


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
