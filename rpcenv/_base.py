"""What every backend shares: envelopes, asks and their deadlines, routing.

A backend subclasses `BaseRpcEnv` and implements only the transport:
`_transmit` (queue an envelope for a peer), `_close_transport`, and calls
`_receive_envelopes`, `_peer_connected`, `_peer_disconnected` and
`_transmit_failed` when things arrive or break. Nothing here opens a socket.
"""

from __future__ import annotations

import abc
import concurrent.futures
import itertools
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from google.protobuf.message import Message

from rpcenv import settings
from rpcenv._address import RpcAddress, parse_endpoint_uri
from rpcenv._codec import decode_error, encode_error, pack, unpack
from rpcenv._conf import Conf
from rpcenv._core import RpcCallContext, RpcEndpoint, RpcEndpointRef, RpcEnv
from rpcenv._dispatcher import Dispatcher, RateLimitedWarning, current_endpoint_ref
from rpcenv._errors import (
    RpcConnectionError,
    RpcEndpointNotFoundError,
    RpcEndpointStoppedError,
    RpcError,
    RpcMessageTooLargeError,
    RpcProtocolError,
    RpcTimeoutError,
)
from rpcenv._security import current_caller_app
from rpcenv._senders import MessageOrigin
from rpcenv._timeouts import DeadlineWheel
from sparkctl.v1 import rpc_pb2

__all__ = ["VERIFIER_NAME", "BaseEndpointRef", "BaseRpcEnv", "close_peer_connection"]

#: The largest spark.rpc.message.maxSize, as Spark's (2047 MiB): with the framing
#: overhead it still fits gRPC's int32 message sizes.

log = logging.getLogger(__name__)

#: Built-in endpoint name answering "does endpoint X exist here?".
VERIFIER_NAME = "endpoint-verifier"

SEND = rpc_pb2.ENVELOPE_KIND_SEND
ASK = rpc_pb2.ENVELOPE_KIND_ASK
REPLY = rpc_pb2.ENVELOPE_KIND_REPLY
FAILURE = rpc_pb2.ENVELOPE_KIND_FAILURE


class BaseEndpointRef(RpcEndpointRef):
    """A ref whose sends go through the env that made it."""

    __slots__ = ("_address", "_env", "_name")

    def __init__(self, env: BaseRpcEnv, address: RpcAddress, name: str) -> None:
        self._env = env
        self._address = address
        self._name = name

    @property
    def address(self) -> RpcAddress:
        return self._address

    @property
    def name(self) -> str:
        return self._name

    def send(self, message: Message) -> None:
        self._env._send(self, message)

    def ask(
        self, message: Message, timeout: float | None = None
    ) -> concurrent.futures.Future[Message]:
        return self._env._ask(self, message, timeout)

    def ask_sync(self, message: Message, timeout: float | None = None) -> Message:
        self._env._check_may_block("ask_sync")
        future = self._env._ask(self, message, timeout)
        limit = self._env._effective_timeout(timeout)
        try:
            return future.result(timeout=limit + 5.0)
        except concurrent.futures.TimeoutError:  # the deadline thread is late
            raise self._env._timeout_error(self, message.DESCRIPTOR.full_name, limit) from None


class _CallContext(RpcCallContext):
    __slots__ = ("_done", "_env", "_peer", "_request_id", "_sender_name")

    def __init__(
        self, env: BaseRpcEnv, peer: RpcAddress, request_id: int, sender_name: str
    ) -> None:
        self._env = env
        self._peer = peer
        self._request_id = request_id
        self._sender_name = sender_name
        self._done = threading.Lock()

    @property
    def sender_address(self) -> RpcAddress:
        return self._peer

    @property
    def sender(self) -> RpcEndpointRef | None:
        if not self._sender_name:
            return None
        return BaseEndpointRef(self._env, self._peer, self._sender_name)

    def reply(self, message: Message) -> None:
        if not self._done.acquire(blocking=False):
            raise RuntimeError("this ask was already answered")
        envelope = rpc_pb2.Envelope(kind=REPLY, request_id=self._request_id)
        try:
            pack(message, self._env._max_message_bytes, envelope.payload)
        except (RpcMessageTooLargeError, TypeError) as exc:
            envelope = rpc_pb2.Envelope(kind=FAILURE, request_id=self._request_id)
            encode_error(exc, envelope.error)
        self._env._route(self._peer, envelope)

    def send_failure(self, error: BaseException) -> None:
        if not self._done.acquire(blocking=False):
            log.debug("ignoring failure after reply: %r", error)
            return
        envelope = rpc_pb2.Envelope(kind=FAILURE, request_id=self._request_id)
        encode_error(error, envelope.error)
        self._env._route(self._peer, envelope)


