"""Dispatcher and inboxes: one ordered mailbox per endpoint, a shared thread pool.

An inbox is processed by at most one thread at a time, so endpoint code needs no
locks; `on_start` is its first item and `on_stop` its last. One hand-off to the
pool drains everything queued by then. A transport may `hold` what it posts and
`release` once per turn of its I/O loop, so a burst of messages from many peers
costs one hand-off, not one per message (the cross-thread wake-up dominates the
cost of a small message). A one-way message an endpoint `receives_inline`
skips the pool: the I/O thread runs it, when nothing is queued before it. An endpoint's
`sender_policy` is checked before each message reaches its handler (see
`rpcenv._senders`). This module knows nothing of transports: backends hand it
decoded messages and say where each came from.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from google.protobuf.message import Message

from rpcenv._address import RpcAddress
from rpcenv._core import RpcCallContext, RpcEndpoint, RpcEndpointRef
from rpcenv._errors import (
    RpcEndpointNotFoundError,
    RpcEndpointStoppedError,
    RpcPermissionDeniedError,
)
from rpcenv._senders import MessageOrigin, SenderPolicy

if TYPE_CHECKING:
    pass

__all__ = ["Dispatcher", "RateLimitedWarning", "current_endpoint_ref", "current_origin"]

log = logging.getLogger(__name__)

_BATCH = 64
_local = threading.local()
#: Seconds between two "dropped ... endpoint" warnings (the rest are counted).
_DROP_LOG_INTERVAL = 1.0


class RateLimitedWarning:
    """A warning logged at most once per interval; the others are counted.

    A stopped master still hears every worker's heartbeat (and its endpoint may
    still answer a backlog): one line per message would flood its log, and slow
    its shutdown, at thousands a second.
    """

    def __init__(self, logger: logging.Logger, interval: float = _DROP_LOG_INTERVAL) -> None:
        self._logger = logger
        self._interval = interval
        self._lock = threading.Lock()
        self._next = 0.0
        self._unlogged = 0

    def warn(self, text: str, *args: object) -> None:
        """`log.warning(text, *args)`, or count it when one was logged within the interval."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._unlogged += 1
                return
            unlogged, self._unlogged = self._unlogged, 0
            self._next = now + self._interval
        if unlogged:
            text += f" ({unlogged} more like it since the last report)"
        self._logger.warning(text, *args)


class _DropLog(RateLimitedWarning):
    """Messages dropped for want of an endpoint."""

    def dropped(self, what: str, name: str, why: str) -> None:
        self.warn("dropped %s sent to %s endpoint %r", what, why, name)


_drops = _DropLog(log)


def current_endpoint_ref() -> RpcEndpointRef | None:
    """The endpoint whose hook this thread is running, if any (the implicit sender)."""
    return getattr(_local, "ref", None)


def current_origin() -> MessageOrigin | None:
    """Where the message being handled on this thread came from (None outside a handler)."""
    return getattr(_local, "origin", None)


class _Item:
    """One inbox entry: a hook call."""

    __slots__ = ("args", "kind")

    def __init__(self, kind: str, args: tuple[object, ...]) -> None:
        self.kind = kind
        self.args = args


