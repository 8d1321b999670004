"""PySpark compatibility: ``local-cluster[N,C,M]`` master URLs.

A SparkContext on ``local-cluster[2,1,1024]`` starts a Master and two
one-core Workers as processes on this host, runs its jobs on their
executors, and stops them when it stops. Expected values were observed on
PySpark 4.3 first (about 30 s to start there; a few seconds here).
"""

from __future__ import annotations

import os
import time
from typing import Any

import _compat_support as support
import pytest

#: How long the cluster's processes may take to exit once the context stopped.
EXIT_TIMEOUT_S = 30.0


def _pid(_: Any) -> int:
    return os.getpid()


def test_local_cluster_runs_jobs_on_its_own_workers() -> None:
    sc = support.new_context("local-cluster[2,1,1024]", "compat-local-cluster")
    pids: list[int] = []
    try:
        assert sc.master == "local-cluster[2,1,1024]"
        assert sc.defaultParallelism == 2
        assert sc.parallelize(range(10)).getNumPartitions() == 2
        assert sc.parallelize(range(10)).sum() == 45
        assert len(set(sc.parallelize(range(4), 4).map(_pid).collect())) >= 2
        assert os.getpid() not in sc.parallelize(range(4), 4).map(_pid).collect()
        counts = sc.parallelize(["a b", "b c"], 2).flatMap(str.split).countByValue()
        assert dict(counts) == {"a": 1, "b": 2, "c": 1}
        if support.IMPL == "sparkctl":
            pids = sc._local_cluster.pids
            assert len(pids) == 3  # the Master and two Workers
    finally:
        sc.stop()
    if pids:
        import psutil

        deadline = time.monotonic() + EXIT_TIMEOUT_S
        while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if psutil.pid_exists(p)]


def test_local_cluster_workers_must_hold_an_executor() -> None:
    from scheduler import SparkContext

    conf = support.compat_conf("compat-local-cluster-small").setMaster("local-cluster[1,1,512]")
    with pytest.raises(Exception, match="Asked to launch cluster with 512 MiB/worker"):
        SparkContext(conf=conf)


@pytest.mark.skipif(support.IMPL == "pyspark", reason="sparkctl's own message")
def test_a_bad_local_cluster_url_is_named() -> None:
    from scheduler import SparkContext

    conf = support.compat_conf("compat-local-cluster-bad").setMaster("local-cluster[0,1,1024]")
    with pytest.raises(ValueError, match=r"local-cluster\[N,C,M\] needs N workers >= 1"):
        SparkContext(conf=conf)
