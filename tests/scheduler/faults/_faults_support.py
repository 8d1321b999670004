"""Helpers of the driver's fault tests: bounded waits and contexts.

The Master and Workers that a test SIGKILLs come from `cluster.testing.ProcCluster`
(the `node_cluster` fixture). Named uniquely (not `conftest`) so test modules can
import it.
"""

from __future__ import annotations

from typing import Any

from cluster.testing import wait_until  # the bounded poll of every fault test

__all__ = ["new_context", "wait_until"]


def new_context(master: str, name: str, conf: dict[str, str] | None = None) -> Any:
    from scheduler import SparkConf, SparkContext

    spark_conf = SparkConf(loadDefaults=False).setMaster(master).setAppName(name)
    spark_conf.set("spark.ui.showConsoleProgress", "false")
    for key, value in (conf or {}).items():
        spark_conf.set(key, value)
    return SparkContext(conf=spark_conf)
