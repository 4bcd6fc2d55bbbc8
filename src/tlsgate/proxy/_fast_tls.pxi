# OpenSSL on the socket (included by _fast.pyx): socket_tls.py's transport (its listener is in
# _fast_accept.pxi, the declarations in _fast_openssl.pxi).
#
# Each accepted connection gets an SSL made from the SSL_CTX of the site's ssl.SSLContext, with
# a BIO pair between it and the socket: OpenSSL writes records into the pair's buffer, which is
# sent with one send() straight from that buffer (BIO_nread0), and the socket is read straight
# into the pair's other buffer (BIO_nwrite0). Nothing crosses a Python object but the plaintext
# the protocol gets and gives; the records of one write go out in one system call (OpenSSL on a
# socket BIO would make one per 16 KiB record). The listener's epoll set (_fast_readiness.pxi)
# says when the socket is readable or writable.

#: Each direction of a connection's BIO pair. Outgoing: the records of one write (up to eight
#: full 16 KiB records) go out in one send(); incoming: one recv() takes what the client sent.
#: malloc'd at the first byte each way; small responses only touch the first pages (the pair
#: starts again at the front whenever it empties).
cdef size_t _PAIR_OUT = 128 * 1024
cdef size_t _PAIR_IN = 32 * 1024
#: Plaintext gathered before the protocol gets it (one bytes object per readiness event).
cdef size_t _PLAIN_SIZE = 64 * 1024
cdef char _PLAIN[64 * 1024]
#: Transport states.
cdef enum:
    _HANDSHAKE = 0
    _OPEN = 1
    _CLOSING = 2
    _LINGER = 3
    _CLOSED = 4
#: After close_notify (or a handshake's alert) and our FIN: how long the client's bytes are read
#: and dropped before the socket is closed. Closing with unread bytes sends a reset, and a reset
#: makes the client's kernel drop what it has not read yet: the end of a response, or the alert.
cdef double _LINGER_TIME = 5.0
#: The write buffer's marks (set_write_buffer_limits' defaults too). The records in the pair
#: count: a response relayed in 64 KiB reads is not paused while the socket takes what the pair
#: holds.
cdef Py_ssize_t _HIGH_WATER = 512 * 1024
cdef Py_ssize_t _LOW_WATER = 128 * 1024
cdef int _EX_INDEX = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL)
if _EX_INDEX < 0:  # pragma: no cover - OpenSSL out of memory at import
    raise ImportError("proxy/_fast: SSL_get_ex_new_index failed")

cdef int _on_servername(SSL *s, int *alert, void *arg) noexcept with gil:
    """OpenSSL's SNI callback on every context a TLSTransport's SSL may start on: move the
    handshake to the site the client named (Python's own callback would need its SSLSocket)."""
    cdef void *owner = SSL_get_ex_data(s, _EX_INDEX)
    cdef const char *name
    if owner == NULL:
        return SSL_TLSEXT_ERR_OK  # not one of ours: leave it on its context
    name = SSL_get_servername(s, TLSEXT_NAMETYPE_host_name)
    if name == NULL:
        return SSL_TLSEXT_ERR_OK  # IP-literal clients send no SNI: the default certificate
    try:
        (<TLSTransport>owner)._on_sni(s, name)
    except BaseException:  # never into C: the default certificate, and say why once
        _logger().exception("TLS: the SNI callback failed; the default certificate is used")
    return SSL_TLSEXT_ERR_OK


def install_sni(object ctx, size_t checked_pointer):
    """Make OpenSSL call the transport's SNI callback on ``ctx`` (``checked_pointer``: its
    ``SSL_CTX *`` as :func:`tlsgate.tls.libssl.ssl_ctx_pointer` found and checked it)."""
    cdef SSL_CTX *pointer = _checked_ctx(ctx, checked_pointer)
    SSL_CTX_callback_ctrl(pointer, SSL_CTRL_SET_TLSEXT_SERVERNAME_CB,
                          <_generic_callback>_on_servername)


cdef class TLSInfo  # _fast_tls_info.pxi
cdef class _HandshakeTimers  # _fast_timers.pxi
cdef class _Readiness  # _fast_readiness.pxi


