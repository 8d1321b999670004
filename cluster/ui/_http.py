"""A small threaded HTTP server for the web UIs, on the standard library.

One `WebServer` per daemon: routes map a path to a function of the query
string that returns a `Response`. Every response carries headers that stop a
browser from sniffing text as HTML or running scripts from elsewhere. This
module never renders HTML itself and never touches cluster state.
"""

from __future__ import annotations

import dataclasses
import errno
import http.server
import logging
import socket
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping

__all__ = ["Handler", "Query", "Response", "ServedUI", "WebServer"]

log = logging.getLogger(__name__)

#: A route's view of the query string: first value of each parameter.
Query = Mapping[str, str]
Handler = Callable[[Query], "Response"]

_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'"),
)


@dataclasses.dataclass
class Response:
    """What a route answers."""

    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


#: Seconds a connection may stay silent (mid-request or idle between keep-alive
#: requests) before it is closed: each one holds a thread of the daemon.
IDLE_TIMEOUT_S = 30.0


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
        path = parsed.path.rstrip("/") or "/"
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        route = self.server.routes.get(path)
        if route is None:
            response = self.server.not_found(path)
        else:
            try:
                response = route(query)
            except Exception:  # a page bug must not kill the server thread
                log.exception("web UI route %s failed", path)
                response = Response(b"internal error\n", "text/plain; charset=utf-8", 500)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (*_SECURITY_HEADERS, *response.headers):
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR, as Jetty and HTTPServer set it: a restarted daemon takes its port
    # back while connections of the old one linger in TIME_WAIT (on Linux it never lets
    # two live listeners share a port; SO_REUSEPORT, which would, stays off).
    allow_reuse_address = sys.platform != "win32"  # there, it would let a port be shared
    allow_reuse_port = False
    routes: dict[str, Handler]
    not_found: Callable[[str], Response]

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
    """A threaded HTTP server with a route table.

    Args:
        host: address to bind.
        port: port to bind; 0 = any free port. When taken, the next ports are
            tried, up to `max_retries` more, as Spark's UIs do.
        routes: path (no trailing slash) -> handler.
        not_found: builds the 404 page for an unknown path.
        max_retries: how many following ports to try when `port` is taken.
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Handler],
        not_found: Callable[[str], Response],
        max_retries: int = 16,
    ) -> None:
        self._server = self._bind(host, port, max_retries)
        self._server.routes = routes
        self._server.not_found = not_found
        self.host = host
        self._thread: threading.Thread | None = None

    @staticmethod
    def _bind(host: str, port: int, max_retries: int) -> _Server:
        server_class = _Server6 if _is_ipv6(host) else _Server
        attempts = 1 if port == 0 else max_retries + 1
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
                        exc.errno, f"cannot serve the web UI on {host}:{candidate}: {exc.strerror}"
                    ) from None
                last = exc
                log.warning("web UI port %d is in use, trying the next one", candidate)
        raise OSError(
            errno.EADDRINUSE,
            f"cannot serve the web UI on {host}: ports {port}..{port + attempts - 1} are in use",
        ) from last

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`http://host:port` of this server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        """Serve in a background thread."""
        # A short poll keeps stop() quick; ten wake-ups a second cost nothing measurable.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"webui-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5.0)
        self._server.server_close()


class ServedUI:
    """What the master and worker UIs share: one WebServer, started and stopped as a unit."""

    _server: WebServer
    _label = "web UI"

    @property
    def port(self) -> int:
        """The port the UI listens on."""
        return self._server.port

    @property
    def url(self) -> str:
        """`http://host:port` of the UI."""
        return self._server.url

    def start(self) -> None:
        """Start serving in the background."""
        self._server.start()
        log.info("%s at %s", self._label, self.url)

    def stop(self) -> None:
        """Stop serving."""
        self._server.stop()
