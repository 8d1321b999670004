"""The exceptions a driver program sees when a job does not finish.

    SparkJobError                 a job failed; the message carries task/stage ids
    ├── JobFailedError            a stage was aborted (a task failed maxFailures times,
    │                             or fetch failures repeated); has the remote traceback
    └── JobCancelledError         cancelled by job group, job id, or SparkContext.stop

No I/O; raised on the driver only.
"""

from __future__ import annotations

__all__ = ["JobCancelledError", "JobFailedError", "SparkJobError"]


class SparkJobError(Exception):
    """A job did not finish."""


class JobFailedError(SparkJobError):
    """A job was aborted because one of its stages failed for good."""


class JobCancelledError(SparkJobError):
    """A job was cancelled."""
