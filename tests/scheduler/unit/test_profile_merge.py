"""Spark's merge of a stage's resource profiles (spark.scheduler.resource.profileMergeConflicts)."""

from __future__ import annotations

from scheduler.rdd.profiles import merged_profile
from scheduler.resource import (
    ExecutorResourceRequests,
    ResourceProfileBuilder,
    TaskResourceRequests,
)


def test_each_request_takes_its_largest_amount() -> None:
    a = (
        ResourceProfileBuilder()
        .require(ExecutorResourceRequests().cores(2).resource("gpu", 2))
        .require(TaskResourceRequests().cpus(1).resource("gpu", 1))
        .build
    )
    b = (
        ResourceProfileBuilder()
        .require(ExecutorResourceRequests().cores(4).memory("2g"))
        .require(TaskResourceRequests().cpus(2))
        .build
    )
    merged = merged_profile([a, b])
    assert merged.id not in (a.id, b.id)
    assert merged.executor_cores() == 4
    assert merged.executor_memory_mb() == 2048
    assert merged.custom_executor_resources() == {"gpu": 2}
    assert merged.task_cpus(1) == 2
    assert merged.taskResources["gpu"].amount == 1
    assert merged_profile([b, a]) is merged  # one merged profile per set: one id


def test_a_merge_equal_to_one_of_its_profiles_is_that_profile() -> None:
    big = ResourceProfileBuilder().require(TaskResourceRequests().cpus(3)).build
    small = ResourceProfileBuilder().require(TaskResourceRequests().cpus(1)).build
    assert merged_profile([small, big]) is big
    assert merged_profile([small, big]).task_only
