"""The Python worker: a process of its own that runs one task at a time.

An executor starts one worker per core (spawned once, reused for every task,
like PySpark's python workers) so CPU-bound tasks run truly in parallel. It
talks to its executor over one inherited socket with framed pickles: the
executor sends ("task", ...) with the stage's code the first time a worker
sees that stage; the worker answers ("done", ...). The worker never opens a
network connection; shuffle outputs and cached blocks are files in the
executor's local dir, and map outputs on other hosts are fetched by the executor
(from their owner's block-manager port, or through the driver).

Run as: python -m scheduler.executor.pyworker FD LOCAL_DIR EXECUTOR_ID HOST MEMORY_MB
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import pickle
import select
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

from scheduler.executor.filefetch import prepare_task_files
from scheduler.executor.workerlimits import (
    FAULTHANDLER_DIR_ENV,
    MEMORY_LIMIT_ENV,
    apply_memory_limit,
    enable_faulthandler,
    version_mismatch,
)
from scheduler.rdd.stagespec import TaskSetSpec
from scheduler.shuffle import aggregation as _aggregation
from scheduler.shuffle.files import (
    READ_STATS,
    FetchFailedError,
    read_shuffle_block,
    shuffle_file,
    write_shuffle_output,
)
from scheduler.shuffle.mapoutput import MapOutput
from scheduler.shuffle.rangesort import RangeSort, write_sorted_run
from scheduler.task import accumulators as _accumulators
from scheduler.task import broadcast as _broadcast
from scheduler.task.stagecode import StageCode, read_stage_header
from scheduler.task.taskcontext import BarrierTaskContext, TaskContext, mark_python_worker

__all__ = ["WorkerRuntime", "estimate_size", "main"]

#: Bytes of cached partitions a worker keeps deserialized in memory (an estimate of the
#: objects' size): its share of the executor's storage memory, which the executor passes.
_CACHE_BUDGET = int(float(os.environ.get("SPARKCTL_WORKER_CACHE_MB") or 256) * (1 << 20))

#: This process's index among its executor's Python workers (a restart keeps the index).
_WORKER_INDEX = int(os.environ.get("SPARKCTL_WORKER_INDEX") or 0)

#: The cyclic collector's thresholds while a task runs. With the defaults (700, 10, 10)
#: a task that builds a large structure (a groupByKey's lists, a sort's records) has
#: every surviving container traversed again and again by young and middle collections:
#: a quarter to a third of such a task's CPU. Here young collections still run (every
#: 50,000 new containers, so cyclic garbage stays bounded) but survivors are not
#: re-traversed until the task ends and the defaults come back.
_TASK_GC_THRESHOLDS = (50_000, 1000, 1000)

#: Cores each task may use (spark.task.cpus; TaskContext.cpus()).
_TASK_CPUS = max(1, int(os.environ.get("SPARKCTL_TASK_CPUS") or "1"))


_dumps = _aggregation.dumps_records

#: A task that ran shorter than this may have its reply held back (see WorkerRuntime.reply).
_TINY_TASK_SECONDS = 0.005
#: The longest a held reply waits for company (the flusher thread sends it then, even
#: while the next task still runs).
_HOLD_SECONDS = 0.005


class WorkerRuntime:
    """What tasks in this worker reach through `TaskContext._runtime`."""

    def __init__(self, local_dir: str, executor_id: str, host: str, memory_mb: float) -> None:
        self.local_dir = local_dir
        self.executor_id = executor_id
        self.host = host
        self.memory_mb = memory_mb
        self.map_outputs: dict[int, list[MapOutput | None]] = {}
        self.stored_blocks: list[tuple[int, int]] = []
        #: Bytes of each of `stored_blocks` on disk (the UI's Storage sizes).
        self.stored_bytes: list[int] = []
        self._cache: collections.OrderedDict[tuple[int, int], tuple[list[Any], int]] = (
            collections.OrderedDict()
        )
        self._cache_bytes = 0
        #: Memory-cached blocks added and evicted since the executor last heard: it routes
        #: later tasks of a partition to the worker holding it (process locality).
        self.cache_added: list[tuple[int, int]] = []
        self.cache_evicted: list[tuple[int, int]] = []
        #: Blocks added to or evicted from memory since the driver last heard (its storage
        #: page counts their size), and whether it has heard which process this is.
        self._memory_changed: dict[tuple[int, int], None] = {}
        self._identified = False
        #: The pipe to our executor (None outside an executor, e.g. in tests).
        self.conn: Connection | None = None
        #: Messages not handled yet: tasks the executor sent several to a message, and
        #: messages that arrived while a task waited for fetched bytes.
        self.inbox: collections.deque[Any] = collections.deque()
        #: Replies held back to travel together (see `reply`), and when the first was.
        self.held: list[tuple[Any, ...]] = []
        self._held_since = 0.0
        #: Guards `held` and every write to `conn`: the flusher thread writes too.
        self._write_lock = threading.Lock()
        #: Wakes the flusher when replies are held while it sleeps without a deadline.
        self._held_cond = threading.Condition(self._write_lock)
        #: The flusher (started with the first held reply) and whether it sleeps with no
        #: deadline, i.e. needs a wake-up to learn that replies are held.
        self._flusher: threading.Thread | None = None
        self._flusher_idle = False
        self._poller: select.poll | None = None
        self._requests = 0
        #: Fetch every map output through the executor, even local ones (for tests).
        self.force_remote = os.environ.get("SPARKCTL_FORCE_REMOTE_FETCH") == "1"
        #: "host:port" where our executor serves blocks ("" if it serves none): our map
        #: outputs carry it so that reducers elsewhere ask our executor directly.
        self.block_address = ""

    def read_shuffle(
        self,
        shuffle_id: int,
        reduce_id: int,
        ranges: RangeSort | None = None,
        maps: tuple[int, int] | None = None,
    ) -> Iterator[Any]:
        """Reduce partition `reduce_id` of a shuffle; with `maps`, of map tasks first..end-1."""
        outputs = self.map_outputs.get(shuffle_id)
        if outputs is None:
            raise FetchFailedError(shuffle_id, 0, "", "no map output locations were shipped")
        return read_shuffle_block(
            shuffle_id, reduce_id, outputs, self._is_local, self._fetch, ranges, maps
        )

    def _is_local(self, out: MapOutput) -> bool:
        """Same host and the file is there: read it directly from disk."""
        if self.force_remote or self.conn is None:
            return self.conn is None
        return out.host == self.host and os.path.exists(out.path)

    def _fetch(self, out: MapOutput, path: str, offset: int, length: int) -> bytes:
        """Ask our executor to fetch a byte range of another executor's file.

        The executor asks the owner at `out.address`, or the driver when it has none.
        """
        return self.fetch_bytes(out.executor_id, path, offset, length, out.address)

    def send(self, *messages: tuple[Any, ...]) -> None:
        """Send `messages` to our executor, after any replies held back, in one write."""
        assert self.conn is not None
        if not messages and not self.held:  # only the flusher touches `held` meanwhile: to empty it
            return
        with self._write_lock:
            self._send_locked(messages)

    def _send_locked(self, messages: tuple[tuple[Any, ...], ...]) -> None:
        """`send` with `_write_lock` held: one write, so no other thread's interleaves."""
        assert self.conn is not None
        batch = [*self.held, *messages] if self.held else list(messages)
        self.held = []
        if not batch:
            return
        message = batch[0] if len(batch) == 1 else ("batch", batch)
        self.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))

    def reply(self, hold: int, *messages: tuple[Any, ...]) -> None:
        """Send a finished task's messages, or hold them back to travel with the next ones.

        Each message to the executor wakes a thread there, which on a busy machine
        costs more CPU than a tiny task's own work. While the executor allows it
        (`hold`, for tasks it knows to be tiny), this one was tiny and more tasks are
        already here, up to `hold` replies wait for the next task's, for at most
        _HOLD_SECONDS; they go at once when nothing else is queued. If the next task
        runs longer, the flusher thread sends them when their _HOLD_SECONDS are up.
        """
        assert self.conn is not None
        reply = messages[-1]
        now = time.monotonic()
        with self._write_lock:
            if (
                hold
                and reply[2] == "FINISHED"
                and reply[8] < _TINY_TASK_SECONDS
                and len(self.held) + len(messages) <= hold
                and (not self.held or now - self._held_since < _HOLD_SECONDS)
                and self._tasks_queued()
                and (self._flusher is not None or self._start_flusher())
            ):
                if not self.held:
                    self._held_since = now
                    if self._flusher_idle:  # one wake-up per held batch, at most
                        self._flusher_idle = False
                        self._held_cond.notify()
                self.held.extend(messages)
                return
            self._send_locked(messages)

    def _start_flusher(self) -> bool:
        """Start the flusher thread (lock held); False if it cannot start.

        Without it nothing would bound how long a held reply waits, so then none is held.
        """
        # Its own small stack: a worker's memory limit (RLIMIT_AS) also counts thread stacks.
        previous = threading.stack_size()
        try:
            with contextlib.suppress(ValueError):
                threading.stack_size(512 * 1024)
            flusher = threading.Thread(
                target=self._flush_held, name="held-reply-flusher", daemon=True
            )
            flusher.start()
        except (RuntimeError, MemoryError):
            return False
        finally:
            with contextlib.suppress(ValueError):
                threading.stack_size(previous)
        self._flusher = flusher
        return True

    def _flush_held(self) -> None:
        """The flusher: send held replies once their _HOLD_SECONDS are up, whatever runs.

        The main thread sends them sooner, with the next tiny task's reply; this covers
        a next task that runs long or hangs. It sleeps with no deadline while nothing is
        held (`reply` wakes it), else until the held batch's deadline; a batch that went
        meanwhile and a newer one held since are found when it wakes, without a wake-up.
        """
        with self._write_lock:
            try:
                while True:
                    if not self.held:
                        self._flusher_idle = True
                        self._held_cond.wait()
                        continue
                    self._flusher_idle = False
                    left = self._held_since + _HOLD_SECONDS - time.monotonic()
                    if left > 0:
                        self._held_cond.wait(left)
                        continue
                    self._send_locked(())
            except (OSError, ValueError):
                pass  # the executor went away: the main loop sees it too and exits
            finally:
                # Replies still held go with the next send; a new flusher starts if needed.
                self._flusher = None
                self._flusher_idle = False

    def _tasks_queued(self) -> bool:
        """Whether another task is here already (reads what the pipe holds into the inbox)."""
        assert self.conn is not None
        if self._poller is None:  # Connection.poll builds a selector per call: 10x dearer
            self._poller = select.poll()
            self._poller.register(self.conn.fileno(), select.POLLIN)
        while self._poller.poll(0):
            self.inbox.append(pickle.loads(self.conn.recv_bytes()))
        return any(m[0] in ("task", "tasks") for m in self.inbox)

    def read_driver_blob(self, name: str, offset: int, length: int) -> bytes:
        """A byte range of a file the driver serves (e.g. one added with sc.addFile)."""
        return self.fetch_bytes("driver", name, offset, length, "")

    def fetch_bytes(self, owner: str, path: str, offset: int, length: int, address: str) -> bytes:
        """A byte range of `owner`'s file `path`, fetched by our executor."""
        assert self.conn is not None
        self._requests += 1
        request_id = self._requests
        self.send(("fetch", request_id, owner, path, offset, length, address))
        while True:
            message = pickle.loads(self.conn.recv_bytes())
            if message[0] == "fetched" and message[1] == request_id:
                _, _, data, error = message
                if error:
                    raise OSError(f"fetching {path} from {owner}: {error}")
                return data  # type: ignore[no-any-return]
            self.inbox.append(message)  # a task queued behind us: the main loop runs it later

    def barrier_sync(
        self,
        stage_id: int,
        stage_attempt: int,
        task_id: int,
        partition: int,
        epoch: int,
        method: str,
        message: str,
    ) -> list[str]:
        """A barrier task's sync, asked of the driver by our executor; blocks until done.

        Raises:
            RuntimeError: the driver failed the sync (a timeout, another task failed).
        """
        if self.conn is None:
            raise RuntimeError(f"{method}() needs an executor: this worker runs without one")
        self._requests += 1
        request_id = self._requests
        request = ("barrier", request_id, stage_id, stage_attempt, task_id, partition, epoch)
        self.send((*request, method, message))
        while True:
            reply = pickle.loads(self.conn.recv_bytes())
            if reply[0] == "synced" and reply[1] == request_id:
                _, _, messages, error = reply
                if error:
                    raise RuntimeError(error)
                return messages  # type: ignore[no-any-return]
            self.inbox.append(reply)  # a task queued behind us: the main loop runs it later

    def block_path(self, rdd_id: int, split: int) -> str:
        return os.path.join(self.local_dir, f"rdd_{rdd_id}_{split}")

    def get_or_compute(self, rdd: Any, split: int, context: TaskContext) -> list[Any]:
        """A cached partition: from memory, from the executor's disk, or computed and stored."""
        key = (rdd.id(), split)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit[0]
        path = self.block_path(*key)
        try:
            with open(path, "rb") as f:
                data = f.read()
            values: list[Any] = pickle.loads(data)
        except FileNotFoundError:
            values = list(rdd.compute(split, context))
            data = _dumps(values)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
            self.stored_blocks.append(key)
            self.stored_bytes.append(len(data))
        level = rdd._storage_level
        if level is None or level.useMemory:
            self._remember(key, values, estimate_size(values, len(data)))
        return values

    def _remember(self, key: tuple[int, int], values: list[Any], size: int) -> None:
        """Keep `values` in memory, evicting the least recently used beyond the budget."""
        if size > _CACHE_BUDGET:
            return  # would evict everything else and still not fit: read from disk
        self._cache[key] = (values, size)
        self._cache_bytes += size
        self.cache_added.append(key)
        self._memory_changed[key] = None
        while self._cache_bytes > _CACHE_BUDGET and len(self._cache) > 1:
            old_key, (_, old) = self._cache.popitem(last=False)
            self._cache_bytes -= old
            self.cache_evicted.append(old_key)
            self._memory_changed[old_key] = None

    def cache_report(self) -> tuple[Any, ...] | None:
        """("cached", added, evicted, bytes held) since the last report, or None: no change."""
        if not self.cache_added and not self.cache_evicted:
            return None
        report = ("cached", self.cache_added, self.cache_evicted, self._cache_bytes)
        self.cache_added, self.cache_evicted = [], []
        return report

    def drop_rdds(self, rdd_ids: set[int]) -> None:
        for key in [k for k in self._cache if k[0] in rdd_ids]:
            _, size = self._cache.pop(key)
            self._cache_bytes -= size
        for key in [k for k in self._memory_changed if k[0] in rdd_ids]:
            del self._memory_changed[key]  # unpersisted: the driver forgot them already

    def report_memory(self, metrics: dict[str, Any]) -> None:
        """Tell the driver, in a task's metrics, what this process holds as objects.

        `memoryBlocks`: the blocks added or evicted since the last report, each with its
        estimated size now (0: evicted). `pythonWorker`: (worker index, pid), on the
        first report of a process and with every change, so that the driver drops what
        a previous process of the same index held.
        """
        if self._memory_changed:
            cache = self._cache
            metrics["memoryBlocks"] = [
                (k[0], k[1], cache[k][1] if k in cache else 0) for k in self._memory_changed
            ]
            self._memory_changed = {}
        elif self._identified:
            return
        metrics["pythonWorker"] = (_WORKER_INDEX, os.getpid())
        self._identified = True


