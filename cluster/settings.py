"""The settings the cluster manager owns: the Master's and the Worker's keys.

Declared once here (kind, default, bounds, doc) and read with `conf.get(ENTRY)`;
the CLI checks them before a daemon starts, and docs/configuration.md is
generated from them (`make config-doc`). Keys of the RpcEnv are in
`rpcenv.settings`, the driver's in the scheduler's settings.
"""

from __future__ import annotations

from rpcenv import BOOL, DURATION, INT, PORT, SIZE, STRING, ConfigSection, choice

__all__ = [
    "DEFAULT_CORES",
    "EXECUTOR_STARTUP_GRACE",
    "MASTER_UI_PORT",
    "MASTER_WEBUI_URL",
    "MAX_EXECUTOR_RETRIES",
    "MAX_FILES_SIZE",
    "RECOVERY_DIRECTORY",
    "RECOVERY_MODE",
    "RETAINED_APPLICATIONS",
    "RETAINED_DRIVERS",
    "SECTION",
    "SPREAD_OUT",
    "UNREGISTERED_PEER_TIMEOUT",
    "WORKER_CLEANUP_APP_DATA_TTL",
    "WORKER_CLEANUP_ENABLED",
    "WORKER_CLEANUP_INTERVAL",
    "WORKER_CORES",
    "WORKER_DISCONNECT_GRACE",
    "WORKER_MEMORY",
    "WORKER_MEMORY_CHECK_INTERVAL",
    "WORKER_RESOURCES_FILE",
    "WORKER_TIMEOUT",
    "WORKER_UDP_HEARTBEATS",
    "WORKER_UI_PORT",
    "WORKER_UI_RETAINED_DRIVERS",
    "WORKER_UI_RETAINED_EXECUTORS",
    "ZOOKEEPER_CONNECTION_TIMEOUT",
    "ZOOKEEPER_DIR",
    "ZOOKEEPER_MAX_FILES_SIZE",
    "ZOOKEEPER_SESSION_TIMEOUT",
    "ZOOKEEPER_URL",
]

SECTION = ConfigSection("cluster", "The Master and the Workers (cluster)")

