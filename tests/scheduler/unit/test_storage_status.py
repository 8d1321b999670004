"""Storage report of cached partitions: serialized copies and objects in Python workers.

Issue 13: partitions a Python worker keeps as objects are reported with their
estimated size, per worker process; evictions, lost worker processes, lost
executors and unpersist take their bytes off. Pure listener tests, plus the
worker's side of the report and the event log's round trip.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from scheduler.core.events import ExecutorRemoved, JobStart, TaskEnd, UnpersistRDD
from scheduler.executor import pyworker as _pyworker
from scheduler.rdd.storagelevel import StorageLevel
from scheduler.status.jsonprotocol import EventEncoder, replay_events
from scheduler.status.storage import StorageStatus, rdd_infos

_LINEAGE = {
    "id": 7,
    "name": "PythonRDD[7]",
    "partitions": 4,
    "callsite": "app.py:3",
    "storage": "Memory Serialized 1x Replicated",
    "parents": [],
    "shuffle_parents": [],
}


def _end(
    executor: str,
    worker: tuple[int, int] | None,
    memory: list[tuple[int, int, int]] | None = None,
    disk: list[tuple[int, int, int]] | None = None,
) -> TaskEnd:
    metrics: dict[str, Any] = {}
    if worker is not None:
        metrics["pythonWorker"] = worker
    if memory:
        metrics["memoryBlocks"] = memory
    if disk:
        metrics["storedBlockBytes"] = [size for _, _, size in disk]
    blocks = tuple((r, s) for r, s, _ in disk or ())
    return TaskEnd(0, 0, True, 1, 0, 0, 0, executor, metrics=metrics, blocks=blocks)


def _status() -> StorageStatus:
    status = StorageStatus()
    status(JobStart(0, (0,), ({"stage_id": 0, "rdds": [_LINEAGE]},)))
    return status


def test_objects_and_serialized_copies_are_counted_apart() -> None:
    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000)], disk=[(7, 0, 1200)]))
    status(_end("1", (1, 101), memory=[(7, 1, 6000)], disk=[(7, 1, 1300)]))
    status(_end("2", None, disk=[(7, 2, 1400)]))  # DISK-only copy: no worker holds objects
    (row,) = status.rdds()
    assert (row.id, row.name, row.num_partitions) == (7, "PythonRDD[7]", 4)
    assert row.cached_partitions == 3
    assert (row.memory_bytes, row.disk_bytes, row.workers) == (11_000, 3900, 2)
    assert row.executors == ("1", "2") and row.sized and row.callsite == "app.py:3"
    assert status.by_executor() == {"1": (2, 11_000, 2500), "2": (1, 0, 1400)}
    assert status.worker_memory() == {("1", 0): 5000, ("1", 1): 6000}


def test_an_eviction_takes_its_bytes_off_but_the_serialized_copy_stays() -> None:
    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000)], disk=[(7, 0, 1200)]))
    # The worker cached split 1 and evicted split 0 to make room (0 bytes: no longer held).
    status(_end("1", (0, 100), memory=[(7, 1, 6000), (7, 0, 0)], disk=[(7, 1, 1300)]))
    (row,) = status.rdds()
    assert (row.cached_partitions, row.memory_bytes, row.disk_bytes) == (2, 6000, 2500)
    assert status.worker_memory() == {("1", 0): 6000}


def test_a_second_worker_holding_a_copy_counts_twice() -> None:
    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000)], disk=[(7, 0, 1200)]))
    status(_end("1", (1, 101), memory=[(7, 0, 5000)]))  # read the serialized copy, kept it
    (row,) = status.rdds()
    assert (row.cached_partitions, row.memory_bytes, row.workers) == (1, 10_000, 2)
    assert status.by_executor() == {"1": (1, 10_000, 1200)}


def test_a_restarted_worker_process_held_nothing() -> None:
    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000), (7, 1, 6000)], disk=[(7, 0, 1), (7, 1, 1)]))
    status(_end("1", (1, 101), memory=[(7, 2, 7000)], disk=[(7, 2, 1)]))
    status(_end("1", (0, 555)))  # worker 0 has a new pid: its first task says so
    (row,) = status.rdds()
    assert (row.cached_partitions, row.memory_bytes, row.workers) == (3, 7000, 1)
    status(_end("1", (0, 555), memory=[(7, 0, 5000)]))
    assert status.worker_memory() == {("1", 0): 5000, ("1", 1): 7000}


def test_lost_executors_and_unpersist_forget_everything_they_held() -> None:
    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000)], disk=[(7, 0, 1200)]))
    status(_end("2", (0, 200), memory=[(7, 1, 6000)], disk=[(7, 1, 1300)]))
    status(ExecutorRemoved("1", "lost"))
    (row,) = status.rdds()
    assert (row.cached_partitions, row.memory_bytes, row.disk_bytes) == (1, 6000, 1300)
    assert row.executors == ("2",)
    status(UnpersistRDD(7))
    assert status.rdds() == [] and status.by_executor() == {}


def test_rdd_infos_use_the_contexts_rdds_and_skip_the_unpersisted() -> None:
    class FakeRDD:
        _creation_site = "app.py:3"

        def __repr__(self) -> str:
            return "cached PythonRDD[7]"

        def getNumPartitions(self) -> int:
            return 4

        def getStorageLevel(self) -> StorageLevel:
            return StorageLevel.MEMORY_ONLY

    status = _status()
    status(_end("1", (0, 100), memory=[(7, 0, 5000)], disk=[(7, 0, 1200)]))
    (info,) = rdd_infos(status.rdds(), {7: FakeRDD()})
    assert (info.id, info.name, info.numPartitions, info.numCachedPartitions) == (
        7,
        "cached PythonRDD[7]",
        4,
        1,
    )
    assert info.storageLevel == StorageLevel.MEMORY_ONLY and info.isCached
    assert (info.memSize, info.diskSize, info.callSite) == (5000, 1200, "app.py:3")
    assert rdd_infos(status.rdds(), {}) == []


def test_the_worker_reports_changes_once_and_its_identity_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_pyworker, "_CACHE_BUDGET", 1000)
    monkeypatch.setattr(_pyworker, "_WORKER_INDEX", 3)
    worker = _pyworker.WorkerRuntime("/nonexistent", "0", "127.0.0.1", 512.0)
    first: dict[str, Any] = {}
    worker.report_memory(first)
    assert first == {"pythonWorker": (3, _pyworker.os.getpid())}  # a new process says so
    quiet: dict[str, Any] = {}
    worker.report_memory(quiet)
    assert quiet == {}
    worker._remember((1, 0), [1], 600)
    worker._remember((1, 1), [2], 600)  # evicts (1, 0)
    worker._remember((2, 0), [3], 5000)  # larger than the budget: never held, no change
    changed: dict[str, Any] = {}
    worker.report_memory(changed)
    assert changed["memoryBlocks"] == [(1, 0, 0), (1, 1, 600)]
    assert changed["pythonWorker"][0] == 3
    worker._remember((5, 0), [4], 100)
    worker.drop_rdds({5})  # unpersisted before any task reported it: nothing to say
    after: dict[str, Any] = {}
    worker.report_memory(after)
    assert after == {}


def test_memory_reports_survive_the_event_log() -> None:
    end = _end("1", (0, 100), memory=[(7, 0, 5000), (7, 1, 0)], disk=[(7, 0, 1200)])
    logged = json.loads(json.dumps(EventEncoder().encode(end, 1.0)))
    (replayed,) = replay_events(logged)
    assert isinstance(replayed, TaskEnd)
    assert replayed.blocks == ((7, 0),)
    assert replayed.metrics["storedBlockBytes"] == [1200]
    assert replayed.metrics["pythonWorker"] == (0, 100)
    assert replayed.metrics["memoryBlocks"] == [(7, 0, 5000), (7, 1, 0)]
