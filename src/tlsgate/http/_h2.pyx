# cython: language_level=3, embedsignature=True, binding=True
"""The compiled twin of ``h2_session.PureH2Session``: an HTTP/2 server session on libnghttp2.

Same interface, events and decisions as the pure twin, which stays the reference
(``tests/http/test_h2_session.py`` runs on both, ``test_h2_differential.py`` feeds both the same
bytes). nghttp2 owns framing, HPACK, flow control, stream states and RFC 9113 section 8's checks;
this module turns its callbacks into :mod:`~tlsgate.http.h2_events` and adds what the twins
decide alike: the flood budgets (one :class:`~tlsgate.http.h2_floods.FloodGuard`, asked for the
same frames), a graceful GOAWAY that refuses later streams with REFUSED_STREAM, and which
requests reach the edge.

Where nghttp2 differs from the ``h2`` package, on purpose or by nature:

* a malformed request (section 8) is a stream error here (RST_STREAM PROTOCOL_ERROR; the
  connection lives on), a connection error in ``h2``. Invalid regular fields, which nghttp2
  would silently drop, are refused too (``_on_invalid_header``). Since a stream error costs the
  client nothing, every stream closed for a client's fault counts against the reset budget,
  as a client's RST_STREAM does: a flood of malformed requests ends like a rapid reset.
* a header list over ``max_header_list_size`` resets that stream (ENHANCE_YOUR_CALM, ``h2``'s
  code for it) instead of the connection; the rest of the block is still decoded (HPACK state
  must stay in step) but not kept, so memory stays bounded by the limit.
* ``max_header_frames`` is nghttp2's own CONTINUATION bound (``max_continuations``), which also
  counts the frames of blocks being ignored; past it the connection ends with ENHANCE_YOUR_CALM
  (a budget exceeded, like the other floods, rather than a malformed frame).
* a Host that differs from ``:authority`` is refused, as ``h2`` does (nghttp2 does not check).

Errors: when nghttp2 ends the connection itself, its GOAWAY goes out through ``mem_send`` and
becomes ConnectionEnded. When a callback ends it (a flood, an exception) or nghttp2 reports a
fatal error, the session may only be deleted: the GOAWAY is written here, the session marked
dead. A Python exception inside a callback never crosses C: it is kept, the callback fails, and
it is raised again once nghttp2 has returned.

Memory: response bytes are Python ``bytes`` held in the stream's queue until nghttp2 copies them
into a frame; header blocks are bounded by ``max_header_list_size``; output is collected after
every call, so nghttp2's queues hold one call's worth of frames at most.
"""

from collections import deque

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from tlsgate.http.h2_events import (
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    ConnectionEnded,
    DataReceived,
    H2Settings,
    RequestReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
    WindowUpdated,
)
from tlsgate.http.h2_floods import FloodGuard

include "_h2_decl.pxi"  # (and at the end, _h2_callbacks.pxi: nghttp2's callbacks)

__all__ = ["H2Session"]


cdef class _Stream:
    """A request the edge was told of: its response bytes waiting for window, and how it ends."""

    cdef object chunks  # deque[bytes]
    cdef Py_ssize_t offset  # into chunks[0]
    cdef Py_ssize_t size
    cdef bint end  # no more data after the queue (trailers may follow)
    cdef bint responded  # the final response head is submitted
    cdef bint body  # ... with a data provider (not END_STREAM on the head)
    cdef object trailers
    cdef bint stop  # RST_STREAM(NO_ERROR) once the response's END_STREAM is sent
    cdef bint done  # the response's END_STREAM was sent

    def __cinit__(self):
        self.chunks = deque()


cdef bytes _goaway(int32_t last, uint32_t code):
    """A GOAWAY frame, written here when the session can no longer send."""
    return (b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + int(last & 0x7FFFFFFF).to_bytes(4, "big")
            + int(code).to_bytes(4, "big"))


