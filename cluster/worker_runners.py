"""What a Worker runs: executor and driver records and how their commands are built.

`ExecutorRunner` and `DriverRunner` pair a `ChildProcess` with the Worker's
bookkeeping (resources, state, why it was stopped); the `*_command` functions
turn a LaunchExecutor / LaunchDriver into argv, environment and work dir. This
module starts no process by itself and never talks to the Master.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import sys
from collections.abc import Mapping

from cluster.launcher import ChildProcess
from cluster.submitted_files import place_submitted_files
from rpcenv import APP_CREDENTIAL_ENV_VAR, APP_ID_ENV_VAR, DRIVER_ID_ENV_VAR, SECRET_ENV_VAR
from sparkctl.v1 import deploy_pb2 as pb

__all__ = [
    "EXECUTOR_RESOURCES_ENV",
    "PYTHON_WORKER_LIMIT_ENV",
    "RESOURCE_PROFILE_ENV",
    "SUBMIT_CONF_ENV",
    "DriverRunner",
    "ExecutorRunner",
    "LaunchSpec",
    "driver_launch_spec",
    "driver_python",
    "executor_launch_spec",
    "substitute",
    "worker_local_dirs",
    "worker_python",
]

#: The environment variable through which a cluster-mode driver gets its conf (JSON).
SUBMIT_CONF_ENV = "SPARKCTL_SUBMIT_CONF"
#: Where an executor reads its application's spark.rpc.* settings (JSON, set by its driver).
RPC_CONF_ENV = "SPARKCTL_RPC_CONF"
#: The secret's file, which an executor must not be pointed at either.
SECRET_FILE_ENV_VAR = f"{SECRET_ENV_VAR}_FILE"
#: The environment variable through which an executor learns its custom resource
#: addresses (JSON: name -> addresses), as Spark's executors get a resources file.
EXECUTOR_RESOURCES_ENV = "SPARKCTL_EXECUTOR_RESOURCES"
#: ... and the stage-level resource profile it was started for (unset: the default, 0).
RESOURCE_PROFILE_ENV = "SPARKCTL_RESOURCE_PROFILE_ID"
#: Each Python worker's memory limit in MiB (scheduler.executor.workerlimits.MEMORY_LIMIT_ENV;
#: the application sets it for its default executors, a profile's executors get theirs).
PYTHON_WORKER_LIMIT_ENV = "SPARKCTL_PYTHON_WORKER_LIMIT_MB"

_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything needed to start one process."""

    argv: list[str]
    env: dict[str, str]
    cwd: pathlib.Path


def substitute(argv: list[str], values: Mapping[str, str]) -> list[str]:
    """Replace `{{NAME}}` placeholders in each argument."""
    result = []
    for arg in argv:
        for name, value in values.items():
            arg = arg.replace("{{" + name + "}}", value)
        result.append(arg)
    return result


def _safe_id(kind: str, value: str) -> str:
    # Ids become directory names: refuse anything that could escape the work dir.
    if not _SAFE_ID.match(value) or ".." in value:
        raise ValueError(f"bad {kind} {value!r}: letters, digits, '.', '_' and '-' only")
    return value


def worker_python(environ: Mapping[str, str]) -> str:
    """The Python this Worker gives executors whose app names none: PYSPARK_PYTHON, else its own."""
    return environ.get("PYSPARK_PYTHON") or sys.executable


def worker_local_dirs(environ: Mapping[str, str], conf_local_dir: str | None) -> str:
    """The Worker's local dirs for its executors (SPARK_LOCAL_DIRS, else spark.local.dir); "": none.

    As in Spark, they win over the application's spark.local.dir: the application
    cannot know which disks each host has, nor who may write where.
    """
    return (environ.get("SPARK_LOCAL_DIRS") or conf_local_dir or "").strip()


