"""The byte-moving plumbing shared by both sides of a proxied exchange.

An :class:`EventChannel` is the seam between asyncio's callbacks and the handler coroutine: the
protocol pushes parser events in, the handler awaits them out. It pauses the transport's reading
when the handler falls behind (so a fast sender cannot fill our memory) and resumes it when the
backlog drains; :class:`WriteGate` does the same for the writing direction with asyncio's
``pause_writing``/``resume_writing``. Timeouts are ``call_later`` handles, not ``wait_for``,
because this runs once per event on the hot path.
"""

from __future__ import annotations

import asyncio
from collections import deque

from tlsgate.proxy.http import Event, RemoteProtocolError

__all__ = ["Closed", "EventChannel", "WriteGate"]

#: Events queued before we stop reading from the peer (bodies arrive as many Data events).
HIGH_WATER = 32
LOW_WATER = 8


class Closed(Exception):
    """The peer went away (EOF or reset) before the awaited event."""


def _expire(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class EventChannel:
    __slots__ = ("_error", "_events", "_loop", "_paused", "_transport", "_waiter", "closed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: deque[Event] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: RemoteProtocolError | None = None
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self.closed = False

    def attach(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def push(self, events: list[Event]) -> None:
        self._events.extend(events)
        if len(self._events) > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def fail(self, error: RemoteProtocolError) -> None:
        self._error = error
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._wake()

    @property
    def pending(self) -> bool:
        return bool(self._events)

    async def get(self, timeout: float) -> Event:
        """The next event; raises Closed, TimeoutError or the peer's RemoteProtocolError."""
        events = self._events
        while not events:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise Closed()
            waiter = self._waiter = self._loop.create_future()
            handle = self._loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None
        event = events.popleft()
        if self._paused and len(events) <= LOW_WATER and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return event


class WriteGate:
    """Tracks the transport's write buffer so producers await instead of queueing without end."""

    __slots__ = ("_loop", "_waiter", "closed", "paused")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.closed = False

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self.closed = True
        self.resume()

    async def drain(self, timeout: float) -> None:
        if not self.paused:
            return
        waiter = self._waiter = self._loop.create_future()
        handle = self._loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._waiter = None
        if self.closed:
            raise Closed()
