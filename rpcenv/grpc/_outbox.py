"""The outbound queue of one connection: many producers, one draining writer.

Producers append serialized envelopes; the writer takes everything queued at
once, which is what batches small messages onto the stream without a timer.
"""

from __future__ import annotations

import threading

__all__ = ["Outbox", "QueuedEnvelope"]

#: (serialized envelope, kind, request id) — kind and id let a broken
#: connection fail the asks it could not deliver.
QueuedEnvelope = tuple[bytes, int, int]

#: A frame stops growing past this many bytes (a larger envelope goes alone).
MAX_FRAME_BYTES = 4 << 20


class Outbox:
    """FIFO of envelopes for one peer."""

    def __init__(self) -> None:
        self._items: list[QueuedEnvelope] = []
        self._cond = threading.Condition(threading.Lock())
        self._closed = False
        self._waiting = False

    def put(self, item: QueuedEnvelope) -> bool:
        """Queue `item`; False once the outbox is closed."""
        with self._cond:
            if self._closed:
                return False
            self._items.append(item)
            if self._waiting:
                self._cond.notify()
            return True

    def take(self) -> list[QueuedEnvelope] | None:
        """Wait for envelopes and take up to a frame's worth; None once closed and empty."""
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                self._waiting = True
                self._cond.wait()
                self._waiting = False
            items = self._items
            size = 0
            for index, item in enumerate(items):
                size += len(item[0])
                if size > MAX_FRAME_BYTES and index > 0:
                    self._items = items[index:]
                    return items[:index]
            self._items = []
            return items

    def close(self, drain: bool = False) -> list[QueuedEnvelope]:
        """Refuse further envelopes; return those never taken (none with `drain`).

        With `drain`, `take` still hands out what is queued before it returns None.
        """
        with self._cond:
            self._closed = True
            items: list[QueuedEnvelope] = []
            if not drain:
                items, self._items = self._items, []
            self._cond.notify_all()
            return items

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed
