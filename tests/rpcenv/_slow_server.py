"""A child process serving an endpoint whose asks never finish, for kill tests."""

from __future__ import annotations

import sys
import time

from rpcenv import RpcCallContext, RpcEndpoint, RpcEnv


class Stuck(RpcEndpoint):
    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        time.sleep(300)


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    env = RpcEnv.create("slow", "127.0.0.1", port, {})
    env.setup_endpoint("stuck", Stuck())
    print(env.address.port, flush=True)
    env.await_termination()


if __name__ == "__main__":
    main()
