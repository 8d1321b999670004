"""RDD: PySpark's resilient distributed dataset API over a lineage graph.

An RDD knows its partitions, its dependencies and how to compute one
partition from its parents on an executor. Transformations build new RDDs
(narrow ones are pipelined into one function chain); actions hand a job to
the SparkContext. Key-value methods live in `scheduler/rdd/pairs.py`, the concrete RDD
kinds in `scheduler/rdd/kinds.py`. This module never talks to executors itself.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import itertools
import random
import shlex
import subprocess
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from scheduler.errors import SparkSQLNotSupportedError
from scheduler.rdd.actions import ActionFunctions
from scheduler.rdd.callsite import first_api_call
from scheduler.rdd.deps import Dependency, shuffles_to_clean
from scheduler.rdd.hadoopformats import HadoopOutputs
from scheduler.rdd.pairs import PairFunctions
from scheduler.rdd.shipping import check_shipped
from scheduler.rdd.storagelevel import StorageLevel
from scheduler.resource.profile import ResourceProfile
from scheduler.shuffle.drain import CheckedChain
from scheduler.shuffle.partitioner import Partitioner
from scheduler.shuffle.sampling import BernoulliRangeSampler, PartitionSampler

if TYPE_CHECKING:
    from scheduler.rdd.barrier import RDDBarrier
    from scheduler.rdd.host import RDDHost
    from scheduler.task.taskcontext import TaskContext

__all__ = ["RDD", "fail_on_stopiteration", "fuse_narrow", "narrow_steps", "same_split"]

_REFERENCE_ERROR = (
    "It appears that you are attempting to broadcast an RDD or reference an RDD from an "
    "action or transformation. RDD transformations and actions can only be invoked by the "
    "driver, not inside of other transformations."
)


def _with_disk(level: StorageLevel) -> StorageLevel:
    """`level` with disk added (Spark's LocalRDDCheckpointData.transformStorageLevel)."""
    return StorageLevel(
        True, level.useMemory, level.useOffHeap, level.deserialized, level.replication
    )


def _identity_partition(iterator: Iterator[Any]) -> Iterator[Any]:
    return iterator


def fail_on_stopiteration(f: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap `f` so a StopIteration it raises fails the task instead of ending a loop."""
    return functools.partial(_failing_on_stopiteration, f)


# Library functions that tasks run are module functions bound with functools.partial,
# not closures: cloudpickle pickles those by reference, where a closure costs its code
# object each time a stage is pickled and again each time a worker unpickles it (most
# of a tiny job's pickling).


def _failing_on_stopiteration(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return f(*args, **kwargs)
    except StopIteration as exc:
        raise RuntimeError(
            "Caught StopIteration thrown from user's code; failing the task"
        ) from exc


def _on_iterator(
    f: Callable[[Iterator[Any]], Iterable[Any]], _split: int, iterator: Iterator[Any]
) -> Iterable[Any]:
    return f(iterator)


def _same_iterator(iterator: Iterator[Any]) -> Iterator[Any]:
    return iterator


def same_split(_split: int, iterator: Iterator[Any]) -> Iterator[Any]:
    """The identity partition function: `MapPartitionsRDD` fuses it away (collect's job)."""
    return iterator


#: The kinds of a narrow step (`_narrow`): map, filter, flatMap.
_MAP, _FILTER, _FLAT_MAP = 0, 1, 2


def _narrow(
    steps: tuple[tuple[int, Callable[[Any], Any]], ...], _split: int, iterator: Iterator[Any]
) -> Iterator[Any]:
    """Consecutive map, filter and flatMap steps over one partition, at C speed (builtin
    map, filter and chain: no generator frame per item), failing the task if a user's
    function raised StopIteration.

    A StopIteration from a user's function would end `map` or `filter` silently, so the
    input is followed by a marker that notes its real end; if the output ends before
    it, the user's function raised, and the task fails as PySpark's does. Fused steps
    share one pair of markers: a step that stops early stops pulling from below, so
    the real end is never reached, and each item passes two C iterator layers fewer
    per fused step. A consumer that drains the output anyway skips the last layer too
    (`shuffle/drain.py`).
    """
    ended: list[bool] = []
    source: Iterator[Any] = itertools.chain(iterator, _note_end(ended))
    for kind, f in steps:
        if kind == _MAP:
            source = map(f, source)
        elif kind == _FILTER:
            source = filter(f, source)
        else:
            source = itertools.chain.from_iterable(map(f, source))
    return CheckedChain(source, _check_end(ended))


def narrow_steps(
    func: Callable[[int, Iterator[Any]], Iterable[Any]],
) -> tuple[tuple[int, Callable[[Any], Any]], ...] | None:
    """The steps of a map/filter/flatMap partition function, or None for any other."""
    if isinstance(func, functools.partial) and func.func is _narrow:
        return func.args[0]  # type: ignore[no-any-return]
    return None


def fuse_narrow(
    f: Callable[[int, Iterator[Any]], Iterable[Any]],
    prev_func: Callable[[int, Iterator[Any]], Iterable[Any]],
) -> Callable[[int, Iterator[Any]], Iterable[Any]] | None:
    """`prev_func` then `f` as one narrow function, when both are narrow steps."""
    first, then = narrow_steps(prev_func), narrow_steps(f)
    if first is None or then is None:
        return None
    return functools.partial(_narrow, first + then)


def _note_end(ended: list[bool]) -> Iterator[Any]:
    ended.append(True)
    yield from ()


def _check_end(ended: list[bool]) -> Iterator[Any]:
    if not ended:
        raise RuntimeError("Caught StopIteration thrown from user's code; failing the task")
    yield from ()


class RDD(ActionFunctions, PairFunctions, HadoopOutputs):
    """A partitioned collection computed lazily from its lineage."""

    _lazy_id = False
    _creation_site: str | None = None
    #: A local checkpoint that collect() computed (PySpark's isCheckpointed turns true then).
    _local_checkpoint_done = False

    def __class_getitem__(cls, item: Any) -> types.GenericAlias:
        """``RDD[Tuple[int, int]]`` in a program's annotations, as PySpark's RDD is generic."""
        return types.GenericAlias(cls, item)

    def __init__(self, ctx: RDDHost, deps: list[Dependency]) -> None:
        self._ctx: RDDHost | None = ctx
        # Pipelined RDDs take their id lazily, as PySpark's PipelinedRDD does.
        self._id: int | None = None if self._lazy_id else ctx.new_rdd_id()
        self._deps = deps
        self.partitioner: Partitioner | None = None
        self._storage_level: StorageLevel | None = None
        self._name: str | None = None
        self._checkpoint_rdd: RDD | None = None
        self._checkpoint_requested = False
        self._local_checkpoint = False
        #: "<api> at <file>:<line>": where the user's program made this RDD (stage names).
        self._creation_site = first_api_call()

    # -- lineage (subclasses override) ------------------------------------------------

    def getNumPartitions(self) -> int:
        """How many partitions this RDD has."""
        if self._checkpoint_rdd is not None:
            return self._checkpoint_rdd.getNumPartitions()
        return self._num_partitions()

    def _num_partitions(self) -> int:
        raise NotImplementedError

    def compute(self, split: int, context: TaskContext) -> Iterator[Any]:
        """Compute one partition on an executor."""
        raise NotImplementedError

    def _preferred_hosts(self, split: int) -> list[str]:
        return []

    @property
    def dependencies(self) -> list[Dependency]:
        """Dependencies on parent RDDs (one on the checkpoint once checkpointed)."""
        if self._checkpoint_rdd is not None:
            from scheduler.rdd.deps import OneToOneDependency

            return [OneToOneDependency(self._checkpoint_rdd)]
        return self._deps

    def iterator(self, split: int, context: TaskContext) -> Iterator[Any]:
        """The partition's items: from the checkpoint, the cache, or computed."""
        if self._checkpoint_rdd is not None:
            return self._checkpoint_rdd.iterator(split, context)
        if self._storage_level is not None and context._runtime is not None:
            return iter(context._runtime.get_or_compute(self, split, context))
        return self.compute(split, context)

    def __getstate__(self) -> dict[str, Any]:
        check_shipped(self)  # a stage carries its own lineage, not an RDD a closure took
        state = dict(self.__dict__)
        state["_ctx"] = None
        state["_deps"] = []
        state.pop("_creation_site", None)  # the driver's business only
        return state

    # -- identity ---------------------------------------------------------------------

    @property
    def ctx(self) -> RDDHost:
        if self._ctx is None:
            raise RuntimeError(_REFERENCE_ERROR)
        return self._ctx

    @property
    def context(self) -> RDDHost:
        """The SparkContext this RDD was created on."""
        return self.ctx

    def id(self) -> int:
        """A unique id for this RDD within its SparkContext."""
        if self._id is None:
            self._id = self.ctx.new_rdd_id()
        return self._id

    def name(self) -> str | None:
        """The name set with `setName`."""
        return self._name

    def setName(self, name: str) -> RDD:
        """Name this RDD (shown in the UI)."""
        self._name = name
        return self

    def __repr__(self) -> str:
        # Spark's RDD.toString, without the call site: "[name ]ClassName[id]".
        prefix = f"{self._name} " if self._name else ""
        return f"{prefix}{type(self).__name__}[{self.id()}]"

    def toDebugString(self) -> bytes:
        """The lineage, one RDD per line, in Spark's layout (stages drawn with `+-`)."""
        from scheduler.rdd.debugstring import debug_string

        return debug_string(self).encode()

    # -- persistence ------------------------------------------------------------------

    def cache(self) -> RDD:
        """Persist with MEMORY_ONLY."""
        return self.persist(StorageLevel.MEMORY_ONLY)

    def persist(self, storageLevel: StorageLevel = StorageLevel.MEMORY_ONLY) -> RDD:
        """Keep computed partitions on the executors for later jobs.

        Raises:
            ValueError: the RDD is already persisted with another level.
        """
        if self._local_checkpoint:
            # As Spark's: a locally checkpointed RDD takes any level, always with disk.
            self._storage_level = _with_disk(storageLevel)
            return self
        if self._storage_level is not None and self._storage_level != storageLevel:
            raise ValueError(
                "Cannot change storage level of an RDD after it was already assigned a level"
            )
        self._storage_level = storageLevel
        self.ctx.mark_persisted(self)
        return self

    def unpersist(self, blocking: bool = False) -> RDD:
        """Forget the cached partitions."""
        self._storage_level = None
        self.ctx.unpersist_rdd(self.id(), blocking)
        return self

    def toDF(self, *args: Any, **kwargs: Any) -> Any:
        """PySpark's DataFrame conversion: Spark SQL, which sparkctl does not have.

        Raises:
            SparkSQLNotSupportedError: always.
        """
        raise SparkSQLNotSupportedError("RDD.toDF")

    def cleanShuffleDependencies(self, blocking: bool = False) -> None:
        """Drop the shuffles this RDD reads and those of its non-persisted ancestors.

        Their map outputs are forgotten and their files deleted on the executors,
        which frees those executors for dynamic allocation; a later job that needs
        them computes them again. The walk stops at a persisted RDD, as Spark's.
        """
        shuffle_ids = shuffles_to_clean(self)
        if shuffle_ids:
            self.ctx.clean_shuffles(shuffle_ids, blocking)

    @property
    def is_cached(self) -> bool:
        return self._storage_level is not None

    def getStorageLevel(self) -> StorageLevel:
        """The storage level (StorageLevel(False, False, False, False, 1) when not persisted)."""
        return self._storage_level or StorageLevel(False, False, False, False, 1)

    def checkpoint(self) -> None:
        """Save this RDD to the checkpoint directory after the next job computes it."""
        if self.ctx.checkpoint_dir is None:
            raise RuntimeError("Checkpoint directory has not been set in the SparkContext")
        self._checkpoint_requested = True

    def localCheckpoint(self) -> None:
        """Truncate the lineage, keeping the data in the executors' cache.

        As in Spark, a persisted RDD keeps its level plus disk; an unpersisted one
        takes the JVM's MEMORY_AND_DISK (deserialized).
        """
        level = self._storage_level
        self._local_checkpoint = True
        self._storage_level = (
            StorageLevel.MEMORY_AND_DISK_DESER if level is None else _with_disk(level)
        )
        self.ctx.mark_persisted(self)

    def isCheckpointed(self) -> bool:
        """Whether a checkpoint (reliable, or local once a job computed it) stands for this RDD."""
        if self._local_checkpoint:
            return self._local_checkpoint_done
        return self._checkpoint_rdd is not None

    @property
    def is_checkpointed(self) -> bool:
        """PySpark's attribute: checkpoint() was called (written or not yet)."""
        return bool(self._checkpoint_requested) or self.isCheckpointed()

    #: PySpark's attribute: withResources() was called on this RDD.
    has_resource_profile = False
    #: The profile withResources() set (None: the application's default).
    _resource_profile: ResourceProfile | None = None

    def withResources(self, profile: ResourceProfile) -> RDD:
        """Run this RDD's stage with `profile`'s executor and task resources (stage-level
        scheduling). A profile asking executor resources needs dynamic allocation."""
        if not isinstance(profile, ResourceProfile):
            raise TypeError(f"withResources takes a ResourceProfile, not {type(profile).__name__}")
        self.has_resource_profile = True
        self._resource_profile = profile
        # Spark's ResourceProfileManager check (what this cluster manager supports),
        # when the context offers it.
        check = getattr(self.ctx, "check_resource_profile", None)
        if check is not None:
            check(profile)
        return self

    def getResourceProfile(self) -> ResourceProfile | None:
        """The profile withResources() set, or None."""
        return self._resource_profile

    def isLocallyCheckpointed(self) -> bool:
        return self._local_checkpoint

    def getCheckpointFile(self) -> str | None:
        """Where the checkpoint lives, once written."""
        path = getattr(self._checkpoint_rdd, "path", None)
        return f"file:{path}" if path is not None else None

    def _memory_limit(self) -> int:
        return self.ctx.python_worker_memory_mb()

    def _default_reduce_partitions(self) -> int:
        if "spark.default.parallelism" in self.ctx.settings:
            return self.ctx.defaultParallelism
        return self.getNumPartitions()

    # -- narrow transformations -------------------------------------------------------

    def barrier(self) -> RDDBarrier:
        """Run the next mapPartitions of this RDD as a barrier stage (all tasks together)."""
        from scheduler.rdd.barrier import RDDBarrier

        return RDDBarrier(self)

    def mapPartitionsWithIndex(
        self, f: Callable[[int, Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Apply `f(partition_index, iterator)` to each partition."""
        from scheduler.rdd.kinds import MapPartitionsRDD

        return MapPartitionsRDD(self, f, preservesPartitioning)

    def mapPartitions(
        self, f: Callable[[Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Apply `f(iterator)` to each partition."""
        if f is _same_iterator or f is _identity_partition:
            # collect()'s and toLocalIterator's jobs: an identity step, fused away when pipelined.
            return self.mapPartitionsWithIndex(same_split, preservesPartitioning)
        return self.mapPartitionsWithIndex(
            functools.partial(_on_iterator, f), preservesPartitioning
        )

    def mapPartitionsWithSplit(
        self, f: Callable[[int, Iterator[Any]], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Deprecated name of `mapPartitionsWithIndex`."""
        return self.mapPartitionsWithIndex(f, preservesPartitioning)

    def map(self, f: Callable[[Any], Any], preservesPartitioning: bool = False) -> RDD:
        """Apply `f` to each item."""
        return self.mapPartitionsWithIndex(
            functools.partial(_narrow, ((_MAP, f),)), preservesPartitioning
        )

    def flatMap(
        self, f: Callable[[Any], Iterable[Any]], preservesPartitioning: bool = False
    ) -> RDD:
        """Apply `f` to each item and flatten the results."""
        return self.mapPartitionsWithIndex(
            functools.partial(_narrow, ((_FLAT_MAP, f),)), preservesPartitioning
        )

    def filter(self, f: Callable[[Any], bool]) -> RDD:
        """Keep the items for which `f` is true."""
        return self.mapPartitionsWithIndex(functools.partial(_narrow, ((_FILTER, f),)), True)

    def glom(self) -> RDD:
        """Each partition as one list."""

        def func(iterator: Iterator[Any]) -> Iterable[Any]:
            yield list(iterator)

        return self.mapPartitions(func)

    def keyBy(self, f: Callable[[Any], Any]) -> RDD:
        """Pairs (f(x), x)."""
        return self.map(lambda x: (f(x), x))

    def sample(self, withReplacement: bool, fraction: float, seed: int | None = None) -> RDD:
        """A random sample of about `fraction` of the items."""
        if not fraction >= 0:
            raise ValueError("Fraction must be nonnegative.")
        return self.mapPartitionsWithIndex(
            PartitionSampler(withReplacement, fraction, seed).func, True
        )

    def randomSplit(self, weights: list[float], seed: int | None = None) -> list[RDD]:
        """Split randomly by relative `weights`."""
        if not all(w >= 0 for w in weights):
            raise ValueError("Weights must be nonnegative")
        total = float(sum(weights))
        if total <= 0:
            raise ValueError("Sum of weights must be positive")
        bounds = [0.0]
        for w in weights:
            bounds.append(bounds[-1] + w / total)
        if seed is None:
            seed = random.randint(0, 2**32 - 1)
        return [
            self.mapPartitionsWithIndex(BernoulliRangeSampler(lo, hi, seed).func, True)
            for lo, hi in itertools.pairwise(bounds)
        ]

    def union(self, other: RDD) -> RDD:
        """The items of both RDDs (duplicates kept)."""
        from scheduler.rdd.kinds import union_of

        rdd = union_of(self.ctx, [self, other])
        if (
            self.partitioner == other.partitioner
            and self.getNumPartitions() == rdd.getNumPartitions()
        ):
            rdd.partitioner = self.partitioner
        return rdd

    def __add__(self, other: RDD) -> RDD:
        if not isinstance(other, RDD):
            raise TypeError
        return self.union(other)

    def intersection(self, other: RDD) -> RDD:
        """Distinct items present in both RDDs."""
        return (
            self.map(lambda v: (v, None))
            .cogroup(other.map(lambda v: (v, None)))
            .filter(lambda k_vs: all(k_vs[1]))
            .keys()
        )

    def subtract(self, other: RDD, numPartitions: int | None = None) -> RDD:
        """Items of this RDD not in `other`."""
        rdd = other.map(lambda x: (x, True))
        return self.map(lambda x: (x, True)).subtractByKey(rdd, numPartitions).keys()

    def distinct(self, numPartitions: int | None = None) -> RDD:
        """Distinct items."""
        return (
            self.map(lambda x: (x, None))
            .reduceByKey(lambda x, _: x, numPartitions)
            .map(lambda x: x[0])
        )

    def cartesian(self, other: RDD) -> RDD:
        """All pairs (a, b) with a in this RDD and b in `other`."""
        from scheduler.rdd.kinds import CartesianRDD

        return CartesianRDD(self, other)

    def groupBy(
        self,
        f: Callable[[Any], Any],
        numPartitions: int | None = None,
        partitionFunc: Callable[[Any], int] | None = None,
    ) -> RDD:
        """Group items by `f(item)`."""
        return self.map(lambda x: (f(x), x)).groupByKey(numPartitions, partitionFunc)

    def pipe(self, command: str, env: dict[str, str] | None = None, checkCode: bool = False) -> RDD:
        """Pipe each partition through an external command, one item per line."""
        argv = shlex.split(command)

        def func(iterator: Iterator[Any]) -> Iterator[str]:
            proc = subprocess.Popen(
                argv,
                env=env or None,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert proc.stdin is not None and proc.stdout is not None
            stdin = proc.stdin
            failure: list[BaseException] = []

            def feed() -> None:
                try:
                    for obj in iterator:
                        text = obj if isinstance(obj, str) else str(obj)
                        stdin.write(text.rstrip("\n").encode("utf-8") + b"\n")
                except BrokenPipeError:
                    pass  # the command stopped reading: its exit code says if it failed
                except BaseException as exc:  # the parent's failure fails the task, not this thread
                    failure.append(exc)
                finally:
                    with contextlib.suppress(BrokenPipeError):
                        stdin.close()

            import threading

            feeder = threading.Thread(target=feed, daemon=True)
            feeder.start()
            try:
                for line in proc.stdout:
                    yield line.decode("utf-8").rstrip("\n")
                feeder.join()
                code = proc.wait()
            finally:
                if proc.poll() is None:  # the task stopped early (take()): no command left behind
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            if failure:
                raise failure[0]
            if checkCode and code:
                raise RuntimeError(f"Pipe function `{command}' exited with error code {code}")

        return self.mapPartitions(func)

    def coalesce(self, numPartitions: int, shuffle: bool = False) -> RDD:
        """Fewer partitions, by merging neighbours (or by a shuffle)."""
        if numPartitions <= 0:
            raise ValueError("Number of partitions must be positive.")
        if shuffle:
            from scheduler.rdd.kinds import round_robin_repartition

            return round_robin_repartition(self, numPartitions)
        from scheduler.rdd.kinds import CoalescedRDD

        return CoalescedRDD(self, numPartitions)

    def repartition(self, numPartitions: int) -> RDD:
        """Exactly `numPartitions` partitions, through a shuffle."""
        return self.coalesce(numPartitions, shuffle=True)

    def zip(self, other: RDD) -> RDD:
        """Pairs of the n-th items of both RDDs (same partitioning required)."""
        if self.getNumPartitions() != other.getNumPartitions():
            raise ValueError("Can only zip with RDD which has the same number of partitions")
        from scheduler.rdd.kinds import ZippedRDD

        return ZippedRDD(self, other)

    def zipWithIndex(self) -> RDD:
        """Pairs (item, index) with indexes in partition order (runs a job when > 1 partition)."""
        starts = [0]
        if self.getNumPartitions() > 1:
            nums = self.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
            for i in range(len(nums) - 1):
                starts.append(starts[-1] + nums[i])

        def func(k: int, iterator: Iterator[Any]) -> Iterator[Any]:
            for i, v in enumerate(iterator, starts[k]):
                yield v, i

        return self.mapPartitionsWithIndex(func)

    def zipWithUniqueId(self) -> RDD:
        """Pairs (item, id): the k-th item of partition i gets i + k * numPartitions."""
        n = self.getNumPartitions()

        def func(k: int, iterator: Iterator[Any]) -> Iterator[Any]:
            for i, v in enumerate(iterator):
                yield v, i * n + k

        return self.mapPartitionsWithIndex(func)

    def sortBy(
        self,
        keyfunc: Callable[[Any], Any],
        ascending: bool = True,
        numPartitions: int | None = None,
    ) -> RDD:
        """Sort by `keyfunc(item)`."""
        return self.keyBy(keyfunc).sortByKey(ascending, numPartitions).values()

    # -- actions ----------------------------------------------------------------------

    def collect(self) -> list[Any]:
        """All items, in partition order."""
        items = self.ctx.runJob(self, _same_iterator)
        if self._local_checkpoint:
            # PySpark's collect is the action that runs a job on this very RDD (the JVM's
            # runJob, which marks local checkpoints); others run on a pipelined copy.
            self._local_checkpoint_done = True
        return items

    def collectWithJobGroup(
        self, groupId: str, description: str, interruptOnCancel: bool = False
    ) -> list[Any]:
        """`collect` in job group `groupId` (deprecated in PySpark 3.1, kept working)."""
        warnings.warn(
            "Deprecated in 3.1, Use pyspark.InheritableThread with the pinned thread mode enabled.",
            FutureWarning,
            stacklevel=2,
        )
        self.ctx.setJobGroup(groupId, description, interruptOnCancel)
        return self.collect()

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[Any]:
        """Iterate over the items, one partition (one job) at a time.

        With `prefetchPartitions`, the job of the next partition runs while the
        current one is read, as PySpark's does (at most one partition ahead).
        """
        n = self.getNumPartitions()
        if not prefetchPartitions:
            for split in range(n):
                yield from self.ctx.runJob(self, _identity_partition, [split])
            return
        run = self.ctx.with_local_properties(self.ctx.runJob)
        with concurrent.futures.ThreadPoolExecutor(2, "toLocalIterator-prefetch") as pool:
            pending = pool.submit(run, self, _identity_partition, [0]) if n else None
            for split in range(n):
                assert pending is not None
                current = pending
                if split + 1 < n:  # as Spark's: submitted before the current one is awaited
                    pending = pool.submit(run, self, _identity_partition, [split + 1])
                yield from current.result()

    def foreach(self, f: Callable[[Any], None]) -> None:
        """Apply `f` to every item on the executors."""
        g = fail_on_stopiteration(f)

        def func(iterator: Iterator[Any]) -> Iterable[Any]:
            for x in iterator:
                g(x)
            return iter([])

        self.mapPartitions(func).count()

    def foreachPartition(self, f: Callable[[Iterator[Any]], Any]) -> None:
        """Apply `f` to every partition's iterator on the executors."""

        def func(iterator: Iterator[Any]) -> Iterable[Any]:
            result = f(iterator)
            try:
                return iter(result)  # type: ignore[no-any-return]
            except TypeError:
                return iter([])

        self.mapPartitions(func).count()

    def saveAsTextFile(self, path: str, compressionCodecClass: str | None = None) -> None:
        """Write one `part-NNNNN` text file per partition under directory `path`."""
        from scheduler.rdd.fileio import save_as_text_file

        save_as_text_file(self, path, compressionCodecClass)

    def saveAsPickleFile(self, path: str, batchSize: int = 10) -> None:
        """Write the items as pickled batches, one file per partition (read with pickleFile)."""
        from scheduler.rdd.fileio import save_as_pickle_file

        save_as_pickle_file(self, path, batchSize)
