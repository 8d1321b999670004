"""The Master's records of workers, applications, executors and drivers.

Plain mutable records owned by the Master endpoint (one thread at a time, so
no locks) plus the ids it hands out. They hold refs for pushes but never send
anything themselves: this module must never do I/O.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from rpcenv import RpcAddress, RpcEndpointRef
from sparkctl.v1 import deploy_pb2

__all__ = [
    "FINISHED_APP_STATES",
    "FINISHED_DRIVER_STATES",
    "FINISHED_EXECUTOR_STATES",
    "AppInfo",
    "AppStateValue",
    "DriverInfo",
    "DriverStateValue",
    "ExecutorInfo",
    "ExecutorStateValue",
    "Holdings",
    "IdGenerator",
    "WorkerInfo",
    "WorkerStateValue",
    "resource_addresses",
    "resources_from",
]

ES = deploy_pb2.ExecutorState
AS = deploy_pb2.ApplicationState
DS = deploy_pb2.DriverState
WS = deploy_pb2.WorkerState

ExecutorStateValue: TypeAlias = deploy_pb2.ExecutorState.ValueType
AppStateValue: TypeAlias = deploy_pb2.ApplicationState.ValueType
DriverStateValue: TypeAlias = deploy_pb2.DriverState.ValueType
WorkerStateValue: TypeAlias = deploy_pb2.WorkerState.ValueType

# A plain int: the enum wrapper's attribute lookup costs ~2 us, on every heartbeat.
_WORKER_ALIVE = int(deploy_pb2.WORKER_STATE_ALIVE)

FINISHED_EXECUTOR_STATES = frozenset(
    {
        ES.EXECUTOR_STATE_KILLED,
        ES.EXECUTOR_STATE_FAILED,
        ES.EXECUTOR_STATE_LOST,
        ES.EXECUTOR_STATE_EXITED,
    }
)
FINISHED_APP_STATES = frozenset(
    {AS.APPLICATION_STATE_FINISHED, AS.APPLICATION_STATE_FAILED, AS.APPLICATION_STATE_KILLED}
)
FINISHED_DRIVER_STATES = frozenset(
    {
        DS.DRIVER_STATE_FINISHED,
        DS.DRIVER_STATE_FAILED,
        DS.DRIVER_STATE_KILLED,
        DS.DRIVER_STATE_ERROR,
    }
)


def now_ms() -> int:
    """Wall-clock milliseconds, for what users see (start times, heartbeats)."""
    return time.time_ns() // 1_000_000


class IdGenerator:
    """Spark-style ids: `app-20261122201500-0000`, `driver-...`, numbered per Master."""

    def __init__(self) -> None:
        self._apps = itertools.count()
        self._drivers = itertools.count()

    @staticmethod
    def _stamp() -> str:
        return time.strftime("%Y%m%d%H%M%S", time.gmtime())

    def app_id(self) -> str:
        """A new application id."""
        return f"app-{self._stamp()}-{next(self._apps):04d}"

    def driver_id(self) -> str:
        """A new driver id."""
        return f"driver-{self._stamp()}-{next(self._drivers):04d}"

    def skip_past(self, app_ids: int, driver_ids: int) -> None:
        """After recovery: never reuse a number a recovered id carries."""
        self._apps = itertools.count(app_ids)
        self._drivers = itertools.count(driver_ids)


_K = TypeVar("_K")
_V = TypeVar("_V")


class Holdings(dict[_K, _V]):
    """A dict of executors or drivers that keeps the sum of their cores and memory.

    The Master asks a worker's free resources for every worker on every placement;
    summing each worker's executors there made one placement O(executors) and
    registering N workers O(N^2). Values must not change their size while held.
    """

    __slots__ = ("_size", "cores", "memory_mb")

    def __init__(self, size: Callable[[_V], tuple[int, int]]) -> None:
        super().__init__()
        self._size = size
        self.cores = 0
        self.memory_mb = 0

    def _add(self, value: _V, sign: int) -> None:
        cores, memory_mb = self._size(value)
        self.cores += sign * cores
        self.memory_mb += sign * memory_mb

    def __setitem__(self, key: _K, value: _V) -> None:
        old = super().get(key)
        if old is not None:
            self._add(old, -1)
        super().__setitem__(key, value)
        self._add(value, 1)

    def __delitem__(self, key: _K) -> None:
        self._add(self[key], -1)
        super().__delitem__(key)

    def pop(self, key: _K, *default: Any) -> Any:
        """As dict.pop, keeping the sums."""
        if key in self:
            value = super().pop(key)
            self._add(value, -1)
            return value
        if default:
            return default[0]
        raise KeyError(key)

    def clear(self) -> None:
        """As dict.clear, keeping the sums."""
        super().clear()
        self.cores = 0
        self.memory_mb = 0

    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("Holdings supports only [k] = v, del, pop and clear")

    update = setdefault = popitem = __ior__ = _refuse


def _executor_size(executor: ExecutorInfo) -> tuple[int, int]:
    return executor.cores, executor.memory_mb


def _driver_size(driver: DriverInfo) -> tuple[int, int]:
    return driver.description.cores, driver.description.memory_mb


def resource_addresses(
    resources: Mapping[str, Sequence[str]],
) -> list[deploy_pb2.ResourceAddresses]:
    """Custom resources as the wire carries them (sorted by name)."""
    return [
        deploy_pb2.ResourceAddresses(name=name, addresses=list(addresses))
        for name, addresses in sorted(resources.items())
    ]


def resources_from(
    messages: Iterable[deploy_pb2.ResourceAddresses],
) -> dict[str, tuple[str, ...]]:
    """The wire's custom resources as name -> addresses."""
    return {m.name: tuple(m.addresses) for m in messages}


