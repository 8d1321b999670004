"""RpcEnv benchmark: latency and throughput next to raw grpcio, on loopback.

Run with `make bench-rpc`. The server side runs in a child process (two
processes, as in a real cluster); each figure is measured in the same run as
its raw-gRPC floor, so the ratios hold even on a noisy machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures

import grpc
from google.protobuf import wrappers_pb2

from rpcenv import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv.grpc.testing import IdlePeerStreams

RAW_METHOD = "/bench.Echo/Call"
#: Idle peer streams held on the server for the "many peers" figure.
IDLE_PEERS = 1_000
#: Peers and their total rate for the "server CPU per paced message" figure.
PACED_PEERS = 500
PACED_RATE = 1_000


class Echo(RpcEndpoint):
    """Answers asks with the same message."""

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        assert isinstance(message, wrappers_pb2.BytesValue | wrappers_pb2.StringValue)
        context.reply(message)


class Sink(RpcEndpoint):
    """Counts one-way messages; an ask returns the count so far."""

    def __init__(self) -> None:
        self.count = 0
        self.bytes = 0

    def receive(self, message: object, sender: RpcEndpointRef | None) -> None:
        self.count += 1
        if isinstance(message, wrappers_pb2.BytesValue):
            self.bytes += len(message.value)

    def receive_and_reply(self, message: object, context: RpcCallContext) -> None:
        context.reply(wrappers_pb2.UInt64Value(value=self.count))


def serve(
    backend_port: multiprocessing.connection.Connection, stop: multiprocessing.synchronize.Event
) -> None:
    """Child process: an RpcEnv with Echo and Sink, and a raw unary echo server."""
    env = RpcEnv.create("bench-server", "127.0.0.1", 0, {"spark.rpc.backend": "grpc"})
    env.setup_endpoint("echo", Echo())
    env.setup_endpoint("sink", Sink())
    raw = grpc.server(futures.ThreadPoolExecutor(4))
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    raw.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Echo", {"Call": handler})]
    )
    raw_port = raw.add_insecure_port("127.0.0.1:0")
    raw.start()
    backend_port.send((env.address.port, raw_port))
    stop.wait()
    raw.stop(0)
    env.shutdown()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_calls(call: Callable[[], object], count: int) -> list[float]:
    for _ in range(min(200, count)):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def one_way(ref: RpcEndpointRef, message: object, count: int) -> float:
    """Seconds to deliver `count` sends, ended by an ask that arrives after them."""
    base = ref.ask_sync(wrappers_pb2.StringValue(value="count"), 60)
    assert isinstance(base, wrappers_pb2.UInt64Value)
    started = time.perf_counter()
    for _ in range(count):
        ref.send(message)  # type: ignore[arg-type]
    answer = ref.ask_sync(wrappers_pb2.StringValue(value="count"), 300)
    elapsed = time.perf_counter() - started
    assert isinstance(answer, wrappers_pb2.UInt64Value) and answer.value == base.value + count
    return elapsed


def measure(env: RpcEnv, address: str, quick: bool) -> dict[str, float]:
    echo = env.endpoint_ref(f"spark://echo@{address}")
    sink = env.endpoint_ref(f"spark://sink@{address}")
    small = wrappers_pb2.StringValue(value="x" * 32)
    n_ask = 500 if quick else 3000
    n_send = 20_000 if quick else 200_000
    asks = time_calls(lambda: echo.ask_sync(small, 10), n_ask)
    result = {
        "ask_p50_us": percentile(asks, 0.5) * 1e6,
        "ask_p99_us": percentile(asks, 0.99) * 1e6,
        "send_per_s": n_send / one_way(sink, small, n_send),
    }
    for size, count in ((1 << 20, 50 if quick else 300), (64 << 20, 2 if quick else 6)):
        payload = wrappers_pb2.BytesValue(value=os.urandom(size))
        elapsed = one_way(sink, payload, count)
        result[f"mb_s_{size >> 20}MiB"] = size * count / elapsed / 1e6
    return result


def measure_raw(port: int, quick: bool) -> dict[str, float]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(RAW_METHOD)
        payload = wrappers_pb2.StringValue(value="x" * 32).SerializeToString()
        n = 500 if quick else 3000
        samples = time_calls(lambda: call(payload), n)
        started = time.perf_counter()
        for _ in range(n):
            call(payload)
        rate = n / (time.perf_counter() - started)
    return {
        "ask_p50_us": percentile(samples, 0.5) * 1e6,
        "ask_p99_us": percentile(samples, 0.99) * 1e6,
        "calls_per_s": rate,
    }


def server_threads(pid: int) -> int:
    """Threads of process `pid` now (Linux /proc)."""
    return len(os.listdir(f"/proc/{pid}/task"))


def measure_many_peers(env: RpcEnv, address: str, pid: int, quick: bool) -> dict[str, float]:
    """Ask latency with IDLE_PEERS idle peer streams open on the server, and its threads."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * IDLE_PEERS
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # one fd per stream here
    echo = env.endpoint_ref(f"spark://echo@{address}")
    small = wrappers_pb2.StringValue(value="x" * 32)
    before = server_threads(pid)
    with IdlePeerStreams(address, IDLE_PEERS) as streams:
        started = time.perf_counter()
        streams.open(timeout=120)
        opened = time.perf_counter() - started
        during = server_threads(pid)
        asks = time_calls(lambda: echo.ask_sync(small, 10), 500 if quick else 3000)
    return {
        "ask_p50_us": percentile(asks, 0.5) * 1e6,
        "ask_p99_us": percentile(asks, 0.99) * 1e6,
        "threads_before": before,
        "threads_during": during,
        "open_s": opened,
    }


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure_paced(address: str, pid: int, quick: bool) -> dict[str, float]:
    """Server CPU per one-way message when many peers each send a little (heartbeats).

    PACED_PEERS client envs (their own connections) send one small message each,
    spread evenly, at PACED_RATE messages/s in all: what a master pays per
    heartbeat, with no endpoint work to speak of.
    """
    peers = PACED_PEERS // 5 if quick else PACED_PEERS
    rate = PACED_RATE // 5 if quick else PACED_RATE
    window = 3.0 if quick else 10.0
    envs = [RpcEnv.create(f"paced-{i}", "127.0.0.1", 0, {}, client_mode=True) for i in range(peers)]
    stop = threading.Event()
    try:
        refs = [env.endpoint_ref(f"spark://sink@{address}", timeout=30) for env in envs]
        counter = refs[0]
        message = wrappers_pb2.StringValue(value="heartbeat-of-worker-0001")

        def pace() -> None:
            started = time.monotonic()
            sent = 0
            while not stop.is_set():
                ref = refs[sent % peers]
                sent += 1
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                ref.send(message)

        sender = threading.Thread(target=pace, daemon=True)
        sender.start()
        time.sleep(2.0)  # connections warm, the pace steady
        first = counter.ask_sync(wrappers_pb2.StringValue(value="count"), 60)
        cpu_before, started = process_cpu(pid), time.monotonic()
        time.sleep(window)
        cpu_after, elapsed = process_cpu(pid), time.monotonic() - started
        last = counter.ask_sync(wrappers_pb2.StringValue(value="count"), 60)
        assert isinstance(first, wrappers_pb2.UInt64Value)
        assert isinstance(last, wrappers_pb2.UInt64Value)
        received = max(1, last.value - first.value)
    finally:
        stop.set()
        for env in envs:
            env.shutdown()
    return {
        "peers": peers,
        "msgs_per_s": received / elapsed,
        "cpu_pct": 100 * (cpu_after - cpu_before) / elapsed,
        "us_per_msg": 1e6 * (cpu_after - cpu_before) / received,
    }


