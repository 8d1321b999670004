"""The one web layer of every sparkctl UI: HTTP server, security headers, templates, Prometheus.

The master and worker UIs (`cluster.ui`), the driver's application UI on 4040
and the history server (`scheduler.status.ui`) all serve through this module:

- `WebServer`: a threaded standard-library HTTP server for one route function,
  binding IPv4 or IPv6 hosts, moving to the next port when one is taken (Spark's
  spark.port.maxRetries), closing silent connections, serving `static/` files by
  bare name, and turning a failing page into a one-line 500 (never a traceback).
- `Response` and `SECURITY_HEADERS`: every answer is `no-store` and carries a
  Content-Security-Policy (scripts and styles only from the page's own origin),
  X-Frame-Options DENY, nosniff and no-referrer.
- `Templates`: a jinja2 environment per UI template folder, autoescaping every
  template whatever its name, with the common formatters as filters; pages are
  built from templates, never from f-strings.
- `prometheus` / `prometheus_text`: the text exposition format through
  prometheus-client.

It is the bottom layer's web half, beside `rpcenv`: it must never import
`cluster`, `scheduler`, `cli` or `rpcenv`, and it never reads or changes
cluster or application state (routes are handed in).
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webui.auth import ADMIN_USER, UIAuth, viewing_as

if TYPE_CHECKING:
    import jinja2
    from prometheus_client import CollectorRegistry

__all__ = [
    "COMMON_FILTERS",
    "IDLE_TIMEOUT_S",
    "PROMETHEUS_CONTENT_TYPE",
    "SECURITY_HEADERS",
    "Metric",
    "Query",
    "Response",
    "Route",
    "Templates",
    "WebServer",
    "base_url",
    "environment",
    "format_bytes",
    "format_duration",
    "format_mib",
    "format_time",
    "format_time_ms",
    "http_url",
    "prometheus",
    "prometheus_text",
    "route_table",
    "safe_url",
]

log = logging.getLogger(__name__)

#: A route's view of the query string: the first value of each parameter.
Query = Mapping[str, str]

#: Scripts and styles only from the page's own origin (inline styles and data: images
#: for the SVG pictures aside), no framing, no sniffing, no referrer to other sites.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    ),
)

#: Seconds a connection may stay silent (mid-request or idle between keep-alive
#: requests) before it is closed: each one holds a thread of the daemon.
IDLE_TIMEOUT_S = 30.0

#: The Prometheus text format both kinds of /metrics answer in.
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


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


#: path, query -> Response (None: the server's 404).
Route = Callable[[str, Query], "Response | None"]


def route_table(table: Mapping[str, Callable[[Query], Response]]) -> Route:
    """A route answering exact paths (a trailing slash ignored) from `table`."""

    def route(path: str, query: Query) -> Response | None:
        handler = table.get(path.rstrip("/") or "/")
        return None if handler is None else handler(query)

    return route


def _plain_not_found(path: str) -> Response:
    return Response.text(404, f"no such page: {path}")


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "sparkctl"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        try:
            response: Response | None = None
            if self.server.static is not None and parsed.path.startswith("/static/"):
                # Stylesheets and scripts hold no data: the sign-in answer may use them.
                response = _static(self.server.static, parsed.path[len("/static/") :])
            elif self.server.auth is None:
                response = self.server.route(parsed.path, query)
            else:
                viewer = self.server.auth.viewer(self.headers.get("Authorization"))
                if viewer is None:
                    response = _sign_in_required(self.server.auth, self.server.what)
                else:
                    with viewing_as(viewer):
                        response = self.server.route(parsed.path, query)
            if response is None:
                response = self.server.not_found(parsed.path)
        except Exception as exc:  # a page bug must not kill the server thread
            log.exception("web UI page %s failed", parsed.path)
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


def _sign_in_required(auth: UIAuth, what: str) -> Response:
    """The 401 of a request without a valid UI credential: what to send, and how to get it."""
    message = (
        f"This {what} requires a sign-in (the cluster has a shared secret).\n"
        f"User {ADMIN_USER!r} sees everything; an application id sees only that application.\n"
        "Get the password with `sparkctl ui-token` (or `sparkctl ui-token --app APP_ID`)\n"
        "on a host that holds the cluster secret, then sign in with it in the browser,\n"
        "or send `Authorization: Bearer <user>:<password>` (e.g. curl -H, Prometheus).\n"
    )
    realm = auth.realm.replace('"', "")
    challenge = f'Basic realm="{realm}", charset="UTF-8"'
    return Response(
        message.encode(), "text/plain; charset=utf-8", 401, (("WWW-Authenticate", challenge),)
    )


def _static(folder: Path, name: str) -> Response | None:
    """A file of `folder` by its bare name (no directories, so no way out of it)."""
    if name not in _static_names(folder):
        return None
    kind = "text/javascript; charset=utf-8" if name.endswith(".js") else "text/css; charset=utf-8"
    return Response((folder / name).read_bytes(), kind)


@functools.cache
def _static_names(folder: Path) -> frozenset[str]:
    if not folder.is_dir():
        return frozenset()
    return frozenset(p.name for p in folder.iterdir() if p.is_file())


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR, as Jetty and HTTPServer set it: a restarted daemon takes its port
    # back while connections of the old one linger in TIME_WAIT (on Linux it never lets
    # two live listeners share a port; SO_REUSEPORT, which would, stays off).
    allow_reuse_address = sys.platform != "win32"  # there, it would let a port be shared
    allow_reuse_port = False
    route: Route
    not_found: Callable[[str], Response]
    static: Path | None
    auth: UIAuth | None
    what: str

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver would print a traceback to stderr (the daemon's log) for every
        # client that hangs up mid-answer.
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("web UI client %s went away: %s", client_address, error)
        else:
            log.error("web UI request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


def _is_ipv6(host: str) -> bool:
    """Whether `host` (a literal or a name) is an IPv6 address; HTTPServer assumes IPv4."""
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0] == socket.AF_INET6
    except (OSError, UnicodeError):
        return ":" in host  # let the bind say what is wrong with it


class WebServer:
    """A threaded HTTP server for one route function; `start()` serves in a daemon thread.

    Args:
        route: path, query -> Response (None: `not_found`).
        host: address to bind (IPv4 or IPv6 literal, or a name).
        port: port to bind; 0 = any free port. When taken, the next ports are
            tried, up to `max_retries` more, as Spark's UIs do.
        max_retries: how many following ports to try when `port` is taken.
        what: names the server in errors, logs and its thread.
        not_found: builds the 404 answer for a path (default: one line of text).
        static: a folder served at `/static/<bare name>` (None: no static files).
        auth: with it, every page but the static files needs a UI credential (401
            otherwise), and routes read the viewer with `webui.auth.current_viewer()`.

    Raises:
        OSError: every port was taken (errno EADDRINUSE), or the host cannot be
            bound (its errno); the message names the host and ports.
    """

    def __init__(
        self,
        route: Route,
        host: str,
        port: int,
        *,
        max_retries: int = 16,
        what: str = "web UI",
        not_found: Callable[[str], Response] | None = None,
        static: Path | None = None,
        auth: UIAuth | None = None,
    ) -> None:
        self._server = self._bind(host, port, max_retries, what)
        self._server.route = route
        self._server.not_found = not_found or _plain_not_found
        self._server.static = static
        self._server.auth = auth
        self._server.what = what
        self.host = host
        self.what = what
        self._thread: threading.Thread | None = None

    @staticmethod
    def _bind(host: str, port: int, max_retries: int, what: str) -> _Server:
        server_class = _Server6 if _is_ipv6(host) else _Server
        attempts = 1 if port == 0 else max(0, max_retries) + 1
        last: OSError | None = None
        for offset in range(attempts):
            candidate = port + offset if port else 0
            if candidate > 65535:
                break
            try:
                return server_class((host, candidate), _RequestHandler)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise OSError(
                        exc.errno, f"cannot serve the {what} on {host}:{candidate}: {exc.strerror}"
                    ) from None
                last = exc
                log.warning("%s port %d is in use, trying the next one", what, candidate)
        raise OSError(
            errno.EADDRINUSE,
            f"cannot serve the {what} on {host}: ports {port}..{port + attempts - 1} are in use",
        ) from last

    @property
    def signs_in(self) -> bool:
        """Whether pages need a UI credential (`auth` was given)."""
        return self._server.auth is not None

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`http://host:port` of this server (IPv6 hosts in brackets)."""
        return http_url(self.host, self.port)

    def start(self) -> None:
        """Serve in a background thread."""
        # A short poll keeps stop() quick (every app exit waits for it); twenty
        # wake-ups a second cost nothing measurable.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.what.replace(' ', '-')}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        log.debug("%s serving on %s", self.what, self.url)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()


