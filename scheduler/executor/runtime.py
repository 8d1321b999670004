"""The executor process: registers with its driver and runs tasks in Python workers.

It owns an RpcEnv with the "Executor" endpoint, listening on its block-manager
port so that other executors read its shuffle files directly (in client mode,
its files relayed by the driver, when it cannot listen), one Python worker
process per core (`scheduler.executor.pyworker`, reused; as many as the machine has CPUs start at
once, the others when tasks would wait; kept by memory limit once a stage of a
task-only profile needs workers of another limit), a local dir for shuffle files, cached
blocks and broadcasts (removed at exit), and a sender thread that batches
status updates. It exits when its driver goes away, when
the worker given by --worker-url goes away, or when told to stop. It never
unpickles user code itself: workers do.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import logging
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from scheduler.executor.workerlimits import (
    FAULTHANDLER_DIR_ENV,
    FAULTHANDLER_ENV,
    MEMORY_LIMIT_ENV,
    crash_reason,
)

__all__ = ["LOCAL_DIR_SOURCES", "local_root_dirs", "main", "make_local_dir"]

log = logging.getLogger("scheduler.executor")

_HEARTBEAT_SECONDS = 10.0
#: rpcenv.APP_CREDENTIAL_ENV_VAR, named here so that Python workers start before
#: anything imports gRPC.
_APP_CREDENTIAL_ENV = "SPARKCTL_APP_CREDENTIAL"
#: Statuses that may wait to share a message while the executor has queued work (the
#: driver keeps 64 tiny tasks a core queued here, so none of them waits for a launch).
#: Each message costs a wake-up on the driver and, for the refill, one here: 32 cut
#: W2's messages by a third and raised its rate ~10% over 16; 64 (with the driver's
#: queue of 64 a core) cut W2's CPU a task by a quarter again (94 -> 71 us, 6 pairs).
_STATUS_BATCH = 64
#: The longest such a status waits.
_STATUS_DELAY_SECONDS = 0.003
#: After the last status held back, the flusher keeps looking every _STATUS_DELAY_SECONDS
#: for this long before it sleeps until a status wakes it: waking it for each held status
#: (and again when its delay ends) cost two thread wake-ups per tiny job, ~30 us of CPU,
#: on the cores the job's own processes were using.
_FLUSHER_LINGER_SECONDS = 0.05
#: Tasks handed to one Python worker at once when tasks are tiny: the next one waits
#: in its pipe. Longer ones (and those of a task set that has not finished
#: _PROVEN_TASKS here yet) go to a worker only when it is free, so that a worker stuck
#: with a long task does not hold a second one that another worker could run.
_PREFETCH = 2
#: Tasks of a task set that must have finished here before its next ones may queue in a
#: busy worker's pipe. Each task set is judged by its own tasks: an average over earlier
#: jobs queued a long stage after tiny jobs (W3's maps after W1/W2) two to a worker, and
#: the other worker idled while a task waited in this one's pipe.
_PROVEN_TASKS = 4
#: Tasks running longer than this on average are handed over one at a time.
_PREFETCH_BELOW_SECONDS = 0.05
#: Tiny tasks (shorter than _TINY_SECONDS on average) go _PREFETCH_TINY to a worker, several
#: to a message, and the worker may hold up to _HOLD_REPLIES replies back to send them
#: together: each message wakes a thread or a process on the other side, which on a busy
#: machine costs more CPU than a tiny task's own work. 16 and 8 (against 8 and 4) halve
#: those messages and cut W2's CPU a task by ~8% (3 alternating runs each, load 9).
_PREFETCH_TINY = 16
_TINY_SECONDS = 0.005
_HOLD_REPLIES = 8
#: After a worker that may have held replies back died, this many tasks run with none
#: held, so that if one of them kills its worker again, the executor knows which.
_CAREFUL_TASKS = 2 * _PREFETCH_TINY
#: Share of the executor's memory its Python workers may fill with cached partitions
#: kept as objects (Spark's spark.memory.fraction 0.6 times spark.memory.storageFraction
#: 0.5); split evenly between the workers. SPARKCTL_MEMORY_FRACTION and
#: SPARKCTL_MEMORY_STORAGE_FRACTION (e.g. through spark.executorEnv.*) override them.
_MEMORY_FRACTION = 0.6
_STORAGE_FRACTION = 0.5
#: The longest a task waits for the busy worker that holds its cached partition in
#: memory before another worker reads the serialized copy (twice the average task time
#: here, within these bounds: process locality is worth a task's wait, not more).
_LOCALITY_WAIT_MIN = 0.005
_LOCALITY_WAIT_MAX = 0.1
#: Queued tasks one dispatch may pass over while they wait for their worker.
_LOCALITY_SCAN = 64
#: A finished task set's code up to this size is forgotten with a worker's next tasks.
_LAZY_FORGET_BYTES = 64 << 10
#: ... unless that many forget messages wait for one: then they go on their own.
_LAZY_FORGET_MAX = 64
#: Python workers an executor keeps, of all memory limits together, per task it may run
#: at once: idle workers of one stage's limit wait for its next stage (a lowered limit
#: cannot be raised, so another limit needs other processes); past this, the least
#: recently used idle worker of another limit makes room.
_WORKERS_PER_SLOT = 2


class _Slot:
    """One Python worker process and the task it runs."""

    def __init__(self, index: int, args: list[str], env: dict[str, str], limit_mb: int) -> None:
        self.index = index
        self._args = args
        self._env = env
        #: The worker's address-space limit in MiB (0: none): only tasks of task sets
        #: with that limit run here.
        self.limit_mb = limit_mb
        #: When a task was last given to it (for evicting idle workers of other limits).
        self.used = 0.0
        self.outstanding: collections.deque[tuple[int, str, int, int]] = collections.deque()
        #: Some outstanding task was sent with replies allowed to be held back: the one
        #: running may be any of the first _HOLD_REPLIES + 1, not only the head.
        self.may_hold = False
        #: Task messages of the current dispatch, sent together when it ends.
        self.sendbuf: list[tuple[Any, ...]] = []
        self.stages: set[str] = set()
        #: The (rdd id, split) blocks this worker process holds as objects in memory, and
        #: how many of them each split has: tasks of those partitions prefer this worker.
        self.cached: set[tuple[int, int]] = set()
        self.splits: collections.Counter[int] = collections.Counter()
        #: Estimated bytes of those objects (as the worker last reported).
        self.cache_bytes = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        #: Where our executor serves blocks: told to every worker process it starts.
        self.block_address = ""

    def start(self) -> None:
        parent, child = socket.socketpair()
        env = {**self._env, "SPARKCTL_WORKER_INDEX": str(self.index)}
        if self.limit_mb:
            env[MEMORY_LIMIT_ENV] = str(self.limit_mb)
        else:
            env.pop(MEMORY_LIMIT_ENV, None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scheduler.executor.pyworker", str(child.fileno()), *self._args],
            pass_fds=[child.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.stages = set()
        self.cached.clear()  # a new process holds nothing: its tasks read the disk copy
        self.splits.clear()
        self.cache_bytes = 0
        if self.block_address:
            self.tell_block_address(self.block_address)

    def tell_block_address(self, address: str) -> None:
        self.block_address = address
        if self.conn is not None:
            with contextlib.suppress(OSError):  # a dead worker: its reader restarts it
                self.conn.send_bytes(pickle.dumps(("block_address", address)))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        if self.conn is not None:
            self.conn.close()


#: A task's outcome as a Python worker reports it: ("done", task id, state, result,
#: accumulators, error, error type, fetch failure (shuffle, map index, holder, message)
#: or None, run seconds).
TaskReply = tuple[str, int, str, bytes, bytes, str, str, tuple[int, int, str, str] | None, float]
SendStatuses = Callable[[list[TaskReply]], None]
FetchRemote = Callable[[str, str, int, int, str], bytes]
BarrierRemote = Callable[[int, int, int, int, int, str, str], list[str]]


def _unconnected(*_args: object) -> NoReturn:
    """What the runtime's driver-facing seams do until the endpoint connects them."""
    raise RuntimeError("the executor is not connected to its driver")


