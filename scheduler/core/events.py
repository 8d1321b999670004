"""Scheduler events: what listeners (UI store, event log) hear of jobs, stages, tasks, executors.

Each event is immutable, a frozen dataclass (TaskEnd and LaunchedTask, built
per task, are NamedTuples: cheaper to build); a listener takes them apart with
`match`, so mypy checks every field it reads. The task scheduler posts them on its
`ListenerBus` in causal order, under its lock: a job's JobStart before the
StageSubmitted of its first stage, a task's TaskEnd before the StageCompleted
of its attempt, and a StageCompleted before whatever the DAGScheduler does
about it (the StageSubmitted of a stage it unblocks or of a resubmission,
the JobEnd of its job). A stage attempt completes when all its tasks
succeeded or it was aborted; tasks of an aborted attempt still running then
are taken as killed, and get no TaskEnd of their own. A task that could not
read a map output ends as Spark's do: its TaskEnd (failed, with a
`FetchFailure`) comes first, then its attempt's StageCompleted, then the
resubmissions. `time` is the
wall-clock second an event happened when it is known (events replayed from a
log carry theirs); live events leave it None and each listener reads its own
clock. The lineage payloads of JobStart (a
stage's name, parents and RDDs) stay plain data, as `rdd/lineage.py` makes
them. No I/O here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

__all__ = [
    "End",
    "EnvironmentUpdate",
    "ExecutorAdded",
    "ExecutorRemoved",
    "FetchFailure",
    "JobEnd",
    "JobStart",
    "Launch",
    "LaunchedTask",
    "Listener",
    "ListenerBus",
    "SchedulerEvent",
    "StageCompleted",
    "StageSubmitted",
    "TaskCounter",
    "TaskEnd",
    "TasksLaunched",
    "UnpersistRDD",
    "touches_storage",
]

log = logging.getLogger(__name__)

_NO_METRICS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class JobStart:
    """A job was submitted; `stages` describe its stages (name, parents, RDDs), by id."""

    job_id: int
    stage_ids: tuple[int, ...]
    stages: tuple[Mapping[str, Any], ...] = ()
    group: str | None = None
    description: str | None = None
    time: float | None = None


@dataclass(frozen=True, slots=True)
class JobEnd:
    """A job ended: `status` is SUCCEEDED or FAILED (with `error`)."""

    job_id: int
    status: str
    error: str | None = None
    time: float | None = None


@dataclass(frozen=True, slots=True)
class StageSubmitted:
    """A stage attempt's tasks were handed to the task scheduler."""

    stage_id: int
    attempt: int
    num_tasks: int
    job_id: int = -1
    #: The stage's name (as JobStart's description gives it when a listener asks for those).
    name: str | None = None
    time: float | None = None


@dataclass(frozen=True, slots=True)
class StageCompleted:
    """A stage attempt is over: all its tasks succeeded, or `failure` says why not."""

    stage_id: int
    attempt: int
    failure: str | None = None
    time: float | None = None


class LaunchedTask(NamedTuple):
    """One task of a launch round (a tuple: the UI reads thousands a second)."""

    task_id: int
    stage_id: int
    stage_attempt: int
    #: The task's index in its set (`index` is a tuple's method).
    task_index: int
    attempt: int
    executor_id: str
    partition: int
    #: It runs where its preferred location (a cached partition) is, or had none.
    local: bool
    speculative: bool


@dataclass(frozen=True, slots=True)
class TasksLaunched:
    """Tasks sent to executors in one offer round (one event per round, not per task)."""

    tasks: tuple[LaunchedTask, ...]
    time: float | None = None


class FetchFailure(NamedTuple):
    """Why a task could not read a map output: Spark's FetchFailed end reason.

    The task's stage attempt is over because of it (its StageCompleted follows,
    with the failure), and the map output is recomputed.
    """

    shuffle_id: int
    #: The map task (partition of the map stage) whose output was lost.
    map_index: int
    #: The executor that held it ("" when not known).
    executor_id: str
    message: str


