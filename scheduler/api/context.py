"""SparkContext: the driver's entry point (PySpark's API), a façade over its parts.

It checks the settings (master URL, scheduler settings) and creates the
TaskScheduler; `scheduler.api.driver.build_driver` wires the rest (RpcEnv,
endpoint, UI, event log, backend). Its PySpark methods come from mixins:
RDD sources, shared variables, added files, job groups, running jobs and
executor requests. It
implements `RDDHost` for the RDDs it makes, and never computes partitions.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from types import TracebackType
from typing import Any, ClassVar

from rpcenv import Conf
from scheduler import settings as keys
from scheduler._version import SPARK_VERSION
from scheduler.api.addedfiles import AddedFiles
from scheduler.api.allocation import ExecutorRequests
from scheduler.api.conf import SYSTEM_PROPERTIES, SparkConf, launcher_warned_keys
from scheduler.api.driver import (
    DriverRuntime,
    DriverSpec,
    barrier_check,
    build_driver,
    check_task_cpus,
    python_worker_memory_mb,
    register_exit_hook,
    scheduler_settings,
)
from scheduler.api.jobgroups import JobGroups
from scheduler.api.jobs import JobRunner
from scheduler.api.resources import (
    app_resources,
    check_profile_supported,
    enforce_profile_support,
)
from scheduler.api.sharedvars import SharedVariables
from scheduler.api.sources import RDDSources
from scheduler.api.tracker import JobRegistry, StatusTracker
from scheduler.backend.base import ExecutorAllocationClient, SchedulerBackend
from scheduler.backend.endpoint import executor_python
from scheduler.backend.master_url import parse_master
from scheduler.core.allocation import allocation_settings
from scheduler.core.taskscheduler import TaskScheduler
from scheduler.errors import PySparkRuntimeError
from scheduler.rdd.hadoopformats import HadoopSources
from scheduler.rdd.rdd import RDD
from scheduler.resource.information import ResourceInformation
from scheduler.resource.profile import ResourceProfile
from scheduler.status.storage import RDDInfo, StorageStatus, rdd_infos
from scheduler.task.accumulators import Accumulator
from scheduler.task.broadcast import Broadcast
from scheduler.task.profiler import BasicProfiler, ProfilerCollector
from scheduler.task.taskcontext import in_python_worker
from sparkctl.v1 import scheduler_pb2 as pb

__all__ = ["SparkContext", "parse_master"]

log = logging.getLogger(__name__)

#: The master and application name of a context whose conf sets neither (PySpark's).
DEFAULT_MASTER = "local[*]"
DEFAULT_APP_NAME = "pyspark-shell"


def _allowed_in_executors(conf: SparkConf | None) -> bool:
    """spark.executor.allowSparkContext: a task may start a SparkContext (PySpark's opt-in)."""
    return (
        conf is not None and (conf.get("spark.executor.allowSparkContext") or "").lower() == "true"
    )


class SparkContext(
    RDDSources, HadoopSources, SharedVariables, AddedFiles, JobGroups, JobRunner, ExecutorRequests
):
    """The connection to a cluster (or local executors): creates RDDs and runs jobs."""

    _active_spark_context: ClassVar[SparkContext | None] = None
    _lock: ClassVar[threading.RLock] = threading.RLock()

    def __init__(
        self,
        master: str | None = None,
        appName: str | None = None,
        sparkHome: str | None = None,
        pyFiles: list[str] | None = None,
        environment: dict[str, str] | None = None,
        batchSize: int = 0,
        serializer: Any = None,
        conf: SparkConf | None = None,
        gateway: Any = None,
        jsc: Any = None,
        profiler_cls: Any = None,
        udf_profiler_cls: Any = None,
        memory_profiler_cls: Any = None,
    ) -> None:
        """Start the driver (PySpark's signature).

        `udf_profiler_cls` and `memory_profiler_cls` are accepted and unused: in
        PySpark they profile Spark SQL's Python UDFs, which sparkctl does not run.
        """
        if in_python_worker() and not _allowed_in_executors(conf):
            # As PySpark (SPARK-32160): a task must not start a whole driver in its worker.
            raise PySparkRuntimeError(errorClass="CONTEXT_ONLY_VALID_ON_DRIVER")
        with SparkContext._lock:
            active = SparkContext._active_spark_context
            if active is not None:
                raise ValueError(
                    "Cannot run multiple SparkContexts at once; existing "
                    f"SparkContext(app={active.appName}, master={active.master})"
                )
            self._conf = conf.copy() if conf is not None else SparkConf()
            if master:
                self._conf.setMaster(master)
            if appName:
                self._conf.setAppName(appName)
            for key, value in (environment or {}).items():
                self._conf.setExecutorEnv(key, value)
            # What PySpark's launcher (spark-submit pyspark-shell) gives a program run with
            # plain `python app.py`: every core of this host, and the launcher's own name.
            self._conf.setIfMissing("spark.master", DEFAULT_MASTER)
            self._conf.setIfMissing("spark.app.name", DEFAULT_APP_NAME)
            self._conf.to_conf().warn_unknown(launcher_warned_keys())
            SparkContext._active_spark_context = self
        try:
            self._profiler_cls = profiler_cls
            self._start(pyFiles or [])
        except BaseException:
            with SparkContext._lock:
                SparkContext._active_spark_context = None
            self._teardown()
            raise
        # Like Spark's shutdown hook: a program that forgets stop() still ends its app
        # cleanly. threading's exit hooks run before non-daemon (RpcEnv pool) threads are
        # joined, last registered first: ours must come after concurrent.futures' own.
        register_exit_hook(self.stop)

    # -- startup and shutdown -----------------------------------------------------------

    def _start(self, py_files: list[str]) -> None:
        self.master: str = self._conf.get("spark.master") or ""
        self.appName: str = self._conf.get("spark.app.name") or ""
        self.sparkHome = self._conf.get("spark.home")
        self.startTime = int(time.time() * 1000)
        self._stopped = False
        #: Why the context stopped on its own (the Master removed the application).
        self.stop_reason: str | None = None
        self._rdd_ids = itertools.count()
        self._shuffle_ids = itertools.count()
        self._broadcast_ids = itertools.count()
        self._accumulator_ids = itertools.count()
        self._ids_lock = threading.Lock()
        self._persisted: dict[int, RDD] = {}
        self._broadcasts: dict[int, Broadcast[Any]] = {}
        self._accumulators: dict[int, Accumulator[Any]] = {}
        self._jobs = JobRegistry()
        self._thread_local = threading.local()
        self._checkpoint_dir: str | None = None
        self._runtime: DriverRuntime | None = None
        self._backend: SchedulerBackend | None = None
        #: The backend again when it can ask a cluster manager for executors (standalone).
        self._allocation_client: ExecutorAllocationClient | None = None
        self._py_files = list(py_files)
        kind, cores, max_failures, urls = parse_master(self.master)
        settings = self._conf.to_conf()
        if kind == "local-cluster":
            from scheduler.backend.localcluster import start_local_cluster

            memory = settings.get(keys.EXECUTOR_MEMORY)
            self._local_cluster = start_local_cluster(self.master, memory >> 20, settings)
            kind, urls = "standalone", [self._local_cluster.url]
        # Checked before anything starts, so that a bad value fails fast and names its key.
        self._allocation = allocation_settings(settings, local=kind == "local")
        task_cpus = check_task_cpus(settings, kind, cores)
        #: Profile 0 (spark.executor/task.resource.*) and the driver's own resources.
        self.default_profile, self._resources = app_resources(settings, kind, task_cpus)
        self._master_kind = kind
        self._enforce_profiles = enforce_profile_support(
            os.environ.get("SPARK_TESTING"),
            settings.get(keys.TESTING),
            settings.get(keys.RESOURCE_PROFILE_MANAGER_TESTING),
        )
        sched_settings = scheduler_settings(settings, kind, task_cpus, max_failures)
        self._barrier_check_interval, self._barrier_check_failures = barrier_check(settings)
        self._scheduler = TaskScheduler(
            sched_settings, self._broadcast_bytes, self._apply_accumulators, self._executor_lost
        )
        self._scheduler.dag.dynamic_allocation = self._allocation is not None
        self._scheduler.dag.merge_profiles = settings.get(keys.PROFILE_MERGE_CONFLICTS)
        self._jobs.listen(
            self._scheduler.bus,
            settings.get(keys.UI_RETAINED_STAGES),
            settings.get(keys.UI_RETAINED_JOBS),
        )
        self._storage = StorageStatus()
        self._storage.listen(self._scheduler.bus)
        self._scheduler.default_profile = self.default_profile
        self._local_cores = cores
        self._kind = kind
        #: The Python that runs tasks: spark.pyspark.python, else PYSPARK_PYTHON, else (for
        #: executors on workers) each worker's own interpreter, which here is ours.
        self.pythonExec = executor_python(settings, os.environ) or sys.executable
        self.pythonVer = f"{sys.version_info[0]}.{sys.version_info[1]}"
        #: One profiler per RDD that runs Python code, with spark.python.profile=true.
        self.profiler_collector: ProfilerCollector | None = None
        if settings.get(keys.PYTHON_PROFILE):
            self.profiler_collector = ProfilerCollector(
                self._profiler_cls or BasicProfiler, settings.get(keys.PYTHON_PROFILE_DUMP)
            )
        spec = DriverSpec(
            self._conf,
            kind,
            cores,
            urls,
            self.appName,
            self.startTime,
            self.sparkUser(),
            self.pythonExec,
            self._allocation,
            self.default_profile.custom_executor_resources(),
            local_cluster=getattr(self, "_local_cluster", None),
        )
        rt = build_driver(spec, self._scheduler, self)
        self._env, self._endpoint, self._app_id = rt.env, rt.endpoint, rt.app_id
        self._backend, self._allocation_client = rt.backend, rt.allocation_client
        self._ui, self._event_log = rt.ui, rt.event_log
        #: The executors' extra environment variables, as PySpark's `sc.environment` lists them.
        self.environment: dict[str, str] = {
            key[len("spark.executorEnv.") :]: value
            for key, value in self._conf.getAll()
            if key.startswith("spark.executorEnv.")
        }
        self.environment["PYTHONHASHSEED"] = rt.executor_env["PYTHONHASHSEED"]
        level = settings.get(keys.LOG_LEVEL)
        if level:
            self.setLogLevel(level)

    # -- DriverOwner: what the driver's parts tell the context (api/driver.py) ----------

    def driver_wired(self, runtime: DriverRuntime) -> None:
        self._runtime = runtime

    def add_configured_files(self) -> None:
        # As Spark does: --py-files/--files/--archives (and pyFiles) are added files,
        # served to executors by content (checked before any executor starts).
        self._add_configured_files(self._py_files)

    def executors_gone(self) -> None:
        self.stop()

    def removed_by_master(self, reason: str) -> None:
        """The Master removed the application: the context goes with it (Spark's `dead`)."""
        self.stop_reason = reason
        self.stop()

    def _executor_lost(self, executor_id: str, reason: str) -> None:
        """The task scheduler forgot an executor: its backend may replace it."""
        runtime = self._runtime
        if runtime is not None and runtime.backend is not None and not self._stopped:
            runtime.backend.executor_lost(executor_id, reason)

    def stop(self) -> None:
        """Cancel running jobs, stop the executors and release everything."""
        with SparkContext._lock:
            if getattr(self, "_stopped", True):
                return
            self._stopped = True
            try:
                self._scheduler.cancel_jobs(None, "because SparkContext was shut down")
            except Exception:
                log.exception("cancelling jobs on stop failed")
            self._teardown()
            if SparkContext._active_spark_context is self:
                SparkContext._active_spark_context = None
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    def _teardown(self) -> None:
        self._stopped = True
        runtime = getattr(self, "_runtime", None)
        if runtime is not None:
            runtime.stop()
        elif getattr(self, "_local_cluster", None) is not None:
            self._local_cluster.stop()  # the driver failed to start: only the cluster ran
        self._remove_added_files()
        tmp = getattr(self, "_tmp_checkpoint_root", None)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    def __enter__(self) -> SparkContext:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __reduce__(self) -> Any:
        raise PySparkRuntimeError(errorClass="CONTEXT_ONLY_VALID_ON_DRIVER")

    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> SparkContext:
        """The active SparkContext, or a new one from `conf`."""
        with cls._lock:
            if cls._active_spark_context is None:
                cls(conf=conf or SparkConf())
            assert cls._active_spark_context is not None
            return cls._active_spark_context

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName}>"

    #: Files of these kinds added with addPyFile go on the executors' sys.path.
    PACKAGE_EXTENSIONS: tuple[str, ...] = (".zip", ".egg", ".jar")

    @classmethod
    def setSystemProperty(cls, key: str, value: str) -> None:
        """Set a driver-wide property; `spark.*` ones become defaults of later SparkConfs."""
        SYSTEM_PROPERTIES[key] = value

    @classmethod
    def getSystemProperty(cls, key: str) -> str | None:
        """A property set with setSystemProperty (None when unset)."""
        return SYSTEM_PROPERTIES.get(key)

    # -- properties ----------------------------------------------------------------------

    @property
    def version(self) -> str:
        return SPARK_VERSION

    @property
    def applicationId(self) -> str:
        """The application id (local-<ms> or the Master's app id)."""
        return self._app_id

    @property
    def uiWebUrl(self) -> str | None:
        """The application UI's URL, when it runs."""
        return self._ui.url if self._ui is not None else None

    @property
    def defaultParallelism(self) -> int:
        """Default number of partitions: spark.default.parallelism, else the cores."""
        configured = self._conf.to_conf().get(keys.DEFAULT_PARALLELISM)
        if configured is not None:
            return configured
        if self._kind == "local":
            return self._local_cores
        with self._scheduler.lock:
            total = sum(h.cores for h in self._scheduler.executors.values())
        return max(total, 2)

    @property
    def defaultMinPartitions(self) -> int:
        return min(self.defaultParallelism, 2)

    @property
    def resources(self) -> dict[str, ResourceInformation]:
        """The driver's custom resources (spark.driver.resource.*): name -> addresses."""
        return dict(self._resources)

    def check_resource_profile(self, profile: ResourceProfile) -> None:
        """Refuse a profile this master cannot run (`rdd.withResources` asks), as Spark does."""
        check_profile_supported(
            profile, self._master_kind, self._allocation is not None, self._enforce_profiles
        )

    def getConf(self) -> SparkConf:
        """A copy of this context's configuration."""
        conf = self._conf.copy()
        return conf

    def sparkUser(self) -> str:
        import getpass

        return os.environ.get("SPARK_USER") or getpass.getuser()

    def setLogLevel(self, logLevel: str) -> None:
        """Set the driver's log level (ALL, DEBUG, INFO, WARN, ERROR, FATAL, OFF)."""
        levels = {
            "ALL": logging.NOTSET, "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG,
            "INFO": logging.INFO, "WARN": logging.WARNING, "WARNING": logging.WARNING,
            "ERROR": logging.ERROR, "FATAL": logging.CRITICAL, "OFF": logging.CRITICAL + 10,
        }  # fmt: skip
        level = levels.get(logLevel.upper())
        if level is None:
            raise ValueError(f"bad log level {logLevel!r}: use one of {', '.join(levels)}")
        for name in ("scheduler", "rpcenv", "py4j"):
            logging.getLogger(name).setLevel(level)

    def statusTracker(self) -> StatusTracker:
        """Job and stage progress."""
        return StatusTracker(self._jobs)

    # -- ids -----------------------------------------------------------------------------

    def new_rdd_id(self) -> int:
        with self._ids_lock:
            return next(self._rdd_ids)

    def new_shuffle_id(self) -> int:
        with self._ids_lock:
            return next(self._shuffle_ids)

    def python_worker_memory_mb(self) -> int:
        """spark.python.worker.memory in MiB: where aggregation spills to disk."""
        return python_worker_memory_mb(self._conf.to_conf())

    # -- files and checkpoints ------------------------------------------------------------

    def setCheckpointDir(self, dirName: str) -> None:
        """Where checkpoint() writes RDDs."""
        local = dirName[len("file:") :] if dirName.startswith("file:") else dirName
        if local.startswith("//"):
            local = local[2:]  # file:///x
        path = os.path.join(os.path.abspath(local), str(uuid.uuid4()))
        os.makedirs(path, exist_ok=True)
        self._checkpoint_dir = path

    def getCheckpointDir(self) -> str | None:
        """The checkpoint directory as a URI (``file:/...``), as PySpark returns it."""
        return None if self._checkpoint_dir is None else "file:" + self._checkpoint_dir

    def mark_persisted(self, rdd: RDD) -> None:
        """An RDD was persisted or locally checkpointed: getPersistentRDDs lists it."""
        self._persisted[rdd.id()] = rdd

    @property
    def checkpoint_dir(self) -> str | None:
        """Where checkpoint() writes RDDs (a local path), or None before setCheckpointDir."""
        return self._checkpoint_dir

    @property
    def settings(self) -> Conf:
        """The application's settings (an immutable copy of its SparkConf)."""
        return self._conf.to_conf()

    def unpersist_rdd(self, rdd_id: int, blocking: bool) -> None:
        """Forget an RDD's cached partitions, on the driver and the executors."""
        self._persisted.pop(rdd_id, None)
        self._scheduler.forget_rdd(rdd_id)
        self._scheduler.broadcast_to_executors(pb.RemoveBlocks(rdd_ids=[rdd_id]))

    def clean_shuffles(self, shuffle_ids: list[int], blocking: bool) -> None:
        """Forget shuffles' map outputs, here and on the executors (cleanShuffleDependencies).

        `blocking` needs no wait: an executor handles its messages in order, so it has
        deleted the files before it runs any task sent after this call.
        """
        self._scheduler.forget_shuffles(shuffle_ids)

    def getPersistentRDDs(self) -> dict[int, RDD]:
        return dict(self._persisted)

    def getRDDStorageInfo(self) -> list[RDDInfo]:
        """The cached RDDs (Spark's SparkContext.getRDDStorageInfo), by id.

        memSize: estimated bytes of the partitions' objects that Python workers hold
        now (evictions and lost workers subtracted); diskSize: bytes of their
        serialized copies in the executors' local dirs.
        """
        return rdd_infos(self._storage.rdds(), dict(self._persisted))

    def show_profiles(self) -> None:
        """Print the profile of every profiled RDD not shown yet (spark.python.profile).

        Raises:
            PySparkRuntimeError: profiling is off (INCORRECT_CONF_FOR_PROFILE).
        """
        self._profilers().show_profiles()

    def dump_profiles(self, path: str) -> None:
        """Write each profiled RDD's profile to `path/rdd_<id>.pstats` (spark.python.profile).

        Raises:
            PySparkRuntimeError: profiling is off (INCORRECT_CONF_FOR_PROFILE).
        """
        self._profilers().dump_profiles(path)

    def _profilers(self) -> ProfilerCollector:
        if self.profiler_collector is None:
            raise PySparkRuntimeError(errorClass="INCORRECT_CONF_FOR_PROFILE")
        return self.profiler_collector

    def _make_temp_dir(self) -> str:
        root = getattr(self, "_tmp_checkpoint_root", None)
        if root is None:
            root = self._tmp_checkpoint_root = tempfile.mkdtemp(prefix="sparkctl-driver-")
        return root

    @property
    def _executor_pids(self) -> list[int]:
        """Process ids of executors this driver launched itself (local mode)."""
        backend = getattr(self, "_backend", None)
        return [] if backend is None else list(backend.pids)