cdef class TLSTransport:
    """One accepted connection's TLS, driven by OpenSSL on its socket: an asyncio transport
    (``write``, ``close``, ``pause_reading``, flow control by high and low marks) for the
    protocol the listener makes, which gets ``connection_made`` when the handshake is done,
    as on the event loop's own TLS."""

    cdef SSL *_ssl
    cdef BIO *_net
    cdef int _fd
    cdef int _state
    cdef object _loop
    cdef object _protocol
    cdef _ClientCore _core
    cdef object _ctx
    cdef object _lookup
    cdef object _choose
    cdef object _sni
    cdef object _peername
    cdef object _sockname_value
    cdef object _timer  # the linger's
    # The listener's handshake deadlines (_fast_timers.pxi): a list this transport is in
    # until its handshake ends.
    cdef _HandshakeTimers _timers
    cdef TLSTransport _older
    cdef TLSTransport _newer
    cdef double _deadline_at
    # The listener's epoll set, and this connection's interests registered there (0: none,
    # not in the set). _reading and _writing are the interests wanted: _sync registers them.
    cdef _Readiness _poll
    cdef unsigned int _mask
    cdef bint _reading
    cdef bint _writing
    cdef bint _read_paused
    cdef bint _protocol_paused
    cdef bint _eof
    cdef bint _notified
    # Set by the HTTP layer: everything the client sent was read (see _linger).
    cdef bint _input_done
    cdef list _pending
    cdef Py_ssize_t _pending_offset
    cdef Py_ssize_t _pending_size
    cdef Py_ssize_t _high
    cdef Py_ssize_t _low
    cdef TLSInfo _info

    def __cinit__(self):
        self._ssl = NULL
        self._net = NULL
        self._fd = -1
        self._state = _CLOSED

    def __init__(self, loop, protocol, ctx, lookup, int fd, peername,
                 _HandshakeTimers timers, _Readiness poll, choose=None):
        """Take ``fd`` (a connected non-blocking socket, closed by this transport) and start
        the handshake on ``ctx``; ``lookup(name)`` gives the context for a server name. Or,
        with ``choose`` (and ``protocol`` None), ``choose(hello)`` gives the context and the
        protocol's factory from the ClientHello (_fast_hello.pxi)."""
        cdef BIO *inner = NULL
        cdef SSL_CTX *pointer = TLSGATE_SSL_CTX(ctx)
        if pointer == NULL:
            close(fd)
            raise ValueError("an SSLContext without an SSL_CTX")
        self._ssl = SSL_new(pointer)
        if self._ssl == NULL or BIO_new_bio_pair(&inner, _PAIR_OUT, &self._net, _PAIR_IN) != 1:
            close(fd)
            raise MemoryError("SSL_new or BIO_new_bio_pair")
        SSL_set_bio(self._ssl, inner, inner)  # the SSL owns the inner half from here
        SSL_set_mode(self._ssl, SSL_MODE_ENABLE_PARTIAL_WRITE
                     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS)
        # A client that closes without close_notify (most do) ends the stream, not a fatal
        # error: that would drop its TLS 1.2 session from the caches. HTTP's framing finds a
        # truncated message by itself.
        SSL_set_options(self._ssl, SSL_OP_IGNORE_UNEXPECTED_EOF)
        SSL_set_accept_state(self._ssl)
        SSL_set_ex_data(self._ssl, _EX_INDEX, <void *>self)
        self._fd = fd
        self._state = _HANDSHAKE
        self._loop = loop
        self._set_protocol(protocol)
        self._ctx = ctx
        self._lookup = lookup
        self._choose = choose
        self._sni = None
        self._peername = peername
        self._sockname_value = None  # read when first asked (a system call nobody may need)
        self._pending = []
        self._pending_offset = 0
        self._pending_size = 0
        self._high = _HIGH_WATER
        self._low = _LOW_WATER
        self._info = None
        self._timer = None
        self._poll = poll
        self._mask = 0
        poll.joined()
        timers.add(self)
        # The handshake starts when the ClientHello is readable, in the set's next callback:
        # run here, a burst of accepts would make every connection already open wait for all
        # of the burst's handshakes (tens of milliseconds at the p99).
        self._reading = True
        try:
            self._sync()
        except OSError:
            self._teardown(None, False)
            raise

    def __dealloc__(self):
        if self._ssl != NULL:
            SSL_set_ex_data(self._ssl, _EX_INDEX, NULL)
            SSL_free(self._ssl)  # and the inner half of the pair
            self._ssl = NULL
        if self._net != NULL:
            BIO_free(self._net)
            self._net = NULL
        if self._fd >= 0:  # pragma: no cover - every path closes it first
            close(self._fd)
            self._fd = -1

    # -- the SNI callback's half ---------------------------------------------------------
    cdef _on_sni(self, SSL *s, const char *name):
        if self._lookup is None:
            return  # chosen from the ClientHello already (_fast_hello.pxi)
        server_name = (<bytes>name).decode("latin-1")
        if not server_name.isascii():
            return  # not a DNS name: no site has it
        self._sni = server_name  # the HTTP layer refuses a Host naming another site (421)
        ctx = self._lookup(server_name)
        if ctx is not None and ctx is not self._ctx:
            SSL_set_SSL_CTX(s, TLSGATE_SSL_CTX(ctx))
            self._ctx = ctx

    # -- readiness -----------------------------------------------------------------------
    cdef int _sync(self) except -1:
        """Register the interests this connection has now (a system call only when they
        changed). Every way in (a readiness event, a write or close from the protocol, a paused
        or resumed read) ends here, so the flags may change freely on the way."""
        if self._fd < 0:
            return 0
        self._poll.interest(self, (EPOLLIN if self._reading else 0)
                            | (EPOLLOUT if self._writing else 0))
        return 0

    cdef _on_events(self, unsigned int events):
        """The set's callback: what epoll reported for this socket (an error or hang-up wakes
        whichever side is waiting, which then reads or sends and meets it)."""
        if self._state == _LINGER:
            self._on_lingering()
        else:
            if self._reading and events & (EPOLLIN | EPOLLERR | EPOLLHUP):
                self._on_readable()
            if self._writing and events & (EPOLLOUT | EPOLLERR | EPOLLHUP):
                self._on_writable()
        try:
            self._sync()
        except OSError as exc:
            self._teardown(exc, True)

    def _resumed(self):
        """resume_reading's callback: the records already read wait in the pair or in OpenSSL."""
        self._on_readable()
        try:
            self._sync()
        except OSError as exc:
            self._teardown(exc, True)

    cdef _on_readable(self):
        if self._state >= _LINGER:
            return
        try:
            self._fill()
            if self._state == _HANDSHAKE:
                self._handshake()
            elif not self._read_paused:
                self._read_plain()
        except Exception as exc:
            self._failed(exc)

    cdef _on_writable(self):
        if self._state >= _LINGER:
            return
        try:
            if not self._flush():
                return
            self._stop_writing()
            if self._state == _HANDSHAKE:
                self._handshake()
                return
            if self._pending:
                self._write_pending()
            if self._writing:
                return  # still more than the socket takes
            if self._protocol_paused and self._buffered() <= self._low:
                self._protocol_paused = False
                self._protocol.resume_writing()
            if self._state == _CLOSING and not self._pending:
                self._shutdown()
        except Exception as exc:
            self._failed(exc)

    cdef _failed(self, exc):
        """A readiness callback failed: the socket or TLS (closed quietly, the protocol told),
        or the protocol itself (the same, with the traceback logged, as asyncio's transports
        do)."""
        if not isinstance(exc, OSError):
            _logger().exception("TLS connection from %s: the protocol failed", self._peername)
        self._teardown(exc, True)

    cdef inline void _stop_reading(self):
        self._reading = False

    cdef inline void _stop_writing(self):
        self._writing = False

    cdef _on_handshake_timeout(self):
        if self._state == _HANDSHAKE:
            self._teardown(None, False)  # quiet, as a failed handshake on the loop's TLS

    # -- the socket side -----------------------------------------------------------------
    cdef int _fill(self) except -1:
        """Read what the socket has into the pair (straight into its buffer)."""
        cdef char *space = NULL
        cdef int room
        cdef ssize_t got
        if self._eof:
            return 0
        while True:
            room = BIO_nwrite0(self._net, &space)
            if room <= 0:
                return 0  # the pair is full: OpenSSL reads first, the next event reads more
            got = recv(self._fd, space, <size_t>room, 0)
            if got > 0:
                BIO_nwrite(self._net, &space, <int>got)
                if got < room:
                    return 0
                continue
            if got == 0:
                self._eof = True
                BIO_shutdown_wr(self._net)  # OpenSSL reads the end after what is buffered
                self._stop_reading()
                return 0
            if errno == EAGAIN:
                return 0
            if errno == EINTR:
                continue
            raise _errno_failure(errno)

    cdef bint _flush(self) except -1:
        """Send what OpenSSL has written, straight from the pair's buffer. True when all is
        sent; else the rest waits for the socket to be writable."""
        cdef char *data = NULL
        cdef int size
        cdef ssize_t sent
        while True:
            size = BIO_nread0(self._net, &data)
            if size <= 0:
                return True
            sent = send(self._fd, data, <size_t>size, MSG_NOSIGNAL)
            if sent > 0:
                BIO_nread(self._net, &data, <int>sent)
                if sent == size:
                    continue
            elif sent < 0 and errno == EINTR:
                continue
            elif sent < 0 and errno != EAGAIN:
                raise _errno_failure(errno)
            self._writing = True  # the socket's room: _on_writable goes on
            return False

    cdef Py_ssize_t _buffered(self):
        return self._pending_size + <Py_ssize_t>BIO_ctrl_pending(self._net)

    # -- TLS -----------------------------------------------------------------------------
    cdef _handshake(self):
        cdef int ret
        cdef int err
        cdef bint sent
        while True:
            ERR_clear_error()
            ret = SSL_do_handshake(self._ssl)
            if ret == 1:
                self._flush()  # the server's last flight and the session tickets
                self._state = _OPEN
                if self._timers is not None:
                    self._timers.remove(self)
                if self._protocol is None:  # pragma: no cover - the chooser runs first
                    self._teardown(None, False)
                    return
                self._protocol.connection_made(self)
                if self._state == _OPEN and not self._read_paused:
                    self._read_plain()  # a request that came with the client's Finished
                return
            err = SSL_get_error(self._ssl, ret)
            # What OpenSSL wrote goes out either way: the next flight, or the alert that tells
            # a refused client why (the event loop's TLS drops that alert).
            sent = self._flush()
            if err == SSL_ERROR_WANT_READ and not self._eof:
                return
            if err == SSL_ERROR_WANT_WRITE:
                if sent:
                    continue
                return  # _on_writable goes on
            failure = _ssl_failure("TLS handshake failed")
            _logger().debug("%s from %s", failure, self._peername)
            _log_refusal(self, failure)
            if sent:
                self._linger(False)  # the alert reaches the client
            else:
                self._teardown(None, False)
            return

    cdef _read_plain(self):
        """Decrypt what the pair holds and hand it to the protocol, one bytes object per
        64 KiB, until OpenSSL needs more from the socket or the protocol pauses reading."""
        cdef size_t got = 0
        cdef size_t size = 0
        cdef int ret
        cdef int err
        while self._state == _OPEN or self._state == _CLOSING:
            size = 0
            err = SSL_ERROR_NONE
            ERR_clear_error()
            while size < _PLAIN_SIZE:
                ret = SSL_read_ex(self._ssl, _PLAIN + size, _PLAIN_SIZE - size, &got)
                if ret != 1:
                    err = SSL_get_error(self._ssl, ret)
                    break
                size += got
            if size:
                data = PyBytes_FromStringAndSize(_PLAIN, <Py_ssize_t>size)
                if self._state == _OPEN:
                    if self._core is not None:
                        self._core._data_received(data)
                    else:
                        self._protocol.data_received(data)
            if BIO_ctrl_pending(self._net):
                self._flush()  # a key update's answer, or tickets sent after the handshake
            if err == SSL_ERROR_NONE:
                if self._read_paused:
                    return
                continue
            if err == SSL_ERROR_WANT_READ and not self._eof:
                return
            if err == SSL_ERROR_WANT_READ or err == SSL_ERROR_ZERO_RETURN:
                # The client's close_notify, or the end of the stream without one
                # (SSL_OP_IGNORE_UNEXPECTED_EOF makes that a ZERO_RETURN too).
                self._end_of_stream()
                return
            raise _ssl_failure("TLS read failed")

    cdef _end_of_stream(self):
        self._stop_reading()
        if self._state != _OPEN:
            return
        keep_open = self._protocol.eof_received()
        if keep_open:
            _logger().debug("eof_received() asked to keep a TLS connection half-open: closed")
        self.close()

    cdef Py_ssize_t _encrypt(self, const char *data, Py_ssize_t size) except -1:
        """Encrypt ``data`` into the pair, sending whenever the pair fills: how many bytes
        OpenSSL took (fewer than ``size`` only when the socket took no more)."""
        cdef size_t done = 0
        cdef Py_ssize_t offset = 0
        cdef int ret
        cdef int err
        while offset < size:
            ERR_clear_error()
            ret = SSL_write_ex(self._ssl, data + offset, <size_t>(size - offset), &done)
            if ret == 1:
                offset += <Py_ssize_t>done
                continue
            err = SSL_get_error(self._ssl, ret)
            if err == SSL_ERROR_WANT_WRITE or err == SSL_ERROR_WANT_READ:
                if self._flush():
                    continue  # the pair has room again
                break
            raise _ssl_failure("TLS write failed")
        return offset

    cdef int _write_pending(self) except -1:
        """Retry the oldest waiting write from where OpenSSL stopped (the same bytes, as
        OpenSSL requires after WANT_WRITE), then the others, while the socket takes them."""
        cdef bytes head
        cdef Py_ssize_t offset
        cdef Py_ssize_t done
        while self._pending:
            head = self._pending[0]
            offset = self._pending_offset
            done = self._encrypt(PyBytes_AS_STRING(head) + offset,
                                 PyBytes_GET_SIZE(head) - offset)
            self._pending_size -= done
            if offset + done < PyBytes_GET_SIZE(head):
                self._pending_offset = offset + done
                return 0
            del self._pending[0]
            self._pending_offset = 0
        self._flush()
        return 0

    cdef int _write(self, bytes data) except -1:
        return self._send(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data)

    cdef int _send(self, const char *data, Py_ssize_t size, bytes owner) except -1:
        """Encrypt and send ``size`` bytes at ``data``; what the socket cannot take now
        waits. ``owner``: the bytes object ``data`` is (kept while it waits), or None: ``data``
        is a buffer that will be reused, and what waits is copied."""
        cdef Py_ssize_t done
        if self._state != _OPEN or size == 0:
            return 0
        if self._pending:
            self._pending.append(
                owner if owner is not None else PyBytes_FromStringAndSize(data, size)
            )
            self._pending_size += size
        else:
            try:
                done = self._encrypt(data, size)
                if done < size:
                    if owner is not None:
                        self._pending.append(owner)
                        self._pending_offset = done
                    else:  # OpenSSL takes the rest again from the copy (a moving buffer)
                        self._pending.append(PyBytes_FromStringAndSize(data + done, size - done))
                        self._pending_offset = 0
                    self._pending_size += size - done
                self._flush()
            except OSError as exc:
                self._teardown(exc, True)
                return 0
        if not self._protocol_paused and self._buffered() > self._high:
            self._protocol_paused = True
            self._protocol.pause_writing()
        if self._state < _LINGER:
            try:
                self._sync()
            except OSError as exc:
                self._teardown(exc, True)
        return 0

    # -- ending ----------------------------------------------------------------------------
    cdef _shutdown(self):
        """Everything written has been encrypted: close_notify, and once the socket has taken
        all of it, our FIN."""
        if not self._notified:
            self._notified = True
            ERR_clear_error()
            SSL_shutdown(self._ssl)
            ERR_clear_error()
        try:
            if not self._flush():
                return  # _on_writable comes back here
        except OSError as exc:
            self._teardown(exc, True)
            return
        self._linger(True)

    cdef _linger(self, bint tell):
        """Our side is done: FIN, the protocol told, the client's last bytes dropped until it
        closes too (or _LINGER_TIME passes), then the socket closed.

        Closing a socket with unread bytes makes the kernel answer with a reset, and a reset
        makes the client's kernel drop what it had not read yet: the end of our response. So
        a client that may still be sending (a body we did not read, a pipelined request, an
        alert after a failed handshake) is drained first. When the HTTP layer says all it
        sent was read and nothing is waiting, the socket closes at once, as nginx's
        lingering_close "on" does: the client's close_notify or FIN comes after it read our
        close_notify, which comes after the response; a reset then loses nothing."""
        self._state = _LINGER
        self._release(None, tell)
        if self._eof or (self._input_done and not self._unread()):
            self._teardown(None, False)  # close() sends the FIN
            return
        shutdown(self._fd, SHUT_WR)
        self._reading = True
        try:
            self._sync()
        except OSError:
            self._teardown(None, False)
            return
        self._timer = self._loop.call_later(_LINGER_TIME, self._end_linger)

    cdef bint _unread(self):
        """Whether the client's bytes wait anywhere: in OpenSSL, in the pair, in the socket."""
        cdef char probe
        if SSL_has_pending(self._ssl) or BIO_ctrl_pending(SSL_get_rbio(self._ssl)):
            return True
        return recv(self._fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT) != -1 or errno != EAGAIN

    cdef _on_lingering(self):
        cdef ssize_t got
        while self._state == _LINGER:
            got = recv(self._fd, _PLAIN, _PLAIN_SIZE, 0)
            if got > 0:
                continue
            if got < 0 and errno == EINTR:
                continue
            if got < 0 and errno == EAGAIN:
                return
            self._teardown(None, False)  # the client's end, or an error: done
            return

    def _end_linger(self):
        self._timer = None
        self._teardown(None, False)

    cdef _release(self, exc, bint tell):
        """What ends with the connection, whatever becomes of the socket: the timer, the
        readiness callbacks, unsent writes; the protocol hears of it on the next loop
        iteration (never inside its own call to close())."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._timers is not None:
            self._timers.remove(self)
        self._reading = False
        self._writing = False
        self._pending = []
        self._pending_size = 0
        if tell:
            self._loop.call_soon(self._protocol.connection_lost, exc)
        self._core = None

    cdef _teardown(self, exc, bint tell):
        """Close the socket now (``tell``: the protocol, if it was connected)."""
        if self._state == _CLOSED:
            return
        cdef bint was_open = self._state == _OPEN or self._state == _CLOSING
        self._state = _CLOSED
        self._release(exc, tell and was_open)
        self._poll.forget(self)
        close(self._fd)  # which takes the socket out of the epoll set
        self._fd = -1
        self._info = None  # it holds this transport: no cycle left for the garbage collector

    # -- asyncio.Transport ---------------------------------------------------------------
    def write(self, data):
        if type(data) is not bytes:
            data = bytes(data)
        self._write(data)

    def writelines(self, list_of_data):
        self._write(b"".join(list_of_data))

    def can_write_eof(self):
        return False

    def write_eof(self):
        raise NotImplementedError("TLS has no half-close (close() sends close_notify)")

    def close(self):
        """Send what is buffered, then close_notify, then close the socket."""
        if self._state != _OPEN:
            if self._state == _HANDSHAKE:
                self._teardown(None, False)
            return
        self._state = _CLOSING
        self._stop_reading()
        if not self._pending and BIO_ctrl_pending(self._net) == 0:
            self._shutdown()
        if self._state == _CLOSING:
            try:
                self._sync()
            except OSError as exc:
                self._teardown(exc, True)

    def abort(self):
        self._teardown(None, True)

    def is_closing(self):
        return self._state >= _CLOSING

    def is_reading(self):
        return self._state == _OPEN and not self._read_paused

    def pause_reading(self):
        if self._state != _OPEN or self._read_paused:
            return
        self._read_paused = True
        self._stop_reading()
        try:
            self._sync()
        except OSError as exc:
            self._teardown(exc, True)

    def resume_reading(self):
        if self._state != _OPEN or not self._read_paused:
            return
        self._read_paused = False
        if not self._eof:
            self._reading = True
        # Records already read from the socket (or its end) wait in the pair or in OpenSSL;
        # _resumed registers the interest.
        self._loop.call_soon(self._resumed)

    def set_write_buffer_limits(self, high=None, low=None):
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high = high
        self._low = low

    def get_write_buffer_limits(self):
        return (self._low, self._high)

    def get_write_buffer_size(self):
        return self._buffered() if self._net != NULL else 0

    def set_protocol(self, protocol):
        self._set_protocol(protocol)

    cdef bint _alpn_h2(self):
        """The handshake chose HTTP/2 (read once, when the connection is made)."""
        cdef const unsigned char *data = NULL
        cdef unsigned int size = 0
        if self._ssl == NULL:
            return False
        SSL_get0_alpn_selected(self._ssl, &data, &size)
        return size == 2 and data[0] == 104 and data[1] == 50  # b"h2"

    cdef _set_protocol(self, protocol):
        self._protocol = protocol
        self._core = protocol if isinstance(protocol, _ClientCore) else None

    def get_protocol(self):
        return self._protocol

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self._tls_info()
        if name == "peername":
            return self._peername
        if name == "sockname":
            if self._sockname_value is None:
                self._sockname_value = self._sockname()  # None once the socket is closed
            return self._sockname_value
        if name == "sslcontext":
            return self._ctx
        if name == "peercert":
            return None
        if name == "cipher":
            return self._tls_info().cipher()
        if name == "compression":
            return None
        return default  # "socket": the transport owns the descriptor alone

    cdef TLSInfo _tls_info(self):
        if self._info is None:
            self._info = TLSInfo(self)
        return self._info

    cdef object _sockname(self):
        cdef sockaddr_storage addr
        cdef socklen_t size = sizeof(addr)
        if self._fd < 0 or getsockname(self._fd, <sockaddr *>&addr, &size) != 0:
            return None
        return _address(<sockaddr *>&addr)
