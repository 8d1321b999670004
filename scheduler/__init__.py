"""scheduler: the driver side of sparkctl, with PySpark's RDD API.

`from scheduler import SparkContext, SparkConf` is all an application needs.
Names are imported lazily so that executor worker processes, which import
`scheduler._pyworker`, do not pay for the driver's RpcEnv and gRPC imports.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from scheduler._serializers import NAMEDTUPLE_PATCH_ENV, pickle_namedtuples_by_value

# As PySpark does on import when asked: namedtuple classes travel by value.
if os.environ.get(NAMEDTUPLE_PATCH_ENV) == "1":
    pickle_namedtuples_by_value()

if TYPE_CHECKING:
    from scheduler._accumulators import Accumulator, AccumulatorParam
    from scheduler._aggregation import ResultIterable
    from scheduler._barrier import RDDBarrier
    from scheduler._broadcast import Broadcast
    from scheduler._context import SparkContext
    from scheduler._errors import JobCancelledError, JobFailedError, SparkJobError
    from scheduler._partitioner import Partitioner, portable_hash
    from scheduler._profiler import BasicProfiler, Profiler
    from scheduler._rdd import RDD
    from scheduler._serializers import CPickleSerializer, MarshalSerializer
    from scheduler._session import SparkSession
    from scheduler._sparkconf import SparkConf
    from scheduler._sparkfiles import SparkFiles
    from scheduler._statcounter import StatCounter
    from scheduler._status import SparkJobInfo, SparkStageInfo, StatusTracker
    from scheduler._storagelevel import StorageLevel
    from scheduler._taskcontext import BarrierTaskContext, BarrierTaskInfo, TaskContext
    from scheduler._textscan import Row
    from scheduler._threads import InheritableThread, inheritable_thread_target

__all__ = [
    "RDD",
    "Accumulator",
    "AccumulatorParam",
    "BarrierTaskContext",
    "BarrierTaskInfo",
    "BasicProfiler",
    "Broadcast",
    "CPickleSerializer",
    "InheritableThread",
    "JobCancelledError",
    "JobFailedError",
    "MarshalSerializer",
    "Partitioner",
    "Profiler",
    "RDDBarrier",
    "ResultIterable",
    "Row",
    "SparkConf",
    "SparkContext",
    "SparkFiles",
    "SparkJobError",
    "SparkJobInfo",
    "SparkSession",
    "SparkStageInfo",
    "StatCounter",
    "StatusTracker",
    "StorageLevel",
    "TaskContext",
    "inheritable_thread_target",
    "portable_hash",
]

_WHERE = {
    "RDD": "_rdd",
    "Accumulator": "_accumulators",
    "AccumulatorParam": "_accumulators",
    "Broadcast": "_broadcast",
    "CPickleSerializer": "_serializers",
    "MarshalSerializer": "_serializers",
    "JobCancelledError": "_errors",
    "JobFailedError": "_errors",
    "Partitioner": "_partitioner",
    "BasicProfiler": "_profiler",
    "Profiler": "_profiler",
    "ResultIterable": "_aggregation",
    "Row": "_textscan",
    "SparkSession": "_session",
    "SparkConf": "_sparkconf",
    "SparkContext": "_context",
    "SparkFiles": "_sparkfiles",
    "SparkJobError": "_errors",
    "SparkJobInfo": "_status",
    "SparkStageInfo": "_status",
    "StatCounter": "_statcounter",
    "StatusTracker": "_status",
    "StorageLevel": "_storagelevel",
    "TaskContext": "_taskcontext",
    "BarrierTaskContext": "_taskcontext",
    "BarrierTaskInfo": "_taskcontext",
    "RDDBarrier": "_barrier",
    "InheritableThread": "_threads",
    "inheritable_thread_target": "_threads",
    "portable_hash": "_partitioner",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'scheduler' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"scheduler.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