class Inbox:
    """The ordered mailbox of one endpoint."""

    def __init__(
        self,
        name: str,
        endpoint: RpcEndpoint,
        ref: RpcEndpointRef,
        pool: concurrent.futures.ThreadPoolExecutor,
        on_stopped: Callable[[Inbox], None],
        on_held: Callable[[Inbox], None],
    ) -> None:
        self.name = name
        self.endpoint = endpoint
        self.ref = ref
        self._pool = pool
        self._on_stopped = on_stopped
        self._on_held = on_held
        self._items: collections.deque[_Item] = collections.deque([_Item("start", ())])
        self._lock = threading.Lock()
        self._scheduled = False
        self._held = False
        self._stopping = False
        self.stopped = threading.Event()
        self._no_senders: SenderPolicy | None = None

    def start(self) -> None:
        """Schedule `on_start`."""
        with self._lock:
            self._schedule()

    def post(self, item: _Item, hold: bool = False) -> bool:
        """Queue `item`; False when the endpoint is stopping or stopped.

        With `hold`, an idle inbox is not handed to the pool now but at the
        dispatcher's next `release` (the item's place in the order is kept); and a
        one-way message the endpoint `receives_inline` is handled on this thread
        (the transport's I/O thread) when nothing is queued before it.
        """
        inline = hold and item.kind == "send" and self._receives_inline(item)
        with self._lock:
            if self._stopping:
                return False
            if inline and not (self._scheduled or self._held or self._items):
                self._scheduled = True  # ours until it ran: later items queue behind it
            else:
                inline = False
                self._items.append(item)
                if not hold:
                    self._schedule()
                    return True
                if self._scheduled or self._held:
                    return True
                self._held = True
        if inline:
            self._run_inline(item)
        else:
            self._on_held(self)
        return True

    def _receives_inline(self, item: _Item) -> bool:
        message = item.args[0]
        assert isinstance(message, Message)
        try:
            return self.endpoint.receives_inline(message)
        except Exception:  # a faulty predicate must not lose the message: use the pool
            log.exception("receives_inline of endpoint %s raised", self.name)
            return False

    def _run_inline(self, item: _Item) -> None:
        """Handle `item` on this thread (the inbox was idle and is marked scheduled)."""
        previous = getattr(_local, "ref", None)
        _local.ref = self.ref
        try:
            if self.stopped.is_set():
                _reject(item, self.name)
            else:
                self._run(item)
        finally:
            _local.ref = previous
            with self._lock:
                self._scheduled = False
                if self._items:  # queued behind it meanwhile: the pool takes them, in order
                    self._schedule()

    def release(self) -> None:
        """Hand a held inbox to the pool (a no-op when it is already there)."""
        with self._lock:
            self._held = False
            if self._items:
                self._schedule()

    def post_many(self, items: list[_Item]) -> bool:
        """Queue several items with one wake-up."""
        with self._lock:
            if self._stopping:
                return False
            self._items.extend(items)
            self._schedule()
            return True

    def request_stop(self) -> None:
        """Queue `on_stop` after everything already queued."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._items.append(_Item("stop", ()))
            self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            try:
                self._pool.submit(self._process)
            except RuntimeError:  # pool shut down: run the rest inline
                self._scheduled = False
                threading.Thread(target=self._process, daemon=True).start()

    def _process(self) -> None:
        _local.ref = self.ref
        try:
            while True:
                with self._lock:
                    if not self._items:
                        self._scheduled = False
                        return
                    count = min(len(self._items), _BATCH)
                    batch = [self._items.popleft() for _ in range(count)]
                for item in batch:
                    if self.stopped.is_set():
                        _reject(item, self.name)
                        continue
                    self._run(item)
        finally:
            _local.ref = None

    def _run(self, item: _Item) -> None:
        endpoint = self.endpoint
        try:
            kind = item.kind
            if kind == "send":
                message, sender, origin = item.args
                assert isinstance(message, Message) and isinstance(origin, MessageOrigin)
                if not self._permitted(message, origin, None):
                    return
                _local.origin = origin
                try:
                    endpoint.receive(message, sender)  # type: ignore[arg-type]
                finally:
                    _local.origin = None
            elif kind == "ask":
                message, context, origin = item.args
                assert isinstance(context, RpcCallContext)
                assert isinstance(message, Message) and isinstance(origin, MessageOrigin)
                if not self._permitted(message, origin, context):
                    return
                _local.origin = origin
                try:
                    endpoint.receive_and_reply(message, context)
                except BaseException as exc:
                    context.send_failure(exc)
                    raise
                finally:
                    _local.origin = None
            elif kind == "start":
                endpoint.on_start()
            elif kind == "connected":
                endpoint.on_connected(item.args[0])  # type: ignore[arg-type]
            elif kind == "disconnected":
                endpoint.on_disconnected(item.args[0])  # type: ignore[arg-type]
            elif kind == "network_error":
                endpoint.on_network_error(item.args[0], item.args[1])  # type: ignore[arg-type]
            elif kind == "stop":
                try:
                    endpoint.on_stop()
                finally:
                    self.stopped.set()
                    self._on_stopped(self)
        except Exception as exc:
            try:
                endpoint.on_error(exc)
            except Exception:
                log.exception("on_error of endpoint %s raised", self.name)

    @property
    def _closed_to_apps(self) -> SenderPolicy:
        """The policy of an endpoint that declares none, for application callers: none."""
        if self._no_senders is None:
            self._no_senders = SenderPolicy({}, f"endpoint {self.name!r} (no declared senders)")
        return self._no_senders

    def _permitted(
        self, message: Message, origin: MessageOrigin, context: RpcCallContext | None
    ) -> bool:
        """Apply the endpoint's sender policy: refuse (drop, or fail the ask) and log."""
        policy = self.endpoint.sender_policy
        if policy is None:
            if not origin.app_id:
                return True
            # A caller limited to one application reaches only endpoints that say
            # what it may send: one that declares nothing declares nothing for it.
            policy = self._closed_to_apps
        if policy.allows(self.endpoint, message, origin):
            return True
        policy.log_refusal(message, origin)
        if context is not None:
            context.send_failure(RpcPermissionDeniedError(policy.refusal(message, origin)))
        return False


def _reject(item: _Item, name: str) -> None:
    if item.kind == "ask":
        context = item.args[1]
        assert isinstance(context, RpcCallContext)
        context.send_failure(RpcEndpointStoppedError(f"endpoint {name!r} was stopped"))
    elif item.kind == "send":
        _drops.dropped(_type_name(item.args[0]), name, "stopped")


