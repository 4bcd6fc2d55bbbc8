# The readiness of a listener's TLS connections (included by _fast.pyx after _fast_tls.pxi):
# one epoll set of their sockets, itself one reader of the event loop.

# Through the event loop, each connection's socket was a reader (and, when a write blocked, a
# writer) of its own: a libuv poll handle and a loop Handle made for it, the socket made
# non-blocking again (ioctl), and about ten epoll_ctl calls per connection as the interests
# came and went (strace of a resumed handshake with one request: 36 system calls per
# connection, nginx 23). Here a connection joins the listener's epoll set once, with the
# interests it has, changes them only when they change (a write that blocks, a paused read),
# and leaves by closing its socket, as nginx's connections do. The loop sees one descriptor,
# readable whenever any connection is ready, and one call here hands each ready connection
# its events, in C.
#
# Level-triggered, as the loop's own readers: a connection that leaves data unread (a full
# pair, a paused protocol) is told again, and none is lost between interest changes.

cdef extern from "<sys/epoll.h>" nogil:
    ctypedef union epoll_data_t:
        void *ptr
        int fd
        unsigned int u32
        unsigned long long u64
    struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_create1(int flags)
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    int epoll_wait(int epfd, epoll_event *events, int maxevents, int timeout)
    enum:
        EPOLLIN
        EPOLLOUT
        EPOLLERR
        EPOLLHUP
        EPOLL_CTL_ADD
        EPOLL_CTL_MOD
        EPOLL_CTL_DEL
        EPOLL_CLOEXEC

#: Ready connections handled per loop callback; more wait for the next (the set stays readable).
cdef enum:
    _READY_BATCH = 128


cdef class _Readiness:
    """The epoll set of one listener's connections. A connection is in it while it has an
    interest (reading, writing or both); the set holds it (as the loop held its callbacks)."""

    cdef int _epfd
    cdef object _loop
    cdef dict _conns  # fd -> TLSTransport, the connections in the set
    cdef Py_ssize_t _users  # transports made with this set and not torn down yet
    cdef bint _listening
    cdef epoll_event _events[_READY_BATCH]

    def __cinit__(self, loop):
        self._epfd = epoll_create1(EPOLL_CLOEXEC)
        if self._epfd < 0:
            raise _errno_failure(errno)
        self._loop = loop
        self._conns = {}
        self._users = 0
        self._listening = True
        loop.add_reader(self._epfd, self._ready)

    def __dealloc__(self):
        if self._epfd >= 0:  # pragma: no cover - _close runs first unless the loop went away
            close(self._epfd)
            self._epfd = -1

    cdef int interest(self, TLSTransport t, unsigned int mask) except -1:
        """Make ``t``'s interests in the set ``mask`` (EPOLLIN, EPOLLOUT, both or none)."""
        cdef epoll_event event
        cdef int op
        if mask == t._mask:
            return 0
        if t._mask == 0:
            op = EPOLL_CTL_ADD
        elif mask == 0:
            op = EPOLL_CTL_DEL
        else:
            op = EPOLL_CTL_MOD
        event.events = mask
        event.data.u64 = 0
        event.data.fd = t._fd
        if epoll_ctl(self._epfd, op, t._fd, &event) != 0:
            raise _errno_failure(errno)
        if op == EPOLL_CTL_ADD:
            self._conns[t._fd] = t
        elif op == EPOLL_CTL_DEL:
            del self._conns[t._fd]
        t._mask = mask
        return 0

    cdef forget(self, TLSTransport t):
        """``t`` is closing its socket, which takes it out of the set by itself (the socket
        has no other descriptor): no system call."""
        if t._mask != 0:
            del self._conns[t._fd]
            t._mask = 0
        self._users -= 1
        if self._users == 0 and not self._listening:
            self._close()

    cdef joined(self):
        self._users += 1

    cdef stop_listening(self):
        """The listener closed: the set goes once its last connection has."""
        self._listening = False
        if self._users == 0:
            self._close()

    cdef _close(self):
        if self._epfd < 0:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._epfd)
        close(self._epfd)
        self._epfd = -1

    def _ready(self):
        """The loop's callback: each ready connection gets its events. A connection torn down
        by an earlier one's events in the same batch is no longer in the set's table, and its
        socket's number cannot have been taken again meanwhile (only the acceptor, a callback
        of its own, makes the sockets of this table)."""
        cdef int count
        cdef int i
        cdef object t
        if self._epfd < 0:
            return
        count = epoll_wait(self._epfd, self._events, _READY_BATCH, 0)
        if count < 0:
            if errno == EINTR:
                return
            raise _errno_failure(errno)
        for i in range(count):
            t = self._conns.get(self._events[i].data.fd)
            if t is not None:
                (<TLSTransport>t)._on_events(self._events[i].events)
