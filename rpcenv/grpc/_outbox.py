"""The outbound queue of one connection: many producer threads, one writer coroutine.

Producers append serialized envelopes under a plain lock; the writer takes
everything queued at once, which batches small messages onto the stream without
a timer. The writer is woken across threads only when it is actually waiting,
so a burst of messages costs one wake-up, not one per message; wake-ups of many
writers from other threads share one loop wake-up (`IoLoop.call_soon`).
"""

from __future__ import annotations

import asyncio
import threading

from rpcenv.grpc._loop import IoLoop

__all__ = ["MAX_FRAME_BYTES", "Outbox", "QueuedEnvelope"]

#: (serialized envelope, kind, request id) — kind and id let a broken
#: connection fail the asks it could not deliver.
QueuedEnvelope = tuple[bytes, int, int]

#: A frame stops growing past this many bytes (a larger envelope goes alone).
MAX_FRAME_BYTES = 4 << 20


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Outbox:
    """FIFO of envelopes for one peer."""

    def __init__(self, io: IoLoop) -> None:
        self._io = io
        self._items: list[QueuedEnvelope] = []
        self._lock = threading.Lock()
        self._closed = False
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: QueuedEnvelope) -> bool:
        """Queue `item` (from any thread); False once the outbox is closed."""
        with self._lock:
            if self._closed:
                return False
            self._items.append(item)
            waiter = self._waiter
            if waiter is None:
                return True
            self._waiter = None
        if self._io.in_loop():
            _wake(waiter)  # a send from the loop itself needs no wake-up
        else:
            self._io.call_soon(_wake, waiter)
        return True

    async def take(self) -> list[QueuedEnvelope] | None:
        """Wait for envelopes and take up to a frame's worth; None once closed and empty."""
        while True:
            with self._lock:
                items = self._items
                if items:
                    size = 0
                    for index, item in enumerate(items):
                        size += len(item[0])
                        if size > MAX_FRAME_BYTES and index > 0:
                            self._items = items[index:]
                            return items[:index]
                    self._items = []
                    return items
                if self._closed:
                    return None
                waiter = self._waiter = self._io.loop.create_future()
            await waiter

    def close(self, drain: bool = False) -> list[QueuedEnvelope]:
        """Refuse further envelopes; return those never taken (none with `drain`).

        With `drain`, `take` still hands out what is queued before it returns None.
        """
        with self._lock:
            self._closed = True
            items: list[QueuedEnvelope] = []
            if not drain:
                items, self._items = self._items, []
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not self._io.loop.is_closed():
            self._io.call_soon(_wake, waiter)
        return items

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed
