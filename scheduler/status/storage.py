"""Where the cached partitions of persisted RDDs are, and how much room they take.

`StorageStatus` listens to scheduler events and answers the storage page, the
executors page and `SparkContext.getRDDStorageInfo()`. An executor keeps a
cached partition in two forms:

- a serialized copy, a file in its local dir (every storage level: tasks of
  other Python workers, and later ones after an eviction, read it); a task
  reports its size when it writes it (`TaskEnd.blocks`, metric
  `storedBlockBytes`): the page's "Size on Disk";
- for the memory levels, the Python objects themselves, in the Python worker
  process that computed or read the partition, within that process's share of
  the executor's storage memory. A task reports what its process added to or
  evicted from memory since its last report, with the objects' estimated size
  (metric `memoryBlocks`: (rdd id, split, bytes), 0 for evicted), and which
  worker process it ran in (metric `pythonWorker`: (index, pid), once per
  process and with every change). A new pid in the same worker slot means the
  old process is gone, and with it what it held: "Size in Memory" counts only
  live processes' objects.

It only records; it never calls back into the scheduler.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from scheduler.core.events import (
    ExecutorRemoved,
    JobStart,
    ListenerBus,
    SchedulerEvent,
    TaskEnd,
    UnpersistRDD,
    touches_storage,
)
from scheduler.rdd.storagelevel import StorageLevel

__all__ = ["RDDInfo", "RDDStorage", "StorageStatus", "rdd_infos"]


@dataclasses.dataclass(frozen=True)
class RDDStorage:
    """What the executors hold of one persisted RDD (the storage page's row)."""

    id: int
    #: Spark's "[name ]Class[id]" of the RDD, from the job that first ran it.
    name: str
    num_partitions: int
    #: Partitions with a copy on some executor (serialized, in memory, or both).
    cached_partitions: int
    #: StorageLevel's description ("Memory Serialized 1x Replicated").
    storage_level: str
    #: Estimated bytes of the objects live Python workers hold (every copy counted).
    memory_bytes: int
    #: Bytes of the serialized copies in the executors' local dirs.
    disk_bytes: int
    executors: tuple[str, ...]
    #: Python worker processes holding some of its partitions as objects.
    workers: int
    #: Whether any executor reported a size (old event logs may not have).
    sized: bool
    callsite: str = ""


@dataclasses.dataclass(frozen=True)
class RDDInfo:
    """One entry of `SparkContext.getRDDStorageInfo()` (Spark's RDDInfo fields)."""

    id: int
    name: str
    numPartitions: int
    numCachedPartitions: int
    storageLevel: StorageLevel
    memSize: int
    diskSize: int
    callSite: str = ""

    @property
    def isCached(self) -> bool:
        """Spark's definition: some partition is cached and takes room somewhere."""
        return self.numCachedPartitions > 0 and self.memSize + self.diskSize > 0


#: Key of a Python worker process: (executor id, worker index).
_Worker = tuple[str, int]


class StorageStatus:
    """A scheduler listener: cached partitions, per executor and per Python worker."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: RDDs marked persisted when a job ran them: rdd id -> its lineage dict.
        self.persisted: dict[int, Mapping[str, Any]] = {}
        #: rdd id -> split -> executor -> bytes of its serialized copy (None: not reported).
        self._disk: dict[int, dict[int, dict[str, int | None]]] = {}
        #: rdd id -> split -> Python worker -> estimated bytes of the objects it holds.
        self._memory: dict[int, dict[int, dict[_Worker, int]]] = {}
        #: The pid of the process each worker slot runs now (as last reported).
        self._pids: dict[_Worker, int] = {}

    def listen(self, bus: ListenerBus) -> None:
        """Follow `bus` without JobStart's lineage (the caller knows its persisted RDDs)."""
        bus.add(
            self,
            kinds=(TaskEnd, ExecutorRemoved, UnpersistRDD),
            lineage=False,
            stored_task_ends=True,
        )

    def __call__(self, event: SchedulerEvent) -> None:
        if type(event) is TaskEnd:  # once per task, under the scheduler's lock: straight-line
            if touches_storage(event.blocks, event.metrics):
                with self.lock:
                    self._task_end(event)
            return
        match event:
            case JobStart():
                with self.lock:
                    for info in event.stages:
                        for rdd in info.get("rdds", ()):
                            if rdd.get("storage"):
                                self.persisted[int(rdd["id"])] = rdd
            case ExecutorRemoved():
                with self.lock:
                    self._executor_removed(event.executor_id)
            case UnpersistRDD():
                with self.lock:
                    self._disk.pop(event.rdd_id, None)
                    self._memory.pop(event.rdd_id, None)
                    self.persisted.pop(event.rdd_id, None)

    def _task_end(self, event: TaskEnd) -> None:
        executor_id = event.executor_id
        metrics = event.metrics
        sizes = metrics.get("storedBlockBytes") or ()
        for i, block in enumerate(event.blocks):
            size = int(sizes[i]) if i < len(sizes) else None
            holders = self._disk.setdefault(int(block[0]), {}).setdefault(int(block[1]), {})
            holders[executor_id] = size
        worker_of = metrics.get("pythonWorker")
        if worker_of is None:
            return
        worker = (executor_id, int(worker_of[0]))
        pid = int(worker_of[1])
        if self._pids.get(worker, pid) != pid:  # a new process: the old one's objects died
            self._drop_memory(lambda w: w == worker)
        self._pids[worker] = pid
        for rdd_id, split, size in metrics.get("memoryBlocks") or ():
            in_memory = self._memory.setdefault(int(rdd_id), {}).setdefault(int(split), {})
            if size:
                in_memory[worker] = int(size)
            else:
                in_memory.pop(worker, None)

    def _executor_removed(self, executor_id: str) -> None:
        for partitions in self._disk.values():
            for holders in partitions.values():
                holders.pop(executor_id, None)
        self._drop_memory(lambda w: w[0] == executor_id)
        for worker in [w for w in self._pids if w[0] == executor_id]:
            del self._pids[worker]

    def _drop_memory(self, gone: Callable[[_Worker], bool]) -> None:
        for partitions in self._memory.values():
            for holders in partitions.values():
                for worker in [w for w in holders if gone(w)]:
                    del holders[worker]

    # -- queries -------------------------------------------------------------------------

    def rdds(self) -> list[RDDStorage]:
        """Persisted RDDs with some partition cached, by id."""
        with self.lock:
            out = []
            for rdd_id in sorted(set(self._disk) | set(self._memory)):
                disk = {s: h for s, h in self._disk.get(rdd_id, {}).items() if h}
                memory = {s: h for s, h in self._memory.get(rdd_id, {}).items() if h}
                if not disk and not memory:
                    continue
                info = self.persisted.get(rdd_id, {})
                disk_sizes = [b for h in disk.values() for b in h.values()]
                executors = {e for h in disk.values() for e in h}
                executors.update(w[0] for h in memory.values() for w in h)
                cached = len(set(disk) | set(memory))
                out.append(
                    RDDStorage(
                        id=rdd_id,
                        name=str(info.get("name", f"RDD[{rdd_id}]")),
                        num_partitions=int(info.get("partitions", cached)),
                        cached_partitions=cached,
                        storage_level=str(info.get("storage", "")),
                        memory_bytes=sum(b for h in memory.values() for b in h.values()),
                        disk_bytes=sum(b for b in disk_sizes if b is not None),
                        executors=tuple(sorted(executors)),
                        workers=len({w for h in memory.values() for w in h}),
                        sized=bool(memory) or any(b is not None for b in disk_sizes),
                        callsite=str(info.get("callsite", "")),
                    )
                )
            return out

    def by_executor(self) -> dict[str, tuple[int, int, int]]:
        """Executor id -> (cached partitions, bytes in its workers' memory, bytes on disk)."""
        with self.lock:
            out: dict[str, list[int]] = {}
            for rdd_id in set(self._disk) | set(self._memory):
                disk = self._disk.get(rdd_id, {})
                memory = self._memory.get(rdd_id, {})
                for split in set(disk) | set(memory):
                    held = _executor_sizes(disk.get(split, {}), memory.get(split, {}))
                    for executor_id, (mem, on_disk) in held.items():
                        entry = out.setdefault(executor_id, [0, 0, 0])
                        entry[0] += 1
                        entry[1] += mem
                        entry[2] += on_disk
            return {e: (v[0], v[1], v[2]) for e, v in out.items()}

    def worker_memory(self) -> dict[tuple[str, int], int]:
        """(executor id, Python worker index) -> estimated bytes of objects it holds."""
        with self.lock:
            out: dict[tuple[str, int], int] = {}
            for partitions in self._memory.values():
                for holders in partitions.values():
                    for worker, size in holders.items():
                        out[worker] = out.get(worker, 0) + size
            return out


def _executor_sizes(
    disk: Mapping[str, int | None], memory: Mapping[_Worker, int]
) -> dict[str, tuple[int, int]]:
    """Executor -> (memory bytes, disk bytes) of one partition's copies."""
    out: dict[str, tuple[int, int]] = {e: (0, size or 0) for e, size in disk.items()}
    for (executor_id, _), size in memory.items():
        mem, on_disk = out.get(executor_id, (0, 0))
        out[executor_id] = (mem + size, on_disk)
    return out


def rdd_infos(rows: Iterable[RDDStorage], persisted: Mapping[int, Any]) -> list[RDDInfo]:
    """getRDDStorageInfo's answer: the cached RDDs among `persisted` (id -> RDD)."""
    infos = []
    for row in rows:
        rdd = persisted.get(row.id)
        if rdd is None:  # unpersisted meanwhile
            continue
        info = RDDInfo(
            id=row.id,
            name=repr(rdd),
            numPartitions=rdd.getNumPartitions(),
            numCachedPartitions=row.cached_partitions,
            storageLevel=rdd.getStorageLevel(),
            memSize=row.memory_bytes,
            diskSize=row.disk_bytes,
            callSite=rdd._creation_site or "",
        )
        if info.isCached:
            infos.append(info)
    return infos
