"""The events both parsers emit, their limits, and the two errors.

Events, in order, for one message: a head (:class:`Request` or :class:`Response`), zero or more
:class:`Data`, then :class:`EndOfMessage` (carrying trailers, if any). After an upgrade the parser
emits :class:`Upgraded` with the bytes that followed the head: the connection is a tunnel then.

The five event classes exist twice with one face: the dataclasses here (the reference, kept as
``PureRequest`` ...) and cdef classes in ``fast_events.pyx``, whose fields the compiled parsers
and proxy set and read as C members; :mod:`tlsgate.compiled` picks which this module exports,
so both parsers and every consumer see the same classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from tlsgate.compiled import compiled_module
from tlsgate.errors import TlsgateError

__all__ = [
    "BodyKind",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Limits",
    "LocalProtocolError",
    "PureData",
    "PureEndOfMessage",
    "PureRequest",
    "PureResponse",
    "PureUpgraded",
    "RemoteProtocolError",
    "Request",
    "Response",
    "Upgraded",
]

#: Header names lower-cased, values as sent; order and repetition preserved.
Headers = list[tuple[bytes, bytes]]


class RemoteProtocolError(TlsgateError):
    """The peer sent something we refuse; ``status`` is what to answer a client with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class LocalProtocolError(TlsgateError):
    """We used the parser wrongly (a bug on our side), e.g. fed it after an upgrade."""


class BodyKind(Enum):
    NONE = "none"
    LENGTH = "length"
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"  # responses only: no length, body ends when the peer closes


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 32 * 1024  # request line + headers; over it -> 431
    max_headers: int = 100  # -> 431
    max_target_bytes: int = 8 * 1024  # -> 414
    max_body_bytes: int | None = None  # -> 413 (checked against Content-Length and as data flows)


@dataclass(slots=True)
class Request:
    method: bytes
    target: bytes
    version: bytes  # b"1.1" or b"1.0"
    headers: Headers
    body: BodyKind
    content_length: int | None
    keep_alive: bool
    upgrade: bytes | None = None  # e.g. b"websocket" when the client asks to switch protocols
    expect_continue: bool = False


@dataclass(slots=True)
class Response:
    status: int
    reason: bytes
    version: bytes
    headers: Headers
    body: BodyKind
    content_length: int | None
    keep_alive: bool


@dataclass(slots=True)
class Data:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    trailers: Headers = field(default_factory=list)


@dataclass(slots=True)
class Upgraded:
    leftover: bytes  # bytes received after the head: the first bytes of the tunnel


PureRequest, PureResponse, PureData, PureEndOfMessage, PureUpgraded = (
    Request,
    Response,
    Data,
    EndOfMessage,
    Upgraded,
)
if not TYPE_CHECKING and (_fast := compiled_module("tlsgate.http.fast_events")) is not None:
    Request, Response, Data, EndOfMessage, Upgraded = (
        _fast.Request,
        _fast.Response,
        _fast.Data,
        _fast.EndOfMessage,
        _fast.Upgraded,
    )

Event = Request | Response | Data | EndOfMessage | Upgraded
