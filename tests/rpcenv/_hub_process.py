"""A child process serving as a hub, for tests of the I/O loop's coalescing.

It serves `stats` (an ask answers with the loop's coalescing counters, as JSON)
and `sink` (counts one-way messages) until stdin closes. Its own process, so the
loop it reports on sees only the wake-ups its peers cause, not the test's own.
"""

from __future__ import annotations

import json
import sys

from google.protobuf import wrappers_pb2

from rpcenv import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv.grpc._loop import IoLoop


class Stats(RpcEndpoint):
    """Answers an ask with the I/O loop's turns, waits, streams and sink count."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        io = IoLoop.shared()
        selector = io._selector
        figures = {
            "turns": selector.turns,
            "waits": selector.waits,
            "streams": io.streams,
            "coalescing": io.coalescing,
            "received": self.sink.count,
        }
        context.reply(wrappers_pb2.StringValue(value=json.dumps(figures)))


class Sink(RpcEndpoint):
    """Counts one-way messages."""

    def __init__(self) -> None:
        self.count = 0

    def receive(self, message: object, sender: RpcEndpointRef | None) -> None:
        self.count += 1


def main() -> None:
    env = RpcEnv.create("hub", "127.0.0.1", 0, {})
    sink = Sink()
    env.setup_endpoint("sink", sink)
    env.setup_endpoint("stats", Stats(sink))
    print(env.address.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    env.shutdown()


if __name__ == "__main__":
    main()
