"""The master's and worker's Prometheus collectors (`webui.prometheus_text` renders them).

Each UI owns its own registry (never the global one, so several UIs can live
in one test process). Gauges are read from the daemon's state at scrape time;
a failed read exports `..._up 0` instead of stale numbers. No I/O other than
the state callable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cluster.ui._json import app_state_name, executor_state_name, worker_state_name
from sparkctl.v1 import deploy_pb2, master_service_pb2

if TYPE_CHECKING:
    from cluster.heartbeat_datagrams import DatagramCounts

__all__ = ["master_registry", "worker_registry"]

log = logging.getLogger(__name__)

_MIB = 1 << 20


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


class _MasterCollector(Collector):
    def __init__(self, state: Callable[[], master_service_pb2.GetClusterStateResponse]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        try:
            state = self._state()
        except Exception as exc:  # a scrape must answer even when the master does not
            log.warning("metrics: cannot read the master's state: %s", exc)
            yield _gauge("sparkctl_master_up", "1 when the master answered this scrape", 0)
            return
        yield _gauge("sparkctl_master_up", "1 when the master answered this scrape", 1)
        workers = GaugeMetricFamily(
            "sparkctl_master_workers", "Workers known to the master, by state", labels=["state"]
        )
        counts: dict[str, int] = {}
        for worker in state.workers:
            name = worker_state_name(worker.state)
            counts[name] = counts.get(name, 0) + 1
        for name in ("ALIVE", "DEAD", "DECOMMISSIONED", "UNKNOWN"):
            workers.add_metric([name], counts.get(name, 0))
        yield workers
        yield _gauge("sparkctl_master_cores", "Cores of alive workers", state.cores)
        yield _gauge("sparkctl_master_cores_used", "Cores granted to executors", state.cores_used)
        yield _gauge(
            "sparkctl_master_memory_bytes", "Memory of alive workers", state.memory_mb * _MIB
        )
        yield _gauge(
            "sparkctl_master_memory_used_bytes",
            "Memory granted to executors",
            state.memory_used_mb * _MIB,
        )
        apps = GaugeMetricFamily(
            "sparkctl_master_apps", "Applications the master knows, by state", labels=["state"]
        )
        app_counts: dict[str, int] = {}
        for app in [*state.active_apps, *state.completed_apps]:
            name = app_state_name(app.state)
            app_counts[name] = app_counts.get(name, 0) + 1
        for name, count in sorted(app_counts.items()):
            apps.add_metric([name], count)
        yield apps
        drivers = GaugeMetricFamily(
            "sparkctl_master_drivers", "Cluster-mode drivers, active or completed", labels=["phase"]
        )
        drivers.add_metric(["active"], len(state.active_drivers))
        drivers.add_metric(["completed"], len(state.completed_drivers))
        yield drivers


class _DatagramCollector(Collector):
    """The Master's heartbeat datagram counters, read from its table at scrape time.

    Nothing is exported while the Master takes no datagrams (disabled, or its
    UDP socket could not be bound).
    """

    def __init__(self, counts: Callable[[], DatagramCounts | None]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self._counts()
        except Exception as exc:  # a scrape must answer even when the master does not
            log.warning("metrics: cannot read the heartbeat datagram counts: %s", exc)
            return
        if counts is None:
            return
        yield CounterMetricFamily(
            "sparkctl_master_heartbeat_datagrams_accepted",
            "Good heartbeat datagrams the master took",
            value=counts.accepted,
        )
        dropped = CounterMetricFamily(
            "sparkctl_master_heartbeat_datagrams_dropped",
            "Heartbeat datagrams the master dropped, by reason (size, version, unknown slot, "
            "forged, replayed, socket error)",
            labels=["reason"],
        )
        for reason, count in sorted(counts.dropped.items()):
            dropped.add_metric([reason], count)
        yield dropped


class _WorkerCollector(Collector):
    def __init__(self, state: Callable[[], deploy_pb2.GetWorkerStateResponse]) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        try:
            state = self._state()
        except Exception as exc:  # see _MasterCollector
            log.warning("metrics: cannot read the worker's state: %s", exc)
            yield _gauge("sparkctl_worker_up", "1 when the worker answered this scrape", 0)
            return
        yield _gauge("sparkctl_worker_up", "1 when the worker answered this scrape", 1)
        yield _gauge("sparkctl_worker_cores", "Cores this worker offers", state.cores)
        yield _gauge("sparkctl_worker_cores_used", "Cores used by executors", state.cores_used)
        yield _gauge(
            "sparkctl_worker_memory_bytes", "Memory this worker offers", state.memory_mb * _MIB
        )
        yield _gauge(
            "sparkctl_worker_memory_used_bytes",
            "Memory used by executors and drivers",
            state.memory_used_mb * _MIB,
        )
        executors = GaugeMetricFamily(
            "sparkctl_worker_executors", "Executors on this worker, by state", labels=["state"]
        )
        counts: dict[str, int] = {}
        for executor in [*state.executors, *state.finished_executors]:
            name = executor_state_name(executor.state)
            counts[name] = counts.get(name, 0) + 1
        for name, count in sorted(counts.items()):
            executors.add_metric([name], count)
        yield executors
        yield _gauge(
            "sparkctl_worker_drivers", "Drivers running on this worker", len(state.drivers)
        )


def _registry(*collectors: Collector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    # process_resident_memory_bytes and friends, for the "idle RSS" goal.
    ProcessCollector(registry=registry)
    return registry


def master_registry(
    state: Callable[[], master_service_pb2.GetClusterStateResponse],
    datagrams: Callable[[], DatagramCounts | None] | None = None,
) -> CollectorRegistry:
    """A registry exporting the master's gauges and its process metrics.

    Args:
        state: the cluster state (an ask to the Master in the daemon).
        datagrams: the Master's heartbeat datagram counts (`Master.datagram_counts`),
            read in-process: they are not part of the cluster state.
    """
    collectors: list[Collector] = [_MasterCollector(state)]
    if datagrams is not None:
        collectors.append(_DatagramCollector(datagrams))
    return _registry(*collectors)


def worker_registry(state: Callable[[], deploy_pb2.GetWorkerStateResponse]) -> CollectorRegistry:
    """A registry exporting the worker's gauges and its process metrics."""
    return _registry(_WorkerCollector(state))