class TaskEnd(NamedTuple):
    """A task attempt ended (`ok`), with what its executor measured.

    `task_id` is None only in old logs that do not say. `launch_time` and `host`
    are known here when the listener cannot know them itself (a replayed log);
    `launched_ago` (seconds) when the scheduler saw the launch. Immutable like
    the others, but a NamedTuple: one is built per task on the scheduler's hot
    path, and a frozen dataclass of these 19 fields takes 3 us to build, this 0.9.
    """

    stage_id: int
    attempt: int
    ok: bool
    task_id: int | None = None
    #: The task's index in its set (`index` is a tuple's method).
    task_index: int = -1
    task_attempt: int = 0
    partition: int = -1
    executor_id: str = ""
    host: str = ""
    launch_time: float | None = None
    launched_ago: float | None = None
    locality: str = "PROCESS_LOCAL"
    speculative: bool = False
    run_seconds: float | None = None
    #: diskBytesSpilled, gcSeconds, shuffleBytesRead/Written, storedBlockBytes, spills.
    metrics: Mapping[str, Any] = _NO_METRICS
    #: (rdd id, partition) of the partitions it cached.
    blocks: tuple[tuple[int, int], ...] = ()
    error: str | None = None
    error_type: str | None = None
    #: Set when it failed reading a map output (`error_type` is then "FetchFailed").
    fetch_failure: FetchFailure | None = None
    time: float | None = None


@dataclass(frozen=True, slots=True)
class ExecutorAdded:
    """An executor registered with the driver."""

    executor_id: str
    host: str
    cores: int
    log_urls: Mapping[str, str] = field(default_factory=dict)
    time: float | None = None


@dataclass(frozen=True, slots=True)
class ExecutorRemoved:
    """The driver forgot an executor (lost, killed, or the application ended)."""

    executor_id: str
    reason: str
    time: float | None = None


@dataclass(frozen=True, slots=True)
class UnpersistRDD:
    """An RDD's cached partitions were dropped."""

    rdd_id: int
    time: float | None = None


@dataclass(frozen=True, slots=True)
class EnvironmentUpdate:
    """The Environment page's sections (only logs carry it: a live UI reads its conf)."""

    sections: Mapping[str, list[tuple[str, str]]]
    time: float | None = None


SchedulerEvent = (
    JobStart
    | JobEnd
    | StageSubmitted
    | StageCompleted
    | TasksLaunched
    | TaskEnd
    | ExecutorAdded
    | ExecutorRemoved
    | UnpersistRDD
    | EnvironmentUpdate
)

Listener = Callable[[SchedulerEvent], None]


#: A task's launch as a `TaskCounter` hears it: (stage id, stage attempt, task id, executor id).
Launch = tuple[int, int, int, str]
#: A task's end as a `TaskCounter` hears it: (stage id, stage attempt, task id, succeeded).
End = tuple[int, int, int, bool]


class TaskCounter(Protocol):
    """A listener that counts tasks and needs no description of them (the status tracker).

    Told of tasks' launches and ends as plain tuples, gathered by the bus and
    handed over in batches before the next event is posted and at the end of
    each scheduler round (`ListenerBus.flush`): so in the same causal order as
    TasksLaunched and TaskEnd, under the same rules (a task of an attempt
    already completed is not told), without building an event per task. With
    the UI and the event log off, counting is then all a task costs the bus.
    Each batch holds launches and ends in order, launches first.
    """

    def tasks_launched(self, launches: list[Launch]) -> None:
        """These tasks went to these executors."""
        ...

    def tasks_ended(self, ends: list[End]) -> None:
        """These tasks ended: succeeded, or failed (a fetch failure too)."""
        ...


def touches_storage(blocks: Sequence[Any], metrics: Mapping[str, Any]) -> bool:
    """Whether a task's end changes the storage status: it cached blocks, or its metrics
    name its Python worker (with the blocks that worker added to or evicted from memory)."""
    return bool(blocks) or "pythonWorker" in metrics


