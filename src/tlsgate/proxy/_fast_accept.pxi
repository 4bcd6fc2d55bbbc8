# The TLS listener of the socket path (included by _fast.pyx after _fast_tls.pxi): accepts and
# hands each connection to a TLSTransport.

#: Accepts per readiness callback: one, as nginx (multi_accept off). Connections waiting in the
#: kernel's queue cost nothing; accepted ones start handshakes that would run before the
#: requests of connections already open (measured: 64 per callback put the p99 of a request
#: after a resumed handshake at 4x nginx's, one at 0.8x, with more handshakes per CPU-second).
cdef int _ACCEPT_BATCH = 1


cdef class TLSAcceptor:
    """A TLS listener whose connections get a :class:`TLSTransport`: accepts in batches on the
    listening socket's readiness, and makes each connection's protocol with ``factory``."""

    cdef object _sock
    cdef int _fd
    cdef object _loop
    cdef object _ctx
    cdef object _lookup
    cdef object _factory
    cdef _HandshakeTimers _timers
    cdef _Readiness _poll
    cdef object _choose
    cdef public object sock

    def __init__(self, sock, ctx, factory, lookup, double handshake_timeout, choose=None):
        """``factory`` and ``lookup`` (the context for a server name), or ``choose``: the
        context and the protocol's factory from each ClientHello (_fast_hello.pxi; ``ctx``
        has its callback: install_choice)."""
        self.sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._ctx = ctx
        self._lookup = lookup
        self._factory = factory
        self._choose = choose
        self._timers = _HandshakeTimers(self._loop, handshake_timeout)
        self._poll = _Readiness(self._loop)
        sock.setblocking(False)
        self._loop.add_reader(self._fd, self._accept)

    def _accept(self):
        cdef sockaddr_storage addr
        cdef socklen_t size
        cdef int fd
        cdef int one = 1
        cdef int i
        for i in range(_ACCEPT_BATCH):
            size = sizeof(addr)
            fd = accept4(self._fd, <sockaddr *>&addr, &size, SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                if errno == EAGAIN:
                    return
                if errno == EINTR:
                    continue
                # EMFILE, ENOBUFS: the next readiness event tries again
                _logger().warning("accept failed: %s", (<bytes>strerror(errno)).decode())
                return
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
            peer = _address(<sockaddr *>&addr)
            try:
                if self._choose is not None:
                    TLSTransport(self._loop, None, self._ctx, None, fd, peer, self._timers,
                                 self._poll, self._choose)
                else:
                    TLSTransport(self._loop, self._factory(), self._ctx, self._lookup, fd,
                                 peer, self._timers, self._poll)
            except Exception:
                _logger().exception("TLS: could not start a connection from %s", peer)

    def stop_accepting(self):
        """Stop accepting; connections accepted already go on (handshakes included)."""
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._fd = -1
            self.sock.close()
            self._poll.stop_listening()

    def close(self):
        self.stop_accepting()
