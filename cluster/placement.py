"""Executor and driver placement: which worker gets which executor or driver.

A plain decision class with no I/O, no clock and no RpcEnv, so that it can be
tested exhaustively on its own. The Master feeds it a snapshot of the alive
workers' free resources and of the applications waiting for cores (in FIFO
order) and turns the answer into LaunchExecutor / LaunchDriver messages.

Semantics follow Spark standalone: applications are served first come, first
served; within one application cores are spread across workers by default
(`spark.deploy.spreadOut`) or packed onto as few workers as possible;
`cores_per_executor == 0` means one executor per worker that takes all the
cores assigned there. It must never assign more cores or memory than a worker
has free, nor more cores than an application still wants.

Custom resources (`spark.worker.resource.*`: GPUs and the like) are addresses,
not counts: an executor needing `n` of one goes only where `n` of its addresses
are free, and its assignment names which, so that no address is given to two
executors at once.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence

__all__ = [
    "AppDemand",
    "DriverDemand",
    "ExecutorAssignment",
    "Placement",
    "WorkerResources",
]


@dataclasses.dataclass(frozen=True, slots=True)
class WorkerResources:
    """What one alive worker can still give."""

    worker_id: str
    cores_free: int
    memory_free_mb: int
    #: Free addresses of each custom resource, in the order they are to be given out.
    resources_free: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def executors_fitting(self, wanted: Mapping[str, int]) -> int | None:
        """How many executors needing `wanted` addresses its free ones allow (None: no limit)."""
        fits: int | None = None
        for name, amount in wanted.items():
            if amount > 0:
                count = len(self.resources_free.get(name, ())) // amount
                fits = count if fits is None else min(fits, count)
        return fits


@dataclasses.dataclass(frozen=True, slots=True)
class AppDemand:
    """What one waiting application still wants.

    Attributes:
        app_id: the application.
        cores_left: cores it may still be granted (max cores minus granted).
        memory_per_executor_mb: memory of each executor.
        cores_per_executor: cores of each executor; 0 = one executor per worker
            taking every core assigned to the app on that worker.
        executors_running: executors it has now (counted against the limit).
        executor_limit: the most executors it may have (dynamic allocation); None = no limit.
        executor_resources: addresses of each custom resource every executor needs.
        profile_id: the resource profile these executors are for (0: the default).
    """

    app_id: str
    cores_left: int
    memory_per_executor_mb: int
    cores_per_executor: int = 0
    executors_running: int = 0
    executor_limit: int | None = None
    executor_resources: Mapping[str, int] = dataclasses.field(default_factory=dict)
    profile_id: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class DriverDemand:
    """A cluster-mode driver waiting for a worker."""

    driver_id: str
    cores: int
    memory_mb: int


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutorAssignment:
    """Launch one executor of `app_id` on `worker_id` with these resources."""

    app_id: str
    worker_id: str
    cores: int
    memory_mb: int
    #: The addresses of each custom resource given to this executor alone.
    resources: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: The resource profile it is for (0: the application's default).
    profile_id: int = 0


class Placement:
    """Decides where executors and drivers go, given free resources.

    Args:
        spread_out: spread each application's cores over as many workers as
            possible (Spark's default); False packs them onto few workers.
        rng: the randomness used to shuffle workers for driver placement
            (seed it in tests for reproducible answers).
    """

    def __init__(self, spread_out: bool = True, rng: random.Random | None = None) -> None:
        self.spread_out = spread_out
        self._rng = rng or random.Random()

    def place_drivers(
        self, drivers: Sequence[DriverDemand], workers: Sequence[WorkerResources]
    ) -> tuple[list[tuple[str, str]], list[WorkerResources]]:
        """Place waiting drivers, each on one worker with enough free cores and memory.

        Workers are visited round-robin from a shuffled order, so that drivers do
        not all pile onto the first worker.

        Returns:
            The (driver_id, worker_id) pairs placed, and the workers' resources
            left after those drivers (to pass on to `place_executors`).
        """
        if not drivers:
            return [], list(workers)
        free = {w.worker_id: [w.cores_free, w.memory_free_mb] for w in workers}
        order = [w.worker_id for w in workers]
        self._rng.shuffle(order)
        placed: list[tuple[str, str]] = []
        position = 0
        for driver in drivers:
            if driver.cores < 0 or driver.memory_mb < 0:
                raise ValueError(f"driver {driver.driver_id} asks for negative resources")
            for step in range(len(order)):
                worker_id = order[(position + step) % len(order)]
                cores, memory = free[worker_id]
                if cores >= driver.cores and memory >= driver.memory_mb:
                    free[worker_id] = [cores - driver.cores, memory - driver.memory_mb]
                    placed.append((driver.driver_id, worker_id))
                    position = (position + step + 1) % len(order)
                    break
        remaining = [
            WorkerResources(
                w.worker_id, free[w.worker_id][0], free[w.worker_id][1], w.resources_free
            )
            for w in workers
        ]
        return placed, remaining

    def place_executors(
        self, apps: Sequence[AppDemand], workers: Sequence[WorkerResources]
    ) -> list[ExecutorAssignment]:
        """Assign executors to the applications, first come first served.

        Args:
            apps: waiting applications, oldest first.
            workers: alive workers with their free resources.

        Returns:
            One assignment per executor to launch, in launch order.
        """
        free = {w.worker_id: [w.cores_free, w.memory_free_mb] for w in workers}
        addresses = {
            w.worker_id: {k: list(v) for k, v in w.resources_free.items()} for w in workers
        }
        assignments: list[ExecutorAssignment] = []
        # Cores given in this pass per application: its demands (one per resource
        # profile) share its spark.cores.max, as in Spark.
        granted: dict[str, int] = {}
        for demand in apps:
            app = demand
            if granted.get(demand.app_id):
                app = dataclasses.replace(
                    demand, cores_left=max(0, demand.cores_left - granted[demand.app_id])
                )
            snapshot = [
                WorkerResources(wid, c, m, {k: tuple(v) for k, v in addresses[wid].items()})
                for wid, (c, m) in free.items()
            ]
            for worker_id, cores_list in self._assign_app(app, snapshot):
                for cores in cores_list:
                    granted[app.app_id] = granted.get(app.app_id, 0) + cores
                    free[worker_id][0] -= cores
                    free[worker_id][1] -= app.memory_per_executor_mb
                    given: dict[str, tuple[str, ...]] = {}
                    for name, amount in app.executor_resources.items():
                        if amount > 0:
                            pool = addresses[worker_id][name]
                            given[name] = tuple(pool[:amount])
                            del pool[:amount]
                    assignments.append(
                        ExecutorAssignment(
                            app.app_id,
                            worker_id,
                            cores,
                            app.memory_per_executor_mb,
                            given,
                            app.profile_id,
                        )
                    )
        return assignments

    def _assign_app(
        self, app: AppDemand, workers: Sequence[WorkerResources]
    ) -> list[tuple[str, list[int]]]:
        """Cores of each new executor of `app`, per worker (no I/O, no mutation)."""
        if app.cores_per_executor < 0 or app.memory_per_executor_mb < 0:
            raise ValueError(f"application {app.app_id} asks for negative resources")
        if any(amount < 0 for amount in app.executor_resources.values()):
            raise ValueError(f"application {app.app_id} asks for negative custom resources")
        one_per_worker = app.cores_per_executor == 0
        min_cores = 1 if one_per_worker else app.cores_per_executor
        limit = app.executor_limit
        if app.cores_left < min_cores or (limit is not None and app.executors_running >= limit):
            return []
        # Usable = can host at least one more executor of this app right now.
        wanted = app.executor_resources
        usable = [
            w
            for w in sorted(workers, key=lambda w: w.cores_free, reverse=True)
            if w.cores_free >= min_cores
            and w.memory_free_mb >= app.memory_per_executor_mb
            and w.executors_fitting(wanted) != 0
        ]
        if not usable:
            return []
        count = len(usable)
        # Executors each worker's free custom resource addresses allow (None: no limit).
        fitting = [w.executors_fitting(wanted) for w in usable]
        assigned_cores = [0] * count
        assigned_execs = [0] * count
        # Counters kept as we go (summing the lists in can_launch made one
        # placement O(workers^2): 1,000 workers took 15 ms per app).
        to_assign = min(app.cores_left, sum(w.cores_free for w in usable))
        total_execs = app.executors_running
        memory = app.memory_per_executor_mb

        def can_launch(pos: int) -> bool:
            if to_assign < min_cores:
                return False
            worker = usable[pos]
            if worker.cores_free - assigned_cores[pos] < min_cores:
                return False
            if one_per_worker and assigned_execs[pos]:
                return True  # adding a core to this worker's single executor
            if limit is not None and total_execs >= limit:
                return False
            fits = fitting[pos]
            if fits is not None and assigned_execs[pos] >= fits:
                return False
            return worker.memory_free_mb - assigned_execs[pos] * memory >= memory

        candidates = [pos for pos in range(count) if can_launch(pos)]
        while candidates:
            for pos in candidates:
                keep = True
                while keep and can_launch(pos):
                    to_assign -= min_cores
                    assigned_cores[pos] += min_cores
                    if not one_per_worker or assigned_execs[pos] == 0:
                        assigned_execs[pos] += 1
                        total_execs += 1
                    # Spreading out moves on to the next worker after one step;
                    # consolidating fills this worker before touching the next.
                    keep = not self.spread_out
            candidates = [pos for pos in candidates if can_launch(pos)]

        result: list[tuple[str, list[int]]] = []
        for pos, worker in enumerate(usable):
            if assigned_cores[pos] == 0:
                continue
            if one_per_worker:
                result.append((worker.worker_id, [assigned_cores[pos]]))
            else:
                result.append((worker.worker_id, [app.cores_per_executor] * assigned_execs[pos]))
        return result
