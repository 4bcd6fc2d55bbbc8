"""One timeout per connection, moved on every event without touching the event loop's timers.

A connection's deadline changes several times per request (head read, upstream waited for, idle
again). Cancelling and re-creating a loop timer each time costs more than the rest of the
bookkeeping, so a :class:`Deadline` only stores the new time when it moves later; the armed
timer, when it fires early, re-arms itself for the remaining time. A deadline moved *earlier*
than the armed timer re-arms at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

__all__ = ["Deadline", "Timeout"]


class Timeout(Protocol):
    """What an exchange asks of its deadline: :class:`Deadline`, or an HTTP/2 stream's, which
    its connection sweeps (proxy/h2_connection.py)."""

    kind: int

    def set(self, seconds: float, kind: int) -> None: ...

    def clear(self) -> None: ...

    def close(self) -> None: ...


class Deadline:
    """``kind`` says what the deadline is for (0: nothing); ``on_expiry(kind)`` is called once
    when it passes."""

    __slots__ = ("_loop", "_on_expiry", "_timer", "_timer_at", "at", "kind")

    def __init__(self, loop: asyncio.AbstractEventLoop, on_expiry: Callable[[int], None]) -> None:
        self._loop = loop
        self._on_expiry = on_expiry
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.at = 0.0
        self.kind = 0

    def set(self, seconds: float, kind: int) -> None:
        at = self._loop.time() + seconds
        self.at = at
        self.kind = kind
        if self._timer is None or at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(at, self._fire)
            self._timer_at = at

    def clear(self) -> None:
        """Nothing to time out for now (the timer, if armed, fires once and does nothing)."""
        self.kind = 0

    def cancel(self) -> None:
        self.kind = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        """For good: cancelled, and the callback dropped. The callback holds the connection,
        which holds this deadline: kept, every closed connection would be a cycle left for the
        garbage collector (a full pass every few hundred connections, with their TLS state
        held until then)."""
        self.cancel()
        self._on_expiry = _never

    def _fire(self) -> None:
        self._timer = None
        kind = self.kind
        if not kind:
            return
        if self._loop.time() < self.at:  # moved later since the timer was armed
            self._timer = self._loop.call_at(self.at, self._fire)
            self._timer_at = self.at
            return
        self.kind = 0
        self._on_expiry(kind)


def _never(kind: int) -> None:
    """What a closed deadline calls: nothing."""
