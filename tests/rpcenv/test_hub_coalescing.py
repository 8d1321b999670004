"""A hub's I/O loop coalesces floods of wake-ups, never the turns of an exchange.

The hub runs in a child process of its own (`_hub_process.py`), so the loop it
reports on sees only the wake-ups its peers cause; the test's own loop writes
the asks and the flood. Waits are counted, not timed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import wrappers_pb2

from rpcenv import RpcEndpointRef, RpcEnv
from rpcenv.grpc._loop import COALESCE_FROM
from rpcenv.grpc.testing import IdlePeerStreams

HERE = Path(__file__).resolve().parent
#: Idle streams that make the child a hub.
IDLE_STREAMS = COALESCE_FROM + 72


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """host:port of a child process serving `stats` and `sink`, with idle streams held."""
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    child = subprocess.Popen(
        [sys.executable, str(HERE / "_hub_process.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])},
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    stdout = child.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            port = int(lines.get(timeout=30))
        except (queue.Empty, ValueError):
            pytest.fail("the hub process did not start within 30 s")
        target = f"127.0.0.1:{port}"
        with IdlePeerStreams(target, IDLE_STREAMS) as streams:
            streams.open(timeout=60)
            yield target
    finally:
        assert child.stdin is not None
        child.stdin.close()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(10)


def _stats(ref: RpcEndpointRef) -> dict[str, Any]:
    answer = ref.ask_sync(wrappers_pb2.StringValue(value="stats"), 10)
    assert isinstance(answer, wrappers_pb2.StringValue)
    figures: dict[str, Any] = json.loads(answer.value)
    return figures


def test_back_to_back_asks_to_a_busy_hub_never_wait(hub: str) -> None:
    client = RpcEnv.create("asker", "127.0.0.1", 0, {}, client_mode=True)
    try:
        stats = client.endpoint_ref(f"spark://stats@{hub}", timeout=10)
        for _ in range(50):  # the hub's turns come fast from here on: it counts as busy
            _stats(stats)
        before = _stats(stats)
        assert before["coalescing"], before
        asks = 300
        for _ in range(asks):
            _stats(stats)
        after = _stats(stats)
    finally:
        client.shutdown()
    turns, waits = after["turns"] - before["turns"], after["waits"] - before["waits"]
    print(f"{asks} back-to-back asks to a hub of {after['streams']} streams: "
          f"{turns} turns, {waits} waits")  # fmt: skip
    # Before the exchange was told from a flood, each ask waited 2-3 windows (~4 ms).
    assert turns >= asks
    assert waits == 0, f"{waits} turns of {asks} asks waited out the coalescing window"


def test_a_flood_of_one_way_messages_to_a_hub_is_coalesced(hub: str) -> None:
    """Many peers each sending a little (heartbeats): far fewer turns than messages."""
    peers = 40
    clients = [
        RpcEnv.create(f"spoke{n}", "127.0.0.1", 0, {}, client_mode=True) for n in range(peers)
    ]
    try:
        stats = clients[0].endpoint_ref(f"spark://stats@{hub}", timeout=10)
        sinks = [client.endpoint_ref(f"spark://sink@{hub}", timeout=10) for client in clients]
        before = _stats(stats)
        message = wrappers_pb2.StringValue(value="heartbeat")
        rate, seconds = 2000, 1.5
        sent = 0
        started = time.monotonic()
        while sent < rate * seconds:
            sinks[sent % peers].send(message)
            sent += 1
            delay = started + sent / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 10
        while (after := _stats(stats))["received"] - before["received"] < sent:
            assert time.monotonic() < deadline, f"the hub got {after} of {sent} messages"
            time.sleep(0.05)
    finally:
        for client in clients:
            client.shutdown()
    turns, waits = after["turns"] - before["turns"], after["waits"] - before["waits"]
    print(f"{sent} one-way messages from {peers} peers to a hub of {after['streams']} "
          f"streams: {turns} turns, {waits} waits")  # fmt: skip
    assert waits > 0, "the flood was never coalesced"
    # Measured: ~500 turns for 3,000 messages; one each when nothing coalesces. The
    # bound leaves room for a sender slowed by a loaded machine (sparser arrivals).
    assert turns < 0.8 * sent, f"{turns} turns for {sent} messages: not coalesced"
