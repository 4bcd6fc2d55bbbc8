# cython: language_level=3, embedsignature=True, binding=True
"""The compiled twin of ``request.py``/``response.py``: HTTP/1.1 framing in C loops, no llhttp.

Same interface, events, statuses and limits as the httptools-driven parsers, which stay the
reference (``tests/http`` runs on both, and a differential test feeds both the same bytes). Read
``framer.py``'s docstring first: every refusal listed there is made here too, and where llhttp's
own rules decide (which bytes a method, target, header or chunk extension may hold, which
Content-Length and Transfer-Encoding values it takes, when it would refuse the next message
after deciding to close), they are reproduced, so that the two never frame a stream differently.

How it works: a head (and a trailer section) is read by a byte-level state machine (``_scan``)
that can stop at any byte and resume on the next feed; the bytes of a head that spans feeds are
kept in ``_hbuf`` until it ends, and every offset is relative to the head's first byte, so the
same code reads from the caller's bytes or from that buffer. Names, values and the request line
become Python objects once each, when they end; bodies are sliced out of the fed bytes (a whole
feed of body is passed on without a copy).

The module is read in three files: ``_fast_grammar.pxi`` (llhttp's character classes, methods,
the states, header facts read from bytes), ``_fast_framer.pxi`` (``_Framer``, the state machine
both directions share) and ``_fast_parsers.pxi`` (``RequestParser`` and ``ResponseParser``); the
events are built here.

Every ``b[i]`` in them is guarded by ``i < end``, where ``end`` never exceeds the length of the
buffer ``b`` points into: the loops are written so, rather than relying on Cython's bounds checks
(which do not apply to C pointers).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.string cimport memcmp, memchr

from tlsgate.http.events import (
    BodyKind,
    Data,
    EndOfMessage,
    Limits,
    LocalProtocolError,
    RemoteProtocolError,
    Request,
    Response,
    Upgraded,
)
from tlsgate.http.fields import ends_chunked
from tlsgate.http.target import split_target

__all__ = ["RequestParser", "ResponseParser"]

_DEFAULT_LIMITS = Limits()
cdef object _NONE = BodyKind.NONE
cdef object _LENGTH_KIND = BodyKind.LENGTH
cdef object _CHUNKED_KIND = BodyKind.CHUNKED
cdef object _UNTIL_CLOSE_KIND = BodyKind.UNTIL_CLOSE
cdef object _new = object.__new__


# The events, made without running their dataclass __init__ (a Python frame each, a third of the
# cost of a small request): the same objects, their slots set from here.
cdef inline object _Data(object data):
    cdef object event = _new(Data)
    event.data = data
    return event


cdef inline object _EndOfMessage(list trailers):
    cdef object event = _new(EndOfMessage)
    event.trailers = trailers
    return event


cdef object _Request(method, target, version, headers, body, length, keep, upgrade, expect):
    cdef object event = _new(Request)
    event.method = method
    event.target = target
    event.version = version
    event.headers = headers
    event.body = body
    event.content_length = length
    event.keep_alive = keep
    event.upgrade = upgrade
    event.expect_continue = expect
    return event


cdef object _Response(status, reason, version, headers, body, length, keep):
    cdef object event = _new(Response)
    event.status = status
    event.reason = reason
    event.version = version
    event.headers = headers
    event.body = body
    event.content_length = length
    event.keep_alive = keep
    return event


include "_fast_grammar.pxi"
include "_fast_framer.pxi"
include "_fast_parsers.pxi"
