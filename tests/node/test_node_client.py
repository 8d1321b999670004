"""Another language drives the cluster: a Node.js MasterService client loading proto/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _cli_harness import CLI, clean_env, daemon_cluster

from cluster.launch import start_master
from rpcenv import Conf

HERE = Path(__file__).resolve().parent


def _require_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (HERE / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.skip("node packages missing: run 'make node-deps' (make test does)")
    return node


@pytest.mark.parametrize("secret", ["", "node-test-secret"], ids=["open", "shared-secret"])
def test_node_client_lists_submits_polls_and_kills(tmp_path: Path, secret: str) -> None:
    node = _require_node()
    tiny = tmp_path / "tiny.py"
    tiny.write_text("import sys\nprint('tiny driver ran', sys.argv[1:])\n")
    sleepy = tmp_path / "sleepy.py"
    sleepy.write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n")
    env = clean_env(**({"SPARKCTL_SECRET": secret} if secret else {}))
    with daemon_cluster(tmp_path / "work", env=env) as cluster:
        target = cluster.master.url.removeprefix("spark://")
        result = subprocess.run(
            [node, str(HERE / "client.js"), target, str(tiny), str(sleepy)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert result.returncode == 0, result.stderr + result.stdout
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        assert len(summary["workers"]) == 1
        assert summary["finished_on"] == summary["workers"][0]
        out = (cluster.work_dir / summary["finished"] / "stdout").read_text()
        assert "tiny driver ran ['from-node']" in out
        status = subprocess.run(
            [*CLI, "status", summary["killed"], "--master", cluster.master.url, "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert json.loads(status.stdout)["state"] == "KILLED"


def test_node_client_gets_a_status_for_oversized_empty_and_garbage_requests(
    tmp_path: Path,
) -> None:
    # A 200,000-character id came back in a status trailer too large for HTTP/2: the
    # channel broke and every later call of this client hung until its deadline.
    node = _require_node()
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    try:
        result = subprocess.run(
            [node, str(HERE / "hostile_client.js"), master.rpc_env.address.host_port],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        master.stop()
    assert result.returncode == 0, result.stderr + result.stdout
    outcomes = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcomes["hugeDriverStatus"].startswith("NOT_FOUND no driver 'ddd")
    assert outcomes["hugeDriverStatus"].endswith("'... (200000 characters)")
    assert outcomes["hugeKillApplication"].startswith("NOT_FOUND no application 'ddd")
    assert outcomes["emptyKillDriver"] == "INVALID_ARGUMENT driver_id is required"
    assert outcomes["emptySubmit"].startswith("INVALID_ARGUMENT DriverDescription needs")
    assert outcomes["garbage"].startswith("INVALID_ARGUMENT malformed")
    assert outcomes["state"] == "OK"
