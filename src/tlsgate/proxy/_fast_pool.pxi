# upstream.py's UpstreamPool, compiled (included by _fast_conn.pxi after UpstreamConnection).
#
# The pure pool keys its idle lists by the upstream's value, and an upstream is a frozen
# dataclass from the configuration whose __hash__ is Python code: a frame per take and per
# release. Here the lists are found by the upstream object's identity first (the route hands
# the same object for every request), and by value only the first time an object is seen, so
# two equal upstreams (a reload builds new ones) still share one list, as in the pure pool.

cdef Py_ssize_t MAX_IDLE_PER_UPSTREAM = 512
cdef double IDLE_TIMEOUT = 30.0
# Identity entries kept before the table starts over (each reload of the configuration adds
# its upstream objects; the value table stays the authority).
cdef Py_ssize_t _MAX_IDENTITIES = 1024


#: upstream.py's refusal of an HTTP/1.1 connection to an h2c:// upstream.
H2C_ONLY = "this upstream speaks HTTP/2 (h2c://): only HTTP/2 clients reach it"


async def _open(loop, upstream, double timeout):
    if getattr(upstream, "h2c", False):
        raise ConnectionRefusedError(H2C_ONLY)
    async with asyncio.timeout(timeout):
        _, protocol = await loop.create_connection(
            lambda: UpstreamConnection(upstream), upstream.host, upstream.port
        )
    return protocol


cdef class UpstreamPool:
    """upstream.py's UpstreamPool: idle connections per upstream, most recently used last."""

    cdef public object loop
    cdef dict _idle
    cdef dict _by_identity
    cdef object _last_upstream  # the last upstream asked for, and its list
    cdef list _last_idle
    cdef object _sweeper

    def __init__(self, loop):
        self.loop = loop
        self._idle = {}
        self._by_identity = {}
        self._last_upstream = None
        self._last_idle = None
        self._sweeper = None

    cdef list _list(self, upstream):
        if upstream is self._last_upstream:
            return self._last_idle
        cdef object key = id(upstream)
        entry = self._by_identity.get(key)
        if entry is not None:
            self._last_upstream = upstream
            self._last_idle = <list>(<tuple>entry)[1]
            return self._last_idle
        idle = self._idle.get(upstream)
        if idle is None:
            idle = []
            self._idle[upstream] = idle
        if len(self._by_identity) >= _MAX_IDENTITIES:
            self._by_identity.clear()
        # The tuple keeps the object alive, so its id is not reused while the entry exists.
        self._by_identity[key] = (upstream, idle)
        self._last_upstream = upstream
        self._last_idle = idle
        return idle

    cpdef UpstreamConnection take(self, upstream):
        """A pooled connection that is still open, or None (then :meth:`connect`)."""
        cdef list idle = self._list(upstream)
        cdef UpstreamConnection conn
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.reused = True
                return conn
        return None

    def connect(self, upstream, double timeout):
        """A new connection (a coroutine); raises OSError or TimeoutError when the upstream is
        unreachable."""
        return _open(self.loop, upstream, timeout)

    cpdef release(self, UpstreamConnection conn):
        """Return a connection whose exchange completed cleanly; anything else is closed."""
        conn._core = None
        conn._owner = None
        conn.resume_reading()
        cdef list idle = self._list(conn.upstream)
        if (
            conn.closed
            or conn.write_paused
            or not conn.parser.reusable
            or len(idle) >= MAX_IDLE_PER_UPSTREAM
        ):
            conn.close()
            return
        conn.idle_since = _monotonic()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    def _sweep(self):
        self._sweeper = None
        cdef double oldest = _monotonic() - IDLE_TIMEOUT
        cdef bint left = False
        cdef Py_ssize_t stale
        cdef list idle
        cdef UpstreamConnection conn
        for idle in self._idle.values():
            stale = 0
            while stale < len(idle):
                conn = idle[stale]
                if not (conn.idle_since < oldest or conn.closed):
                    break
                stale += 1
            for conn in idle[:stale]:
                conn.close()
            del idle[:stale]
            left = left or bool(idle)
        if left:
            self._sweeper = self.loop.call_later(IDLE_TIMEOUT / 2, self._sweep)

    def close(self):
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        cdef UpstreamConnection conn
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
            del conns[:]
        self._idle.clear()
        self._by_identity.clear()
        self._last_upstream = None
        self._last_idle = None
