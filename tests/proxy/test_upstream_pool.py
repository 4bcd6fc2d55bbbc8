"""The upstream pool, compiled and pure, against a real listening socket on loopback.

Both pools must hand back the most recently released connection, never a closed one, share one
list between equal upstreams (a reload builds new but equal objects), close what they cannot keep
(over the cap, unreusable, paused) and sweep what idled past the timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tlsgate.proxy import upstream

fast = pytest.importorskip("tlsgate.proxy._fast", reason="the compiled data plane is not built")

POOLS: list[Any] = [
    pytest.param(upstream.PureUpstreamPool, id="pure"),
    pytest.param(fast.UpstreamPool, id="compiled"),
]


@dataclass(frozen=True)
class Address:
    host: str
    port: int


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


@contextlib.asynccontextmanager
async def listening() -> AsyncIterator[tuple[Address, list[asyncio.StreamWriter]]]:
    """A loopback server that keeps every connection open until the test ends."""
    accepted: list[asyncio.StreamWriter] = []

    async def keep(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(keep, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield Address("127.0.0.1", port), accepted
    for writer in accepted:
        writer.close()
    server.close()
    await server.wait_closed()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("pool_class", POOLS)
def test_release_then_take_reuses_the_warmest(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        async with listening() as (address, _accepted):
            pool = pool_class(asyncio.get_running_loop())
            first = await pool.connect(address, 5.0)
            second = await pool.connect(address, 5.0)
            assert pool.take(address) is None
            pool.release(first)
            pool.release(second)
            # Equal, not identical: a reloaded configuration's upstream finds the same list.
            again = Address(address.host, address.port)
            taken = pool.take(again)
            assert taken is second and taken.reused
            assert pool.take(address) is first
            assert pool.take(address) is None
            pool.close()

    run(test)


@pytest.mark.parametrize("pool_class", POOLS)
def test_closed_connections_are_never_handed_out(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        async with listening() as (address, accepted):
            pool = pool_class(asyncio.get_running_loop())
            conn = await pool.connect(address, 5.0)
            pool.release(conn)
            await settle()
            accepted[0].close()  # the upstream's own idle timeout
            for _ in range(100):
                if conn.closed:
                    break
                await asyncio.sleep(0.01)
            assert conn.closed
            assert pool.take(address) is None
            pool.close()

    run(test)


@pytest.mark.parametrize("pool_class", POOLS)
def test_what_cannot_be_kept_is_closed(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        async with listening() as (address, _accepted):
            pool = pool_class(asyncio.get_running_loop())
            paused = await pool.connect(address, 5.0)
            paused.write_paused = True
            pool.release(paused)
            assert pool.take(address) is None
            unreusable = await pool.connect(address, 5.0)
            unreusable.parser.expect(b"GET")
            unreusable.parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            pool.release(unreusable)
            assert pool.take(address) is None
            await settle()
            assert paused.closed and unreusable.closed
            pool.close()

    run(test)


@pytest.mark.parametrize("pool_class", POOLS)
def test_cap_per_upstream(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        async with listening() as (address, _accepted):
            pool = pool_class(asyncio.get_running_loop())
            conns = [
                await pool.connect(address, 5.0) for _ in range(upstream.MAX_IDLE_PER_UPSTREAM + 1)
            ]
            for conn in conns:
                pool.release(conn)
            await settle()
            assert conns[-1].closed
            assert not any(conn.closed for conn in conns[:-1])
            pool.close()
            await settle()
            assert all(conn.closed for conn in conns)

    run(test)


@pytest.mark.parametrize("pool_class", POOLS)
def test_sweep_closes_what_idled_too_long(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        async with listening() as (address, _accepted):
            pool = pool_class(asyncio.get_running_loop())
            old = await pool.connect(address, 5.0)
            fresh = await pool.connect(address, 5.0)
            pool.release(old)
            pool.release(fresh)
            old.idle_since -= upstream.IDLE_TIMEOUT + 1
            pool._sweep()
            await settle()
            assert old.closed and not fresh.closed
            assert pool.take(address) is fresh
            assert pool.take(address) is None
            pool.close()

    run(test)


@pytest.mark.parametrize("pool_class", POOLS)
def test_unreachable_upstream_raises(pool_class: Callable[..., Any]) -> None:
    async def test() -> None:
        pool = pool_class(asyncio.get_running_loop())
        probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = probe.sockets[0].getsockname()[1]
        probe.close()
        await probe.wait_closed()
        with pytest.raises(OSError):
            await pool.connect(Address("127.0.0.1", port), 5.0)
        pool.close()

    run(test)
