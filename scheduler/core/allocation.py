"""Dynamic allocation: how many executors an application wants, and which may go.

Spark's ExecutorAllocationManager and ExecutorMonitor as one plain policy
class, with the clock injected and no I/O or threads: the standalone backend
feeds it a `Snapshot` of the task scheduler every 100 ms and carries out its
`Decision` (a new total for the Master, executors to kill). It never talks
to the Master or touches the task scheduler itself.

- Target: ceil((pending + running tasks) * executorAllocationRatio / tasks per
  executor), never below minExecutors nor above maxExecutors. While tasks wait
  for a core for schedulerBacklogTimeout, the target grows by 1, then 2, 4, ...
  every sustainedSchedulerBacklogTimeout; once fewer are needed it drops at once.
- Removal: an executor idle (no task) for executorIdleTimeout is killed, unless
  that would leave fewer than minExecutors or fewer than the target. One holding
  cached blocks waits cachedExecutorIdleTimeout; one holding map output of a
  shuffle that a running job needs is never idle; one holding map output of a
  shuffle the program still references waits shuffleTracking.timeout.

Tasks queued on an executor beyond its cores count as waiting (our executors
take several tasks per core ahead), so the backlog is what Spark would see.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from rpcenv import Conf
from scheduler import settings

if TYPE_CHECKING:
    from scheduler.core.taskscheduler import TaskScheduler

__all__ = [
    "UNBOUNDED",
    "AllocationPolicy",
    "AllocationSettings",
    "Decision",
    "ExecutorState",
    "Snapshot",
    "Storage",
    "allocation_settings",
    "profile_settings",
    "read_snapshot",
]

log = logging.getLogger(__name__)

#: maxExecutors' default, "infinity" (Spark's Int.MaxValue; fits the int32 on the wire).
UNBOUNDED = 2**31 - 1

_PREFIX = "spark.dynamicAllocation."

#: An idle executor kept for what it holds is looked at again after at most this long:
#: reading storage scans every map output and cached block under the scheduler's lock.
STORAGE_RECHECK = 1.0


@dataclass(frozen=True)
class AllocationSettings:
    """spark.dynamicAllocation.* as read and checked at SparkContext start."""

    min_executors: int = 0
    max_executors: int = UNBOUNDED
    initial_executors: int = 0
    backlog_timeout: float = 1.0
    sustained_backlog_timeout: float = 1.0
    idle_timeout: float = 60.0
    cached_idle_timeout: float = math.inf
    allocation_ratio: float = 1.0
    shuffle_tracking: bool = True
    shuffle_timeout: float = math.inf
    #: spark.executor.cores / spark.task.cpus when spark.executor.cores is set, else
    #: None: then the smallest registered executor's cores.
    tasks_per_executor: int | None = None


def allocation_settings(conf: Conf, local: bool) -> AllocationSettings | None:
    """The checked settings, or None when dynamic allocation is off (or in local mode).

    Each key reads as its entry in `scheduler.settings` (a bad value raises
    `ConfigValueError` naming it); what is checked here is what only holds with
    dynamic allocation on, and across keys.

    Raises:
        ValueError: naming the key whose value is invalid.
    """
    if not conf.get(settings.DYN_ENABLED):
        return None
    if local:
        log.warning("spark.dynamicAllocation.enabled is ignored in local mode")
        return None
    minimum = conf.get(settings.DYN_MIN_EXECUTORS)
    maximum = conf.get(settings.DYN_MAX_EXECUTORS)
    if maximum == 0:
        raise ValueError(f"{_PREFIX}maxExecutors must be > 0")
    if minimum > maximum:
        raise ValueError(
            f"{_PREFIX}minExecutors ({minimum}) must be <= {_PREFIX}maxExecutors ({maximum})"
        )
    initial = conf.get(settings.DYN_INITIAL_EXECUTORS)
    initial = minimum if initial is None else initial
    if not minimum <= initial <= maximum:
        raise ValueError(
            f"{_PREFIX}initialExecutors ({initial}) must be between {_PREFIX}minExecutors "
            f"({minimum}) and {_PREFIX}maxExecutors ({maximum})"
        )
    instances = conf.get(settings.EXECUTOR_INSTANCES) or 0
    if instances > initial:  # as Spark: the larger of the two is the initial number
        if instances > maximum:
            log.warning(
                "spark.executor.instances (%d) is above %smaxExecutors (%d); starting with %d",
                instances,
                _PREFIX,
                maximum,
                maximum,
            )
        initial = min(instances, maximum)
    backlog = conf.get(settings.DYN_SCHEDULER_BACKLOG_TIMEOUT)
    sustained = conf.get(settings.DYN_SUSTAINED_BACKLOG_TIMEOUT)
    if backlog <= 0:
        raise ValueError(f"{_PREFIX}schedulerBacklogTimeout must be > 0, not {backlog:g}s")
    if sustained <= 0:
        raise ValueError(
            f"{_PREFIX}sustainedSchedulerBacklogTimeout must be > 0, not {sustained:g}s"
        )
    ratio = conf.get(settings.DYN_RATIO)
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"{_PREFIX}executorAllocationRatio must be > 0 and <= 1, not {ratio:g}")
    if not conf.get(settings.DYN_SHUFFLE_TRACKING):
        raise ValueError(
            f"{_PREFIX}shuffleTracking.enabled=false is not supported: sparkctl has no "
            "external shuffle service, so dynamic allocation must track which executors hold "
            "shuffle output (leave it unset or true)"
        )
    return AllocationSettings(
        min_executors=minimum,
        max_executors=maximum,
        initial_executors=initial,
        backlog_timeout=backlog,
        sustained_backlog_timeout=sustained,
        idle_timeout=conf.get(settings.DYN_IDLE_TIMEOUT),
        cached_idle_timeout=conf.get(settings.DYN_CACHED_IDLE_TIMEOUT),
        allocation_ratio=ratio,
        shuffle_timeout=conf.get(settings.DYN_SHUFFLE_TRACKING_TIMEOUT),
        tasks_per_executor=_tasks_per_executor(conf),
    )


def _tasks_per_executor(conf: Conf) -> int | None:
    cores = conf.get(settings.EXECUTOR_CORES)
    if cores is None:
        return None
    cpus = conf.get(settings.TASK_CPUS)
    if cores < cpus:
        raise ValueError(
            f"spark.executor.cores ({cores}) must not be less than spark.task.cpus ({cpus})"
        )
    return cores // cpus


@dataclass(frozen=True)
class ExecutorState:
    """One registered executor as the task scheduler sees it at a tick."""

    executor_id: str
    cores: int
    #: Tasks launched to it and not finished (including those queued behind its cores).
    running: int
    #: Tasks it has ended so far: a change between ticks means it was busy meanwhile.
    finished: int


@dataclass(frozen=True)
class Storage:
    """What some executors hold that may keep them alive."""

    #: Executors holding cached RDD blocks.
    cached: frozenset[str] = frozenset()
    #: Shuffle ids with map output on each executor.
    shuffles: Mapping[str, frozenset[int]] = field(default_factory=dict)
    #: Shuffles a running job needs.
    active_shuffles: frozenset[int] = frozenset()
    #: Shuffles the driver program still references (their dependency is alive).
    live_shuffles: frozenset[int] = frozenset()


def _no_storage(executors: Collection[str]) -> Storage:
    return Storage()


@dataclass
class Snapshot:
    """The task scheduler's state at one tick."""

    #: Tasks of active stages not launched yet (speculative copies included).
    pending_tasks: int
    #: Whether any stage is active (the first one ends the initial period).
    stages_active: bool
    executors: list[ExecutorState]
    #: Reads what the given executors hold; called only for idle candidates.
    storage: Callable[[Collection[str]], Storage] = _no_storage


