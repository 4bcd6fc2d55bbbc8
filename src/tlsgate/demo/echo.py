"""A tiny plain-HTTP app that answers with the request it saw.

It stands for "your service" behind the edge: it never sees TLS, certificates or the client's
address directly, only what the edge tells it in ``X-Forwarded-*``/``Forwarded`` headers, which
is exactly the point the demo makes.
"""

from __future__ import annotations

import asyncio
import json

from tlsgate.http import Request
from tlsgate.serve.responder import Responder

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


class EchoProtocol(Responder):
    def __init__(self) -> None:
        super().__init__()
        self.peer = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""

    def respond(self, request: Request, body_bytes: int) -> tuple[int, bytes, bytes]:
        payload = json.dumps(describe_request(request, self.peer, body_bytes), indent=2)
        return 200, b"application/json", payload.encode() + b"\n"


async def start_echo(host: str = "127.0.0.1", port: int = 0) -> asyncio.AbstractServer:
    loop = asyncio.get_running_loop()
    return await loop.create_server(EchoProtocol, host, port)
