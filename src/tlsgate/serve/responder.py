"""The small HTTP/1.1 servers tlsgate runs beside the proxy: the admin listener and the demo app.

Both answer every request with one body computed at once, so they share everything but that
body: requests parsed by :class:`~tlsgate.http.RequestParser` (pipelining, head size
limits), a response framed with Content-Length, ``Connection: close`` and a close when the
request ended the connection, no body for HEAD. A request that cannot be parsed closes the
connection without an answer. Upgrades are not served (the request gets an ordinary answer).
"""

from __future__ import annotations

import asyncio
from typing import cast

from tlsgate.http import (
    Data,
    EndOfMessage,
    Limits,
    RemoteProtocolError,
    Request,
    RequestParser,
    serialize_response_head,
)

__all__ = ["Responder", "response"]


def response(request: Request, status: int, content_type: bytes, body: bytes) -> bytes:
    """The whole answer to ``request``: the head (reason phrase from the status), then the body.

    Content-Length is always the body's, also for HEAD, whose answer has the head alone.
    """
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if not request.keep_alive:
        headers.append((b"connection", b"close"))
    head = serialize_response_head(status, b"", headers)
    return head if request.method == b"HEAD" else head + body


class Responder(asyncio.Protocol):
    """Answers each request, once its body has arrived, with what :meth:`respond` returns."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.parser = RequestParser(limits or Limits())
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.body_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)

    def respond(self, request: Request, body_bytes: int) -> tuple[int, bytes, bytes]:
        """(status, content type, body) for a request whose body had ``body_bytes`` bytes."""
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, Request):
                self.request, self.body_bytes = event, 0
            elif isinstance(event, Data):
                self.body_bytes += len(event.data)
            elif isinstance(event, EndOfMessage) and self.request is not None:
                request, self.request = self.request, None
                status, content_type, body = self.respond(request, self.body_bytes)
                self.transport.write(response(request, status, content_type, body))
                if not request.keep_alive:
                    self.transport.close()
                    return
