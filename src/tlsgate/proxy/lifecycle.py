"""A worker's connections from first to last: how many it accepts, how they end at a stop.

The data plane's side of worker lifecycle, apart from the processes themselves
(:mod:`tlsgate.serve.supervisor` forks, signals and reaps them): :class:`ConnectionBudget`
counts what a worker accepts (``max_connections_per_worker``), :func:`drain` ends connections on
SIGTERM, :func:`retire` lets a recycled worker's connections end by themselves. They touch edges
and connections only.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from tlsgate.proxy.edge import Edge
from tlsgate.proxy.h2_connection import H2Connection

__all__ = ["ConnectionBudget", "drain", "retire"]

A = ParamSpec("A")
R = TypeVar("R")


class ConnectionBudget:
    """Counts the connections a worker accepts and calls ``spent`` once, at the ``limit``-th
    (0: never).

    It wraps what the listeners call once per accepted connection, before the TLS handshake
    (the protocol factory, or the peeking acceptor's choice), so failed handshakes count too:
    they cost memory as well.
    """

    def __init__(self, limit: int, on_spent: Callable[[], None]) -> None:
        self.limit = limit
        self.accepted = 0
        self._on_spent = on_spent

    @property
    def spent(self) -> bool:
        return 0 < self.limit <= self.accepted

    def wrap(self, func: Callable[A, R]) -> Callable[A, R]:
        @functools.wraps(func)
        def counted(*args: A.args, **kwargs: A.kwargs) -> R:
            self.accepted += 1
            if self.accepted == self.limit:
                self._on_spent()
            return func(*args, **kwargs)

        return counted


async def retire(edges: list[Edge], deadline: float, *, grace: float) -> None:
    """A recycled worker's drain: nothing is cut short. Handshakes accepted before the
    listeners closed get ``grace`` (the handshake timeout) to become connections; every
    connection ends by itself, after its next response (``Connection: close``) or its idle
    timeout, until ``deadline``."""
    start = time.monotonic()
    while time.monotonic() < deadline:
        if time.monotonic() - start >= grace and not any(edge.connections for edge in edges):
            return
        await asyncio.sleep(0.05)


async def drain(edges: list[Edge], deadline: float) -> None:
    """Graceful stop: finish what is in flight, close idle keep-alives, until ``deadline``."""
    while time.monotonic() < deadline:
        busy = False
        for edge in edges:
            for conn in list(edge.connections):
                if conn.busy:
                    busy = True
                    if isinstance(conn, H2Connection):
                        # GOAWAY at once: no new streams on it, those in flight finish.
                        conn.drain_notice()
                elif conn.tunnel is None:
                    conn.close()
        if not busy:
            break
        await asyncio.sleep(0.05)
