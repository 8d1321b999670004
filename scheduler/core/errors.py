"""The exceptions a driver program sees when a job does not finish.

    SparkJobError                 a job failed; the message carries task/stage ids
    ├── JobFailedError            a stage was aborted (a task failed maxFailures times,
    │                             or fetch failures repeated); has the remote traceback
    │   └── BarrierJobSlotsNumberCheckFailed  a barrier stage needs more slots than exist
    └── JobCancelledError         cancelled by job group, job id, or SparkContext.stop

No I/O; raised on the driver only.
"""

from __future__ import annotations

__all__ = [
    "BarrierJobSlotsNumberCheckFailed",
    "JobCancelledError",
    "JobFailedError",
    "SparkJobError",
]


class SparkJobError(Exception):
    """A job did not finish."""


class JobFailedError(SparkJobError):
    """A job was aborted because one of its stages failed for good."""


class BarrierJobSlotsNumberCheckFailed(JobFailedError):
    """A barrier stage needs more task slots than the executors have (Spark's name).

    Attributes:
        required: the stage's tasks (-1: not said).
        available: the slots the executors have now (-1: not said).
    """

    def __init__(self, message: str, required: int = -1, available: int = -1) -> None:
        super().__init__(message)
        self.required = required
        self.available = available


class JobCancelledError(SparkJobError):
    """A job was cancelled."""
