"""A child process serving an echo endpoint until stdin closes, for thread counts."""

from __future__ import annotations

import sys

from google.protobuf import wrappers_pb2

from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv


class Echo(RpcEndpoint):
    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.StringValue(value="pong"))


def main() -> None:
    env = RpcEnv.create("echo-server", "127.0.0.1", 0, {})
    env.setup_endpoint("echo", Echo())
    print(env.address.port, flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    env.shutdown()


if __name__ == "__main__":
    main()
