"""The shipped process-cluster harness (`cluster/testing/`) keeps its promises.

Every suite that starts a cluster as processes relies on these: the cluster is
ready when the constructor returns, `close` leaves no process behind, a child
that cannot start fails fast with its reason, and a child whose parent goes away
(stdin closed) stops by itself.
"""

from __future__ import annotations

import pathlib
import socket
import subprocess
import sys

import psutil
import pytest

from cluster.testing import ROOT, ClusterProcess, ProcCluster, free_port, wait_until
from sparkctl.v1 import deploy_pb2 as pb


def test_a_cluster_is_ready_and_leaves_nothing_behind(tmp_path: pathlib.Path) -> None:
    cluster = ProcCluster(tmp_path, {"spark.worker.timeout": "3"}, workers=2, cores=1)
    try:
        state = cluster.state()
        alive = [w for w in state.workers if w.state == pb.WORKER_STATE_ALIVE]
        assert len(alive) == 2 and all(w.cores == 1 for w in alive)
        assert cluster.url.startswith("spark://127.0.0.1:")
        pids = cluster.pids()
        assert len(pids) >= 3
        cluster.assert_all_free()
    finally:
        cluster.close()
    cluster.assert_no_leaks()
    # SIGTERM is a clean stop: exit code 0, not an abort (e.g. a thread blocked on stdin).
    assert [p.popen.returncode for p in cluster.procs] == [0, 0, 0]
    assert not [pid for pid in pids if psutil.pid_exists(pid) and _running(pid)]


def test_a_child_that_cannot_start_fails_with_its_reason(tmp_path: pathlib.Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AssertionError, match=r"cluster\.run .* failed"):
            ProcCluster(tmp_path, master_port=port)


def test_closing_stdin_stops_the_child(tmp_path: pathlib.Path) -> None:
    proc = ClusterProcess(
        ["master", "--port", str(free_port()), "--work-dir", str(tmp_path / "m")],
        tmp_path / "master.log",
    )
    try:
        assert proc.popen.stdin is not None
        proc.popen.stdin.close()  # what the kernel does when the harness process dies
        wait_until(lambda: not proc.alive(), 15, "the master to stop on stdin EOF")
        assert proc.popen.returncode == 0
    finally:
        proc.kill()


def test_wait_until_returns_the_value_or_names_what_it_waited_for() -> None:
    assert wait_until(lambda: [1], 1, "a list") == [1]
    with pytest.raises(AssertionError, match=r"timed out after 0\.1s waiting for nothing"):
        wait_until(lambda: None, 0.1, "nothing")


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_the_harness_surface_resolves_and_its_process_part_needs_no_grpc() -> None:
    """`cluster.testing` is one import path over private modules: every name in its
    `__all__` resolves, and importing it (the process helpers the PySpark oracle and
    benchmark venvs use) loads neither gRPC nor protobuf until a local name is asked."""
    import cluster.testing

    for name in cluster.testing.__all__:
        assert getattr(cluster.testing, name) is not None, name
    probe = (
        "import sys\n"
        "from cluster.testing import ProcCluster, kill_tree, tls_files, wait_until\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google'))\n"
        "assert not loaded, loaded\n"
        "from cluster.testing import LocalCluster\n"
        "assert 'cluster.testing._local' in sys.modules and 'google.protobuf' in sys.modules\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
