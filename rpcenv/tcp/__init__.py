"""The tcp RpcEnv backend: plain sockets and one I/O thread, for a driver and its executors.

gRPC's Python runtime costs every message several thread wake-ups (the sending
thread wakes the I/O loop, grpc's poller thread wakes it again on the other
side, and the loop hands off to the dispatcher), which on a 2-core machine is
most of a tiny job's latency. Here a send is one non-blocking `send` on the
sending thread, and one I/O thread per env (`_loop`) polls every socket, parses
whole envelopes and hands them to the dispatcher (or to an endpoint that
`receives_inline`). Threads do not grow with peers: a driver with a thousand
executors has the loop's thread and a watchdog's, as with one.

Semantics are the RpcEnv's (the conformance suite runs unchanged): one
connection per pair of envs, reused in both directions and keyed by the peer's
advertised address; per-sender order; asks and their deadlines (`BaseRpcEnv`);
connect and disconnect events; the shared-secret (or application credential)
token of the gRPC backend, checked in a handshake; the loopback rule without a
secret. It has no TLS and serves no typed gRPC services: a setting asking for
TLS fails `RpcEnv.create`, and the Master and Workers stay on gRPC (they refuse
tcp: `cluster.launch`); a cluster's driver talks to its Master from a gRPC env
and to its executors from a tcp one (`scheduler.api.driver`). Idle connections
have kernel keepalives, so a vanished peer is noticed as on gRPC.

Modules, one job each:

=================  ===========================================================
`_env`             `TcpRpcEnv`: connections by address, dialling, judging
                   handshakes, the watchdog (stalls, a held loop), shutdown
`_loop`            the I/O loop: poller, its thread, hand-over when a handler
                   holds it
`_connection`      one connection: non-blocking writes and their backlog,
                   reads turned into envelopes
`_inbound`         accepting, reading handshakes, bounding those that wait
`_wire`            records, the handshake's JSON, incremental parsing
`_sockets`         socket options and kernel counters
=================  ===========================================================

Bounds, so that no peer holds the loop for long and a flood cannot lock out a
peer with the secret: see `_inbound` for handshakes, spark.sparkctl.rpc.tcp.
maxConnections (256) authenticated inbound connections at most (more are
refused, saying so), a started record must arrive within
spark.rpc.io.connectionTimeout of waiting for its bytes, and a peer that takes
none of our backlog for spark.network.timeout is closed and the backlog dropped.
"""

from __future__ import annotations

from rpcenv.tcp._env import TcpRpcEnv, create_env

__all__ = ["TcpRpcEnv", "create_env"]