def http_url(host: str, port: int) -> str:
    """`http://host:port`, with an IPv6 literal in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


# -- formatting --------------------------------------------------------------------------


def format_duration(ms: float | None) -> str:
    """Durations as the UIs show them: `45 ms`, `3.5 s`, `12 s`, `2.5 min`, `1.2 h` (or blank)."""
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


def _scaled(value: float, units: tuple[str, ...]) -> tuple[float, str]:
    for unit in units[:-1]:
        if abs(value) < 1024:
            return value, unit
        value /= 1024
    return value, units[-1]


def format_bytes(size: float | None) -> str:
    """`1536` -> `1.5 KiB`, `300` -> `300 B` (blank when unknown)."""
    if size is None:
        return ""
    value, unit = _scaled(float(size), ("B", "KiB", "MiB", "GiB", "TiB"))
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"


def format_mib(mib: float) -> str:
    """A size in MiB (cores and memory of daemons): `1536` -> `1.5 GiB`, `300` -> `300.0 MiB`."""
    value, unit = _scaled(float(mib), ("MiB", "GiB", "TiB"))
    return f"{value:.1f} {unit}"


def format_time(seconds: float | None) -> str:
    """Epoch seconds as `2026-11-22 20:15:03` (UTC); blank when unknown."""
    if seconds is None:
        return ""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def format_time_ms(ms: int | None) -> str:
    """A millisecond timestamp as `format_time` shows it; blank for 0 or None (protobuf unset)."""
    return format_time(ms / 1000) if ms is not None and ms > 0 else ""


def safe_url(url: str) -> str:
    """`url` when it is an http(s) URL, else `#` (no javascript: or data: links)."""
    if urllib.parse.urlsplit(url or "").scheme.lower() not in ("http", "https"):
        return "#"
    return url


def base_url(url: str) -> str:
    """`safe_url` without a trailing slash, for templates that append a path."""
    return safe_url(url).rstrip("/")


def _quote(value: object) -> str:
    return urllib.parse.quote(str(value), safe="")


#: The filters every UI's templates get.
COMMON_FILTERS: Mapping[str, Callable[..., Any]] = {
    "duration": format_duration,
    "bytes": format_bytes,
    "mib": format_mib,
    "time": format_time,
    "time_ms": format_time_ms,
    "safe_url": safe_url,
    "base_url": base_url,
    "quote": _quote,
}


def environment(
    folder: Path, filters: Mapping[str, Callable[..., Any]] | None = None
) -> jinja2.Environment:
    """A jinja2 environment over `folder`: autoescaping on for every template, undefined
    names an error, the common filters, then `filters` (which may replace them)."""
    import jinja2  # at the first page: a process whose UI nobody opens never loads it

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(COMMON_FILTERS)
    env.filters.update(filters or {})
    return env


class Templates:
    """One UI's template folder, its environment built on the first page."""

    def __init__(
        self, folder: Path, filters: Mapping[str, Callable[..., Any]] | None = None
    ) -> None:
        self.folder = folder
        self._filters = dict(filters or {})
        self._env: jinja2.Environment | None = None
        self._lock = threading.Lock()

    def _environment(self) -> jinja2.Environment:
        with self._lock:
            if self._env is None:
                self._env = environment(self.folder, self._filters)
            return self._env

    def render(self, template: str, **context: Any) -> bytes:
        """`template` rendered with `context`, as UTF-8."""
        return self._environment().get_template(template).render(**context).encode("utf-8")

    def page(self, template: str, status: int = 200, **context: Any) -> Response:
        """An HTML answer from `template`."""
        return Response(self.render(template, **context), status=status)


