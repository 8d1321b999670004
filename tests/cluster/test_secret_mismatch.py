"""A driver without the cluster's shared secret is told so at once."""

from __future__ import annotations

import pathlib
import time

import pytest

from cluster.launch import start_master
from rpcenv import Conf
from scheduler import SparkConf, SparkContext


def test_a_driver_without_the_secret_fails_at_once_saying_why(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It retried a refused proof of the secret for 30 s, then said only that it could
    # not register "within 30s".
    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    monkeypatch.delenv("SPARKCTL_SECRET_FILE", raising=False)
    master = start_master(
        Conf({"spark.authenticate.secret": "the-cluster-secret"}),
        "127.0.0.1",
        0,
        tmp_path / "master",
    )
    try:
        conf = SparkConf().setMaster(master.url).setAppName("no-secret")
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="authentication failed: no authentication token"):
            SparkContext(conf=conf)
        assert time.monotonic() - started < 10
        assert not master.endpoint.apps
    finally:
        master.stop()