@dataclass(frozen=True)
class Decision:
    """What to do now: ask the Master for a new total, kill executors."""

    #: The new total to request, or None when it did not change.
    total: int | None = None
    #: The target before this tick (to restore if the Master did not acknowledge).
    previous_total: int = 0
    kill: list[str] = field(default_factory=list)


class AllocationPolicy:
    """Spark's dynamic allocation policy, driven by `tick` with the clock injected.

    Args:
        settings: the checked spark.dynamicAllocation.* values.
        clock: monotonic seconds (a fake one in tests).
    """

    def __init__(
        self, settings: AllocationSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        #: The number of executors wanted now; the Master's limit for the app.
        self.target = settings.initial_executors
        self._to_add = 1
        self._add_at: float | None = None
        #: Until the first stage or idle timeout the target stays at initialExecutors,
        #: so that the first job does not start by ramping down.
        self._initializing = True
        self._idle_since: dict[str, float] = {}
        #: Idle executors kept for their storage, and when to look at them again.
        self._recheck_at: dict[str, float] = {}
        self._finished: dict[str, int] = {}
        #: Killed, not yet gone from the task scheduler.
        self.pending_removal: set[str] = set()
        s = settings
        self._shortest_timeout = min(s.idle_timeout, s.cached_idle_timeout, s.shuffle_timeout)

    def tick(self, snapshot: Snapshot) -> Decision:
        """Update from the scheduler's state; returns what to ask of the cluster manager."""
        now = self._clock()
        executors = snapshot.executors
        ran = self._observe(executors, now)
        launched = sum(e.running for e in executors)
        waiting = snapshot.pending_tasks + sum(max(0, e.running - e.cores) for e in executors)
        if snapshot.stages_active or ran:  # a job too short to be seen counts too
            self._initializing = False
        if waiting > 0:
            if self._add_at is None:
                self._add_at = now + self.settings.backlog_timeout
        else:
            self._add_at = None
            self._to_add = 1
        expired = self._timed_out(snapshot, now)
        if expired:
            self._initializing = False
        previous = self.target
        self._update_target(now, self._needed(snapshot.pending_tasks + launched, executors))
        kill = self._removable(expired, len(executors), now)
        total = self.target if self.target != previous else None
        return Decision(total, previous, kill)

    def not_acknowledged(self, decision: Decision) -> None:
        """The Master did not take the new total: keep the old one, retry later."""
        if decision.total is not None and self.target == decision.total:
            self.target = decision.previous_total
            self._to_add = 1

    def not_killed(self, executor_ids: Collection[str]) -> None:
        """These executors were not killed (busy again, or the Master refused)."""
        self.pending_removal.difference_update(executor_ids)

    # -- internals ----------------------------------------------------------------------

    def _observe(self, executors: list[ExecutorState], now: float) -> bool:
        """Track idle times; returns whether any executor ran tasks since the last tick."""
        ran = False
        present = set()
        for e in executors:
            present.add(e.executor_id)
            last = self._finished.get(e.executor_id)
            self._finished[e.executor_id] = e.finished
            if e.running > 0:
                self._idle_since.pop(e.executor_id, None)
                self._recheck_at.pop(e.executor_id, None)
            elif last is not None and last != e.finished:
                self._idle_since[e.executor_id] = now  # it ran tasks since the last tick
                self._recheck_at.pop(e.executor_id, None)
                ran = True
            else:
                self._idle_since.setdefault(e.executor_id, now)
        for gone in set(self._finished) - present:
            del self._finished[gone]
            self._idle_since.pop(gone, None)
            self._recheck_at.pop(gone, None)
            self.pending_removal.discard(gone)
        return ran

    def _needed(self, tasks: int, executors: list[ExecutorState]) -> int:
        per_executor = self.settings.tasks_per_executor
        if per_executor is None:
            per_executor = min((e.cores for e in executors), default=1)
        return math.ceil(tasks * self.settings.allocation_ratio / max(1, per_executor))

    def _update_target(self, now: float, needed: int) -> None:
        s = self.settings
        if self._initializing:
            return
        if needed < self.target:
            self.target = max(needed, s.min_executors)
            self._to_add = 1
        elif self._add_at is not None and now >= self._add_at:
            self._add(needed, len(self._finished))
            self._add_at = now + s.sustained_backlog_timeout

    def _add(self, needed: int, registered: int) -> None:
        s = self.settings
        if self.target >= s.max_executors:
            self._to_add = 1
            return
        # No point ramping up through executors we already have.
        target = max(self.target, registered) + self._to_add
        target = max(min(target, needed, s.max_executors), s.min_executors)
        delta = target - self.target
        if delta <= 0:
            self._to_add = 1
            return
        log.info(
            "dynamic allocation: asking for %d more executor(s) because tasks are backlogged "
            "(new total %d)",
            delta,
            target,
        )
        self._to_add = self._to_add * 2 if delta == self._to_add else 1
        self.target = target

    def _timed_out(self, snapshot: Snapshot, now: float) -> list[str]:
        candidates = [
            executor_id
            for executor_id, since in self._idle_since.items()
            if executor_id not in self.pending_removal
            and now - since >= self._shortest_timeout
            and now >= self._recheck_at.get(executor_id, since)
        ]
        if not candidates:
            return []
        s = self.settings
        storage = snapshot.storage(candidates)
        expired: list[str] = []
        for executor_id in sorted(candidates, key=_natural):
            shuffles = storage.shuffles.get(executor_id, frozenset()) & storage.live_shuffles
            since = self._idle_since[executor_id]
            if shuffles & storage.active_shuffles:
                self._recheck_at[executor_id] = now + STORAGE_RECHECK
                continue  # a running job still reads its shuffle output
            cached = executor_id in storage.cached
            if cached or shuffles:
                timeout = min(
                    s.cached_idle_timeout if cached else math.inf,
                    s.shuffle_timeout if shuffles else math.inf,
                )
            else:
                timeout = s.idle_timeout
            if now - since >= timeout:
                expired.append(executor_id)
            else:
                self._recheck_at[executor_id] = min(since + timeout, now + STORAGE_RECHECK)
        return expired

    def _removable(self, expired: list[str], registered: int, now: float) -> list[str]:
        left = registered - len(self.pending_removal)
        kill: list[str] = []
        for executor_id in expired:
            if left - 1 < self.settings.min_executors or left - 1 < self.target:
                self._recheck_at[executor_id] = now + STORAGE_RECHECK
                continue
            kill.append(executor_id)
            left -= 1
        if kill:
            log.info(
                "dynamic allocation: removing idle executor(s) %s (%d left)", ", ".join(kill), left
            )
        self.pending_removal.update(kill)
        return kill


def profile_settings(
    settings: AllocationSettings, cores: int | None, task_cpus: int
) -> AllocationSettings:
    """A stage-level profile's own allocation: from no executors, sized by its cores."""
    per_executor = max(1, (cores or 1) // max(1, task_cpus))
    return replace(settings, min_executors=0, initial_executors=0, tasks_per_executor=per_executor)


def read_snapshot(scheduler: TaskScheduler, profile_id: int = 0) -> Snapshot:
    """The task scheduler's state, read under its lock in one pass (no per-task hooks).

    Only the tasks and executors of resource profile `profile_id` (0: the default).
    """
    with scheduler.lock:
        tsms = [
            t
            for t in scheduler.tsms.values()
            if not scheduler.executor_profiles or scheduler.executor_profile_of(t) == profile_id
        ]
        pending = sum(len(t.pending) + len(t.speculatable) for t in tsms if not t.zombie)
        executors = [
            ExecutorState(
                h.executor_id, h.cores, len(h.running), h.completed_tasks + h.failed_tasks
            )
            for h in scheduler.executors.values()
            if h.profile_id == profile_id
        ]
        active = bool(scheduler.tsms) if profile_id == 0 else bool(tsms)
    return Snapshot(pending, active, executors, lambda ids: read_storage(scheduler, ids))


def read_storage(scheduler: TaskScheduler, executor_ids: Collection[str]) -> Storage:
    """What the given executors hold: cached blocks, shuffle map output, and which is needed.

    Map output counts for the shuffles whose ShuffleDependency the program still
    references (our ContextCleaner-less stand-in for "not cleaned yet").
    """
    wanted = frozenset(executor_ids)
    shuffles: dict[str, set[int]] = {}
    with scheduler.lock:
        cached = frozenset(e for held in scheduler.cache_locations.values() for e in held & wanted)
        dag = scheduler.dag
        for shuffle_id, outputs in dag.map_outputs.items():
            for out in outputs:
                if out is not None and out.executor_id in wanted:
                    shuffles.setdefault(out.executor_id, set()).add(shuffle_id)
        active = frozenset(
            st.shuffle_dep.shuffle_id for st in dag.stages.values() if st.shuffle_dep is not None
        )
        live = frozenset(dag.shuffle_deps.keys())
    return Storage(cached, {e: frozenset(ids) for e, ids in shuffles.items()}, active, live)


def _natural(executor_id: str) -> tuple[int, str]:
    return (len(executor_id), executor_id)