def estimate_size(values: list[Any], pickled: int) -> int:
    """About how many bytes `values` take as Python objects (a sample, one level deep).

    At least the pickle's size: an estimate for the cache's budget, not an audit.
    """
    n = len(values)
    total = sys.getsizeof(values)
    if n:
        step = max(1, n // 64)
        sample = values[::step]
        each = 0
        for item in sample:
            each += sys.getsizeof(item)
            if type(item) in (tuple, list):
                each += sum(sys.getsizeof(x) for x in item)
        total += each * n // len(sample)
    return max(total, pickled)


#: Seconds the current task spent in Python's garbage collector (the UI's "GC Time").
_GC_STATS = {"seconds": 0.0, "since": 0.0}


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _GC_STATS["since"] = time.perf_counter()
    else:
        _GC_STATS["seconds"] += time.perf_counter() - _GC_STATS["since"]


def _collect_metrics(
    start: float, shuffle_written: int | None = None, stored_bytes: list[int] | None = None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {"runSeconds": time.monotonic() - start, **_aggregation.SPILL_STATS}
    metrics["gcSeconds"] = _GC_STATS["seconds"]
    if READ_STATS["shuffleBytesRead"]:
        metrics["shuffleBytesRead"] = READ_STATS["shuffleBytesRead"]
    if shuffle_written is not None:
        metrics["shuffleBytesWritten"] = shuffle_written
    if stored_bytes:
        metrics["storedBlockBytes"] = list(stored_bytes)
    return metrics


def run_task(
    runtime: WorkerRuntime,
    spec: TaskSetSpec,
    task_id: int,
    partition: int,
    attempt: int,
    extras: tuple[dict[str, list[str]], int] | None = None,
) -> tuple[Any, ...]:
    """Run one task; returns the ("done", ...) reply.

    `extras`: the custom resource addresses and cpus the driver assigned it, if any.
    """
    resources, cpus = extras if extras is not None else ({}, 0)
    cpus = cpus or _TASK_CPUS
    start = time.monotonic()
    try:
        properties = _prepare_files(runtime, spec.properties)
    except Exception as exc:
        return _files_failed(task_id, exc)
    context: TaskContext
    if spec.barrier:
        context = BarrierTaskContext(
            spec.stage_id, partition, attempt, task_id, properties, cpus, runtime,
            stage_attempt=spec.stage_attempt, resources=resources,
        )  # fmt: skip
    else:
        context = TaskContext(
            spec.stage_id, partition, attempt, task_id, properties, cpus, runtime, resources
        )
    TaskContext._set(context)
    _accumulators.reset_registry()
    runtime.stored_blocks = []
    runtime.stored_bytes = []
    runtime.map_outputs = spec.map_outputs
    _aggregation.SPILL_STATS["diskBytesSpilled"] = 0
    _aggregation.SPILL_STATS["spills"] = 0
    _GC_STATS["seconds"] = 0.0
    READ_STATS["shuffleBytesRead"] = 0
    if _gc_timer not in gc.callbacks:
        gc.callbacks.append(_gc_timer)
    shuffle_written: int | None = None
    thresholds = gc.get_threshold()
    gc.set_threshold(*_TASK_GC_THRESHOLDS)
    try:
        iterator = spec.rdd.iterator(partition, context)
        if spec.shuffle_dep is not None:
            dep = spec.shuffle_dep
            path = shuffle_file(runtime.local_dir, dep.shuffle_id, partition, task_id)
            if dep.range_sort is not None:
                run, sample = write_sorted_run(
                    iterator, dep.range_sort, partition, path, runtime.memory_mb
                )
                out = MapOutput(
                    runtime.executor_id, runtime.host, path, runtime.block_address, run, sample
                )
            else:
                write_shuffle_output(
                    iterator,
                    dep.partitioner,
                    dep.partitioner.numPartitions,
                    path,
                    runtime.memory_mb,
                )
                out = MapOutput(runtime.executor_id, runtime.host, path, runtime.block_address)
            with contextlib.suppress(OSError):  # for the UI: the map output's size on disk
                shuffle_written = os.path.getsize(path)
            result = _dumps(out)
        else:
            assert spec.func is not None
            result = _dumps(spec.func(context, iterator))
        metrics = _collect_metrics(start, shuffle_written, runtime.stored_bytes)
        runtime.report_memory(metrics)
        extra = _dumps((_accumulators.collect_updates(), runtime.stored_blocks, metrics))
        return ("done", task_id, "FINISHED", result, extra, "", "", None, time.monotonic() - start)
    except FetchFailedError as exc:
        fetch = (exc.shuffle_id, exc.map_index, exc.executor_id, exc.message)
        return ("done", task_id, "FAILED", b"", b"", str(exc), "FetchFailedError", fetch, 0.0)
    except BaseException as exc:  # the user's code failed: report it, keep the worker
        text = "".join(traceback.format_exception(exc))
        kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
        return ("done", task_id, "FAILED", b"", b"", text, kind, None, time.monotonic() - start)
    finally:
        gc.set_threshold(*thresholds)
        TaskContext._set(None)


def _prepare_files(runtime: WorkerRuntime, properties: dict[str, str]) -> dict[str, str]:
    """Fetch and install the stage's added files; its properties as tasks here see them."""
    reader = runtime.read_driver_blob if runtime.conn is not None else None
    return prepare_task_files(properties, runtime.local_dir, reader)


def _files_failed(task_id: int, exc: Exception) -> tuple[Any, ...]:
    reason = f"could not make the files added with sc.addFile/addPyFile/addArchive available: {exc}"
    return ("done", task_id, "FAILED", b"", b"", reason, type(exc).__name__, None, 0.0)


def _version_failed(task_id: int, message: str) -> tuple[Any, ...]:
    reason = f"PySparkRuntimeError: {message}"
    return ("done", task_id, "FAILED", b"", b"", reason, "PySparkRuntimeError", None, 0.0)


def _apply_limits() -> None:
    """spark.executor.pyspark.memory and the faulthandler, before any task runs."""
    with contextlib.suppress(ValueError):
        apply_memory_limit(int(os.environ.get(MEMORY_LIMIT_ENV) or 0))
    fault_dir = os.environ.get(FAULTHANDLER_DIR_ENV)
    if fault_dir:
        try:
            enable_faulthandler(fault_dir)
        except OSError as exc:
            print(f"could not enable the faulthandler in {fault_dir}: {exc}", file=sys.stderr)


def _die_with_parent() -> None:
    """Linux: get SIGKILL when the executor dies, so no worker outlives it."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _flush_stdout() -> None:
    """Let what a task printed show now, not when the worker's buffer fills."""
    with contextlib.suppress(Exception):  # a task may have closed or replaced sys.stdout
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    """Serve tasks from the executor until it says exit or goes away."""
    _die_with_parent()
    if os.getppid() == 1:
        return  # the executor died before we were set up
    # As in PySpark, whose JVM copies its workers' stdout to its stderr: what a task
    # prints goes to the executor's stderr, never into a program's standard output.
    os.dup2(2, 1)
    args = sys.argv[1:] if argv is None else argv
    fd, local_dir, executor_id, host, memory_mb = args[:5]
    conn = Connection(int(fd))
    _apply_limits()
    runtime = WorkerRuntime(local_dir, executor_id, host, float(memory_mb))
    runtime.conn = conn
    mark_python_worker()  # a task's SparkContext() is refused here, as PySpark does
    _broadcast.BROADCAST_DIR[:] = [local_dir]
    _aggregation.SPILL_ROOT[:] = [local_dir]
    _aggregation.keep_freed_memory()  # the next task reuses this one's pages
    stages: dict[str, StageCode] = {}
    #: Payloads not unpickled yet: kept until their files are in place and they load.
    payloads: dict[str, bytes] = {}
    while True:
        try:
            if not runtime.inbox:
                runtime.send()  # nothing queued: held replies go now
            message = runtime.inbox.popleft() if runtime.inbox else pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        kind = message[0]
        if kind == "tasks":  # several tasks in one message: run them in order
            runtime.inbox.extendleft(reversed(message[1]))
            continue
        if kind == "task":
            _, task_id, key, partition, attempt, payload, *rest = message
            extras = rest[0] if rest else None
            hold = rest[1] if len(rest) > 1 else 0
            if payload is not None:
                payloads[key] = payload
                stages.pop(key, None)
            code = stages.get(key)
            if code is None and key in payloads:
                header, driver_python = read_stage_header(payloads[key])
                mismatch = version_mismatch(driver_python)
                if mismatch is not None:  # every task of the stage fails the same way
                    runtime.send(_version_failed(task_id, mismatch))
                    continue
                # Added modules must be importable before anything of the stage is unpickled.
                try:
                    _prepare_files(runtime, header)
                except Exception as exc:  # the task fails with the reason; the worker lives
                    runtime.send(_files_failed(task_id, exc))
                    continue
            try:
                if code is None:
                    if key not in payloads:
                        raise LookupError(
                            f"the code of task set {key} was never sent to this Python worker"
                        )
                    code = stages[key] = StageCode(payloads[key])
                    del payloads[key]
                # Each task gets its own copy of the stage's functions (see _stagecode).
                spec = code.spec()
            except BaseException as exc:
                text = "".join(traceback.format_exception(exc))
                if isinstance(exc, ModuleNotFoundError) and exc.name:
                    text += (
                        f"(the executors cannot import module {exc.name!r}: ship it with "
                        "--py-files or sc.addPyFile; a namedtuple class from it travels by value "
                        "with PYSPARK_ENABLE_NAMEDTUPLE_PATCH=1)\n"
                    )
                kind_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
                reply: tuple[Any, ...] = (
                    "done", task_id, "FAILED", b"", b"",
                    "could not deserialize the stage's code:\n" + text, kind_name, None, 0.0,
                )  # fmt: skip
                runtime.send(reply)
                continue
            reply = run_task(runtime, spec, task_id, partition, attempt, extras)
            del spec
            _flush_stdout()
            cached = runtime.cache_report()
            if cached is not None:  # before the reply: the executor routes on it
                runtime.reply(hold, cached, reply)
            else:
                runtime.reply(hold, reply)
        elif kind == "forget":
            _, tasksets, rdd_ids, broadcast_ids = message
            for key in tasksets:
                stages.pop(key, None)
                payloads.pop(key, None)
            runtime.drop_rdds(set(rdd_ids))
            _broadcast.forget_loaded(list(broadcast_ids))
        elif kind == "block_address":
            runtime.block_address = message[1]
        elif kind == "exit":
            return


if __name__ == "__main__":
    main()
