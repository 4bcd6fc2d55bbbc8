# What the compiled connections of one edge remember between connections (included by
# _fast.pyx after _fast_headers.pxi, before _fast_conn.pxi).

# A connection used to decide, when it began, what depends only on its peer's address, its
# server name or its Host: who the client is (ClientInfo, trusted or not, the forwarding
# headers' share), the route the SNI names, the route and HSTS value of a Host. Each is the
# same for the next connection from that address or with that name, and a client making one
# request per connection (a handshake per request) paid those Python calls every time. They
# are kept here, per edge, in tables that forget everything when full (the keys are what
# clients send: a client varying them gets the same answers, computed again, and bounded
# memory).

#: Entries per table before it is emptied.
cdef Py_ssize_t _MEMO_MAX = 1024
MEMO_MAX = _MEMO_MAX


cdef class _Client:
    """A peer address's answers: its ClientInfo, whether it is a trusted proxy, and its share
    of the forwarding headers."""

    cdef object info
    cdef bint trusted
    cdef _Peer peer


cdef class _EdgeMemo:
    """One edge's remembered answers (``edge.fast_memo``). The router and the trusted proxies
    are fixed for an edge's life; the router is checked anyway, the tables emptied if it
    changed."""

    cdef object router
    cdef dict clients  # address -> _Client
    cdef dict sni_routes  # server name -> its route (None: no site has it)
    cdef dict host_routes  # (Host bytes, id(sni route)) -> (host, route, status, hsts)

    def __cinit__(self, router):
        self.router = router
        self.clients = {}
        self.sni_routes = {}
        self.host_routes = {}

    cdef _Client client(self, object edge, str address):
        cdef _Client c = self.clients.get(address)
        if c is not None:
            return c
        c = _Client.__new__(_Client)
        c.info = ClientInfo(address, edge.port)
        c.trusted = is_trusted(address, edge.trusted_proxies)
        c.peer = _peer(c.info)
        if len(self.clients) >= _MEMO_MAX:
            self.clients.clear()
        self.clients[address] = c
        return c

    cdef object sni_route(self, object router, str name):
        if router is not self.router:
            self._reset(router)
        try:
            return self.sni_routes[name]
        except KeyError:
            pass
        route = router.match(normalize_host(name))
        if len(self.sni_routes) >= _MEMO_MAX:
            self.sni_routes.clear()
        self.sni_routes[name] = route
        return route

    cdef tuple host_route(self, object edge, object router, bytes host_value, object sni_route):
        """(host, route, status, hsts) for a Host on a connection whose SNI chose
        ``sni_route``: the router's answer (routing.Router.route_for) and the route's HSTS."""
        if router is not self.router:
            self._reset(router)
        key = (host_value, id(sni_route))  # the router's routes live as long as these tables
        cdef tuple answer = self.host_routes.get(key)
        if answer is not None:
            return answer
        host = normalize_host(host_value) if host_value else ""
        route, status = router.route_for(host, sni_route)
        answer = (host, route, status, edge.hsts_for(route.site) if route is not None else None)
        if len(self.host_routes) >= _MEMO_MAX:
            self.host_routes.clear()
        self.host_routes[key] = answer
        return answer

    def sizes(self):
        """How many entries each table holds (for tests and debugging)."""
        return {"clients": len(self.clients), "sni_routes": len(self.sni_routes),
                "host_routes": len(self.host_routes)}

    cdef _reset(self, router):
        self.router = router
        self.sni_routes = {}
        self.host_routes = {}


cdef _EdgeMemo _memo(object edge):
    cdef object memo = edge.fast_memo
    if memo is None:
        memo = _EdgeMemo(edge.router)
        edge.fast_memo = memo
    return <_EdgeMemo>memo
