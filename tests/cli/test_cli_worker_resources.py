"""`sparkctl start-worker` with custom resources: discovery at start, shown by `status --json`."""

from __future__ import annotations

import json
from pathlib import Path

from _cli_harness import clean_env, parse_started, reaped, run_cli


def _script(tmp_path: Path, output: str) -> str:
    path = tmp_path / "discover-gpu.sh"
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return str(path)


def test_a_worker_reports_the_gpus_its_script_found(tmp_path: Path) -> None:
    script = _script(tmp_path, json.dumps({"name": "gpu", "addresses": ["0", "1"]}))
    env = clean_env()
    work = tmp_path / "w"
    with reaped(work) as pids:
        started = run_cli(
            "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(work), env=env
        )
        assert started.returncode == 0, started.stderr
        master = parse_started(started.stdout)
        pids.append(master.pid)
        started = run_cli(
            "start-worker", master.url, "--cores", "1", "--memory", "512m",
            "--webui-port", "0", "--work-dir", str(work),
            "--conf", "spark.worker.resource.gpu.amount=2",
            "--conf", f"spark.worker.resource.gpu.discoveryScript={script}",
            env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        pids.append(parse_started(started.stdout).pid)
        doc = json.loads(run_cli("status", "--master", master.url, "--json", env=env).stdout)
        (worker,) = doc["workers"]
        gpus = {"gpu": {"name": "gpu", "addresses": ["0", "1"]}}
        assert worker["resources"] == gpus and worker["resourcesfree"] == gpus
        assert worker["resourcesused"] == {"gpu": {"name": "gpu", "addresses": []}}


def test_a_failing_discovery_script_stops_the_worker_naming_it(tmp_path: Path) -> None:
    script = _script(tmp_path, json.dumps({"name": "fpga", "addresses": ["0"]}))
    env = clean_env()
    work = tmp_path / "w"
    with reaped(work) as pids:
        started = run_cli(
            "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(work), env=env
        )
        assert started.returncode == 0, started.stderr
        master = parse_started(started.stdout)
        pids.append(master.pid)
        result = run_cli(
            "start-worker", master.url, "--cores", "1", "--memory", "512m",
            "--webui-port", "0", "--work-dir", str(work),
            "--conf", "spark.worker.resource.gpu.amount=1",
            "--conf", f"spark.worker.resource.gpu.discoveryScript={script}",
            env=env,
        )  # fmt: skip
        assert result.returncode != 0
        assert "we were expecting gpu" in result.stderr and script in result.stderr
        assert "Traceback" not in result.stderr
