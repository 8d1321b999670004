"""A real ZooKeeper server for the HA tests: Debian's package, run with java on 127.0.0.1.

`make zookeeper` (a dependency of `make test`) installs it. A missing install is a
test failure that says so, never a silent skip: the HA tests are the only proof
that ZOOKEEPER recovery works.
"""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from cluster.persistence import persistence_from_conf
from cluster.testing import free_port
from cluster.zookeeper_persistence import ZooKeeperPersistence
from rpcenv import Conf

# Where Debian's `zookeeper`/`libzookeeper-java` packages put the server's jar (its
# manifest names the dependencies' jars), and where upstream tarballs keep theirs.
_JAR_GLOBS = (
    "/usr/share/java/zookeeper.jar",
    "/usr/share/zookeeper/zookeeper*.jar",
    "/usr/share/zookeeper/lib/*.jar",
)
MAIN_CLASS = "org.apache.zookeeper.server.ZooKeeperServerMain"
#: Ticks bound session timeouts to 2 ticks at least (0.5 s here, for fast failovers)...
TICK_MS = 250
#: ...and at most this, well above the 20 ticks (5 s) by default: a test whose Masters
#: must keep their sessions through a loaded host's stalls asks for a longer one.
MAX_SESSION_MS = 30_000


def _classpath() -> str:
    jars = [j for pattern in _JAR_GLOBS for j in sorted(glob.glob(pattern))]
    java = shutil.which("java")
    if not jars or java is None:
        pytest.fail(
            "ZooKeeper is not installed (no java, or no zookeeper jar under /usr/share): "
            "run `make zookeeper` (Debian package `zookeeper`)",
            pytrace=False,
        )
    return os.pathsep.join(jars)


class ZooKeeperServer:
    """One standalone ZooKeeper process with its own data dir and port; stopped by PID."""

    def __init__(self, base: pathlib.Path, timeout: float = 30.0) -> None:
        classpath = _classpath()
        base.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = base / "zoo.cfg"
        config.write_text(
            f"tickTime={TICK_MS}\n"
            f"maxSessionTimeout={MAX_SESSION_MS}\n"
            f"dataDir={base / 'data'}\n"
            f"clientPort={self.port}\n"
            "clientPortAddress=127.0.0.1\n"
            "admin.enableServer=false\n"
            "maxClientCnxns=0\n"
            "4lw.commands.whitelist=\n"
        )
        self.log_path = base / "zookeeper.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-cp", classpath, MAIN_CLASS,
                 str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=base,
            )  # fmt: skip
        self._wait_ready(timeout)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        """`spark.deploy.zookeeper.url`."""
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> None:
        from kazoo.client import KazooClient

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            client = KazooClient(hosts=self.url, timeout=5.0)
            try:
                client.start(timeout=1.0)
                client.get_children("/")
                return
            except Exception:
                time.sleep(0.1)
            finally:
                client.stop()
                client.close()
        log = self.log_path.read_text(errors="replace")[-2000:]
        self.stop()
        pytest.fail(f"ZooKeeper did not start on {self.url} in {timeout:g}s: {log}", pytrace=False)

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


@contextmanager
def zookeeper_persistence(server: ZooKeeperServer, name: str) -> Iterator[ZooKeeperPersistence]:
    """The Master's ZOOKEEPER persistence on `server`, under a znode of its own (closed after)."""
    conf = Conf(
        {
            "spark.deploy.recoveryMode": "ZOOKEEPER",
            "spark.deploy.zookeeper.url": server.url,
            "spark.deploy.zookeeper.dir": f"/sparkctl-{name}-{time.monotonic_ns()}",
        }
    )
    persistence = persistence_from_conf(conf, pathlib.Path("unused"))
    assert isinstance(persistence, ZooKeeperPersistence)
    try:
        yield persistence
    finally:
        persistence.close()