def measure_local(quick: bool) -> dict[str, float]:
    server = RpcEnv.create("local-server", "127.0.0.1", 0, {"spark.rpc.backend": "local"})
    client = RpcEnv.create("local-client", "127.0.0.1", 0, {"spark.rpc.backend": "local"})
    server.setup_endpoint("echo", Echo())
    server.setup_endpoint("sink", Sink())
    try:
        return measure(client, server.address.host_port, quick)
    finally:
        client.shutdown()
        server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", default=bool(os.environ.get("BENCH_QUICK")))
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    server = ctx.Process(target=serve, args=(child, stop), daemon=True)
    server.start()
    try:
        if not parent.poll(30):
            sys.exit("benchmark server did not start within 30 s")
        rpc_port, raw_port = parent.recv()
        client = RpcEnv.create("bench-client", "127.0.0.1", 0, {}, client_mode=True)
        try:
            raw = measure_raw(raw_port, args.quick)
            grpc_figures = measure(client, f"127.0.0.1:{rpc_port}", args.quick)
            assert server.pid is not None
            many = measure_many_peers(client, f"127.0.0.1:{rpc_port}", server.pid, args.quick)
            paced = measure_paced(f"127.0.0.1:{rpc_port}", server.pid, args.quick)
        finally:
            client.shutdown()
        local = measure_local(args.quick)
    finally:
        stop.set()
        server.join(10)
        if server.is_alive():
            server.kill()
    rows = [
        (
            "ask round trip p50 (us)",
            raw["ask_p50_us"],
            grpc_figures["ask_p50_us"],
            local["ask_p50_us"],
        ),
        (
            "ask round trip p99 (us)",
            raw["ask_p99_us"],
            grpc_figures["ask_p99_us"],
            local["ask_p99_us"],
        ),
        (
            "one-way small msgs/s",
            raw["calls_per_s"],
            grpc_figures["send_per_s"],
            local["send_per_s"],
        ),
        ("1 MiB messages (MB/s)", float("nan"), grpc_figures["mb_s_1MiB"], local["mb_s_1MiB"]),
        ("64 MiB messages (MB/s)", float("nan"), grpc_figures["mb_s_64MiB"], local["mb_s_64MiB"]),
    ]
    print(f"\nRpcEnv benchmark ({'quick' if args.quick else 'full'}, loopback, 2 processes)\n")
    print(
        f"{'measure':<26}{'raw grpc unary':>16}{'RpcEnv grpc':>14}{'ratio':>8}{'RpcEnv local':>14}"
    )
    for label, floor, ours, in_process in rows:
        ratio = ours / floor if floor == floor else float("nan")
        floor_text = f"{floor:,.0f}" if floor == floor else "-"
        ratio_text = f"{ratio:.2f}x" if ratio == ratio else "-"
        print(f"{label:<26}{floor_text:>16}{ours:>14,.0f}{ratio_text:>8}{in_process:>14,.0f}")
    print(
        f"\nwith {IDLE_PEERS:,} idle peer streams on the server (opened in "
        f"{many['open_s']:.1f}s): ask p50 {many['ask_p50_us']:,.0f} us, p99 "
        f"{many['ask_p99_us']:,.0f} us; server threads {many['threads_before']:.0f} -> "
        f"{many['threads_during']:.0f}"
    )
    print(
        f"{paced['peers']:,.0f} peers sending {paced['msgs_per_s']:,.0f} msgs/s in all "
        f"(heartbeat-like): server CPU {paced['cpu_pct']:.1f}% of a core, "
        f"{paced['us_per_msg']:,.0f} us per message"
    )
    print(
        "\ntargets: ask p50 within 1.5x of raw unary; one-way >= 50,000 msgs/s and >= 10x raw "
        "calls/s; 1 MiB >= 300 MB/s; idle peers cost the server no thread and no latency; "
        "< 100 us of server CPU per paced message"
    )


if __name__ == "__main__":
    main()
