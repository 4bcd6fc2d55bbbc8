# The compiled client connection (included by _fast.pyx): a port, line for line, of
# protocol.py + upstream_side.py (ClientProtocol), exchange.py + phase.py (Exchange), deadline.py
# (Deadline) and upstream.py (UpstreamConnection). The pure modules are the reference: read their
# docstrings for why each step is as it is; what differs here is only how it runs (typed fields,
# C calls between the halves, the phase table as a C array, one monotonic clock read in C).

from collections import deque
from functools import partial

from posix.time cimport CLOCK_MONOTONIC

from tlsgate.http import (
    RemoteProtocolError,
    Request,
    RequestParser,
    ResponseParser,
    chunk,
    last_chunk,
    serialize_response_head,
)
from tlsgate.proxy import flow as _flow
from tlsgate.proxy import phase as _phase
from tlsgate.proxy.routing import normalize_host

# Bound at the first connection, not at import: headers.py, access_log.py, upstream.py and
# protocol.py import this module (each asks tlsgate.compiled for its twin), and these modules
# import some of them.
cdef object ClientInfo = None
cdef object is_trusted = None
cdef object admit = None
cdef object peer_identity = None
cdef object error_response = None
cdef object _RESPONSE_LIMITS = None
cdef object H2Connection = None


cdef int _bind() except -1:
    global ClientInfo, is_trusted, admit, peer_identity, error_response, _RESPONSE_LIMITS
    global H2Connection
    from tlsgate.proxy import client_identity, edge, h2_connection, headers, upstream
    H2Connection = h2_connection.H2Connection
    ClientInfo, is_trusted = headers.ClientInfo, headers.is_trusted
    admit, peer_identity = client_identity.admit, client_identity.peer_identity
    error_response = edge.error_response
    _RESPONSE_LIMITS = upstream._RESPONSE_LIMITS
    return 0

cdef object _Phase = _phase.Phase
cdef object _PhaseEvent = _phase.PhaseEvent
cdef object _PhaseError = _phase.PhaseError
cdef object _socket_module = __import__("socket")
cdef int _IPPROTO_TCP = _socket_module.IPPROTO_TCP
cdef int _TCP_NODELAY = _socket_module.TCP_NODELAY

# phase.py's phases and events, as C ints (their IntEnum values).
cdef enum:
    ROUTING = 1
    LOCAL = 2
    CONNECTING = 3
    RECONNECTING = 4
    SENDING_BODY = 5
    AWAITING_RESPONSE = 6
    DUPLEX = 7
    RESPONDING = 8
    SWITCHING = 9
    DONE = 10
    TUNNEL = 11
    ABORTED = 12
    ANSWER_LOCALLY = 1
    CONNECT = 2
    ATTACH = 3
    REQUEST_END = 4
    RESPONSE_HEAD = 5
    SWITCH = 6
    RESPONSE_END = 7
    UPGRADED = 8
    ABORT = 9

# flow.py's deadline kinds and pause reasons, as C ints (checked against flow.py at import).
cdef enum:
    DEADLINE_IDLE = 1
    DEADLINE_HEAD = 2
    DEADLINE_BODY = 3
    DEADLINE_UPSTREAM = 4
    PAUSE_QUEUE = 1
    PAUSE_UPSTREAM = 2
    PAUSE_TUNNEL = 4
if (
    (_flow.DEADLINE_IDLE, _flow.DEADLINE_HEAD, _flow.DEADLINE_BODY, _flow.DEADLINE_UPSTREAM)
    != (DEADLINE_IDLE, DEADLINE_HEAD, DEADLINE_BODY, DEADLINE_UPSTREAM)
    or (_flow.PAUSE_QUEUE, _flow.PAUSE_UPSTREAM, _flow.PAUSE_TUNNEL)
    != (PAUSE_QUEUE, PAUSE_UPSTREAM, PAUSE_TUNNEL)
):
    raise ImportError("proxy/_fast: flow.py's constants changed; update _fast_conn.pxi")
