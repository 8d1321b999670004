"""An application whose executors fit no worker is told why by its own driver.

The Master keeps such an application WAITING (a larger worker may join) and says
why in its state; the user runs the driver, so the driver's warning carries it
instead of only pointing at the cluster UI.
"""

from __future__ import annotations

import logging
import pathlib

import pytest

from cluster.launch import start_master, start_worker
from rpcenv import Conf
from scheduler import SparkConf, SparkContext


def test_the_driver_says_no_worker_can_hold_an_executor(
    tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture
) -> None:
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    worker = None
    try:
        worker = start_worker(Conf({}), [master.url], 1, 512, "127.0.0.1", 0, tmp_path / "w")
        assert worker.wait_registered(30)
        conf = (
            SparkConf()
            .setMaster(master.url)
            .setAppName("too-big")
            .set("spark.executor.memory", "2g")
            .set("spark.ui.enabled", "false")
        )
        with caplog.at_level(logging.WARNING, logger="scheduler.backend.standalone"):
            sc = SparkContext(conf=conf)  # waits 10 s for a first executor, then warns
            sc.stop()
        warnings = [r.getMessage() for r in caplog.records if "no executor" in r.getMessage()]
        assert warnings == [
            "no executor registered yet; jobs wait for one: waiting: each executor needs "
            "1 core and 2048 MiB on one worker, which no ALIVE worker has even when idle "
            "(most cores 1, most memory 512 MiB); it waits until such a worker registers"
        ], caplog.text
    finally:
        if worker is not None:
            worker.stop()
        master.stop()
