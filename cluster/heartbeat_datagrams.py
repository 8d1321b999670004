"""Worker heartbeats as UDP datagrams: their format, the Master's check, its socket.

A heartbeat on a gRPC stream costs the Master ~130 µs of CPU, most of it in
grpc itself (one completion per message); at 2,000 workers that is a third of
a core. A 45-byte datagram, checked here, costs a few microseconds. The layout
is documented for other languages' clients beside `RegisterWorkerResponse` in
proto/sparkctl/v1/deploy.proto:

    version (1) | slot (uint32) | sequence (uint64) | HMAC-SHA256(key, the 13 bytes before)

The key is the worker's own, fresh at each registration, and travels over the
authenticated (maybe TLS) stream; the slot names the worker. Liveness never
depends on UDP: the Master tells a worker whose datagrams it does not hear to
heartbeat on its stream (`MasterHeartbeats._check_heartbeat_datagrams`).

`HeartbeatDatagrams` is the Master's table (no I/O); `DatagramListener` is the
thread that reads the socket and hands each datagram to it. Neither logs per
datagram or raises on bad input: a flood of garbage is counted and dropped.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hmac
import logging
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cluster.master_state import WorkerInfo

__all__ = [
    "DATAGRAM_SIZE",
    "DROP_REASONS",
    "VERSION",
    "DatagramCounts",
    "DatagramListener",
    "DatagramSender",
    "Enrollment",
    "HeartbeatDatagrams",
    "heartbeat_datagram",
]

log = logging.getLogger(__name__)

VERSION = 1
_HEAD = struct.Struct("!BIQ")
_TAG_SIZE = 32
#: Every heartbeat datagram is exactly this long.
DATAGRAM_SIZE = _HEAD.size + _TAG_SIZE
KEY_SIZE = 32
_MAX_SLOT = 2**32 - 1
_MAX_SEQUENCE = 2**64 - 1
#: Why a datagram was dropped (the keys of `HeartbeatDatagrams.dropped`).
DROP_REASONS = ("size", "version", "unknown", "forged", "replayed", "error")
#: Larger than any datagram we take, so that an oversized one is seen as such.
_RECV_SIZE = 2048
#: What the Master asks of the kernel for its socket's buffer (capped by net.core.rmem_max).
_RECV_BUFFER = 1 << 20


def heartbeat_datagram(slot: int, sequence: int, key: bytes) -> bytes:
    """The datagram a worker sends (the layout in the module docstring).

    Raises:
        ValueError: a slot or sequence out of its field's range.
    """
    if not 0 <= slot <= _MAX_SLOT or not 0 < sequence <= _MAX_SEQUENCE:
        raise ValueError(f"bad heartbeat slot {slot} or sequence {sequence}")
    head = _HEAD.pack(VERSION, slot, sequence)
    return head + hmac.digest(key, head, "sha256")


@dataclasses.dataclass(frozen=True, slots=True)
class DatagramCounts:
    """Datagrams a Master took and dropped since it started (for `/metrics`).

    Attributes:
        accepted: good heartbeats.
        dropped: drops by reason, every one of `DROP_REASONS` (0 if none).
    """

    accepted: int
    dropped: dict[str, int]


@dataclasses.dataclass(slots=True)
class Enrollment:
    """One registration's datagram heartbeats: its key, the last sequence taken."""

    slot: int
    key: bytes
    worker: WorkerInfo
    enrolled_at: float
    last_sequence: int = 0
    #: When its last good datagram came (monotonic; None: none yet).
    heard_at: float | None = None
    #: A good datagram came after its worker was declared DEAD: it must register again.
    heard_while_dead: bool = False
    #: The worker heartbeats on its stream (told to, or by its own choice); its key
    #: stays, so that a probe datagram can bring it back (`heard_again`).
    parked: bool = False
    #: A good datagram came while parked: UDP gets through again.
    heard_while_parked: bool = False


