"""End to end: the sparkctl daemons, status, submit and kill as real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest
from _cli_harness import CLI, CliCluster, clean_env, parse_started, reaped, run_cli

from cluster.testing import alive, free_port, wait_until

TINY_APP = """
import json, os, sys
conf = json.loads(os.environ["SPARKCTL_SUBMIT_CONF"])
name, mode = conf["spark.app.name"], conf["spark.submit.deployMode"]
print("app", name, conf["spark.master"], mode, sys.argv[1:])
sys.exit(int(os.environ.get("TINY_EXIT", "0")))
"""


def _json(url: str) -> dict:  # type: ignore[type-arg]
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_status_json_and_table(cli_cluster: CliCluster) -> None:
    result = run_cli("status", "--master", cli_cluster.master.url, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "ALIVE" and doc["aliveworkers"] == 1
    (worker,) = doc["workers"]
    assert (worker["cores"], worker["memory"], worker["state"]) == (2, 1024, "ALIVE")
    assert worker["webuiaddress"] == cli_cluster.worker.webui_url
    # The same document as the master UI's /json (apart from the heartbeat clock).
    ui = _json(cli_cluster.master.webui_url + "/json")
    for w in (*ui["workers"], *doc["workers"]):
        w.pop("lastheartbeat")
    assert ui == doc
    table = run_cli("status", "--master", cli_cluster.master.url)
    assert table.returncode == 0
    assert "Workers (1)" in table.stdout and worker["id"] in table.stdout


def test_master_metrics_count_heartbeat_datagrams(cli_cluster: CliCluster) -> None:
    """The daemon wires its Master's datagram counters into /metrics (on by default)."""

    def accepted() -> float:
        with urllib.request.urlopen(cli_cluster.master.webui_url + "/metrics", timeout=10) as r:
            body = r.read().decode()
        for line in body.splitlines():
            if line.startswith("sparkctl_master_heartbeat_datagrams_accepted_total "):
                return float(line.split()[1])
        raise AssertionError(f"no datagram counter in /metrics:\n{body}")

    wait_until(lambda: accepted() >= 1, timeout=30.0)  # the worker heartbeats by datagram


def test_pid_and_log_files(cli_cluster: CliCluster) -> None:
    for role in ("master", "worker"):
        pid_file = cli_cluster.work_dir / f"sparkctl-{role}.pid"
        assert pid_file.is_file()
        assert (cli_cluster.work_dir / f"sparkctl-{role}.log").is_file()
    assert int((cli_cluster.work_dir / "sparkctl-master.pid").read_text()) == cli_cluster.master.pid


def test_second_master_on_busy_port_says_so(cli_cluster: CliCluster, tmp_path: Path) -> None:
    port = cli_cluster.master.url.rsplit(":", 1)[1]
    with reaped(tmp_path):
        result = run_cli(
            "start-master", "--port", port, "--webui-port", "0", "--work-dir", str(tmp_path)
        )
    assert result.returncode == 2  # a usage error naming the flag, as DESIGN.md asks
    assert "'--port'" in result.stderr
    assert f"port {port}" in result.stderr and "in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "sparkctl-master.pid").exists()
    webui_port = cli_cluster.master.webui_url.rsplit(":", 1)[1]
    with reaped(tmp_path):
        result = run_cli(
            *("start-master", "--port", "0", "--webui-port", webui_port),
            *("--conf", "spark.port.maxRetries=0", "--work-dir", str(tmp_path)),
        )
    assert result.returncode == 2 and "'--webui-port'" in result.stderr, result.stderr
    assert "in use" in result.stderr


