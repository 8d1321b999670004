"""Which connected peers of the Master hold no role and have gone quiet.

A peer that authenticated (it holds the secret, or an application's credential)
but never registered as a worker or an application, and has sent the Master
nothing it accepted for `spark.sparkctl.master.unregisteredPeerTimeout`, only
holds a stream open: the Master closes it (`RpcEnv.disconnect`). Clients that
ask and go (`sparkctl status`) are active while they ask and gone afterwards;
a worker or driver, once registered, is judged by its heartbeats and
connection instead, never by this.
"""

from __future__ import annotations

from collections.abc import Callable

from cluster.settings import UNREGISTERED_PEER_TIMEOUT
from rpcenv import Conf, RpcAddress

__all__ = ["IdlePeers"]


class IdlePeers:
    """When each connected peer was last heard from (used on the Master's thread only)."""

    def __init__(self, timeout: float) -> None:
        if not timeout > 0:
            raise ValueError(f"{UNREGISTERED_PEER_TIMEOUT.key} must be positive, not {timeout}")
        self.timeout = timeout
        self._last: dict[RpcAddress, float] = {}

    @classmethod
    def from_conf(cls, conf: Conf) -> IdlePeers:
        """The timeout `conf` asks for (`spark.sparkctl.master.unregisteredPeerTimeout`)."""
        return cls(conf.get(UNREGISTERED_PEER_TIMEOUT))

    def heard(self, address: RpcAddress, now: float) -> None:
        """`address` connected, or sent a message the Master accepted."""
        self._last[address] = now

    def forget(self, address: RpcAddress) -> None:
        """`address` disconnected."""
        self._last.pop(address, None)

    def __len__(self) -> int:
        return len(self._last)

    def take_idle(self, now: float, has_role: Callable[[RpcAddress], bool]) -> list[RpcAddress]:
        """Peers without a role silent for longer than the timeout (forgotten here)."""
        idle = [
            address
            for address, last in self._last.items()
            if now - last > self.timeout and not has_role(address)
        ]
        for address in idle:
            del self._last[address]
        return idle
