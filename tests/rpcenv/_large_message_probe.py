"""Measure how long large messages stall a gRPC RpcEnv's I/O loop (not a test).

Three processes: a server (endpoints `echo` and `sink`), a sender that asks `sink`
with COUNT messages of SIZE MiB each (the handler reads their bytes, as a real one
would), and this process, which asks `echo` every 2 ms meanwhile and reports the
latencies it saw. A stalled loop answers nobody: the probe's maximum is the stall.

    python tests/rpcenv/_large_message_probe.py [--count 4] [--size-mib 64] [--runs 1]

Run it with PYTHONPATH naming the tree to measure (both ends use it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from google.protobuf import wrappers_pb2
from google.protobuf.message import Message

from rpcenv import RpcAddress, RpcCallContext, RpcEndpoint, RpcEnv

CONF = {"spark.rpc.backend": "grpc", "spark.rpc.message.maxSize": "256"}


class _Echo(RpcEndpoint):
    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        context.reply(message)


class _Sink(RpcEndpoint):
    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        assert isinstance(message, wrappers_pb2.BytesValue)
        context.reply(wrappers_pb2.Int64Value(value=len(message.value)))


def _serve() -> None:
    from rpcenv.grpc._loop import IoLoop

    env = RpcEnv.create("probe-server", "127.0.0.1", 0, CONF)
    env.setup_endpoint("echo", _Echo())
    env.setup_endpoint("sink", _Sink())
    lags: list[float] = []

    async def watch() -> None:  # how late the loop runs a 1 ms timer: its stalls
        import asyncio

        while True:
            started = time.monotonic()
            await asyncio.sleep(0.001)
            lags.append(time.monotonic() - started - 0.001)

    IoLoop.shared().submit(watch())
    timed = _time_receive_and_decode()
    print(env.address.port, flush=True)
    sys.stdin.readline()
    lags.sort()
    spans = " ".join(f"{name}_max_ms={max(t, default=0) * 1e3:.1f}" for name, t in timed.items())
    print(
        f"loop_lag_max_ms={lags[-1] * 1e3:.1f} "
        f"loop_lag_p99_ms={lags[int(len(lags) * 0.99)] * 1e3:.1f} {spans}",
        flush=True,
    )
    sys.stdin.read()
    env.shutdown()


def _time_receive_and_decode() -> dict[str, list[float]]:
    """Time the loop's `Connection.receive` and the decoder thread's `decode_frame`."""
    from rpcenv.grpc import _connection

    timed: dict[str, list[float]] = {"receive": [], "decode": []}

    def timing(name: str, function: Any) -> Any:
        def timed_call(*args: Any) -> Any:
            started = time.monotonic()
            try:
                return function(*args)
            finally:
                timed[name].append(time.monotonic() - started)

        return timed_call

    connection = _connection.Connection
    connection.receive = timing("receive", connection.receive)  # type: ignore[method-assign]
    if hasattr(_connection, "decode_frame"):  # the tree under test parses off the loop
        _connection.decode_frame = timing("decode", _connection.decode_frame)
    return timed


def _send(port: int, count: int, size: int) -> None:
    env = RpcEnv.create("probe-sender", "127.0.0.1", 0, CONF, client_mode=True)
    ref = env.endpoint_ref(RpcAddress("127.0.0.1", port), "sink", timeout=30)
    payloads = [wrappers_pb2.BytesValue(value=bytes([n]) * size) for n in range(count)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    futures = [ref.ask(payload, 120) for payload in payloads]
    for future in futures:
        answer = future.result(120)
        assert isinstance(answer, wrappers_pb2.Int64Value) and answer.value == size
    print(f"{time.monotonic() - started:.3f}", flush=True)
    env.shutdown()


def _probe(count: int, size_mib: int) -> dict[str, float]:
    here = os.path.abspath(__file__)
    server = subprocess.Popen(
        [sys.executable, here, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    sender: subprocess.Popen[str] | None = None
    client = RpcEnv.create("probe", "127.0.0.1", 0, CONF, client_mode=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        port = int(server.stdout.readline())
        sender = subprocess.Popen(
            [sys.executable, here, "send", str(port), str(count), str(size_mib << 20)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sender.stdout is not None and sender.stdin is not None
        assert sender.stdout.readline().strip() == "ready"
        echo = client.endpoint_ref(RpcAddress("127.0.0.1", port), "echo", timeout=30)
        ping = wrappers_pb2.StringValue(value="p")
        for _ in range(50):  # warm up
            echo.ask_sync(ping, 30)
        latencies: list[float] = []
        done = threading.Event()
        transfer: list[float] = []

        def wait_sender() -> None:
            assert sender is not None and sender.stdout is not None
            transfer.append(float(sender.stdout.readline()))
            done.set()

        threading.Thread(target=wait_sender, daemon=True).start()
        sender.stdin.write("go\n")
        sender.stdin.flush()
        tail = None
        while tail is None or time.monotonic() < tail:
            if tail is None and done.is_set():
                tail = time.monotonic() + 0.3
            started = time.monotonic()
            echo.ask_sync(ping, 60)
            latencies.append(time.monotonic() - started)
            time.sleep(0.002)
        latencies.sort()
        server.stdin.write("report\n")
        server.stdin.flush()
        print(server.stdout.readline().strip(), end=" ", flush=True)
        return {
            "transfer_s": transfer[0],
            "asks": len(latencies),
            "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3,
            "max_ms": latencies[-1] * 1e3,
        }
    finally:
        client.shutdown()
        for child in (sender, server):
            if child is not None:
                if child.stdin is not None:
                    child.stdin.close()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait(10)


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        _serve()
        return
    if sys.argv[1:2] == ["send"]:
        _send(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.runs):
        result = _probe(args.count, args.size_mib)
        print(
            " ".join(
                f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in result.items()
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
