"""Sans-IO HTTP/1.1 over httptools (llhttp, in C): bytes in, events out, and back to bytes.

The shape is h11's (events, explicit states, a Remote error carrying the status to answer with);
the parsing is llhttp's. Nothing here touches a socket or asyncio: ``proxy/protocol.py`` moves
the bytes. It sits below both planes (the proxy, the client's tunnel, demo and bench read HTTP
with it) and imports only :mod:`tlsgate.errors` from tlsgate. Where to look:

* ``events.py``: the events, limits and the two errors;
* ``framer.py``: how llhttp is driven one message at a time, and every refusal (read its
  docstring before changing any parser);
* ``request.py`` / ``response.py``: the two directions;
* ``target.py``: the request target's forms, reduced to the origin form that is forwarded;
* ``serialize.py``: heads and chunks going out, refusing header injection.
"""

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
from tlsgate.http.request import RequestParser
from tlsgate.http.response import ResponseParser
from tlsgate.http.serialize import (
    chunk,
    last_chunk,
    serialize_request_head,
    serialize_response_head,
)

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
