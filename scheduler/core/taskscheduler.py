"""TaskScheduler: matches task sets to executor cores and applies task outcomes.

It owns the driver's scheduling lock: user threads submitting or cancelling
jobs and the "CoarseGrainedScheduler" endpoint delivering status updates all
enter here, so the DAGScheduler and TaskSetManagers (plain classes) are only
touched under it. A stage attempt's code is pickled once; an executor gets it
(and the broadcasts it references) with the first task it runs of that
attempt, and launches to one executor are batched into one LaunchTasks.
Sending goes through the `ExecutorHandle.send` callables; nothing here
blocks on the network.
"""

from __future__ import annotations

import itertools
import logging
import pickle
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from scheduler.core.barrier import BarrierCoordinator
from scheduler.core.dag import DAGScheduler, Job, TaskSet
from scheduler.core.events import (
    ExecutorAdded,
    ExecutorRemoved,
    FetchFailure,
    JobEnd,
    JobStart,
    LaunchedTask,
    ListenerBus,
    StageCompleted,
    StageSubmitted,
    TaskEnd,
    TasksLaunched,
    UnpersistRDD,
    touches_storage,
)
from scheduler.core.jobs import wakeups_after
from scheduler.core.tasksetmanager import Attempt, TaskSetManager
from scheduler.rdd.callsite import stage_name, task_set_name
from scheduler.rdd.lineage import stage_rdds
from scheduler.rdd.profiles import stage_profile
from scheduler.rdd.rdd import RDD
from scheduler.rdd.shipping import shipping
from scheduler.resource.profile import ResourceProfile, TaskRequirement, default_profile
from scheduler.resource.slots import ResourceSlots
from scheduler.task.broadcast import collect_broadcast_ids
from scheduler.task.stagecode import dumps_stage
from sparkctl.v1 import scheduler_pb2 as pb

if TYPE_CHECKING:  # only the backend, which makes handles, holds these
    from rpcenv import RpcAddress, RpcEndpointRef

__all__ = ["ExecutorHandle", "SchedulerSettings", "TaskScheduler"]

log = logging.getLogger(__name__)

#: Stage code or broadcasts larger than this are fetched by executors in chunks.
INLINE_LIMIT = 32 << 20

#: Seconds tasks may wait with no executor before the driver warns, and between warnings
#: (spark.starvation.timeout).
STARVATION_TIMEOUT = 15.0

#: Weight of the newest task in an executor's running average of task durations.
_DURATION_WEIGHT = 0.2


#: Tasks of a task set that must have finished before more of them than free cores
#: are queued on an executor: a set is judged by its own tasks, not by earlier jobs'.
#: Two (one round on local[2]): each more costs a tiny set a status round trip
#: before its queue deepens. Executors wait for 4 of their own (no round trip).
PROVEN_TASKS = 2


def queue_depth(task_seconds: float | None, finished: int = PROVEN_TASKS) -> int:
    """Tasks of a task set to keep per executor core, given how long its tasks run.

    Tiny tasks queue deep, so that launches and status updates travel dozens to a
    message and the next task is always there when one ends. Long tasks, and those
    of a set fewer than PROVEN_TASKS of whose tasks (`finished`) have ended, get one
    a free core and none queued behind: a long task queued on one executor while
    another one's core idled cost a stage up to a task's time at its end.
    """
    if task_seconds is None or finished < PROVEN_TASKS:
        return 1
    if task_seconds < 0.005:
        return 64  # with 64-status batches: W2 CPU a task -25% against 32 (6 pairs, load 4)
    if task_seconds < 0.05:
        return 8
    return 1


def _no_worker_limit(profile: ResourceProfile) -> int:
    """No backend said otherwise: a stage's Python workers keep their executor's limit."""
    return 0


@dataclass
class ExecutorHandle:
    """What the driver knows about one registered executor."""

    executor_id: str
    host: str
    cores: int
    send: Callable[[Message], None]
    #: Where its connection to the driver comes from (None for a handle made in a test).
    address: RpcAddress | None = None
    #: The executor endpoint's ref, for asks (shuffle bytes relayed to other executors).
    ref: RpcEndpointRef | None = None
    #: "host:port" of its block manager ("" if it serves none): a barrier task's address.
    block_address: str = ""
    local_dir: str = ""
    pid: int = 0
    #: "stdout"/"stderr" -> the URL of that log on its worker's web UI.
    log_urls: dict[str, str] = field(default_factory=dict)
    running: set[int] = field(default_factory=set)
    stages: set[str] = field(default_factory=set)
    broadcasts: set[int] = field(default_factory=set)
    registered_at: float = field(default_factory=time.time)
    last_heartbeat: float = field(default_factory=time.monotonic)
    completed_tasks: int = 0
    failed_tasks: int = 0
    #: Custom resource addresses it holds (name -> addresses), from its worker.
    resources: dict[str, list[str]] = field(default_factory=dict)
    #: The resource profile it was started for (0: the application's default).
    profile_id: int = 0
    #: Which of those addresses its running tasks hold.
    slots: ResourceSlots = field(init=False)
    #: Cores its running tasks of stage profiles hold beyond spark.task.cpus each.
    extra_cpus: int = 0

    def __post_init__(self) -> None:
        self.slots = ResourceSlots(self.resources)


