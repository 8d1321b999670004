"""The web UIs in a real headless Chromium: pages render, list workers, log links open."""

from __future__ import annotations

import urllib.parse

from _chromium import dump_dom, links_of
from _ui_fakes import EVIL

from cluster.ui import MasterWebUI, WorkerWebUI


def test_master_page_renders_and_lists_workers(master_ui: MasterWebUI) -> None:
    dom = dump_dom(master_ui.url + "/")
    assert "sparkctl Master at spark://127.0.0.1:7077" in dom
    assert dom.count('class="worker"') == 2
    assert "worker-20261122-0001" in dom and "worker-20261122-0002" in dom
    assert EVIL not in dom  # escaped text, not a live script element


def test_executor_log_link_opens_the_log(master_ui: MasterWebUI, worker_ui: WorkerWebUI) -> None:
    master_dom = dump_dom(master_ui.url + "/")
    app_links = [href for href, _, text in links_of(master_dom) if text == "app-20261122-0000"]
    assert app_links, "the running application is linked"
    app_dom = dump_dom(urllib.parse.urljoin(master_ui.url + "/", app_links[0]))
    log_links = [
        href for href, cls, text in links_of(app_dom) if cls == "log-link" and text == "stdout"
    ]
    assert log_links and log_links[0].startswith(worker_ui.url)
    log_dom = dump_dom(log_links[0])
    assert "stdout log of executor 0 of app-20261122-0000" in log_dom
    assert "hello from executor 0" in log_dom


def test_worker_page_log_links(worker_ui: WorkerWebUI) -> None:
    dom = dump_dom(worker_ui.url + "/")
    assert "Running Executors (1)" in dom
    stderr = [href for href, cls, text in links_of(dom) if cls == "log-link" and text == "stderr"]
    assert stderr
    log_dom = dump_dom(urllib.parse.urljoin(worker_ui.url + "/", stderr[0]))
    assert "some warnings" in log_dom
