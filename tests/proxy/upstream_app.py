"""A real plain-HTTP upstream for end-to-end tests, with one path per behaviour under test.

It runs on its own event loop in a thread of the test process and speaks HTTP/1.1 over real
sockets; the proxy under test is a separate ``tlsgate serve`` process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import cast

from tlsgate.http import (
    Data,
    EndOfMessage,
    RemoteProtocolError,
    Request,
    RequestParser,
    Upgraded,
    chunk,
    last_chunk,
    serialize_response_head,
)


@dataclass
class Seen:
    """Every request head the upstream received, for anti-spoofing and framing assertions."""

    requests: list[Request] = field(default_factory=list)
    connections: int = 0  # TCP connections the edge opened to us (pooling shows here)
    open: set[asyncio.BaseTransport] = field(default_factory=set)  # closed at shutdown


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.digest = hashlib.sha256()
        self.size = 0
        self.tunnel = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        self.seen.connections += 1
        self.seen.open.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.seen.open.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.tunnel:
            self.transport.write(b"echo:" + data)
            return
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, Request):
                self.request = event
                self.seen.requests.append(event)
                self.digest = hashlib.sha256()
                self.size = 0
            elif isinstance(event, Data):
                self.digest.update(event.data)
                self.size += len(event.data)
            elif isinstance(event, EndOfMessage) and self.request is not None:
                asyncio.get_running_loop().create_task(self.respond(self.request, event))
            elif isinstance(event, Upgraded):
                self.tunnel = True
                if event.leftover:
                    self.transport.write(b"echo:" + event.leftover)

    def send(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        assert self.transport is not None
        hdrs = [(b"content-length", str(len(body)).encode()), *(headers or [])]
        self.transport.write(serialize_response_head(status, b"", hdrs) + body)

    async def respond(self, request: Request, end: EndOfMessage) -> None:
        assert self.transport is not None
        path, _, query = request.target.decode().partition("?")
        parts = path.strip("/").split("/")
        t = self.transport
        if parts[0] == "echo":
            body = json.dumps(
                {
                    "method": request.method.decode(),
                    "target": request.target.decode(),
                    "headers": [[n.decode(), v.decode()] for n, v in request.headers],
                    "body_size": self.size,
                    "body_sha256": self.digest.hexdigest(),
                    "trailers": [[n.decode(), v.decode()] for n, v in end.trailers],
                }
            ).encode()
            self.send(200, body, [(b"content-type", b"application/json")])
        elif parts[0] == "bytes":
            n = int(parts[1])
            t.write(serialize_response_head(200, b"", [(b"content-length", str(n).encode())]))
            block = b"x" * 65536
            sent = 0
            while sent < n:
                piece = block[: min(65536, n - sent)]
                t.write(piece)
                sent += len(piece)
                await asyncio.sleep(0)
        elif parts[0] == "chunked":
            n = int(parts[1])
            t.write(
                serialize_response_head(
                    200, b"", [(b"transfer-encoding", b"chunked"), (b"trailer", b"x-checksum")]
                )
            )
            for _ in range(n):
                t.write(chunk(b"0123456789"))
            t.write(last_chunk([(b"x-checksum", b"abc")]))
        elif parts[0] == "close":
            t.write(
                serialize_response_head(200, b"", [(b"connection", b"close")]) + b"until-close body"
            )
            t.close()
        elif parts[0] == "slow":
            await asyncio.sleep(float(parts[1]))
            self.send(200, b"slow\n")
        elif parts[0] == "status":
            self.send(int(parts[1]), b"")
        elif parts[0] == "ws":
            self.tunnel = True
            t.write(
                serialize_response_head(
                    101, b"", [(b"connection", b"upgrade"), (b"upgrade", b"websocket")]
                )
            )
        elif parts[0] == "hints":  # 103 Early Hints, then the response
            t.write(serialize_response_head(103, b"", [(b"link", b"</style.css>; rel=preload")]))
            self.send(200, b"hinted\n")
        elif parts[0] == "hsts":
            self.send(200, b"own\n", [(b"strict-transport-security", b"max-age=1")])
        else:
            self.send(200, f"hello {path} {query}\n".encode())


@contextmanager
def run_upstream() -> Iterator[tuple[int, Seen]]:
    seen = Seen()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: list[asyncio.Server] = []

    async def start() -> None:
        box.append(await loop.create_server(lambda: UpstreamProtocol(seen), "127.0.0.1", 0))
        started.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()
        box[0].close()
        for transport in list(seen.open):  # the edge's pooled connections, still open
            transport.close()
        loop.run_until_complete(box[0].wait_closed())
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    port = box[0].sockets[0].getsockname()[1]
    try:
        yield port, seen
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


@contextmanager
def run_raw_upstream() -> Iterator[tuple[int, list[bytes]]]:
    """An upstream that answers each request with the bytes of its head exactly as received.

    For what the edge forwards byte for byte (request line, Host): the upstream above parses
    with tlsgate's own parser, which would normalize what it sees. One request per connection
    (``Connection: close``), no body read.
    """
    heads: list[bytes] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
            except OSError:
                return
            head = head.partition(b"\r\n\r\n")[0] + b"\r\n\r\n"
            heads.append(head)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            conn.sendall(answer % len(head) + head)

    def run() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            serve_one(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], heads
    finally:
        stop.set()
        thread.join(timeout=10)
        server.close()
