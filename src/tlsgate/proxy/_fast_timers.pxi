# The handshake deadlines of a listener's connections (included by _fast.pyx after
# _fast_tls.pxi): one loop timer per listener instead of one per connection.

# Every accepted connection must finish its handshake within the listener's timeout. A loop
# timer per connection (call_later, then cancel once the handshake is done) is a TimerHandle
# made, put in libuv's heap and taken out again for every connection. The timeout is the same
# for all of a listener's connections, so their deadlines come in the order they were accepted:
# a list, oldest first, with one loop timer for its head. A connection joins at the tail when
# accepted and leaves (O(1), doubly linked) when its handshake ends either way.

cdef extern from "<time.h>" nogil:
    enum:
        CLOCK_MONOTONIC


cdef double _monotonic_now():
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec + now.tv_nsec * 1e-9


cdef class _HandshakeTimers:
    """The connections of one listener still in their handshake, oldest first."""

    cdef object _loop
    cdef double timeout
    cdef TLSTransport _head
    cdef TLSTransport _tail
    cdef object _timer  # the loop timer for the head's deadline (None: the list is empty)

    def __cinit__(self, loop, double timeout):
        self._loop = loop
        self.timeout = timeout

    cdef add(self, TLSTransport t):
        t._deadline_at = _monotonic_now() + self.timeout
        t._timers = self
        t._older = self._tail
        t._newer = None
        if self._tail is not None:
            self._tail._newer = t
        else:
            self._head = t
        self._tail = t
        if self._timer is None:
            self._timer = self._loop.call_later(self.timeout, self._sweep)

    cdef remove(self, TLSTransport t):
        if t._timers is not self:
            return
        # The transports hold this object; once its listener is closed, the last one to leave
        # may hold the last reference: keep it until this method is done with it.
        cdef _HandshakeTimers keep = self
        if t._older is not None:
            t._older._newer = t._newer
        else:
            self._head = t._newer
        if t._newer is not None:
            t._newer._older = t._older
        else:
            self._tail = t._older
        t._older = None
        t._newer = None
        t._timers = None
        if self._head is None and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _sweep(self):
        """Time out every connection whose deadline has passed, then wait for the next."""
        cdef TLSTransport t
        cdef double now = _monotonic_now()
        self._timer = None
        while self._head is not None and self._head._deadline_at <= now:
            t = self._head
            self.remove(t)
            t._on_handshake_timeout()
        if self._head is not None and self._timer is None:
            self._timer = self._loop.call_later(self._head._deadline_at - now, self._sweep)