def executor_launch_spec(
    msg: pb.LaunchExecutor,
    work_dir: pathlib.Path,
    hostname: str,
    worker_url: str,
    local_dirs: str = "",
    webui_address: str = "",
) -> LaunchSpec:
    """argv, environment and cwd of an executor.

    `{{PYTHON}}` becomes this Worker's Python; `local_dirs` (the Worker's) reach the
    executor as SPARK_EXECUTOR_DIRS, stronger than anything the application set.

    Raises:
        ValueError: no command, or an app id unfit for a directory name.
    """
    app_id = _safe_id("application id", msg.app_id)
    command = msg.app_description.command
    if not command.argv:
        raise ValueError(f"application {app_id} gave no executor command")
    values = {
        "EXECUTOR_ID": str(msg.executor_id),
        "HOSTNAME": hostname,
        "CORES": str(msg.cores),
        "APP_ID": app_id,
        "WORKER_URL": worker_url,
        "PYTHON": worker_python(os.environ),
    }
    env = dict(os.environ)
    env.update(command.environment)
    # The app's PYTHONPATH (spark.executorEnv.PYTHONPATH) first, then this Worker's own,
    # as Spark merges them: what the worker's host installed stays importable in tasks.
    paths = [p for p in (command.environment.get("PYTHONPATH"), os.environ.get("PYTHONPATH")) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("SPARK_EXECUTOR_DIRS", None)
    if local_dirs:
        env["SPARK_EXECUTOR_DIRS"] = local_dirs
    if webui_address:  # the executor hands these links to its driver's UI, as in Spark
        query = f"appId={app_id}&executorId={msg.executor_id}"
        for log_type in ("stdout", "stderr"):
            url = f"{webui_address.rstrip('/')}/logPage/?{query}&logType={log_type}"
            env[f"SPARK_LOG_URL_{log_type.upper()}"] = url
    env.update(
        SPARK_EXECUTOR_ID=str(msg.executor_id),
        SPARK_EXECUTOR_CORES=str(msg.cores),
        SPARK_EXECUTOR_MEMORY=f"{msg.memory_mb}m",
        SPARK_APP_ID=app_id,
    )
    env.pop(EXECUTOR_RESOURCES_ENV, None)
    env.pop(RESOURCE_PROFILE_ENV, None)
    if msg.resource_profile_id:
        env[RESOURCE_PROFILE_ENV] = str(msg.resource_profile_id)
        # The profile's limit (its pysparkMemory over the tasks it runs at once), not
        # the app's: PySpark runs a stage's Python workers with its profile's memory.
        env.pop(PYTHON_WORKER_LIMIT_ENV, None)
        if msg.python_worker_limit_mb > 0:
            env[PYTHON_WORKER_LIMIT_ENV] = str(msg.python_worker_limit_mb)
    if msg.resources:
        env[EXECUTOR_RESOURCES_ENV] = json.dumps({r.name: list(r.addresses) for r in msg.resources})
    # Never from the Worker's own environment, and never on the command line.
    env.pop(APP_CREDENTIAL_ENV_VAR, None)
    env.pop(APP_ID_ENV_VAR, None)
    # Executors never hold the cluster secret, whoever put it in reach (this
    # Worker's environment, spark.executorEnv.*): they prove their application's
    # credential instead, to their driver, their Worker and each other.
    for name in (SECRET_ENV_VAR, SECRET_FILE_ENV_VAR):
        env.pop(name, None)
    if RPC_CONF_ENV in env:
        env[RPC_CONF_ENV] = _without_secrets(env[RPC_CONF_ENV])
    if msg.app_credential:  # the application's credential (docs/security.md)
        env[APP_CREDENTIAL_ENV_VAR] = msg.app_credential
        env[APP_ID_ENV_VAR] = app_id
    cwd = work_dir / app_id / str(msg.executor_id)
    return LaunchSpec(substitute(list(command.argv), values), env, cwd)


def _without_secrets(rpc_conf: str) -> str:
    """An executor's RPC settings (JSON) minus any secret key: "{}" if unreadable."""
    try:
        values = json.loads(rpc_conf)
    except ValueError:
        return "{}"
    if not isinstance(values, dict):
        return "{}"
    return json.dumps({k: v for k, v in values.items() if "secret" not in str(k).lower()})


def driver_python(conf: Mapping[str, str], environ: Mapping[str, str]) -> str:
    """The Python of a cluster-mode driver, in Spark's order; else this Worker's own."""
    return (
        conf.get("spark.pyspark.driver.python")
        or conf.get("spark.pyspark.python")
        or environ.get("PYSPARK_DRIVER_PYTHON")
        or environ.get("PYSPARK_PYTHON")
        or sys.executable
    )


def driver_launch_spec(
    msg: pb.LaunchDriver, work_dir: pathlib.Path, master_url: str, host: str = ""
) -> LaunchSpec:
    """argv, environment and cwd of a cluster-mode driver; writes inline app content and files.

    The driver advertises `host` (this Worker's): the submitting host's
    spark.driver.host and bindAddress mean nothing here.

    Raises:
        ValueError: nothing to run, a driver id unfit for a directory name, or
            submitted files that did not arrive intact.
    """
    driver_id = _safe_id("driver id", msg.driver_id)
    desc = msg.description
    cwd = work_dir / driver_id
    cwd.mkdir(parents=True, exist_ok=True)
    resource = desc.app_resource.removeprefix("file://")
    if desc.app_content:
        name = pathlib.Path(resource).name if resource else "app.py"
        script = cwd / (name or "app.py")
        script.write_bytes(desc.app_content)
        resource = str(script)
    if desc.command.argv:
        argv = list(desc.command.argv)
    elif resource:
        if not pathlib.Path(resource).is_file():
            raise ValueError(f"app resource {desc.app_resource!r} is not a file on this worker")
        argv = [driver_python(desc.conf, os.environ), resource, *desc.app_args]
    else:
        raise ValueError(f"driver {driver_id} has no command and no app resource")
    conf = dict(desc.conf)
    conf["spark.master"] = master_url
    conf["spark.submit.deployMode"] = "cluster"
    if host:
        conf["spark.driver.host"] = host
        conf.pop("spark.driver.bindAddress", None)
    # Py-files named by path must exist on this worker; the driver ships them on.
    paths = [p.removeprefix("file://") for p in desc.py_files]
    if paths:
        known = [p for p in conf.get("spark.submit.pyFiles", "").split(",") if p]
        conf["spark.submit.pyFiles"] = ",".join([*paths, *known])
    if desc.files:  # those that travelled with the submission, by content
        placed = place_submitted_files(desc.files, cwd / "files", conf)
        conf.update(placed.conf)
        paths = [*placed.python_path, *paths]
    env = dict(os.environ)
    env.update(desc.command.environment)
    env[SUBMIT_CONF_ENV] = json.dumps(conf, sort_keys=True)
    env[DRIVER_ID_ENV_VAR] = driver_id  # named when its application registers
    if paths:
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return LaunchSpec(argv, env, cwd)


@dataclasses.dataclass(slots=True)
class ExecutorRunner:
    """One executor process and the Worker's view of it."""

    app_id: str
    executor_id: int
    cores: int
    memory_mb: int
    process: ChildProcess
    state: pb.ExecutorState.ValueType = pb.EXECUTOR_STATE_LAUNCHING
    # Why the Worker stopped it ("" = it was not stopped by us).
    stop_reason: str = ""
    # It reports when it has registered with its driver: RUNNING waits for that.
    awaits_registration: bool = False
    # It told us it registered with its driver (ExecutorRegistered).
    driver_registered: bool = False
    # It outlived the startup grace (and was not over its memory then).
    grace_over: bool = False
    # Stopped for using too much memory: a failure, not a kill.
    over_memory: bool = False
    exit_status: int | None = None
    #: Custom resource addresses the Master gave it (name -> addresses), held until it ends.
    resources: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: The resource profile it was started for (0: the application's default).
    profile_id: int = 0

    @property
    def key(self) -> tuple[str, int]:
        """(app id, executor id)."""
        return (self.app_id, self.executor_id)

    def summary(self) -> pb.ExecutorRunnerSummary:
        """For GetWorkerStateResponse."""
        return pb.ExecutorRunnerSummary(
            app_id=self.app_id,
            executor_id=self.executor_id,
            cores=self.cores,
            memory_mb=self.memory_mb,
            state=self.state,
            work_dir=str(self.process.cwd),
            pid=self.process.pid,
        )


@dataclasses.dataclass(slots=True)
class DriverRunner:
    """One cluster-mode driver process and the Worker's view of it."""

    driver_id: str
    description: pb.DriverDescription
    process: ChildProcess | None
    work_dir: pathlib.Path
    state: pb.DriverState.ValueType = pb.DRIVER_STATE_SUBMITTED
    killed: bool = False
    exception: str = ""
    #: The Master's launch attempt (LaunchDriver.attempt), echoed in every report.
    attempt: int = 0

    def summary(self) -> pb.DriverRunnerSummary:
        """For GetWorkerStateResponse."""
        return pb.DriverRunnerSummary(
            driver_id=self.driver_id,
            state=self.state,
            cores=self.description.cores,
            memory_mb=self.description.memory_mb,
            work_dir=str(self.work_dir),
        )
