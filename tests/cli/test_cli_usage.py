"""Bad flags exit with status 2 and a message naming the flag, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _cli_harness import run_cli
from click.testing import CliRunner

from cli._settings import parse_master_list
from cli._submit import validate_master
from cli.main import cli
from cluster.testing import free_port


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app.py"
    path.write_text("print('hi')\n")
    return path


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, args, env=env)
    assert not isinstance(result.exception, AssertionError)
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["start-worker", "spark://127.0.0.1:7077", "--cores", "-1"], "'--cores'"),
        (["start-worker", "spark://127.0.0.1:7077", "--cores", "0"], "'--cores'"),
        (["start-worker", "spark://127.0.0.1:7077", "--memory", "lots"], "'--memory'"),
        (["start-worker", "spark://127.0.0.1:7077", "--memory", "-4g"], "'--memory'"),
        (["start-worker", "mesos://127.0.0.1:5050"], "MASTER"),
        (["start-worker", "spark://127.0.0.1"], "MASTER"),
        (["start-master", "--port", "99999"], "'--port'"),
        (["start-master", "--properties-file", "/nonexistent/x.conf"], "'--properties-file'"),
        (["start-master", "--conf", "novalue"], "'--conf'"),
        (["status", "--master", "yarn"], "'--master'"),
        (["kill", "driver-1", "--master", "http://x:1"], "'--master'"),
        # The UI took the port first, then the master failed with a raw gRPC RuntimeError.
        (["start-master", "--port", "18090", "--webui-port", "18090"], "'--webui-port'"),
        (
            ["start-worker", "spark://127.0.0.1:7077", "--port", "18091", "--webui-port", "18091"],
            "'--webui-port'",
        ),
    ],
)
def test_bad_flags(args: list[str], names: str) -> None:
    code, output = _run(args)
    assert code == 2, output
    assert names in output
    assert "Traceback" not in output


def test_a_bad_memory_flag_says_the_expected_form_once() -> None:
    for value in ("lots", "-4g", "4x"):
        code, output = _run(["start-worker", "spark://127.0.0.1:7077", "--memory", value])
        assert code == 2 and output.count("512m or 4g") == 1, output


def test_submit_bad_flags(app: Path, tmp_path: Path) -> None:
    cases = [
        (["submit", "--master", "yarn", str(app)], "'--master'"),
        (["submit", "--master", "local[0]", str(app)], "'--master'"),
        (["submit", "--master", "local[x]", str(app)], "'--master'"),
        (["submit", "--executor-memory", "1q", str(app)], "'--executor-memory'"),
        (["submit", "--executor-cores", "-2", str(app)], "'--executor-cores'"),
        (["submit", "--total-executor-cores", "0", str(app)], "'--total-executor-cores'"),
        (["submit", "--py-files", str(tmp_path / "missing.py"), str(app)], "'--py-files'"),
        (["submit", str(tmp_path / "missing_app.py")], "'APP'"),
        (
            ["submit", "--deploy-mode", "cluster", "--master", "local[2]", str(app)],
            "'--deploy-mode'",
        ),
        (["submit", "--deploy-mode", "sideways", str(app)], "'--deploy-mode'"),
    ]
    for args, names in cases:
        code, output = _run(args)
        assert code == 2, (args, output)
        assert names in output, (args, output)


def test_env_var_errors_name_the_variable() -> None:
    code, output = _run(
        ["start-worker", "spark://127.0.0.1:7077"], env={"SPARK_WORKER_MEMORY": "huge"}
    )
    assert code == 2
    assert "SPARK_WORKER_MEMORY" in output


def test_unreachable_master_exit_2(app: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    for args in (
        ["start-worker", f"spark://127.0.0.1:{port}", "--work-dir", str(tmp_path / "work")],
        ["status", "--master", f"spark://127.0.0.1:{port}"],
        ["kill", "driver-x", "--master", f"spark://127.0.0.1:{port}"],
        ["submit", "--master", f"spark://127.0.0.1:{port}", str(app)],
        ["submit", "--master", f"spark://127.0.0.1:{port}", "--deploy-mode", "cluster", str(app)],
    ):
        code, output = _run(args)
        assert code == 2, (args, output)
        assert "cannot reach" in output, output
        assert f"127.0.0.1:{port}" in output


def test_secret_never_from_flags(app: Path) -> None:
    code, output = _run(["submit", "--conf", "spark.authenticate.secret=s3cret", str(app)])
    assert code == 2
    assert "SPARKCTL_SECRET" in output


def test_stop_with_nothing_running(tmp_path: Path) -> None:
    for role in ("master", "worker"):
        code, output = _run([f"stop-{role}", "--work-dir", str(tmp_path)])
        assert code == 0
        assert f"no {role} is running" in output


def test_console_script_exit_code_without_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "start-worker", "spark://127.0.0.1:7077", "--cores", "-3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'--cores'" in result.stderr
    assert "Traceback" not in result.stderr


def test_master_lists() -> None:
    addresses = parse_master_list("spark://a:1,b:2")
    assert [(a.host, a.port) for a in addresses] == [("a", 1), ("b", 2)]
    for bad in ("local", "spark://", "spark://a", "spark://a:1,", "http://a:1"):
        with pytest.raises(ValueError):
            parse_master_list(bad)


@pytest.mark.parametrize(
    "good",
    ["local", "local[4]", "local[*]", "local[2,3]", "local-cluster[2,1,512]", "spark://h:7077"],
)
def test_valid_masters(good: str) -> None:
    assert validate_master(good) == good


@pytest.mark.parametrize("bad", ["local-cluster[2,1]", "local-cluster[0,1,512]", "local-cluster"])
def test_bad_local_cluster_masters_name_the_form(bad: str) -> None:
    with pytest.raises(ValueError, match="local-cluster"):
        validate_master(bad)


def test_non_loopback_host_needs_a_secret(tmp_path: Path) -> None:
    env = {"SPARKCTL_SECRET": "", "SPARKCTL_SECRET_FILE": ""}
    for args in (
        ["start-master", "--host", "0.0.0.0", "--work-dir", str(tmp_path)],
        [
            "start-worker",
            "spark://127.0.0.1:7077",
            "--host",
            "0.0.0.0",
            "--work-dir",
            str(tmp_path),
        ],
    ):
        code, output = _run(args, env=env)
        assert code == 2, output
        assert "'--host'" in output and "SPARKCTL_SECRET" in output and "--allow-insecure" in output
    assert not list(tmp_path.iterdir())


#: What a duration that must be positive expects (rpcenv.ConfigValueError).
_POSITIVE_DURATION = (
    "expected a duration such as 30s, 100ms or 2min (> 0s; a bare number is in seconds)"
)


@pytest.mark.parametrize(
    ("args", "names", "says"),
    [
        (
            ["start-master", "--conf", "spark.worker.timeout=abc"],
            "'--conf'",
            f"spark.worker.timeout: {_POSITIVE_DURATION}, not 'abc'",
        ),
        (
            ["start-master", "--conf", "spark.deploy.recoveryMode=BOGUS"],
            "'--conf'",
            "spark.deploy.recoveryMode: expected one of NONE, FILESYSTEM, ZOOKEEPER, not 'BOGUS'",
        ),
        (
            ["start-worker", "spark://127.0.0.1:7077", "--conf", "spark.deploy.spreadOut=maybe"],
            "'--conf'",
            "spark.deploy.spreadOut: expected true or false, not 'maybe'",
        ),
        (
            ["status", "--master", "spark://127.0.0.1:7077", "--conf", "spark.rpc.askTimeout=0s"],
            "'--conf'",
            f"spark.rpc.askTimeout: {_POSITIVE_DURATION}, not '0s'",
        ),
        (
            [
                "start-master",
                "--conf",
                "spark.sparkctl.master.unregisteredPeerTimeout=0",
            ],
            "'--conf'",
            f"spark.sparkctl.master.unregisteredPeerTimeout: {_POSITIVE_DURATION}, not '0'",
        ),
        (
            ["kill", "app-1", "--conf", "spark.network.timeout=soon"],
            "'--conf'",
            f"spark.network.timeout: {_POSITIVE_DURATION}, not 'soon'",
        ),
        (
            ["submit", "--master", "local[2]", "--conf", "spark.task.maxFailures=0", "APP"],
            "'--conf'",
            "spark.task.maxFailures: expected an integer (1..2147483647), not '0'",
        ),
        (
            ["submit", "--master", "spark://h:7077", "--conf", "spark.executor.memory=lots", "APP"],
            "'--conf'",
            "spark.executor.memory: expected a size such as 512m or 4g (1m..2147483647m; a bare "
            "number is in MiB), not 'lots'",
        ),
        (
            ["submit", "--master", "spark://h:7077", "--conf", "spark.executor.cores=two", "APP"],
            "'--conf'",
            "spark.executor.cores: expected an integer (1..2147483647), not 'two'",
        ),
        (
            [
                "submit",
                "--master",
                "spark://h:7077",
                "--conf",
                "spark.dynamicAllocation.enabled=true",
                "--conf",
                "spark.dynamicAllocation.maxExecutors=0",
                "APP",
            ],
            "'--conf'",
            "spark.dynamicAllocation.maxExecutors must be > 0",
        ),
    ],
)
def test_bad_conf_values_are_usage_errors_naming_the_key(
    args: list[str], names: str, says: str, app: Path, tmp_path: Path
) -> None:
    # Before, a daemon failed with status 1 ("cannot start the master: ..."), status and
    # kill said "the master failed to answer", and a client-mode app died with a traceback.
    args = [str(app) if a == "APP" else a for a in args]
    if args[0].startswith("start-"):
        args += ["--work-dir", str(tmp_path / "work")]
    code, output = _run(args)
    assert code == 2, output
    assert names in output and says in output, output
    assert "Traceback" not in output
    assert not (tmp_path / "work").exists()


def test_a_bad_value_names_the_file_or_variable_it_came_from(app: Path, tmp_path: Path) -> None:
    properties = tmp_path / "bad.conf"
    properties.write_text("spark.executor.memory 1x\n")
    code, output = _run(["submit", "--properties-file", str(properties), str(app)])
    assert code == 2 and "'--properties-file'" in output and "spark.executor.memory" in output
    code, output = _run(
        ["start-master", "--work-dir", str(tmp_path / "w")],
        env={"SPARK_MASTER_OPTS": "-Dspark.worker.timeout=zz"},
    )
    assert code == 2 and "SPARK_MASTER_OPTS" in output and "spark.worker.timeout" in output


def test_an_unreadable_secret_file_is_a_usage_error_naming_its_setting(
    app: Path, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-secret")
    empty = tmp_path / "empty-secret"
    empty.write_text("\n")
    env = {"SPARKCTL_SECRET": "", "SPARKCTL_SECRET_FILE": missing}
    for args in (
        ["start-master", "--work-dir", str(tmp_path / "w")],
        ["start-worker", "spark://127.0.0.1:7077", "--work-dir", str(tmp_path / "w")],
        ["status", "--master", "spark://127.0.0.1:7077"],
        ["kill", "driver-1", "--master", "spark://127.0.0.1:7077"],
        ["submit", "--master", "spark://127.0.0.1:7077", str(app)],
    ):
        code, output = _run(args, env=env)
        assert code == 2, (args, output)
        assert "SPARKCTL_SECRET_FILE" in output and "cannot read the secret file" in output
    code, output = _run(
        ["status", "--conf", f"spark.authenticate.secret.file={empty}"],
        env={"SPARKCTL_SECRET": "", "SPARKCTL_SECRET_FILE": ""},
    )
    assert code == 2 and "spark.authenticate.secret.file" in output and "is empty" in output
    assert not (tmp_path / "w").exists()


def test_a_work_dir_that_cannot_be_one_is_a_usage_error(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    for work_dir, says in (
        (a_file, "is not a directory"),
        (a_file / "below", f"({a_file} is not a directory)"),
    ):
        for args in (
            ["start-master", "--work-dir", str(work_dir)],
            ["start-worker", "spark://127.0.0.1:7077", "--work-dir", str(work_dir)],
        ):
            code, output = _run(args)
            assert code == 2, output
            assert "'--work-dir'" in output and says in output, output
    code, output = _run(["start-master"], env={"SPARK_WORKER_DIR": str(a_file)})
    assert code == 2 and "SPARK_WORKER_DIR" in output


def test_a_remote_failure_is_told_without_its_traceback() -> None:
    from cli._master_client import error_text
    from rpcenv import RpcRemoteError

    exc = RpcRemoteError("cluster.persistence.PersistenceError", "disk full", "Traceback ...\n")
    assert error_text(exc) == "disk full"


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["start-worker", "spark://127.0.0.1:7077", "--cores", "99999999999"], "'--cores'"),
        (["start-worker", "spark://127.0.0.1:7077"], "SPARK_WORKER_CORES"),
        (["submit", "--executor-cores", "99999999999", "APP"], "'--executor-cores'"),
        (["submit", "--total-executor-cores", "99999999999", "APP"], "'--total-executor-cores'"),
        (
            [
                "submit",
                "--master",
                "spark://h:1",
                "--deploy-mode",
                "cluster",
                "--driver-cores",
                "99999999999",
                "APP",
            ],
            "'--driver-cores'",
        ),
        (["submit", "--conf", "spark.cores.max=99999999999", "APP"], "'--conf'"),
        (["submit", "--conf", "spark.executor.memory=9999999g", "APP"], "'--conf'"),
        (["status", "--conf", "spark.rpc.message.maxSize=2048"], "'--conf'"),
        (["submit", "--master", "local[99999999999]", "APP"], "'--master'"),
    ],
)
def test_counts_beyond_the_wires_int32_are_usage_errors(
    args: list[str], names: str, app: Path, tmp_path: Path
) -> None:
    # They failed to serialize: a worker waited 55 s and said it could not register, an
    # app died with "ValueError: Value out of range", local[N] waited 60 s for its executor.
    args = [str(app) if a == "APP" else a for a in args]
    code, output = _run(
        [*args, "--work-dir", str(tmp_path)] if args[0] == "start-worker" else args,
        env={"SPARK_WORKER_CORES": "99999999999"},
    )
    assert code == 2, output
    assert names in output and "Traceback" not in output


def test_a_cluster_mode_app_too_large_to_send_is_a_usage_error(tmp_path: Path) -> None:
    from cluster.launch import start_master
    from rpcenv import Conf

    big = tmp_path / "big.py"
    big.write_text("x = 1\n#" + "a" * (2 << 20) + "\n")
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    try:
        code, output = _run(
            [
                "submit",
                "--master",
                master.url,
                "--deploy-mode",
                "cluster",
                "--conf",
                "spark.rpc.message.maxSize=1",
                str(big),
            ]
        )
    finally:
        master.stop()
    assert code == 2, output
    assert "Invalid value for APP" in output and "too large to send to the master" in output
    assert "spark.rpc.message.maxSize" in output


def test_unusable_tls_settings_are_usage_errors_naming_the_key(app: Path, tmp_path: Path) -> None:
    # status waited 10 s and blamed --master, a daemon failed with status 1 ("address
    # in use" for a file that is not PEM), a client-mode app died with a traceback.
    not_pem = tmp_path / "passwd"
    not_pem.write_text("root:x:0:0:root:/root:/bin/bash\n")
    tls = ["--conf", "spark.ssl.rpc.enabled=true"]
    cases = [
        (
            ["status", *tls, "--conf", f"spark.ssl.rpc.trustStore={tmp_path / 'none'}"],
            "spark.ssl.rpc.trustStore",
            "cannot read",
        ),
        (["start-master", *tls], "spark.ssl.rpc.privateKey", "is not set"),
        (
            [
                "start-master",
                *tls,
                "--conf",
                f"spark.ssl.rpc.privateKey={not_pem}",
                "--conf",
                f"spark.ssl.rpc.certChain={not_pem}",
            ],
            "spark.ssl.rpc.privateKey",
            "is not a PEM file",
        ),
        (["submit", "--master", "local[1]", *tls, str(app)], "spark.ssl.rpc.privateKey", "not set"),
    ]
    for args, names, says in cases:
        if args[0] == "start-master":
            args = [*args, "--work-dir", str(tmp_path / "w")]
        code, output = _run(args)
        assert code == 2, (args, output)
        assert names in output and says in output, output


def test_status_escapes_control_characters_that_other_users_chose(tmp_path: Path) -> None:
    # An app named with an escape sequence drove the terminal of whoever ran status.
    from cluster.launch import start_master
    from rpcenv import Conf, RpcEnv
    from sparkctl.v1 import deploy_pb2

    evil = "\x1b[2J\x1b]0;owned\x07app\nname"
    master = start_master(Conf({}), "127.0.0.1", 0, tmp_path / "master")
    client = RpcEnv.create("evil", "127.0.0.1", 0, Conf({}), client_mode=True)
    try:
        ref = client.endpoint_ref(master.rpc_env.address, "Master", timeout=10)
        description = deploy_pb2.ApplicationDescription(
            name=evil, command=deploy_pb2.Command(argv=["true"])
        )
        reply = ref.ask_sync(deploy_pb2.RegisterApplicationRequest(description=description), 10)
        assert isinstance(reply, deploy_pb2.RegisterApplicationResponse)
        for args in (["status"], ["status", reply.app_id]):
            code, output = _run([*args, "--master", master.url])
            assert code == 0, output
            assert "\x1b" not in output and "\x07" not in output
            assert "\\x1b[2J\\x1b]0;owned\\x07app" in output
    finally:
        client.shutdown()
        master.stop()


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("192.0.2.1", "is not an address of this machine"),
        ("no.such.host.invalid", "cannot resolve"),
        ("", "must not be empty"),
    ],
)
def test_a_host_this_machine_cannot_listen_on_is_a_usage_error(
    host: str, says: str, tmp_path: Path
) -> None:
    # With a secret (so that the loopback rule lets it through), the web UI failed first
    # and the error blamed --webui-port, with status 1.
    for args in (["start-master"], ["start-worker", "spark://127.0.0.1:7077"]):
        code, output = _run(
            [*args, "--host", host, "--work-dir", str(tmp_path)], env={"SPARKCTL_SECRET": "s"}
        )
        assert code == 2, output
        assert "'--host'" in output and says in output, output


def test_an_unknown_key_is_warned_about_once_under_submit(tmp_path: Path) -> None:
    # The CLI warned, then the app's SparkContext warned again about the same key;
    # a key only the app sets in its SparkConf is still warned about (by the context).
    app = tmp_path / "app.py"
    app.write_text(
        "from scheduler import SparkConf, SparkContext\n"
        "sc = SparkContext(conf=SparkConf().set('spark.zzz.fromApp', '1'))\n"
        "print(sc.parallelize([1, 2]).count())\n"
        "sc.stop()\n"
    )
    result = run_cli(
        "submit", "--master", "local[1]", "--conf", "spark.zzz.fromFlag=1", str(app)
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "2"
    warning = "ignoring unknown configuration key"
    assert result.stderr.count(f"{warning} spark.zzz.fromFlag") == 1, result.stderr[-3000:]
    assert result.stderr.count(f"{warning} spark.zzz.fromApp") == 1, result.stderr[-3000:]
