"""Process locality of memory-cached partitions (issue 13), without worker processes.

The executor routes a task to the Python worker that holds its partition as
objects, waits a bounded time for it when it is busy, then lets any worker read
the serialized copy; workers account the objects' size and evict LRU.
"""

from __future__ import annotations

import pickle
import threading
from typing import Any

import pytest
from _fakes import FakePipe, fake_executor

from cluster.testing import wait_until
from scheduler.executor import pyworker as _pyworker
from scheduler.executor import runtime as runtime_module
from scheduler.executor.runtime import worker_cache_mb

_Pipe = FakePipe


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> Any:
    for rt in fake_executor(monkeypatch):
        rt.add_stage("s", b"code")
        yield rt


def _sent(rt: Any, slot: int) -> list[int]:
    return rt._slots[slot].conn.tasks  # type: ignore[no-any-return]


def _cached(rt: Any, slot: int, added: list[Any], evicted: list[Any] | None = None) -> None:
    with rt._lock:
        rt._note_cached(rt._slots[slot], added, evicted or [], 1000)


def test_tasks_go_to_the_worker_holding_their_partition(runtime: Any) -> None:
    _cached(runtime, 1, [(7, 0), (7, 2)])
    _cached(runtime, 0, [(7, 1)])
    runtime.launch([(10, "s", 0, 0), (11, "s", 1, 0)])
    assert _sent(runtime, 1) == [10]
    assert _sent(runtime, 0) == [11]
    assert runtime.cached_in_memory() == {0: (1, 1000), 1: (2, 1000)}


def test_a_task_waits_for_its_busy_worker_then_runs_anywhere(runtime: Any) -> None:
    _cached(runtime, 1, [(7, 0), (7, 1)])
    runtime._run_seconds = 0.01  # locality wait: 2 x 10 ms
    runtime.launch([(10, "s", 0, 0)])
    assert _sent(runtime, 1) == [10]
    runtime.launch([(11, "s", 1, 0)])  # its worker is busy: the other waits, then takes it
    assert _sent(runtime, 0) == []
    assert runtime._slots[0].conn.sent.wait(5.0)
    assert _sent(runtime, 0) == [11]


def test_evicted_forgotten_or_lost_blocks_route_nowhere(runtime: Any) -> None:
    _cached(runtime, 1, [(7, 0), (8, 1), (9, 2)])
    _cached(runtime, 1, [], [(7, 0)])
    assert runtime._holder_of(0) is None
    runtime.forget([], [8], [])
    assert runtime._holder_of(1) is None
    with runtime._lock:
        runtime._slots[1].start()  # a restarted worker process holds nothing
        runtime._drop_holder(runtime._slots[1])
    assert runtime._holders == {}
    runtime.launch([(10, "s", 2, 0)])
    assert _sent(runtime, 0) == [10]  # the least busy worker, as without a cache


def test_uncached_tasks_are_not_delayed(runtime: Any) -> None:
    _cached(runtime, 1, [(7, 0)])
    runtime.launch([(10, "s", 0, 0), (11, "s", 5, 0), (12, "s", 6, 0)])
    # Sent within launch itself: no locality wait held the uncached tasks back.
    assert _sent(runtime, 1)[:1] == [10]
    assert 11 in _sent(runtime, 0)


def test_storage_share_of_the_executor_memory() -> None:
    assert worker_cache_mb({"SPARK_EXECUTOR_MEMORY": "2g"}, 2) == pytest.approx(2048 * 0.3 / 2)
    assert worker_cache_mb({}, 1) == pytest.approx(1024 * 0.3)
    env = {"SPARK_EXECUTOR_MEMORY": "1000m", "SPARKCTL_MEMORY_STORAGE_FRACTION": "1"}
    assert worker_cache_mb(env, 4) == pytest.approx(1000 * 0.6 / 4)
    assert worker_cache_mb({"SPARK_EXECUTOR_MEMORY": "lots"}, 1) == pytest.approx(1024 * 0.3)


