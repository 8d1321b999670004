"""What the tests of a standalone application's executors share (real processes).

`test_executor_rpc_backend` and `test_executor_tcp_hostile` both run drivers
against one Master and one Worker holding the shared secret, find the Worker's
executor processes by PID, start a foreign executor by hand and, from inside a
reducer, signal the executor that is not its own ancestor. One copy of each here.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from cluster.testing import ProcCluster, descendant_pids
from rpcenv import APP_CREDENTIAL_ENV_VAR, APP_ID_ENV_VAR, SECRET_ENV_VAR

#: The conf of every driver of these tests: no UI, small executors.
APP_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.executor.memory": "256m",
}


@contextmanager
def secret_cluster(root: pathlib.Path, secret: str) -> Iterator[ProcCluster]:
    """A Master and a Worker of two cores, holding the secret (so are the drivers).

    The environment is restored afterwards: the secret would leak into later modules.
    """
    keys = (SECRET_ENV_VAR, APP_ID_ENV_VAR, APP_CREDENTIAL_ENV_VAR)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ[SECRET_ENV_VAR] = secret
    os.environ.pop(APP_ID_ENV_VAR, None)
    os.environ.pop(APP_CREDENTIAL_ENV_VAR, None)
    try:
        with ProcCluster(root, workers=1, cores=2) as c:
            yield c
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def app_context(master: str, name: str, **conf: str) -> Any:
    """A SparkContext on `master` with `APP_CONF` and `conf` (the caller stops it)."""
    from scheduler import SparkConf, SparkContext

    spark_conf = SparkConf().setMaster(master).setAppName(name)
    for key, value in {**APP_CONF, **conf}.items():
        spark_conf.set(key, value)
    return SparkContext(conf=spark_conf)


def executor_pids(worker_pid: int) -> list[int]:
    """The PIDs of the executor processes below a Worker."""
    found = []
    for pid in descendant_pids(worker_pid):
        try:
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"scheduler.executor" in cmdline:
            found.append(pid)
    return found


def run_foreign_executor(
    runtime: Any, executor_id: str, app_id: str, credential: str
) -> subprocess.CompletedProcess[str]:
    """An executor started by hand against the driver, with `credential` for `app_id`.

    It holds no secret: only the credential can let it in.
    """
    env = {
        **{k: v for k, v in os.environ.items() if k != SECRET_ENV_VAR},
        APP_ID_ENV_VAR: app_id,
        APP_CREDENTIAL_ENV_VAR: credential,
        "SPARKCTL_RPC_CONF": runtime.executor_env["SPARKCTL_RPC_CONF"],
    }
    argv = [
        sys.executable, "-m", "scheduler.executor", "--driver-url", runtime.driver_url,
        "--executor-id", executor_id, "--hostname", "127.0.0.1", "--cores", "1",
        "--app-id", app_id,
    ]  # fmt: skip
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


def signal_the_other_executor(
    marker: str, victims: list[int], signum: int, wait: bool
) -> Callable[[Iterator[Any]], list[Any]]:
    """A partition function: the first task to run signals the victim that is not its
    own ancestor, before it reads its input, then passes its records through.

    The marker file (created exclusively) makes it happen once across executors; with
    `wait` the task waits (10 s at most) for the victim's end. The function returned
    is a closure, so it is shipped to executors by value.
    """

    def signal_it(records: Iterator[Any]) -> list[Any]:
        import os as os_

        import psutil as psutil_

        try:
            os_.close(os_.open(marker, os_.O_CREAT | os_.O_EXCL | os_.O_WRONLY))
        except FileExistsError:
            return list(records)
        mine = {p.pid for p in psutil_.Process().parents()}
        for pid in victims:
            if pid not in mine:
                os_.kill(pid, signum)
                if wait:
                    psutil_.Process(pid).wait(10)
        return list(records)

    return signal_it
