"""PySpark compatibility: custom resources and stage-level scheduling (issue 14).

Workers find their GPUs with a discovery script (``spark.worker.resource.*``),
executors ask for some (``spark.executor.resource.*``), each task for a share
(``spark.task.resource.*``) and sees what it got in ``TaskContext.resources()``;
the driver has its own (``sc.resources``). ``ResourceProfileBuilder`` makes
profiles that ``rdd.withResources`` applies to one stage. This file checks the
API objects on one shared context per master; test_compat_resources_cluster.py
runs the tests that need contexts of their own. Observed on PySpark 4.3 first.
"""

from __future__ import annotations

from typing import Any

from scheduler import TaskContext
from scheduler.resource import (
    ExecutorResourceRequests,
    ResourceInformation,
    ResourceProfileBuilder,
    TaskResourceRequests,
)


def _task_view(iterator: Any) -> Any:
    ctx = TaskContext.get()
    assert ctx is not None
    resources = {name: (info.name, info.addresses) for name, info in ctx.resources().items()}
    return [(ctx.partitionId(), resources, ctx.cpus())]


# -- the API objects (no cluster needed) ---------------------------------------------------


def test_a_profile_holds_its_executor_and_task_requests(sc: Any) -> None:
    builder = ResourceProfileBuilder()
    assert builder.executorResources == {} and builder.taskResources == {}
    executor = ExecutorResourceRequests().cores(2).memory("2g").resource("gpu", 2, "/x.sh")
    task = TaskResourceRequests().cpus(1).resource("gpu", 0.5)
    profile = builder.require(executor).require(task).build
    assert {k: v.amount for k, v in profile.executorResources.items()} == {
        "cores": 2,
        "memory": 2048,
        "gpu": 2,
    }
    assert profile.executorResources["gpu"].discoveryScript == "/x.sh"
    assert {k: v.amount for k, v in profile.taskResources.items()} == {"cpus": 1.0, "gpu": 0.5}
    other = ResourceProfileBuilder().require(TaskResourceRequests().cpus(2)).build
    assert other.id > 0 and profile.id > 0 and other.id != profile.id
    builder.clearTaskResourceRequests()
    assert builder.taskResources == {} and "gpu" in builder.executorResources


def test_an_rdd_has_no_profile_until_with_resources(sc: Any) -> None:
    assert sc.parallelize(range(4), 2).getResourceProfile() is None


def test_resource_information_has_a_name_and_addresses() -> None:
    info = ResourceInformation("gpu", ["0", "1"])
    assert (info.name, info.addresses) == ("gpu", ["0", "1"])


def test_a_task_without_resources_sees_none(sc: Any) -> None:
    got = sc.parallelize(range(2), 2).mapPartitions(_task_view).collect()
    assert got == [(0, {}, 1), (1, {}, 1)]