# -- Prometheus --------------------------------------------------------------------------

#: name, help, type ("gauge" or "counter"), [(labels, value)].
Metric = tuple[str, str, str, Iterable[tuple[Mapping[str, str], float]]]


def prometheus_text(registry: CollectorRegistry) -> Response:
    """A registry's metrics in the Prometheus text format (version 0.0.4)."""
    from prometheus_client.exposition import generate_latest

    body: bytes = generate_latest(registry)
    return Response(body, PROMETHEUS_CONTENT_TYPE)


class _Snapshot:
    """A collector of metric families computed before the scrape (one answer's worth)."""

    def __init__(self, families: list[Any]) -> None:
        self._families = families

    def collect(self) -> Iterator[Any]:
        yield from self._families


def prometheus(metrics: Iterable[Metric]) -> Response:
    """`metrics` in the Prometheus text format, through prometheus-client.

    Raises:
        ValueError: a type other than gauge or counter, or samples of one metric
            with different label names.
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    families = []
    for name, help_text, kind, samples in metrics:
        rows = list(samples)
        labels = list(rows[0][0]) if rows else []
        if kind == "gauge":
            family: Any = GaugeMetricFamily(name, help_text, labels=labels)
        elif kind == "counter":
            family = CounterMetricFamily(name, help_text, labels=labels)
        else:
            raise ValueError(f"metric {name}: type {kind!r} is not gauge or counter")
        for sample_labels, value in rows:
            if list(sample_labels) != labels:
                raise ValueError(f"metric {name}: labels {list(sample_labels)} are not {labels}")
            family.add_metric([sample_labels[k] for k in labels], value)
        families.append(family)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families))
    return prometheus_text(registry)
