"""The RpcEnv interfaces: what Master, Worker, executor and driver code sees.

Nothing here knows about a transport. Backends (`rpcenv.grpc`, `rpcenv.local`
or a third party's) implement `RpcEnv` and `RpcEndpointRef`; endpoints are
plain subclasses of `RpcEndpoint`. This module must never import a backend.
"""

from __future__ import annotations

import abc
import concurrent.futures
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from rpcenv._address import RpcAddress

if TYPE_CHECKING:
    from google.protobuf.descriptor import ServiceDescriptor

    from rpcenv._conf import Conf
    from rpcenv._senders import SenderPolicy

__all__ = ["RpcCallContext", "RpcEndpoint", "RpcEndpointRef", "RpcEnv"]

log = logging.getLogger(__name__)


class RpcEndpointRef(abc.ABC):
    """A handle on an endpoint, local or remote, to send it messages."""

    @property
    @abc.abstractmethod
    def address(self) -> RpcAddress:
        """The address of the RpcEnv that hosts the endpoint."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The endpoint's name within its RpcEnv."""

    @abc.abstractmethod
    def send(self, message: Message) -> None:
        """Fire and forget; a message to a stopped endpoint is dropped and logged.

        Raises:
            RpcMessageTooLargeError: the message exceeds spark.rpc.message.maxSize.
        """

    @abc.abstractmethod
    def ask(
        self, message: Message, timeout: float | None = None
    ) -> concurrent.futures.Future[Message]:
        """Send a request; the future holds the reply or the error.

        The future fails with RpcTimeoutError after `timeout` seconds (default:
        spark.rpc.askTimeout, else spark.network.timeout). An ask is never retried.
        """

    def ask_sync(self, message: Message, timeout: float | None = None) -> Message:
        """`ask` and wait for the reply.

        Raises:
            RpcTimeoutError: no reply in time.
            RpcRemoteError: the endpoint raised; carries the remote traceback.
        """
        return self.ask(message, timeout).result()

    def __repr__(self) -> str:
        return f"RpcEndpointRef({self.name}@{self.address})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RpcEndpointRef):
            return NotImplemented
        return (self.address, self.name) == (other.address, other.name)

    def __hash__(self) -> int:
        return hash((self.address, self.name))


class RpcCallContext(abc.ABC):
    """How `receive_and_reply` answers exactly once, now or later from any thread."""

    @property
    @abc.abstractmethod
    def sender_address(self) -> RpcAddress:
        """The address of the env that asked."""

    @property
    @abc.abstractmethod
    def sender(self) -> RpcEndpointRef | None:
        """The asking endpoint, when the ask came from inside an endpoint."""

    @abc.abstractmethod
    def reply(self, message: Message) -> None:
        """Answer the ask with `message`."""

    @abc.abstractmethod
    def send_failure(self, error: BaseException) -> None:
        """Fail the ask; the caller raises with this error's type, text and traceback."""


class RpcEndpoint:
    """Base class of every endpoint: override the hooks you need.

    Messages for one endpoint are handled one at a time, in each sender's order,
    `on_start` first and `on_stop` last, so an endpoint's own state needs no lock.
    """

    _rpc_env: RpcEnv | None = None
    _self_ref: RpcEndpointRef | None = None
    #: Who may send which message (`rpcenv.SenderPolicy`), checked before `receive`
    #: and `receive_and_reply`; None (the default) lets every message through.
    sender_policy: SenderPolicy | None = None

    @property
    def rpc_env(self) -> RpcEnv:
        """The env this endpoint was set up in."""
        if self._rpc_env is None:
            raise RuntimeError(f"{type(self).__name__} is not set up in an RpcEnv yet")
        return self._rpc_env

    @property
    def self_ref(self) -> RpcEndpointRef:
        """A reference to this endpoint, to hand to others."""
        if self._self_ref is None:
            raise RuntimeError(f"{type(self).__name__} is not set up in an RpcEnv yet")
        return self._self_ref

    def on_start(self) -> None:
        """Called before any message."""

    def receive(self, message: Message, sender: RpcEndpointRef | None) -> None:
        """Handle a one-way message; `sender` is the sending endpoint, if any."""
        raise NotImplementedError(f"{type(self).__name__} does not handle {type(message).__name__}")

    def receives_inline(self, message: Message) -> bool:
        """Whether `receive(message)` may run on the transport's I/O thread itself.

        A one-way message from a peer is normally handed to the dispatcher's pool: a
        thread wake-up (~20-50 µs on a loaded machine), more than a small handler's
        own work. An endpoint returns True for messages it handles at once and never
        blocks on (no asks, no waits, no slow disk or user code); those reach it on the
        I/O thread while its inbox is idle, with the same ordering and sender checks.
        The default is False: every message goes through the pool.
        """
        return False

    def receive_and_reply(self, message: Message, context: RpcCallContext) -> None:
        """Handle an ask; answer through `context`."""
        raise NotImplementedError(
            f"{type(self).__name__} does not answer {message.DESCRIPTOR.full_name}"
        )

    def on_connected(self, address: RpcAddress) -> None:
        """A peer env connected to ours (or we to it)."""

    def on_disconnected(self, address: RpcAddress) -> None:
        """The connection to a peer env closed: it stopped, crashed or the network broke."""

    def on_network_error(self, error: BaseException, address: RpcAddress) -> None:
        """A connection to `address` failed."""

    def on_error(self, error: BaseException) -> None:
        """A hook raised; the endpoint keeps serving. Logs by default."""
        log.error("endpoint %s failed: %r", type(self).__name__, error, exc_info=error)

    def on_stop(self) -> None:
        """Called after the last message."""

    def stop(self) -> None:
        """Ask the env to stop this endpoint (after the message being handled)."""
        if self._rpc_env is not None and self._self_ref is not None:
            self._rpc_env.stop(self._self_ref)


