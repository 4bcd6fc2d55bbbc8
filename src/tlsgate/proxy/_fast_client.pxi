# The compiled client connection's body (included by _fast_conn.pxi): protocol.py's client half
# and upstream_side.py's upstream half as one cdef class, every internal step a C method. The
# order of statements is theirs, so that a diff against those two files reads as the port it is.


cdef class _ClientCore:
    """protocol.py's ClientProtocol, without its asyncio base (ClientProtocol below adds it)."""

    cdef public object edge
    cdef public object loop
    cdef public object parser
    cdef public object transport
    # The transport when it is OpenSSL on the socket (_fast_tls.pxi): written to in C.
    cdef TLSTransport _tls
    cdef public object client
    cdef public bint trusted
    cdef public object sni_route
    cdef public object identity
    cdef public UpstreamConnection tunnel
    cdef public bint busy
    cdef public bint closed
    cdef Exchange _x
    cdef object _queue
    cdef object _client_error
    cdef bint _client_eof
    cdef int _paused
    cdef bint _write_paused
    cdef list _out
    cdef Py_ssize_t _out_size
    cdef long long _sent
    cdef double _head_since
    cdef bint _refused
    cdef Deadline _deadline
    # The last request's Host value, normalize_host's answer to it, and the router's answer to
    # (that host, sni_route): a keep-alive client repeats its Host, so the route is decided once
    # per connection and again only when the Host bytes change (sni_route is fixed at the
    # handshake). _route_router is the router that answered (None: nothing cached yet);
    # _route_hsts is edge.hsts_for(route.site) for that route.
    cdef bytes _host_value
    cdef str _host
    cdef object _route_router
    cdef object _route
    cdef int _route_status
    cdef object _route_hsts
    # The forwarding headers' per-connection part (the edge's, for this client's address).
    cdef _Peer _peer
    # The edge's answers remembered across connections (_fast_memo.pxi).
    cdef _EdgeMemo _memo

    def __init__(self, edge):
        if ClientInfo is None:
            _bind()
        if Request is not _Req:  # pragma: no cover - one switch selects parser and connection
            raise TypeError("the compiled connection reads the compiled parser's events")
        self.edge = edge
        self._memo = _memo(edge)
        self.loop = asyncio.get_running_loop()
        self.parser = RequestParser(edge.parser_limits)
        self.transport = None
        self._tls = None
        self.client = self._memo.client(edge, "").info
        self.trusted = False
        self.sni_route = None
        self.identity = None
        self.tunnel = None
        self.busy = False
        self.closed = False
        self._x = None
        self._queue = deque()
        self._client_error = None
        self._client_eof = False
        self._paused = 0
        self._write_paused = False
        self._out = []
        self._out_size = 0
        self._sent = 0
        self._head_since = 0.0
        self._refused = False
        self._deadline = Deadline(self.loop, self._on_deadline)
        self._host_value = b""
        self._host = ""
        self._route_router = None
        self._route = None
        self._route_status = 0
        self._route_hsts = None
        self._peer = None

    # -- asyncio callbacks: the client side --------------------------------------------------
    def connection_made(self, transport):
        cdef TLSTransport tls = None
        cdef _Client client
        self.transport = transport
        if type(transport) is TLSTransport:
            # OpenSSL on the socket: what get_extra_info would answer, read directly (its
            # TCP_NODELAY is set at accept).
            tls = self._tls = <TLSTransport>transport
            peer = tls._peername
            name = tls._sni
            ssl_object = tls._tls_info() if self.edge.client_auth else None
        else:
            peer = transport.get_extra_info("peername")
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
                except OSError:
                    pass
            ssl_object = transport.get_extra_info("ssl_object")
            name = getattr(ssl_object, "tlsgate_sni", None) if ssl_object is not None else None
        client = self._memo.client(self.edge, peer[0] if peer else "")
        self.client = client.info
        self.trusted = client.trusted
        self._peer = client.peer
        if name:
            self.sni_route = self._memo.sni_route(self.edge.router, name)
        if ssl_object is not None and self.edge.client_auth:
            self.identity = peer_identity(ssl_object)
        if tls is not None:
            if tls._alpn_h2():
                self._become_h2(transport)
                return
        elif ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._become_h2(transport)
            return
        self.edge.connections.add(self)
        metrics = self.edge.metrics
        if type(metrics) is RequestCounts:
            (<RequestCounts>metrics).connected()
        elif metrics is not None:
            metrics.connected()
        self._deadline.set(self.edge.timeouts.header, DEADLINE_IDLE)

    cdef _become_h2(self, transport):
        """ALPN chose HTTP/2: the connection is an H2Connection's from here (this object,
        made before the handshake, is dropped)."""
        self._deadline.close()
        self.transport = None
        self._tls = None
        conn = H2Connection(self.edge, self.client, self.trusted, self.sni_route, self.identity)
        transport.set_protocol(conn)
        conn.connection_made(transport)

    def get_buffer(self, sizehint):
        return _READ_VIEW

    def buffer_updated(self, Py_ssize_t nbytes):
        if not 0 <= nbytes <= READ_BUFFER_SIZE:
            raise ValueError("buffer_updated: more bytes than the buffer holds")
        self._data_received(PyBytes_FromStringAndSize(PyByteArray_AS_STRING(_READ_BUFFER), nbytes))

    def data_received(self, data):
        self._data_received(bytes(data))

    cdef _data_received(self, bytes data):
        if self.tunnel is not None:
            self.tunnel.write(data)
            return
        cdef Exchange x = self._x
        if x is not None and x.request.upgrade is not None and (1 << x._phase) & _REQUEST_READ:
            x.tunnel_leftover += data
            self._pause(PAUSE_TUNNEL)
            return
        if x is None and self._deadline.kind != DEADLINE_HEAD:
            self._deadline.set(self.edge.timeouts.header, DEADLINE_HEAD)
            self._head_since = _monotonic()
        try:
            events = self.parser.feed(data)
        except RemoteProtocolError as exc:
            self._client_error = exc
            self._pump()
            return
        self._queue.extend(events)
        self._pump()

    def eof_received(self):
        self._client_eof = True
        if self.tunnel is not None:
            self.tunnel.close()
            return None
        try:
            self._queue.extend(self.parser.feed_eof())
        except RemoteProtocolError as exc:
            self._client_error = exc
        except LocalProtocolError:
            pass
        self._pump()
        return None

    def connection_lost(self, exc):
        self.closed = True
        self.edge.connections.discard(self)
        self._deadline.close()
        if self.tunnel is not None:
            self.tunnel.close()
        cdef Exchange x = self._x
        cdef UpstreamConnection conn
        if x is not None:
            self._x = None
            self.busy = False
            x.move(ABORT)
            conn = self._detach(x)
            if conn is not None:
                conn.close()
            self._log(x, x.status or 499, "client closed the connection")
        # The transport holds this protocol: dropping it here ends the cycle, so the
        # connection is freed now rather than by the garbage collector.
        self.transport = None
        self._tls = None

    def pause_writing(self):
        self._write_paused = True
        cdef Exchange x = self._x
        if x is not None and x.conn is not None:
            x.conn.pause_reading()

    def resume_writing(self):
        self._write_paused = False
        cdef Exchange x = self._x
        if x is not None and x.conn is not None:
            x.conn.resume_reading()

    # -- output ----------------------------------------------------------------------------
    cdef _write(self, bytes data):
        self._out.append(data)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(data)
        self._out_size += size
        self._sent += size
        if self._out_size >= FLUSH_SIZE:
            self._flush()

    cdef _flush(self):
        cdef list out = self._out
        if not out:
            return
        if self._tls is not None and self._out_size >= _RECORD_SIZE and len(out) > 1:
            # OpenSSL on the socket gathers records itself: big chunks go as they are, not
            # copied into one bytes first (a head and a body chunk cost one short record).
            self._out = []
            self._out_size = 0
            if not self.closed:
                for data in out:
                    self._tls._write(data)
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        del out[:]
        self._out_size = 0
        if self.closed:
            return
        if self._tls is not None:
            self._tls._write(data)
            return
        transport = self.transport
        if transport is not None:
            transport.write(data)

    def close(self):
        self._close()

    cdef _close(self):
        cdef Exchange x = self._x
        if x is not None:
            self._abort(x, 503, "the server is shutting down")
            return
        self._flush()
        if self.transport is not None:
            self.transport.close()

    # -- flow control and deadlines ----------------------------------------------------------
    cdef _pause(self, int reason):
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.pause_reading()
        self._paused |= reason

    cdef _resume(self, int reason):
        if not self._paused & reason:
            return
        self._paused &= ~reason
        if not self._paused and self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def _on_deadline(self, int kind):
        if self.closed:
            return
        cdef Exchange x = self._x
        if kind == DEADLINE_IDLE:
            self._close()
        elif kind == DEADLINE_HEAD:
            self._refuse(408, "request head timeout")
        elif x is None:  # pragma: no cover - exchange deadlines are cleared with the exchange
            self._close()
        elif kind == DEADLINE_BODY:
            self._abort(x, 408, "request body timeout")
        else:
            self._abort(x, 504, "upstream response timeout")

    # -- client events -----------------------------------------------------------------------
    cdef _pump(self):
        queue = self._queue
        cdef Exchange x
        while queue:
            x = self._x
            if x is None:
                event = queue.popleft()
                if type(event) is _Req:
                    self._begin(<_Req>event)
                continue
            if not (1 << x._phase) & _READS_BODY:
                break
            event = queue.popleft()
            kind = type(event)
            if kind is _Dat:
                if x._phase != LOCAL:
                    data = (<_Dat>event).data
                    x.conn.write(chunk(data) if x.chunked_in else data)
                    self._deadline.set(self.edge.timeouts.idle, DEADLINE_BODY)
            elif kind is _EOM:
                if x.move(REQUEST_END) == DONE:
                    self._answer_locally(x)
                    continue
                if x.chunked_in:
                    x.conn.write(last_chunk((<_EOM>event).trailers))
                if self._deadline.kind == DEADLINE_BODY:
                    self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
            elif kind is _Upg:
                x.tunnel_leftover = (<_Upg>event).leftover + x.tunnel_leftover
        if len(queue) > HIGH_WATER:
            self._pause(PAUSE_QUEUE)
        elif len(queue) <= LOW_WATER:
            self._resume(PAUSE_QUEUE)
        if self._x is None and not queue:
            if self._client_error is not None:
                self._refuse(self._client_error.status, str(self._client_error))
            elif self._client_eof:
                self._close()
        elif self._client_error is not None and self._x is not None:
            x = self._x
            if not (1 << x._phase) & _REQUEST_READ:
                self._abort(x, self._client_error.status, str(self._client_error))

    cdef _begin(self, _Req request):
        edge = self.edge
        self.busy = True
        if self._tls is not None:
            self._tls._input_done = False  # this request's body may still be on its way
        cdef bytes host_value = b""
        for header in <list?>request.headers:
            name = (<tuple?>header)[0]
            if (
                type(name) is bytes
                and PyBytes_GET_SIZE(name) == 4
                and memcmp(PyBytes_AS_STRING(name), b"host", 4) == 0
            ):
                host_value = (<tuple>header)[1]
                break
        cdef str host
        router = edge.router
        if host_value == self._host_value and router is self._route_router:
            host = self._host  # (keep-alive: the same Host as the last request, the same route)
            route, status = self._route, self._route_status
        else:
            host, route, status, self._route_hsts = self._memo.host_route(
                edge, router, host_value, self.sni_route
            )
            self._host_value, self._host = host_value, host
            self._route_router, self._route, self._route_status = router, route, status
        cdef Exchange x = Exchange(request, host, _monotonic())
        self._x = x
        x.sent_before = self._sent
        if route is None:
            x.local_status = status
            x.move(ANSWER_LOCALLY)
            self._deadline.set(edge.timeouts.idle, DEADLINE_BODY)
            return
        x.route = route
        xfcc = None
        client_auth = edge.client_auth
        auth = client_auth.get(id(route.site)) if client_auth else None
        if auth is not None:
            decision, xfcc = admit(auth, self.identity, request)
            if not decision.allowed:
                x.local_status, x.local_reason = 403, decision.reason
                x.move(ANSWER_LOCALLY)
                self._deadline.set(edge.timeouts.idle, DEADLINE_BODY)
                return
        headers = _forwarded(
            request.headers,
            self._peer,
            host_value,
            self.trusted,
            request.upgrade,
            route.site.via,
            xfcc,
        )
        if x.chunked_in:
            headers.append((b"transfer-encoding", b"chunked"))
        x.head = _request_head(request.method, request.target, headers)
        x.retry_ok = request.method in _IDEMPOTENT and request.body is _NO_BODY
        x.attempts = 2 if (x.retry_ok or len(route.balancer.states) > 1) else 1
        self._deadline.set(edge.timeouts.upstream_response, DEADLINE_UPSTREAM)
        self._connect(x)

    cdef _answer_locally(self, Exchange x):
        self._write(error_response(x.local_status, close=False, detail=x.local_reason))
        error = x.local_reason or _ROUTING_ERRORS.get(x.local_status, "")
        self._end(x, x.local_status, x.request.keep_alive, error)

    # -- ending an exchange ------------------------------------------------------------------
    cdef _end(self, Exchange x, long status, bint keep_alive, str error=""):
        self._x = None
        self.busy = False
        self._log(x, status, error)
        if not keep_alive or self.edge.draining or self.closed:
            self._close()
            return
        self._flush()
        self._resume(PAUSE_UPSTREAM)
        self._head_since = _monotonic()
        if not self.parser.head_in_progress:
            self._deadline.set(self.edge.timeouts.idle, DEADLINE_IDLE)
        else:
            self._deadline.set(self.edge.timeouts.header, DEADLINE_HEAD)
        if self._queue or self._client_error is not None or self._client_eof:
            self._pump()

    cdef _abort(self, Exchange x, long status, str reason):
        metrics = self.edge.metrics
        if metrics is not None and (status == 502 or status == 504):
            kind = "unavailable" if status == 502 else "timeout"
            upstream = str(x.state.upstream) if x.state is not None else "-"
            metrics.upstream_failed(upstream, kind)
        cdef bint head_sent = (1 << x._phase) & _HEAD_SENT
        x.move(ABORT)
        cdef UpstreamConnection conn = self._detach(x)
        if conn is not None:
            conn.close()
        if not head_sent:
            self._write(error_response(status))
        self._end(x, status, False, reason)

    cdef _refuse(self, long status, str error):
        if self._refused:
            return
        self._refused = True
        cdef long long sent = self._sent
        self._write(error_response(status))
        edge = self.edge
        cdef double duration
        if edge.metrics is not None or edge.log is not None:
            duration = _monotonic() - self._head_since
            if edge.metrics is not None:
                edge.metrics.observe("-", status, duration)
            if edge.log is not None:
                method, target = self.parser.partial_request() or (None, None)
                edge.log(
                    AccessRecord(
                        self.client.address,
                        method.decode("latin-1") if method is not None else None,
                        target.decode("latin-1") if target is not None else None,
                        "",
                        status,
                        self._sent - sent,
                        "",
                        duration,
                        error,
                    )
                )
        self._close()

    cdef _log(self, Exchange x, long status, str error=""):
        edge = self.edge
        metrics = edge.metrics
        log = edge.log
        if metrics is None and log is None:
            return
        cdef double duration = _monotonic() - x.started
        site = x.route.site.hosts[0] if x.route is not None else "-"
        if type(metrics) is RequestCounts:
            (<RequestCounts>metrics).observe(site, status, duration)
        elif metrics is not None:
            metrics.observe(site, status, duration)
        if log is not None:
            request = x.request
            if type(log) is AccessLog:  # (the compiled log: its line, without a record)
                if (<AccessLog>log)._fd >= 0:
                    (<AccessLog>log)._add(
                        self.client.address,
                        request.method,  # (bytes: written as their latin-1 text)
                        request.target,
                        x.host,
                        status,
                        self._sent - x.sent_before,
                        _upstream_label(x.state),
                        duration,
                        error,
                    )
                return
            log(
                AccessRecord(
                    self.client.address,
                    request.method.decode("latin-1"),
                    request.target.decode("latin-1"),
                    x.host,
                    status,
                    self._sent - x.sent_before,
                    _upstream_label(x.state),
                    duration,
                    error,
                    site if x.route is not None else "",
                )
            )

    # -- the upstream half (upstream_side.py) ------------------------------------------------
    cdef _connect(self, Exchange x):
        route = x.route
        x.move(CONNECT)
        state = (<Balancer?>route.balancer)._pick(self.loop.time(), x.exclude)
        x.state = state
        pool = self.edge.pool
        if type(pool) is UpstreamPool:
            conn = (<UpstreamPool>pool).take(state.upstream)
        else:
            conn = pool.take(state.upstream)
        if conn is not None:
            self._attach(x, conn)
            return
        task = self.loop.create_task(
            pool.connect(state.upstream, self.edge.timeouts.upstream_connect)
        )
        task.add_done_callback(partial(self._connected, x, state))

    def _connected(self, Exchange x, state, task):
        exc = task.exception()
        if x is not self._x:
            if exc is None:
                self.edge.pool.release(task.result())
            return
        if exc is not None:
            _failed(state, self.loop.time())
            x.attempts -= 1
            if x.attempts > 0:
                x.exclude = state
                self._connect(x)
                return
            self._abort(x, 502, f"connect {state.upstream}: {exc or 'timeout'}")
            return
        self._attach(x, task.result())

    cdef _attach(self, Exchange x, UpstreamConnection conn):
        state = x.state
        x.move(ATTACH)
        x.conn = conn
        conn._core = self
        conn._owner = self
        state.active += 1
        conn.parser.expect(x.request.method)
        conn.write(x.head)
        if self._write_paused:
            conn.pause_reading()
        self._pump()

    def upstream_flow(self, UpstreamConnection conn, bint paused):
        if paused:
            self._pause(PAUSE_UPSTREAM)
        else:
            self._resume(PAUSE_UPSTREAM)

    def upstream_events(self, UpstreamConnection conn, list events):
        self._upstream_events(conn, events)

    cdef bint _relays_direct(self, UpstreamConnection conn):
        """Whether ``conn``'s body bytes may go to the client as they are, from the read
        buffer (UpstreamConnection.buffer_updated): OpenSSL on the socket, the exchange
        reading from ``conn``, no chunked re-framing."""
        cdef Exchange x = self._x
        return (
            self._tls is not None and not self.closed
            and x is not None and x.conn is conn and not x.chunked_out
        )

    cdef _relay_direct(self, UpstreamConnection conn, const char *data, Py_ssize_t size,
                       list events):
        """_upstream_events for ``size`` body bytes at ``data`` (counted by the parser, which
        gave ``events``: what follows them), without a bytes object: what is queued goes
        first, then OpenSSL encrypts from ``data`` (copying only what the socket cannot take
        now)."""
        self._flush()
        self._sent += size
        self._tls._send(data, size, None)
        if events:
            self._upstream_events(conn, events)
        else:
            self._upstream_progressed()

    cdef _upstream_events(self, UpstreamConnection conn, list events):
        cdef Exchange x = self._x
        cdef bint request_read
        if x is None or x.conn is not conn:  # pragma: no cover - owners are cleared on exit
            conn.close()
            return
        for event in events:
            kind = type(event)
            if kind is _Dat:
                data = (<_Dat>event).data
                self._write(chunk(data) if x.chunked_out else data)
            elif kind is _Resp:
                if not self._on_response(x, <_Resp>event):
                    return
            elif kind is _EOM:
                if x.status == 0:
                    continue  # the end of an interim (1xx) response: the final one follows
                if x.chunked_out:
                    self._write(last_chunk((<_EOM>event).trailers))
                request_read = x._phase != DUPLEX
                if x.move(RESPONSE_END) == DONE:
                    self._finish(x, request_read)
                    return
            elif kind is _Upg:
                self._start_tunnel(x, conn, (<_Upg>event).leftover)
                return
        self._flush()
        self._upstream_progressed()

    cdef inline _upstream_progressed(self):
        """The upstream sent part of its response: its deadline starts again."""
        if self._deadline.kind == DEADLINE_UPSTREAM:
            self._deadline.set(self.edge.timeouts.upstream_response, DEADLINE_UPSTREAM)

    cdef int _on_response(self, Exchange x, _Resp response) except -1:
        _succeeded(x.state)
        cdef long status = response.status
        if status < 200 and status != 101:
            self._write(serialize_response_head(status, response.reason, response.headers))
            return True
        request = x.request
        if status == 101 and request.upgrade is None:
            self._abort(x, 502, "upstream switched protocols unasked")
            return False
        x.status = status
        site = x.route.site
        edge = self.edge
        hsts = self._route_hsts if x.route is self._route else edge.hsts_for(site)
        head, x.chunked_out, x.close_after = _respond(
            response, request, hsts, site.via, x.close_after or edge.draining
        )
        x.move(SWITCH if status == 101 else RESPONSE_HEAD)
        self._write(head)
        return True

    cdef _start_tunnel(self, Exchange x, UpstreamConnection conn, bytes leftover):
        if leftover:
            self._write(leftover)
        self._flush()
        x.move(UPGRADED)
        self._x = None
        self.busy = False
        self._deadline.clear()
        self._detach(x)
        self._log(x, 101)
        conn._core = None
        conn._owner = None
        self.tunnel = conn
        conn.tunnel = self.transport
        if x.tunnel_leftover:
            conn.write(x.tunnel_leftover)
        self._resume(PAUSE_TUNNEL | PAUSE_QUEUE | PAUSE_UPSTREAM)

    def upstream_failed(self, UpstreamConnection conn, error):
        self._upstream_failed(conn, error)

    cdef _upstream_failed(self, UpstreamConnection conn, error):
        cdef Exchange x = self._x
        if x is not None and x.conn is conn:
            self._abort(x, 502, f"bad upstream response: {error}")
        else:  # pragma: no cover - owners are cleared on exit
            conn.close()

    def upstream_closed(self, UpstreamConnection conn):
        self._upstream_closed(conn)

    cdef _upstream_closed(self, UpstreamConnection conn):
        cdef Exchange x = self._x
        if x is None or x.conn is not conn:  # pragma: no cover - owners are cleared on exit
            return
        self._detach(x)
        cdef int phase = x._phase
        if (
            (phase == SENDING_BODY or phase == AWAITING_RESPONSE)
            and conn.reused
            and x.request.body is _NO_BODY
        ):
            x.attempts -= 1
            if x.attempts > 0 and x.retry_ok:
                x.exclude = None
                self._connect(x)
                return
            self._abort(x, 502, "upstream closed the connection")
            return
        _failed(x.state, self.loop.time())
        self._abort(x, 502, "upstream closed early")

    cdef UpstreamConnection _detach(self, Exchange x):
        cdef UpstreamConnection conn = x.conn
        if conn is not None:
            x.conn = None
            if x.state is not None:
                x.state.active -= 1
        return conn

    cdef _finish(self, Exchange x, bint request_read):
        cdef UpstreamConnection conn = self._detach(x)
        if self._tls is not None:
            # Closing now leaves nothing of the client's unread (no body on its way, nothing
            # pipelined): the socket path may close without lingering, as nginx does then.
            self._tls._input_done = (
                request_read and not self._queue and not self.parser.head_in_progress
            )
        if not request_read:
            x.close_after = True
            conn.close()
        elif self.edge.draining:
            conn.close()
        else:
            pool = self.edge.pool
            if type(pool) is UpstreamPool:
                (<UpstreamPool>pool).release(conn)
            else:
                pool.release(conn)
        self._end(x, x.status, not x.close_after)


cdef str _upstream_label(object state):
    """str(state.upstream), made once per upstream state ("" when no upstream was picked)."""
    if state is None:
        return ""
    if type(state) is UpstreamState:
        return (<UpstreamState>state).label()
    return str(state.upstream)


class ClientProtocol(_ClientCore, asyncio.BufferedProtocol):
    """protocol.py's ClientProtocol, compiled: a ``BufferedProtocol`` (uvloop asks
    ``isinstance``) whose every method is :class:`_ClientCore`'s."""

    __slots__ = ()
