"""The driver's addresses, the executors' Python and local dirs (issue 9), without a cluster."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from rpcenv import Conf, RpcConfigError, is_loopback_host, route_address
from scheduler.backend.addresses import check_driver_bind, driver_addresses
from scheduler.backend.endpoint import WORKER_PYTHON, executor_argv, executor_python
from scheduler.executor.runtime import local_root_dirs, make_local_dir

MASTER = ["spark://127.0.0.1:7077"]


def test_local_mode_stays_on_loopback_whatever_the_environment() -> None:
    environ = {"SPARK_LOCAL_IP": "10.9.9.9", "SPARK_LOCAL_HOSTNAME": "far.example"}
    addresses = driver_addresses(Conf({}), "local", [], environ)
    assert (addresses.advertise, addresses.bind) == ("127.0.0.1", "127.0.0.1")
    # ...but an explicit setting is obeyed, as in Spark.
    explicit = driver_addresses(Conf({"spark.driver.host": "127.0.0.3"}), "local", [], environ)
    assert explicit.advertise == "127.0.0.3"


def test_standalone_follows_the_route_and_the_overrides() -> None:
    assert driver_addresses(Conf({}), "standalone", MASTER, {}).advertise == "127.0.0.1"
    conf = Conf({"spark.driver.host": "127.0.0.2", "spark.driver.bindAddress": "127.0.0.1"})
    addresses = driver_addresses(conf, "standalone", MASTER, {"SPARK_LOCAL_IP": "127.0.0.5"})
    assert (addresses.advertise, addresses.bind) == ("127.0.0.2", "127.0.0.1")
    by_env = driver_addresses(Conf({}), "standalone", MASTER, {"SPARK_LOCAL_IP": "127.0.0.5"})
    assert (by_env.advertise, by_env.bind) == ("127.0.0.5", "127.0.0.5")
    # A bracketed IPv6 master URL parses (its route is not needed to parse it).
    assert driver_addresses(Conf({}), "standalone", ["spark://[::1]:7077"], {}).advertise


def test_leaving_loopback_without_a_secret_is_one_clear_error() -> None:
    routed = route_address("192.0.2.1")
    if routed is None or is_loopback_host(routed):
        pytest.skip("this host has no non-loopback route (e.g. a bare network namespace)")
    addresses = driver_addresses(Conf({}), "standalone", ["spark://192.0.2.1:7077"], {})
    assert addresses.advertise == routed
    with pytest.raises(RpcConfigError) as error:
        check_driver_bind(addresses, Conf({}), {})
    text = str(error.value)
    assert "SPARKCTL_SECRET" in text and routed in text and "192.0.2.1" in text
    # A secret, its file, or the explicit insecure opt-in lets it start.
    check_driver_bind(addresses, Conf({}), {"SPARKCTL_SECRET": "s"})
    check_driver_bind(addresses, Conf({"spark.authenticate.secret.file": "/f"}), {})
    check_driver_bind(addresses, Conf({"spark.rpc.allowInsecure": "true"}), {})


def test_an_explicit_non_loopback_bind_names_its_setting() -> None:
    addresses = driver_addresses(
        Conf({"spark.driver.bindAddress": "0.0.0.0"}), "standalone", MASTER, {}
    )
    with pytest.raises(
        RpcConfigError,
        match=r"listen on 0\.0\.0\.0 \(spark\.driver\.bindAddress\).*SPARKCTL_SECRET",
    ):
        check_driver_bind(addresses, Conf({}), {})
    check_driver_bind(driver_addresses(Conf({}), "standalone", MASTER, {}), Conf({}), {})


def test_a_driver_that_must_leave_loopback_fails_at_startup(tmp_path: pathlib.Path) -> None:
    routed = route_address("192.0.2.1")
    if routed is None or is_loopback_host(routed):
        pytest.skip("this host has no non-loopback route (e.g. a bare network namespace)")
    from scheduler import SparkConf, SparkContext

    conf = SparkConf().setMaster("spark://192.0.2.1:7077").setAppName("far")
    saved = {
        k: os.environ.pop(k) for k in ("SPARKCTL_SECRET", "SPARKCTL_SECRET_FILE") if k in os.environ
    }
    try:
        with pytest.raises(RpcConfigError, match="SPARKCTL_SECRET"):
            SparkContext(conf=conf)
    finally:
        os.environ.update(saved)
    # Nothing was left behind: another context can start.
    with SparkContext("local[1]", "after") as sc:
        assert sc.parallelize([1, 2]).count() == 2


def test_executor_python_in_sparks_order() -> None:
    assert executor_python(Conf({}), {}) is None
    assert executor_python(Conf({}), {"PYSPARK_PYTHON": "/opt/py"}) == "/opt/py"
    conf = Conf({"spark.pyspark.python": "/usr/bin/python3"})
    assert executor_python(conf, {"PYSPARK_PYTHON": "/opt/py"}) == "/usr/bin/python3"
    # Unset, the standalone command carries the Worker's placeholder, not our path.
    argv = executor_argv(
        "d", "1", "h", "1", "a", "w", executor_python(Conf({}), {}) or WORKER_PYTHON
    )
    assert argv[0] == "{{PYTHON}}" and sys.executable not in argv


def test_local_dirs_order(tmp_path: pathlib.Path) -> None:
    worker, env_dirs, app = tmp_path / "w", tmp_path / "e", tmp_path / "a"
    environ = {
        "SPARK_EXECUTOR_DIRS": f"{worker},{worker}2",
        "SPARK_LOCAL_DIRS": str(env_dirs),
        "SPARKCTL_LOCAL_DIR": str(app),
    }
    assert local_root_dirs(environ)[0] == [str(worker), f"{worker}2"]
    del environ["SPARK_EXECUTOR_DIRS"]
    assert local_root_dirs(environ)[0] == [str(env_dirs)]
    del environ["SPARK_LOCAL_DIRS"]
    assert local_root_dirs(environ) == ([str(app)], "the application's spark.local.dir")
    assert local_root_dirs({}) == ([], "")


def test_local_dir_round_robin_and_fallback(tmp_path: pathlib.Path) -> None:
    roots = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert make_local_dir(roots, "x", "e-", 1).startswith(roots[1])
    blocked = tmp_path / "file"
    blocked.write_text("not a dir")
    assert make_local_dir([str(blocked), roots[0]], "x", "e-").startswith(roots[0])


def test_no_usable_local_dir_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a dir")
    with pytest.raises(OSError, match="no usable local dir among the worker's SPARK_LOCAL_DIRS"):
        make_local_dir([str(blocked)], "the worker's SPARK_LOCAL_DIRS or spark.local.dir", "e-")
