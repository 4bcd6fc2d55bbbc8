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

Every ``b[i]`` below is guarded by ``i < end``, where ``end`` never exceeds the length of the
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

# -- character classes (llhttp's, as httptools builds it) ----------------------------------------
cdef unsigned char TOKEN[256]  # header names, chunk extension names and values
cdef unsigned char HCHAR[256]  # header values: HTAB, SP, VCHAR, obs-text
cdef unsigned char UCHAR[256]  # request target after its first byte: VCHAR
cdef unsigned char SERVER[256]  # authority of an absolute-form target (userinfo chars, [ ])
cdef unsigned char QDTEXT[256]  # chunk extension quoted string
cdef unsigned char QPAIR[256]  # after a backslash in it
cdef unsigned char MCHAR[256]  # characters of a method name
cdef signed char HEX[256]


cdef void _tables():
    cdef int c
    for c in range(256):
        alnum = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)
        TOKEN[c] = alnum or (c in b"!#$%&'*+-.^_`|~")
        HCHAR[c] = c == 9 or (32 <= c <= 255 and c != 127)
        UCHAR[c] = 33 <= c <= 126
        SERVER[c] = alnum or (c in b"-_.!~*'()%;:&=+$,[]")
        QDTEXT[c] = c == 9 or c == 32 or c == 33 or (35 <= c <= 91) or (93 <= c <= 126) or c >= 128
        QPAIR[c] = c == 9 or (32 <= c <= 126) or c >= 128
        MCHAR[c] = (65 <= c <= 90) or c == 45 or c == 95
        HEX[c] = (c - 48 if 48 <= c <= 57 else c - 87 if 97 <= c <= 102
                  else c - 55 if 65 <= c <= 70 else -1)


_tables()

# llhttp's methods; for each, whether it may go with HTTP/, RTSP/ and ICE/.
cdef tuple _METHODS = (
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
    b"COPY", b"LOCK", b"MKCOL", b"MOVE", b"PROPFIND", b"PROPPATCH", b"SEARCH", b"UNLOCK",
    b"BIND", b"REBIND", b"UNBIND", b"ACL", b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE",
    b"M-SEARCH", b"NOTIFY", b"SUBSCRIBE", b"UNSUBSCRIBE", b"PURGE", b"MKCALENDAR", b"LINK",
    b"UNLINK", b"SOURCE", b"PRI", b"QUERY",
    # RTSP only
    b"DESCRIBE", b"ANNOUNCE", b"SETUP", b"PLAY", b"PAUSE", b"TEARDOWN", b"GET_PARAMETER",
    b"SET_PARAMETER", b"REDIRECT", b"RECORD", b"FLUSH",
)
cdef int _N_HTTP = 36  # the first 36 go with HTTP/
cdef frozenset _RTSP = frozenset(
    {b"OPTIONS", b"DESCRIBE", b"ANNOUNCE", b"SETUP", b"PLAY", b"PAUSE", b"TEARDOWN",
     b"GET_PARAMETER", b"SET_PARAMETER", b"REDIRECT", b"RECORD", b"FLUSH", b"GET", b"POST"}
)
cdef int M_GET = 0
cdef int M_CONNECT = 7
cdef int M_SOURCE = 33
cdef int M_PRI = 34

# -- states ------------------------------------------------------------------------------------
cdef enum:  # the parser's (framer.py's numbers)
    HEAD = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3
    IDLE = 4
    CLOSED = 5
    UPGRADED = 6
    EOF = 7

cdef enum:  # inside a head or trailer section
    R_METHOD, R_SP_URL, R_URL_START, R_SCHEMA, R_DELIM1, R_DELIM2, R_SERVER, R_SERVER_AT,
    R_PATH, R_URL_CR, R_SP_PROTO, R_PROTO, R_SLASH, R_MAJOR, R_DOT, R_MINOR, R_LINE_CR,
    R_LINE_LF, R_PRI,
    S_PROTO, S_SLASH, S_MAJOR, S_DOT, S_MINOR, S_SP, S_CODE, S_CODE_AFTER, S_REASON, S_LINE_LF,
    H_START, H_FIELD_START, H_FIELD, H_VALUE_WS, H_EMPTY_LF, H_EMPTY_PEEK, H_VALUE, H_VALUE_LF,
    H_VALUE_PEEK, H_END_LF

cdef enum:  # inside a chunked body
    C_SIZE_START, C_SIZE, C_EXT_START, C_EXT_NAME, C_EXT_VALUE, C_EXT_Q, C_EXT_QPAIR,
    C_EXT_QDONE, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILERS

cdef enum:  # what llhttp records about the message (its F_* flags)
    F_CL = 1
    F_TE = 2
    F_CHUNKED = 4
    F_UPGRADE = 8
    F_CLOSE = 16
    F_KEEP_ALIVE = 32
    F_CONN_UPGRADE = 64

cdef enum:  # header names looked at
    K_OTHER, K_HOST, K_CL, K_TE, K_CONNECTION, K_PROXY_CONNECTION, K_UPGRADE, K_EXPECT

cdef enum:  # protocol names on a start line
    P_HTTP = 1
    P_RTSP = 2
    P_ICE = 3

cdef bytes _B_HTTP = b"HTTP"
cdef bytes _B_RTSP = b"RTSP"
cdef bytes _B_ICE = b"ICE"
cdef bytes _PREFACE = b"\r\n\r\n"
cdef bytes _V10 = b"1.0"
cdef bytes _V11 = b"1.1"
cdef tuple _NAMES = (
    b"", b"host", b"content-length", b"transfer-encoding", b"connection", b"proxy-connection",
    b"upgrade", b"expect",
)
cdef unsigned long long _U64_MAX = 0xFFFFFFFFFFFFFFFF


cdef inline bint _ieq(const unsigned char* b, Py_ssize_t n, bytes lower):
    """``b[:n]`` equals the lower-case ASCII ``lower``, ignoring case."""
    cdef const unsigned char* w = <const unsigned char*>PyBytes_AS_STRING(lower)
    cdef Py_ssize_t k
    if n != PyBytes_GET_SIZE(lower):
        return False
    for k in range(n):  # k < n == len(lower); the caller guarantees n bytes at b
        if (b[k] | 0x20 if 65 <= b[k] <= 90 else b[k]) != w[k]:
            return False
    return True