def test_worker_cache_evicts_least_recently_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_pyworker, "_CACHE_BUDGET", 1000)
    worker = _pyworker.WorkerRuntime("/nonexistent", "0", "127.0.0.1", 512.0)
    worker._remember((1, 0), [1], 400)
    worker._remember((1, 1), [2], 400)
    worker._cache.move_to_end((1, 0))  # used since: (1, 1) is now the oldest
    worker._remember((1, 2), [3], 400)
    worker._remember((1, 3), [4], 5000)  # larger than the whole budget: never kept
    assert list(worker._cache) == [(1, 0), (1, 2)]
    assert worker.cache_report() == ("cached", [(1, 0), (1, 1), (1, 2)], [(1, 1)], 800)
    assert worker.cache_report() is None


def test_size_estimate_counts_objects_not_pickle_bytes() -> None:
    floats = [float(i) for i in range(100_000)]
    pickled = len(pickle.dumps(floats))
    estimate = _pyworker.estimate_size(floats, pickled)
    assert 24 * 100_000 < estimate < 3 * pickled + 24 * 100_000
    pairs = [(i, str(i)) for i in range(1000)]
    assert _pyworker.estimate_size(pairs, 10) > 1000 * (64 + 28)
    assert _pyworker.estimate_size([], 10_000) == 10_000  # never below the pickle's size


def test_waiting_tasks_keep_their_place_and_long_queues_stay_cheap(runtime: Any) -> None:
    _cached(runtime, 1, [(7, 0)])
    runtime.launch([(1, "s", 0, 0)])  # its holder is now busy
    many = [(100 + i, "s", 0 if i == 0 else 1000 + i, 0) for i in range(20_000)]
    looked_up = 0
    holder_of = runtime._holder_of

    def counting_holder_of(split: int) -> Any:
        nonlocal looked_up
        looked_up += 1
        return holder_of(split)

    runtime._holder_of = counting_holder_of
    runtime.launch(many)
    for _ in range(200):  # as many dispatches as replies would trigger
        with runtime._lock:
            runtime._dispatch()
    # Each dispatch looks at a bounded head of the queue, not at all 20,000 tasks
    # (counted, not timed: a quadratic scan would look 4 million times).
    assert looked_up <= 201 * (runtime_module._LOCALITY_SCAN + 1)
    assert _sent(runtime, 1) == [1]
    assert _sent(runtime, 0) == [101]  # the waiting task 100 did not block the others
    assert [t[0] for t in list(runtime._queue)[:2]] == [100, 102]  # in arrival order


def test_a_fetch_request_behind_held_replies_is_served(runtime: Any) -> None:
    """A worker sends held task replies in one batch with its next fetch request.

    The executor's reader once took every batch entry for a task reply and died on
    the fetch (IndexError), so the reduce task waited for its bytes forever.
    """
    runtime.launch([(1, "s", 0, 0)])
    slot = next(s for s in runtime._slots if 1 in s.conn.tasks)
    fetched = threading.Event()
    reported: list[Any] = []

    def fetch_remote(*request: Any) -> bytes:
        fetched.set()
        return b"bytes"

    runtime.fetch_remote = fetch_remote
    runtime.on_statuses = reported.extend
    done = ("done", 1, "FINISHED", b"", b"", "", "", None, 0.001)
    fetch = ("fetch", 7, "1", "/shuffle/0.data", 0, 5, "127.0.0.1:1")

    class Worker(FakePipe):
        def __init__(self) -> None:
            super().__init__()
            self.incoming = [pickle.dumps(("batch", [done, fetch]))]
            self.replies: list[Any] = []

        def recv_bytes(self) -> bytes:
            if self.incoming:
                return self.incoming.pop(0)
            fetched.wait(5)
            runtime._stopping = True  # the reader returns instead of waiting on a process
            raise EOFError

        def send_bytes(self, data: bytes) -> None:
            self.replies.append(pickle.loads(data))

    worker = Worker()
    slot.conn, slot.proc = worker, object()
    runtime._read_loop(slot)  # returns once the worker's pipe ends
    assert fetched.is_set()
    assert reported, "the held task reply was not reported"
    wait_until(lambda: worker.replies, 5, "the fetched bytes to reach the worker")
    assert worker.replies[0][:2] == ("fetched", 7)