class HeartbeatDatagrams:
    """The Master's side: who may send datagrams, and whether one is good.

    `accept` runs on the listener's thread, everything else on the Master's; they
    share only dict lookups and single attribute stores (atomic in CPython), as
    the stream's inline heartbeat already does with the same `WorkerInfo`.

    Args:
        clock: monotonic seconds (the Master's).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._slots: dict[int, Enrollment] = {}
        self._by_worker: dict[str, Enrollment] = {}
        #: Good datagrams and drops by reason since the start (never reset: the
        #: `/metrics` counters); `take_drops` reports the drops since its last call.
        self.accepted = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self._drops_reported: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def enroll(self, worker: WorkerInfo) -> Enrollment:
        """A fresh slot and key for `worker` (replacing any earlier registration's)."""
        self.withdraw(worker.worker_id)
        slot = secrets.randbelow(_MAX_SLOT) + 1
        while slot in self._slots:
            slot = secrets.randbelow(_MAX_SLOT) + 1
        entry = Enrollment(slot, secrets.token_bytes(KEY_SIZE), worker, self.clock())
        self._by_worker[worker.worker_id] = entry
        self._slots[slot] = entry
        return entry

    def withdraw(self, worker_id: str) -> Enrollment | None:
        """Forget `worker_id`'s slot: its datagrams are `unknown` from now on."""
        entry = self._by_worker.pop(worker_id, None)
        if entry is not None:
            self._slots.pop(entry.slot, None)
        return entry

    def get(self, worker_id: str) -> Enrollment | None:
        """`worker_id`'s enrollment, if it heartbeats by datagram."""
        return self._by_worker.get(worker_id)

    def enrollments(self) -> list[Enrollment]:
        """Every enrollment (a copy: safe to withdraw while walking it)."""
        return list(self._by_worker.values())

    def accept(self, data: bytes) -> bool:
        """Take one datagram: True if it was a good heartbeat (the worker is heard from).

        Never raises: anything wrong is counted in `dropped` under its reason.
        """
        if len(data) != DATAGRAM_SIZE:
            self.dropped["size"] += 1
            return False
        version, slot, sequence = _HEAD.unpack_from(data)
        if version != VERSION:
            self.dropped["version"] += 1
            return False
        entry = self._slots.get(slot)
        if entry is None:
            self.dropped["unknown"] += 1
            return False
        tag = hmac.digest(entry.key, data[: _HEAD.size], "sha256")
        if not hmac.compare_digest(tag, data[_HEAD.size :]):
            self.dropped["forged"] += 1
            return False
        if sequence <= entry.last_sequence:
            self.dropped["replayed"] += 1
            return False
        entry.last_sequence = sequence
        now = self.clock()
        entry.heard_at = now
        worker = entry.worker
        if worker.alive:
            worker.heard_by_datagram(now)
            if entry.parked:
                entry.heard_while_parked = True  # the Master moves it back to datagrams
        else:
            entry.heard_while_dead = True  # the Master tells it to register again
        self.accepted += 1
        return True

    def unheard(self, now: float, interval: float, timeout: float) -> list[tuple[Enrollment, str]]:
        """ALIVE workers to move to stream heartbeats, and why (parked here).

        No datagram within two heartbeat `interval`s of registering (UDP blocked on
        the way), or none for half of `timeout` since the last one: the worker is
        told long before `timeout` makes it DEAD.
        """
        moved: list[tuple[Enrollment, str]] = []
        for entry in self.enrollments():
            if not entry.worker.alive or entry.parked:
                continue
            if entry.heard_at is None:
                if now - entry.enrolled_at <= 2 * interval:
                    continue
                reason = f"no heartbeat datagram arrived in {now - entry.enrolled_at:.1f}s"
            elif now - entry.heard_at > timeout / 2:
                reason = f"no heartbeat datagram for {now - entry.heard_at:.1f}s"
            else:
                continue
            self.park(entry)
            moved.append((entry, reason))
        return moved

    @staticmethod
    def park(entry: Enrollment) -> None:
        """Its worker heartbeats on its stream now; a probe datagram may bring it back."""
        entry.parked = True

    def heard_again(self) -> list[Enrollment]:
        """Parked ALIVE workers whose probe datagram came: back to datagrams (unparked)."""
        found = [
            e
            for e in self.enrollments()
            if e.parked and e.heard_while_parked and e.worker.alive and e.heard_at is not None
        ]
        for entry in found:
            entry.parked = entry.heard_while_parked = False
        return found

    def heard_from_dead(self) -> list[Enrollment]:
        """Workers declared DEAD whose good datagrams keep coming: told to register again."""
        found = [e for e in self.enrollments() if e.heard_while_dead and not e.worker.alive]
        for entry in found:
            entry.heard_while_dead = False
        return found

    def take_drops(self) -> dict[str, int]:
        """Drops counted since the last call, by reason (for a rate-limited log line)."""
        now = dict(self.dropped)  # one C-level copy: safe while the listener counts
        before, self._drops_reported = self._drops_reported, now
        return {
            reason: n - before.get(reason, 0)
            for reason, n in now.items()
            if n > before.get(reason, 0)
        }

    def counts(self) -> DatagramCounts:
        """Datagrams taken and dropped since the start (safe from any thread)."""
        dropped = dict.fromkeys(DROP_REASONS, 0)
        dropped.update(self.dropped)  # one C-level copy: safe while the listener counts
        return DatagramCounts(self.accepted, dropped)


class DatagramListener:
    """A thread reading heartbeat datagrams from a UDP socket into a `HeartbeatDatagrams`.

    A plain blocking socket on its own thread: one `recvfrom` per datagram, no
    event loop around it, and nothing it does can stall the Master's endpoint.

    Args:
        table: where datagrams go.
        host: the address to bind (the Master's RPC address).
        port: the UDP port to bind; if it is taken, any free one.
    """

    def __init__(self, table: HeartbeatDatagrams, host: str, port: int) -> None:
        self.table = table
        family, _kind, _proto, _name, sockaddr = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
        )[0]
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
            try:
                self._sock.bind(sockaddr)
            except OSError:
                if port == 0:
                    raise
                self._sock.bind((sockaddr[0], 0, *sockaddr[2:]))
        except BaseException:
            self._sock.close()
            raise
        bound = self._sock.getsockname()
        self.host: str = bound[0]
        self.port: int = bound[1]
        self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="master-heartbeat-datagrams", daemon=True
        )

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop reading: wake the thread with a datagram of our own, then close."""
        self._stopping = True
        if self._thread.is_alive():
            wake_host = self.host
            if wake_host in ("0.0.0.0", "::"):
                wake_host = "127.0.0.1" if self._sock.family == socket.AF_INET else "::1"
            try:
                with socket.socket(self._sock.family, socket.SOCK_DGRAM) as waker:
                    waker.sendto(b"", (wake_host, self.port))
            except OSError:
                pass
            self._thread.join(timeout)
        self._sock.close()

    def _run(self) -> None:
        recv = self._sock.recvfrom
        accept = self.table.accept
        dropped = self.table.dropped
        while not self._stopping:
            try:
                data, _addr = recv(_RECV_SIZE)
            except OSError as exc:
                if self._stopping:
                    return
                dropped["error"] += 1  # e.g. an ICMP error queued on the socket
                log.debug("heartbeat socket: %s", exc)
                continue
            try:
                accept(data)
            except Exception:  # a bug must not end heartbeats: count it, keep reading
                dropped["error"] += 1
                log.debug("heartbeat datagram failed", exc_info=True)


class DatagramSender:
    """A worker's side: sends its heartbeats to the Master's UDP port.

    Args:
        host: the Master's host (the one the worker dialed for its stream).
        port: `RegisterWorkerResponse.heartbeat_udp_port`.
        slot: `RegisterWorkerResponse.heartbeat_slot`.
        key: `RegisterWorkerResponse.heartbeat_key`.

    Raises:
        OSError: the host does not resolve, or no socket can be made for it.
    """

    def __init__(self, host: str, port: int, slot: int, key: bytes) -> None:
        if not 0 < port < 65536 or len(key) != KEY_SIZE or not 0 < slot <= _MAX_SLOT:
            raise OSError(f"bad heartbeat port {port}, slot {slot} or key ({len(key)} bytes)")
        family, kind, proto, _name, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_DGRAM
        )[0]
        self._sock = socket.socket(family, kind, proto)
        try:
            self._sock.setblocking(False)
            # Connected: the kernel reports an unreachable port back to us as an error.
            self._sock.connect(sockaddr)
        except BaseException:
            self._sock.close()
            raise
        self.slot = slot
        self._key = key
        self.sequence = 0

    def send(self) -> None:
        """Send the next heartbeat (one the kernel has no room for is lost, as on the wire).

        Raises:
            OSError: it could not be sent (e.g. an earlier one found the port closed).
        """
        self.sequence += 1
        # The next one may fit; a Master that hears none moves us to the stream.
        with contextlib.suppress(BlockingIOError):
            self._sock.send(heartbeat_datagram(self.slot, self.sequence, self._key))

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()