cdef inline int _kind(const unsigned char* b, Py_ssize_t n):
    if n == 4:
        return K_HOST if _ieq(b, n, b"host") else K_OTHER
    if n == 14:
        return K_CL if _ieq(b, n, b"content-length") else K_OTHER
    if n == 17:
        return K_TE if _ieq(b, n, b"transfer-encoding") else K_OTHER
    if n == 10:
        return K_CONNECTION if _ieq(b, n, b"connection") else K_OTHER
    if n == 16:
        return K_PROXY_CONNECTION if _ieq(b, n, b"proxy-connection") else K_OTHER
    if n == 7:
        return K_UPGRADE if _ieq(b, n, b"upgrade") else K_OTHER
    if n == 6:
        return K_EXPECT if _ieq(b, n, b"expect") else K_OTHER
    return K_OTHER


cdef bytes _lower(const unsigned char* b, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t k
    for k in range(n):  # out has n bytes, b has n bytes (caller)
        o[k] = b[k] | 0x20 if 65 <= b[k] <= 90 else b[k]
    return out


cdef int _method_index(const unsigned char* b, Py_ssize_t n):
    """Index of ``b[:n]`` in _METHODS, or -1."""
    cdef Py_ssize_t k
    cdef bytes m
    for k in range(len(_METHODS)):
        m = <bytes>_METHODS[k]
        if PyBytes_GET_SIZE(m) == n and memcmp(PyBytes_AS_STRING(m), b, n) == 0:
            return <int>k
    return -1


cdef bint _method_prefix(const unsigned char* b, Py_ssize_t n):
    """``b[:n]`` begins some method (llhttp refuses a method at its first impossible byte)."""
    cdef bytes m
    for m in _METHODS:
        if PyBytes_GET_SIZE(m) >= n and memcmp(PyBytes_AS_STRING(m), b, n) == 0:
            return True
    return False


cdef unsigned int _connection_flags(const unsigned char* b, Py_ssize_t start, Py_ssize_t stop):
    """The tokens of a Connection value that matter (close, keep-alive, upgrade) as flags:
    comma-separated, trimmed of spaces and tabs, any case."""
    cdef unsigned int flags = 0
    cdef Py_ssize_t end, a, z
    while start <= stop:
        end = start
        while end < stop and b[end] != 44:
            end += 1
        a, z = start, end
        while a < z and (b[a] == 32 or b[a] == 9):
            a += 1
        while z > a and (b[z - 1] == 32 or b[z - 1] == 9):
            z -= 1
        if _ieq(b + a, z - a, b"close"):
            flags |= F_CLOSE
        elif _ieq(b + a, z - a, b"keep-alive"):
            flags |= F_KEEP_ALIVE
        elif _ieq(b + a, z - a, b"upgrade"):
            flags |= F_CONN_UPGRADE
        start = end + 1
    return flags


cdef inline bint _keeps(bytes version, bint has_connection, unsigned int flags):
    """RFC 9112 9.3 (fields.py's keep_alive): HTTP/1.1 persists unless ``close``; HTTP/1.0 only
    with ``keep-alive``."""
    if not has_connection:
        return version == _V11
    if flags & F_CLOSE:
        return False
    return version == _V11 or flags & F_KEEP_ALIVE


cdef bint _element_is_chunked(const unsigned char* b, Py_ssize_t start, Py_ssize_t stop):
    """One Transfer-Encoding list element, as llhttp reads it: OWS, ``chunked``, spaces."""
    while start < stop and (b[start] == 32 or b[start] == 9):
        start += 1
    if stop - start < 7 or not _ieq(b + start, 7, b"chunked"):
        return False
    start += 7
    while start < stop and b[start] == 32:
        start += 1
    return start == stop


cdef class _Framer:
    """State shared by both directions; the module doc says how it reads."""

    cdef bint _response
    cdef Py_ssize_t _max_head, _max_headers, _max_target
    cdef long long _max_body  # -1: no limit
    cdef int _state
    cdef object _error
    cdef list _events
    cdef bint _cr, _started, _head_done, _keep, _line_ok, _line_read, _proto, _poison
    cdef int _first
    cdef Py_ssize_t _head_len
    cdef unsigned long long _remaining
    # the section (head or trailers) being read
    cdef bytearray _hbuf
    cdef int _hs, _hkind, _pkind, _pi, _major, _minor, _method_idx, _status, _ndigits
    cdef bint _trailing
    cdef Py_ssize_t _tok, _tok_end, _ustart, _uend, _vstart, _vend
    cdef unsigned int _flags
    cdef list _headers
    cdef object _method, _target, _version
    # framing fields gathered from the head
    cdef int _hosts
    cdef unsigned int _conn_flags  # of the Connection headers alone (fields.py's keep_alive)
    cdef unsigned long long _cl  # the first Content-Length, if it has at most 19 digits
    cdef object _te, _upg
    cdef bint _has_cl, _cl_ok, _has_conn, _upgrade_header, _expect
    # chunked body
    cdef int _cs
    cdef unsigned long long _chunk_left
    cdef Py_ssize_t _overhead
    cdef long long _body_seen

    def __init__(self, limits=_DEFAULT_LIMITS):
        self._max_head = limits.max_header_bytes
        self._max_headers = limits.max_headers
        self._max_target = limits.max_target_bytes
        self._max_body = -1 if limits.max_body_bytes is None else limits.max_body_bytes
        self._state = IDLE if self._response else HEAD
        self._error = None
        self._events = []
        self._hbuf = bytearray()
        self._keep = True
        self._reset()

    cdef void _reset(self):
        """Forget the message just finished (framer.py's ``_reset``)."""
        self._started = False
        self._head_done = False
        self._line_ok = False
        self._head_len = 0
        self._headers = []
        self._body_seen = 0
        self._proto = False
        self._method = None
        self._target = b""
        self._version = b""
        self._flags = 0
        self._hosts = 0
        self._has_cl = False
        self._has_conn = False
        self._conn_flags = 0
        self._te = None
        self._upg = None
        self._upgrade_header = False
        self._expect = False
        self._trailing = False

    cdef _refuse(self, str message, int status):
        return RemoteProtocolError(message, 502 if self._response else status)

    # -- the section reader ----------------------------------------------------------------------
    cdef Py_ssize_t _scan(self, const unsigned char* b, Py_ssize_t i, Py_ssize_t end) except -2:
        """Read ``b[i:end]`` (offsets from the section's first byte); the offset just past the
        section's end, or -1 when it needs more bytes. Raises RemoteProtocolError."""
        cdef int s = self._hs
        cdef unsigned char c
        cdef Py_ssize_t n
        cdef int k
        try:
            while i < end:
                c = b[i]
                if s == H_VALUE:
                    while i < end and HCHAR[b[i]]:
                        i += 1
                    if i == end:
                        break
                    c = b[i]
                    if c == 13:
                        self._vend = i
                        s = H_VALUE_LF
                    elif c == 10:
                        raise self._refuse("bare lf line ending", 400)
                    else:
                        raise self._refuse("invalid character in a header value", 400)
                elif s == H_VALUE_PEEK or s == H_EMPTY_PEEK:
                    if c == 32 or c == 9:
                        raise self._refuse("obs-fold line folding is not allowed", 400)
                    if s == H_EMPTY_PEEK:
                        if self._hkind == K_CL:
                            raise self._refuse("invalid content-length", 400)
                        if self._hkind == K_TE:
                            raise self._refuse("invalid transfer-encoding", 400)
                        self._vstart = self._vend = i
                    self._header(b)
                    s = H_FIELD_START
                    continue  # the byte starts the next line
                elif s == H_FIELD_START:
                    if c == 13:
                        s = H_END_LF
                    elif TOKEN[c]:
                        self._tok = i
                        s = H_FIELD
                    else:
                        raise self._refuse("invalid header name", 400)
                elif s == H_FIELD:
                    while i < end and TOKEN[b[i]]:
                        i += 1
                    if i == end:
                        break
                    if b[i] != 58:  # ":"
                        raise self._refuse("invalid header name", 400)
                    self._tok_end = i
                    k = self._hkind = _kind(b + self._tok, i - self._tok)
                    if k == K_TE and self._flags & F_CL or k == K_CL and self._flags & F_TE:
                        raise self._refuse("content-length together with transfer-encoding", 400)
                    s = H_VALUE_WS
                elif s == H_VALUE_WS:
                    while i < end and (b[i] == 32 or b[i] == 9):
                        i += 1
                    if i == end:
                        break
                    c = b[i]
                    if c == 13:
                        s = H_EMPTY_LF
                    elif c == 10:
                        raise self._refuse("invalid character in a header value", 400)
                    else:
                        self._vstart = i
                        k = self._hkind
                        if k == K_UPGRADE:
                            self._flags |= F_UPGRADE
                        elif k == K_TE:
                            if self._flags & F_CHUNKED and not self._response:
                                raise self._refuse("invalid transfer-encoding", 400)
                            self._flags = (self._flags | F_TE) & ~F_CHUNKED
                        elif k == K_CL and self._flags & F_CL:
                            raise self._refuse("duplicate content-length", 400)
                        s = H_VALUE
                        continue
                elif s == H_VALUE_LF or s == H_EMPTY_LF:
                    if c != 10:
                        raise self._refuse("bare cr line ending", 400)
                    s = H_VALUE_PEEK if s == H_VALUE_LF else H_EMPTY_PEEK
                elif s == H_END_LF:
                    if c != 10:
                        raise self._refuse("bare cr line ending", 400)
                    self._hs = H_FIELD_START
                    return i + 1
                elif s == H_START:
                    if c == 32:
                        raise self._refuse("whitespace before the first header", 400)
                    s = H_FIELD_START
                    continue
                elif s == R_PATH:
                    while i < end and UCHAR[b[i]]:
                        i += 1
                    if i == end:
                        break
                    c = b[i]
                    if c != 32 and c != 13 and c != 10:
                        raise self._refuse("invalid request target", 400)
                    self._url_end(i)
                    if c == 32:
                        s = R_SP_PROTO
                    elif c == 13:
                        s = R_URL_CR
                    else:
                        self._line_end_09(b, i)
                        s = H_START
                elif s == S_REASON:
                    while i < end and b[i] != 13 and b[i] != 10:
                        i += 1
                    if i == end:
                        break
                    if b[i] == 10:
                        raise self._refuse("bare lf line ending", 502)
                    self._url_end(i)
                    s = S_LINE_LF
                elif s < S_PROTO:
                    s = self._request_line(b, i, c, s)
                else:
                    s = self._status_line(b, i, c, s)
                i += 1
        finally:
            self._hs = s
        return -1

    cdef int _request_line(self, const unsigned char* b, Py_ssize_t i, unsigned char c,
                           int s) except -1:
        """One byte of a request line, in state ``s``; the next state."""
        cdef int k
        if s == R_METHOD:
            if c == 32:
                k = self._method_idx = _method_index(b, i)
                if k < 0:
                    raise self._bad_method()
                return R_SP_URL
            if i >= 13 or not MCHAR[c]:
                raise self._bad_method()
            return R_METHOD
        if s == R_SP_URL:
            if c == 32:
                return R_SP_URL
            self._ustart = i
            if self._method_idx == M_CONNECT:
                return self._request_line(b, i, c, R_SERVER)
            if c == 47 or c == 42:  # "/" "*"
                return R_PATH
            if 65 <= (c & ~0x20) <= 90:
                return R_SCHEMA
            raise self._refuse("invalid request target", 400)
        if s == R_SCHEMA:
            if 65 <= (c & ~0x20) <= 90:
                return R_SCHEMA
            if c == 58:
                return R_DELIM1
            raise self._refuse("invalid request target", 400)
        if s == R_DELIM1 or s == R_DELIM2:
            if c != 47:
                raise self._refuse("invalid request target", 400)
            return R_DELIM2 if s == R_DELIM1 else R_SERVER
        if s == R_SERVER or s == R_SERVER_AT:
            if SERVER[c]:
                return s
            if c == 64:  # "@"
                if s == R_SERVER_AT:
                    raise self._refuse("invalid request target", 400)
                return R_SERVER_AT
            if c == 47 or c == 63:  # "/" "?"
                return R_PATH
            if c == 32 or c == 13 or c == 10:
                self._url_end(i)
                if c == 10:
                    self._line_end_09(b, i)
                    return H_START
                return R_SP_PROTO if c == 32 else R_URL_CR
            raise self._refuse("invalid request target", 400)
        if s == R_URL_CR:
            if c != 10:
                raise self._refuse("invalid request target", 400)
            self._line_end_09(b, i)
            return H_START
        if s == R_SP_PROTO:
            if c == 32:
                return R_SP_PROTO
            self._tok = i
            s = R_PROTO
        if s == R_PROTO:
            self._protocol_byte(i - self._tok, c)
            if self._pi:
                return R_PROTO
            k = self._method_idx
            if self._pkind == P_HTTP and k >= _N_HTTP or (
                self._pkind == P_RTSP and _METHODS[k] not in _RTSP
            ):
                raise self._bad_method()
            if self._pkind == P_ICE and k != M_SOURCE:
                raise self._refuse("malformed request", 400)
            return R_SLASH
        if s == R_SLASH:
            if c != 47:
                raise self._refuse("malformed start line", 400)
            return R_MAJOR
        if s == R_MAJOR or s == R_MINOR:
            if not 48 <= c <= 57:
                raise self._refuse("malformed start line", 400)
            if s == R_MAJOR:
                self._major = c - 48
                return R_DOT
            self._minor = c - 48
            self._check_version(505)
            return R_PRI if self._method_idx == M_PRI else R_LINE_CR
        if s == R_DOT:
            if c != 46:
                raise self._refuse("malformed start line", 400)
            return R_MINOR
        if s == R_LINE_CR:
            if c != 13:
                raise self._refuse("malformed start line", 400)
            return R_LINE_LF
        if s == R_LINE_LF:
            if c != 10:
                raise self._refuse("malformed start line", 400)
            self._version = self._version_bytes()
            self._proto = self._pkind == P_HTTP
            self._line_done(b)
            return H_START
        # R_PRI: llhttp waits for the whole HTTP/2 preface; framer.py stops it at CRLFCRLF
        if c != _PREFACE[self._pi]:
            raise self._refuse("malformed start line", 400)
        self._pi += 1
        if self._pi < 4:
            return R_PRI
        if self._major == 2 and self._minor == 0:
            raise self._refuse("unsupported http version", 505)
        raise self._refuse("malformed request head", 400)

    cdef int _status_line(self, const unsigned char* b, Py_ssize_t i, unsigned char c,
                          int s) except -1:
        """One byte of a status line, in state ``s``; the next state."""
        if s == S_PROTO:
            self._protocol_byte(i, c)
            return S_PROTO if self._pi else S_SLASH
        if s == S_SLASH or s == S_DOT or s == S_SP:
            if c != (47 if s == S_SLASH else 46 if s == S_DOT else 32):
                raise self._refuse("malformed start line", 502)
            if s == S_SP:
                self._status = self._ndigits = 0
            return S_MAJOR if s == S_SLASH else S_MINOR if s == S_DOT else S_CODE
        if s == S_MAJOR or s == S_MINOR:
            if not 48 <= c <= 57:
                raise self._refuse("malformed start line", 502)
            if s == S_MAJOR:
                self._major = c - 48
                return S_DOT
            self._minor = c - 48
            self._check_version(502)
            return S_SP
        if s == S_CODE:
            if not 48 <= c <= 57:
                raise self._refuse("invalid status line", 502)
            self._status = self._status * 10 + c - 48
            self._ndigits += 1
            return S_CODE if self._ndigits < 3 else S_CODE_AFTER
        if s == S_CODE_AFTER:
            if c == 32:
                self._ustart = i + 1
                return S_REASON
            if c == 13:
                self._ustart = i
                self._url_end(i)
                return S_LINE_LF
            raise self._refuse("invalid status line", 502)
        # S_LINE_LF
        if c != 10:
            raise self._refuse("bare cr line ending", 502)
        self._version = self._version_bytes()
        self._proto = self._pkind == P_HTTP
        self._target = PyBytes_FromStringAndSize(
            <const char*>b + self._ustart, self._uend - self._ustart
        )
        self._line_ok = True
        return H_START

    cdef int _protocol_byte(self, Py_ssize_t k, unsigned char c) except -1:
        """Byte ``k`` of ``HTTP``, ``RTSP`` or ``ICE``; ``_pi`` is 0 once the word is whole."""
        cdef bytes word
        if k == 0:
            self._pkind = P_HTTP if c == 72 else P_RTSP if c == 82 else P_ICE if c == 73 else 0
            if not self._pkind:
                raise self._refuse("malformed start line", 400)
        word = _B_HTTP if self._pkind == P_HTTP else _B_RTSP if self._pkind == P_RTSP else _B_ICE
        if c != word[k]:
            raise self._refuse("malformed start line", 400)
        self._pi = 0 if k + 1 == len(word) else 1
        return 0

    cdef int _check_version(self, int status) except -1:
        cdef int v = self._major * 10 + self._minor
        if v != 9 and v != 10 and v != 11 and v != 20:
            raise self._refuse("unsupported http version", status)
        return 0

    cdef bytes _version_bytes(self):
        if self._major == 1:
            return _V11 if self._minor == 1 else _V10 if self._minor == 0 else b"1.%d" % self._minor
        return b"%d.%d" % (self._major, self._minor)

    cdef _bad_method(self):
        if 65 <= self._first <= 90:  # an upper-case letter: a method we do not know
            return self._refuse("unsupported method", 501)
        return self._refuse("malformed request line", 400)

    cdef int _url_end(self, Py_ssize_t i) except -1:
        """The target (or reason) ends at ``i``: framer.py's ``_on_start_line`` limit."""
        self._uend = i
        if i - self._ustart > self._max_target:
            raise self._refuse(
                "request target too long" if not self._response else "reason too long", 414
            )
        return 0

    cdef int _line_done(self, const unsigned char* b) except -1:
        self._method = _METHODS[self._method_idx]
        self._target = PyBytes_FromStringAndSize(
            <const char*>b + self._ustart, self._uend - self._ustart
        )
        self._line_ok = True
        return 0

    cdef int _line_end_09(self, const unsigned char* b, Py_ssize_t nl) except -1:
        """An HTTP/0.9 request line (no version) ending at ``nl``: framer.py reads the protocol
        and version off its last bytes, as it does for every request line."""
        self._version = PyBytes_FromStringAndSize(<const char*>b + nl - 4, 3)
        self._proto = nl >= 10 and b[nl - 10] == 32 and memcmp(b + nl - 9, b"HTTP/", 5) == 0
        self._line_done(b)
        return 0

    cdef int _header(self, const unsigned char* b) except -1:
        """A header (or trailer) line has ended: record it, and what llhttp makes of it."""
        cdef int k = self._hkind
        cdef Py_ssize_t vs = self._vstart, ve = self._vend, j
        cdef bytes name, raw, value
        cdef unsigned int flags = 0
        while ve > vs and (b[ve - 1] == 32 or b[ve - 1] == 9):
            ve -= 1
        name = _NAMES[k] if k != K_OTHER else _lower(b + self._tok, self._tok_end - self._tok)
        value = PyBytes_FromStringAndSize(<const char*>b + vs, ve - vs)
        self._headers.append((name, value))
        if k == K_OTHER:
            return 0
        if k == K_CL:
            self._check_length(b, vs, self._vend, True)
            self._flags |= F_CL
        elif k == K_TE:
            raw = PyBytes_FromStringAndSize(<const char*>b + vs, self._vend - vs)
            self._te_flags(b, vs, self._vend, True)
            if not self._trailing:
                self._te = raw if self._te is None else self._te + b"," + raw
            return 0
        elif k == K_CONNECTION or k == K_PROXY_CONNECTION:
            flags = _connection_flags(b, vs, ve)
            self._flags |= flags
        if self._trailing:
            return 0
        if k == K_HOST:
            self._hosts += 1
        elif k == K_CL:
            if not self._has_cl:  # fields.py's content_length: at most 19 digits after zeros
                self._has_cl = True
                j = vs
                while j < ve and b[j] == 48:
                    j += 1
                self._cl_ok = ve - j <= 19
                self._cl = 0
                if self._cl_ok:
                    while j < ve:
                        self._cl = self._cl * 10 + (b[j] - 48)
                        j += 1
        elif k == K_CONNECTION:
            self._has_conn = True
            self._conn_flags |= flags
        elif k == K_UPGRADE:
            self._upg = value if self._upg is None else self._upg + b", " + value
            self._upgrade_header = True
        elif k == K_EXPECT:
            self._expect = self._expect or value.lower() == b"100-continue"
        return 0

    cdef int _check_length(self, const unsigned char* b, Py_ssize_t vs, Py_ssize_t ve,
                           bint whole) except -1:
        """llhttp's Content-Length: digits (up to 2**64 - 1), then only spaces and tabs;
        ``whole``: the value has ended (else it is its first part, as far as it came)."""
        cdef Py_ssize_t j = vs
        cdef unsigned long long cl = 0
        while j < ve and 48 <= b[j] <= 57:
            if cl > (_U64_MAX - (b[j] - 48)) // 10:
                raise self._refuse("invalid content-length", 400)
            cl = cl * 10 + b[j] - 48
            j += 1
        if j == vs and (whole or j < ve):
            raise self._refuse("invalid content-length", 400)
        while j < ve and (b[j] == 32 or b[j] == 9):
            j += 1
        if j != ve:
            raise self._refuse("invalid content-length", 400)
        return 0

    cdef int _te_flags(self, const unsigned char* b, Py_ssize_t vs, Py_ssize_t ve,
                       bint whole) except -1:
        """llhttp's reading of a Transfer-Encoding value: chunked when its last element is, and
        (in a request) nothing may follow a chunked element; ``whole`` as for _check_length."""
        cdef Py_ssize_t start = vs, comma
        cdef const void* hit
        while True:
            hit = memchr(b + start, 44, ve - start)
            if hit == NULL:
                if whole and _element_is_chunked(b, start, ve):
                    self._flags |= F_CHUNKED
                return 0
            comma = <const unsigned char*>hit - b
            if not self._response and _element_is_chunked(b, start, comma):
                raise self._refuse("invalid transfer-encoding", 400)
            start = comma + 1

    cdef int _partial(self, const unsigned char* b, Py_ssize_t size) except -1:
        """A section stops mid-way (``b[:size]`` read) at the end of a feed: what llhttp would
        have refused by then that ``_scan`` has not (a method that no method begins with, a
        target over its limit, which llhttp reports as it ends each call)."""
        if self._hs == R_METHOD:
            if not _method_prefix(b, size):
                raise self._bad_method()
        elif self._hs == H_VALUE or self._hs == H_VALUE_LF or self._hs == H_VALUE_PEEK:
            if self._hkind == K_CL:
                self._check_length(b, self._vstart, size if self._hs == H_VALUE else self._vend, False)
            elif self._hkind == K_TE:
                self._te_flags(b, self._vstart, size if self._hs == H_VALUE else self._vend, False)
        elif (R_SP_URL < self._hs <= R_PATH or self._hs == S_REASON) and (
            size - self._ustart > self._max_target
        ):
            raise self._refuse(
                "request target too long" if not self._response else "reason too long", 414
            )
        return 0

    # -- feeding -------------------------------------------------------------------------------
    cdef Py_ssize_t _feed_section(self, bytes data, Py_ssize_t pos, Py_ssize_t n,
                                  Py_ssize_t room) except -2:
        """Read a head or trailer section from ``data[pos:]``, at most ``room`` bytes of it; the
        offset just past its end, or -1 once all (up to ``room``) was read and it goes on."""
        cdef Py_ssize_t take = n - pos if n - pos <= room else room
        cdef Py_ssize_t old = PyByteArray_GET_SIZE(self._hbuf), r
        cdef const unsigned char* b
        if old:
            self._hbuf += memoryview(data)[pos : pos + take]  # (one copy)
            b = <const unsigned char*>PyByteArray_AS_STRING(self._hbuf)
        else:
            b = <const unsigned char*>PyBytes_AS_STRING(data) + pos
        r = self._scan(b, old, old + take)
        if r >= 0:
            if old:
                self._hbuf = bytearray()
            return pos + r - old
        if not old:
            self._hbuf = bytearray(data[pos : pos + take])
            b = <const unsigned char*>PyByteArray_AS_STRING(self._hbuf)
        self._partial(b, old + take)
        if take < n - pos:
            raise self._refuse("header section too large", 431)
        return -1

    cdef Py_ssize_t _skip_blank(self, const unsigned char* b, Py_ssize_t pos,
                                Py_ssize_t n) except -1:
        """Consume CRLFs before a message (RFC 9112 2.2); a lone CR or LF there is refused."""
        cdef Py_ssize_t start = pos, j
        cdef bint lf = self._cr  # a CR came last: an LF must follow
        while pos < n and (b[pos] == 13 or b[pos] == 10):
            pos += 1
        for j in range(start, pos):
            if b[j] != (10 if lf else 13):
                raise self._refuse("bare cr or lf line ending", 400)
            lf = not lf
        if lf and pos != n:
            raise self._refuse("bare cr or lf line ending", 400)
        self._cr = lf
        self._head_len += pos - start
        if self._head_len > self._max_head:
            raise self._refuse("header section too large", 431)
        return pos

    cdef Py_ssize_t _feed_head(self, bytes data, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t r
        if not self._started:
            if b[pos] == 13 or b[pos] == 10 or self._cr:
                pos = self._skip_blank(b, pos, n)
                if pos == n:
                    return n
            if self._poison:
                # framer.py's llhttp decided to close after the last message and refuses this one
                raise self._refuse("malformed request" if not self._response else "malformed response", 400)
            self._started = True
            self._first = b[pos]
            self._hs = S_PROTO if self._response else R_METHOD
            self._pi = 0
        r = self._feed_section(data, pos, n, self._max_head - self._head_len)
        if r < 0:
            self._head_len += n - pos
            return n
        return self._head_complete(data, r, n)

    cdef Py_ssize_t _head_complete(self, bytes data, Py_ssize_t end, Py_ssize_t n) except -1:
        raise NotImplementedError

    cdef int _emit(self, bytes data, Py_ssize_t start, Py_ssize_t stop) except -1:
        """Body bytes ``data[start:stop]`` as a Data event (the bytes themselves when whole)."""
        if stop == start:
            return 0
        self._body_seen += stop - start
        if self._max_body >= 0 and self._body_seen > self._max_body:
            raise self._refuse(
                "request body too large" if not self._response else "response body too large", 413
            )
        self._events.append(
            _Data(data if start == 0 and stop == PyBytes_GET_SIZE(data) else data[start:stop])
        )
        return 0

    cdef int _message_end(self, list trailers, bint fresh) except -1:
        """The message ended; ``fresh``: framer.py replaces its llhttp after this one."""
        cdef unsigned int flags = self._flags
        cdef bint llhttp_keep
        self._events.append(_EndOfMessage(trailers))
        if self._state != UPGRADED:
            if self._keep:
                self._state = IDLE if self._response else HEAD
                if self._major > 0 and self._minor > 0:
                    llhttp_keep = not flags & F_CLOSE
                else:
                    llhttp_keep = flags & F_KEEP_ALIVE
                self._poison = not fresh and not llhttp_keep
            else:
                self._state = CLOSED
        self._reset()
        return 0

    cdef int _check_trailers(self, list trailers) except -1:
        """The head's limits, applied to the trailer section once it is complete."""
        cdef Py_ssize_t size = 0
        if len(trailers) > self._max_headers:
            raise self._refuse("too many trailer fields", 431)
        for name, value in trailers:
            size += len(name) + len(value) + 4
        if size > self._max_head:
            raise self._refuse("trailer section too large", 431)
        return 0

    cdef Py_ssize_t _feed_length(self, bytes data, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef unsigned long long take = n - pos
        if take > self._remaining:
            take = self._remaining
        self._remaining -= take
        self._emit(data, pos, pos + <Py_ssize_t>take)
        if not self._remaining:
            self._message_end([], False)
        return pos + <Py_ssize_t>take

    cdef Py_ssize_t _feed_chunked(self, bytes data, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(data)
        cdef Py_ssize_t start = pos, last = -1, r
        cdef unsigned long long take
        cdef int cs = self._cs, h
        cdef unsigned char c
        cdef list trailers
        while pos < n:
            if cs == C_DATA:
                take = n - pos
                if take > self._chunk_left:
                    take = self._chunk_left
                self._emit(data, pos, pos + <Py_ssize_t>take)
                self._chunk_left -= take
                pos += <Py_ssize_t>take
                last = pos
                if not self._chunk_left:
                    cs = C_DATA_CR
                continue
            if cs == C_TRAILERS:
                self._cs = cs
                r = self._feed_section(data, pos, n, n - pos)
                if r < 0:
                    pos = n
                    break
                trailers = self._headers
                if trailers:
                    self._check_trailers(trailers)
                self._message_end(trailers, False)
                return r
            c = b[pos]
            if cs == C_SIZE_START or cs == C_SIZE:
                h = HEX[c]
                if h >= 0:
                    if self._chunk_left > (_U64_MAX - <unsigned long long>h) // 16:
                        raise self._refuse("invalid chunked encoding", 400)
                    self._chunk_left = self._chunk_left * 16 + <unsigned long long>h
                    cs = C_SIZE
                elif cs == C_SIZE and c == 13:
                    cs = C_SIZE_LF
                elif cs == C_SIZE and c == 59:  # ";"
                    cs = C_EXT_START
                else:
                    raise self._refuse("invalid chunked encoding", 400)
            elif cs == C_EXT_START:
                if c == 32 or c == 13:
                    raise self._refuse("invalid chunked encoding", 400)
                cs = C_EXT_NAME
                continue
            elif cs == C_EXT_NAME or cs == C_EXT_VALUE:
                if TOKEN[c]:
                    pass
                elif c == 59:
                    cs = C_EXT_START
                elif c == 13:
                    cs = C_SIZE_LF
                elif cs == C_EXT_NAME and c == 61:  # "="
                    cs = C_EXT_VALUE
                elif cs == C_EXT_VALUE and c == 34:  # '"'
                    cs = C_EXT_Q
                else:
                    raise self._refuse("invalid chunked encoding", 400)
            elif cs == C_EXT_Q:
                if c == 34:
                    cs = C_EXT_QDONE
                elif c == 92:  # backslash
                    cs = C_EXT_QPAIR
                elif not QDTEXT[c]:
                    raise self._refuse("invalid chunked encoding", 400)
            elif cs == C_EXT_QPAIR:
                if not QPAIR[c]:
                    raise self._refuse("invalid chunked encoding", 400)
                cs = C_EXT_Q
            elif cs == C_EXT_QDONE:
                if c == 59:
                    cs = C_EXT_START
                elif c == 13:
                    cs = C_SIZE_LF
                else:
                    raise self._refuse("invalid chunked encoding", 400)
            elif cs == C_SIZE_LF:
                if c != 10:
                    raise self._refuse("invalid chunked encoding", 400)
                if self._chunk_left:
                    cs = C_DATA
                else:
                    cs = C_TRAILERS
                    self._hs = H_FIELD_START
                    self._hbuf = bytearray()
            elif cs == C_DATA_CR:
                if c != 13:
                    raise self._refuse("invalid chunked encoding", 400)
                cs = C_DATA_LF
            else:  # C_DATA_LF
                if c != 10:
                    raise self._refuse("invalid chunked encoding", 400)
                cs = C_SIZE_START
            pos += 1
        self._cs = cs
        # What is not body is bounded as it streams (framer.py's guard, twice the head limit);
        # the trailer limits proper are checked when the message ends.
        if last >= 0:
            self._overhead = n - last
        else:
            self._overhead += n - start
            if self._overhead > 2 * self._max_head:
                raise self._refuse("chunked framing or trailers too large", 431)
        return n

    cdef int _start_chunked(self) except -1:
        self._state = CHUNKED
        self._cs = C_SIZE_START
        self._chunk_left = 0
        self._overhead = 0
        return 0

    cdef Py_ssize_t _feed_idle(self, bytes data, Py_ssize_t pos, Py_ssize_t n) except -1:
        cdef const unsigned char* b = <const unsigned char*>PyBytes_AS_STRING(data)
        if b[pos] == 13 or b[pos] == 10 or self._cr:
            pos = self._skip_blank(b, pos, n)
            if pos == n:
                return n
        raise self._refuse("data from upstream while no response was expected", 502)

    def feed(self, data):
        """Parse ``data``; raises :class:`RemoteProtocolError` for anything refused."""
        cdef Py_ssize_t pos = 0, n
        cdef int state
        cdef list events
        if self._error is not None:
            raise self._error
        if self._state >= UPGRADED:
            raise LocalProtocolError(
                "fed after an upgrade" if self._state == UPGRADED else "fed after end of file"
            )
        if type(data) is not bytes:
            data = bytes(data)
        events = self._events = []
        n = PyBytes_GET_SIZE(data)
        try:
            while pos < n:
                state = self._state
                if state == HEAD:
                    pos = self._feed_head(data, pos, n)
                elif state == LENGTH:
                    pos = self._feed_length(data, pos, n)
                elif state == CHUNKED:
                    pos = self._feed_chunked(data, pos, n)
                elif state == UNTIL_CLOSE:
                    self._emit(data, pos, n)
                    pos = n
                elif state == IDLE:
                    pos = self._feed_idle(data, pos, n)
                else:  # CLOSED, or UPGRADED with its leftover already taken
                    break
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        return events


cdef class RequestParser(_Framer):
    """Parses a stream of requests (pipelining allowed) from one client connection."""

    def __init__(self, limits=_DEFAULT_LIMITS):
        self._response = False
        _Framer.__init__(self, limits)

    @property
    def head_in_progress(self):
        """A request head has begun (more than blank lines) and has not ended yet."""
        return self._started and not self._head_done

    def partial_request(self):
        """``(method, target)`` of a request whose head was refused or is still being read,
        once its request line has been read whole (None before that, or when the line itself
        was refused). The target is as received (an absolute form is not split yet)."""
        if self._started and (
            self._head_done or (self._line_ok and (self._proto or len(self._headers) > 0))
        ):
            return self._method, self._target
        return None

    def feed_eof(self):
        """The client closed; an error if it was in the middle of a message."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == UPGRADED:
            raise LocalProtocolError("fed after an upgrade")
        if state == CLOSED or state == EOF or (state == HEAD and not self._started):
            self._state = EOF
            return []
        self._error = self._refuse("connection closed in the middle of a request", 400)
        raise self._error

    cdef Py_ssize_t _head_complete(self, bytes data, Py_ssize_t end, Py_ssize_t n) except -1:
        """framer.py's request ``_on_headers_complete``, then what llhttp does after it."""
        cdef unsigned int flags = self._flags
        cdef bint upgrade
        self._head_done = True
        version = self._version
        if version != _V11 and version != _V10:
            raise self._refuse("unsupported http version", 505)
        if not self._proto:
            raise self._refuse("not an http request", 400)
        headers = self._headers
        if len(headers) > self._max_headers:
            raise self._refuse("too many header fields", 431)
        self._headers = []  # trailers, if any, go here
        self._trailing = True
        method = self._method
        if self._method_idx == M_CONNECT:
            raise self._refuse("connect is not supported", 501)
        if self._hosts != 1:
            if self._hosts:
                raise self._refuse("several host headers", 400)
            if version == _V11:
                raise self._refuse("missing host header", 400)
        target = self._target
        if not PyBytes_GET_SIZE(target) or PyBytes_AS_STRING(target)[0] != 47:  # not "/..."
            target, authority = split_target(method, target)
            if authority is not None:
                headers = [(b"host", authority), *(h for h in headers if h[0] != b"host")]
        length = None
        coding = self._te
        if coding is not None:
            if version == _V10:
                raise self._refuse("transfer-encoding in an http/1.0 request", 400)
            if self._has_cl:
                raise self._refuse("content-length together with transfer-encoding", 400)
            if not ends_chunked(coding):
                raise self._refuse("transfer-encoding does not end with chunked", 400)
            body = _CHUNKED_KIND
        elif self._has_cl:
            if not self._cl_ok:
                raise self._refuse("invalid content-length", 400)
            length = self._cl
            if self._max_body >= 0 and length > self._max_body:
                raise self._refuse("request body too large", 413)
            body = _LENGTH_KIND
        else:
            body = _NONE
        keep = self._keep = _keeps(version, self._has_conn, self._conn_flags)
        switch = None
        upgrade = flags & F_UPGRADE and flags & F_CONN_UPGRADE  # llhttp's "should upgrade"
        if upgrade:
            # llhttp stops right after this head whatever framer.py does, skipping any body.
            if length or body is _CHUNKED_KIND:
                raise self._refuse("upgrade request with a body", 400)
            if self._method_idx == M_GET and version == _V11 and self._upg:
                switch = self._upg.lower()
                self._state = UPGRADED
        elif body is _CHUNKED_KIND and not flags & F_CHUNKED:
            raise self._refuse("invalid transfer-encoding", 400)
        if length:
            self._remaining = length
            self._state = LENGTH
        elif body is _CHUNKED_KIND:
            self._start_chunked()
        self._events.append(
            _Request(
                method,
                target,
                version,
                headers,
                body,
                length,
                keep,
                switch,
                self._expect and version == _V11,
            )
        )
        if self._state == HEAD or self._state == UPGRADED:
            self._message_end([], upgrade)
            if self._state == UPGRADED:
                self._events.append(Upgraded(data[end:]))
                return n
        return end


cdef class ResponseParser(_Framer):
    """Parses responses from one upstream connection, one per request sent."""

    cdef bint _head_request

    def __init__(self, limits=_DEFAULT_LIMITS):
        self._response = True
        _Framer.__init__(self, limits)
        self._head_request = False

    @property
    def reusable(self):
        """A response ended cleanly and the connection may carry another request."""
        return self._state == IDLE and self._error is None

    def expect(self, method):
        """Tell the parser which request the next response answers (HEAD has no body)."""
        if self._error is not None:
            raise self._error
        if self._state != IDLE:
            raise LocalProtocolError(
                "expect() while a response is in progress"
                if self._state < IDLE
                else "expect() on a connection that has ended"
            )
        self._head_request = method == b"HEAD"
        self._state = HEAD

    def feed_eof(self):
        """Upstream closed: ends an UNTIL_CLOSE body, else an error if mid-message."""
        if self._error is not None:
            raise self._error
        state = self._state
        if state == UPGRADED:
            raise LocalProtocolError("fed after an upgrade")
        if state == UNTIL_CLOSE:
            self._reset()
            self._state = EOF
            return [_EndOfMessage([])]
        if state >= IDLE or (state == HEAD and not self._started):
            self._state = EOF
            return []
        self._error = self._refuse("connection closed in the middle of a response", 502)
        raise self._error

    cdef Py_ssize_t _head_complete(self, bytes data, Py_ssize_t end, Py_ssize_t n) except -1:
        """framer.py's response ``_on_headers_complete``."""
        cdef int status = self._status
        self._head_done = True
        version = self._version
        if version != _V11 and version != _V10:
            raise self._refuse("unsupported http version", 502)
        if not self._proto:
            raise self._refuse("not an http response", 502)
        headers = self._headers
        if len(headers) > self._max_headers:
            raise self._refuse("too many header fields", 431)
        self._headers = []
        self._trailing = True
        if status < 100:
            raise self._refuse("invalid status code", 502)
        coding = self._te
        if self._has_cl and coding is not None:
            raise self._refuse("content-length together with transfer-encoding", 502)
        length = None
        if self._has_cl:
            if not self._cl_ok:
                raise self._refuse("invalid content-length", 502)
            length = self._cl
        if status < 200 or status == 204 or status == 304 or self._head_request:
            body = _NONE
            length = None
        elif coding is not None:
            if version == _V10:
                raise self._refuse("transfer-encoding in an http/1.0 response", 502)
            if not ends_chunked(coding) or not self._flags & F_CHUNKED:
                raise self._refuse("transfer-encoding does not end with chunked", 502)
            body = _CHUNKED_KIND
        elif length is not None:
            if self._max_body >= 0 and length > self._max_body:
                raise self._refuse("response body too large", 502)
            body = _LENGTH_KIND
        else:
            body = _UNTIL_CLOSE_KIND
        if status == 101 and (version != _V11 or not self._upgrade_header):
            raise self._refuse("101 switching protocols without upgrade", 502)
        keep = _keeps(version, self._has_conn, self._conn_flags) and body is not _UNTIL_CLOSE_KIND
        events = self._events
        events.append(_Response(status, self._target, version, headers, body, length, keep))
        if body is _NONE:
            # Ended at its head (a HEAD response, 1xx, 204, 304): framer.py gives the next
            # response a fresh llhttp, so nothing of this one carries over.
            events.append(_EndOfMessage([]))
            self._poison = False
            if status == 101:
                self._state = UPGRADED
            elif status >= 200:
                self._state = IDLE if keep else CLOSED
            self._reset()
            if self._state == UPGRADED:
                events.append(Upgraded(data[end:]))
                return n
            return end
        self._keep = keep
        if body is _CHUNKED_KIND:
            self._start_chunked()
        elif body is _UNTIL_CLOSE_KIND:
            self._state = UNTIL_CLOSE
        elif length:
            self._remaining = length
            self._state = LENGTH
        else:
            self._message_end([], False)
        return end