WORKER_TIMEOUT = SECTION.entry(
    "spark.worker.timeout",
    DURATION,
    "60",
    "A worker silent this long is DEAD; the Master tells workers to heartbeat every "
    "quarter of its own value.",
    above=0,
    unit="s",
)
WORKER_DISCONNECT_GRACE = SECTION.entry(
    "spark.sparkctl.worker.disconnectGrace",
    DURATION,
    "5s",
    "A worker whose connection dropped and that neither heartbeats nor registers again "
    "within this is DEAD.",
    above=0,
    unit="s",
)
WORKER_UDP_HEARTBEATS = SECTION.entry(
    "spark.sparkctl.worker.udpHeartbeats",
    BOOL,
    "true",
    "Workers heartbeat with small signed UDP datagrams to the Master's RPC address "
    "(same port number when free) instead of messages on their stream, which cost the "
    "Master ~20 times more CPU; a worker whose datagrams do not arrive is told to use its "
    "stream. False on the Master offers no UDP port; false on a worker never asks for one.",
)
WORKER_CORES = SECTION.optional(
    "spark.worker.cores",
    INT,
    "Cores a worker offers (--cores, SPARK_WORKER_CORES).",
    default_doc="every core of the machine",
    min=1,
)
WORKER_MEMORY = SECTION.optional(
    "spark.worker.memory",
    SIZE,
    "Memory a worker offers (--memory, SPARK_WORKER_MEMORY; a bare number is MiB).",
    default_doc="the machine's memory less 1 GiB, at least 1 GiB",
    min=1 << 20,
    max=(2**31 - 1) << 20,
    unit="m",
)
WORKER_UI_PORT = SECTION.entry(
    "spark.worker.ui.port",
    PORT,
    "8081",
    "The worker web UI's port (--webui-port; the next free one if taken).",
)
WORKER_UI_RETAINED_EXECUTORS = SECTION.entry(
    "spark.worker.ui.retainedExecutors",
    INT,
    "1000",
    "Finished executors a worker remembers and lists with their log links.",
    min=0,
)
WORKER_UI_RETAINED_DRIVERS = SECTION.entry(
    "spark.worker.ui.retainedDrivers",
    INT,
    "1000",
    "Finished cluster-mode drivers a worker remembers and lists with their log links.",
    min=0,
)
WORKER_CLEANUP_ENABLED = SECTION.entry(
    "spark.worker.cleanup.enabled",
    BOOL,
    "true",
    "Delete the work dirs (logs included) of finished applications and drivers older "
    "than appDataTtl.",
)
WORKER_CLEANUP_INTERVAL = SECTION.entry(
    "spark.worker.cleanup.interval",
    DURATION,
    "1800",
    "How often a worker looks for work dirs to delete.",
    above=0,
    unit="s",
)
WORKER_CLEANUP_APP_DATA_TTL = SECTION.entry(
    "spark.worker.cleanup.appDataTtl",
    DURATION,
    "604800",
    "How long the work dir of a finished application is kept (7 days).",
    min=0,
    unit="s",
)
WORKER_MEMORY_CHECK_INTERVAL = SECTION.entry(
    "spark.sparkctl.worker.memoryCheckInterval",
    DURATION,
    "1s",
    "How often a worker samples its executors' memory (RSS) against their limit.",
    above=0,
    unit="s",
)
EXECUTOR_STARTUP_GRACE = SECTION.entry(
    "spark.sparkctl.worker.executorStartupGrace",
    DURATION,
    "500ms",
    "An executor that exits within this after launch counts as failed to start.",
    min=0,
    unit="s",
)
SPREAD_OUT = SECTION.entry(
    "spark.deploy.spreadOut",
    BOOL,
    "true",
    "Spread an application's executors over as many workers as possible (false: "
    "consolidate on as few as possible).",
)
MAX_EXECUTOR_RETRIES = SECTION.entry(
    "spark.deploy.maxExecutorRetries",
    INT,
    "10",
    "Executor failures in a row after which the Master removes an application that has "
    "no executor running (-1: never).",
    min=-1,
)
DEFAULT_CORES = SECTION.entry(
    "spark.deploy.defaultCores",
    INT,
    "0",
    "Cores an application that does not set spark.cores.max gets (0: all).",
    min=0,
)
RETAINED_APPLICATIONS = SECTION.entry(
    "spark.deploy.retainedApplications",
    INT,
    "200",
    "Finished applications the Master keeps and shows.",
    min=0,
)
RETAINED_DRIVERS = SECTION.entry(
    "spark.deploy.retainedDrivers",
    INT,
    "200",
    "Finished cluster-mode drivers the Master keeps and shows.",
    min=0,
)
RECOVERY_MODE = SECTION.entry(
    "spark.deploy.recoveryMode",
    choice("NONE", "FILESYSTEM", "ZOOKEEPER"),
    "NONE",
    "How a restarted or standby Master recovers workers, applications and drivers.",
)
RECOVERY_DIRECTORY = SECTION.optional(
    "spark.deploy.recoveryDirectory",
    STRING,
    "Where FILESYSTEM recovery keeps its records.",
    default_doc="recovery/ in the Master's work dir",
)
ZOOKEEPER_URL = SECTION.optional(
    "spark.deploy.zookeeper.url",
    STRING,
    "The ZooKeeper servers (host:port,...) of ZOOKEEPER recovery; required by it.",
)
ZOOKEEPER_DIR = SECTION.entry(
    "spark.deploy.zookeeper.dir",
    STRING,
    "/spark",
    "The znode under which ZOOKEEPER recovery keeps its records and election.",
)
ZOOKEEPER_SESSION_TIMEOUT = SECTION.entry(
    "spark.sparkctl.zookeeper.sessionTimeout",
    DURATION,
    "60s",
    "The Masters' ZooKeeper session (as Spark's Curator client): how long a killed "
    "leader keeps its leadership.",
    above=0,
    unit="s",
)
ZOOKEEPER_CONNECTION_TIMEOUT = SECTION.entry(
    "spark.sparkctl.zookeeper.connectionTimeout",
    DURATION,
    "15s",
    "How long a Master waits for a ZooKeeper server to answer at start.",
    above=0,
    unit="s",
)
MASTER_UI_PORT = SECTION.entry(
    "spark.master.ui.port",
    PORT,
    "8080",
    "The master web UI's port (--webui-port; the next free one if taken).",
)
UNREGISTERED_PEER_TIMEOUT = SECTION.entry(
    "spark.sparkctl.master.unregisteredPeerTimeout",
    DURATION,
    "60s",
    "A connection to the Master that registers nothing and says nothing for this long is closed.",
    above=0,
    unit="s",
)
MAX_FILES_SIZE = SECTION.entry(
    "spark.sparkctl.submit.maxFilesSize",
    SIZE,
    "64m",
    "The most bytes the --py-files/--files/--archives of one cluster-mode submission "
    "may hold in all.",
    min=1,
)
ZOOKEEPER_MAX_FILES_SIZE = SECTION.entry(
    "spark.sparkctl.zookeeper.maxFilesSize",
    SIZE,
    "16m",
    "With recoveryMode=ZOOKEEPER, the most bytes the --py-files/--files/--archives of one "
    "cluster-mode submission may hold: they are copied into ZooKeeper (in chunks under its "
    "1 MB node limit) so that a Master elected on another host can relaunch the driver.",
    min=1,
)
MASTER_WEBUI_URL = SECTION.optional(
    "spark.sparkctl.master.webUiUrl",
    STRING,
    "The master web UI's URL told to workers; set by the daemon that started the UI.",
    internal=True,
)

WORKER_RESOURCES_FILE = SECTION.optional(
    "spark.worker.resourcesFile",
    STRING,
    "A JSON allocation list (Spark's format) naming the addresses of the worker's custom "
    "resources; else their discovery scripts find them.",
)

SECTION.family("spark.worker.cleanup.", "Other keys of the cleanup are accepted, not read.")
SECTION.family(
    "spark.worker.resource.",
    "spark.worker.resource.NAME.amount / .discoveryScript / .vendor: custom resources "
    "(GPUs, FPGAs) a worker offers.",
)
