# cython: language_level=3, embedsignature=True, binding=True
"""The compiled twin of the data plane's per-request work: access-log lines and header rewriting.

Same interface and the same output bytes as the pure modules it mirrors, which stay the
reference (``tests/proxy/test_fast_differential.py`` compares the two byte for byte):

* :class:`AccessRecord` and :class:`AccessLog` (``access_log.py``): the JSON line is written
  straight into one C buffer, with ``json.dumps``'s escaping (``ensure_ascii``: control
  characters, ``"``, ``\\``, DEL and non-ASCII as ``\\uXXXX``), its field order and its float
  repr; the time's ``YYYY-MM-DDTHH:MM:SS`` is formatted once per second and only the
  milliseconds per line. Lines stay in that buffer until a batch is written, so a request costs
  no ``bytes`` object, no ``dict`` and no ``datetime``.
* :func:`forwarded_request_headers`, :func:`request_head`, :func:`response_headers` and
  :func:`response_head` (``headers.py``): hop-by-hop removal and X-Forwarded-*/Forwarded/XFCC
  insertion, and the head serialized with serialize.py's refusals (header injection, empty or
  invalid names, invalid method or target), with the same error messages.

Memory safety: every write into the line buffer goes through ``_reserve`` with an upper bound
of what follows (an escaped code point is at most 12 bytes), and the line-end table grows the
same way; there is no fixed-size buffer but the 40 bytes of a formatted time.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport fabs, isfinite, modf
from libc.math cimport round as c_round
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec
from posix.unistd cimport write as c_write

import asyncio
import os
import sys
import time

from tlsgate.http import BodyKind, LocalProtocolError
from tlsgate.http.serialize import _PHRASES

__all__ = [
    "AccessLog",
    "AccessRecord",
    "forwarded_request_headers",
    "request_head",
    "response_head",
    "response_headers",
]


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct tm:
        int tm_sec
        int tm_min
        int tm_hour
        int tm_mday
        int tm_mon
        int tm_year
    tm *gmtime_r(const time_t *timep, tm *result)

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void *PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    unsigned int PyUnicode_READ(int kind, void *data, Py_ssize_t index)
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int *ptype) except NULL
    double PyOS_string_to_double(const char *s, char **endptr, object overflow_exception) \
        except? -1.0
    int Py_DTSF_ADD_DOT_0


# -- the access log ----------------------------------------------------------------------------

cdef class AccessRecord:
    """One access-log line (see ``access_log.AccessRecord``): the same fields, typed."""

    cdef public str client
    cdef public str method
    cdef public str target
    cdef public str host
    cdef public long status
    cdef public long long bytes_sent
    cdef public str upstream
    cdef public double duration
    cdef public str error
    cdef public str site

    def __init__(
        self,
        str client,
        str method,
        str target,
        str host,
        long status,
        long long bytes_sent,
        str upstream,
        double duration,
        str error="",
        str site="",
    ):
        self.client = client
        self.method = method
        self.target = target
        self.host = host
        self.status = status
        self.bytes_sent = bytes_sent
        self.upstream = upstream
        self.duration = duration
        self.error = error
        self.site = site

    cdef tuple _fields(self):
        return (
            self.client, self.method, self.target, self.host, self.status, self.bytes_sent,
            self.upstream, self.duration, self.error, self.site,
        )

    def __eq__(self, other):
        if type(other) is not AccessRecord:
            return NotImplemented
        return self._fields() == (<AccessRecord>other)._fields()

    def __repr__(self):
        return (
            f"AccessRecord(client={self.client!r}, method={self.method!r}, "
            f"target={self.target!r}, host={self.host!r}, status={self.status!r}, "
            f"bytes_sent={self.bytes_sent!r}, upstream={self.upstream!r}, "
            f"duration={self.duration!r}, error={self.error!r}, site={self.site!r})"
        )

    __hash__ = None


cdef const char *_HEX = b"0123456789abcdef"
#: As access_log.py: the target is cut to this many characters.
cdef Py_ssize_t _TARGET_MAX = 2048
#: As access_log.py: a batch goes out past this size, or half a second after its first line...
cdef Py_ssize_t _FLUSH_AT = 3072
#: ... in writes of whole lines of at most this many bytes (one line longer goes alone).
cdef Py_ssize_t _WRITE_MAX = 4096


cdef class AccessLog:
    """JSON lines, written in whole-line batches (see ``access_log.AccessLog``).

    ``clock`` (seconds since the epoch) is for tests; the default reads ``CLOCK_REALTIME``
    directly, which is what ``time.time`` reads.
    """

    cdef public object fd
    cdef int _fd
    cdef object _clock
    cdef char *_buf  # the lines not yet written, back to back
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef Py_ssize_t *_ends  # where each line of _buf ends
    cdef Py_ssize_t _lines
    cdef Py_ssize_t _ends_cap
    cdef object _handle
    cdef long long _second  # the second _stamp was formatted for
    cdef char _stamp[32]  # "YYYY-MM-DDTHH:MM:SS", NUL-terminated
    cdef int _stamp_len

    def __cinit__(self):
        self._buf = NULL
        self._ends = NULL
        self._second = -(1 << 62)
        self._stamp_len = 0

    def __init__(self, str target, *, clock=None):
        if target == "off":
            self.fd = None
        elif target == "stdout":
            self.fd = sys.stdout.fileno()
        else:
            self.fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._fd = -1 if self.fd is None else self.fd
        self._clock = None if clock is time.time else clock
        self._handle = None
        self._len = 0
        self._lines = 0
        self._cap = 8192
        self._buf = <char *>PyMem_Malloc(self._cap)
        self._ends_cap = 64
        self._ends = <Py_ssize_t *>PyMem_Malloc(self._ends_cap * sizeof(Py_ssize_t))
        if self._buf == NULL or self._ends == NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._buf)
        PyMem_Free(self._ends)

    cdef int _reserve(self, Py_ssize_t more) except -1:
        """Room for ``more`` bytes after ``_len``."""
        cdef Py_ssize_t cap = self._cap
        cdef char *grown
        if self._len + more <= cap:
            return 0
        while cap < self._len + more:
            cap *= 2
        grown = <char *>PyMem_Realloc(self._buf, cap)
        if grown == NULL:
            raise MemoryError()
        self._buf = grown
        self._cap = cap
        return 0

    cdef inline void _put(self, const char *data, Py_ssize_t size) noexcept:
        # (callers reserved the room)
        memcpy(self._buf + self._len, data, size)
        self._len += size

    cdef int _string(self, str value, Py_ssize_t limit) except -1:
        """``value`` as json.dumps writes a str (ensure_ascii), at most ``limit`` code points
        of it; None as ``null``."""
        cdef Py_ssize_t n, i
        cdef int kind
        cdef void *data
        cdef unsigned int c, high, low
        cdef char *out
        if value is None:
            self._reserve(4)
            self._put(b"null", 4)
            return 0
        n = PyUnicode_GET_LENGTH(value)
        if 0 <= limit < n:
            n = limit
        self._reserve(2 + 12 * n)  # (a code point escapes to at most 12 bytes)
        kind = PyUnicode_KIND(value)
        data = PyUnicode_DATA(value)
        out = self._buf + self._len
        out[0] = b'"'
        out += 1
        for i in range(n):
            c = PyUnicode_READ(kind, data, i)
            if 0x20 <= c <= 0x7E and c != 0x22 and c != 0x5C:
                out[0] = <char>c
                out += 1
            elif c == 0x22 or c == 0x5C:
                out[0] = b'\\'
                out[1] = <char>c
                out += 2
            elif c == 0x0A or c == 0x0D or c == 0x09 or c == 0x08 or c == 0x0C:
                out[0] = b'\\'
                out[1] = b'n' if c == 0x0A else b'r' if c == 0x0D else b't' if c == 0x09 else (
                    b'b' if c == 0x08 else b'f'
                )
                out += 2
            else:
                if c >= 0x10000:
                    high = 0xD800 + ((c - 0x10000) >> 10)
                    low = 0xDC00 + ((c - 0x10000) & 0x3FF)
                    _u_escape(out, high)
                    out += 6
                    c = low
                _u_escape(out, c)
                out += 6
        out[0] = b'"'
        out += 1
        self._len = out - self._buf
        return 0

    cdef int _time(self) except -1:
        """``"time":"2026-12-07T10:00:00.123+00:00",`` for now (datetime's isoformat)."""
        cdef timespec ts
        cdef double t, intpart, frac
        cdef long long second
        cdef long ms
        cdef tm parts
        cdef time_t as_time
        cdef char tail[16]
        cdef int n
        if self._clock is None:
            clock_gettime(CLOCK_REALTIME, &ts)
            second = ts.tv_sec
            ms = ts.tv_nsec // 1000000
        else:
            # datetime.fromtimestamp's rounding: to the microsecond, half to even.
            t = self._clock()
            frac = modf(t, &intpart)
            frac = _round_half_even(frac * 1e6)
            if frac >= 1e6:
                frac -= 1e6
                intpart += 1.0
            elif frac < 0:
                frac += 1e6
                intpart -= 1.0
            second = <long long>intpart
            ms = (<long>frac) // 1000
        if second != self._second:
            as_time = <time_t>second
            if gmtime_r(&as_time, &parts) == NULL or not 1 <= parts.tm_year + 1900 <= 9999:
                raise ValueError("year is out of range")
            self._stamp_len = snprintf(
                self._stamp, sizeof(self._stamp), "%04d-%02d-%02dT%02d:%02d:%02d",
                parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday, parts.tm_hour,
                parts.tm_min, parts.tm_sec,
            )
            self._second = second
        n = snprintf(tail, sizeof(tail), ".%03ld+00:00\",", ms)
        self._reserve(9 + self._stamp_len + n)
        self._put(b'{"time":"', 9)
        self._put(self._stamp, self._stamp_len)
        self._put(tail, n)
        return 0

    cdef int _number(self, long long value) except -1:
        cdef char digits[24]
        cdef int n = snprintf(digits, sizeof(digits), "%lld", value)
        self._reserve(n)
        self._put(digits, n)
        return 0

    cdef int _milliseconds(self, double duration) except -1:
        """``round(duration * 1000, 3)`` as json.dumps writes a float."""
        cdef double x = duration * 1000
        cdef char *text
        cdef Py_ssize_t n
        if not isfinite(x):
            literal = b"NaN" if x != x else b"Infinity" if x > 0 else b"-Infinity"
            self._reserve(len(literal))
            self._put(literal, len(literal))
            return 0
        # float.__round__(x, 3): correctly rounded to 3 decimals (dtoa mode 3), read back.
        text = PyOS_double_to_string(x, b'f', 3, 0, NULL)
        try:
            x = PyOS_string_to_double(text, NULL, None)
        finally:
            PyMem_Free(text)
        text = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            n = len(<bytes>text)
            self._reserve(n)
            self._put(text, n)
        finally:
            PyMem_Free(text)
        return 0

    def __call__(self, AccessRecord record not None):
        cdef Py_ssize_t start = self._len
        cdef Py_ssize_t *ends
        if self._fd < 0:
            return
        try:
            self._time()
            self._reserve(10)
            self._put(b'"client":', 9)
            self._string(record.client, -1)
            self._reserve(10)
            self._put(b',"method":', 10)
            self._string(record.method, -1)
            self._reserve(10)
            self._put(b',"target":', 10)
            self._string(record.target, _TARGET_MAX)
            self._reserve(8)
            self._put(b',"host":', 8)
            self._string(record.host, -1)
            self._reserve(10)
            self._put(b',"status":', 10)
            self._number(record.status)
            self._reserve(9)
            self._put(b',"bytes":', 9)
            self._number(record.bytes_sent)
            self._reserve(12)
            self._put(b',"upstream":', 12)
            self._string(record.upstream, -1)
            self._reserve(15)
            self._put(b',"duration_ms":', 15)
            self._milliseconds(record.duration)
            if record.error:
                self._reserve(9)
                self._put(b',"error":', 9)
                self._string(record.error, -1)
            self._reserve(2)
            self._put(b"}\n", 2)
            if self._lines == self._ends_cap:
                ends = <Py_ssize_t *>PyMem_Realloc(
                    self._ends, 2 * self._ends_cap * sizeof(Py_ssize_t)
                )
                if ends == NULL:
                    raise MemoryError()
                self._ends = ends
                self._ends_cap *= 2
        except BaseException:
            self._len = start  # (no half line is ever written)
            raise
        self._ends[self._lines] = self._len
        self._lines += 1
        if self._len > _FLUSH_AT:
            self.flush()
        elif self._handle is None:
            self._handle = asyncio.get_running_loop().call_later(0.5, self.flush)

    def flush(self):
        cdef Py_ssize_t i, start = 0, end = 0, line_end
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._fd < 0 or self._lines == 0:
            return
        for i in range(self._lines):
            line_end = self._ends[i]
            if line_end - start > _WRITE_MAX and end > start:
                self._write(start, end)
                start = end
            end = line_end
        if end > start:
            self._write(start, end)
        self._len = 0
        self._lines = 0

    cdef void _write(self, Py_ssize_t start, Py_ssize_t end) noexcept:
        # One write() of whole lines; a failed or short one is dropped, as os.write's in
        # access_log.py (a closed stdout must not stop the proxy).
        c_write(self._fd, self._buf + start, end - start)


cdef inline void _u_escape(char *out, unsigned int c) noexcept:
    out[0] = b'\\'
    out[1] = b'u'
    out[2] = _HEX[(c >> 12) & 0xF]
    out[3] = _HEX[(c >> 8) & 0xF]
    out[4] = _HEX[(c >> 4) & 0xF]
    out[5] = _HEX[c & 0xF]


cdef inline double _round_half_even(double x) noexcept:
    # CPython's _PyTime_RoundHalfEven.
    cdef double rounded = c_round(x)
    if fabs(x - rounded) == 0.5:
        rounded = 2.0 * c_round(x / 2.0)
    return rounded


# -- header rewriting ----------------------------------------------------------------------------

cdef object _CHUNKED_KIND = BodyKind.CHUNKED
cdef object _UNTIL_CLOSE_KIND = BodyKind.UNTIL_CLOSE
cdef frozenset _HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade",
    b"proxy-authenticate", b"proxy-authorization", b"trailer",
})
cdef bytes _XFCC = b"x-forwarded-client-cert"
cdef frozenset _FORWARDING = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"forwarded",
})
cdef dict _PHRASE = _PHRASES
# serialize.py's _TCHARS, as a table: 1 for a byte a header name or a method may hold.
cdef unsigned char _TCHAR[256]
for _c in bytearray(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"):
    _TCHAR[_c] = 1


cdef set _connection_tokens(list headers):
    """The names a Connection header lists (None when there is none: the common case)."""
    cdef set tokens = None
    for name, value in headers:
        if name == b"connection":
            if tokens is None:
                tokens = set()
            tokens.update([t.strip().lower() for t in value.split(b",") if t.strip()])
    return tokens


cdef inline bint _dropped(object name, set tokens):
    return name in _HOP_BY_HOP or (tokens is not None and name in tokens)


cdef bytes _forwarded_for(str address):
    # RFC 7239 6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{address}]"'.encode() if ":" in address else address.encode()


def forwarded_request_headers(
    list headers,
    object client,
    *,
    bytes host,
    bint trusted,
    object upgrade=None,
    bint via=False,
    object client_cert=None,
):
    """As ``headers.forwarded_request_headers`` (whose docstring says why)."""
    return _forwarded(headers, client, host, trusted, upgrade, via, client_cert)


cdef list _forwarded(
    list headers,
    object client,
    bytes host,
    bint trusted,
    object upgrade,
    bint via,
    object client_cert,
):
    cdef set tokens = _connection_tokens(headers)
    cdef list out = []
    cdef list prior_for = None
    cdef list prior_forwarded = None
    cdef dict kept = None
    cdef str address = client.address
    cdef bytes proto = client.proto
    cdef bytes encoded = address.encode()
    cdef bytes element
    for header in headers:
        name, value = header
        if _dropped(name, tokens) or name == _XFCC:
            continue
        if name in _FORWARDING:
            if trusted:
                if name == b"x-forwarded-for":
                    if prior_for is None:
                        prior_for = []
                    prior_for.append(value)
                elif name == b"forwarded":
                    if prior_forwarded is None:
                        prior_forwarded = []
                    prior_forwarded.append(value)
                else:
                    if kept is None:
                        kept = {}
                    kept.setdefault(name, value)
            continue
        out.append((name, value))
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if prior_for is None:
        out.append((b"x-forwarded-for", encoded))
    else:
        prior_for.append(encoded)
        out.append((b"x-forwarded-for", b", ".join(prior_for)))
    if kept is None:
        out.append((b"x-forwarded-proto", proto))
        out.append((b"x-forwarded-host", host))
        out.append((b"x-forwarded-port", str(client.port).encode()))
    else:
        out.append((b"x-forwarded-proto", kept.get(b"x-forwarded-proto", proto)))
        out.append((b"x-forwarded-host", kept.get(b"x-forwarded-host", host)))
        port = kept.get(b"x-forwarded-port")
        out.append((b"x-forwarded-port", str(client.port).encode() if port is None else port))
    element = b"for=" + _forwarded_for(address) + b";proto=" + proto
    if host:
        element += b';host="' + host.replace(b'"', b"") + b'"'
    if prior_forwarded is None:
        out.append((b"forwarded", element))
    else:
        prior_forwarded.append(element)
        out.append((b"forwarded", b", ".join(prior_forwarded)))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    if client_cert is not None:
        out.append((_XFCC, client_cert))
    return out


def request_head(
    object request,
    object client,
    *,
    bytes host,
    bint trusted,
    bint via=False,
    object client_cert=None,
    bint chunked=False,
):
    """As ``headers.request_head``: the head sent upstream for a client request."""
    cdef list headers = _forwarded(
        request.headers, client, host, trusted, request.upgrade, via, client_cert
    )
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    return _request_head(request.method, request.target, headers)


def response_headers(list headers, *, object hsts, bint via=False, object upgrade=None):
    """As ``headers.response_headers``."""
    return _response_headers(headers, hsts, via, upgrade)


cdef list _response_headers(list headers, object hsts, bint via, object upgrade):
    cdef set tokens = _connection_tokens(headers)
    cdef list out = []
    cdef bint has_hsts = False
    for header in headers:
        name, value = header
        if not _dropped(name, tokens):
            out.append((name, value))
            if name == b"strict-transport-security":
                has_hsts = True
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if hsts is not None and not has_hsts:
        out.append((b"strict-transport-security", hsts))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    return out


def response_head(
    object response,
    object request,
    *,
    object hsts,
    bint via=False,
    bint close=False,
):
    """As ``headers.response_head``: ``(head, rechunk, close)``."""
    cdef long status = response.status
    cdef object upgrade = None
    cdef list headers
    cdef object body = response.body
    cdef bint until_close, rechunk
    cdef bytes version = request.version
    if status == 101:
        for name, value in response.headers:
            if name == b"upgrade":
                upgrade = value
    headers = _response_headers(response.headers, hsts, via, upgrade)
    until_close = body is _UNTIL_CLOSE_KIND
    rechunk = body is _CHUNKED_KIND or (until_close and version == b"1.1")
    if rechunk:
        headers.append((b"transfer-encoding", b"chunked"))
    if (
        close
        or not request.keep_alive
        or (request.upgrade is not None and status != 101)
        or (until_close and version != b"1.1")
    ):
        close = True
        if status != 101:
            headers.append((b"connection", b"close"))
    return _response_head(status, response.reason, headers), rechunk, close


# -- serializing a head, with serialize.py's refusals ---------------------------------------------

cdef bint _tokens(bytes text):
    """Non-empty, and only tchars (a method)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(text)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(text)
    if n == 0:
        return False
    for i in range(n):
        if not _TCHAR[p[i]]:
            return False
    return True


cdef Py_ssize_t _block_size(list headers) except -1:
    """The size of the header lines, or a LocalProtocolError as serialize.py's _header_block
    raises it (the same checks, in the same order of precedence)."""
    cdef Py_ssize_t size = 0, i, n, m
    cdef const unsigned char *p
    cdef bint injection = False, empty = False, invalid = False
    cdef unsigned char c
    for header in headers:
        if type(header) is not tuple or len(<tuple>header) != 2:
            raise TypeError("a header is a (name, value) tuple of bytes")
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        if type(name) is not bytes or type(value) is not bytes:
            raise TypeError("a header is a (name, value) tuple of bytes")
        n = PyBytes_GET_SIZE(name)
        m = PyBytes_GET_SIZE(value)
        p = <const unsigned char *>PyBytes_AS_STRING(name)
        if n == 0 or p[0] == b':':
            empty = True
        for i in range(n):
            c = p[i]
            if not _TCHAR[c]:
                invalid = True
                if c == 10 or c == 13 or c == 0:
                    injection = True
        p = <const unsigned char *>PyBytes_AS_STRING(value)
        for i in range(m):
            c = p[i]
            if c == 10 or c == 13 or c == 0:
                injection = True
        size += n + m + 4
    if injection:
        raise LocalProtocolError("cr, lf or nul in a header (header injection)")
    if empty:
        raise LocalProtocolError("empty header name")
    if invalid:
        raise LocalProtocolError("invalid header name")
    return size


cdef char *_put_block(char *out, list headers) noexcept:
    """The header lines (``_block_size`` checked them and counted their bytes)."""
    cdef Py_ssize_t n
    for header in headers:
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        n = PyBytes_GET_SIZE(name)
        memcpy(out, PyBytes_AS_STRING(name), n)
        out += n
        out[0] = b':'
        out[1] = b' '
        out += 2
        n = PyBytes_GET_SIZE(value)
        memcpy(out, PyBytes_AS_STRING(value), n)
        out += n
        out[0] = b'\r'
        out[1] = b'\n'
        out += 2
    return out


cdef bytes _request_head(bytes method, bytes target, list headers):
    # serialize_request_head
    cdef const unsigned char *p
    cdef Py_ssize_t i, n, size
    cdef bytes head
    cdef char *out
    if method is None or not _tokens(method):
        raise LocalProtocolError("invalid method")
    n = 0 if target is None else PyBytes_GET_SIZE(target)
    if n == 0:
        raise LocalProtocolError("invalid request target")
    p = <const unsigned char *>PyBytes_AS_STRING(target)
    for i in range(n):
        if not 0x21 <= p[i] <= 0x7E:
            raise LocalProtocolError("invalid request target")
    size = _block_size(headers)
    size += PyBytes_GET_SIZE(method) + 1 + n + 11 + 2
    head = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(head)
    memcpy(out, PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method))
    out += PyBytes_GET_SIZE(method)
    out[0] = b' '
    out += 1
    memcpy(out, p, n)
    out += n
    memcpy(out, b" HTTP/1.1\r\n", 11)
    out = _put_block(out + 11, headers)
    out[0] = b'\r'
    out[1] = b'\n'
    return head


cdef bytes _response_head(long status, bytes reason, list headers):
    # serialize_response_head, version 1.1
    cdef Py_ssize_t size, n
    cdef bytes head
    cdef char *out
    cdef char line[24]
    cdef int start
    if not 100 <= status <= 999:
        raise LocalProtocolError("invalid status code")
    if not reason:
        reason = _PHRASE.get(status, b"")
    elif (
        memchr(PyBytes_AS_STRING(reason), b'\r', PyBytes_GET_SIZE(reason)) != NULL
        or memchr(PyBytes_AS_STRING(reason), b'\n', PyBytes_GET_SIZE(reason)) != NULL
        or memchr(PyBytes_AS_STRING(reason), 0, PyBytes_GET_SIZE(reason)) != NULL
    ):
        raise LocalProtocolError("cr, lf or nul in the reason phrase (header injection)")
    size = _block_size(headers)
    start = snprintf(line, sizeof(line), "HTTP/1.1 %ld ", status)
    n = PyBytes_GET_SIZE(reason)
    size += start + n + 2 + 2
    head = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(head)
    memcpy(out, line, start)
    out += start
    memcpy(out, PyBytes_AS_STRING(reason), n)
    out += n
    out[0] = b'\r'
    out[1] = b'\n'
    out = _put_block(out + 2, headers)
    out[0] = b'\r'
    out[1] = b'\n'
    return head
