"""The driver side's one web layer: HTTP server, templates, Prometheus text.

The application UI (port 4040) and the history server (18080) both serve
through `WebServer`: a threaded stdlib HTTP server that binds IPv4 or IPv6
hosts, moves to the next port when one is taken (Spark's
spark.port.maxRetries), answers every request with security headers, and
turns a failing page into a one-line 500 (never a traceback). Pages are
rendered by `render` from jinja2 templates with autoescaping always on;
`prometheus` writes the text exposition format. The master and worker UIs
have the same layer in `cluster/ui/_http.py`: `scheduler` may not import
`cluster` (nor the other way round), so the two stay apart by the layer rule.
Nothing here reads application state.
"""

from __future__ import annotations

import dataclasses
import datetime
import errno
import functools
import http.server
import logging
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "Metric",
    "Query",
    "Response",
    "Route",
    "WebServer",
    "format_bytes",
    "format_duration",
    "format_time",
    "prometheus",
    "render",
    "safe_url",
]

log = logging.getLogger(__name__)

Query = Mapping[str, str]
_TEMPLATES = Path(__file__).parent / "templates"
_STATIC = Path(__file__).parent / "static"

#: Scripts only from the page's own origin (the live refresh), no framing, no sniffing.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    ),
)
#: Seconds a silent connection keeps its thread.
IDLE_TIMEOUT_S = 30.0


@dataclasses.dataclass
class Response:
    """What a route answers."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, status: int, message: str) -> Response:
        """A plain-text answer (errors)."""
        return cls(message.encode() + b"\n", "text/plain; charset=utf-8", status)

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A 302 to `location` (a path on this server)."""
        return cls(b"", "text/plain", 302, (("Location", location),))


#: path, query -> Response (None: 404).
Route = Callable[[str, Query], "Response | None"]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "sparkctl"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def do_GET(self) -> None:
        self._answer(True)

    def do_HEAD(self) -> None:
        self._answer(False)

    def _answer(self, send_body: bool) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        try:
            if parsed.path.startswith("/static/"):
                response = _static(parsed.path[len("/static/") :])
            else:
                response = self.server.route(parsed.path, query)
            if response is None:
                response = Response.text(404, f"no such page: {parsed.path}")
        except Exception as exc:  # a page bug must not kill the server thread
            log.exception("%s failed", parsed.path)
            response = Response.text(500, f"internal error: {type(exc).__name__}")
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (*SECURITY_HEADERS, *response.headers):
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def _static(name: str) -> Response | None:
    """A file of `static/` by its bare name (no directories, so no way out of it)."""
    if name not in _static_names():
        return None
    kind = "text/javascript; charset=utf-8" if name.endswith(".js") else "text/css; charset=utf-8"
    return Response((_STATIC / name).read_bytes(), kind)


@functools.cache
def _static_names() -> frozenset[str]:
    return (
        frozenset(p.name for p in _STATIC.iterdir() if p.is_file())
        if _STATIC.is_dir()
        else frozenset()
    )


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = sys.platform != "win32"
    route: Route

    def handle_error(self, request: object, client_address: object) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address, error)
        else:
            log.error("request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_ipv6(host: str) -> bool:
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0] == socket.AF_INET6
    except (OSError, UnicodeError):
        return ":" in host


class WebServer:
    """A threaded HTTP server for one route function, serving in a daemon thread.

    Args:
        route: path, query -> Response (None: 404).
        host: address to bind (IPv4 or IPv6).
        port: first port to try (0: any free one).
        candidates: ports tried from `port` (taken ones are skipped).
        what: names the server in errors and its thread.

    Raises:
        OSError: no port was free, or the host cannot be bound (the message says which).
    """

    def __init__(self, route: Route, host: str, port: int, candidates: int, what: str) -> None:
        server_class = _Server6 if _is_ipv6(host) else _Server
        server: _Server | None = None
        last: OSError | None = None
        for candidate in range(port, min(port + max(1, candidates), 65536)) if port else [0]:
            try:
                server = server_class((host, candidate), _Handler)
                break
            except OSError as exc:
                last = exc
                if exc.errno != errno.EADDRINUSE:
                    break
        if server is None:
            raise OSError(f"no free port for the {what} on {host} from {port}: {last}")
        server.route = route
        self._server = server
        self.host = host
        self.port = int(server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() within 50 ms: every app exit waits for it
            name=what.replace(" ", "-"),
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


# -- rendering -------------------------------------------------------------------------


def format_duration(ms: float | None) -> str:
    """Spark's UI durations: `45 ms`, `3 s`, `2.5 min`, `1.2 h` (blank when unknown)."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{max(int(ms), 0)} ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_bytes(size: float | None) -> str:
    """`1536` -> `1.5 KiB` (blank when unknown)."""
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover


def format_time(seconds: float | None) -> str:
    """Epoch seconds as `2026-11-22 20:15:03` (UTC); blank when unknown."""
    if seconds is None:
        return ""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def safe_url(url: str) -> str:
    """`url` when it is an http(s) URL, else `#` (no javascript: or data: links)."""
    if urllib.parse.urlsplit(url or "").scheme.lower() not in ("http", "https"):
        return "#"
    return url


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # at the first page: a driver whose UI nobody opens never loads it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["bytes"] = format_bytes
    env.filters["time"] = format_time
    env.filters["safe_url"] = safe_url
    env.filters["quote"] = lambda s: urllib.parse.quote(str(s), safe="")
    return env


def render(template: str, **context: Any) -> Response:
    """An HTML page from `template` with `context`."""
    body = _environment().get_template(template).render(**context).encode("utf-8")
    return Response(body)


# -- Prometheus ------------------------------------------------------------------------

#: name, help, type, [(labels, value)].
Metric = tuple[str, str, str, Iterable[tuple[Mapping[str, str], float]]]


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def prometheus(metrics: Iterable[Metric]) -> Response:
    """The text exposition format (version 0.0.4) of `metrics`."""
    lines = []
    for name, help_text, kind, samples in metrics:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            inner = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            number = int(value) if float(value).is_integer() else value
            lines.append(f"{name}{{{inner}}} {number}" if inner else f"{name} {number}")
    body = ("\n".join(lines) + "\n").encode()
    return Response(body, "text/plain; version=0.0.4; charset=utf-8")
