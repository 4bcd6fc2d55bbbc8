# The access log, compiled (included by _fast.pyx): access_log.py's AccessRecord and AccessLog.

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
        object method,
        object target,
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
            out = _escaped(out, PyUnicode_READ(kind, data, i))
        out[0] = b'"'
        out += 1
        self._len = out - self._buf
        return 0

    cdef int _latin1(self, bytes value, Py_ssize_t limit) except -1:
        """``value.decode("latin-1")`` as :meth:`_string` writes it, without the str: each byte
        is the code point of the same number (a method or target as the client sent it)."""
        cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
        cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
        cdef char *out
        if 0 <= limit < n:
            n = limit
        self._reserve(2 + 6 * n)  # (a byte escapes to at most 6 bytes)
        out = self._buf + self._len
        out[0] = b'"'
        out += 1
        for i in range(n):
            out = _escaped(out, p[i])
        out[0] = b'"'
        out += 1
        self._len = out - self._buf
        return 0

    cdef int _text(self, object value, Py_ssize_t limit) except -1:
        if type(value) is bytes:
            return self._latin1(<bytes>value, limit)
        return self._string(value, limit)

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
        cdef char fixed[32]
        cdef int n
        if not isfinite(x):
            literal = b"NaN" if x != x else b"Infinity" if x > 0 else b"-Infinity"
            self._reserve(len(literal))
            self._put(literal, len(literal))
            return 0
        if 0.0 <= x < 1e9:
            # Every duration a proxy logs. "%.3f" is the correctly rounded decimal, ties to
            # even, as float.__round__'s dtoa mode 3; with at most 12 significant digits it is
            # also the shortest string that reads back as that float, so repr() is it without
            # its trailing zeros (one kept after the point).
            n = snprintf(fixed, sizeof(fixed), "%.3f", x)
            # (a locale whose decimal point is not "." falls through to Python's formatting)
            if 4 < n < <int>sizeof(fixed) and fixed[n - 4] == b'.':
                while fixed[n - 1] == b'0' and fixed[n - 2] != b'.':
                    n -= 1
                self._reserve(n)
                self._put(fixed, n)
                return 0
        # float.__round__(x, 3): correctly rounded to 3 decimals (dtoa mode 3), read back.
        text = PyOS_double_to_string(x, b'f', 3, 0, NULL)
        try:
            x = PyOS_string_to_double(text, NULL, None)
        finally:
            PyMem_Free(text)
        text = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
        try:
            n = <int>strlen(text)
            self._reserve(n)
            self._put(text, n)
        finally:
            PyMem_Free(text)
        return 0

    def __call__(self, AccessRecord record not None):
        self._add(
            record.client, record.method, record.target, record.host, record.status,
            record.bytes_sent, record.upstream, record.duration, record.error,
        )

    def add_request(
        self,
        str client,
        bytes method,
        bytes target,
        str host,
        long status,
        long long bytes_sent,
        str upstream,
        double duration,
        str error="",
    ):
        """The line the compiled connection writes for a request: its method and target as
        the bytes the client sent (the same line as a record of their latin-1 text)."""
        self._add(client, method, target, host, status, bytes_sent, upstream, duration, error)

    cdef int _add(
        self,
        str client,
        object method,
        object target,
        str host,
        long status,
        long long bytes_sent,
        str upstream,
        double duration,
        str error,
    ) except -1:
        """One line, from a record's fields (the compiled connection calls this directly, and
        builds no AccessRecord for it). ``method`` and ``target`` may be the request's bytes,
        written as their latin-1 text."""
        cdef Py_ssize_t start = self._len
        cdef Py_ssize_t *ends
        if self._fd < 0:
            return 0
        try:
            self._time()
            self._reserve(10)
            self._put(b'"client":', 9)
            self._string(client, -1)
            self._reserve(10)
            self._put(b',"method":', 10)
            self._text(method, -1)
            self._reserve(10)
            self._put(b',"target":', 10)
            self._text(target, _TARGET_MAX)
            self._reserve(8)
            self._put(b',"host":', 8)
            self._string(host, -1)
            self._reserve(10)
            self._put(b',"status":', 10)
            self._number(status)
            self._reserve(9)
            self._put(b',"bytes":', 9)
            self._number(bytes_sent)
            self._reserve(12)
            self._put(b',"upstream":', 12)
            self._string(upstream, -1)
            self._reserve(15)
            self._put(b',"duration_ms":', 15)
            self._milliseconds(duration)
            if error:
                self._reserve(9)
                self._put(b',"error":', 9)
                self._string(error, -1)
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
        return 0

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


cdef inline char *_escaped(char *out, unsigned int c) noexcept:
    """Code point ``c`` as json.dumps escapes it (ensure_ascii), at ``out``; where it ends."""
    cdef unsigned int high, low
    if 0x20 <= c <= 0x7E and c != 0x22 and c != 0x5C:
        out[0] = <char>c
        return out + 1
    if c == 0x22 or c == 0x5C:
        out[0] = b'\\'
        out[1] = <char>c
        return out + 2
    if c == 0x0A or c == 0x0D or c == 0x09 or c == 0x08 or c == 0x0C:
        out[0] = b'\\'
        out[1] = b'n' if c == 0x0A else b'r' if c == 0x0D else b't' if c == 0x09 else (
            b'b' if c == 0x08 else b'f'
        )
        return out + 2
    if c >= 0x10000:
        high = 0xD800 + ((c - 0x10000) >> 10)
        low = 0xDC00 + ((c - 0x10000) & 0x3FF)
        _u_escape(out, high)
        out += 6
        c = low
    _u_escape(out, c)
    return out + 6


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