class _Pending:
    __slots__ = ("address", "endpoint", "future", "message_type", "timeout")

    def __init__(
        self,
        future: concurrent.futures.Future[Message],
        address: RpcAddress,
        endpoint: str,
        message_type: str,
        timeout: float,
    ) -> None:
        self.future = future
        self.address = address
        self.endpoint = endpoint
        self.message_type = message_type
        self.timeout = timeout


class BaseRpcEnv(RpcEnv):
    """The backend-independent half of an RpcEnv."""

    def __init__(self, name: str, address: RpcAddress, conf: Conf) -> None:
        self._name = name
        self._address = address
        self._conf = conf
        self.env_id = address.client_id or uuid.uuid4().hex
        # At most 2047 MiB (the entry's bound), as Spark's limit: gRPC's sizes are int32,
        # and a larger one failed every dial.
        self._max_message_bytes = conf.get(settings.MAX_MESSAGE_SIZE)
        self._ask_timeout = conf.get(settings.ASK_TIMEOUT)
        threads = conf.get(settings.DISPATCHER_THREADS) or max(8, (os.cpu_count() or 2) * 2)
        self._dispatcher = Dispatcher(name, threads)
        self._request_ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._deadlines = DeadlineWheel(self._expire, name)
        self._sender_refs: dict[tuple[RpcAddress, str], RpcEndpointRef] = {}
        self._stopped = threading.Event()
        self._terminated = threading.Event()
        self._shutdown_lock = threading.Lock()

    # -- RpcEnv ------------------------------------------------------------------

    @property
    def address(self) -> RpcAddress:
        return self._address

    @property
    def name(self) -> str:
        return self._name

    @property
    def conf(self) -> Conf:
        return self._conf

    def setup_endpoint(self, name: str, endpoint: RpcEndpoint) -> RpcEndpointRef:
        if not name or name == VERIFIER_NAME:
            raise ValueError(f"bad endpoint name {name!r}")
        if not isinstance(endpoint, RpcEndpoint):
            raise TypeError(f"{type(endpoint).__name__} is not an RpcEndpoint")
        ref = BaseEndpointRef(self, self._address, name)
        endpoint._rpc_env = self
        endpoint._self_ref = ref
        self._dispatcher.register(name, endpoint, ref)
        return ref

    def endpoint_ref(
        self, address: RpcAddress | str, name: str | None = None, timeout: float | None = None
    ) -> RpcEndpointRef:
        if isinstance(address, str):
            uri_name, address = parse_endpoint_uri(address)
            name = name or uri_name
        if not name:
            raise ValueError("endpoint_ref needs a name: pass name= or use spark://name@host:port")
        if address == self._address:
            if not self._dispatcher.has(name):
                raise RpcEndpointNotFoundError(f"no endpoint named {name!r} at {address}")
            return BaseEndpointRef(self, address, name)
        verifier = BaseEndpointRef(self, address, VERIFIER_NAME)
        lookup_timeout = timeout if timeout is not None else self._ask_timeout
        answer = verifier.ask_sync(rpc_pb2.CheckEndpointRequest(name=name), lookup_timeout)
        assert isinstance(answer, rpc_pb2.CheckEndpointResponse)
        if not answer.exists:
            raise RpcEndpointNotFoundError(f"no endpoint named {name!r} at {address}")
        return BaseEndpointRef(self, address, name)

    def stop(self, ref: RpcEndpointRef) -> None:
        if ref.address != self._address:
            raise ValueError(f"{ref} is not an endpoint of this env ({self._address})")
        self._dispatcher.stop_endpoint(ref.name)

    def shutdown(self) -> None:
        with self._shutdown_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        try:
            self._dispatcher.close(timeout=10.0)
            self._fail_all(RpcEndpointStoppedError(f"RpcEnv {self._name!r} was shut down"))
            self._close_transport()
        finally:
            self._deadlines.stop()
            self._terminated.set()

    def await_termination(self, timeout: float | None = None) -> bool:
        return self._terminated.wait(timeout)

    # -- transport hooks ---------------------------------------------------------

    @abc.abstractmethod
    def _transmit(self, address: RpcAddress, envelope: rpc_pb2.Envelope) -> None:
        """Queue `envelope` for the env at `address`.

        Raises:
            RpcConnectionError: no way to reach `address` (e.g. a client that left).
        """

    @abc.abstractmethod
    def _close_transport(self) -> None:
        """Close every connection and the listening port."""

    def _check_may_block(self, what: str) -> None:
        """Raise if this thread must never wait (a backend's I/O thread): it would deadlock.

        Raises:
            RuntimeError: naming `what` and the way out.
        """

    def _receive_envelopes(
        self,
        peer: RpcAddress,
        envelopes: Iterable[rpc_pb2.Envelope],
        local: bool = False,
        peer_id: str = "",
        hold: bool = False,
        app_id: str = "",
        messages: Sequence[Message | RpcProtocolError | None] | None = None,
    ) -> None:
        """Handle envelopes that arrived from `peer`, in order.

        `local` is True only for what this env routed to itself (`_route`): a backend
        passes envelopes from a connection with the default, so no peer can claim it.
        `peer_id` is the env id the connection's peer gave, when the backend knows it.
        With `hold`, the backend calls `self._dispatcher.release()` soon after (once
        per turn of its I/O loop), so many messages share one hand-off to the pool.
        `app_id` is the application the connection authenticated as ("" for the
        secret's holders). `messages`, when given, holds each envelope's payload
        already unpacked (off the I/O thread), or the error that raised, or None.
        """
        dispatcher = self._dispatcher
        for index, envelope in enumerate(envelopes):
            kind = envelope.kind
            given = None if messages is None else messages[index]
            try:
                if kind == SEND:
                    message = unpack(envelope.payload) if given is None else _given(given)
                    origin = MessageOrigin(peer, local, envelope.sender, peer_id, app_id)
                    dispatcher.post_send(
                        envelope.receiver,
                        message,
                        self._sender(peer, envelope.sender),
                        origin,
                        hold,
                    )
                elif kind == ASK:
                    context = _CallContext(self, peer, envelope.request_id, envelope.sender)
                    try:
                        message = unpack(envelope.payload) if given is None else _given(given)
                    except RpcProtocolError as exc:
                        context.send_failure(exc)
                        continue
                    if envelope.receiver == VERIFIER_NAME:
                        self._verify(message, context)
                    else:
                        origin = MessageOrigin(peer, local, envelope.sender, peer_id, app_id)
                        dispatcher.post_ask(envelope.receiver, message, context, origin, hold)
                elif kind in (REPLY, FAILURE):
                    self._complete(envelope, given)
                else:
                    log.warning("ignoring envelope of unknown kind %d from %s", kind, peer)
            except RpcProtocolError as exc:
                log.warning("dropped a message from %s: %s", peer, exc)

    def _peer_connected(self, peer: RpcAddress) -> None:
        self._dispatcher.connected(peer)

    def _peer_disconnected(
        self, peer: RpcAddress, error: RpcError | None = None, notify: bool = True
    ) -> None:
        """The connection to `peer` is gone: fail its unanswered asks, tell the endpoints."""
        if notify:
            self._dispatcher.disconnected(peer)
        with self._pending_lock:
            lost = [rid for rid, p in self._pending.items() if p.address == peer]

        def lost_error(pending: _Pending) -> RpcError:
            if error is not None:
                return error
            return RpcConnectionError(
                f"connection to {peer} closed before endpoint {pending.endpoint!r} answered "
                f"{pending.message_type}"
            )

        for rid in lost:
            self._fail(rid, lost_error)

    def _transmit_failed(
        self, peer: RpcAddress, queued: Iterable[tuple[int, int]], error: RpcError
    ) -> None:
        """Fail the asks among `queued` (kind, request id), never delivered to `peer`."""
        dropped = 0
        for kind, request_id in queued:
            if kind == ASK:
                self._fail(request_id, lambda _p: error)
            else:
                dropped += 1
        if dropped:
            log.warning("dropped %d message(s) to %s: %s", dropped, peer, error)
        self._dispatcher.post_to_all("network_error", error, peer)

    # -- internals ---------------------------------------------------------------

    def _sender(self, peer: RpcAddress, name: str) -> RpcEndpointRef | None:
        if not name:
            return None
        key = (peer, name)
        ref = self._sender_refs.get(key)
        if ref is None:
            if len(self._sender_refs) > 10_000:
                self._sender_refs.clear()
            ref = self._sender_refs[key] = BaseEndpointRef(self, peer, name)
        return ref

    def _verify(self, message: Message, context: _CallContext) -> None:
        if not isinstance(message, rpc_pb2.CheckEndpointRequest):
            context.send_failure(
                RpcProtocolError("the endpoint verifier takes CheckEndpointRequest")
            )
            return
        context.reply(rpc_pb2.CheckEndpointResponse(exists=self._dispatcher.has(message.name)))

    def _effective_timeout(self, timeout: float | None) -> float:
        return self._ask_timeout if timeout is None else timeout

    def _sender_name(self) -> str:
        current = current_endpoint_ref()
        if current is not None and current.address == self._address:
            return current.name
        return ""

    def _send(self, ref: RpcEndpointRef, message: Message) -> None:
        envelope = rpc_pb2.Envelope(kind=SEND, receiver=ref.name, sender=self._sender_name())
        pack(message, self._max_message_bytes, envelope.payload)
        if self._stopped.is_set():
            _stopped_drops.warn(
                "dropped %s to %s: RpcEnv %r is stopped",
                message.DESCRIPTOR.full_name,
                ref,
                self._name,
            )
            return
        try:
            self._route(ref.address, envelope)
        except RpcError as exc:
            log.warning("dropped %s to %s: %s", message.DESCRIPTOR.full_name, ref, exc)

    def _ask(
        self, ref: RpcEndpointRef, message: Message, timeout: float | None
    ) -> concurrent.futures.Future[Message]:
        limit = self._effective_timeout(timeout)
        request_id = next(self._request_ids)
        envelope = rpc_pb2.Envelope(
            kind=ASK, receiver=ref.name, sender=self._sender_name(), request_id=request_id
        )
        pack(message, self._max_message_bytes, envelope.payload)
        future: concurrent.futures.Future[Message] = concurrent.futures.Future()
        if self._stopped.is_set():
            future.set_exception(RpcEndpointStoppedError(f"RpcEnv {self._name!r} is stopped"))
            return future
        type_name = message.DESCRIPTOR.full_name
        with self._pending_lock:
            self._pending[request_id] = _Pending(future, ref.address, ref.name, type_name, limit)
        self._deadlines.add(request_id, limit)
        try:
            self._route(ref.address, envelope)
        except RpcError as exc:
            failure: RpcError = exc
            self._fail(request_id, lambda _p: failure)
        return future

    def _route(self, address: RpcAddress, envelope: rpc_pb2.Envelope) -> None:
        if address == self._address:
            # A public call's handler forwarding to an endpoint keeps its caller's limits.
            self._receive_envelopes(
                address,
                (envelope,),
                local=True,
                peer_id=self.env_id,
                app_id=current_caller_app.get(),
            )
        else:
            self._transmit(address, envelope)

    def _complete(
        self, envelope: rpc_pb2.Envelope, given: Message | RpcProtocolError | None = None
    ) -> None:
        with self._pending_lock:
            pending = self._pending.pop(envelope.request_id, None)
        if pending is None:
            return  # late answer after a timeout
        self._deadlines.cancel(envelope.request_id)
        if envelope.kind == REPLY:
            try:
                pending.future.set_result(
                    unpack(envelope.payload) if given is None else _given(given)
                )
            except RpcProtocolError as exc:
                pending.future.set_exception(exc)
        else:
            pending.future.set_exception(decode_error(envelope.error))

    def _fail(self, request_id: int, make_error: Callable[[_Pending], BaseException]) -> None:
        with self._pending_lock:
            pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        self._deadlines.cancel(request_id)
        if not pending.future.done():
            pending.future.set_exception(make_error(pending))

    def _fail_all(self, error: RpcError) -> None:
        with self._pending_lock:
            pending = list(self._pending.values())
            self._pending.clear()
        for item in pending:
            if not item.future.done():
                item.future.set_exception(error)

    def _timeout_error(
        self, ref: RpcEndpointRef, message_type: str, timeout: float
    ) -> RpcTimeoutError:
        return RpcTimeoutError(
            f"ask of {message_type} to endpoint {ref.name!r} at {ref.address} timed out after "
            f"{timeout:g}s (set by spark.rpc.askTimeout)"
        )

    def _expire(self, request_id: int) -> None:
        with self._pending_lock:
            pending = self._pending.pop(request_id, None)
        if pending is None or pending.future.done():
            return
        pending.future.set_exception(
            RpcTimeoutError(
                f"ask of {pending.message_type} to endpoint {pending.endpoint!r} at "
                f"{pending.address} timed out after {pending.timeout:g}s "
                "(set by spark.rpc.askTimeout)"
            )
        )


#: Sends after shutdown: an endpoint draining its backlog may make thousands.
_stopped_drops = RateLimitedWarning(log)


def _given(message: Message | RpcProtocolError) -> Message:
    """A message a transport unpacked ahead; the error it met, raised here."""
    if isinstance(message, RpcProtocolError):
        raise message
    return message


class _ClosableConnection(Protocol):
    def close(self, error: RpcError | None) -> None: ...


def close_peer_connection(
    own_address: RpcAddress,
    connections: Mapping[RpcAddress, _ClosableConnection],
    lock: threading.Lock,
    address: RpcAddress,
    reason: str,
) -> bool:
    """`RpcEnv.disconnect` for a backend that keeps one connection per peer address.

    Closes it with an error naming `reason` (none: a plain close); False when there
    is no connection with `address`.
    """
    with lock:
        connection = connections.get(address)
    if connection is None:
        return False
    error = RpcConnectionError(f"{own_address} closed the connection: {reason}") if reason else None
    connection.close(error)
    return True
