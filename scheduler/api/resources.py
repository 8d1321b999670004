"""An application's custom resources at start: the driver's own, and profile 0.

`spark.driver.resource.{name}.amount` with `.discoveryScript` (or
`spark.driver.resourcesFile`) gives `sc.resources`; `spark.executor.resource.*`
and `spark.task.resource.*` give the default profile every stage runs with unless
`rdd.withResources` says otherwise. Checked before anything starts, so a bad
setting fails the SparkContext naming its key.
"""

from __future__ import annotations

from collections.abc import Mapping

from rpcenv.resources import discover_resources
from scheduler.resource.information import ResourceInformation
from scheduler.resource.profile import DEFAULT_PROFILE_ID, ResourceProfile, default_profile

__all__ = ["app_resources", "check_profile_supported", "enforce_profile_support"]


def app_resources(
    conf: Mapping[str, str], kind: str, task_cpus: int
) -> tuple[ResourceProfile, dict[str, ResourceInformation]]:
    """Profile 0 and the driver's resources (`sc.resources`).

    Raises:
        ValueError: a bad amount, a task resource without an executor one, a failing
            discovery script, or task resources asked in local mode.
    """
    profile = default_profile(conf, task_cpus)
    wanted = profile.task_requirements()
    if kind == "local" and wanted:
        # PySpark's local mode accepts this and then never runs a task (observed on
        # 4.3: the stage waits forever); failing at once says why.
        raise ValueError(
            f"spark.task.resource.{sorted(wanted)[0]}.amount is set, but local mode's executor "
            "has no custom resources, so no task could ever run: use a local-cluster[N,C,M] "
            "or spark:// master with workers that have spark.worker.resource.* set"
        )
    found = discover_resources(
        conf,
        prefix="spark.driver.resource.",
        resources_file=conf.get("spark.driver.resourcesFile"),
        component="spark.driver",
    )
    return profile, {name: ResourceInformation(name, list(a)) for name, a in found.items()}


def check_profile_supported(
    profile: ResourceProfile, kind: str, dynamic_allocation: bool, enforce: bool = True
) -> None:
    """Spark's rules for stage-level scheduling on this master (ResourceProfileManager).

    `enforce` False (Spark's testing mode, see `enforce_profile_support`) accepts any
    profile, as Spark does so that its tests can run profiles on local masters.

    Raises:
        ValueError: an executor profile without dynamic allocation, or any other
            profile on local mode, with Spark's message.
    """
    if profile.id == DEFAULT_PROFILE_ID or not enforce:
        return
    cluster = kind in ("standalone", "local-cluster")
    if profile.task_only:
        if not dynamic_allocation and not cluster:
            raise ValueError(
                "TaskResourceProfiles are only supported for Standalone, Yarn and Kubernetes "
                "cluster for now when dynamic allocation is disabled."
            )
        return
    if not cluster or not dynamic_allocation:
        raise ValueError(
            "ResourceProfiles are only supported on YARN and Kubernetes and Standalone with "
            "dynamic allocation enabled."
        )


def enforce_profile_support(
    testing_env: str | None, testing_conf: str | None, refuse_when_testing: bool
) -> bool:
    """Whether `check_profile_supported` refuses what this master cannot run.

    As in Spark: always outside testing mode; in it (the SPARK_TESTING environment
    variable or the spark.testing key set) only with spark.testing.resourceProfileManager.
    """
    testing = testing_env is not None or testing_conf is not None
    return not testing or refuse_when_testing
