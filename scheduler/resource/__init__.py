"""Custom resources and stage-level scheduling: PySpark's `pyspark.resource`.

`ResourceProfileBuilder`, `ExecutorResourceRequests`, `TaskResourceRequests`,
`ResourceProfile` and `ResourceInformation` by PySpark's names; the profiles an
application's conf implies (`spark.executor.resource.*`, `spark.task.*`); and
`ResourceSlots`, the per-executor address bookkeeping the task scheduler uses.
It imports no other part of the scheduler.
"""

from __future__ import annotations

from scheduler.resource.information import ResourceInformation
from scheduler.resource.profile import ResourceProfile, ResourceProfileBuilder
from scheduler.resource.requests import (
    ExecutorResourceRequest,
    ExecutorResourceRequests,
    TaskResourceRequest,
    TaskResourceRequests,
)

__all__ = [
    "ExecutorResourceRequest",
    "ExecutorResourceRequests",
    "ResourceInformation",
    "ResourceProfile",
    "ResourceProfileBuilder",
    "TaskResourceRequest",
    "TaskResourceRequests",
]
