"""Budgets for the HTTP/2 frames that cost a server work but carry no request.

HTTP/2 lets a client make the server work with frames that are cheap to send: a stream opened
and reset at once (rapid reset, CVE-2023-44487: the server starts each request, the client pays
nothing), PINGs and SETTINGS the server must acknowledge, empty DATA frames, PRIORITY frames.
Each session twin asks this module before it accepts one more; both twins share it, so their
decisions are the same. Time is a parameter (the loop's clock), so tests need no sleeping.
"""

from __future__ import annotations

from tlsgate.http.h2_events import H2Settings

__all__ = ["FloodGuard", "TokenBucket"]


class TokenBucket:
    """``burst`` tokens at first, ``rate`` more per second up to ``burst``; one per event."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, burst: int, rate: float) -> None:
        self._burst = float(burst)
        self._rate = rate
        self._tokens = float(burst)
        self._at: float | None = None

    def take(self, now: float) -> bool:
        """Spend a token: False when none is left (the budget is exceeded)."""
        if self._at is not None and now > self._at:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class FloodGuard:
    """A connection's two budgets: client stream resets, and frames without a request."""

    __slots__ = ("idle", "resets")

    def __init__(self, settings: H2Settings) -> None:
        self.resets = TokenBucket(settings.reset_burst, settings.resets_per_second)
        self.idle = TokenBucket(settings.idle_frame_burst, settings.idle_frames_per_second)

    def reset(self, now: float) -> str:
        """A client reset a stream: "" while within budget, else why the connection ends."""
        if self.resets.take(now):
            return ""
        return "too many streams reset by the client (rapid reset)"

    def idle_frame(self, now: float, kind: str) -> str:
        """A frame that carries no request (``kind``: its type, for the reason)."""
        if self.idle.take(now):
            return ""
        return f"too many {kind} frames"
