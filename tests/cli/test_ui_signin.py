"""Daemons started with a secret ask for a UI sign-in; `sparkctl ui-token` prints it.

A browser user gets the 401 prompt; `sparkctl ui-token` (admin) and
`sparkctl ui-token --app APP_ID` print the user and password that open the
master and worker UIs, the latter for that application only.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _cli_harness import CliCluster, clean_env, daemon_cluster, run_cli

from rpcenv import RpcAddress, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb

SECRET = "ui-signin-secret-5d1f"


def get(url: str, header: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url)
    if header is not None:
        name, _, value = header.partition(": ")
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def token(*args: str, env: dict[str, str]) -> str:
    result = run_cli("ui-token", "--header", *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    env = clean_env(SPARKCTL_SECRET=SECRET)
    with daemon_cluster(tmp_path_factory.mktemp("signin"), env=env) as cluster:
        yield cluster


def test_the_daemons_uis_need_the_ui_token(signed: CliCluster) -> None:
    env = clean_env(SPARKCTL_SECRET=SECRET)
    admin = token(env=env)
    assert admin.startswith("Authorization: Bearer admin:") and SECRET not in admin
    for url in (signed.master.webui_url + "/json", signed.worker.webui_url + "/json"):
        status, body, headers = get(url)
        assert status == 401 and "sparkctl ui-token" in body, (url, body)
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
        status, body, _ = get(url, admin)
        assert status == 200 and json.loads(body), (url, body)
    doc = json.loads(get(signed.master.webui_url + "/json", admin)[1])
    assert len(doc["workers"]) == 1
    wrong = token(env=clean_env(SPARKCTL_SECRET="another-secret"))
    assert get(signed.master.webui_url + "/", wrong)[0] == 401


def test_an_application_token_shows_only_that_application(signed: CliCluster) -> None:
    env = RpcEnv.create(
        "ui-signin", "127.0.0.1", 0, {"spark.authenticate.secret": SECRET}, client_mode=True
    )
    try:
        master = env.endpoint_ref(RpcAddress.from_uri(signed.master.url), "Master", timeout=10)
        description = pb.ApplicationDescription(name="signed", command=pb.Command(argv=["true"]))
        reply = master.ask_sync(pb.RegisterApplicationRequest(description=description), 10)
        assert isinstance(reply, pb.RegisterApplicationResponse)
        app = token("--app", reply.app_id, env=clean_env(SPARKCTL_SECRET=SECRET))
        status, body, _ = get(signed.master.webui_url + "/json", app)
        doc = json.loads(body)
        assert status == 200 and [a["id"] for a in doc["activeapps"]] == [reply.app_id]
        assert doc["workers"] == []
        assert get(signed.master.webui_url + "/metrics", app)[0] == 403
    finally:
        env.shutdown()


def test_ui_token_says_what_it_needs(tmp_path: Path) -> None:
    result = run_cli("ui-token", env=clean_env())
    assert result.returncode == 1 and "SPARKCTL_SECRET" in result.stderr, result.stderr
    result = run_cli("ui-token", "--app", "../etc", env=clean_env(SPARKCTL_SECRET=SECRET))
    assert result.returncode == 2 and "'--app'" in result.stderr, result.stderr
    result = run_cli("ui-token", env=clean_env(SPARKCTL_SECRET=SECRET))
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and lines[0].split() == ["user:", "admin"], result.stdout
    # Sign-in on without a secret: the daemon refuses to start, naming the key.
    result = run_cli(
        "start-master",
        "--port",
        "0",
        "--webui-port",
        "0",
        "--work-dir",
        str(tmp_path),
        "--conf",
        "spark.sparkctl.ui.authenticate=true",
        env=clean_env(),
    )
    assert result.returncode != 0 and "spark.sparkctl.ui.authenticate" in result.stderr, (
        result.stdout + result.stderr
    )
