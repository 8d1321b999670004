"""MapOutput: where one map task's shuffle output lives.

The DAGScheduler records one per finished map task; reduce tasks receive them
to find their segments (on their own host or through the owner's block
server). A plain value: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scheduler.shuffle.rangesort import Sample, SortedRun

__all__ = ["MapOutput"]


@dataclass(frozen=True)
class MapOutput:
    """Where one map task's shuffle output lives."""

    executor_id: str
    host: str
    path: str
    #: "host:port" where the owner serves its blocks to other executors; "" when it serves
    #: none (it could not listen), and its blocks are fetched through the driver.
    address: str = ""
    #: sortByKey's shuffles: the chunk index of the task's sorted run.
    run: SortedRun | None = None
    #: sortByKey's shuffles: the task's count and key sample, for the driver only (the
    #: DAGScheduler keeps it apart, so reduce tasks are not shipped every sample).
    sample: Sample | None = None
