"""Real daemons' web UIs in headless Chromium: the worker is listed, an executor's log opens."""

from __future__ import annotations

import json
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from _chromium import dump_dom, links_of, require_chromium
from _cli_harness import CliCluster, daemon_cluster

from cluster.testing import wait_until
from rpcenv import RpcAddress, RpcEndpointRef, RpcEnv
from sparkctl.v1 import deploy_pb2 as pb
from sparkctl.v1 import master_service_pb2 as api

EXECUTOR_CODE = (
    "print('executor {{EXECUTOR_ID}} of {{APP_ID}} says hi', flush=True)\n"
    "import time\n"
    "time.sleep(120)"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliCluster]:
    require_chromium()
    with daemon_cluster(tmp_path_factory.mktemp("live")) as cluster:
        yield cluster


def _master(env: RpcEnv, cluster: CliCluster) -> RpcEndpointRef:
    return env.endpoint_ref(RpcAddress.from_uri(cluster.master.url), "Master", timeout=10)


def test_master_ui_lists_the_real_worker(live: CliCluster) -> None:
    dom = dump_dom(live.master.webui_url + "/")
    assert f"sparkctl Master at {live.master.url}" in dom
    assert dom.count('class="worker"') == 1
    worker_links = [href for href, _, _ in links_of(dom) if href.startswith(live.worker.webui_url)]
    assert worker_links
    worker_dom = dump_dom(worker_links[0])
    assert "sparkctl Worker at" in worker_dom


def test_real_executor_log_opens_from_the_master_ui(live: CliCluster) -> None:
    # A bare application whose "executor" only prints: no driver library needed.
    env = RpcEnv.create("ui-live-test", "127.0.0.1", 0, {}, client_mode=True)
    try:
        master = _master(env, live)
        description = pb.ApplicationDescription(
            name="ui <live> test",
            max_cores=1,
            cores_per_executor=1,
            memory_per_executor_mb=128,
            command=pb.Command(argv=[sys.executable, "-c", EXECUTOR_CODE]),
        )
        reply = master.ask_sync(pb.RegisterApplicationRequest(description=description), 10)
        assert isinstance(reply, pb.RegisterApplicationResponse)
        app_id = reply.app_id

        def executor_running() -> bool:
            state = master.ask_sync(api.GetClusterStateRequest(), 10)
            assert isinstance(state, api.GetClusterStateResponse)
            return any(
                a.id == app_id and any(e.state == pb.EXECUTOR_STATE_RUNNING for e in a.executors)
                for a in state.active_apps
            )

        wait_until(executor_running, 30, "the executor to run")
        log_url = f"{live.worker.webui_url}/log/?appId={app_id}&executorId=0&logType=stdout"

        def log_written() -> bool:
            try:
                with urllib.request.urlopen(log_url, timeout=5) as response:
                    return b"says hi" in response.read()
            except OSError:
                return False

        wait_until(log_written, 30, "the executor's first output")

        master_dom = dump_dom(live.master.webui_url + "/")
        assert "ui &lt;live&gt; test" in master_dom
        app_links = [href for href, _, text in links_of(master_dom) if text == app_id]
        app_dom = dump_dom(urllib.parse.urljoin(live.master.webui_url + "/", app_links[0]))
        stdout_links = [
            h for h, cls, text in links_of(app_dom) if cls == "log-link" and text == "stdout"
        ]
        assert stdout_links, app_dom
        log_dom = dump_dom(stdout_links[0])
        assert f"executor 0 of {app_id} says hi" in log_dom
    finally:
        # The driver goes away: the master ends the app, the worker kills the executor.
        env.shutdown()

    def executor_gone() -> bool:
        with urllib.request.urlopen(live.worker.webui_url + "/json", timeout=5) as response:
            return json.loads(response.read())["executors"] == []

    wait_until(executor_gone, 30, "the executor to be stopped")