class RpcEnv(abc.ABC):
    """A process's messaging runtime: hosts endpoints and reaches remote ones."""

    #: A random id of this env, new at every start: what its connections present as
    #: their `MessageOrigin.peer_id` ("" for a backend without one).
    env_id: str = ""
    #: Whether an inline handler (`RpcEndpoint.receives_inline`) may take a lock or do
    #: some work (tcp): its peer's later messages wait for it, and other peers wait at
    #: most a fraction of a second (the I/O loop is handed to another thread when one
    #: handler holds it longer: `rpcenv.tcp._loop`). False where one I/O loop serves
    #: every peer with no such hand-over (gRPC): there an inline handler must never wait.
    delivers_on_peer_threads: bool = False

    @staticmethod
    def create(
        name: str,
        host: str,
        port: int,
        conf: Mapping[str, str] | None = None,
        client_mode: bool = False,
        *,
        advertise_host: str | None = None,
    ) -> RpcEnv:
        """Create an env with the backend named by `spark.rpc.backend` (default grpc).

        Args:
            name: what the env is called in logs and hellos (e.g. "sparkMaster").
            host: the host to bind (and to advertise, unless `advertise_host` says).
            port: the port to listen on; 0 picks a free one.
            conf: settings (`spark.rpc.*`, `spark.authenticate.secret`, `spark.ssl.rpc.*`).
            client_mode: no listening port; peers answer over our connections.
            advertise_host: the host peers are told to reach us at, in `address` and
                in every hello, when it is not `host` (a driver bound to 0.0.0.0 by
                spark.driver.bindAddress, advertising spark.driver.host).

        Raises:
            RpcConfigError: unknown backend, bad value, an unsafe bind, or a backend
                whose factory cannot advertise a host other than the one it binds.
        """
        from rpcenv._conf import Conf
        from rpcenv._registry import create_with_backend
        from rpcenv.settings import RPC_BACKEND

        settings = conf if isinstance(conf, Conf) else Conf(conf or {})
        backend = settings.get(RPC_BACKEND)
        return create_with_backend(backend, name, host, port, settings, client_mode, advertise_host)

    @property
    @abc.abstractmethod
    def address(self) -> RpcAddress:
        """Where peers reach this env (port 0 for a client-mode env)."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The env's name."""

    @property
    @abc.abstractmethod
    def conf(self) -> Conf:
        """The env's settings."""

    @abc.abstractmethod
    def setup_endpoint(self, name: str, endpoint: RpcEndpoint) -> RpcEndpointRef:
        """Register `endpoint` under `name`; its `on_start` runs first.

        Raises:
            ValueError: the name is taken.
        """

    @abc.abstractmethod
    def endpoint_ref(
        self, address: RpcAddress | str, name: str | None = None, timeout: float | None = None
    ) -> RpcEndpointRef:
        """A ref to an existing endpoint, checked with one round trip.

        `address` may be a `spark://name@host:port` URI, which names the endpoint.

        Raises:
            RpcEndpointNotFoundError: no endpoint by that name there (at once).
            RpcConnectionError: the address cannot be reached.
        """

    def serve_service(self, service: ServiceDescriptor, implementation: object) -> None:
        """Serve a typed, language-neutral service (e.g. sparkctl.v1.MasterService) on our port.

        Each unary method is answered by the same-named method of `implementation`,
        called with the request message and returning the response message; an
        exception becomes a status code (see `rpcenv._errors`).

        Raises:
            RpcConfigError: this backend or mode cannot serve typed services.
        """
        from rpcenv._errors import RpcConfigError

        raise RpcConfigError(f"the {type(self).__name__} backend cannot serve {service.full_name}")

    def accept_app_credentials(self, app_id: str = "") -> None:  # noqa: B027 - optional
        """Let peers connect with an application's credential instead of the secret.

        Only for an env whose endpoints limit such peers to their application (they
        read `MessageOrigin.app_id`); with `app_id`, that application's credential
        only (a driver's env). A backend without authentication ignores it.
        """

    def disconnect(self, address: RpcAddress, reason: str = "") -> bool:
        """Close the connection with the peer env at `address`, if there is one.

        Both sides see `on_disconnected`; a later message to or from that peer
        connects again. How an endpoint rids itself of a peer that holds a
        connection open and says nothing (the Master's unregistered peers).
        `reason` reaches the peer's unanswered asks, when the backend can carry it.
        Returns False when there was no such connection, or the backend cannot
        drop one (this default).
        """
        del address, reason
        return False

    @abc.abstractmethod
    def stop(self, ref: RpcEndpointRef) -> None:
        """Stop a local endpoint: pending messages are handled, then `on_stop`."""

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop every endpoint, close every connection and the listening port."""

    @abc.abstractmethod
    def await_termination(self, timeout: float | None = None) -> bool:
        """Block until `shutdown` has finished; False if `timeout` passed first."""

    def __enter__(self) -> RpcEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