def executor_holdings() -> Holdings[Any, ExecutorInfo]:
    """An empty executor map that sums cores and memory."""
    return Holdings(_executor_size)


def driver_holdings() -> Holdings[str, DriverInfo]:
    """An empty driver map that sums cores and memory."""
    return Holdings(_driver_size)


@dataclasses.dataclass(slots=True)
class ExecutorInfo:
    """One executor of one application, on one worker."""

    app_id: str
    executor_id: int
    worker_id: str
    cores: int
    memory_mb: int
    state: ExecutorStateValue = ES.EXECUTOR_STATE_LAUNCHING
    #: Custom resource addresses it holds on its worker (name -> addresses).
    resources: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    #: The resource profile it was started for (0: the application's default).
    profile_id: int = 0

    @property
    def key(self) -> tuple[str, int]:
        """(app id, executor id): unique in the cluster."""
        return (self.app_id, self.executor_id)


@dataclasses.dataclass(slots=True)
class WorkerInfo:
    """A registered worker: its capacity, what runs on it, when it was last heard."""

    worker_id: str
    host: str
    port: int
    cores: int
    memory_mb: int
    webui_address: str
    incarnation: int
    ref: RpcEndpointRef | None
    state: WorkerStateValue = WS.WORKER_STATE_ALIVE
    last_heartbeat: float = dataclasses.field(default_factory=time.monotonic)
    last_heartbeat_ms: int = dataclasses.field(default_factory=now_ms)
    # The connection dropped: no new work until it is heard from again.
    suspected: bool = False
    # When its connection closed (monotonic; None while connected or heard from since).
    disconnected_at: float | None = None
    executors: Holdings[tuple[str, int], ExecutorInfo] = dataclasses.field(
        default_factory=executor_holdings
    )
    drivers: Holdings[str, DriverInfo] = dataclasses.field(default_factory=driver_holdings)
    # The env id of the connection it registered over ("" until it does): with its
    # address, what its reports must come from (cluster.senders).
    peer_id: str = ""
    #: Its custom resources (spark.worker.resource.*): name -> every address it has.
    resources: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def resources_free(self) -> dict[str, tuple[str, ...]]:
        """Addresses no executor of it holds now: they are freed when an executor ends."""
        if not self.resources:
            return {}
        held: set[tuple[str, str]] = set()
        for executor in self.executors.values():
            for name, addresses in executor.resources.items():
                held.update((name, a) for a in addresses)
        return {
            name: tuple(a for a in addresses if (name, a) not in held)
            for name, addresses in self.resources.items()
        }

    @property
    def address(self) -> RpcAddress:
        """Where its RpcEnv listens (what on_disconnected reports)."""
        return RpcAddress(self.host, self.port)

    @property
    def cores_used(self) -> int:
        """Cores held by its executors and drivers."""
        return self.executors.cores + self.drivers.cores

    @property
    def memory_used_mb(self) -> int:
        """Memory held by its executors and drivers."""
        return self.executors.memory_mb + self.drivers.memory_mb

    @property
    def cores_free(self) -> int:
        """Cores it can still give."""
        return self.cores - self.cores_used

    @property
    def memory_free_mb(self) -> int:
        """Memory it can still give."""
        return self.memory_mb - self.memory_used_mb

    @property
    def alive(self) -> bool:
        """ALIVE (suspected workers are alive but get no new work)."""
        return self.state == _WORKER_ALIVE

    def heard_from(self, now: float | None = None) -> None:
        """Record a sign of life (at monotonic `now`, by default the present)."""
        self.last_heartbeat = time.monotonic() if now is None else now
        self.last_heartbeat_ms = now_ms()
        self.suspected = False
        self.disconnected_at = None

    def heard_by_datagram(self, now: float) -> None:
        """A heartbeat datagram came: alive, but its connection is no better than it was.

        Unlike `heard_from` it does not clear a lost connection: UDP getting through
        says nothing of the stream that carries the Master's commands.
        """
        self.last_heartbeat = now
        self.last_heartbeat_ms = now_ms()

    def lost_connection(self, now: float | None = None) -> None:
        """Its connection closed: suspected (no new work) until heard from again."""
        self.suspected = True
        self.disconnected_at = time.monotonic() if now is None else now


