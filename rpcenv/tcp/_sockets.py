"""Socket options and kernel counters the tcp backend reads; no state of its own."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
import termios

__all__ = [
    "describe_peer",
    "family_for",
    "keep_alive",
    "prepare",
    "readable_bytes",
    "unacked_bytes",
]

#: Unanswered keepalive probes, this many seconds apart, after which a peer is gone.
_PROBES, _PROBE_SECONDS = 2, 5


def prepare(sock: socket.socket, keepalive_seconds: float) -> None:
    """Ready a connected socket for the I/O loop: non-blocking, no Nagle, keepalives."""
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    keep_alive(sock, keepalive_seconds)


def keep_alive(sock: socket.socket, idle: float) -> None:
    """Have the kernel probe an idle peer, as gRPC pings an idle stream.

    A peer whose host vanished or whose link was cut sends no FIN: without probes its
    connection stayed open for hours, and neither side heard of the loss (a driver
    kept a dead executor's tasks until its heartbeat timeout). With them an idle
    connection ends about `idle` + 10 seconds after its peer went silent. No bound on
    unacknowledged data (TCP_USER_TIMEOUT): Linux applies it to a full receive window
    too, and a reader busy with a large message is not a dead peer. Options a
    platform lacks are skipped.
    """
    seconds = max(1, int(idle))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", seconds),
        ("TCP_KEEPINTVL", _PROBE_SECONDS),
        ("TCP_KEEPCNT", _PROBES),
    ):
        option = getattr(socket, name, None)
        if option is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def family_for(host: str) -> socket.AddressFamily:
    """The address family to listen with on `host`: IPv6 for an IPv6 address or name.

    `socket.create_server` takes IPv4 unless told, and failed on an IPv6 address (a
    driver reaching its Master over IPv6 binds one), where the gRPC backend listens.
    """
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return socket.AF_INET  # create_server says what is wrong with the name
    families = {info[0] for info in found}
    return socket.AF_INET if socket.AF_INET in families else socket.AF_INET6


def describe_peer(where: object) -> str:
    """`host:port` of an accepted socket's peer, for log lines."""
    if isinstance(where, tuple) and len(where) >= 2:
        host = f"[{where[0]}]" if ":" in str(where[0]) else str(where[0])
        return f"{host}:{where[1]}"
    return str(where)


def _ioctl_int(sock: socket.socket, request: int) -> int | None:
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return None


def unacked_bytes(sock: socket.socket) -> int | None:
    """Bytes of ours the peer has not acknowledged (Linux's TIOCOUTQ); None if unknown."""
    request = getattr(termios, "TIOCOUTQ", None)
    return None if request is None else _ioctl_int(sock, request)


def readable_bytes(sock: socket.socket) -> int | None:
    """Bytes the kernel holds for us to read (FIONREAD); None if unknown."""
    request = getattr(termios, "FIONREAD", None)
    return None if request is None else _ioctl_int(sock, request)