class ExecutorRuntime:
    """Task queue, worker slots and status batching of one executor."""

    def __init__(
        self, executor_id: str, host: str, cores: int, local_dir: str, memory_mb: float
    ) -> None:
        self.executor_id = executor_id
        self.host = host
        self.local_dir = local_dir
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[int, str, int, int]] = collections.deque()
        #: When each queued task arrived (for the process-locality wait).
        self._queued_at: dict[int, float] = {}
        #: Split -> the worker that last cached a block of it in memory.
        self._holders: dict[int, _Slot] = {}
        #: When a dispatch retry is due for tasks waiting for their worker (0: none).
        self._retry_at = 0.0
        self._payloads: dict[str, bytes] = {}
        #: Task sets of barrier stages: each task needs an idle worker of its own.
        self._barrier_sets: set[str] = set()
        self._statuses: list[Any] = []
        self._status_lock = threading.Lock()
        self._sending = False
        self._status_pending = threading.Event()
        #: The flusher is looking every _STATUS_DELAY_SECONDS (no need to wake it), and
        #: when a status was last held back (both under the status lock).
        self._flusher_polling = False
        self._last_held = 0.0
        self._stopping = False
        #: Sends a batch of task replies to the driver (set by the endpoint, which owns
        #: the connection; a runtime without one fails the send, and logs it).
        self.on_statuses: SendStatuses = _unconnected
        #: (owner executor, path, offset, length, owner address) -> bytes: from the owner
        #: at its address, or through the driver when the address is "".
        self.fetch_remote: FetchRemote = _unconnected
        #: A barrier task's sync, asked of the driver: (stage, attempt, task, partition,
        #: epoch, method, message) -> the messages of the round.
        self.barrier_remote: BarrierRemote = _unconnected
        #: Task id -> (custom resource addresses, cpus) the driver gave it, until it is done.
        self._task_resources: dict[int, tuple[dict[str, list[str]], int]] = {}
        env = dict(os.environ)
        env.setdefault("PYTHONHASHSEED", "0")
        # Tasks read remote blocks through us, never over the RpcEnv: the application's
        # credential stays in this process (which hides its environment), out of theirs.
        env.pop(_APP_CREDENTIAL_ENV, None)
        args = [local_dir, executor_id, host, str(memory_mb)]
        # One Python worker per task that may run at once: a task takes spark.task.cpus cores.
        task_cpus = max(1, int(os.environ.get("SPARKCTL_TASK_CPUS") or "1"))
        self._max_slots = max(1, cores // task_cpus)
        self._cores = cores
        self._default_cpus = task_cpus
        #: Set once a stage profile's task asks other cpus than spark.task.cpus: from
        #: then on a task starts only on an idle worker and cores free (`_free_slot`).
        self._cpu_budget = False
        if not env.get("SPARKCTL_WORKER_CACHE_MB"):
            env["SPARKCTL_WORKER_CACHE_MB"] = f"{worker_cache_mb(env, self._max_slots):.1f}"
        self._fault_dir = _limit_workers(env, local_dir)
        self._worker_args = (args, env)
        #: This executor's Python workers' memory limit in MiB (0: none), from its driver.
        self._default_limit = _limit_of(env)
        #: Task set -> its workers' limit, for the task sets of a task-only profile whose
        #: limit is not the executor's (PySpark sizes those by the stage's task cpus).
        self._stage_limits: dict[str, int] = {}
        #: Set once a task set needs another limit: from then on each task goes to a
        #: worker of its task set's limit (`_pooled_slot`).
        self._pooled = False
        #: The slots, each with a worker process. As many as the machine has CPUs start
        #: at once (warm for the first tasks); the others when tasks would otherwise
        #: wait, so that local[1000] or --cores 64 on a small machine does not spawn
        #: hundreds of processes no task needs (PySpark starts its workers on demand too).
        self._slots: list[_Slot] = []
        self._cancelled: set[int] = set()
        #: Running average of task run times here (None until one finished): for the
        #: process-locality wait and for status batching, never for queueing in pipes.
        self._run_seconds: float | None = None
        #: Task set -> (its tasks finished here, their running average of run seconds).
        self._set_runs: dict[str, tuple[int, float]] = {}
        #: Task set -> tasks one worker may hold of it (absent: 1, none queued in a pipe).
        self._set_prefetch: dict[str, int] = {}
        #: Tasks still to run with no replies held back (after a worker died holding some).
        self._careful = 0
        for _ in range(min(self._max_slots, os.cpu_count() or 1)):
            self._add_slot()
        threading.Thread(target=self._flush_loop, name="status-flusher", daemon=True).start()

    # -- from the endpoint ----------------------------------------------------------------

    def set_block_address(self, address: str) -> None:
        """Our workers' map outputs name `address` ("host:port") as where to fetch them."""
        with self._lock:
            for slot in self._slots:
                slot.tell_block_address(address)

    def add_stage(self, key: str, data: bytes, barrier: bool = False, limit_mb: int = 0) -> None:
        """A task set's code; `limit_mb`: its Python workers' memory limit (0: ours)."""
        with self._lock:
            self._payloads[key] = data
            if barrier:
                self._barrier_sets.add(key)
            if limit_mb and limit_mb != self._default_limit:
                self._stage_limits[key] = limit_mb
                self._pooled = True
                # Workers of several limits: a task starts only on an idle one, while
                # the running tasks' cpus leave it cores (as for stage profile cpus).
                self._cpu_budget = True

    def set_task_resources(self, task_id: int, resources: dict[str, list[str]], cpus: int) -> None:
        """What a task about to be launched holds (its TaskContext.resources() and cpus())."""
        with self._lock:
            self._task_resources[task_id] = (resources, cpus)
            if cpus and cpus != self._default_cpus:
                self._cpu_budget = True
                # Fewer cpus a task: more tasks at once, each in a worker of its own.
                self._max_slots = max(self._max_slots, self._cores // cpus)

    def launch(self, tasks: list[tuple[int, str, int, int]]) -> None:
        with self._lock:
            self._queue.extend(tasks)
            if self._holders:
                now = time.monotonic()
                for task in tasks:
                    self._queued_at[task[0]] = now
            self._dispatch()

    def cached_in_memory(self) -> dict[int, tuple[int, int]]:
        """Worker index -> (blocks, estimated bytes) it holds as objects."""
        with self._lock:
            return {s.index: (len(s.cached), s.cache_bytes) for s in self._slots if s.cached}

    def kill(self, task_ids: set[int], reason: str) -> None:
        dropped: list[int] = []
        with self._lock:
            dropped = [t[0] for t in self._queue if t[0] in task_ids]
            self._queue = collections.deque(t for t in self._queue if t[0] not in task_ids)
            for task_id in dropped:
                self._queued_at.pop(task_id, None)
            for slot in self._slots:
                if not slot.outstanding:
                    continue
                tasks = list(slot.outstanding)
                # The task running is the head, or any of the first few when the worker may
                # be holding the replies of finished tiny tasks back.
                reach = _HOLD_REPLIES + 1 if slot.may_hold else 1
                if not any(task[0] in task_ids for task in tasks[:reach]):
                    for task in tasks[1:]:
                        if task[0] in task_ids:
                            # Already in the worker's pipe: let it run, forget its reply.
                            self._cancelled.add(task[0])
                            dropped.append(task[0])
                    continue
                dropped += [task[0] for task in tasks if task[0] in task_ids]
                self._queue.extendleft(
                    reversed(
                        [t for t in tasks if t[0] not in task_ids and t[0] not in self._cancelled]
                    )
                )
                slot.outstanding.clear()
                slot.may_hold = False
                slot.kill()  # its old reader sees EOF and leaves: the new one takes over
                slot.start()
                self._drop_holder(slot)
                self._start_reader(slot)
            self._dispatch()
        for task_id in dropped:
            self._report(("done", task_id, "KILLED", b"", b"", reason, "", None, 0.0))

    def forget(self, tasksets: list[str], rdd_ids: list[int], broadcast_ids: list[int]) -> None:
        """Tell every worker to drop finished task sets' code, RDD blocks, broadcasts.

        Finished task sets whose code is small ride along with each worker's next
        tasks instead: a message of their own woke every worker once per job, for
        nothing it had to do now (large code is dropped at once, to free the memory).
        """
        with self._lock:
            small = not rdd_ids and not broadcast_ids
            for key in tasksets:
                payload = self._payloads.pop(key, None)
                small = small and (payload is None or len(payload) <= _LAZY_FORGET_BYTES)
                self._barrier_sets.discard(key)
                self._stage_limits.pop(key, None)
                self._set_runs.pop(key, None)
                self._set_prefetch.pop(key, None)
            entry = ("forget", tasksets, rdd_ids, broadcast_ids)
            message = None if small else pickle.dumps(entry)
            forgotten = set(rdd_ids)
            for slot in self._slots:
                slot.stages.difference_update(tasksets)
                if forgotten and slot.cached:
                    self._note_cached(slot, [], [k for k in slot.cached if k[0] in forgotten])
                if message is None:
                    slot.sendbuf.append(entry)  # sent by the next _dispatch with tasks
                elif slot.conn is not None:
                    with contextlib.suppress(OSError):
                        slot.conn.send_bytes(message)

    def stop(self) -> None:
        self._stopping = True
        self._status_pending.set()
        for slot in self._slots:
            slot.kill()

    # -- internals --------------------------------------------------------------------------

    def _add_slot(self, limit_mb: int | None = None) -> _Slot:
        """One more worker, of `limit_mb` (None: the executor's limit) (lock held)."""
        limit = self._default_limit if limit_mb is None else limit_mb
        slot = _Slot(len(self._slots), *self._worker_args, limit)
        if self._slots:
            slot.block_address = self._slots[0].block_address
        slot.start()
        self._slots.append(slot)
        self._start_reader(slot)
        return slot

    def _dispatch(self) -> None:
        """Hand queued tasks to workers, idle ones first, then queued behind one (lock held).

        A task whose partition a worker process holds in memory (cached as objects) goes
        to that worker; while that worker is busy the task waits for it up to the
        locality wait, then any worker runs it from the serialized copy. The tasks one
        worker gets in one dispatch travel in one message.
        """
        if self._holders:
            self._dispatch_local()
        else:
            while self._queue:
                head = self._queue[0]
                slot = self._free_slot(head[1] in self._barrier_sets, head[0], head[1])
                if slot is None:
                    break
                self._send(slot, self._queue.popleft())
        # Every worker's message is pickled before the first is written: a write wakes
        # its worker, which on a busy machine may take this thread's core, and the next
        # worker's tasks then waited for that core (a tiny job's second task started
        # a task's length after its first).
        ready: list[tuple[Connection, bytes]] = []
        for slot in self._slots:
            # Forgotten task sets alone wait for a task to ride with (see `forget`).
            buf = slot.sendbuf
            if buf and (buf[-1][0] != "forget" or len(buf) >= _LAZY_FORGET_MAX):
                messages, slot.sendbuf = buf, []
                assert slot.conn is not None
                message = messages[0] if len(messages) == 1 else ("tasks", messages)
                ready.append((slot.conn, pickle.dumps(message, 5)))
        for conn, data in ready:
            # On OSError the reader notices the dead worker and requeues or reports them.
            with contextlib.suppress(OSError):
                conn.send_bytes(data)

    def _free_slot(self, idle: bool = False, task_id: int = -1, key: str = "") -> _Slot | None:
        """The least busy worker that may take one more task now, if any (lock held).

        `idle`: only a worker with nothing queued (a barrier task must start at once).
        Once tasks ask different cpus (`_cpu_budget`), task `task_id` starts only on an
        idle worker and only while the running tasks' cpus leave it enough cores.
        Once task sets need other memory limits (`_pooled`), a task of task set `key`
        runs only on a worker of its limit.
        """
        if self._pooled:
            found = self._pooled_slot(key)
            if found is None:
                return None
            slot = found
        else:
            slot = min(self._slots, key=lambda sl: len(sl.outstanding))
            if slot.outstanding and len(self._slots) < self._max_slots:
                slot = self._add_slot()  # every worker is busy: one more
        limit = 1 if idle else self._set_prefetch.get(key, 1)
        if len(slot.outstanding) >= limit or slot.conn is None:
            return None
        if self._cpu_budget:
            if slot.outstanding:
                return None
            busy = sum(self._cpus_of(s.outstanding[0][0]) for s in self._slots if s.outstanding)
            if busy and busy + self._cpus_of(task_id) > self._cores:
                return None
        return slot

    def _pooled_slot(self, key: str) -> _Slot | None:
        """The least busy worker of task set `key`'s memory limit, made if needed (lock held).

        A new one starts while the executor has fewer than _WORKERS_PER_SLOT workers
        a task it may run at once; past that, an idle worker of another limit is
        replaced by one of this limit: of a limit no live task set has first, then
        one holding no cached partition, then the least recently used. None when the
        limit has no worker and none can be made now.
        """
        limit = self._stage_limits.get(key, self._default_limit)
        pool = [s for s in self._slots if s.limit_mb == limit]
        slot = min(pool, key=lambda sl: len(sl.outstanding)) if pool else None
        if (slot is None or slot.outstanding) and len(pool) < self._max_slots:
            if len(self._slots) < _WORKERS_PER_SLOT * self._max_slots:
                slot = self._add_slot(limit)
            else:
                spare = [s for s in self._slots if s.limit_mb != limit and not s.outstanding]
                if spare:
                    live = {self._stage_limits.get(k, self._default_limit) for k in self._payloads}
                    slot = min(
                        spare, key=lambda sl: (sl.limit_mb in live, bool(sl.cached), sl.used)
                    )
                    self._replace_worker(slot, limit)
        if slot is not None:
            slot.used = time.monotonic()
        return slot

    def _replace_worker(self, slot: _Slot, limit_mb: int) -> None:
        """Restart idle worker `slot` as one of `limit_mb` (lock held).

        Its cached partitions go with its process: their tasks read the disk copy.
        """
        slot.kill()  # its reader sees EOF and leaves: the new one takes over
        slot.limit_mb = limit_mb
        slot.sendbuf = []  # forgotten task sets: the new process never knew them
        slot.start()
        self._drop_holder(slot)
        self._start_reader(slot)

    def _cpus_of(self, task_id: int) -> int:
        """The cores a task takes: its stage profile's cpus, else spark.task.cpus."""
        extras = self._task_resources.get(task_id)
        return (extras[1] if extras is not None else 0) or self._default_cpus

    def _holder_of(self, split: int) -> _Slot | None:
        """The worker holding a memory-cached block of `split`, if one still does."""
        slot = self._holders.get(split)
        if slot is not None and not slot.splits.get(split):
            del self._holders[split]
            return None
        return slot

    def _drop_holder(self, slot: _Slot) -> None:
        """A restarted worker holds nothing in memory: its partitions go anywhere (lock held)."""
        for split in [p for p, s in self._holders.items() if s is slot]:
            del self._holders[split]

    def _dispatch_local(self) -> None:
        """`_dispatch` with process locality (lock held).

        Tasks waiting for their busy worker stay at the head of the queue, in order; the
        scan stops at the first task no worker can take, or after _LOCALITY_SCAN waiting
        ones, so a long queue costs no more per dispatch than a short one.
        """
        now = time.monotonic()
        wait = self._locality_wait()
        retry_at = 0.0
        kept: list[tuple[int, str, int, int]] = []
        while self._queue and len(kept) < _LOCALITY_SCAN:
            task = self._queue.popleft()
            barrier = task[1] in self._barrier_sets
            holder = None if barrier else self._holder_of(task[2])
            if (
                holder is not None
                and self._pooled
                and holder.limit_mb != self._stage_limits.get(task[1], self._default_limit)
            ):
                holder = None  # its process has another memory limit than the task's
            if holder is not None and holder.conn is not None:
                if len(holder.outstanding) < self._set_prefetch.get(task[1], 1):
                    self._send(holder, task)
                    continue
                due = self._queued_at.setdefault(task[0], now) + wait
                if now < due:
                    kept.append(task)  # its worker may free up soon: wait for it
                    retry_at = min(retry_at, due) if retry_at else due
                    continue
            slot = self._free_slot(barrier, task[0], task[1])
            if slot is None:
                kept.append(task)
                break
            self._send(slot, task)
        self._queue.extendleft(reversed(kept))
        if retry_at and (not self._retry_at or retry_at < self._retry_at):
            self._retry_at = retry_at
            timer = threading.Timer(retry_at - now, self._retry_dispatch)
            timer.daemon = True
            timer.start()

    def _retry_dispatch(self) -> None:
        """The locality wait of a waiting task ran out: let any worker take it."""
        with self._lock:
            self._retry_at = 0.0
            if not self._stopping:
                self._dispatch()

    def _locality_wait(self) -> float:
        average = self._run_seconds
        if average is None:
            return _LOCALITY_WAIT_MAX
        return min(_LOCALITY_WAIT_MAX, max(_LOCALITY_WAIT_MIN, 2 * average))

    def _send(self, slot: _Slot, task: tuple[int, str, int, int]) -> None:
        """Queue one task for a worker, with its stage's code the first time (lock held).

        `_dispatch` sends what it queued for each worker when it ends.
        """
        task_id, key, partition, attempt = task
        self._queued_at.pop(task_id, None)
        payload = None
        if key not in slot.stages:
            payload = self._payloads.get(key)
            if payload is None:
                reason = f"no code for task set {key}"
                self._report(("done", task_id, "FAILED", b"", b"", reason, "", None, 0.0))
                return
            slot.stages.add(key)
        slot.outstanding.append(task)
        hold = 0
        tiny = self._set_prefetch.get(key, 1) > _PREFETCH
        if tiny and not self._careful and key not in self._barrier_sets:
            hold = _HOLD_REPLIES
            slot.may_hold = True
        extras = self._task_resources.get(task_id)
        slot.sendbuf.append(("task", task_id, key, partition, attempt, payload, extras, hold))

    def _note_cached(
        self,
        slot: _Slot,
        added: list[tuple[int, int]],
        evicted: list[tuple[int, int]],
        held_bytes: int | None = None,
    ) -> None:
        """A worker cached or dropped blocks in memory: where their partitions go (lock held)."""
        for key in added:
            key = (key[0], key[1])
            if key not in slot.cached:
                slot.cached.add(key)
                slot.splits[key[1]] += 1
            self._holders[key[1]] = slot
        for key in evicted:
            key = (key[0], key[1])
            if key in slot.cached:
                slot.cached.discard(key)
                slot.splits[key[1]] -= 1
                if slot.splits[key[1]] <= 0:
                    del slot.splits[key[1]]
                    if self._holders.get(key[1]) is slot:
                        del self._holders[key[1]]
        if held_bytes is not None:
            slot.cache_bytes = held_bytes
        elif not slot.cached:
            slot.cache_bytes = 0

    def _note_run_time(self, seconds: float, key: str | None) -> None:
        """Track how long task set `key`'s tasks run here, to pick how many a worker holds.

        Only a task set's own tasks count, and only once _PROVEN_TASKS of them finished
        may its next ones queue in a busy worker's pipe (lock held).
        """
        average = self._run_seconds
        self._run_seconds = seconds if average is None else average + 0.2 * (seconds - average)
        if key is not None:
            runs = self._set_runs.get(key)
            if runs is None:
                count, average = 1, seconds
            else:
                count, average = runs[0] + 1, runs[1] + 0.2 * (seconds - runs[1])
            self._set_runs[key] = (count, average)
            if count < _PROVEN_TASKS or average >= _PREFETCH_BELOW_SECONDS:
                self._set_prefetch.pop(key, None)
            else:
                self._set_prefetch[key] = _PREFETCH_TINY if average < _TINY_SECONDS else _PREFETCH
        if self._careful:
            self._careful -= 1

    def _start_reader(self, slot: _Slot) -> None:
        threading.Thread(
            target=self._read_loop, args=(slot,), name=f"worker-{slot.index}", daemon=True
        ).start()

    def _read_loop(self, slot: _Slot) -> None:
        conn = slot.conn
        proc = slot.proc
        assert conn is not None and proc is not None
        while True:
            try:
                reply = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            # A worker sends the replies of tiny tasks several to a message ("batch"),
            # and held replies travel in front of a fetch or barrier request it makes.
            replies = reply[1] if reply[0] == "batch" else (reply,)
            requests = [r for r in replies if r[0] in ("fetch", "barrier")]
            if requests:
                replies = [r for r in replies if r[0] not in ("fetch", "barrier")]
            done: list[tuple[Any, ...]] = []
            with self._lock:
                if slot.conn is not conn:
                    break  # killed and restarted meanwhile
                for reply in replies:
                    if reply[0] == "cached":
                        self._note_cached(slot, reply[1], reply[2], reply[3])
                        continue
                    task_id = reply[1]
                    if slot.outstanding and slot.outstanding[0][0] == task_id:
                        self._note_run_time(reply[8], slot.outstanding.popleft()[1])
                        if not slot.outstanding:
                            slot.may_hold = False
                    else:
                        self._note_run_time(reply[8], None)
                    if task_id in self._cancelled:
                        self._cancelled.discard(task_id)
                        continue
                    done.append(reply)
                self._dispatch()
            self._report(*done)
            for request in requests:
                serve = self._serve_fetch if request[0] == "fetch" else self._serve_barrier
                threading.Thread(
                    target=serve, args=(conn, request), name=request[0], daemon=True
                ).start()
        if self._stopping:
            return
        code = proc.wait()
        with self._lock:
            if slot.conn is not conn:
                return  # kill() restarted it already
            lost = None
            if slot.may_hold and slot.outstanding:
                # It may have finished the head and held its reply back: which task it died
                # running is unknown. All run again, replying one by one, so that if one
                # kills its worker again, that one is named.
                self._careful = _CAREFUL_TASKS
            elif slot.outstanding:
                lost = slot.outstanding.popleft()[0]
            slot.may_hold = False
            for task in reversed(slot.outstanding):
                if task[0] not in self._cancelled:
                    self._queue.appendleft(task)
            slot.outstanding.clear()
            slot.kill()
            slot.start()
            self._drop_holder(slot)
            self._start_reader(slot)
            self._dispatch()
        if lost is not None and lost not in self._cancelled:
            reason = crash_reason(code, self._fault_dir, proc.pid)
            self._report(("done", lost, "FAILED", b"", b"", reason, "WorkerCrashed", None, 0.0))

    def _serve_fetch(self, conn: Connection, request: tuple[Any, ...]) -> None:
        _, request_id, owner, path, offset, length, address = request
        try:
            data, error = self.fetch_remote(owner, path, offset, length, address), ""
        except Exception as exc:
            data, error = b"", f"{type(exc).__name__}: {exc}"
        with self._lock, contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(("fetched", request_id, data, error), 5))

    def _serve_barrier(self, conn: Connection, request: tuple[Any, ...]) -> None:
        """A barrier task's barrier()/allGather()/getTaskInfos(): ask the driver, answer."""
        _, request_id, stage_id, stage_attempt, task_id, partition, epoch, method, text = request
        try:
            messages, error = (
                self.barrier_remote(
                    stage_id, stage_attempt, task_id, partition, epoch, method, text
                ),
                "",
            )
        except Exception as exc:
            messages, error = [], str(exc) or type(exc).__name__
        with self._lock, contextlib.suppress(OSError):
            conn.send_bytes(pickle.dumps(("synced", request_id, messages, error), 5))

    def _flush_loop(self) -> None:
        """Send held-back statuses within _STATUS_DELAY_SECONDS of being held.

        Woken by the first held status, it then looks every _STATUS_DELAY_SECONDS while
        statuses keep being held, and goes back to sleep _FLUSHER_LINGER_SECONDS after
        the last one.
        """
        while not self._stopping:
            self._status_pending.wait()
            self._status_pending.clear()
            while not self._stopping:
                time.sleep(_STATUS_DELAY_SECONDS)
                with self._status_lock:
                    send = bool(self._statuses) and not self._sending
                    if send:
                        self._sending = True
                    elif time.monotonic() - self._last_held > _FLUSHER_LINGER_SECONDS:
                        self._flusher_polling = False
                        break
                if send:
                    self._flush_statuses()

    def _hold_statuses(self) -> None:
        """Leave the queued statuses to the flusher, waking it if it sleeps (status lock held)."""
        self._last_held = time.monotonic()
        if not self._flusher_polling:
            self._flusher_polling = True
            self._status_pending.set()

    def _report(self, *replies: tuple[Any, ...]) -> None:
        """Queue statuses; the first thread to find nobody sending sends the whole batch.

        Sending from the reporting thread itself (instead of waking a sender thread)
        saves a thread hand-off per batch; replies that arrive meanwhile ride along.
        """
        if not replies:
            return
        if self._task_resources:
            for reply in replies:
                if reply[0] == "done":
                    self._task_resources.pop(reply[1], None)
        with self._status_lock:
            self._statuses.extend(replies)
            if self._sending:
                return
            if self._can_wait():
                # Plenty of queued work: this status frees no urgent slot, so let a few
                # share one message (the flusher sends them within a few milliseconds).
                self._hold_statuses()
                return
            self._sending = True
        self._flush_statuses()

    def _flush_statuses(self) -> None:
        """Send queued statuses until none are left (the caller set `_sending`)."""
        while True:
            with self._status_lock:
                batch, self._statuses = self._statuses, []
                if not batch or self._stopping:
                    self._sending = False
                    return
            try:
                self.on_statuses(batch)
            except Exception:
                log.exception("could not send %d status updates", len(batch))
            with self._status_lock:
                if self._statuses and self._can_wait():
                    self._sending = False
                    self._hold_statuses()
                    return

    def _can_wait(self) -> bool:
        """Whether queued statuses may wait for company (status lock held).

        They may while plenty of work is queued here, and while the last few tiny tasks
        (one a worker at most) are still running: a small job's tasks end together and
        its job waits for the last of them, so their statuses share one message (each
        message costs a gRPC write here and a read and a hand-off on the driver).
        """
        if len(self._statuses) >= _STATUS_BATCH:
            return False
        queued = len(self._queue)
        if queued >= len(self._slots):
            return True
        if queued or self._run_seconds is None or self._run_seconds >= _TINY_SECONDS:
            return False
        running = sum(len(slot.outstanding) for slot in self._slots)  # a racy read: a hint
        return 0 < running <= len(self._slots)


def _limit_workers(env: dict[str, str], local_dir: str) -> str:
    """Put the driver's worker limits into the workers' `env`; the faulthandler dir or "".

    Each worker's memory limit comes from the driver as is (PySpark divides
    `spark.executor.pyspark.memory` by `spark.executor.cores`, not by the workers
    an executor runs); the faulthandler files go to a directory in the
    executor's local dir.
    """
    if env.pop(FAULTHANDLER_ENV, "") != "1":
        env.pop(FAULTHANDLER_DIR_ENV, None)
        return ""
    fault_dir = os.path.join(local_dir, "faulthandler")
    os.makedirs(fault_dir, exist_ok=True)
    env[FAULTHANDLER_DIR_ENV] = fault_dir
    return fault_dir


def _limit_of(env: Mapping[str, str]) -> int:
    """The memory limit in MiB the driver gave this executor's Python workers (0: none)."""
    try:
        return max(0, int(env.get(MEMORY_LIMIT_ENV) or 0))
    except ValueError:
        return 0  # the worker ignores it too (`pyworker._apply_limits`)


def worker_cache_mb(environ: Mapping[str, str], workers: int) -> float:
    """Each Python worker's share of the executor's storage memory, in MiB.

    The executor's memory is SPARK_EXECUTOR_MEMORY (set by the Worker that started it;
    1g when absent, as spark.executor.memory's default), times the memory and storage
    fractions.
    """
    memory_mb = 1024.0
    text = (environ.get("SPARK_EXECUTOR_MEMORY") or "").strip().lower()
    units = {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024}
    with contextlib.suppress(ValueError):
        if text and text[-1] in units:
            memory_mb = float(text[:-1]) * units[text[-1]]
        elif text:
            memory_mb = float(text) / (1 << 20)  # plain bytes
    fractions = []
    for name, default in (
        ("SPARKCTL_MEMORY_FRACTION", _MEMORY_FRACTION),
        ("SPARKCTL_MEMORY_STORAGE_FRACTION", _STORAGE_FRACTION),
    ):
        try:
            value = float(environ.get(name) or default)
        except ValueError:
            value = default
        fractions.append(min(1.0, max(0.0, value)))
    return memory_mb * fractions[0] * fractions[1] / max(1, workers)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scheduler.executor")
    parser.add_argument("--driver-url", required=True)
    parser.add_argument("--executor-id", required=True)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--worker-url", default=None)
    parser.add_argument("--memory-mb", type=float, default=0)
    args = parser.parse_args(argv)
    if args.cores < 1:
        parser.error(f"--cores must be >= 1, got {args.cores}")
    return args


#: Where an executor's local dirs come from, strongest first (Spark's order: the
#: Worker's dirs win over the application's spark.local.dir).
LOCAL_DIR_SOURCES = (
    ("SPARK_EXECUTOR_DIRS", "the worker's SPARK_LOCAL_DIRS or spark.local.dir"),
    ("SPARK_LOCAL_DIRS", "SPARK_LOCAL_DIRS"),
    ("SPARKCTL_LOCAL_DIR", "the application's spark.local.dir"),
)


def local_root_dirs(environ: Mapping[str, str]) -> tuple[list[str], str]:
    """The candidate roots of the executor's local dir and the setting they came from.

    Empty when nothing is set: the executor then uses its Worker's work dir (its cwd)
    or, under local[N], the system's temp dir.
    """
    for name, source in LOCAL_DIR_SOURCES:
        dirs = [d.strip() for d in (environ.get(name) or "").split(",") if d.strip()]
        if dirs:
            return dirs, source
    return [], ""


def make_local_dir(roots: list[str], source: str, prefix: str, start: int = 0) -> str:
    """A fresh local dir under the first usable root, trying them from `start` (round robin).

    Raises:
        OSError: no root can hold it; the message names every root and the setting.
    """
    if not roots:
        return tempfile.mkdtemp(prefix=prefix)
    errors = []
    for i in range(len(roots)):
        root = roots[(start + i) % len(roots)]
        try:
            os.makedirs(root, exist_ok=True)
            return tempfile.mkdtemp(prefix=prefix, dir=root)
        except OSError as exc:
            errors.append(f"{root}: {exc.strerror or exc}")
    raise OSError(f"no usable local dir among {source} ({'; '.join(errors)})")


def main(argv: list[str] | None = None) -> int:
    """Run an executor until its driver or worker goes away; 1 when it failed to start."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    roots, source = local_root_dirs(os.environ)
    if not roots and args.worker_url:
        # A Worker started us in this app's work dir: when the app ends it removes our
        # local dir (found by `prefix`), so a crashed executor's shuffle files go, and
        # keeps our stdout and stderr until spark.worker.cleanup.appDataTtl.
        roots, source = [os.getcwd()], "the worker's work dir"
    start = int(args.executor_id) if args.executor_id.isdigit() else 0
    prefix = f"executor-{args.app_id}-{args.executor_id}-"
    try:
        local_dir = make_local_dir(roots, source, prefix, start)
    except OSError as exc:
        print(f"executor {args.executor_id} failed: {exc}", file=sys.stderr, flush=True)
        return 1
    worker_memory = float(os.environ.get("SPARKCTL_PYTHON_WORKER_MEMORY_MB", "512"))
    # Workers start first (in parallel with our gRPC import) so startup stays short.
    runtime = ExecutorRuntime(args.executor_id, args.hostname, args.cores, local_dir, worker_memory)
    done = threading.Event()
    errors: list[str] = []

    def fail(reason: str) -> None:
        if not errors:
            errors.append(reason)
        done.set()

    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        from scheduler.executor.endpoint import run_endpoint

        run_endpoint(args, runtime, done, fail)
        done.wait()
    finally:
        runtime.stop()
        shutil.rmtree(local_dir, ignore_errors=True)
    if errors:
        # The last line of stderr: the Worker reports it as the reason of the failure.
        print(f"executor {args.executor_id} failed: {errors[0]}", file=sys.stderr, flush=True)
        return 1
    return 0


def heartbeat_interval() -> float:
    """Seconds between heartbeats (spark.executor.heartbeatInterval, passed by the driver)."""
    try:
        return float(os.environ.get("SPARKCTL_EXECUTOR_HEARTBEAT_INTERVAL", _HEARTBEAT_SECONDS))
    except ValueError:
        return _HEARTBEAT_SECONDS
