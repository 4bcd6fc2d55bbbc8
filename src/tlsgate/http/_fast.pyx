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

The events it makes are ``fast_events.pyx``'s (events.py's compiled twin). The module is read
in three files: ``_fast_grammar.pxi`` (llhttp's character classes, methods,
the states, header facts read from bytes), ``_fast_framer.pxi`` (``_Framer``, the state machine
both directions share) and ``_fast_parsers.pxi`` (``RequestParser`` and ``ResponseParser``).

Every ``b[i]`` in them is guarded by ``i < end``, where ``end`` never exceeds the length of the
buffer ``b`` points into: the loops are written so, rather than relying on Cython's bounds checks
(which do not apply to C pointers).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from libc.string cimport memcmp, memchr

from tlsgate.http.fast_events cimport make_data, make_end, make_request, make_response

from tlsgate.http import events as _events
from tlsgate.http.events import BodyKind, Limits, LocalProtocolError, RemoteProtocolError
from tlsgate.http.fields import ends_chunked
from tlsgate.http.target import split_target

__all__ = ["RequestParser", "ResponseParser"]

_DEFAULT_LIMITS = Limits()

# The events made are those tlsgate.http exports: the compiled ones (fields set as C members,
# no __init__), or under TLSGATE_PURE=1 the dataclasses, when the differential tests run this
# parser beside the pure one. Decided at the first parser made (events.py is loaded by then).
cdef int _COMPILED_EVENTS = -1


cdef int _choose_events() except -1:
    global _COMPILED_EVENTS
    from tlsgate.http import fast_events

    _COMPILED_EVENTS = _events.Request is fast_events.Request
    return 0


cdef inline object _Data(object data):
    return make_data(data) if _COMPILED_EVENTS else _events.Data(data)


cdef inline object _EndOfMessage(list trailers):
    return make_end(trailers) if _COMPILED_EVENTS else _events.EndOfMessage(trailers)


cdef object _Request(method, target, version, headers, body, length, keep, upgrade, expect):
    if _COMPILED_EVENTS:
        return make_request(method, target, version, headers, body, length, keep, upgrade, expect)
    return _events.Request(method, target, version, headers, body, length, keep, upgrade, expect)


cdef object _Response(status, reason, version, headers, body, length, keep):
    if _COMPILED_EVENTS:
        return make_response(status, reason, version, headers, body, length, keep)
    return _events.Response(status, reason, version, headers, body, length, keep)


cdef object Upgraded(object leftover):
    return _events.Upgraded(leftover)
cdef object _NONE = BodyKind.NONE
cdef object _LENGTH_KIND = BodyKind.LENGTH
cdef object _CHUNKED_KIND = BodyKind.CHUNKED
cdef object _UNTIL_CLOSE_KIND = BodyKind.UNTIL_CLOSE


include "_fast_grammar.pxi"
include "_fast_framer.pxi"
include "_fast_parsers.pxi"
