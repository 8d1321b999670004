"""Length-prefixed records as a raw tcp peer writes and reads them (test helpers).

Written independently of `rpcenv.tcp._wire` so that the tests speak the wire format
as its documentation states it, not as the code under test happens to build it.
"""

from __future__ import annotations

import socket
import struct


def record(data: bytes) -> bytes:
    """`data` framed as one record: a 4-byte big-endian length, then the bytes."""
    return struct.pack(">I", len(data)) + data


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly `size` bytes from `sock`; EOFError if it closes first."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("closed")
        data += chunk
    return data


def recv_record(sock: socket.socket) -> bytes:
    """The next record's bytes from `sock`."""
    (size,) = struct.unpack(">I", recv_exact(sock, 4))
    return recv_exact(sock, size)