@dataclasses.dataclass(slots=True)
class AppInfo:
    """A registered application and the executors it holds."""

    app_id: str
    description: deploy_pb2.ApplicationDescription
    driver_ref: RpcEndpointRef | None
    driver_address: RpcAddress | None
    start_time_ms: int = dataclasses.field(default_factory=now_ms)
    end_time_ms: int = 0
    state: AppStateValue = AS.APPLICATION_STATE_WAITING
    message: str = ""
    executors: Holdings[int, ExecutorInfo] = dataclasses.field(default_factory=executor_holdings)
    next_executor_id: int = 0
    # Abnormal executor exits in a row (reset when one reaches RUNNING).
    retry_count: int = 0
    # Dynamic allocation's target; None = as many as cores allow.
    executor_limit: int | None = None
    #: Stage-level resource profiles other than the default, by id, and how many
    #: executors of each dynamic allocation wants (RequestExecutorsRequest).
    profiles: dict[int, deploy_pb2.ExecutorProfile] = dataclasses.field(default_factory=dict)
    profile_limits: dict[int, int] = dataclasses.field(default_factory=dict)

    def executors_of(self, profile_id: int) -> int:
        """How many executors of that profile it holds now."""
        if not self.profiles:
            return len(self.executors) if profile_id == 0 else 0
        return sum(1 for e in self.executors.values() if e.profile_id == profile_id)

    # Cores it held when it finished (its executor records are dropped then).
    final_cores: int = 0
    # Workers that ever ran one of its executors: only they have its work dir to
    # clean when it ends (telling all of them cost 2,000 sends per app at scale).
    # None = not known (recovered from a record): every worker is told.
    worker_ids: set[str] | None = dataclasses.field(default_factory=set)
    # The env id of the connection its driver registered over ("" until it does).
    driver_peer_id: str = ""
    # The cluster-mode driver that registered it ("" for a client-mode driver): a
    # caller holding only this application's credential may read and kill it.
    driver_id: str = ""

    def __post_init__(self) -> None:
        if self.state == AS.APPLICATION_STATE_UNKNOWN:
            self.worker_ids = None  # recovered: earlier executors' workers are unknown

    def ran_on(self, worker_id: str) -> None:
        """Note that one of its executors was placed on `worker_id`."""
        if self.worker_ids is not None:
            self.worker_ids.add(worker_id)

    @property
    def cores_granted(self) -> int:
        """Cores held by its executors now."""
        return self.executors.cores

    @property
    def cores_left(self) -> int:
        """Cores it may still be granted (spark.cores.max minus granted)."""
        wanted = self.description.max_cores
        if wanted <= 0:
            return 1 << 30
        return max(0, wanted - self.cores_granted)

    @property
    def finished(self) -> bool:
        """FINISHED, FAILED or KILLED."""
        return self.state in FINISHED_APP_STATES

    def new_executor_id(self) -> int:
        """The next executor id of this application."""
        value = self.next_executor_id
        self.next_executor_id += 1
        return value

    def duration_ms(self) -> int:
        """How long it ran (until now while it runs)."""
        end = self.end_time_ms or now_ms()
        return max(0, end - self.start_time_ms)


@dataclasses.dataclass(slots=True)
class DriverInfo:
    """A cluster-mode driver: where it runs and how it is doing."""

    driver_id: str
    description: deploy_pb2.DriverDescription
    submit_time_ms: int = dataclasses.field(default_factory=now_ms)
    state: DriverStateValue = DS.DRIVER_STATE_SUBMITTED
    worker_id: str = ""
    exception: str = ""
    # Supervised relaunches so far (for the back-off).
    relaunches: int = 0
    # Waiting for its back-off timer: not placeable yet.
    backing_off: bool = False
    # When it was last launched (monotonic seconds; 0 = never).
    launched_at: float = 0.0
    # Killed by request while running: said again to a worker that re-registers with it.
    kill_requested: bool = False
    # Launches so far: the current one's number, echoed by the worker's reports, so that
    # a stale copy's report is told apart from the live one's (cluster.senders).
    attempt: int = 0

    @property
    def finished(self) -> bool:
        """FINISHED, FAILED, KILLED or ERROR."""
        return self.state in FINISHED_DRIVER_STATES