def _remote_origin(address: RpcAddress | None, sender: RpcEndpointRef | None) -> MessageOrigin:
    """The most a caller that did not say where a message came from gets: remote."""
    return MessageOrigin(
        address if address is not None else RpcAddress("", 0),
        local=False,
        sender_name=sender.name if sender is not None else "",
    )


def _type_name(message: object) -> str:
    return message.DESCRIPTOR.full_name if isinstance(message, Message) else type(message).__name__


class Dispatcher:
    """Routes decoded messages to inboxes by endpoint name."""

    def __init__(self, env_name: str, threads: int) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix=f"{env_name}-dispatcher"
        )
        self._inboxes: dict[str, Inbox] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._all_stopped = threading.Event()
        self._all_stopped.set()
        self._held: list[Inbox] = []
        self._held_lock = threading.Lock()

    def register(self, name: str, endpoint: RpcEndpoint, ref: RpcEndpointRef) -> None:
        """Add an inbox and schedule its `on_start`.

        Raises:
            ValueError: the name is taken.
            RpcEndpointStoppedError: the env is shutting down.
        """
        with self._lock:
            if self._closed:
                raise RpcEndpointStoppedError(f"cannot set up {name!r}: the RpcEnv is stopped")
            if name in self._inboxes:
                raise ValueError(f"an endpoint named {name!r} is already registered")
            inbox = Inbox(name, endpoint, ref, self._pool, self._forget, self._hold)
            self._inboxes[name] = inbox
            self._all_stopped.clear()
        inbox.start()

    def _forget(self, inbox: Inbox) -> None:
        with self._lock:
            if self._inboxes.get(inbox.name) is inbox:
                del self._inboxes[inbox.name]
            if not self._inboxes:
                self._all_stopped.set()

    def _hold(self, inbox: Inbox) -> None:
        with self._held_lock:
            self._held.append(inbox)

    def release(self) -> None:
        """Hand every inbox held since the last call to the pool: one hand-off each."""
        with self._held_lock:
            held, self._held = self._held, []
        for inbox in held:
            inbox.release()

    def has(self, name: str) -> bool:
        """True when an endpoint of that name is registered and not stopping."""
        with self._lock:
            return name in self._inboxes

    def post_send(
        self,
        name: str,
        message: Message,
        sender: RpcEndpointRef | None,
        origin: MessageOrigin | None = None,
        hold: bool = False,
    ) -> None:
        """Deliver a one-way message; dropped and logged when there is no such endpoint.

        `origin` (where the transport got it) is what the sender policy judges; without
        it the message counts as remote from the sender's address, or from nowhere.
        With `hold`, the caller promises a `release` soon (see `Inbox.post`).
        """
        if origin is None:
            origin = _remote_origin(sender.address if sender is not None else None, sender)
        inbox = self._inboxes.get(name)
        if inbox is None or not inbox.post(_Item("send", (message, sender, origin)), hold):
            _drops.dropped(_type_name(message), name, "unknown or stopped")

    def post_ask(
        self,
        name: str,
        message: Message,
        context: RpcCallContext,
        origin: MessageOrigin | None = None,
        hold: bool = False,
    ) -> None:
        """Deliver an ask; fail it at once when there is no such endpoint."""
        if origin is None:
            origin = _remote_origin(context.sender_address, context.sender)
        inbox = self._inboxes.get(name)
        if inbox is None:
            context.send_failure(RpcEndpointNotFoundError(f"no endpoint named {name!r}"))
        elif not inbox.post(_Item("ask", (message, context, origin)), hold):
            context.send_failure(RpcEndpointStoppedError(f"endpoint {name!r} was stopped"))

    def post_to_all(self, kind: str, *args: object) -> None:
        """Tell every endpoint about a connection event."""
        with self._lock:
            inboxes = list(self._inboxes.values())
        for inbox in inboxes:
            inbox.post(_Item(kind, args))

    def connected(self, address: RpcAddress) -> None:
        """A peer connected."""
        self.post_to_all("connected", address)

    def disconnected(self, address: RpcAddress) -> None:
        """A peer went away."""
        self.post_to_all("disconnected", address)

    def stop_endpoint(self, name: str) -> None:
        """Queue `on_stop` for one endpoint."""
        inbox = self._inboxes.get(name)
        if inbox is not None:
            inbox.request_stop()

    def close(self, timeout: float) -> None:
        """Stop every endpoint, wait for their `on_stop`, then end the threads."""
        with self._lock:
            self._closed = True
            inboxes = list(self._inboxes.values())
        for inbox in inboxes:
            inbox.request_stop()
        if not self._all_stopped.wait(timeout):
            log.warning("endpoints still stopping after %.0fs: %s", timeout, list(self._inboxes))
        self._pool.shutdown(wait=False, cancel_futures=False)
