"""What a client connection's one deadline is for, and why its reading is paused.

Shared by the two halves of an exchange (``protocol.py``, the client's; ``upstream_side.py``, the
upstream's). Neither is a phase of the exchange: the deadline is a timer re-armed on progress, and
the pause reasons are back-pressure between two transports, set and lifted many times per phase.
"""

from __future__ import annotations

__all__ = [
    "DEADLINE_BODY",
    "DEADLINE_HEAD",
    "DEADLINE_IDLE",
    "DEADLINE_UPSTREAM",
    "PAUSE_QUEUE",
    "PAUSE_TUNNEL",
    "PAUSE_UPSTREAM",
]

# What the connection's one deadline is for (0: nothing).
DEADLINE_IDLE = 1  # between requests: close quietly
DEADLINE_HEAD = 2  # a request head has started but not ended: 408
DEADLINE_BODY = 3  # the client's request body is late: 408
DEADLINE_UPSTREAM = 4  # the upstream's response is late: 504

# Why the client's reading is paused (a bit set: each reason is lifted on its own).
PAUSE_QUEUE = 1  # too many client events queued (pipelined requests, body waiting for upstream)
PAUSE_UPSTREAM = 2  # the upstream connection stopped accepting writes
PAUSE_TUNNEL = 4  # bytes after an upgrade request wait for the upstream's 101
