"""A child process that hosts an endpoint, for tests that kill a real peer."""

from __future__ import annotations

import sys
import time

from google.protobuf import wrappers_pb2

from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv


class Echo(RpcEndpoint):
    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.StringValue(value="alive"))


def main() -> None:
    server_url = sys.argv[1]
    env = RpcEnv.create("peer", "127.0.0.1", 0, {}, client_mode=True)
    env.setup_endpoint("echo", Echo())
    ref = env.endpoint_ref(server_url)
    ref.ask_sync(wrappers_pb2.StringValue(value="hello"), 10)
    print("ready", flush=True)
    time.sleep(300)


if __name__ == "__main__":
    main()
