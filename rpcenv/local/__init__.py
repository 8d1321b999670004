"""The in-process RpcEnv backend: same semantics as gRPC, no sockets.

For fast tests of Master, Worker and scheduler logic. Envs find each other in
a per-process registry by address; messages are still packed into `Any`, so a
message that works here works on the wire.
"""

from __future__ import annotations

import itertools
import threading
import uuid

from rpcenv._address import RpcAddress
from rpcenv._base import BaseRpcEnv
from rpcenv._conf import Conf
from rpcenv._errors import RpcAuthenticationError, RpcConnectionError
from rpcenv._security import resolve_secret
from sparkctl.v1 import rpc_pb2

__all__ = ["LocalRpcEnv", "create_env"]

_envs: dict[RpcAddress, LocalRpcEnv] = {}
_envs_lock = threading.Lock()
_ports = itertools.count(50_000)


class LocalRpcEnv(BaseRpcEnv):
    """An RpcEnv whose peers live in the same Python process."""

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        conf: Conf,
        client_mode: bool,
        advertise_host: str | None = None,
    ) -> None:
        # Nothing binds here: peers find the env under the host it advertises.
        host = advertise_host or host
        with _envs_lock:
            if client_mode:
                address = RpcAddress(host, 0, uuid.uuid4().hex)
            else:
                if port == 0:
                    port = next(_ports)
                    while RpcAddress(host, port) in _envs:
                        port = next(_ports)
                address = RpcAddress(host, port)
                if address in _envs:
                    raise OSError(f"address {address} is already in use by a local RpcEnv")
            super().__init__(name, address, conf)
            _envs[address] = self
        self._secret = resolve_secret(conf)
        self._peers: set[RpcAddress] = set()
        self._peers_lock = threading.Lock()

    def _connect(self, peer: LocalRpcEnv) -> None:
        with self._peers_lock:
            if peer.address in self._peers:
                return
            self._peers.add(peer.address)
        with peer._peers_lock:
            peer._peers.add(self.address)
        self._peer_connected(peer.address)
        peer._peer_connected(self.address)

    def _transmit(self, address: RpcAddress, envelope: rpc_pb2.Envelope) -> None:
        peer = _envs.get(address)
        if peer is None or peer._stopped.is_set():
            raise RpcConnectionError(f"cannot reach {address}: no running local RpcEnv there")
        if address not in self._peers:
            if peer._secret is not None and peer._secret != self._secret:
                raise RpcAuthenticationError(
                    f"{address} refused the connection: wrong shared secret"
                )
            self._connect(peer)
        peer._receive_envelopes(self.address, (envelope,), peer_id=self.env_id)

    def disconnect(self, address: RpcAddress, reason: str = "") -> bool:
        """Forget the peer on both sides; the next message between them connects again."""
        with self._peers_lock:
            if address not in self._peers:
                return False
            self._peers.discard(address)
        error = (
            RpcConnectionError(f"{self.address} closed the connection: {reason}")
            if reason
            else None
        )
        peer = _envs.get(address)
        if peer is not None:
            with peer._peers_lock:
                known = self.address in peer._peers
                peer._peers.discard(self.address)
            if known:
                peer._peer_disconnected(self.address, error)
        self._peer_disconnected(address, error)
        return True

    def _close_transport(self) -> None:
        with _envs_lock:
            if _envs.get(self.address) is self:
                del _envs[self.address]
        with self._peers_lock:
            peers = list(self._peers)
            self._peers.clear()
        for address in peers:
            peer = _envs.get(address)
            if peer is not None:
                with peer._peers_lock:
                    peer._peers.discard(self.address)
                peer._peer_disconnected(self.address)


def create_env(
    name: str,
    host: str,
    port: int,
    conf: Conf,
    client_mode: bool,
    advertise_host: str | None = None,
) -> LocalRpcEnv:
    """Backend factory for `spark.rpc.backend=local`."""
    return LocalRpcEnv(name, host, port, conf, client_mode, advertise_host=advertise_host)