class ListenerBus:
    """Delivers each event to its listeners, in order; a failing listener is logged, not fatal.

    A listener hears every event, or only the kinds it names: posters ask
    `wants(kind)` before building an event nobody hears (a TaskEnd per task on
    the hot path), and `wants_lineage` before describing a job's stages. A
    `TaskCounter` is told of each task's launch and end without an event:
    `task_launched` / `task_ended` only note them, and `flush` (called by
    `post` and by the scheduler at the end of each round) hands them over,
    so noting, posting and flushing must happen under the same lock.
    Posting is synchronous (on the poster's thread, under the scheduler's
    lock): a listener must be quick, and hands slow work (the event log's
    writes) to a thread of its own.
    """

    def __init__(self) -> None:
        self._listeners: list[tuple[Listener, tuple[type, ...] | None]] = []
        self._kinds: set[type] = set()
        self._every = False
        self._every_task_end = False
        #: Whether some listener wants JobStart's stage descriptions (a lineage walk).
        self.wants_lineage = False
        #: The task counters (`add_counter`): posters call `task_launched` and
        #: `task_ended` only when there are some.
        self.counters: tuple[TaskCounter, ...] = ()
        self._launches: list[Launch] = []
        self._ends: list[End] = []
        #: While `held`: what `post` and `flush` would have delivered, in order (the
        #: counters' notes to hand over first, then the event, if any).
        self._held: list[tuple[list[Launch], list[End], SchedulerEvent | None]] | None = None
        self._holds = 0

    def add(
        self,
        listener: Listener,
        kinds: tuple[type[SchedulerEvent], ...] | None = None,
        lineage: bool = True,
        stored_task_ends: bool = False,
    ) -> None:
        """Add `listener` for `kinds` of events (None: all); `lineage`: it reads JobStart.stages.

        `stored_task_ends`: of the successful tasks' TaskEnds the listener needs only
        those of tasks that cached blocks or name their Python worker
        (`touches_storage`), so the others need not be built for it.
        """
        self._listeners.append((listener, kinds))
        if kinds is None:
            self._every = True
        else:
            self._kinds.update(kinds)
            if TaskEnd in kinds and not stored_task_ends:
                self._every_task_end = True
        if lineage and (kinds is None or JobStart in kinds):
            self.wants_lineage = True

    def wants_every_task_end(self) -> bool:
        """Whether a listener hears every successful task's TaskEnd, not only storing ones."""
        return self._every or self._every_task_end

    def add_counter(self, counter: TaskCounter) -> None:
        """Tell `counter` of every task's launch and end (no per-task event is built for it)."""
        self.counters = (*self.counters, counter)

    def task_launched(self, stage_id: int, attempt: int, task_id: int, executor_id: str) -> None:
        """Note a launch for the counters (posters check `counters` first, then `flush`)."""
        self._launches.append((stage_id, attempt, task_id, executor_id))

    def task_ended(self, stage_id: int, attempt: int, task_id: int, ok: bool) -> None:
        """Note a task's end for the counters (posters check `counters` first, then `flush`)."""
        self._ends.append((stage_id, attempt, task_id, ok))

    def flush(self) -> None:
        """Hand the counters the launches and ends noted since the last flush."""
        launches, ends = self._launches, self._ends
        if not (launches or ends):
            return
        self._launches, self._ends = [], []
        if self._held is not None:
            self._held.append((launches, ends, None))
            return
        self._hand_over(launches, ends)

    def _hand_over(self, launches: list[Launch], ends: list[End]) -> None:
        for counter in self.counters:
            try:
                if launches:
                    counter.tasks_launched(launches)
                if ends:
                    counter.tasks_ended(ends)
            except Exception:
                log.exception("task counter %r failed", counter)

    def wants(self, kind: type[SchedulerEvent]) -> bool:
        """Whether a listener hears events of `kind`."""
        return self._every or kind in self._kinds

    def __bool__(self) -> bool:
        """Whether anyone listens at all."""
        return bool(self._listeners or self.counters)

    def held(self) -> _Held:
        """A context in which posts and flushes wait, in order, for the context's end.

        A job's submission holds them until its first LaunchTasks are sent: its
        JobStart and StageSubmitted (the status tracker's bookkeeping) then run while
        the executor reads the launch rather than before it is sent. The poster holds
        the scheduler's lock throughout, so no other thread's event comes between
        them and every listener hears the same events in the same order. Nests.
        """
        return _Held(self)

    def _hold(self) -> None:
        self._holds += 1
        if self._held is None:
            self._held = []

    def _release(self) -> None:
        self._holds -= 1
        if self._holds:
            return
        held, self._held = self._held, None
        for launches, ends, event in held or ():
            if launches or ends:
                self._hand_over(launches, ends)
            if event is not None:
                self._deliver(event)

    def post(self, event: SchedulerEvent) -> None:
        if self._held is not None:
            launches, ends = self._launches, self._ends
            if launches or ends:  # counters hear of tasks before what follows them
                self._launches, self._ends = [], []
                self._held.append((launches, ends, event))
            else:
                self._held.append(([], [], event))
            return
        if self._launches or self._ends:  # counters hear of tasks before what follows them
            self.flush()
        self._deliver(event)

    def _deliver(self, event: SchedulerEvent) -> None:
        for listener, kinds in self._listeners:
            if kinds is not None and type(event) not in kinds:
                continue
            try:
                listener(event)
            except Exception:
                log.exception("listener %r failed on %s", listener, type(event).__name__)


class _Held:
    """`ListenerBus.held`'s context (a class: a generator's costs more per job)."""

    __slots__ = ("_bus",)

    def __init__(self, bus: ListenerBus) -> None:
        self._bus = bus

    def __enter__(self) -> None:
        self._bus._hold()

    def __exit__(self, *exc: object) -> None:
        self._bus._release()