@dataclass
class SchedulerSettings:
    max_failures: int = 4
    #: Cores each task takes (spark.task.cpus): an executor runs cores // task_cpus at once.
    task_cpus: int = 1
    max_stage_attempts: int = 4
    locality_wait: float = 3.0
    speculation: bool = False
    speculation_multiplier: float = 1.5
    speculation_quantile: float = 0.75
    #: spark.driver.maxResultSize in bytes (0: no limit) for the results of a result stage.
    max_result_size: int = 1 << 30
    #: spark.barrier.sync.timeout: seconds a barrier()/allGather() waits for all tasks.
    barrier_sync_timeout: float = 365 * 86400.0


@dataclass
class _Payload:
    data: bytes
    broadcasts: set[int]


class TaskScheduler:
    """The driver's scheduler: DAGScheduler + TaskSetManagers + executors."""

    def __init__(
        self,
        settings: SchedulerSettings,
        broadcast_data: Callable[[int], bytes],
        apply_accumulators: Callable[[dict[int, Any]], None],
        on_executor_lost: Callable[[str, str], None] | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.settings = settings
        self._broadcast_data = broadcast_data
        self._apply_accumulators = apply_accumulators
        self._on_executor_lost = on_executor_lost
        self.executors: dict[str, ExecutorHandle] = {}
        self.executors_changed = threading.Condition(self.lock)
        self.tsms: dict[str, TaskSetManager] = {}
        self._task_owner: dict[int, tuple[TaskSetManager, str]] = {}
        self._payloads: dict[str, _Payload] = {}
        self._task_ids = itertools.count()
        self.cache_locations: dict[tuple[int, int], set[str]] = {}
        self.metrics: dict[str, float] = {"diskBytesSpilled": 0, "spills": 0, "tasks": 0}
        self.dag = DAGScheduler(self, settings.max_stage_attempts, self._cached_on)
        self.dag.max_slots = self.max_slots
        #: Syncs the tasks of barrier stages (their barrier() and allGather() asks).
        self.barrier = BarrierCoordinator(settings.barrier_sync_timeout, self.lock)
        #: Where the UI's store and the event log hear of jobs, stages, tasks, executors.
        self.bus = ListenerBus()
        #: Local dirs of every executor that registered (removed at the end in local mode).
        self.local_dirs: set[str] = set()
        #: Stage code and broadcasts too large to inline, fetched by executors in chunks.
        self.blobs: dict[str, bytes] = {}
        #: Files added with sc.addFile, served by name from the driver's copy.
        self.file_blobs: dict[str, str] = {}
        #: Keys of live task sets whose StageCompleted was posted (see `_stage_over`).
        self._completed: set[str] = set()
        #: Set when the application ends: executors going away is expected then.
        self.stopping = False
        #: Since when tasks have been waiting with no executor at all (None: they are not).
        self._starving_since: float | None = None
        #: Profile 0, from the application's conf (the context sets it at start).
        self.default_profile = default_profile({}, settings.task_cpus)
        #: Each task set's resource profile (only those not the default).
        self._set_profiles: dict[str, ResourceProfile] = {}
        #: Profiles that need executors of their own (stage-level scheduling), by id.
        self.executor_profiles: dict[int, ResourceProfile] = {}
        #: Task id -> (executor, addresses, requirement) of tasks holding custom resources.
        self._task_resources: dict[
            int, tuple[ExecutorHandle, dict[str, list[str]], dict[str, TaskRequirement]]
        ] = {}
        #: Task id -> (executor, its cpus less spark.task.cpus) of stage-profile tasks.
        self._task_cpus: dict[int, tuple[ExecutorHandle, int]] = {}
        #: A task-only profile's Python worker memory limit in MiB (0: the executors' own),
        #: which the backend that knows the app's pyspark memory and cores sets.
        self.task_profile_worker_limit: Callable[[ResourceProfile], int] = _no_worker_limit

    # -- jobs -----------------------------------------------------------------------------

    def cancel_jobs(self, where: Callable[[Mapping[str, str]], bool] | None, reason: str) -> None:
        """Cancel the running jobs whose properties `where` accepts (every job when None)."""
        with self.lock:
            for job in list(self.dag.jobs.values()):
                if where is None or where(job.properties):
                    self.dag.cancel_job(job.id, reason)

    def cancel_job(self, job_id: int, reason: str) -> None:
        """Cancel one job (nothing if it already ended)."""
        with self.lock:
            self.dag.cancel_job(job_id, reason)

    def job_ended(self, job_id: int, status: str, error: BaseException | None = None) -> None:
        """Announce how a job ended, as the thread that waited for it saw it.

        Posted under the lock like every other event: the waiter woke only after
        the scheduler announced the job's last StageCompleted, so JobEnd follows it.
        """
        if self.bus.wants(JobEnd):
            with self.lock:
                self.bus.post(JobEnd(job_id, status, None if error is None else str(error)))

    # -- DAGScheduler sink -------------------------------------------------------------

    def job_started(self, job: Job) -> None:
        """Announce a job before any of its stages is submitted (under the lock)."""
        if not self.bus.wants(JobStart):
            return
        props = job.properties
        stage_ids = self.dag.job_stage_ids(job.id)
        stages = []
        for stage_id in stage_ids if self.bus.wants_lineage else ():  # a walk: when wanted
            stage = self.dag.stages[stage_id]
            stages.append(
                {
                    "stage_id": stage_id,
                    "name": stage_name(stage.rdd, props, stage.is_map),
                    "num_tasks": stage.num_tasks,
                    "parent_ids": [p.id for p in stage.parents],
                    "is_map": stage.is_map,
                    "rdds": stage_rdds(stage.rdd),
                }
            )
        self.bus.post(
            JobStart(
                job.id,
                tuple(stage_ids),
                tuple(stages),
                props.get("spark.jobGroup.id"),
                props.get("spark.job.description"),
            )
        )

    def submit_task_set(self, task_set: TaskSet) -> None:
        with collect_broadcast_ids() as tracked, shipping(task_set.spec.rdd):
            data = dumps_stage(task_set.spec)
        self._payloads[task_set.key] = _Payload(data, tracked.ids)
        now = time.monotonic()
        tsm = TaskSetManager(
            task_set,
            self.settings.max_failures,
            self.settings.locality_wait,
            self.settings.speculation,
            self.settings.speculation_multiplier,
            self.settings.speculation_quantile,
            now,
        )
        self.tsms[task_set.key] = tsm
        profile = stage_profile(task_set.spec.rdd)
        if profile is not None and profile.id != self.default_profile.id:
            self._set_profiles[task_set.key] = profile
            if not profile.task_only:
                self.executor_profiles.setdefault(profile.id, profile)
        if self.bus.wants(StageSubmitted):
            self.bus.post(
                StageSubmitted(
                    task_set.stage_id, task_set.attempt, len(task_set.partitions),
                    task_set.job_id, task_set_name(task_set.spec),
                )
            )  # fmt: skip
        self.revive()

    def cancel_stage(self, stage_id: int, reason: str) -> None:
        for key, tsm in list(self.tsms.items()):
            if tsm.task_set.stage_id != stage_id:
                continue
            victims = tsm.abort(reason)
            self._kill(victims, reason)
            self._stage_over(tsm)  # before the DAGScheduler fails the job (JobEnd)
            if tsm.barrier:
                self.barrier.finished(stage_id, tsm.task_set.attempt, f"stage cancelled: {reason}")
            if tsm.is_finished():
                self._retire(key)

    # -- executors ------------------------------------------------------------------------

    def register_executor(self, handle: ExecutorHandle) -> bool:
        with self.lock:
            if handle.executor_id in self.executors:
                return False
            if handle.cores < self.settings.task_cpus:
                log.warning(
                    "executor %s has %d core(s), fewer than spark.task.cpus=%d: it runs one "
                    "task at a time",
                    handle.executor_id,
                    handle.cores,
                    self.settings.task_cpus,
                )
            self.executors[handle.executor_id] = handle
            if handle.local_dir:
                self.local_dirs.add(handle.local_dir)
            self.executors_changed.notify_all()
            self.bus.post(
                ExecutorAdded(handle.executor_id, handle.host, handle.cores, dict(handle.log_urls))
            )
            self.revive()
            return True

    def executor_lost(self, executor_id: str, reason: str, expected: bool = False) -> None:
        """Forget an executor and resubmit its tasks; `expected`: we removed it on purpose."""
        with self.lock:
            handle = self.executors.pop(executor_id, None)
            if handle is None:
                return
            if self.stopping or expected:
                log.info("executor %s stopped: %s", executor_id, reason)
            else:
                log.warning("lost executor %s: %s", executor_id, reason)
            for tsm in list(self.tsms.values()):
                was_zombie = tsm.zombie
                for task_id in tsm.executor_lost(executor_id, reason):
                    self._task_owner.pop(task_id, None)
                self._check_barrier_failure(tsm)
                if tsm.zombie and not was_zombie and tsm.abort_reason is not None:
                    task_set = tsm.task_set
                    self._kill(sorted(tsm.running), "stage aborted")
                    self._stage_over(tsm)
                    self.dag.task_set_failed(task_set.stage_id, task_set.attempt, tsm.abort_reason)
            for task_id in [t for t, v in self._task_resources.items() if v[0] is handle]:
                del self._task_resources[task_id]
            for locations in self.cache_locations.values():
                locations.discard(executor_id)
            self.dag.executor_lost(executor_id)
            self.executors_changed.notify_all()
            self.bus.post(ExecutorRemoved(executor_id, reason))
            self._retire_finished()
            self.revive()
        if self._on_executor_lost is not None:
            self._on_executor_lost(executor_id, reason)

    def expire_silent_executors(self, timeout: float) -> None:
        """Executors that sent no heartbeat for `timeout` seconds are lost (e.g. frozen)."""
        now = time.monotonic()
        with self.lock:
            silent = [h for h in self.executors.values() if now - h.last_heartbeat > timeout]
        for handle in silent:
            handle.send(pb.StopExecutor(reason=f"no heartbeat for {timeout:.0f}s"))
            self.executor_lost(handle.executor_id, f"no heartbeat for {timeout:.0f}s")

    def heartbeat(self, executor_id: str) -> None:
        handle = self.executors.get(executor_id)
        if handle is not None:
            handle.last_heartbeat = time.monotonic()

    # -- offers -----------------------------------------------------------------------------

    def max_slots(self, profile: ResourceProfile | None = None) -> int:
        """How many tasks of `profile` (None: the default) the executors can run at once.

        As Spark's maxNumConcurrentTasks: on each executor of the profile's executors,
        its cores over the task's cpus, and no more than its custom resources allow.
        """
        profile = profile or self.default_profile
        executor_profile = self.default_profile.id if profile.task_only else profile.id
        task_cpus = profile.task_cpus(self.settings.task_cpus)
        wanted = profile.task_requirements()
        total = 0
        for h in self.executors.values():
            if h.profile_id != executor_profile:
                continue
            slots = max(1, h.cores // task_cpus)
            by_resources = h.slots.capacity(wanted)
            total += slots if by_resources is None else min(slots, by_resources)
        return total

    def _offer_barrier(
        self, tsm: TaskSetManager, launches: dict[str, pb.LaunchTasks], now: float
    ) -> list[Attempt]:
        """Launch all tasks of a barrier set on free slots, or none (lock held)."""
        executor_profile, task_cpus, wanted = self._needs(tsm)
        slots: list[str] = []
        for h in self.executors.values():
            if h.profile_id != executor_profile:
                continue
            free = max(0, max(1, h.cores // task_cpus) - len(h.running))
            by_resources = h.slots.free_capacity(wanted)
            if by_resources is not None:
                free = min(free, by_resources)
            slots += [h.executor_id] * free
        if len(slots) < len(tsm.pending):
            return []  # not all at once: none (and no task id spent)
        first = next(self._task_ids)
        attempts = tsm.barrier_offer(slots, now, first)
        if not attempts:
            return []
        # Keep the ids barrier_offer used (consecutive from `first`) out of later launches.
        for _ in range(len(attempts) - 1):
            next(self._task_ids)
        ts = tsm.task_set
        addresses: dict[int, str] = {}
        for attempt in attempts:
            handle = self.executors[attempt.executor_id]
            self._add_launch(launches, handle, tsm, attempt.index, attempt.attempt, attempt.task_id)
            addresses[ts.partitions[attempt.index]] = handle.block_address or handle.host
        self.barrier.launched(ts.stage_id, ts.attempt, addresses)
        return attempts

    def _check_barrier_failure(self, tsm: TaskSetManager) -> None:
        """A barrier set's task failed: fail its waiting syncs, retry the stage (lock held)."""
        if tsm.barrier_failure is None or tsm.barrier_reported:
            return
        tsm.barrier_reported = True
        ts = tsm.task_set
        reason = f"a barrier task of stage {ts.key} failed: {tsm.barrier_failure}"
        self.barrier.finished(ts.stage_id, ts.attempt, reason)
        self._kill(sorted(tsm.running), "a barrier task of this stage failed")
        self._stage_over(tsm)  # before the DAGScheduler resubmits the stage
        self.dag.barrier_task_failed(
            ts.stage_id, ts.attempt, tsm.barrier_failure, tsm.barrier_failed_partition
        )

    def revive(self) -> None:
        """Offer free executor slots to task sets, FIFO by job then stage; send launches."""
        with self.lock:
            active = [t for t in self.tsms.values() if t.has_pending()]
            if not active or not self.executors:
                return
            active.sort(key=lambda t: (t.task_set.job_id, t.task_set.stage_id))
            now = time.monotonic()
            alive = len(self.executors)
            launches: dict[str, pb.LaunchTasks] = {}
            # For the UI's task table and task stream: one event per offer round, not per task.
            launched: list[LaunchedTask] | None = [] if self.bus.wants(TasksLaunched) else None
            counted = bool(self.bus.counters)  # the status tracker: counts, no event per task
            for tsm in active:
                if not tsm.barrier:
                    continue
                for attempt in self._offer_barrier(tsm, launches, now):
                    if counted:
                        ts = tsm.task_set
                        self.bus.task_launched(
                            ts.stage_id, ts.attempt, attempt.task_id, attempt.executor_id
                        )
                    if launched is not None:
                        ts, index = tsm.task_set, attempt.index
                        launched.append(
                            LaunchedTask(attempt.task_id, ts.stage_id, ts.attempt, index,
                                         attempt.attempt, attempt.executor_id,
                                         ts.partitions[index], True, False)
                        )  # fmt: skip
            active = [t for t in active if not t.barrier]
            progress = bool(active)
            # A busy executor is refilled only once a quarter of its queue has drained,
            # so that launches travel several to a message; an idle one gets work at once.
            task_cpus = self.settings.task_cpus
            slots = free = 0
            for h in self.executors.values():
                cores = max(1, h.cores // task_cpus)
                slots += cores
                free += max(0, cores - len(h.running))
            several = len(self.executors) > 1
            depths = {}
            for t in active:
                pending = len(t.pending)
                if pending <= free:
                    # What is left fits the free cores: none queues behind a running task.
                    depths[t.task_set.key] = 1
                    continue
                depth = queue_depth(t.run_seconds, t.num_done)
                if several and depth > 1:
                    # A task queued on one executor cannot move to another whose core
                    # frees first: each core queues at most its share of what is left,
                    # so a set's last tasks wait here for whichever core is free.
                    depth = min(depth, -(-pending // slots))
                depths[t.task_set.key] = depth
            deepest = max(depths.values(), default=1)
            eligible = []
            for h in self.executors.values():
                room = max(1, h.cores // task_cpus) * deepest
                if not h.running or room - len(h.running) >= max(1, room // 4):
                    eligible.append(h)
            needs = {t.task_set.key: self._needs(t) for t in active}
            while progress:
                progress = False
                for handle in eligible:
                    held = len(handle.running)
                    for tsm in active:
                        profile_id, cpus, wanted = needs[tsm.task_set.key]
                        if profile_id != handle.profile_id:
                            continue
                        if not tsm.has_pending():
                            continue
                        if cpus != task_cpus:
                            # A stage profile's cpus: only on cores free now, none queued
                            # behind (its executor runs a task per worker, whatever cpus).
                            used = held * task_cpus + handle.extra_cpus
                            if held and used + cpus > handle.cores:
                                continue
                        elif held >= max(1, handle.cores // cpus) * depths[tsm.task_set.key]:
                            continue
                        if wanted and not handle.slots.fits(wanted):
                            continue
                        task_id = next(self._task_ids)
                        offered = tsm.resource_offer(handle.executor_id, now, alive, task_id)
                        if offered is None:
                            continue
                        attempt = offered
                        self._add_launch(
                            launches, handle, tsm, attempt.index, attempt.attempt, task_id
                        )
                        if counted:
                            ts = tsm.task_set
                            self.bus.task_launched(
                                ts.stage_id, ts.attempt, task_id, handle.executor_id
                            )
                        if launched is not None:
                            ts, index = tsm.task_set, attempt.index
                            preferred = ts.preferred[index]
                            launched.append(
                                LaunchedTask(task_id, ts.stage_id, ts.attempt, index,
                                             attempt.attempt, handle.executor_id,
                                             ts.partitions[index],
                                             not preferred or handle.executor_id in preferred,
                                             attempt.speculative)
                            )  # fmt: skip
                        progress = True
                        break
            if launched:
                self.bus.post(TasksLaunched(tuple(launched)))
            if counted:
                self.bus.flush()
            for executor_id, message in launches.items():
                self.executors[executor_id].send(message)

    def _add_launch(
        self,
        launches: dict[str, pb.LaunchTasks],
        handle: ExecutorHandle,
        tsm: TaskSetManager,
        index: int,
        attempt: int,
        task_id: int,
    ) -> None:
        message = launches.get(handle.executor_id)
        if message is None:
            message = launches[handle.executor_id] = pb.LaunchTasks()
        key = tsm.task_set.key
        if key not in handle.stages:
            payload = self._payloads[key]
            for bid in sorted(payload.broadcasts - handle.broadcasts):
                data = self._broadcast_data(bid)
                if len(data) > INLINE_LIMIT:
                    blob = self._blob(f"broadcast-{bid}", data)
                    message.broadcasts.add(broadcast_id=bid, blob=blob, size=len(data))
                else:
                    message.broadcasts.add(broadcast_id=bid, data=data)
                handle.broadcasts.add(bid)
            if len(payload.data) > INLINE_LIMIT:
                blob = self._blob(f"stage-{key}", payload.data)
                stage = message.stages.add(
                    taskset=key, blob=blob, size=len(payload.data), barrier=tsm.barrier
                )
            else:
                stage = message.stages.add(taskset=key, data=payload.data, barrier=tsm.barrier)
            staged = self._set_profiles.get(key)
            if staged is not None and staged.task_only:
                # On the default executors, yet its Python workers sized by its own cpus.
                stage.python_worker_limit_mb = self.task_profile_worker_limit(staged)
            handle.stages.add(key)
        task = message.tasks.add(
            task_id=task_id, taskset=key, partition=tsm.task_set.partitions[index], attempt=attempt
        )
        profile = self._set_profiles.get(key)
        if profile is not None:
            task.cpus = profile.task_cpus(self.settings.task_cpus)
            if task.cpus != self.settings.task_cpus:
                extra = task.cpus - self.settings.task_cpus
                handle.extra_cpus += extra
                self._task_cpus[task_id] = (handle, extra)
        wanted = (profile or self.default_profile).task_requirements()
        if wanted:
            given = handle.slots.acquire(wanted)
            if given is not None:
                self._task_resources[task_id] = (handle, given, wanted)
                for name, addresses in sorted(given.items()):
                    task.resources.add(name=name, addresses=addresses)
        handle.running.add(task_id)
        self._task_owner[task_id] = (tsm, handle.executor_id)

    def executor_profile_of(self, tsm: TaskSetManager) -> int:
        """The profile whose executors may run `tsm`'s tasks (lock held)."""
        return self._needs(tsm)[0]

    def _needs(self, tsm: TaskSetManager) -> tuple[int, int, dict[str, TaskRequirement]]:
        """(executor profile id, cpus, custom resources) each task of `tsm` needs (lock held).

        A task-only profile runs on the default profile's executors, as in Spark.
        """
        profile = self._set_profiles.get(tsm.task_set.key)
        if profile is None:
            profile = self.default_profile
        executor_profile = self.default_profile.id if profile.task_only else profile.id
        return (
            executor_profile,
            profile.task_cpus(self.settings.task_cpus),
            profile.task_requirements(),
        )

    def _release_resources(self, task_id: int) -> None:
        """Free the custom resource addresses and profile cpus a finished task held (lock held)."""
        cpus = self._task_cpus.pop(task_id, None)
        if cpus is not None:
            cpus[0].extra_cpus -= cpus[1]
        held = self._task_resources.pop(task_id, None)
        if held is not None:
            handle, given, wanted = held
            handle.slots.release(given, wanted)

    # -- outcomes ---------------------------------------------------------------------------

    def status_update(self, executor_id: str, statuses: list[pb.TaskStatus]) -> None:
        with wakeups_after(), self.lock:  # a finished job's thread wakes after the batch
            now = time.monotonic()
            handle = self.executors.get(executor_id)
            for status in statuses:
                self._release_resources(status.task_id)
                owner = self._task_owner.pop(status.task_id, None)
                if handle is not None:
                    handle.running.discard(status.task_id)
                if owner is None:
                    continue
                tsm, _ = owner
                if status.state == pb.TASK_STATE_FINISHED:
                    seconds = tsm.run_seconds
                    tsm.run_seconds = (
                        status.run_seconds
                        if seconds is None
                        else seconds + _DURATION_WEIGHT * (status.run_seconds - seconds)
                    )
                self._apply(tsm, executor_id, status, now, handle)
                if tsm.is_finished():
                    self._retire(tsm.task_set.key)
            self.bus.flush()
            self.revive()

    def _apply(
        self,
        tsm: TaskSetManager,
        executor_id: str,
        status: pb.TaskStatus,
        now: float,
        handle: ExecutorHandle | None,
    ) -> None:
        task_set = tsm.task_set
        # A task that ends after its attempt was announced over (an aborted set's) is not
        # announced: listeners took it as killed at StageCompleted.
        bus = self.bus
        over = task_set.key in self._completed
        announce = not over and bus.wants(TaskEnd)
        count = not over and bool(bus.counters)  # the status tracker, told without an event
        task = tsm.running.get(status.task_id) if announce else None
        if status.state == pb.TASK_STATE_FINISHED:
            index, duplicates = tsm.handle_success(status.task_id, now)
            if handle is not None:
                handle.completed_tasks += 1
            self._kill(duplicates, "another attempt succeeded")
            if index is None:
                return
            if task_set.spec.shuffle_dep is None:
                too_big = tsm.count_result(len(status.result), self.settings.max_result_size)
                if too_big is not None:
                    self._kill(tsm.abort(too_big), "stage aborted")
                    self._stage_over(tsm)
                    self.dag.task_set_failed(task_set.stage_id, task_set.attempt, too_big)
                    return
            try:
                value = pickle.loads(status.result)
                updates, blocks, metrics = pickle.loads(status.accumulators)
            except Exception as exc:  # e.g. a result class the driver cannot import
                tsm.abort(f"could not deserialize the result of task {status.task_id}: {exc!r}")
                self._stage_over(tsm)
                self.dag.task_set_failed(
                    task_set.stage_id, task_set.attempt, tsm.abort_reason or ""
                )
                return
            self._apply_accumulators(updates)
            for block in blocks:
                self.cache_locations.setdefault(tuple(block), set()).add(executor_id)
            self.metrics["diskBytesSpilled"] += metrics.get("diskBytesSpilled", 0)
            self.metrics["spills"] += metrics.get("spills", 0)
            self.metrics["tasks"] += 1
            if count:
                bus.task_ended(task_set.stage_id, task_set.attempt, status.task_id, True)
            if announce and (bus.wants_every_task_end() or touches_storage(blocks, metrics)):
                bus.post(_task_end(task_set, task, now, status, metrics, blocks))
            self._stage_over(tsm)  # its last task: before the DAGScheduler moves on
            self.dag.task_succeeded(
                task_set.stage_id, task_set.attempt, task_set.indices[index], value
            )
            return
        if status.state == pb.TASK_STATE_KILLED:
            tsm.handle_failure(status.task_id, status.error or "killed", counts=False)
            self._check_barrier_failure(tsm)
            return
        if handle is not None:
            handle.failed_tasks += 1
        if status.HasField("fetch_failure"):
            ff = status.fetch_failure
            tsm.handle_failure(status.task_id, status.error, counts=False)
            if count:  # as Spark's: the task's end first, then its attempt's
                bus.task_ended(task_set.stage_id, task_set.attempt, status.task_id, False)
            if announce:
                bus.post(_task_end(task_set, task, now, status))
            self._kill(tsm.abort(f"fetch failure: {ff.message}"), "fetch failure in this stage")
            self._stage_over(tsm)  # before the DAGScheduler resubmits the parent stage
            self.dag.fetch_failed(
                task_set.stage_id, task_set.attempt, ff.shuffle_id, ff.map_index, ff.executor_id
            )
            return
        tsm.handle_failure(status.task_id, status.error, counts=True)
        if count:
            bus.task_ended(task_set.stage_id, task_set.attempt, status.task_id, False)
        if announce:
            bus.post(_task_end(task_set, task, now, status))
        self._check_barrier_failure(tsm)
        if tsm.zombie and tsm.abort_reason is not None:
            self._kill(sorted(tsm.running), "stage aborted")
            self._stage_over(tsm)
            self.dag.task_set_failed(task_set.stage_id, task_set.attempt, tsm.abort_reason)

    def _kill(self, task_ids: list[int], reason: str) -> None:
        if not task_ids:  # the common case: every success asks to kill its duplicates
            return
        by_executor: dict[str, list[int]] = {}
        for task_id in task_ids:
            owner = self._task_owner.get(task_id)
            if owner is not None:
                by_executor.setdefault(owner[1], []).append(task_id)
        for executor_id, ids in by_executor.items():
            handle = self.executors.get(executor_id)
            if handle is not None:
                handle.send(pb.KillTasks(task_ids=ids, reason=reason))

    def _blob(self, name: str, data: bytes) -> str:
        """Keep `data` for executors to fetch in chunks; returns its name."""
        self.blobs[name] = data
        return name

    def serve_file(self, name: str, path: str) -> None:
        """Serve the file at `path` as blob `name` (files added with sc.addFile)."""
        with self.lock:
            self.file_blobs[name] = path

    def read_blob(self, name: str, offset: int, length: int) -> bytes:
        """A chunk of a blob (for FetchBlockRequest with executor_id "driver").

        Raises:
            LookupError: no such blob (its stage finished or its broadcast was removed).
        """
        with self.lock:
            data = self.blobs.get(name)
            path = self.file_blobs.get(name) if data is None else None
        if path is not None:
            with open(path, "rb") as f:
                f.seek(offset)
                return f.read(length)
        if data is None:
            raise LookupError(f"the driver has no blob {name!r}")
        return data[offset : offset + length]

    def forget_broadcast_blob(self, bid: int) -> None:
        with self.lock:
            self.blobs.pop(f"broadcast-{bid}", None)

    def _retire(self, key: str) -> None:
        tsm = self.tsms.pop(key, None)
        self._payloads.pop(key, None)
        self.blobs.pop(f"stage-{key}", None)
        if tsm is None:
            return
        if tsm.barrier:
            ts = tsm.task_set
            self.barrier.finished(ts.stage_id, ts.attempt, f"stage {key} finished")
        self._stage_over(tsm, retired=True)
        self._completed.discard(key)
        for handle in self.executors.values():
            if key in handle.stages:
                handle.stages.discard(key)
                if not self.stopping:  # stopped executors drop it (with a warning)
                    handle.send(pb.RemoveBlocks(tasksets=[key]))

    def _stage_over(self, tsm: TaskSetManager, retired: bool = False) -> None:
        """Post StageCompleted once for an attempt that is over (lock held).

        Over means all its tasks succeeded or it was aborted (even with tasks still
        running: they are being killed). Each site calls this before the
        DAGScheduler reacts, so listeners hear a stage complete before the stage
        it unblocks is submitted, and before its job ends. `retired`: the set
        is gone anyway (a last resort, should a site not have announced it).
        """
        ts = tsm.task_set
        if ts.key in self._completed:
            return
        if not (retired or tsm.zombie or tsm.num_done >= tsm.num_tasks):
            return
        self._completed.add(ts.key)
        failure = (tsm.abort_reason or tsm.barrier_failure) if tsm.zombie else None
        self.bus.post(StageCompleted(ts.stage_id, ts.attempt, failure))

    def _retire_finished(self) -> None:
        for key, tsm in list(self.tsms.items()):
            if tsm.is_finished():
                self._retire(key)

    def check_starvation(self, now: float, timeout: float = STARVATION_TIMEOUT) -> bool:
        """Warn every `timeout` seconds while tasks wait and no executor is registered.

        Without it a job on a cluster that cannot give the application any executor
        (too little memory or cores free, no worker) would wait in silence. Returns
        whether it warned.
        """
        with self.lock:
            waiting = sum(len(t.pending) for t in self.tsms.values() if not t.zombie)
            if not waiting or self.executors:
                self._starving_since = None
                return False
            if self._starving_since is None:
                self._starving_since = now
                return False
            if now - self._starving_since < timeout:
                return False
            self._starving_since = now
        log.warning(
            "Initial job has not accepted any resources; check your cluster UI to ensure "
            "that workers are registered and have sufficient resources (%d task(s) waiting "
            "for an executor)",
            waiting,
        )
        return True

    def check_speculation(self) -> None:
        """Mark slow tasks for speculative copies (called periodically)."""
        with self.lock:
            now = time.monotonic()
            if any(tsm.check_speculation(now) for tsm in self.tsms.values()):
                self.revive()
            elif any(t.has_pending() for t in self.tsms.values()):
                self.revive()  # locality waits expire with time

    # -- cache --------------------------------------------------------------------------------

    def _cached_on(self, rdd: RDD, split: int) -> list[str]:
        return sorted(self.cache_locations.get((rdd.id(), split), ()))

    def forget_rdd(self, rdd_id: int) -> None:
        with self.lock:
            for key in [k for k in self.cache_locations if k[0] == rdd_id]:
                del self.cache_locations[key]
            self.bus.post(UnpersistRDD(rdd_id))

    def forget_shuffles(self, shuffle_ids: list[int]) -> None:
        """Drop shuffles' map outputs: later jobs recompute them; executors delete the files."""
        with self.lock:
            for shuffle_id in shuffle_ids:
                self.dag.forget_shuffle(shuffle_id)
            self.broadcast_to_executors(pb.RemoveBlocks(shuffle_ids=shuffle_ids))

    def broadcast_to_executors(self, message: Message) -> None:
        with self.lock:
            for handle in self.executors.values():
                handle.send(message)


def _task_end(
    task_set: TaskSet,
    task: Attempt | None,
    now: float,
    status: pb.TaskStatus,
    metrics: dict[str, Any] | None = None,
    blocks: list[Any] | None = None,
) -> TaskEnd:
    """The TaskEnd of one status update (metrics and cached blocks: a success's only)."""
    ok = metrics is not None
    fetch = None
    error_type = None if ok else status.error_type
    if not ok and status.HasField("fetch_failure"):
        ff = status.fetch_failure
        fetch = FetchFailure(ff.shuffle_id, ff.map_index, ff.executor_id, ff.message)
        error_type = "FetchFailed"
    if task is None:  # no longer running (its set was aborted): what the status says
        return TaskEnd(
            task_set.stage_id, task_set.attempt, ok, run_seconds=status.run_seconds,
            metrics=metrics or {}, error=None if ok else status.error,
            error_type=error_type, fetch_failure=fetch,
        )  # fmt: skip
    return TaskEnd(
        task_set.stage_id, task_set.attempt, ok, task.task_id, task.index, task.attempt,
        task_set.partitions[task.index], task.executor_id, launched_ago=now - task.start,
        speculative=task.speculative, run_seconds=status.run_seconds, metrics=metrics or {},
        blocks=tuple((int(b[0]), int(b[1])) for b in blocks) if blocks else (),
        error=None if ok else status.error, error_type=error_type, fetch_failure=fetch,
    )  # fmt: skip
