"""The settings rpcenv owns: the RpcEnv, the network, authentication and TLS.

Each layer declares its own keys (`cluster/settings.py`, `scheduler/settings.py`);
this module declares only what the messaging layer and every process read. The
configuration reference, docs/configuration.md, is generated from these entries
(`make config-doc`).
"""

from __future__ import annotations

from rpcenv._conf import BOOL, DURATION, INT, SIZE, STRING, ConfigSection

__all__ = [
    "ALLOW_INSECURE",
    "ASK_TIMEOUT",
    "AUTHENTICATE",
    "AUTH_SECRET",
    "AUTH_SECRET_FILE",
    "CONNECTION_TIMEOUT",
    "CONNECT_THREADS",
    "DISPATCHER_THREADS",
    "KEEPALIVE_INTERVAL",
    "LOCAL_DIR",
    "LOOKUP_TIMEOUT",
    "MAX_MESSAGE_SIZE",
    "NETWORK_TIMEOUT",
    "PORT_MAX_RETRIES",
    "RPC_BACKEND",
    "SECTION",
    "SERVER_THREADS",
    "SSL_CERT_CHAIN",
    "SSL_ENABLED",
    "SSL_NEED_CLIENT_AUTH",
    "SSL_PRIVATE_KEY",
    "SSL_TRUST_STORE",
    "TCP_MAX_CONNECTIONS",
    "UI_AUTHENTICATE",
]

SECTION = ConfigSection("rpcenv", "Messaging, network and security (rpcenv)")

