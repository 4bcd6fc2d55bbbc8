"""A tiny plain-HTTP app that answers with the request it saw.

It stands for "your service" behind the edge: it never sees TLS, certificates or the client's
address directly, only what the edge tells it in ``X-Forwarded-*``/``Forwarded`` headers, which
is exactly the point the demo makes.
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

from tlsgate.proxy.http import (
    Data,
    EndOfMessage,
    RemoteProtocolError,
    Request,
    RequestParser,
    serialize_response_head,
)

__all__ = ["EchoProtocol", "describe_request", "start_echo"]

SHOWN = (
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"forwarded",
    b"x-forwarded-client-cert",
    b"via",
    b"user-agent",
)


def describe_request(request: Request, peer: str, body_bytes: int) -> dict[str, object]:
    return {
        "method": request.method.decode("latin-1"),
        "path": request.target.decode("latin-1"),
        "scheme_seen_by_app": "http",
        "peer_seen_by_app": peer,
        "body_bytes": body_bytes,
        "headers": {
            n.decode("latin-1"): v.decode("latin-1") for n, v in request.headers if n in SHOWN
        },
    }


class EchoProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = RequestParser()
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.body = 0
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, Request):
                self.request, self.body = event, 0
            elif isinstance(event, Data):
                self.body += len(event.data)
            elif isinstance(event, EndOfMessage) and self.request is not None:
                payload = (
                    json.dumps(
                        describe_request(self.request, self.peer, self.body), indent=2
                    ).encode()
                    + b"\n"
                )
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ]
                if not self.request.keep_alive:
                    headers.append((b"connection", b"close"))
                head = serialize_response_head(200, b"OK", headers)
                self.transport.write(head + (payload if self.request.method != b"HEAD" else b""))
                if not self.request.keep_alive:
                    self.transport.close()
                self.request = None


async def start_echo(host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(EchoProtocol, host, port)
