"""A SparkContext's status tracker keeps as many finished jobs and stages as its conf says.

The registry's bounds themselves are unit-tested (unit/test_tracker.py); this
checks that the context hands it spark.ui.retainedJobs and
spark.ui.retainedStages, with one real local[2] context.
"""

from __future__ import annotations

from scheduler import SparkConf, SparkContext


def test_the_tracker_keeps_the_configured_number_of_finished_jobs_and_stages() -> None:
    conf = (
        SparkConf()
        .setMaster("local[2]")
        .setAppName("tracker-retained")
        .set("spark.ui.enabled", "false")
        .set("spark.ui.retainedJobs", "2")
        .set("spark.ui.retainedStages", "3")
    )
    sc = SparkContext(conf=conf)
    try:
        tracker = sc.statusTracker()
        sc.setJobGroup("g", "bounded")
        for n in range(5):
            assert sc.parallelize(range(4), 2).map(lambda x, n=n: x + n).count() == 4
        job_ids = tracker.getJobIdsForGroup("g")
        assert len(job_ids) == 2, job_ids
        assert tracker.getJobInfo(min(job_ids) - 1) is None  # pushed out by newer ones
        newest = tracker.getJobInfo(max(job_ids))
        assert newest is not None and newest.status == "SUCCEEDED"
        kept = [s for s in range(10) if tracker.getStageInfo(s) is not None]
        assert len(kept) == 3 and max(kept) == newest.stageIds[-1]
    finally:
        sc.stop()
