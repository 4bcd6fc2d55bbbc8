# The byte-level state machine both directions share (included by _fast.pyx after
# _fast_grammar.pxi): heads read across feeds, bodies sliced out of them.


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
        if _COMPILED_EVENTS < 0:
            _choose_events()
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

    cpdef Py_ssize_t length_left(self):
        """framer.py's: bytes of a Content-Length body still to come (0 when not inside one)."""
        return <Py_ssize_t>self._remaining if self._state == LENGTH else 0

    cpdef list skip_body(self, Py_ssize_t n):
        """framer.py's: count ``n`` body bytes the caller relays itself (no Data event for
        them), and return the events that follow."""
        cdef list events
        if self._error is not None:
            raise self._error
        if self._state != LENGTH or n <= 0 or <unsigned long long>n > self._remaining:
            raise LocalProtocolError("skip_body() outside a Content-Length body, or past its end")
        events = self._events = []
        try:
            self._body_seen += n
            if self._max_body >= 0 and self._body_seen > self._max_body:
                raise self._refuse(
                    "request body too large" if not self._response else "response body too large",
                    413,
                )
            self._remaining -= <unsigned long long>n
            if not self._remaining:
                self._message_end([], False)
        except RemoteProtocolError as exc:
            self._error = exc
            raise
        return events
