"""RpcAddress: where an RpcEnv can be reached, and spark:// URI parsing."""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

__all__ = ["RpcAddress", "is_loopback_host", "parse_endpoint_uri"]


@dataclasses.dataclass(frozen=True, slots=True)
class RpcAddress:
    """The address of an RpcEnv.

    A server-mode env has a host and a listening port. A client-mode env has no
    port (0) and is told apart by its `client_id`: messages reach it over the
    connection it opened.
    """

    host: str
    port: int
    client_id: str = ""

    @property
    def is_client(self) -> bool:
        """True for a client-mode env, which cannot be dialled."""
        return self.port == 0

    @property
    def host_port(self) -> str:
        """`host:port`, bracketing IPv6 literals."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_spark_url(self) -> str:
        """The `spark://host:port` form users type."""
        return f"spark://{self.host_port}"

    def __str__(self) -> str:
        if self.is_client:
            return f"client:{self.client_id}@{self.host}"
        return self.host_port

    @classmethod
    def from_uri(cls, uri: str) -> RpcAddress:
        """Parse `spark://host:port` (or `host:port`).

        Raises:
            ValueError: when the text is not a host and a port.
        """
        _, address = parse_endpoint_uri(uri)
        return address


def parse_endpoint_uri(uri: str) -> tuple[str | None, RpcAddress]:
    """Split `spark://name@host:port` into the endpoint name and the address.

    The scheme and the name are optional: `host:port` is accepted too.

    Raises:
        ValueError: naming the text when it is not of that form.
    """
    text = uri.strip()
    rest = text
    if "://" in rest:
        scheme, rest = rest.split("://", 1)
        if scheme != "spark":
            raise ValueError(
                f"unknown URL scheme {scheme!r} in {uri!r}: expected spark://host:port"
            )
    name: str | None = None
    if "@" in rest:
        name, rest = rest.rsplit("@", 1)
        if not name:
            raise ValueError(f"empty endpoint name in {uri!r}")
    rest = rest.rstrip("/")
    if rest.startswith("["):
        host, _, port_text = rest[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        host, sep, port_text = rest.rpartition(":")
        if not sep:
            raise ValueError(f"missing port in {uri!r}: expected spark://host:port")
    if not host:
        raise ValueError(f"missing host in {uri!r}: expected spark://host:port")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"bad port {port_text!r} in {uri!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range in {uri!r}")
    return name, RpcAddress(host, port)


def is_loopback_host(host: str) -> bool:
    """True when `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)
