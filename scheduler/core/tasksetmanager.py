"""TaskSetManager: retries, locality and speculation for one stage attempt.

A plain state machine without I/O or threads: the task scheduler offers it
free cores (`resource_offer`) and reports outcomes. A failed task is retried
up to `max_failures` times, preferring an executor it has not failed on;
tasks lost with their executor are re-queued without counting as failures.
Locality: a task that prefers some executors waits up to `locality_wait`
seconds for one of them before taking any. Speculation (off by default)
re-launches a slow task on another executor once most tasks are done.
A barrier task set (RDD.barrier()) launches all its tasks in one offer round or
none (`barrier_offer`), never speculates, and its first failed task fails the
whole attempt (`barrier_failure`): the DAGScheduler retries the stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduler.core.dag import TaskSet

__all__ = ["Attempt", "TaskSetManager", "bytes_to_string"]


def bytes_to_string(size: int) -> str:
    """A size as Spark's Utils.bytesToString shows it: "1024.0 KiB", "1.5 GiB"."""
    for shift, unit in (
        (60, "EiB"),
        (50, "PiB"),
        (40, "TiB"),
        (30, "GiB"),
        (20, "MiB"),
        (10, "KiB"),
    ):
        if size >= 2 << shift:
            return f"{size / (1 << shift):.1f} {unit}"
    return f"{float(size):.1f} B"


@dataclass
class Attempt:
    """One running attempt of a task."""

    task_id: int
    index: int
    attempt: int
    executor_id: str
    start: float
    speculative: bool = False


#: Lost executors a task may have been running on before its set is aborted (Spark
#: counts an executor's exit towards the task's spark.task.maxFailures).
MAX_EXECUTOR_LOSSES = 4


@dataclass
class _TaskState:
    attempts: int = 0
    failures: int = 0
    #: Executors lost while this task ran on them (not counted as failures).
    executor_losses: int = 0
    failed_on: set[str] = field(default_factory=set)
    done: bool = False
    running: set[int] = field(default_factory=set)


