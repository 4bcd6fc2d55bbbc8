# The two directions over _Framer (included by _fast.pyx after _fast_framer.pxi).


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
