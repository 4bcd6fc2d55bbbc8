"""Sans-IO HTTP/1.1: bytes in, events out, and back to bytes.

The shape is h11's (events, explicit states, a Remote error carrying the status to answer with).
The parsers exist twice with one interface: compiled (``_fast.pyx``, Cython, its own C loops)
and pure (our Python over httptools' llhttp), the reference that the differential tests hold the
compiled one to and the fallback; :mod:`tlsgate.compiled` picks which one this package exports
(``TLSGATE_PURE=1`` forces the pure one). Nothing here touches a socket or asyncio:
``proxy/protocol.py`` moves the bytes. It sits below both planes (the proxy, the client's tunnel,
demo and bench read HTTP with it) and imports only :mod:`tlsgate.errors` and
:mod:`tlsgate.compiled` from tlsgate. Where to look:

* ``events.py``: the events, limits and the two errors;
* ``framer.py``: how llhttp is driven one message at a time, and every refusal (read its
  docstring before changing any parser);
* ``fields.py``: what the framing headers say (Connection, Transfer-Encoding, Content-Length),
  shared by both directions and the compiled twin;
* ``request.py`` / ``response.py``: the two directions;
* ``_fast.pyx``: both directions compiled (``_fast.pyi`` types it);
* ``target.py``: the request target's forms, reduced to the origin form that is forwarded;
* ``serialize.py``: heads and chunks going out, refusing header injection.
"""

from typing import TYPE_CHECKING

from tlsgate.compiled import compiled_module
from tlsgate.http.events import (
    BodyKind,
    Data,
    EndOfMessage,
    Event,
    Headers,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    Upgraded,
)
from tlsgate.http.serialize import (
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)

if TYPE_CHECKING or (_fast := compiled_module("tlsgate.http._fast")) is None:
    from tlsgate.http.request import RequestParser
    from tlsgate.http.response import ResponseParser
else:
    RequestParser = _fast.RequestParser
    ResponseParser = _fast.ResponseParser

__all__ = [
    "BodyKind",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Limits",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "Upgraded",
    "chunk",
    "last_chunk",
    "serialize_request_head",
    "serialize_response_head",
]
