"""Who may send what: an endpoint's declared senders, checked before its handler runs.

An endpoint sets `sender_policy` to a `SenderPolicy`: for each message type it
handles, a rule that says whether a message came from a peer allowed to send
it. The dispatcher asks the policy on the endpoint's own thread (so a rule may
read the endpoint's records without a lock) before `receive` or
`receive_and_reply`. A refused send is dropped and logged with the peer's
address (rate-limited); a refused ask fails with `RpcPermissionDeniedError`
(PERMISSION_DENIED). A message type the policy does not declare is refused too:
a new handler must say who may call it.

The origin a rule sees comes from the transport, never from the message: a
message is `local` only when this process's own env posted it (a timer, a
helper thread, another endpoint here), which no peer can claim over a
connection. This module knows nothing of Workers or applications; rules that
need such knowledge are callables the endpoint supplies.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from google.protobuf.message import Message

from rpcenv._address import RpcAddress

__all__ = ["ANYONE", "LOCAL_ONLY", "MessageOrigin", "SenderPolicy", "SenderRule"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class MessageOrigin:
    """Where a message came from, as the transport saw it.

    Attributes:
        address: the peer env's address (this env's own for a local message).
        local: posted by this process's own env, not received over a connection.
        sender_name: the sending endpoint's name, "" when sent from outside one.
        peer_id: the env id the connection's peer gave when it connected ("" when the
            backend does not know it). Unlike a server-mode address, which any peer
            may claim, it is a random id its owner never shows, so a record can be
            bound to the connection that created it.
        app_id: the application the caller authenticated as, with that application's
            credential instead of the shared secret: it may act on that application
            only. "" for the secret's holders (and when there is no secret).
    """

    address: RpcAddress
    local: bool
    sender_name: str = ""
    peer_id: str = ""
    app_id: str = ""


#: A rule: (endpoint, message, origin) -> may this origin send this message?
SenderRule = Callable[[Any, Message, MessageOrigin], bool]


def LOCAL_ONLY(_endpoint: object, _message: Message, origin: MessageOrigin) -> bool:
    """Timers, leadership notices, helper threads: only this process may post them."""
    return origin.local


def ANYONE(_endpoint: object, _message: Message, _origin: MessageOrigin) -> bool:
    """Anyone who could connect (and so proved the shared secret, when there is one)."""
    return True


class SenderPolicy:
    """A table of message type -> rule; types it does not name are refused.

    Args:
        rules: the rule of each message type the endpoint handles.
        name: the endpoint's name, for logs.
        log_interval: at most one refusal line per (type, peer) this often, in seconds.
        app_rules: what a caller holding an application's credential instead of the
            secret (`MessageOrigin.app_id`) may send: a type named here must pass
            both its rule here and its rule in `rules`; any other type is refused to
            such a caller, even one posted by this process for it.
    """

    def __init__(
        self,
        rules: Mapping[type[Message], SenderRule],
        name: str,
        log_interval: float = 10.0,
        app_rules: Mapping[type[Message], SenderRule] | None = None,
    ) -> None:
        self._rules = dict(rules)
        self._app_rules = dict(app_rules or {})
        if not self._app_rules.keys() <= self._rules.keys():
            raise ValueError(f"{name}: app_rules name types that rules do not handle")
        self.name = name
        self._log_interval = log_interval
        self._logged: dict[tuple[str, RpcAddress], tuple[float, int]] = {}
        self._lock = threading.Lock()

    @property
    def message_types(self) -> frozenset[type[Message]]:
        """Every message type the policy declares."""
        return frozenset(self._rules)

    def rule(self, message_type: type[Message]) -> SenderRule | None:
        """The rule declared for `message_type`, if any."""
        return self._rules.get(message_type)

    def app_rule(self, message_type: type[Message]) -> SenderRule | None:
        """The extra rule for a caller with an application's credential, if it may send it."""
        return self._app_rules.get(message_type)

    def allows(self, endpoint: object, message: Message, origin: MessageOrigin) -> bool:
        """Whether `origin` may send `message` to `endpoint`; a rule that raises refuses."""
        rule = self._rules.get(type(message))
        if rule is None:
            return False
        app_rule = self._app_rules.get(type(message)) if origin.app_id else None
        if origin.app_id and app_rule is None:
            return False
        try:
            if app_rule is not None and not app_rule(endpoint, message, origin):
                return False
            return bool(rule(endpoint, message, origin))
        except Exception:
            log.exception("sender rule of %s for %s raised", self.name, _type_name(message))
            return False

    def refusal(self, message: Message, origin: MessageOrigin) -> str:
        """Why a message was refused, for the caller and the log (never its content)."""
        kind = _type_name(message)
        if type(message) not in self._rules:
            return f"{self.name} takes no {kind}"
        where = "this process" if origin.local else str(origin.address)
        if origin.app_id:
            return (
                f"{self.name} refused {kind} from {where}: the credential of application "
                f"{origin.app_id} does not allow it"
            )
        return f"{self.name} refused {kind} from {where}: that peer may not send it"

    def log_refusal(self, message: Message, origin: MessageOrigin) -> None:
        """Log a refusal, at most once per (type, peer) per interval, with a count."""
        key = (_type_name(message), origin.address)
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._logged.get(key, (0.0, 0))
            if last and now - last < self._log_interval:
                self._logged[key] = (last, suppressed + 1)
                return
            if len(self._logged) > 10_000:
                self._logged.clear()
            self._logged[key] = (now, 0)
        more = f" ({suppressed} more since the last line)" if suppressed else ""
        log.warning("%s%s", self.refusal(message, origin), more)


def _type_name(message: object) -> str:
    return message.DESCRIPTOR.full_name if isinstance(message, Message) else type(message).__name__
