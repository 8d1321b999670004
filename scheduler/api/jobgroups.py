"""Local properties, job groups and job tags of a SparkContext, as a mixin.

A job carries the local properties of the thread that started it; groups
(spark.jobGroup.id) and tags (spark.job.tags) are such properties, and
cancelling by either asks the task scheduler to cancel the jobs whose
properties match. No job runs here.
"""

# Mixin methods are typed with `self: SparkContext`, the class they are mixed into.
# mypy: disable-error-code="misc"
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from scheduler.api.threads import inheritable_thread_target

if TYPE_CHECKING:
    from scheduler.api.context import SparkContext

__all__ = ["JobGroups"]

_F = TypeVar("_F", bound=Callable[..., Any])


class JobGroups:
    """SparkContext's local properties, job groups and job tags."""

    def _local_props(self: SparkContext) -> dict[str, str]:
        props: dict[str, str] | None = getattr(self._thread_local, "props", None)
        if props is None:
            props = self._thread_local.props = {}
        return props

    def with_local_properties(self: SparkContext, f: _F) -> _F:
        """`f`, to run on another thread with the calling thread's local properties."""
        return inheritable_thread_target(f)

    def setLocalProperty(self: SparkContext, key: str, value: str | None) -> None:
        """A property of jobs started from this thread (None removes it)."""
        if value is None:
            self._local_props().pop(key, None)
        else:
            self._local_props()[key] = str(value)

    def getLocalProperty(self: SparkContext, key: str) -> str | None:
        return self._local_props().get(key)

    def setJobGroup(
        self: SparkContext, groupId: str, description: str, interruptOnCancel: bool = False
    ) -> None:
        """Put the jobs started from this thread in a group, for cancelJobGroup."""
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    def setJobDescription(self: SparkContext, value: str) -> None:
        self.setLocalProperty("spark.job.description", value)

    def cancelJobGroup(self: SparkContext, groupId: str) -> None:
        """Cancel the running jobs of a group."""
        self._scheduler.cancel_jobs(
            lambda props: props.get("spark.jobGroup.id") == groupId,
            f"part of cancelled job group {groupId}",
        )

    def cancelAllJobs(self: SparkContext) -> None:
        """Cancel every running job."""
        self._scheduler.cancel_jobs(None, "as part of cancellation of all jobs")

    def setInterruptOnCancel(self: SparkContext, interruptOnCancel: bool) -> None:
        """Whether cancelling this thread's jobs interrupts their running tasks."""
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    # Job tags (Spark 3.5): a comma-separated set in the local property spark.job.tags.

    @staticmethod
    def _check_tag(tag: str) -> None:
        if tag is None:
            raise ValueError("Spark job tag cannot be null.")
        if "," in tag:
            raise ValueError("Spark job tag cannot contain `,`.")
        if not tag:
            raise ValueError("Spark job tag cannot be an empty string.")

    def getJobTags(self: SparkContext) -> set[str]:
        """The tags the jobs started from this thread get."""
        tags = self.getLocalProperty("spark.job.tags") or ""
        return {t for t in tags.split(",") if t}

    def _set_job_tags(self: SparkContext, tags: set[str]) -> None:
        self.setLocalProperty("spark.job.tags", ",".join(sorted(tags)) if tags else None)

    def addJobTag(self: SparkContext, tag: str) -> None:
        """Tag the jobs started from this thread (for cancelJobsWithTag)."""
        self._check_tag(tag)
        self._set_job_tags(self.getJobTags() | {tag})

    def removeJobTag(self: SparkContext, tag: str) -> None:
        """Stop tagging this thread's jobs with `tag`."""
        self._check_tag(tag)
        self._set_job_tags(self.getJobTags() - {tag})

    def clearJobTags(self: SparkContext) -> None:
        """Stop tagging this thread's jobs."""
        self._set_job_tags(set())

    def cancelJobsWithTag(self: SparkContext, tag: str) -> None:
        """Cancel the running jobs that carry `tag`."""
        self._check_tag(tag)
        self._scheduler.cancel_jobs(
            lambda props: tag in props.get("spark.job.tags", "").split(","),
            f"part of cancelled job tags {tag}",
        )
