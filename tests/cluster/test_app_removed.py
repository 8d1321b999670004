"""A driver whose application the Master removed stops, as Spark's does."""

from __future__ import annotations

import concurrent.futures
import pathlib
import re

import pytest

from cluster.launch import start_master, start_worker
from cluster.testing import wait_until
from rpcenv import Conf
from scheduler import SparkConf, SparkContext
from sparkctl.v1 import master_service_pb2 as api


def test_a_job_after_the_master_removed_the_application_fails_instead_of_waiting(
    tmp_path: pathlib.Path,
) -> None:
    # Only the jobs running at the removal were cancelled: a later one waited forever
    # ("Initial job has not accepted any resources") for executors never to be granted.
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    worker = start_worker(Conf({}), [master.url], 1, 1024, "127.0.0.1", 0, tmp_path / "worker")
    sc: SparkContext | None = None
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        assert worker.wait_registered(10)
        sc = SparkContext(conf=SparkConf().setMaster(master.url).setAppName("removed"))
        app_id = sc.applicationId
        reply = master.ref.ask_sync(api.KillApplicationRequest(app_id=app_id), 10)
        assert isinstance(reply, api.KillApplicationResponse) and reply.killed
        backend = sc._backend
        wait_until(lambda: backend.stopped, 10, "the driver to hear of the removal")
        job = pool.submit(lambda: sc.parallelize(range(4), 2).count())  # type: ignore[union-attr]
        with pytest.raises(Exception) as info:  # which one depends on timing
            job.result(timeout=30)
        assert not isinstance(info.value, concurrent.futures.TimeoutError), "the job waited"
        assert re.search(r"stopped SparkContext|shut down|removed the application", str(info.value))
    finally:
        if sc is not None:
            sc.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        worker.stop()
        master.stop()
