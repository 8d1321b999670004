"""A standalone application on tcp, attacked: foreign executors, crashes, kills.

The driver talks to its executors (and they to each other) over the tcp
RpcEnv while the cluster stays on gRPC (`test_executor_rpc_backend`). Here the
peers misbehave, as real processes on 127.0.0.1 with the shared secret: an
executor holding another application's valid credential dials the driver; an
executor is SIGKILLed while reducers read its shuffle blocks (the job must
recover through FetchFailed and give exact results); the driver is SIGKILLed
(its executors must exit, none orphaned); the Worker is SIGKILLed (its
executors must follow it).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import psutil
import pytest
from _executor_cluster import (
    APP_CONF,
    app_context,
    executor_pids,
    run_foreign_executor,
    secret_cluster,
    signal_the_other_executor,
)

from cluster.testing import ProcCluster, alive, descendant_pids, wait_until
from rpcenv import SECRET_ENV_VAR, derive_app_credential

pytestmark = pytest.mark.timeout(180)

SECRET = "executor-tcp-hostile-test-secret"
#: How long executors may outlive the process that made them useless.
EXIT_BOUND_S = 15.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcCluster]:
    """A Master and a Worker of two cores, holding the secret (so are the drivers)."""
    with secret_cluster(tmp_path_factory.mktemp("cluster"), SECRET) as c:
        yield c


def _context(master: str, **conf: str) -> Any:
    return app_context(master, "tcp-hostile", **conf)


def test_an_executor_of_another_application_is_refused_by_the_driver(
    cluster: ProcCluster,
) -> None:
    sc = _context(cluster.url, **{"spark.cores.max": "1"})
    try:
        runtime = sc._runtime
        assert type(runtime.scheduler_env).__name__ == "TcpRpcEnv"
        other = "app-20000101000000-9999"  # a valid credential, of another application
        credential = derive_app_credential(SECRET.encode(), other)
        done = run_foreign_executor(runtime, "78", other, credential)
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("executor 78 failed: cannot reach the driver at"), done.stderr
        assert sc.applicationId in last and "Traceback" not in done.stderr
        assert "78" not in sc._scheduler.executors
        assert sc.parallelize(range(10), 2).sum() == 45
    finally:
        sc.stop()


def test_an_executor_killed_while_its_blocks_are_read_is_recovered_exactly(
    cluster: ProcCluster, tmp_path: pathlib.Path
) -> None:
    sc = _context(
        cluster.url,
        **{
            "spark.cores.max": "2",
            "spark.executor.cores": "1",
            "spark.network.timeout": "300s",
            # Reducers fetch every block over tcp, even from the same host's disk.
            "spark.executorEnv.SPARKCTL_FORCE_REMOTE_FETCH": "1",
        },
    )
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 2, 60, "two executors")
        assert sc.parallelize(range(4), 4).count() == 4
        victims = executor_pids(cluster.workers[0].pid)
        assert len(victims) == 2
        marker = str(tmp_path / "killed")

        # The first reducer to run kills the executor that is not its own ancestor
        # before it reads its input: its own fetches from it, and other reducers',
        # find the executor gone.
        kill_the_other_executor = signal_the_other_executor(
            marker, victims, signal.SIGKILL, wait=True
        )

        dag = sc._scheduler.dag
        fetch_failures: list[tuple[Any, ...]] = []
        real_fetch_failed = dag.fetch_failed

        def counting(*args: Any) -> Any:
            fetch_failures.append(args)
            return real_fetch_failed(*args)

        dag.fetch_failed = counting
        n = 20_000

        def slowly(records: Iterator[Any]) -> Iterator[Any]:
            import time as time_

            time_.sleep(0.05)
            return records

        # Map tasks of 50 ms: both executors hold map outputs when the reducers start.
        pairs = sc.parallelize(range(n), 8).mapPartitions(slowly).map(lambda x: (x % 97, x))
        sums = pairs.reduceByKey(lambda a, b: a + b, 8).mapPartitions(kill_the_other_executor)
        got = dict(sums.collect())
        assert got == {k: sum(range(k, n, 97)) for k in range(97)}
        assert os.path.exists(marker)
        assert sum(1 for pid in victims if alive(pid)) == 1  # one was killed, for real
        # Its blocks were fetched over tcp and found gone: FetchFailed, the map stage again.
        assert fetch_failures, "no fetch failure: the executor's blocks were never asked for"
    finally:
        sc.stop()


_DRIVER = textwrap.dedent(
    """
    import sys, time
    from scheduler import SparkConf, SparkContext
    conf = SparkConf().setMaster(sys.argv[1]).setAppName("tcp-hostile-driver")
    for kv in sys.argv[2:]:
        conf.set(*kv.split("=", 1))
    sc = SparkContext(conf=conf)
    assert sc.parallelize(range(100), 4).map(lambda x: (x % 3, x)).groupByKey().count() == 3
    print("READY", flush=True)
    time.sleep(600)
    """
)


def test_a_killed_driver_leaves_no_executor_behind(
    cluster: ProcCluster, tmp_path: pathlib.Path
) -> None:
    script = tmp_path / "driver.py"
    script.write_text(_DRIVER)
    conf = [f"{k}={v}" for k, v in {**APP_CONF, "spark.cores.max": "2"}.items()]
    conf.append("spark.executor.cores=1")
    driver = subprocess.Popen(
        [sys.executable, str(script), cluster.url, *conf],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=str(pathlib.Path(__file__).resolve().parents[2]),
    )
    try:
        assert driver.stdout is not None
        started = time.monotonic()
        line = ""
        while "READY" not in line and time.monotonic() - started < 90:
            line = driver.stdout.readline()
            if not line and driver.poll() is not None:
                break
        assert "READY" in line, f"driver exited {driver.poll()}"
        executors = executor_pids(cluster.workers[0].pid)
        assert executors
        family = [p for e in executors for p in (e, *descendant_pids(e))]
        driver.kill()
        driver.wait(10)
        killed = time.monotonic()
        wait_until(lambda: not any(alive(p) for p in family), EXIT_BOUND_S, "the executors' exit")
        assert time.monotonic() - killed < EXIT_BOUND_S
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait(10)


def test_a_killed_worker_takes_its_executors_with_it(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV_VAR, SECRET)
    with ProcCluster(tmp_path / "cluster", workers=1, cores=1) as c:
        sc = _context(c.url, **{"spark.cores.max": "1"})
        try:
            wait_until(lambda: len(sc._scheduler.executors) == 1, 60, "the executor")
            assert sc.parallelize(range(10), 2).sum() == 45
            worker = c.workers[0].pid
            executors = executor_pids(worker)
            assert len(executors) == 1
            family = [executors[0], *descendant_pids(executors[0])]
            psutil.Process(worker).send_signal(signal.SIGKILL)
            wait_until(
                lambda: not any(alive(p) for p in family), EXIT_BOUND_S, "the executor's exit"
            )
        finally:
            sc.stop()


def test_an_executor_frozen_while_its_blocks_are_read_does_not_hang_the_job(
    cluster: ProcCluster, tmp_path: pathlib.Path
) -> None:
    """SIGSTOP, not SIGKILL: its connections stay open and its kernel still ACKs, so
    only timeouts can tell (fetches waiting on it, the driver's heartbeat check)."""
    sc = _context(
        cluster.url,
        **{
            "spark.cores.max": "2",
            "spark.executor.cores": "1",
            "spark.network.timeout": "6s",
            "spark.executor.heartbeatInterval": "1s",
        },
    )
    frozen: list[int] = []
    try:
        wait_until(lambda: len(sc._scheduler.executors) == 2, 60, "two executors")
        assert sc.parallelize(range(4), 4).count() == 4
        victims = executor_pids(cluster.workers[0].pid)
        assert len(victims) == 2
        marker = str(tmp_path / "frozen")

        freeze_the_other_executor = signal_the_other_executor(
            marker, victims, signal.SIGSTOP, wait=False
        )

        n = 20_000
        pairs = sc.parallelize(range(n), 8).map(lambda x: (x % 97, x))
        sums = pairs.reduceByKey(lambda a, b: a + b, 8).mapPartitions(freeze_the_other_executor)
        started = time.monotonic()
        got = dict(sums.collect())
        took = time.monotonic() - started
        frozen = [p for p in victims if alive(p) and psutil.Process(p).status() == "stopped"]
        assert got == {k: sum(range(k, n, 97)) for k in range(97)}
        assert os.path.exists(marker)
        assert took < 60, f"the job took {took:.0f}s"
        assert frozen, "the frozen executor was killed already?"
        sc.stop()
        # Its Worker ends it, frozen as it is (a SIGTERM alone waits for a SIGCONT).
        wait_until(lambda: not any(alive(p) for p in frozen), 30, "the frozen executor's end")
    finally:
        for pid in frozen:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        sc.stop()
