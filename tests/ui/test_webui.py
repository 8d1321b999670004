"""The one web layer (`webui`): its layer rule, headers, routing, escaping, Prometheus text."""

from __future__ import annotations

import ast
import errno
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from webui.server import (
    Response,
    Templates,
    WebServer,
    prometheus,
    route_table,
)

_ROOT = Path(__file__).resolve().parents[2]


def test_webui_imports_no_other_layer() -> None:
    # cluster and scheduler both use webui: it must import neither, nor rpcenv or cli.
    for source in sorted((_ROOT / "webui").rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"cluster", "scheduler", "rpcenv", "cli", "sparkctl"}, (
                    f"{source.relative_to(_ROOT)} imports {name}"
                )


def test_every_ui_serves_through_webui_only() -> None:
    # The duplicated servers are gone: no UI module builds its own HTTP server.
    for folder in ("cluster/ui", "scheduler/ui"):
        for source in (_ROOT / folder).glob("*.py"):
            text = source.read_text()
            assert "http.server" not in text and "generate_latest" not in text, source


def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_routes_headers_static_404_and_500(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text("// js")

    def boom(_query: object) -> Response:
        raise KeyError("secret detail")

    route = route_table({"/": lambda q: Response(f"hi {q.get('x', '')}".encode()), "/boom": boom})
    server = WebServer(route, "127.0.0.1", 0, what="test UI", static=tmp_path)
    server.start()
    try:
        status, headers, body = _get(server.url + "/?x=1")
        assert (status, body) == (200, b"hi 1")
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
        assert headers["Content-Security-Policy"].startswith("default-src 'self'")
        status, headers, body = _get(server.url + "/static/app.js")
        assert (status, body) == (200, b"// js")
        assert headers["Content-Type"].startswith("text/javascript")
        assert _get(server.url + "/static/../test_webui.py")[0] == 404
        status, _, body = _get(server.url + "/nope")
        assert (status, body) == (404, b"no such page: /nope\n")
        status, _, body = _get(server.url + "/boom/")
        assert status == 500 and body == b"internal error: KeyError\n"  # no traceback, no detail
    finally:
        server.stop()


def test_a_taken_port_moves_on_or_fails_with_eaddrinuse() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        moved = WebServer(route_table({}), "127.0.0.1", port, max_retries=8)
        try:
            assert port < moved.port <= port + 8
        finally:
            moved.stop()
        with pytest.raises(OSError) as info:
            WebServer(route_table({}), "127.0.0.1", port, max_retries=0, what="test UI")
        assert info.value.errno == errno.EADDRINUSE
        assert f"test UI on 127.0.0.1: ports {port}..{port}" in str(info.value)


def test_ipv6_url_has_brackets() -> None:
    try:
        server = WebServer(route_table({}), "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.url == f"http://[::1]:{server.port}"
    finally:
        server.stop()


def test_templates_autoescape_whatever_the_name(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_text("{{ name }} {{ ms|duration }} {{ url|safe_url }}")
    page = Templates(tmp_path).page("page.txt", name="<script>", ms=1500, url="javascript:x")
    assert page.body == b"&lt;script&gt; 1.5 s #"


def test_prometheus_text_parses_with_the_client() -> None:
    reply = prometheus(
        [
            ("t_jobs", "Jobs.", "gauge", [({"status": 'a"b'}, 2), ({"status": "c"}, 0)]),
            ("t_tasks_total", "Tasks.", "counter", [({}, 3)]),
        ]
    )
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(reply.body.decode())
        for s in family.samples
    }
    assert samples[("t_jobs", (("status", 'a"b'),))] == 2
    assert samples[("t_tasks_total", ())] == 3
    with pytest.raises(ValueError, match="t_x"):
        prometheus([("t_x", "X.", "histogram", [])])