if [(p.name, int(p)) for p in _phase.Phase] != [
    ("ROUTING", ROUTING), ("LOCAL", LOCAL), ("CONNECTING", CONNECTING),
    ("RECONNECTING", RECONNECTING), ("SENDING_BODY", SENDING_BODY),
    ("AWAITING_RESPONSE", AWAITING_RESPONSE), ("DUPLEX", DUPLEX), ("RESPONDING", RESPONDING),
    ("SWITCHING", SWITCHING), ("DONE", DONE), ("TUNNEL", TUNNEL), ("ABORTED", ABORTED),
] or [(e.name, int(e)) for e in _phase.PhaseEvent] != [
    ("ANSWER_LOCALLY", ANSWER_LOCALLY), ("CONNECT", CONNECT), ("ATTACH", ATTACH),
    ("REQUEST_END", REQUEST_END), ("RESPONSE_HEAD", RESPONSE_HEAD), ("SWITCH", SWITCH),
    ("RESPONSE_END", RESPONSE_END), ("UPGRADED", UPGRADED), ("ABORT", ABORT),
]:
    raise ImportError("proxy/_fast: phase.py's phases changed; update _fast_conn.pxi")

# phase.TRANSITIONS as a table (0: not allowed), filled from the table itself at import.
cdef unsigned char _MOVES[13][10]
for (_from, _event), _to in _phase.TRANSITIONS.items():
    _MOVES[int(_from)][int(_event)] = int(_to)
cdef unsigned int _READS_BODY = 0
cdef unsigned int _REQUEST_READ = 0
cdef unsigned int _HEAD_SENT = 0
for _p in _phase.READS_BODY:
    _READS_BODY |= 1 << int(_p)
for _p in _phase.REQUEST_READ:
    _REQUEST_READ |= 1 << int(_p)
for _p in _phase.HEAD_SENT:
    _HEAD_SENT |= 1 << int(_p)

cdef frozenset _IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})
cdef dict _ROUTING_ERRORS = {
    404: "no site for this host",
    421: "host names another site than the tls handshake",
}
cdef Py_ssize_t READ_BUFFER_SIZE = 64 * 1024
cdef Py_ssize_t HIGH_WATER = 32
cdef Py_ssize_t LOW_WATER = 8
cdef Py_ssize_t FLUSH_SIZE = 64 * 1024
#: A full TLS record's plaintext.
cdef Py_ssize_t _RECORD_SIZE = 16 * 1024
cdef object _NO_BODY = BodyKind.NONE


cdef inline double _monotonic() noexcept:
    # time.monotonic()
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class Deadline:
    """deadline.py's Deadline."""

    cdef object _loop
    cdef object _on_expiry
    cdef object _timer
    cdef double _timer_at
    cdef public double at
    cdef public int kind

    def __init__(self, loop, on_expiry):
        self._loop = loop
        self._on_expiry = on_expiry
        self._timer = None
        self._timer_at = 0.0
        self.at = 0.0
        self.kind = 0

    cpdef set(self, double seconds, int kind):
        cdef double at = self._loop.time() + seconds
        self.at = at
        self.kind = kind
        if self._timer is None or at < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(at, self._fire)
            self._timer_at = at

    cpdef clear(self):
        self.kind = 0

    cpdef cancel(self):
        self.kind = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    cpdef close(self):
        """deadline.py's: cancelled, and the callback (which holds the connection) dropped."""
        self.cancel()
        self._on_expiry = None

    def _fire(self):
        self._timer = None
        cdef int kind = self.kind
        if self._on_expiry is None:
            return
        if not kind:
            return
        if self._loop.time() < self.at:
            self._timer = self._loop.call_at(self.at, self._fire)
            self._timer_at = self.at
            return
        self.kind = 0
        self._on_expiry(kind)