def test_two_masters_started_at_once_in_one_work_dir_make_one_daemon(tmp_path: Path) -> None:
    # Both found no pid file (it is written once ready) and both ran; the second pid file
    # hid the first master from stop-master.
    args = [*CLI, "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(tmp_path)]
    with reaped(tmp_path) as pids:
        starts = [
            subprocess.Popen(args, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        results = [(p.wait(60), *(s.decode() for s in p.communicate(timeout=60))) for p in starts]
        started = [parse_started(out) for code, out, _ in results if code == 0]
        pids.extend(d.pid for d in started)
        refused = [err for code, _, err in results if code != 0]
        assert len(started) == 1 and len(refused) == 1, results
        # Refused by the lock while the first starts, or by its pid file once it is ready.
        assert "already starting or running" in refused[0] or "already running" in refused[0]
        assert run_cli("stop-master", "--work-dir", str(tmp_path)).returncode == 0
        wait_until(lambda: not alive(started[0].pid), 15, "the one master to stop")


def test_second_master_in_same_work_dir_says_so(cli_cluster: CliCluster) -> None:
    result = run_cli(
        "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(cli_cluster.work_dir)
    )
    assert result.returncode != 0
    assert "already running" in result.stderr


def test_client_mode_local_master(tmp_path: Path) -> None:
    helper = tmp_path / "libs" / "helper_mod.py"
    helper.parent.mkdir()
    helper.write_text("VALUE = 'from py-files'\n")
    app = tmp_path / "app.py"
    app.write_text("import helper_mod\nprint(helper_mod.VALUE)\n" + TINY_APP)
    result = run_cli(
        "submit",
        "--master",
        "local[2]",
        "--name",
        "tiny",
        "--py-files",
        str(helper),
        str(app),
        "a",
        "--b",
        env=clean_env(TINY_EXIT="3"),
    )
    assert result.returncode == 3, result.stderr
    assert "app tiny local[2] client ['a', '--b']" in result.stdout
    assert "from py-files" in result.stdout


def test_client_mode_app_traceback_exits_nonzero(tmp_path: Path) -> None:
    app = tmp_path / "boom.py"
    app.write_text("raise RuntimeError('boom from the app')\n")
    result = run_cli("submit", "--master", "local", str(app))
    assert result.returncode == 1
    assert "RuntimeError: boom from the app" in result.stderr


def test_a_sigkilled_submit_takes_its_client_mode_app_with_it(tmp_path: Path) -> None:
    # The app is the driver, as spark-submit's JVM is; it ran on as an orphan, holding
    # the cluster's cores with nobody reading its output.
    pid_file = tmp_path / "app.pid"
    app = tmp_path / "sleepy.py"
    app.write_text(
        f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n"
    )
    submit = subprocess.Popen(
        [*CLI, "submit", "--master", "local[1]", str(app)],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app_pid = 0
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 30, "the app")
        app_pid = int(pid_file.read_text())
        submit.kill()
        submit.wait(10)
        wait_until(lambda: not alive(app_pid), 10, "the app to die with sparkctl submit")
    finally:
        submit.kill()
        submit.wait(10)
        if app_pid and alive(app_pid):
            os.kill(app_pid, signal.SIGKILL)


def test_conf_precedence_reaches_the_app(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(
        "spark.executor.memory 2g\nspark.task.maxFailures 7\nspark.app.name fromfile\n"
    )
    app = tmp_path / "show.py"
    app.write_text("import os; print(os.environ['SPARKCTL_SUBMIT_CONF'])\n")
    result = run_cli(
        "submit",
        "--master",
        "local[1]",
        "--conf",
        "spark.executor.memory=3g",
        "--executor-memory",
        "512m",
        str(app),
        env=clean_env(SPARK_CONF_DIR=str(conf_dir)),
    )
    assert result.returncode == 0, result.stderr
    conf = json.loads(result.stdout)
    assert conf["spark.executor.memory"] == "512m"  # flag > --conf > file
    assert conf["spark.task.maxFailures"] == "7"
    assert conf["spark.app.name"] == "fromfile"


def _driver_state(cluster: CliCluster, driver_id: str) -> str:
    result = run_cli("status", driver_id, "--master", cluster.master.url, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["state"])


def test_cluster_mode_submit_and_status(cli_cluster: CliCluster, tmp_path: Path) -> None:
    app = tmp_path / "tiny.py"
    app.write_text(TINY_APP)
    result = run_cli(
        "submit",
        "--master",
        cli_cluster.master.url,
        "--deploy-mode",
        "cluster",
        "--driver-memory",
        "256m",
        str(app),
        "x",
    )
    assert result.returncode == 0, result.stderr
    driver_id = result.stdout.strip()
    assert driver_id.startswith("driver-")
    wait_until(
        lambda: _driver_state(cli_cluster, driver_id) == "FINISHED", 30, "the driver to finish"
    )
    stdout = cli_cluster.work_dir / driver_id / "stdout"
    assert f"app tiny {cli_cluster.master.url} cluster ['x']" in stdout.read_text()
    # The worker UI serves that log.
    url = f"{cli_cluster.worker.webui_url}/log/?driverId={driver_id}&logType=stdout"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert b"app tiny" in response.read()


def test_kill_driver(cli_cluster: CliCluster, tmp_path: Path) -> None:
    app = tmp_path / "sleepy.py"
    app.write_text("import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n")
    result = run_cli(
        "submit",
        "--master",
        cli_cluster.master.url,
        "--deploy-mode",
        "cluster",
        "--driver-memory",
        "256m",
        str(app),
    )
    assert result.returncode == 0, result.stderr
    driver_id = result.stdout.strip()
    wait_until(lambda: _driver_state(cli_cluster, driver_id) == "RUNNING", 30, "the driver to run")
    killed = run_cli("kill", driver_id, "--master", cli_cluster.master.url)
    assert killed.returncode == 0, killed.stderr
    wait_until(lambda: _driver_state(cli_cluster, driver_id) == "KILLED", 30, "the driver to die")
    again = run_cli("kill", driver_id, "--master", cli_cluster.master.url)
    assert again.returncode == 1 and "already ended" in again.stdout


def test_kill_unknown_ids(cli_cluster: CliCluster) -> None:
    for item in ("driver-19700101000000-9999", "app-19700101000000-9999"):
        result = run_cli("kill", item, "--master", cli_cluster.master.url)
        assert result.returncode == 1
        assert "nothing to kill" in result.stderr


def test_daemon_lifecycle_and_stop(tmp_path: Path) -> None:
    with reaped(tmp_path) as pids:
        started = run_cli(
            "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(tmp_path)
        )
        assert started.returncode == 0, started.stderr
        master = parse_started(started.stdout)
        pids.append(master.pid)
        assert _json(master.webui_url + "/json")["status"] == "ALIVE"
        stopped = run_cli("stop-master", "--work-dir", str(tmp_path))
        assert stopped.returncode == 0 and f"pid {master.pid}" in stopped.stdout
        assert not alive(master.pid)
        assert not (tmp_path / "sparkctl-master.pid").exists()
        again = run_cli("stop-master", "--work-dir", str(tmp_path))
        assert again.returncode == 0 and "no master is running" in again.stdout


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "sparkctl-master.pid").write_text(f"{os.getpid()}\n")  # alive, but not a master
    result = run_cli("stop-master", "--work-dir", str(tmp_path))
    assert "no master is running" in result.stdout
    assert not (tmp_path / "sparkctl-master.pid").exists()


def test_foreground_master_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            *CLI,
            "start-master",
            "--foreground",
            "--port",
            str(port),
            "--webui-port",
            "0",
            "--work-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    try:

        def up() -> bool:
            return run_cli("status", "--master", f"spark://127.0.0.1:{port}").returncode == 0

        wait_until(up, 30, "the foreground master to answer")
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        assert process.returncode == 0, output
        assert "master stopped" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_worker_daemon_unreachable_master(tmp_path: Path) -> None:
    with reaped(tmp_path):
        result = run_cli(
            "start-worker", f"spark://127.0.0.1:{free_port()}", "--work-dir", str(tmp_path)
        )
    assert result.returncode == 2
    assert "cannot reach the master" in result.stderr
    assert not list(tmp_path.glob("*.pid"))


@pytest.mark.parametrize("role", ["master", "worker"])
def test_start_time_is_reported(cli_cluster: CliCluster, role: str) -> None:
    log = (cli_cluster.work_dir / f"sparkctl-{role}.log").read_text()
    assert ("ready in" if role == "master" else "registered in") in log


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_submit_example_client_mode(cli_cluster: CliCluster) -> None:
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, str(EXAMPLES / "wordcount.py"), timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distinct words: 34, all words: 85" in result.stdout
    assert "the: 11" in result.stdout


def test_submit_example_cluster_mode(cli_cluster: CliCluster) -> None:
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, "--deploy-mode", "cluster",
        # The worker has 2 cores and 1 GiB: room for the driver and one executor.
        "--driver-memory", "256m", "--executor-memory", "256m", str(EXAMPLES / "wordcount.py"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    driver_id = result.stdout.strip()
    wait_until(
        lambda: _driver_state(cli_cluster, driver_id) == "FINISHED", 90, "wordcount to finish"
    )
    stdout = (cli_cluster.work_dir / driver_id / "stdout").read_text()
    assert "distinct words: 34, all words: 85" in stdout


def test_unexpected_child_failure_is_reported_at_once(tmp_path: Path) -> None:
    hook = tmp_path / "hook"
    hook.mkdir()
    # Make the daemon's child crash inside the service start with an unexpected error.
    (hook / "sitecustomize.py").write_text(
        "import cluster.launch\n"
        "def boom(*args, **kwargs):\n"
        "    raise NameError('simulated bug')\n"
        "cluster.launch.start_master = boom\n"
    )
    work = tmp_path / "work"
    with reaped(work):
        result = run_cli(
            "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(work),
            env=clean_env(PYTHONPATH=str(hook)), timeout=30,
        )  # fmt: skip
    assert result.returncode == 1
    assert "the master failed to start: NameError('simulated bug')" in result.stderr
    assert "Traceback" not in result.stderr  # the traceback is in the log, not on the terminal
    assert "simulated bug" in (work / "sparkctl-master.log").read_text()
    assert not (work / "sparkctl-master.pid").exists()


def test_status_with_a_list_of_masters_uses_the_live_one(cli_cluster: CliCluster) -> None:
    dead = f"127.0.0.1:{free_port()}"
    live = cli_cluster.master.url.removeprefix("spark://")
    result = run_cli("status", "--master", f"spark://{dead},{live}", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["url"] == cli_cluster.master.url


def test_kill_application(cli_cluster: CliCluster) -> None:
    import sys

    from rpcenv import RpcAddress, RpcEnv
    from sparkctl.v1 import deploy_pb2 as pb

    # A bare application whose executor just sleeps: no driver library needed.
    env = RpcEnv.create("kill-app-test", "127.0.0.1", 0, {}, client_mode=True)
    try:
        master = env.endpoint_ref(RpcAddress.from_uri(cli_cluster.master.url), "Master", timeout=10)
        description = pb.ApplicationDescription(
            name="to be killed", max_cores=1, cores_per_executor=1, memory_per_executor_mb=64,
            command=pb.Command(argv=[sys.executable, "-c", "import time; time.sleep(120)"]),
        )  # fmt: skip
        reply = master.ask_sync(pb.RegisterApplicationRequest(description=description), 10)
        assert isinstance(reply, pb.RegisterApplicationResponse)
        app_id = reply.app_id
        killed = run_cli("kill", app_id, "--master", cli_cluster.master.url)
        assert killed.returncode == 0, killed.stderr
        shown = run_cli("status", app_id, "--master", cli_cluster.master.url, "--json")
        assert json.loads(shown.stdout)["state"] == "KILLED"
    finally:
        env.shutdown()


def test_worker_settings_from_env_file_and_flags_reach_the_daemon(tmp_path: Path) -> None:
    props = tmp_path / "worker.conf"
    props.write_text("spark.worker.memory 640m\nspark.worker.cores 5\n")
    env = clean_env(
        SPARK_WORKER_CORES="3", SPARK_WORKER_MEMORY="2g", SPARK_WORKER_DIR=str(tmp_path / "w")
    )
    with reaped(tmp_path / "w") as pids:
        started = run_cli("start-master", "--port", "0", "--webui-port", "0", env=env)
        assert started.returncode == 0, started.stderr
        master = parse_started(started.stdout)
        pids.append(master.pid)
        # The file beats the environment for memory; the flag beats the file for cores.
        started = run_cli(
            "start-worker", master.url, "--cores", "1", "--properties-file", str(props),
            "--webui-port", "0", env=env,
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        pids.append(parse_started(started.stdout).pid)
        doc = json.loads(run_cli("status", "--master", master.url, "--json", env=env).stdout)
        (worker,) = doc["workers"]
        assert (worker["cores"], worker["memory"]) == (1, 640)
        # SPARK_WORKER_DIR is the default work dir of both daemons and of stop-*.
        assert (tmp_path / "w" / "sparkctl-worker.pid").is_file()
        assert run_cli("stop-worker", env=env).returncode == 0
        assert run_cli("stop-master", env=env).returncode == 0


def test_cluster_mode_py_files(cli_cluster: CliCluster, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "helper_for_driver.py").write_text("VALUE = 'helper imported on the worker'\n")
    app = tmp_path / "uses_helper.py"
    app.write_text("import helper_for_driver\nprint(helper_for_driver.VALUE)\n")
    result = run_cli(
        "submit", "--master", cli_cluster.master.url, "--deploy-mode", "cluster",
        "--driver-memory", "128m", "--py-files", str(lib / "helper_for_driver.py"), str(app),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    driver_id = result.stdout.strip()
    wait_until(
        lambda: _driver_state(cli_cluster, driver_id) == "FINISHED", 30, "the driver to finish"
    )
    stdout = (cli_cluster.work_dir / driver_id / "stdout").read_text()
    assert "helper imported on the worker" in stdout


def test_foreground_worker_stops_on_sigint(tmp_path: Path) -> None:
    with reaped(tmp_path) as pids:
        started = run_cli(
            "start-master", "--port", "0", "--webui-port", "0", "--work-dir", str(tmp_path)
        )
        assert started.returncode == 0, started.stderr
        master = parse_started(started.stdout)
        pids.append(master.pid)
        process = subprocess.Popen(
            [*CLI, "start-worker", master.url, "--foreground", "--cores", "1", "--memory", "256m",
             "--webui-port", "0", "--work-dir", str(tmp_path / "worker")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )  # fmt: skip
        try:

            def registered() -> bool:
                result = run_cli("status", "--master", master.url, "--json")
                return json.loads(result.stdout)["aliveworkers"] == 1

            wait_until(registered, 30, "the foreground worker to register")
            process.send_signal(signal.SIGINT)
            output, _ = process.communicate(timeout=30)
            assert process.returncode == 0, output
            assert "received SIGINT" in output and "worker stopped" in output
            assert "Traceback" not in output
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
