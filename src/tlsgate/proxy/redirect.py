"""The plain-HTTP listener: nothing is served in clear text, everything is sent to HTTPS.

A ``308 Permanent Redirect`` (not 301) keeps the method and body, so a POST that reached port 80
by mistake is repeated over HTTPS rather than silently turned into a GET. The ACME http-01
responder (a later feature) plugs in through ``challenge`` before the redirect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

from tlsgate.http import (
    EndOfMessage,
    Headers,
    Limits,
    RemoteProtocolError,
    Request,
    RequestParser,
    serialize_response_head,
)
from tlsgate.proxy.edge import error_response
from tlsgate.proxy.routing import normalize_host

__all__ = ["RedirectProtocol", "redirect_location"]

Challenge = Callable[[bytes], bytes | None]


def redirect_location(host: str, target: bytes, https_port: int) -> bytes:
    if ":" in host:
        host = f"[{host}]"
    port = "" if https_port == 443 else f":{https_port}"
    path = target if target.startswith(b"/") else b"/"
    return f"https://{host}{port}".encode() + path


class RedirectProtocol(asyncio.Protocol):
    def __init__(self, https_port: int, challenge: Challenge | None = None, idle: float = 15.0):
        self.https_port = https_port
        self.challenge = challenge
        self.idle = idle
        self.parser = RequestParser(Limits(max_body_bytes=64 * 1024))
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's SSL transport is not an asyncio.Transport subclass, but has its interface.
        self.transport = cast(asyncio.Transport, transport)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        assert self.transport is not None
        self._timer = asyncio.get_running_loop().call_later(self.idle, self.transport.close)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self._arm()
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self.transport.write(error_response(exc.status))
            self.transport.close()
            return
        for event in events:
            if isinstance(event, Request):
                self.request = event
            elif isinstance(event, EndOfMessage) and self.request is not None:
                keep = self._respond(self.request)
                self.request = None
                if not keep:
                    self.transport.close()
                    return

    def _respond(self, request: Request) -> bool:
        assert self.transport is not None
        body = b""
        answer = self.challenge(request.target) if self.challenge else None
        host = b""
        for name, value in request.headers:
            if name == b"host":
                host = value
        headers: Headers
        if answer is not None:
            status, reason, body = 200, b"OK", answer
            headers = [(b"content-type", b"application/octet-stream")]
        elif not host:
            self.transport.write(error_response(400))
            return False
        else:
            status, reason = 308, b"Permanent Redirect"
            location = redirect_location(normalize_host(host), request.target, self.https_port)
            body = b"Redirecting to " + location + b"\n"
            headers = [(b"location", location), (b"content-type", b"text/plain")]
        headers.append((b"content-length", str(len(body)).encode()))
        if not request.keep_alive:
            headers.append((b"connection", b"close"))
        payload = body if request.method != b"HEAD" else b""
        self.transport.write(serialize_response_head(status, reason, headers) + payload)
        return request.keep_alive

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