class TaskSetManager:
    """Schedules the tasks of one TaskSet.

    Args:
        task_set: the tasks.
        max_failures: attempts before the task set is aborted (spark.task.maxFailures).
        locality_wait: seconds to wait for a preferred executor (spark.locality.wait).
        speculation: whether to speculate slow tasks (spark.speculation).
        speculation_multiplier: how many times the median a task must run to be slow.
        speculation_quantile: fraction of tasks done before speculating.
        now: the current time, for the locality clock.
    """

    def __init__(
        self,
        task_set: TaskSet,
        max_failures: int = 4,
        locality_wait: float = 3.0,
        speculation: bool = False,
        speculation_multiplier: float = 1.5,
        speculation_quantile: float = 0.75,
        now: float = 0.0,
    ) -> None:
        self.task_set = task_set
        self.max_failures = max(1, max_failures)
        self.locality_wait = locality_wait
        self.speculation = speculation
        self.multiplier = speculation_multiplier
        self.quantile = speculation_quantile
        n = len(task_set.partitions)
        self.tasks = [_TaskState() for _ in range(n)]
        self.pending: list[int] = list(range(n))
        self.running: dict[int, Attempt] = {}
        self.num_done = 0
        self.durations: list[float] = []
        #: Running average of the run times executors report for this set's tasks
        #: (None until one finished): how deep executors may queue its tasks.
        self.run_seconds: float | None = None
        self.speculatable: set[int] = set()
        self.zombie = False
        self.abort_reason: str | None = None
        #: Serialized results of this set's result tasks so far (spark.driver.maxResultSize).
        self.result_bytes = 0
        self.results = 0
        self._last_launch = now
        self._has_preferences = any(task_set.preferred)
        self.barrier = task_set.barrier
        if self.barrier:
            self.speculation = False  # Spark never speculates barrier tasks
        #: Barrier sets: why the attempt failed (its first failed task), once it has.
        self.barrier_failure: str | None = None
        #: The task scheduler has acted on `barrier_failure` (failed syncs, killed the rest).
        self.barrier_reported = False
        #: ...and the partition of that failed task.
        self.barrier_failed_partition: int | None = None

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def is_finished(self) -> bool:
        """No more tasks will run (all done, or aborted and nothing running)."""
        return (self.zombie or self.num_done == self.num_tasks) and not self.running

    def has_pending(self) -> bool:
        return not self.zombie and (bool(self.pending) or bool(self.speculatable))

    # -- offers -------------------------------------------------------------------------

    def resource_offer(
        self, executor_id: str, now: float, alive_executors: int, task_id: int
    ) -> Attempt | None:
        """Pick a task for one free core of `executor_id`, or None."""
        if self.zombie:
            return None
        index = self._pick(executor_id, now, alive_executors)
        speculative = False
        if index is None:
            index = self._pick_speculative(executor_id)
            if index is None:
                return None
            speculative = True
        state = self.tasks[index]
        attempt = Attempt(task_id, index, state.attempts, executor_id, now, speculative)
        state.attempts += 1
        state.running.add(task_id)
        self.running[task_id] = attempt
        self._last_launch = now
        return attempt

    def barrier_offer(self, slots: list[str], now: float, first_task_id: int) -> list[Attempt]:
        """Launch every task of a barrier set on `slots` (an executor id per free slot).

        All or nothing: with fewer free slots than tasks nothing launches, so no task
        holds a slot while it waits for the others. A task goes to an executor it
        prefers when one of the slots is there. Task ids are consecutive from
        `first_task_id`.
        """
        if self.zombie or not self.pending or len(slots) < len(self.pending):
            return []
        free = list(slots)
        chosen: list[tuple[int, str]] = []
        for index in sorted(self.pending):
            wanted = self.task_set.preferred[index]
            pos = next((i for i, e in enumerate(free) if e in wanted), 0)
            chosen.append((index, free.pop(pos)))
        self.pending = []
        launched: list[Attempt] = []
        for offset, (index, executor_id) in enumerate(chosen):
            state = self.tasks[index]
            task_id = first_task_id + offset
            attempt = Attempt(task_id, index, state.attempts, executor_id, now)
            state.attempts += 1
            state.running.add(task_id)
            self.running[task_id] = attempt
            launched.append(attempt)
        self._last_launch = now
        return launched

    def _pick(self, executor_id: str, now: float, alive_executors: int) -> int | None:
        if not self.pending:
            return None
        preferred = self.task_set.preferred
        # Tasks that want this executor come first.
        if self._has_preferences:
            for pos, index in enumerate(self.pending):
                if executor_id in preferred[index]:
                    return self.pending.pop(pos)
        waited = now - self._last_launch >= self.locality_wait
        fallback: int | None = None
        for pos, index in enumerate(self.pending):
            if preferred[index] and not waited:
                continue
            if executor_id in self.tasks[index].failed_on and alive_executors > 1:
                if fallback is None:
                    fallback = pos
                continue
            return self.pending.pop(pos)
        if (
            fallback is not None
            and len(self.tasks[self.pending[fallback]].failed_on) >= alive_executors
        ):
            return self.pending.pop(fallback)
        return None

    def _pick_speculative(self, executor_id: str) -> int | None:
        for index in sorted(self.speculatable):
            state = self.tasks[index]
            if state.done:
                self.speculatable.discard(index)
                continue
            if all(self.running[t].executor_id != executor_id for t in state.running):
                self.speculatable.discard(index)
                return index
        return None

    # -- outcomes -----------------------------------------------------------------------

    def handle_success(self, task_id: int, now: float) -> tuple[int | None, list[int]]:
        """A task finished; returns (its index if first success, attempts to kill)."""
        attempt = self.running.pop(task_id, None)
        if attempt is None:
            return None, []
        state = self.tasks[attempt.index]
        state.running.discard(task_id)
        if state.done:
            return None, []
        state.done = True
        self.num_done += 1
        self.durations.append(now - attempt.start)
        self.speculatable.discard(attempt.index)
        return attempt.index, sorted(state.running)

    def handle_failure(self, task_id: int, reason: str, counts: bool = True) -> int | None:
        """A task failed; re-queue it, or abort the set after `max_failures`.

        Args:
            task_id: the failed attempt.
            reason: the error text (kept for the abort message).
            counts: False for failures that are not the task's fault (lost executor, kill).

        Returns:
            The task's index.
        """
        attempt = self.running.pop(task_id, None)
        if attempt is None:
            return None
        state = self.tasks[attempt.index]
        state.running.discard(task_id)
        if state.done or self.zombie:
            return attempt.index
        if self.barrier:
            # One failed task fails the attempt; the stage is retried as a whole.
            state.failures += int(counts)
            self.zombie = True
            self.barrier_failed_partition = self.task_set.partitions[attempt.index]
            self.barrier_failure = (
                f"lost task {attempt.index}.{attempt.attempt} in stage "
                f"{self.task_set.key} (TID {task_id}) on executor {attempt.executor_id}: {reason}"
            )
            return attempt.index
        if counts:
            state.failures += 1
            state.failed_on.add(attempt.executor_id)
            if state.failures >= self.max_failures:
                self.zombie = True
                stage = f"{self.task_set.stage_id}.{self.task_set.attempt}"
                self.abort_reason = (
                    f"Task {attempt.index} in stage {stage} "
                    f"failed {state.failures} times, most recent failure: lost task "
                    f"{attempt.index}.{attempt.attempt} in stage {self.task_set.stage_id}."
                    f"{self.task_set.attempt} (TID {task_id}) on executor {attempt.executor_id}: "
                    f"{reason}"
                )
                return attempt.index
        if not state.running and attempt.index not in self.pending:
            self.pending.append(attempt.index)
        return attempt.index

    def executor_lost(self, executor_id: str, reason: str = "") -> list[int]:
        """Re-queue the tasks that were running on a lost executor; returns their task ids.

        A lost executor is not the task's fault, but a task that was running on
        MAX_EXECUTOR_LOSSES lost executors is most likely what kills them (a native
        crash, memory): the set is aborted then, instead of killing executors forever.
        """
        lost = [(t, a) for t, a in self.running.items() if a.executor_id == executor_id]
        for task_id, attempt in lost:
            self.handle_failure(task_id, f"executor {executor_id} lost", counts=False)
            state = self.tasks[attempt.index]
            state.executor_losses += 1
            if state.executor_losses >= MAX_EXECUTOR_LOSSES and not self.zombie:
                self.zombie = True
                stage = f"{self.task_set.stage_id}.{self.task_set.attempt}"
                self.abort_reason = (
                    f"Task {attempt.index} in stage {stage} was running on "
                    f"{state.executor_losses} executors that were lost, most recently "
                    f"executor {executor_id} (TID {task_id}): {reason or 'lost'}; the task "
                    f"may be what kills them"
                )
        return [t for t, _ in lost]

    def abort(self, reason: str) -> list[int]:
        """Stop launching; returns the running attempts to kill."""
        self.zombie = True
        if self.abort_reason is None:
            self.abort_reason = reason
        return sorted(self.running)

    def count_result(self, size: int, limit: int) -> str | None:
        """Count a result task's serialized result; past `limit` (0: none), why to abort."""
        self.result_bytes += size
        self.results += 1
        if limit <= 0 or self.result_bytes <= limit:
            return None
        return (
            f"Total size of serialized results of {self.results} tasks "
            f"({bytes_to_string(self.result_bytes)}) is bigger than "
            f"spark.driver.maxResultSize ({bytes_to_string(limit)})"
        )

    def check_speculation(self, now: float) -> list[int]:
        """Mark slow tasks speculatable; returns the newly marked indexes."""
        if not self.speculation or self.zombie or self.num_tasks == 0:
            return []
        if self.num_done < max(1, int(self.quantile * self.num_tasks)):
            return []
        durations = sorted(self.durations)
        median = durations[len(durations) // 2]
        threshold = max(self.multiplier * median, 0.1)
        marked: list[int] = []
        for attempt in self.running.values():
            state = self.tasks[attempt.index]
            if state.done or len(state.running) > 1 or attempt.index in self.speculatable:
                continue
            if now - attempt.start > threshold:
                self.speculatable.add(attempt.index)
                marked.append(attempt.index)
        return marked