cdef class H2Session:
    """An HTTP/2 server session on libnghttp2 (the interface of ``H2SessionAPI``)."""

    cdef nghttp2_session *_session
    cdef readonly object settings
    cdef object _floods
    cdef dict _streams  # stream id -> _Stream, for the requests emitted and not closed
    cdef set _ours  # streams closing because the edge reset or refused them
    cdef list _events
    cdef bytearray _out
    cdef list _fields  # the header block being received, or None when not kept
    cdef Py_ssize_t _field_bytes
    cdef double _now
    cdef bint _ended  # over: a connection error, the client's GOAWAY, or ours with an error
    cdef bint _dead  # nghttp2 may not be called any more (fatal error)
    cdef int32_t _last  # the highest stream the client opened
    cdef int32_t _graceful  # the last stream a graceful GOAWAY admitted, or -1
    cdef int32_t _remote_reset  # the stream of the RST_STREAM being received
    cdef object _error  # an exception raised inside a callback
    cdef object _term  # (code, reason) of a connection ended from a callback

    def __cinit__(self, settings=None):
        cdef nghttp2_session_callbacks *cbs = NULL
        cdef nghttp2_option *opt = NULL
        cdef int rv, kind
        settings = settings or H2Settings()
        self.settings = settings
        self._graceful = -1
        if nghttp2_session_callbacks_new(&cbs) != 0:
            raise MemoryError()
        if nghttp2_option_new(&opt) != 0:
            nghttp2_session_callbacks_del(cbs)
            raise MemoryError()
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, _on_begin_headers)
        nghttp2_session_callbacks_set_on_header_callback(cbs, _on_header)
        nghttp2_session_callbacks_set_on_invalid_header_callback(cbs, _on_invalid_header)
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, _on_frame_recv)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, _on_data_chunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, _on_stream_close)
        nghttp2_session_callbacks_set_on_frame_send_callback(cbs, _on_frame_send)
        nghttp2_session_callbacks_set_on_extension_chunk_recv_callback(cbs, _on_extension_chunk)
        nghttp2_session_callbacks_set_unpack_extension_callback(cbs, _unpack_extension)
        # Windows re-open only as the edge hands the bytes on (consumed()).
        nghttp2_option_set_no_auto_window_update(opt, 1)
        nghttp2_option_set_max_continuations(opt, max(settings.max_header_frames - 1, 0))
        # Backstops on nghttp2's own clock; the FloodGuard, on the loop's, decides first.
        nghttp2_option_set_stream_reset_rate_limit(
            opt, max(1000, 2 * settings.reset_burst),
            max(33, int(2 * settings.resets_per_second)))
        nghttp2_option_set_max_outbound_ack(
            opt, max(1000, settings.idle_frame_burst + settings.reset_burst + 100))
        # Unknown frame types reach on_frame_recv, to be counted as the pure twin counts them.
        for kind in range(10, 256):
            nghttp2_option_set_user_recv_extension_type(opt, kind)
        rv = nghttp2_session_server_new2(&self._session, cbs, <void *>self, opt)
        nghttp2_session_callbacks_del(cbs)
        nghttp2_option_del(opt)
        if rv != 0:
            raise MemoryError()

    def __init__(self, settings=None):
        self._floods = FloodGuard(self.settings)
        self._streams = {}
        self._ours = set()
        self._events = []
        self._out = bytearray()

    def __dealloc__(self):
        nghttp2_session_del(self._session)

    # -- the interface ---------------------------------------------------------------------
    def initiate(self):
        cdef nghttp2_settings_entry iv[4]
        s = self.settings
        iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        iv[0].value = s.max_concurrent_streams
        iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        iv[1].value = s.initial_window_size
        iv[2].settings_id = NGHTTP2_SETTINGS_MAX_FRAME_SIZE
        iv[2].value = s.max_frame_size
        iv[3].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        iv[3].value = s.max_header_list_size
        if self._dead:
            return
        _check(nghttp2_submit_settings(self._session, NGHTTP2_FLAG_NONE, iv, 4))
        if s.connection_window > 65_535:
            _check(nghttp2_session_set_local_window_size(
                self._session, NGHTTP2_FLAG_NONE, 0, s.connection_window))
        self._flush()

    @property
    def open_streams(self):
        return len(self._streams)

    @property
    def ended(self):
        return self._ended or self._graceful >= 0

    def receive(self, data, double now):
        cdef Py_buffer view
        cdef ssize_t rv
        if self._ended:  # (events made since the last call, if any)
            events, self._events = self._events, []
            return events
        self._now = now
        PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
        try:
            rv = nghttp2_session_mem_recv(self._session, <const uint8_t *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        if rv < 0:
            self._fatal(<int>rv)
        else:
            self._flush()
        events, self._events = self._events, []
        self._reraise()
        return events

    def respond(self, int32_t stream_id, int status, headers, bint end_stream):
        cdef _Stream st = self._streams.get(stream_id) if not self._ended else None
        if st is None or st.responded:
            return
        fields = [(b":status", str(status).encode()), *headers]
        if status < 200:
            self._submit(stream_id, fields, 1)
        else:
            st.responded = True
            st.body = not end_stream
            self._submit(stream_id, fields, 2 if end_stream else 3)
        self._flush()

    def send_data(self, int32_t stream_id, data, bint end_stream):
        cdef _Stream st = self._streams.get(stream_id) if not self._ended else None
        if st is None or st.end or (st.responded and not st.body):
            return
        if data:
            data = bytes(data)
            st.chunks.append(data)
            st.size += PyBytes_GET_SIZE(data)
        st.end = end_stream
        self._resume(stream_id, st)

    def send_trailers(self, int32_t stream_id, headers):
        cdef _Stream st = self._streams.get(stream_id) if not self._ended else None
        if st is None or st.trailers is not None or (st.responded and not st.body):
            return
        st.trailers = list(headers)
        st.end = True
        self._resume(stream_id, st)

    def reset(self, int32_t stream_id, uint32_t error_code):
        cdef _Stream st = self._streams.get(stream_id) if not self._ended else None
        if st is None:
            return
        if error_code == NO_ERROR and st.responded and not st.done:
            # After a complete response (RFC 9113 8.1): nghttp2 sends RST_STREAM before
            # queued DATA, and would drop the response's tail, so it waits for END_STREAM.
            st.stop = True
            return
        del self._streams[stream_id]
        self._ours.add(stream_id)
        _check(nghttp2_submit_rst_stream(self._session, NGHTTP2_FLAG_NONE, stream_id,
                                         error_code))
        self._flush()

    def consumed(self, int32_t stream_id, Py_ssize_t size):
        if size <= 0 or self._ended or stream_id <= 0:
            return
        _consume(self._session, stream_id, size)
        self._flush()

    def buffered(self, int32_t stream_id):
        cdef _Stream st = self._streams.get(stream_id)
        return st.size if st is not None else 0

    def goaway(self, uint32_t error_code=NO_ERROR):
        cdef int32_t last = self._graceful if self._graceful >= 0 else self._last
        if self._ended:
            return
        if error_code != NO_ERROR:
            self._ended = True  # (so that its GOAWAY, sent below, is not taken for nghttp2's)
            _check(nghttp2_session_terminate_session2(self._session, last, error_code))
            self._flush()
        elif self._graceful < 0:
            # Written beside nghttp2, which would otherwise ignore later streams without a
            # word; here they are refused (REFUSED_STREAM: the client may retry them elsewhere).
            self._graceful = last
            self._flush()
            self._out += _goaway(last, NO_ERROR)

    def data_to_send(self):
        self._flush()
        data = bytes(self._out)
        del self._out[:]
        self._reraise()
        return data

    # -- inside ------------------------------------------------------------------------------
    cdef int _submit(self, int32_t sid, list fields, int how) except -1:
        """Submit a header block: 1 informational, 2 final ending the stream, 3 final with a
        body to come (from _read_body), 4 trailers."""
        cdef Py_ssize_t n = len(fields), i
        cdef nghttp2_nv *nva = <nghttp2_nv *>malloc(max(n, 1) * sizeof(nghttp2_nv))
        cdef nghttp2_data_provider provider
        cdef int rv
        if nva == NULL:
            raise MemoryError()
        try:
            # The list keeps every name and value alive while nghttp2 copies them.
            kept = [(bytes(name), bytes(value)) for name, value in fields]
            for i in range(n):
                name, value = kept[i]
                nva[i].name = <uint8_t *>PyBytes_AS_STRING(name)
                nva[i].namelen = PyBytes_GET_SIZE(name)
                nva[i].value = <uint8_t *>PyBytes_AS_STRING(value)
                nva[i].valuelen = PyBytes_GET_SIZE(value)
                nva[i].flags = NGHTTP2_NV_FLAG_NONE
            if how == 1:
                rv = nghttp2_submit_headers(self._session, NGHTTP2_FLAG_NONE, sid, NULL, nva, n,
                                            NULL)
                rv = min(rv, 0)
            elif how == 4:
                rv = nghttp2_submit_trailer(self._session, sid, nva, n)
            else:
                provider.source.ptr = NULL
                provider.read_callback = _read_body
                rv = nghttp2_submit_response(self._session, sid, nva, n,
                                             &provider if how == 3 else NULL)
        finally:
            free(nva)
        return _check(rv)

    cdef int _resume(self, int32_t sid, _Stream st) except -1:
        if st.responded:
            nghttp2_session_resume_data(self._session, sid)  # (an error: it was not deferred)
            self._flush()
        return 0

    cdef int _flush(self) except -1:
        """Collect nghttp2's frames into the output (its callbacks may add events)."""
        cdef const uint8_t *data
        cdef ssize_t n
        cdef Py_ssize_t at
        while not self._dead:
            n = nghttp2_session_mem_send(self._session, &data)
            if n < 0:
                self._fatal(<int>n)
            if n <= 0:
                break
            at = PyByteArray_GET_SIZE(self._out)
            PyByteArray_Resize(self._out, at + n)
            memcpy(PyByteArray_AS_STRING(self._out) + at, data, n)
        return 0

    cdef int _fatal(self, int rv) except -1:
        """nghttp2 returned a fatal error (or a callback ended the connection): the session may
        not be used again; the GOAWAY is written here."""
        cdef uint32_t code = INTERNAL_ERROR
        self._dead = True
        if self._ended:
            return 0
        reason = nghttp2_strerror(rv).decode()
        if self._term is not None:
            code, reason = self._term
        elif rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
            code, reason = ENHANCE_YOUR_CALM, "too many CONTINUATION frames"
        elif rv == NGHTTP2_ERR_FLOODED:
            code = ENHANCE_YOUR_CALM
        elif rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC:
            code = PROTOCOL_ERROR
        elif self._error is not None:
            reason = f"{type(self._error).__name__} in an nghttp2 callback"
        last = self._graceful if self._graceful >= 0 else self._last
        self._ended = True
        self._out += _goaway(last, code)
        self._events.append(ConnectionEnded(code, last, False, reason))
        return 0

    cdef int _reraise(self) except -1:
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return 0

    cdef int _failed(self, error) noexcept:
        """A callback raised: keep the exception for later, fail the callback (a fatal error)."""
        if self._error is None:
            self._error = error
        return NGHTTP2_ERR_CALLBACK_FAILURE

    cdef int _flood(self, str reason) except -1:
        """A budget is exceeded: end the connection (the callback fails with this)."""
        self._term = (ENHANCE_YOUR_CALM, reason)
        return NGHTTP2_ERR_CALLBACK_FAILURE

    cdef int _begin_headers(self, const nghttp2_frame *frame) except -1:
        cdef int32_t sid = frame.hd.stream_id
        self._fields = None
        self._field_bytes = 0
        if frame.headers.cat == NGHTTP2_HCAT_REQUEST:
            self._last = max(self._last, sid)
            if self._graceful >= 0 and sid > self._graceful:
                self._ours.add(sid)
                _check(nghttp2_submit_rst_stream(self._session, NGHTTP2_FLAG_NONE, sid,
                                                 REFUSED_STREAM))
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
            self._fields = []
        elif sid in self._streams:
            self._fields = []
        return 0

    cdef int _header(self, const nghttp2_frame *frame, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen) except -1:
        if self._fields is None:
            return 0
        # RFC 9113 6.5.2's size, as h2's decoder counts it.
        self._field_bytes += namelen + valuelen + 32
        if self._field_bytes > self.settings.max_header_list_size:
            self._fields = None
            _check(nghttp2_submit_rst_stream(self._session, NGHTTP2_FLAG_NONE,
                                             frame.hd.stream_id, ENHANCE_YOUR_CALM))
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
        self._fields.append(((<const char *>name)[:namelen], (<const char *>value)[:valuelen]))
        return 0

    cdef int _frame_recv(self, const nghttp2_frame *frame) except -1:
        cdef int32_t sid = frame.hd.stream_id
        cdef uint8_t kind = frame.hd.type, flags = frame.hd.flags
        cdef bint end = flags & NGHTTP2_FLAG_END_STREAM
        cdef _Stream st
        if self._ended:
            return 0
        out = self._events
        floods = self._floods
        reason = ""
        if kind == NGHTTP2_DATA:
            if sid in self._streams:
                if frame.hd.length == frame.data.padlen and not end:
                    reason = floods.idle_frame(self._now, "empty DATA")
                elif end:
                    out.append(StreamEnded(sid))
        elif kind == NGHTTP2_HEADERS:
            fields, self._fields = self._fields, None
            if fields is not None and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
                if _authority_conflict(fields):
                    _check(nghttp2_submit_rst_stream(self._session, NGHTTP2_FLAG_NONE, sid,
                                                     PROTOCOL_ERROR))
                    return 0
                self._streams[sid] = _Stream()
                out.append(RequestReceived(sid, fields))
                if end:
                    out.append(StreamEnded(sid))
            elif fields is not None and sid in self._streams:
                out.append(TrailersReceived(sid, fields))
                if end:
                    out.append(StreamEnded(sid))
            if flags & NGHTTP2_FLAG_PRIORITY:  # h2 reports it apart (PriorityUpdated)
                reason = floods.idle_frame(self._now, "PRIORITY")
        elif kind == NGHTTP2_RST_STREAM:
            self._remote_reset = sid  # (nghttp2 closes the stream next: _stream_close)
        elif kind == NGHTTP2_WINDOW_UPDATE:
            out.append(WindowUpdated(sid))
        elif kind == NGHTTP2_GOAWAY:
            self._ended = True
            out.append(ConnectionEnded(frame.goaway.error_code, frame.goaway.last_stream_id,
                                       True, "client GOAWAY"))
        elif kind == NGHTTP2_PING and not flags & NGHTTP2_FLAG_ACK:
            reason = floods.idle_frame(self._now, "PING")
        elif kind == NGHTTP2_SETTINGS and not flags & NGHTTP2_FLAG_ACK:
            reason = floods.idle_frame(self._now, "SETTINGS")
        elif kind == NGHTTP2_PRIORITY:
            reason = floods.idle_frame(self._now, "PRIORITY")
        elif kind > NGHTTP2_CONTINUATION:
            reason = floods.idle_frame(self._now, "unknown")
        return self._flood(reason) if reason else 0

    cdef int _data_chunk(self, int32_t sid, const uint8_t *data, size_t length) except -1:
        if self._ended:
            return 0
        if sid in self._streams:
            self._events.append(DataReceived(sid, (<const char *>data)[:length], length))
        else:  # no one will hand these back: re-open the window now
            _consume(self._session, sid, length)
        return 0

    cdef int _stream_close(self, int32_t sid, uint32_t error_code) except -1:
        cdef bint remote = sid == self._remote_reset
        if self._ended:
            return 0
        known = self._streams.pop(sid, None) is not None
        if sid in self._ours:
            self._ours.discard(sid)
        elif remote or error_code != NO_ERROR:
            # A client's reset, or a stream error of the client's making: the same budget.
            reason = self._floods.reset(self._now)
            if reason:
                return self._flood(reason)
            if known:
                self._events.append(StreamReset(sid, error_code, remote))
        return 0

    cdef int _frame_send(self, const nghttp2_frame *frame) except -1:
        cdef const nghttp2_goaway *g
        cdef _Stream st
        if (frame.hd.flags & NGHTTP2_FLAG_END_STREAM) and (
                frame.hd.type == NGHTTP2_DATA or frame.hd.type == NGHTTP2_HEADERS):
            st = self._streams.get(frame.hd.stream_id)
            if st is not None:
                st.done = True
                if st.stop:
                    del self._streams[frame.hd.stream_id]
                    self._ours.add(frame.hd.stream_id)
                    _check(nghttp2_submit_rst_stream(self._session, NGHTTP2_FLAG_NONE,
                                                     frame.hd.stream_id, NO_ERROR))
            return 0
        if frame.hd.type != NGHTTP2_GOAWAY or self._ended:
            return 0
        # nghttp2 found a connection error (or its own reset backstop fired).
        self._ended = True
        g = &frame.goaway
        reason = ((<const char *>g.opaque_data)[:g.opaque_data_len].decode("utf-8", "replace")
                  if g.opaque_data_len else nghttp2_strerror(NGHTTP2_ERR_FATAL).decode())
        self._events.append(ConnectionEnded(g.error_code, g.last_stream_id, False, reason))
        return 0

    cdef ssize_t _read(self, int32_t sid, uint8_t *buf, size_t length,
                       uint32_t *data_flags) except? -1:
        cdef _Stream st = self._streams.get(sid)
        cdef size_t n = 0, take
        cdef bytes chunk
        if st is None:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
            return 0
        while n < length and st.chunks:
            chunk = st.chunks[0]
            take = min(<size_t>(PyBytes_GET_SIZE(chunk) - st.offset), length - n)
            memcpy(buf + n, PyBytes_AS_STRING(chunk) + st.offset, take)
            n += take
            st.offset += take
            if st.offset == PyBytes_GET_SIZE(chunk):
                st.chunks.popleft()
                st.offset = 0
        st.size -= n
        if st.chunks or not st.end:
            return n if n else NGHTTP2_ERR_DEFERRED
        data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
        if st.trailers is not None:
            data_flags[0] |= NGHTTP2_DATA_FLAG_NO_END_STREAM
            self._submit(sid, st.trailers, 4)
        return n


cdef int _check(int rv) except -1:
    """An nghttp2 call that fails only for lack of memory or a bad argument (the settings)."""
    if rv == NGHTTP2_ERR_NOMEM:
        raise MemoryError()
    if rv == NGHTTP2_ERR_INVALID_ARGUMENT:
        raise ValueError(f"nghttp2: {nghttp2_strerror(rv).decode()}")
    if rv < 0:
        raise RuntimeError(f"nghttp2: {nghttp2_strerror(rv).decode()}")
    return 0


cdef int _consume(nghttp2_session *session, int32_t sid, size_t size) except -1:
    """Hand ``size`` bytes back to the windows; more than was received is ignored, as h2 does."""
    if nghttp2_session_consume(session, sid, size) == NGHTTP2_ERR_NOMEM:
        raise MemoryError()
    return 0


cdef bint _authority_conflict(list fields) except -1:
    """A Host that names another authority than :authority (RFC 9113 8.3.1; h2 refuses it)."""
    authority = host = None
    for name, value in fields:
        if name == b":authority":
            authority = value
        elif name == b"host":
            host = value
    return authority is not None and host is not None and authority != host


include "_h2_callbacks.pxi"
