"""scheduler: the driver side of sparkctl, with PySpark's RDD API.

`from scheduler import SparkContext, SparkConf` is all an application needs.
Names are imported lazily so that executor worker processes, which import
`scheduler.executor.pyworker`, do not pay for the driver's RpcEnv and gRPC imports.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from scheduler._version import SPARK_VERSION
from scheduler.api.serializers import NAMEDTUPLE_PATCH_ENV, pickle_namedtuples_by_value

__version__ = SPARK_VERSION  # as pyspark.__version__: the Spark version sc.version reports

# As PySpark does on import when asked: namedtuple classes travel by value.
if os.environ.get(NAMEDTUPLE_PATCH_ENV) == "1":
    pickle_namedtuples_by_value()

if TYPE_CHECKING:
    from scheduler.api.conf import SparkConf
    from scheduler.api.context import SparkContext
    from scheduler.api.serializers import (
        CloudPickleSerializer,
        CPickleSerializer,
        MarshalSerializer,
        PickleSerializer,
    )
    from scheduler.api.session import SparkSession
    from scheduler.api.threads import InheritableThread, inheritable_thread_target
    from scheduler.api.tracker import SparkJobInfo, SparkStageInfo, StatusTracker
    from scheduler.api.util import VersionUtils, keyword_only
    from scheduler.core.errors import JobCancelledError, JobFailedError, SparkJobError
    from scheduler.rdd.barrier import RDDBarrier
    from scheduler.rdd.rdd import RDD
    from scheduler.rdd.statcounter import StatCounter
    from scheduler.rdd.storagelevel import StorageLevel
    from scheduler.rdd.textscan import Row
    from scheduler.shuffle.aggregation import ResultIterable
    from scheduler.shuffle.partitioner import Partitioner, portable_hash
    from scheduler.task.accumulators import (
        COMPLEX_ACCUMULATOR_PARAM,
        FLOAT_ACCUMULATOR_PARAM,
        INT_ACCUMULATOR_PARAM,
        Accumulator,
        AccumulatorParam,
    )
    from scheduler.task.broadcast import Broadcast
    from scheduler.task.profiler import BasicProfiler, Profiler
    from scheduler.task.sparkfiles import SparkFiles
    from scheduler.task.taskcontext import BarrierTaskContext, BarrierTaskInfo, TaskContext

__all__ = [
    "COMPLEX_ACCUMULATOR_PARAM",
    "FLOAT_ACCUMULATOR_PARAM",
    "INT_ACCUMULATOR_PARAM",
    "RDD",
    "Accumulator",
    "AccumulatorParam",
    "BarrierTaskContext",
    "BarrierTaskInfo",
    "BasicProfiler",
    "Broadcast",
    "CPickleSerializer",
    "CloudPickleSerializer",
    "InheritableThread",
    "JobCancelledError",
    "JobFailedError",
    "MarshalSerializer",
    "Partitioner",
    "PickleSerializer",
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
    "VersionUtils",
    "inheritable_thread_target",
    "keyword_only",
    "portable_hash",
]

_WHERE = {
    "RDD": "rdd.rdd",
    "Accumulator": "task.accumulators",
    "AccumulatorParam": "task.accumulators",
    "Broadcast": "task.broadcast",
    "CPickleSerializer": "api.serializers",
    "CloudPickleSerializer": "api.serializers",
    "MarshalSerializer": "api.serializers",
    "JobCancelledError": "core.errors",
    "JobFailedError": "core.errors",
    "Partitioner": "shuffle.partitioner",
    "BasicProfiler": "task.profiler",
    "Profiler": "task.profiler",
    "ResultIterable": "shuffle.aggregation",
    "Row": "rdd.textscan",
    "SparkSession": "api.session",
    "SparkConf": "api.conf",
    "SparkContext": "api.context",
    "SparkFiles": "task.sparkfiles",
    "SparkJobError": "core.errors",
    "SparkJobInfo": "api.tracker",
    "SparkStageInfo": "api.tracker",
    "StatCounter": "rdd.statcounter",
    "StatusTracker": "api.tracker",
    "StorageLevel": "rdd.storagelevel",
    "TaskContext": "task.taskcontext",
    "BarrierTaskContext": "task.taskcontext",
    "BarrierTaskInfo": "task.taskcontext",
    "RDDBarrier": "rdd.barrier",
    "InheritableThread": "api.threads",
    "inheritable_thread_target": "api.threads",
    "portable_hash": "shuffle.partitioner",
    "COMPLEX_ACCUMULATOR_PARAM": "task.accumulators",
    "FLOAT_ACCUMULATOR_PARAM": "task.accumulators",
    "INT_ACCUMULATOR_PARAM": "task.accumulators",
    "PickleSerializer": "api.serializers",
    "keyword_only": "api.util",
    "VersionUtils": "api.util",
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
