"""The settings the driver owns: application, tasks, executors, UI, event log, history.

Declared once here (kind, default, bounds, doc) and read with `conf.get(ENTRY)`;
the CLI checks them before anything starts, and docs/configuration.md is
generated from them (`make config-doc`). A leaf of the package: every
subpackage may import it, and it imports none of them. Keys of the RpcEnv are
in `rpcenv.settings`; the cluster's in `cluster.settings`, which the driver
never imports (the `sparkctl.settings` entry points make them known).
"""

from __future__ import annotations

import math

from rpcenv import (
    BOOL,
    DURATION,
    FLOAT,
    INT,
    PORT,
    SIZE,
    STRING,
    ConfigSection,
    Kind,
    choice,
    parse_duration,
)

__all__ = [
    "ALLOW_SPARK_CONTEXT_IN_EXECUTORS",
    "APP_NAME",
    "ARCHIVES",
    "BARRIER_CHECK_INTERVAL",
    "BARRIER_CHECK_MAX_FAILURES",
    "BARRIER_SYNC_TIMEOUT",
    "BLOCK_MANAGER_PORT",
    "CORES_MAX",
    "COUNT_OR_INFINITY",
    "DEFAULT_PARALLELISM",
    "DEPLOY_MODE",
    "DRIVER_BIND_ADDRESS",
    "DRIVER_CORES",
    "DRIVER_HOST",
    "DRIVER_MAX_RESULT_SIZE",
    "DRIVER_MEMORY",
    "DRIVER_PORT",
    "DRIVER_RESOURCES_FILE",
    "DRIVER_SUPERVISE",
    "DURATION_OR_INFINITY",
    "DYN_CACHED_IDLE_TIMEOUT",
    "DYN_ENABLED",
    "DYN_IDLE_TIMEOUT",
    "DYN_INITIAL_EXECUTORS",
    "DYN_MAX_EXECUTORS",
    "DYN_MIN_EXECUTORS",
    "DYN_RATIO",
    "DYN_SCHEDULER_BACKLOG_TIMEOUT",
    "DYN_SHUFFLE_TRACKING",
    "DYN_SHUFFLE_TRACKING_TIMEOUT",
    "DYN_SUSTAINED_BACKLOG_TIMEOUT",
    "EVENT_LOG_CODEC",
    "EVENT_LOG_COMPRESS",
    "EVENT_LOG_DIR",
    "EVENT_LOG_ENABLED",
    "EVENT_LOG_OVERWRITE",
    "EXECUTOR_CORES",
    "EXECUTOR_HEARTBEAT_INTERVAL",
    "EXECUTOR_INSTANCES",
    "EXECUTOR_MEMORY",
    "EXECUTOR_PYSPARK_MEMORY",
    "FILES",
    "FILES_MAX_PARTITION_BYTES",
    "FILES_OPEN_COST",
    "HISTORY_LOG_DIRECTORY",
    "HISTORY_RETAINED_APPLICATIONS",
    "HISTORY_UI_PORT",
    "LOCALITY_WAIT",
    "LOG_LEVEL",
    "MASTER",
    "PROFILE_MERGE_CONFLICTS",
    "PYSPARK_DRIVER_PYTHON",
    "PYSPARK_PYTHON",
    "PYTHON_FAULTHANDLER",
    "PYTHON_PROFILE",
    "PYTHON_PROFILE_DUMP",
    "PYTHON_WORKER_MEMORY",
    "PYTHON_WORKER_REUSE",
    "PY_FILES",
    "REDACTION_REGEX",
    "SECTION",
    "SHUFFLE_COMPRESS",
    "SHUFFLE_DIRECT_FETCH",
    "SHUFFLE_SERVICE_ENABLED",
    "SPECULATION",
    "SPECULATION_INTERVAL",
    "SPECULATION_MULTIPLIER",
    "SPECULATION_QUANTILE",
    "STAGE_MAX_ATTEMPTS",
    "TASK_CPUS",
    "TASK_MAX_FAILURES",
    "UI_ENABLED",
    "UI_PORT",
    "UI_RETAINED_DEAD_EXECUTORS",
    "UI_RETAINED_JOBS",
    "UI_RETAINED_STAGES",
    "UI_RETAINED_TASKS",
    "UI_SHOW_PROGRESS",
]