cdef class Exchange:
    """exchange.py's Exchange, its phase moved by phase.py's table."""

    cdef public _Req request
    cdef public str host
    cdef public long long sent_before
    cdef public double started
    cdef public object route
    cdef public bytes head
    cdef public UpstreamConnection conn
    cdef public object state
    cdef public object exclude
    cdef public int attempts
    cdef public bint retry_ok
    cdef public long status
    cdef public bint chunked_in
    cdef public bint chunked_out
    cdef public bint close_after
    cdef public long local_status
    cdef public str local_reason
    cdef public bytes tunnel_leftover
    cdef int _phase

    def __init__(self, _Req request, str host, double started):
        self._phase = ROUTING
        self.request = request
        self.host = host
        self.sent_before = 0
        self.started = started
        self.route = None
        self.head = b""
        self.conn = None
        self.state = None
        self.exclude = None
        self.attempts = 1
        self.retry_ok = False
        self.status = 0
        self.chunked_in = request.body is _CHUNKED_KIND
        self.chunked_out = False
        self.close_after = not request.keep_alive
        self.local_status = 0
        self.local_reason = ""
        self.tunnel_leftover = b""

    @property
    def phase(self):
        return _Phase(self._phase)

    cdef int move(self, int event) except -1:
        cdef int new = _MOVES[self._phase][event]
        if new == 0:
            raise _PhaseError(_Phase(self._phase), _PhaseEvent(event))
        self._phase = new
        return new

    def process(self, event):
        return _Phase(self.move(int(event)))


cdef class _ClientCore
cdef class TLSTransport


