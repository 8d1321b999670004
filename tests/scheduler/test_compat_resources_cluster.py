"""PySpark compatibility: custom resources on a cluster, each test with its own context.

The companion of test_compat_resources.py (which shares one context per master):
the driver's discovery script, Spark's refusals of stage-level profiles on local
mode, and on ``local-cluster[N,C,M]`` (its workers take the application's
``spark.worker.resource.*``, as in PySpark's own resource tests) what each task
gets and how many run at once. Observed on PySpark 4.3 first (about 30 s per
local-cluster context there).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import _compat_support as support
import pytest

from scheduler import BarrierTaskContext, TaskContext
from scheduler.resource import (
    ExecutorResourceRequests,
    ResourceProfileBuilder,
    TaskResourceRequests,
)

#: PySpark's local-cluster takes 30 s to start and, on a loaded host, as long again to
#: launch its executor: more than the suite's 120 s default for one test.
pytestmark = pytest.mark.timeout(300)


def gpu_script(tmp_path: Path, *addresses: str, name: str = "gpu") -> str:
    """A discovery script printing these addresses, written into tmp_path."""
    path = tmp_path / f"discover-{name}-{'-'.join(addresses)}.sh"
    payload = json.dumps({"name": name, "addresses": list(addresses)})
    path.write_text(f"#!/bin/sh\necho '{payload}'\n")
    path.chmod(0o755)
    return str(path)


def _task_view(iterator: Any) -> Any:
    ctx = TaskContext.get()
    assert ctx is not None
    resources = {name: (info.name, info.addresses) for name, info in ctx.resources().items()}
    return [(ctx.partitionId(), resources, ctx.cpus())]


def _timed(path: str) -> Any:
    def run(index: int, iterator: Any) -> Any:
        start = time.time()
        time.sleep(0.6)
        ctx = TaskContext.get()
        assert ctx is not None
        gpus = ctx.resources()["gpu"].addresses if "gpu" in ctx.resources() else []
        with open(os.path.join(path, f"task-{index}"), "w") as f:
            json.dump([start, time.time(), gpus], f)
        return [index]

    return run


def _record(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)


def _most_at_once(path: str) -> int:
    """How many of the tasks recorded in `path` ran at the same moment, at most."""
    spans = [_record(os.path.join(path, n))[:2] for n in os.listdir(path)]
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_local_mode_refuses_stage_level_profiles() -> None:
    sc = support.new_context("local[2]", "compat-resources-local")
    try:
        rdd = sc.parallelize(range(4), 2)
        task_only = ResourceProfileBuilder().require(TaskResourceRequests().cpus(1)).build
        with pytest.raises(
            Exception, match="TaskResourceProfiles are only supported for Standalone"
        ):
            rdd.withResources(task_only)
        executor = ExecutorResourceRequests().cores(1)
        full = ResourceProfileBuilder().require(executor).build
        with pytest.raises(Exception, match="only supported on YARN and Kubernetes and Standalone"):
            sc.parallelize(range(4), 2).withResources(full)
    finally:
        sc.stop()


def test_the_driver_runs_its_discovery_script(tmp_path: Path) -> None:
    sc = support.new_context(
        "local[2]",
        "compat-resources-driver",
        **{
            "spark.driver.resource.gpu.amount": "1",
            "spark.driver.resource.gpu.discoveryScript": gpu_script(tmp_path, "0", "1"),
        },
    )
    try:
        assert list(sc.resources) == ["gpu"]
        assert sc.resources["gpu"].name == "gpu"
        assert sc.resources["gpu"].addresses == ["0", "1"]
    finally:
        sc.stop()


# -- on a cluster: local-cluster[N,C,M] -----------------------------------------------------


def _cluster_context(master: str, app: str, tmp_path: Path, **conf: str) -> Any:
    settings = {
        "spark.worker.resource.gpu.amount": "1",
        "spark.worker.resource.gpu.discoveryScript": gpu_script(tmp_path, "0"),
        "spark.executor.resource.gpu.amount": "1",
        "spark.executor.memory": "512m",
    }
    settings.update(conf)
    return support.new_context(master, app, **settings)


def test_each_task_sees_the_gpu_its_executor_got(tmp_path: Path) -> None:
    sc = _cluster_context(
        "local-cluster[2,1,1024]",
        "compat-resources-tasks",
        tmp_path,
        **{
            "spark.task.resource.gpu.amount": "1",
            "spark.driver.resource.gpu.amount": "1",
            "spark.driver.resource.gpu.discoveryScript": gpu_script(tmp_path, "7"),
        },
    )
    try:
        assert sc.resources["gpu"].addresses == ["7"]
        got = sc.parallelize(range(4), 4).mapPartitions(_task_view).collect()
        assert got == [(i, {"gpu": ("gpu", ["0"])}, 1) for i in range(4)]
    finally:
        sc.stop()


def test_a_whole_gpu_per_task_runs_one_task_at_a_time(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    sc = _cluster_context(
        "local-cluster[1,2,1024]",
        "compat-resources-whole",
        tmp_path,
        **{"spark.task.resource.gpu.amount": "1"},
    )
    try:
        got = sc.parallelize(range(4), 4).mapPartitionsWithIndex(_timed(str(marks))).collect()
        assert got == [0, 1, 2, 3]
        assert _most_at_once(str(marks)) == 1  # two cores, but one GPU
    finally:
        sc.stop()


def test_half_a_gpu_per_task_shares_the_address(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    sc = _cluster_context(
        "local-cluster[1,2,1024]",
        "compat-resources-half",
        tmp_path,
        **{"spark.task.resource.gpu.amount": "0.5"},
    )
    try:
        got = sc.parallelize(range(4), 4).mapPartitionsWithIndex(_timed(str(marks))).collect()
        assert got == [0, 1, 2, 3]
        assert _most_at_once(str(marks)) == 2
        gpus = [_record(marks / n)[2] for n in sorted(os.listdir(marks))]
        assert gpus == [["0"]] * 4
        # A task-only profile asking a whole GPU runs its stage one task at a time.
        for name in os.listdir(marks):
            os.remove(marks / name)
        whole = ResourceProfileBuilder().require(TaskResourceRequests().resource("gpu", 1)).build
        rdd = sc.parallelize(range(4), 4).withResources(whole)
        assert rdd.getResourceProfile() is not None
        assert rdd.getResourceProfile().id == whole.id
        assert rdd.mapPartitionsWithIndex(_timed(str(marks))).collect() == [0, 1, 2, 3]
        assert _most_at_once(str(marks)) == 1
        # Two profiles in one stage: Spark refuses the job (no merge unless asked).
        other = ResourceProfileBuilder().require(TaskResourceRequests().cpus(2)).build
        mixed = sc.parallelize(range(2), 2).withResources(whole).map(str).withResources(other)
        with pytest.raises(Exception, match="Multiple ResourceProfiles specified in the RDDs"):
            mixed.collect()
    finally:
        sc.stop()


def test_task_cpus_are_respected_on_a_cluster(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    sc = support.new_context(
        "local-cluster[1,2,1024]",
        "compat-resources-cpus",
        **{"spark.task.cpus": "2", "spark.executor.memory": "512m"},
    )
    try:
        views = sc.parallelize(range(2), 2).mapPartitions(_task_view).collect()
        # (Only the cpus: in oracle mode PySpark's JVM keeps earlier tests' GPU settings.)
        assert [(index, cpus) for index, _, cpus in views] == [(0, 2), (1, 2)]
        got = sc.parallelize(range(3), 3).mapPartitionsWithIndex(_timed(str(marks))).collect()
        assert got == [0, 1, 2]
        assert _most_at_once(str(marks)) == 1
        # Without dynamic allocation a standalone cluster refuses executor profiles.
        full = ResourceProfileBuilder().require(ExecutorResourceRequests().cores(1)).build
        refused = "only supported on YARN and Kubernetes and Standalone with dynamic allocation"
        with pytest.raises(Exception, match=refused):
            sc.parallelize(range(2), 2).withResources(full)
    finally:
        sc.stop()


def _gpus_of_task(index: int, iterator: Any) -> Any:
    ctx = TaskContext.get()
    assert ctx is not None
    return [(index, {k: v.addresses for k, v in ctx.resources().items()}, ctx.cpus())]


def test_a_stage_with_an_executor_profile_gets_executors_of_it(tmp_path: Path) -> None:
    sc = support.new_context(
        "local-cluster[2,1,1024]",
        "compat-resources-profile",
        **{
            "spark.worker.resource.gpu.amount": "1",
            "spark.worker.resource.gpu.discoveryScript": gpu_script(tmp_path, "0"),
            "spark.executor.memory": "512m",
            "spark.dynamicAllocation.enabled": "true",
            "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            "spark.dynamicAllocation.executorIdleTimeout": "2s",
        },
    )
    try:
        # The default profile's executors have no GPU, nor do its tasks.
        plain = sc.parallelize(range(2), 2).mapPartitionsWithIndex(_gpus_of_task).collect()
        assert plain == [(0, {}, 1), (1, {}, 1)]
        profile = (
            ResourceProfileBuilder()
            .require(ExecutorResourceRequests().cores(1).resource("gpu", 1))
            .require(TaskResourceRequests().cpus(1).resource("gpu", 1))
            .build
        )
        rdd = sc.parallelize(range(4), 4).withResources(profile)
        got = rdd.mapPartitionsWithIndex(_gpus_of_task).collect()
        assert got == [(i, {"gpu": ["0"]}, 1) for i in range(4)]
    finally:
        sc.stop()


def _address_space_limit(_: Any) -> int:
    import resource

    return resource.getrlimit(resource.RLIMIT_AS)[0]


@pytest.mark.parametrize(("where", "cores"), [("local-cluster[1,2,1024]", 2), ("cluster", 1)])
def test_a_profiles_executors_give_their_workers_its_pyspark_memory(
    request: pytest.FixtureRequest, where: str, cores: int
) -> None:
    """A stage's profile sets its Python workers' limit (as PySpark 4.3's DAGScheduler
    passes it to the Python runner): its pysparkMemory, else the app's setting, over the
    tasks its executor runs at once (spark.executor.cores, then 1, when it sets no cores)."""
    sc = support.new_context(
        support.master_for(request, where),
        "compat-resources-pyspark-memory",
        **{
            "spark.executor.pyspark.memory": "512m",
            "spark.executor.memory": "512m",
            "spark.dynamicAllocation.enabled": "true",
            "spark.dynamicAllocation.shuffleTracking.enabled": "true",
            "spark.dynamicAllocation.executorIdleTimeout": "2s",
        },
    )

    def limits(profile: Any = None) -> set[int]:
        rdd = sc.parallelize(range(4), 4)
        if profile is not None:
            rdd = rdd.withResources(profile)
        return set(rdd.map(_address_space_limit).collect())

    def executor_profile(requests: ExecutorResourceRequests) -> Any:
        return ResourceProfileBuilder().require(requests).build

    try:
        assert limits() == {512 << 20}  # the default profile: the app's setting
        sized = ExecutorResourceRequests().cores(cores).pysparkMemory("600m")
        assert limits(executor_profile(sized)) == {(600 // cores) << 20}
        no_cores = ExecutorResourceRequests().pysparkMemory("300m")
        assert limits(executor_profile(no_cores)) == {300 << 20}
        assert limits(executor_profile(ExecutorResourceRequests().cores(1))) == {512 << 20}
    finally:
        sc.stop()


def _limit_and_cpus(_: Any) -> tuple[int, int]:
    import resource

    ctx = TaskContext.get()
    assert ctx is not None
    return resource.getrlimit(resource.RLIMIT_AS)[0] >> 20, ctx.cpus()


@pytest.mark.parametrize(
    ("where", "dynamic"),
    [("local-cluster[1,4,1024]", False), ("cluster", False), ("local-cluster[1,4,1024]", True)],
)
def test_a_task_only_profiles_stage_sizes_its_workers_by_its_cpus(
    tmp_path: Path, where: str, dynamic: bool
) -> None:
    """A stage of a task-only profile has Python workers of its own limit (PySpark 4.3):
    spark.executor.pyspark.memory over the tasks of that stage spark.executor.cores
    hold, rounded up (down under dynamic allocation, where PySpark gives the stage
    executors of its own: about a minute there); the default stage keeps its own."""
    cluster = None
    master = where
    if where == "cluster":  # a worker of 4 cores: the shared cluster's have one each
        reason = support.cluster_unavailable_reason()
        if reason:
            pytest.skip(reason)
        from cluster.testing import ProcCluster  # gRPC and protobuf: not in the oracle's venv

        cluster = ProcCluster(
            tmp_path / "cluster",
            {"spark.worker.timeout": "10"},
            workers=1,
            cores=4,
            memory="1024m",
            ready_timeout=support.CLUSTER_READY_TIMEOUT_S,
        )
        master = cluster.url
    conf = {
        "spark.executor.cores": "4",
        "spark.executor.memory": "512m",
        "spark.executor.pyspark.memory": "800m",
    }
    if dynamic:
        conf["spark.dynamicAllocation.enabled"] = "true"
        conf["spark.dynamicAllocation.shuffleTracking.enabled"] = "true"
        conf["spark.dynamicAllocation.executorIdleTimeout"] = "2s"
    try:
        sc = support.new_context(master, "compat-resources-task-profile-memory", **conf)
        try:

            def limits(cpus: int | None = None) -> set[tuple[int, int]]:
                rdd = sc.parallelize(range(8), 8)
                if cpus is not None:
                    requests = TaskResourceRequests().cpus(cpus)
                    rdd = rdd.withResources(ResourceProfileBuilder().require(requests).build)
                return set(rdd.map(_limit_and_cpus).collect())

            assert limits() == {(200, 1)}  # 800 MiB over 4 tasks
            assert limits(2) == {(400, 2)}
            assert limits(4) == {(800, 4)}
            # 4 cores hold 4 / 3 tasks: rounded up, 2; rounded down, 1.
            assert limits(3) == {(800 if dynamic else 400, 3)}
            assert limits() == {(200, 1)}  # the default stage's workers are still its own
        finally:
            sc.stop()
    finally:
        if cluster is not None:
            cluster.close(support.CLUSTER_STOP_TIMEOUT_S)


def test_merged_profiles_take_the_larger_of_each_request(tmp_path: Path) -> None:
    """spark.scheduler.resource.profileMergeConflicts: a stage with two profiles runs
    with their merge (a whole GPU from one, 2 cpus from the other) instead of failing."""
    marks = tmp_path / "marks"
    marks.mkdir()
    sc = _cluster_context(
        "local-cluster[1,2,1024]",
        "compat-resources-merge",
        tmp_path,
        **{
            "spark.task.resource.gpu.amount": "0.5",
            "spark.scheduler.resource.profileMergeConflicts": "true",
        },
    )
    try:
        whole = ResourceProfileBuilder().require(TaskResourceRequests().resource("gpu", 1)).build
        cpus = ResourceProfileBuilder().require(TaskResourceRequests().cpus(2)).build
        rdd = sc.parallelize(range(3), 3).withResources(whole).map(lambda x: x).withResources(cpus)
        assert rdd.getResourceProfile().id == cpus.id  # the RDD's own, not the stage's
        views = rdd.mapPartitions(_task_view).collect()
        assert views == [(i, {"gpu": ("gpu", ["0"])}, 2) for i in range(3)]
        got = rdd.mapPartitionsWithIndex(_timed(str(marks))).collect()
        assert got == [0, 1, 2]
        assert _most_at_once(str(marks)) == 1
    finally:
        sc.stop()


def _barrier_gpus(iterator: Any) -> Any:
    ctx = BarrierTaskContext.get()
    ctx.barrier()
    return [(ctx.partitionId(), ctx.resources()["gpu"].addresses)]


def test_a_barrier_stage_counts_gpus_in_its_slots(tmp_path: Path) -> None:
    """Two cores but one GPU, a whole GPU per task: one barrier slot, as Spark counts."""
    sc = _cluster_context(
        "local-cluster[1,2,1024]",
        "compat-resources-barrier",
        tmp_path,
        **{
            "spark.task.resource.gpu.amount": "1",
            "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures": "1",
            "spark.scheduler.barrier.maxConcurrentTasksCheck.interval": "100ms",
        },
    )
    try:
        assert sc.parallelize(range(2), 2).count() == 2  # the executor is up: slots to count
        assert sc.parallelize(range(1), 1).barrier().mapPartitions(_barrier_gpus).collect() == [
            (0, ["0"])
        ]
        with pytest.raises(Exception, match="requires more slots than the total number of slots"):
            sc.parallelize(range(2), 2).barrier().mapPartitions(_barrier_gpus).collect()
    finally:
        sc.stop()