#: The largest count the wire carries (int32 fields of the protobuf messages).
INT32_MAX = 2**31 - 1
_INFINITY = ("inf", "infinity")


def _count_or_infinity(text: str, unit: str) -> int:
    if text.strip().lower() in _INFINITY:
        return INT32_MAX
    return min(int(text.strip()), INT32_MAX)  # Spark's Int.MaxValue: the wire's int32


def _duration_or_infinity(text: str, unit: str) -> float:
    if text.strip().lower() in _INFINITY:
        return math.inf
    return parse_duration(text, unit or "s")


#: An executor count where "infinity" (Spark's Int.MaxValue) means no limit.
COUNT_OR_INFINITY: Kind[int] = Kind(
    "count", "a whole number or infinity", _count_or_infinity, floor=0
)
#: A duration where "infinity" means never.
DURATION_OR_INFINITY: Kind[float] = Kind(
    "duration", "a duration such as 60s, or infinity", _duration_or_infinity, floor=0
)
_MIB = 1 << 20
_MAX_MIB = INT32_MAX << 20  # memory travels in MiB as int32

SECTION = ConfigSection("scheduler", "The driver: application, tasks, executors, UI (scheduler)")

MASTER = SECTION.optional(
    "spark.master",
    STRING,
    "Where the application runs: local, local[N], local[N,F], local[*], "
    "local-cluster[N,C,M] or spark://host:port[,host2:port2] (standby Masters).",
    default_doc="local[*]",
)
APP_NAME = SECTION.optional(
    "spark.app.name",
    STRING,
    "The application's name in the UIs and the Master.",
    default_doc="the app file's stem",
)
DEPLOY_MODE = SECTION.entry(
    "spark.submit.deployMode",
    choice("client", "cluster"),
    "client",
    "client: the driver runs where sparkctl submit runs; cluster: on a worker, chosen "
    "by the Master.",
)
PY_FILES = SECTION.optional(
    "spark.submit.pyFiles",
    STRING,
    "Comma-separated .py/.zip/.egg files added at start with addPyFile (--py-files).",
)
FILES = SECTION.optional(
    "spark.files", STRING, "Comma-separated files added at start with addFile (--files)."
)
ARCHIVES = SECTION.optional(
    "spark.archives",
    STRING,
    "Comma-separated archives (a.zip#alias) unpacked at start with addArchive (--archives).",
)
DRIVER_HOST = SECTION.optional(
    "spark.driver.host",
    STRING,
    "The address executors are told to dial; set in the conf once started.",
    default_doc="the local end of the route to the master",
)
DRIVER_PORT = SECTION.entry(
    "spark.driver.port",
    PORT,
    "0",
    "The driver's RPC port, where its executors reach it; set in the conf once started. "
    "Pinned (not 0) on a cluster, it serves the Master and the executors alike, on gRPC "
    "(otherwise the executors get a tcp port of their own).",
)
DRIVER_BIND_ADDRESS = SECTION.optional(
    "spark.driver.bindAddress",
    STRING,
    "Where the driver (and its UI) listens when that differs from what it advertises.",
    default_doc="spark.driver.host",
)
PYSPARK_PYTHON = SECTION.optional(
    "spark.pyspark.python",
    STRING,
    "The Python of the executors and their Python workers (and of a cluster-mode driver).",
    default_doc="PYSPARK_PYTHON, else the worker's own",
)
PYSPARK_DRIVER_PYTHON = SECTION.optional(
    "spark.pyspark.driver.python",
    STRING,
    "The Python of a cluster-mode driver; wins over spark.pyspark.python.",
)
DRIVER_MEMORY = SECTION.entry(
    "spark.driver.memory",
    SIZE,
    "1g",
    "Memory of a cluster-mode driver, counted against its worker (a bare number is MiB).",
    min=_MIB,
    max=_MAX_MIB,
    unit="m",
)
DRIVER_CORES = SECTION.entry(
    "spark.driver.cores",
    INT,
    "1",
    "Cores of a cluster-mode driver, counted against its worker.",
    min=1,
)
DRIVER_SUPERVISE = SECTION.entry(
    "spark.driver.supervise",
    BOOL,
    "false",
    "Restart a cluster-mode driver that exits non-zero (--supervise), with back-off.",
)
DRIVER_MAX_RESULT_SIZE = SECTION.entry(
    "spark.driver.maxResultSize",
    SIZE,
    "1g",
    "Total serialized results of one result stage the driver accepts; past it the job "
    "fails (0: no limit).",
    min=0,
)
EXECUTOR_CORES = SECTION.optional(
    "spark.executor.cores",
    INT,
    "Cores of each executor.",
    default_doc="all the worker's free cores",
    min=1,
)
EXECUTOR_MEMORY = SECTION.entry(
    "spark.executor.memory",
    SIZE,
    "1g",
    "Memory of each executor, counted against its worker (a bare number is MiB).",
    min=_MIB,
    max=_MAX_MIB,
    unit="m",
)
EXECUTOR_INSTANCES = SECTION.optional(
    "spark.executor.instances",
    INT,
    "With dynamic allocation, the initial number of executors when larger than "
    "spark.dynamicAllocation.initialExecutors.",
    min=0,
)
EXECUTOR_HEARTBEAT_INTERVAL = SECTION.entry(
    "spark.executor.heartbeatInterval",
    DURATION,
    "10s",
    "How often executors heartbeat to the driver; one silent for spark.network.timeout is lost.",
    above=0,
    unit="s",
)
EXECUTOR_PYSPARK_MEMORY = SECTION.optional(
    "spark.executor.pyspark.memory",
    SIZE,
    "Split evenly between an executor's Python workers; each caps its address space at "
    "its share (a bare number is MiB).",
    default_doc="no limit",
    min=_MIB,
    max=_MAX_MIB,
    unit="m",
)
CORES_MAX = SECTION.optional(
    "spark.cores.max",
    INT,
    "The most cores the application takes from the cluster.",
    default_doc="the Master's spark.deploy.defaultCores",
    min=1,
)
DEFAULT_PARALLELISM = SECTION.optional(
    "spark.default.parallelism",
    INT,
    "Partitions of parallelize and of shuffles without a count.",
    default_doc="total executor cores",
    min=1,
)
TASK_CPUS = SECTION.entry(
    "spark.task.cpus",
    INT,
    "1",
    "Cores per task: an executor runs cores // task.cpus tasks at once.",
    min=1,
)
TASK_MAX_FAILURES = SECTION.entry(
    "spark.task.maxFailures",
    INT,
    "4",
    "Attempts per task before the job fails (local[N] does not retry; local[N,F] makes F).",
    min=1,
)
STAGE_MAX_ATTEMPTS = SECTION.entry(
    "spark.stage.maxConsecutiveAttempts",
    INT,
    "4",
    "Consecutive stage attempts after fetch failures before the job fails.",
    min=1,
)
LOCALITY_WAIT = SECTION.entry(
    "spark.locality.wait",
    DURATION,
    "3s",
    "How long a task waits for an executor holding its cached partition or map output.",
    min=0,
    unit="s",
)
SPECULATION = SECTION.entry(
    "spark.speculation", BOOL, "false", "Launch speculative copies of slow tasks."
)
SPECULATION_INTERVAL = SECTION.entry(
    "spark.speculation.interval",
    DURATION,
    "100ms",
    "Accepted for Spark compatibility; speculation is checked every 100 ms.",
    above=0,
    unit="ms",
)
SPECULATION_MULTIPLIER = SECTION.entry(
    "spark.speculation.multiplier",
    FLOAT,
    "1.5",
    "A task is slow when it runs this many times longer than the median.",
)
SPECULATION_QUANTILE = SECTION.entry(
    "spark.speculation.quantile",
    FLOAT,
    "0.75",
    "The fraction of a stage's tasks that must finish before speculation starts.",
)
BARRIER_SYNC_TIMEOUT = SECTION.entry(
    "spark.barrier.sync.timeout",
    DURATION,
    "365d",
    "How long a barrier task's barrier()/allGather() waits for every task of its stage.",
    above=0,
    unit="s",
)
BARRIER_CHECK_INTERVAL = SECTION.entry(
    "spark.scheduler.barrier.maxConcurrentTasksCheck.interval",
    DURATION,
    "15s",
    "How far apart a barrier stage with more tasks than slots is checked again.",
    above=0,
    unit="s",
)
BARRIER_CHECK_MAX_FAILURES = SECTION.entry(
    "spark.scheduler.barrier.maxConcurrentTasksCheck.maxFailures",
    INT,
    "40",
    "How many such checks fail before the job fails.",
    min=1,
)
UI_ENABLED = SECTION.entry("spark.ui.enabled", BOOL, "true", "Serve the application web UI.")
UI_PORT = SECTION.entry(
    "spark.ui.port",
    PORT,
    "4040",
    "The application UI's port (the next free one if taken; 0: any free port).",
)
UI_SHOW_PROGRESS = SECTION.entry(
    "spark.ui.showConsoleProgress",
    BOOL,
    "true",
    "A console progress bar of running stages (only on a terminal).",
)
UI_RETAINED_JOBS = SECTION.entry(
    "spark.ui.retainedJobs", INT, "1000", "Finished jobs the UI and the status tracker keep."
)
UI_RETAINED_STAGES = SECTION.entry(
    "spark.ui.retainedStages", INT, "1000", "Finished stages the UI and the status tracker keep."
)
UI_RETAINED_TASKS = SECTION.entry("spark.ui.retainedTasks", INT, "100000", "Tasks the UI keeps.")
UI_RETAINED_DEAD_EXECUTORS = SECTION.entry(
    "spark.ui.retainedDeadExecutors", INT, "100", "Dead executors the UI keeps."
)
REDACTION_REGEX = SECTION.entry(
    "spark.redaction.regex",
    STRING,
    "(?i)secret|password|token|access[.]?key",
    "Settings whose key or value matches are shown redacted in the UI.",
)
PYTHON_WORKER_MEMORY = SECTION.entry(
    "spark.python.worker.memory",
    SIZE,
    "512m",
    "Memory budget of an aggregation or sort in a task; past it, it spills to disk.",
    min=_MIB,
    max=_MAX_MIB,
    unit="m",
)
PYTHON_WORKER_REUSE = SECTION.entry(
    "spark.python.worker.reuse",
    BOOL,
    "true",
    "Accepted for Spark compatibility; Python workers are always reused.",
)
PYTHON_PROFILE = SECTION.entry(
    "spark.python.profile", BOOL, "false", "Profile the Python code of each RDD (cProfile)."
)
PYTHON_PROFILE_DUMP = SECTION.optional(
    "spark.python.profile.dump",
    STRING,
    "A directory the profiles are written to when the context stops.",
)
PYTHON_FAULTHANDLER = SECTION.entry(
    "spark.python.worker.faulthandler.enabled",
    BOOL,
    "false",
    "A Python worker killed by a signal fails its task with faulthandler's Python stack.",
)
FILES_MAX_PARTITION_BYTES = SECTION.entry(
    "spark.files.maxPartitionBytes",
    SIZE,
    "128m",
    "The most bytes of small files packed into one partition (wholeTextFiles, binaryFiles).",
    min=0,
)
FILES_OPEN_COST = SECTION.entry(
    "spark.files.openCostInBytes",
    SIZE,
    "4m",
    "What opening a file counts as, in bytes, when packing small files into partitions.",
    min=0,
)
SHUFFLE_COMPRESS = SECTION.entry(
    "spark.shuffle.compress",
    BOOL,
    "true",
    "Accepted for Spark compatibility; shuffle files are pickled, not compressed.",
)
SHUFFLE_SERVICE_ENABLED = SECTION.entry(
    "spark.shuffle.service.enabled",
    BOOL,
    "false",
    "Accepted for Spark compatibility; there is no external shuffle service: executors "
    "serve their own blocks.",
)
SHUFFLE_DIRECT_FETCH = SECTION.entry(
    "spark.sparkctl.shuffle.directFetch",
    BOOL,
    "true",
    "Executors fetch shuffle blocks from each other directly (false: through the driver).",
)
BLOCK_MANAGER_PORT = SECTION.entry(
    "spark.blockManager.port",
    PORT,
    "0",
    "Where executors serve their blocks to each other (0: any free port).",
)
EVENT_LOG_ENABLED = SECTION.entry(
    "spark.eventLog.enabled", BOOL, "false", "Write the application's event log."
)
EVENT_LOG_DIR = SECTION.entry(
    "spark.eventLog.dir",
    STRING,
    "file:/tmp/spark-events",
    "The directory event logs are written to; it must exist.",
)
EVENT_LOG_COMPRESS = SECTION.entry(
    "spark.eventLog.compress", BOOL, "false", "Compress the event log."
)
EVENT_LOG_CODEC = SECTION.optional(
    "spark.eventLog.compression.codec",
    STRING,
    "The event log's codec: gzip only (Spark's default, zstd, is not in Python's stdlib).",
    default_doc="gzip",
)
EVENT_LOG_OVERWRITE = SECTION.entry(
    "spark.eventLog.overwrite", BOOL, "false", "Overwrite an existing event log of the same app."
)
HISTORY_LOG_DIRECTORY = SECTION.entry(
    "spark.history.fs.logDirectory",
    STRING,
    "file:/tmp/spark-events",
    "Where the history server reads event logs from.",
)
HISTORY_UI_PORT = SECTION.entry(
    "spark.history.ui.port", PORT, "18080", "The history server's port."
)
HISTORY_RETAINED_APPLICATIONS = SECTION.entry(
    "spark.history.retainedApplications",
    INT,
    "50",
    "Applications whose UI data the history server keeps in memory.",
    min=0,
)
DYN_ENABLED = SECTION.entry(
    "spark.dynamicAllocation.enabled",
    BOOL,
    "false",
    "Add executors while tasks wait and remove idle ones (standalone masters only).",
)
DYN_MIN_EXECUTORS = SECTION.entry(
    "spark.dynamicAllocation.minExecutors",
    COUNT_OR_INFINITY,
    "0",
    "The fewest executors dynamic allocation keeps.",
)
DYN_MAX_EXECUTORS = SECTION.entry(
    "spark.dynamicAllocation.maxExecutors",
    COUNT_OR_INFINITY,
    "infinity",
    "The most executors dynamic allocation asks for (greater than 0).",
)
DYN_INITIAL_EXECUTORS = SECTION.optional(
    "spark.dynamicAllocation.initialExecutors",
    COUNT_OR_INFINITY,
    "Executors asked for at start.",
    default_doc="spark.dynamicAllocation.minExecutors",
)
DYN_SCHEDULER_BACKLOG_TIMEOUT = SECTION.entry(
    "spark.dynamicAllocation.schedulerBacklogTimeout",
    DURATION_OR_INFINITY,
    "1s",
    "Tasks waiting this long make the driver ask for more executors (greater than 0).",
    unit="s",
)
DYN_SUSTAINED_BACKLOG_TIMEOUT = SECTION.entry(
    "spark.dynamicAllocation.sustainedSchedulerBacklogTimeout",
    DURATION_OR_INFINITY,
    DYN_SCHEDULER_BACKLOG_TIMEOUT,
    "While the backlog lasts, the driver asks for more again this often (greater than 0).",
    unit="s",
)
DYN_IDLE_TIMEOUT = SECTION.entry(
    "spark.dynamicAllocation.executorIdleTimeout",
    DURATION_OR_INFINITY,
    "60s",
    "An executor idle this long (holding nothing) is removed.",
    unit="s",
)
DYN_CACHED_IDLE_TIMEOUT = SECTION.entry(
    "spark.dynamicAllocation.cachedExecutorIdleTimeout",
    DURATION_OR_INFINITY,
    "infinity",
    "An idle executor holding cached blocks is removed after this long.",
    unit="s",
)
DYN_RATIO = SECTION.entry(
    "spark.dynamicAllocation.executorAllocationRatio",
    FLOAT,
    "1.0",
    "The fraction of the executors the backlog needs that the driver asks for (0 < r <= 1).",
)
DYN_SHUFFLE_TRACKING = SECTION.entry(
    "spark.dynamicAllocation.shuffleTracking.enabled",
    BOOL,
    "true",
    "Keep executors that hold shuffle output; must stay true (there is no shuffle service).",
)
DYN_SHUFFLE_TRACKING_TIMEOUT = SECTION.entry(
    "spark.dynamicAllocation.shuffleTracking.timeout",
    DURATION_OR_INFINITY,
    "infinity",
    "An idle executor holding shuffle output is removed after this long (a bare number is ms).",
    unit="ms",
)
DRIVER_RESOURCES_FILE = SECTION.optional(
    "spark.driver.resourcesFile",
    STRING,
    "A JSON allocation list (Spark's format) naming the addresses of the driver's custom "
    "resources.",
)
TESTING = SECTION.optional(
    "spark.testing",
    STRING,
    "Set (to anything) when Spark's own tests run, like the SPARK_TESTING environment "
    "variable: stage-level profiles are then accepted on any master.",
)
RESOURCE_PROFILE_MANAGER_TESTING = SECTION.entry(
    "spark.testing.resourceProfileManager",
    BOOL,
    "false",
    "Refuse unsupported stage-level profiles even in testing mode (Spark's tests of the refusal).",
)
PROFILE_MERGE_CONFLICTS = SECTION.entry(
    "spark.scheduler.resource.profileMergeConflicts",
    BOOL,
    "false",
    "Run a stage whose RDDs carry different resource profiles with their merge (the "
    "larger of each request); otherwise its job is refused.",
)
ALLOW_SPARK_CONTEXT_IN_EXECUTORS = SECTION.entry(
    "spark.executor.allowSparkContext",
    BOOL,
    "false",
    "Let a task create a SparkContext; otherwise a Python worker refuses it "
    "(CONTEXT_ONLY_VALID_ON_DRIVER).",
)
LOG_LEVEL = SECTION.optional(
    "spark.log.level",
    STRING,
    "The driver's log level at start, as setLogLevel takes it (INFO, WARN, ...).",
)

SECTION.family(
    "spark.executorEnv.", "spark.executorEnv.NAME: environment of the executors and workers."
)
SECTION.family("spark.hadoop.", "Accepted for Spark compatibility; sparkctl has no Hadoop.")
SECTION.family(
    "spark.executor.resource.",
    "spark.executor.resource.NAME.amount: custom resources (GPUs) each executor needs.",
)
SECTION.family(
    "spark.task.resource.", "spark.task.resource.NAME.amount: custom resources each task needs."
)
SECTION.family(
    "spark.driver.resource.",
    "spark.driver.resource.NAME.amount / .discoveryScript: the driver's own custom resources.",
)
SECTION.family(
    "spark.dynamicAllocation.", "Other keys of dynamic allocation are accepted, not read."
)
SECTION.family("spark.eventLog.", "Other keys of the event log are accepted, not read.")