cdef class UpstreamConnection:
    """upstream.py's UpstreamConnection, calling its owner's halves in C.

    The owner is a compiled HTTP/1.1 connection (``_core``: called in C) or any other
    :class:`~tlsgate.proxy.upstream.UpstreamOwner` (an HTTP/2 stream: called through its Python
    methods, with the events as upstream.py gives them)."""

    cdef public object upstream
    cdef public object parser
    cdef public object transport
    cdef _ClientCore _core
    cdef object _owner
    cdef public object tunnel
    cdef public bint reused
    cdef public bint closed
    cdef public bint write_paused
    cdef public bint read_paused
    cdef public double idle_since

    def __init__(self, upstream):
        if _RESPONSE_LIMITS is None:
            _bind()
        self.upstream = upstream
        self.parser = ResponseParser(_RESPONSE_LIMITS)
        self.transport = None
        self._core = None
        self._owner = None
        self.tunnel = None
        self.reused = False
        self.closed = False
        self.write_paused = False
        self.read_paused = False
        self.idle_since = 0.0

    @property
    def owner(self):
        return self._owner

    @owner.setter
    def owner(self, owner):
        self._owner = owner
        self._core = owner if isinstance(owner, _ClientCore) else None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)

    def get_buffer(self, sizehint):
        return _UPSTREAM_VIEW

    def buffer_updated(self, Py_ssize_t nbytes):
        """uvloop read ``nbytes`` into the shared upstream buffer. Inside a Content-Length
        body relayed to OpenSSL on the socket, the bytes are encrypted straight from the buffer
        (the parser only counts them): a large response is not copied into a bytes object per
        read. A response's head is fed up to its blank line, so that the body read with it goes
        the same way. Anything else, and any piece under _DIRECT_MIN, becomes bytes for
        data_received (a small response keeps its head and body in one record)."""
        cdef const char *data = PyByteArray_AS_STRING(_UPSTREAM_BUFFER)
        cdef const char *blank
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t take
        cdef _ClientCore owner
        if not 0 <= nbytes <= _UPSTREAM_BUFFER_SIZE:
            raise ValueError("buffer_updated: more bytes than the buffer holds")
        while nbytes - pos >= _DIRECT_MIN:  # (a small read: as it is, below)
            owner = self._core
            if self.tunnel is not None or owner is None or not owner._relays_direct(self):
                break
            take = self.parser.length_left()
            if take > 0:
                if take > nbytes - pos:
                    take = nbytes - pos
                if take < _DIRECT_MIN:
                    break  # a small piece: with the head, in one record and one send
                try:
                    events = self.parser.skip_body(take)
                except RemoteProtocolError as exc:
                    owner._upstream_failed(self, exc)
                    return
                owner._relay_direct(self, data + pos, take, events)
                pos += take
                continue
            # Not inside a body: perhaps a head, whose end is looked for in what a head may
            # span (parsing it in two pieces is the same as in one).
            take = nbytes - pos
            if take > _HEAD_SCAN:
                take = _HEAD_SCAN
            blank = <const char *>memmem(data + pos, <size_t>take, b"\r\n\r\n", 4)
            if blank == NULL or data + nbytes - (blank + 4) < _DIRECT_MIN:
                break
            take = blank + 4 - (data + pos)
            self.data_received(PyBytes_FromStringAndSize(data + pos, take))
            pos += take
        if pos < nbytes:
            self.data_received(PyBytes_FromStringAndSize(data + pos, nbytes - pos))

    def data_received(self, data):
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        cdef _ClientCore owner = self._core
        cdef object other = self._owner
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            if owner is not None:
                owner._upstream_failed(self, exc)
            elif other is not None:
                other.upstream_failed(self, exc)
            else:
                self.close()
            return
        if owner is not None:
            owner._upstream_events(self, events)
        elif other is not None:
            other.upstream_events(self, events)

    def eof_received(self):
        cdef _ClientCore owner = self._core
        cdef object other = self._owner
        if self.tunnel is None and other is not None:
            try:
                events = self.parser.feed_eof()
            except RemoteProtocolError as exc:
                if owner is not None:
                    owner._upstream_failed(self, exc)
                else:
                    other.upstream_failed(self, exc)
                return None
            if events:
                if owner is not None:
                    owner._upstream_events(self, events)
                else:
                    other.upstream_events(self, events)
        return None

    def connection_lost(self, exc):
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.close()
        cdef _ClientCore owner = self._core
        cdef object other = self._owner
        if other is not None:
            self._core = None
            self._owner = None
            if owner is not None:
                owner._upstream_closed(self)
            else:
                other.upstream_closed(self)

    def pause_writing(self):
        self.write_paused = True
        if self._core is not None:
            self._core._pause(PAUSE_UPSTREAM)
        elif self._owner is not None:
            self._owner.upstream_flow(self, True)

    def resume_writing(self):
        self.write_paused = False
        if self._core is not None:
            self._core._resume(PAUSE_UPSTREAM)
        elif self._owner is not None:
            self._owner.upstream_flow(self, False)

    cpdef write(self, bytes data):
        if self.transport is not None and data:
            self.transport.write(data)

    cpdef pause_reading(self):
        if self.transport is not None and not self.closed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    cpdef resume_reading(self):
        if self.transport is not None and not self.closed and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    cpdef close(self):
        self._core = None
        self._owner = None
        if self.transport is not None:
            self.transport.close()


include "_fast_pool.pxi"


cdef bytearray _READ_BUFFER = bytearray(READ_BUFFER_SIZE)
cdef object _READ_VIEW = memoryview(_READ_BUFFER)
#: What uvloop reads an upstream connection into (the size it reads with by itself).
cdef Py_ssize_t _UPSTREAM_BUFFER_SIZE = 256 * 1024
cdef bytearray _UPSTREAM_BUFFER = bytearray(_UPSTREAM_BUFFER_SIZE)
cdef object _UPSTREAM_VIEW = memoryview(_UPSTREAM_BUFFER)
#: How far into a read a response head's end is looked for (the responses' head limit is
#: smaller).
cdef Py_ssize_t _HEAD_SCAN = 64 * 1024
#: The least body read that is relayed from the buffer: a smaller one is copied and goes out
#: with the head or the chunks queued before it (one record and one send, not two).
cdef Py_ssize_t _DIRECT_MIN = 32 * 1024

include "_fast_client.pxi"