RPC_BACKEND = SECTION.entry(
    "spark.rpc.backend",
    STRING,
    "grpc",
    "The RpcEnv backend by name. grpc. tcp: plain sockets, no TLS; what a driver and its "
    "executors speak with each other (executors with each other too) unless this key or "
    "spark.ssl.rpc.enabled is set, or a cluster's driver pins spark.driver.port; the "
    "Master and the Workers, and every process's talk with them, stay on grpc. Named "
    "here, grpc means grpc everywhere. A Master and a Worker refuse to start on tcp, and "
    "so does a driver of a cluster (spark://, local-cluster; submit exits with status 2), "
    "since the Master speaks gRPC only; sparkctl's "
    "own clients of a Master (status, kill, submit) use grpc whatever this says. local: "
    "in-process, no sockets, for tests; every driver refuses it, since executors are "
    "other processes. Or one a package registers in the sparkctl.rpc_backends "
    "entry-point group.",
)
NETWORK_TIMEOUT = SECTION.entry(
    "spark.network.timeout",
    DURATION,
    "120s",
    "The default timeout of network interactions; spark.rpc.askTimeout falls back to it.",
    above=0,
    unit="s",
)
ASK_TIMEOUT = SECTION.entry(
    "spark.rpc.askTimeout",
    DURATION,
    NETWORK_TIMEOUT,
    "How long an ask waits for its reply; the timeout error names the endpoint, the "
    "message type and this key.",
    above=0,
    unit="s",
)
LOOKUP_TIMEOUT = SECTION.entry(
    "spark.rpc.lookupTimeout",
    DURATION,
    NETWORK_TIMEOUT,
    "Accepted for Spark compatibility; sparkctl resolves endpoints without a remote "
    "lookup, so nothing waits for it.",
    above=0,
    unit="s",
)
MAX_MESSAGE_SIZE = SECTION.entry(
    "spark.rpc.message.maxSize",
    SIZE,
    "128",
    "The largest message an RpcEnv sends or accepts (a bare number is MiB, as in Spark); "
    "a larger one fails with RpcMessageTooLargeError.",
    min=1 << 20,
    max=2047 << 20,  # as Spark's limit: gRPC's sizes are int32
    unit="m",
)
CONNECT_THREADS = SECTION.optional(
    "spark.rpc.connect.threads",
    INT,
    "Accepted for Spark compatibility; unused: the gRPC backend dials on its one I/O loop.",
    min=0,
)
ALLOW_INSECURE = SECTION.entry(
    "spark.rpc.allowInsecure",
    BOOL,
    "false",
    "Let a server without a shared secret listen on a non-loopback address (it warns "
    "loudly). The daemons' --allow-insecure sets it.",
)
KEEPALIVE_INTERVAL = SECTION.entry(
    "spark.rpc.keepalive.interval",
    DURATION,
    "20s",
    "How often an idle gRPC stream is pinged, so that a vanished peer is noticed; on "
    "the tcp backend, how long a connection is idle before the kernel probes its peer "
    "(one that answers no probe for 10 more seconds is gone).",
    above=0,
    unit="s",
)
DISPATCHER_THREADS = SECTION.optional(
    "spark.rpc.dispatcher.numThreads",
    INT,
    "Threads that run endpoint handlers (each endpoint still sees one message at a time); "
    "0 means the default.",
    default_doc="max(8, 2 x CPU cores)",
    min=0,
)
SERVER_THREADS = SECTION.optional(
    "spark.rpc.io.serverThreads",
    INT,
    "Threads of a gRPC server's handler pool (typed services, health, reflection); "
    "0 means the default.",
    default_doc="16",
    min=0,
)
CONNECTION_TIMEOUT = SECTION.entry(
    "spark.rpc.io.connectionTimeout",
    DURATION,
    "30s",
    "How long dialing a peer may take before the connection counts as failed. The tcp "
    "backend also closes an inbound connection that has not sent its handshake within "
    "this long, and any connection whose started message has waited this long, in all, "
    "for the rest of its bytes (a stalled peer must not hold its buffer forever).",
    above=0,
    unit="s",
)
TCP_MAX_CONNECTIONS = SECTION.entry(
    "spark.sparkctl.rpc.tcp.maxConnections",
    INT,
    "256",
    "Inbound connections a tcp-backend env keeps open at once (a descriptor each); "
    "a peer past it is refused with a clear error. Unless set, a cluster application's "
    "driver and executors take 4096 (each executor dials its driver and the others whose "
    "blocks it fetches). Connections still in their handshake "
    "are bounded apart (256): when they are all taken, the oldest that has sent nothing "
    "is closed to let the newcomer in.",
    min=1,
)
AUTHENTICATE = SECTION.entry(
    "spark.authenticate",
    BOOL,
    "false",
    "Accepted for Spark compatibility: authentication is on whenever a secret is "
    "configured (SPARKCTL_SECRET, spark.authenticate.secret or its .file).",
)
AUTH_SECRET = SECTION.optional(
    "spark.authenticate.secret",
    STRING,
    "The shared secret every connection proves knowledge of. Never accepted on a command "
    "line; prefer SPARKCTL_SECRET or spark.authenticate.secret.file.",
    default_doc="SPARKCTL_SECRET",
)
AUTH_SECRET_FILE = SECTION.optional(
    "spark.authenticate.secret.file",
    STRING,
    "A file holding the shared secret (used when no secret is given directly).",
    default_doc="SPARKCTL_SECRET_FILE",
)
UI_AUTHENTICATE = SECTION.optional(
    "spark.sparkctl.ui.authenticate",
    BOOL,
    "Whether the web UIs (master, worker, application, history) ask for a UI credential: "
    "user admin, or an application id, with the password `sparkctl ui-token` prints. False "
    "leaves them open (e.g. behind a proxy that signs users in); true needs a secret.",
    default_doc="true when a secret is configured",
)
SSL_ENABLED = SECTION.entry(
    "spark.ssl.rpc.enabled",
    BOOL,
    "false",
    "TLS on every RpcEnv connection and listening port.",
)
SSL_CERT_CHAIN = SECTION.optional(
    "spark.ssl.rpc.certChain",
    STRING,
    "PEM certificate chain of this process (required to listen with TLS).",
)
SSL_PRIVATE_KEY = SECTION.optional(
    "spark.ssl.rpc.privateKey",
    STRING,
    "PEM private key of spark.ssl.rpc.certChain (required to listen with TLS).",
)
SSL_TRUST_STORE = SECTION.optional(
    "spark.ssl.rpc.trustStore",
    STRING,
    "PEM certificates of the authorities to trust.",
    default_doc="the system's roots",
)
SSL_NEED_CLIENT_AUTH = SECTION.entry(
    "spark.ssl.rpc.needClientAuth",
    BOOL,
    "false",
    "Servers require a client certificate signed by spark.ssl.rpc.trustStore (mutual TLS).",
)
PORT_MAX_RETRIES = SECTION.entry(
    "spark.port.maxRetries",
    INT,
    "16",
    "How many successive ports a server tries when its configured one is taken (web UIs, "
    "the block manager); a port of 0 takes any free port at once.",
    min=0,
)
LOCAL_DIR = SECTION.optional(
    "spark.local.dir",
    STRING,
    "Comma-separated scratch directories of a process (shuffle files, fetched files). "
    "SPARK_LOCAL_DIRS, set by a worker, wins over it.",
    default_doc="the system's temporary directory",
)

SECTION.family(
    "spark.sparkctl.",
    "sparkctl's own keys, beyond Spark's names. The ones users may set are listed with "
    "their layer; others are set by sparkctl itself for its child processes.",
)
