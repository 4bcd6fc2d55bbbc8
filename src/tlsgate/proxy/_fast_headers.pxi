# Header rewriting and head serialization, compiled (included by _fast.pyx): headers.py's
# functions and serialize.py's refusals.

# -- header rewriting ----------------------------------------------------------------------------

cdef object _CHUNKED_KIND = BodyKind.CHUNKED
cdef object _UNTIL_CLOSE_KIND = BodyKind.UNTIL_CLOSE
cdef frozenset _HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade",
    b"proxy-authenticate", b"proxy-authorization", b"trailer",
})
cdef bytes _XFCC = b"x-forwarded-client-cert"
cdef frozenset _FORWARDING = frozenset({
    b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
    b"forwarded",
})
cdef dict _PHRASE = REASON_PHRASES
# serialize.py's _TCHARS, as a table: 1 for a byte a header name or a method may hold.
cdef unsigned char _TCHAR[256]
for _c in bytearray(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
):
    _TCHAR[_c] = 1


# What a header name is to the rewriting, decided from its length and bytes in C instead of a
# frozenset lookup (which hashes every fresh name object the parser made). Exact bytes, as the
# sets compare: the parser's names are lowercase, and a name that is not is nothing here.
cdef enum:
    _H_OTHER = 0
    _H_HOP = 1  # hop-by-hop (RFC 9110 7.6.1): never crosses the edge
    _H_CONNECTION = 2  # hop-by-hop, and lists more names to drop
    _H_FORWARD_FOR = 3
    _H_FORWARDED = 4
    _H_FORWARD_OTHER = 5  # x-forwarded-proto, -host, -port
    _H_XFCC = 6


cdef int _classify(const char *p, Py_ssize_t n) noexcept nogil:
    if n == 2:
        return _H_HOP if memcmp(p, b"te", 2) == 0 else _H_OTHER
    if n == 7:
        if memcmp(p, b"upgrade", 7) == 0 or memcmp(p, b"trailer", 7) == 0:
            return _H_HOP
    elif n == 9:
        if memcmp(p, b"forwarded", 9) == 0:
            return _H_FORWARDED
    elif n == 10:
        if memcmp(p, b"connection", 10) == 0:
            return _H_CONNECTION
        if memcmp(p, b"keep-alive", 10) == 0:
            return _H_HOP
    elif n == 15:
        if memcmp(p, b"x-forwarded-for", 15) == 0:
            return _H_FORWARD_FOR
    elif n == 16:
        if memcmp(p, b"proxy-connection", 16) == 0:
            return _H_HOP
        if memcmp(p, b"x-forwarded-host", 16) == 0 or memcmp(p, b"x-forwarded-port", 16) == 0:
            return _H_FORWARD_OTHER
    elif n == 17:
        if memcmp(p, b"transfer-encoding", 17) == 0:
            return _H_HOP
        if memcmp(p, b"x-forwarded-proto", 17) == 0:
            return _H_FORWARD_OTHER
    elif n == 18:
        if memcmp(p, b"proxy-authenticate", 18) == 0:
            return _H_HOP
    elif n == 19:
        if memcmp(p, b"proxy-authorization", 19) == 0:
            return _H_HOP
    elif n == 23:
        if memcmp(p, b"x-forwarded-client-cert", 23) == 0:
            return _H_XFCC
    return _H_OTHER


cdef inline int _name_class(object name) noexcept:
    if type(name) is not bytes:
        return _H_OTHER  # (equal to none of the names; the serializer refuses it)
    return _classify(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))


cdef inline bint _is_space(unsigned char c) noexcept nogil:
    # bytes.strip()'s whitespace
    return c == 32 or c == 9 or c == 10 or c == 13 or c == 11 or c == 12


cdef int _add_tokens(set tokens, bytes value) except -1:
    """The names ``value`` lists, lowercased and stripped, as ``_connection_tokens`` in
    headers.py adds them; names that are hop-by-hop anyway are left out (dropping them is
    already decided), so ``Connection: keep-alive`` allocates nothing."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i = 0, start, end, k
    cdef char low[20]
    cdef bytes token
    cdef char *q
    while i <= n:
        start = i
        while i < n and p[i] != b',':
            i += 1
        end = i
        i += 1
        while start < end and _is_space(p[start]):
            start += 1
        while end > start and _is_space(p[end - 1]):
            end -= 1
        if start == end:
            continue
        if end - start <= 19:
            for k in range(end - start):
                low[k] = p[start + k] + 32 if 65 <= p[start + k] <= 90 else p[start + k]
            k = _classify(low, end - start)
            if k == _H_HOP or k == _H_CONNECTION:
                continue
        token = PyBytes_FromStringAndSize(NULL, end - start)
        q = PyBytes_AS_STRING(token)
        for k in range(end - start):
            q[k] = p[start + k] + 32 if 65 <= p[start + k] <= 90 else p[start + k]
        tokens.add(token)
    return 0


cdef set _connection_tokens(list headers):
    """The names Connection headers list that are not hop-by-hop already (None when there are
    none: the common case)."""
    cdef set tokens = None
    for header in headers:
        name, value = header
        if _name_class(name) == _H_CONNECTION:
            if tokens is None:
                tokens = set()
            if type(value) is bytes:
                _add_tokens(tokens, value)
            else:
                tokens.update([t.strip().lower() for t in value.split(b",") if t.strip()])
    return tokens if tokens else None


cdef inline bint _dropped(object name, int kind, set tokens):
    return kind == _H_HOP or kind == _H_CONNECTION or (tokens is not None and name in tokens)


cdef bytes _forwarded_for(str address):
    # RFC 7239 6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{address}]"'.encode() if ":" in address else address.encode()


cdef class _Peer:
    """A client connection's share of the forwarding headers, encoded once per connection (the
    peer, our port and scheme do not change between its requests), and the last Forwarded
    element with the Host it was made for (a keep-alive client repeats its Host)."""

    cdef bytes address
    cdef bytes proto
    cdef bytes port
    cdef bytes element_start
    cdef bytes last_host
    cdef bytes last_element


cdef _Peer _peer(object client):
    cdef _Peer peer = _Peer.__new__(_Peer)
    cdef str address = client.address
    peer.address = address.encode()
    peer.proto = client.proto
    peer.port = str(client.port).encode()
    peer.element_start = b"for=" + _forwarded_for(address) + b";proto=" + peer.proto
    peer.last_host = None
    peer.last_element = None
    return peer


cdef bytes _element(_Peer peer, bytes host):
    cdef bytes element
    if peer.last_host is not None and host == peer.last_host:
        return peer.last_element
    element = peer.element_start
    if host:
        element += b';host="' + host.replace(b'"', b"") + b'"'
    peer.last_host = host
    peer.last_element = element
    return element


def forwarded_request_headers(
    list headers,
    object client,
    *,
    bytes host,
    bint trusted,
    object upgrade=None,
    bint via=False,
    object client_cert=None,
):
    """As ``headers.forwarded_request_headers`` (whose docstring says why)."""
    return _forwarded(headers, _peer(client), host, trusted, upgrade, via, client_cert)


cdef list _forwarded(
    list headers,
    _Peer peer,
    bytes host,
    bint trusted,
    object upgrade,
    bint via,
    object client_cert,
):
    cdef set tokens = _connection_tokens(headers)
    cdef list out = []
    cdef list prior_for = None
    cdef list prior_forwarded = None
    cdef dict kept = None
    cdef bytes element
    cdef int kind
    for header in headers:
        name, value = header
        kind = _name_class(name)
        if _dropped(name, kind, tokens) or kind == _H_XFCC:
            continue
        if kind == _H_FORWARD_FOR or kind == _H_FORWARDED or kind == _H_FORWARD_OTHER:
            if trusted:
                if kind == _H_FORWARD_FOR:
                    if prior_for is None:
                        prior_for = []
                    prior_for.append(value)
                elif kind == _H_FORWARDED:
                    if prior_forwarded is None:
                        prior_forwarded = []
                    prior_forwarded.append(value)
                else:
                    if kept is None:
                        kept = {}
                    kept.setdefault(name, value)
            continue
        out.append(header if type(header) is tuple else (name, value))
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if prior_for is None:
        out.append((b"x-forwarded-for", peer.address))
    else:
        prior_for.append(peer.address)
        out.append((b"x-forwarded-for", b", ".join(prior_for)))
    if kept is None:
        out.append((b"x-forwarded-proto", peer.proto))
        out.append((b"x-forwarded-host", host))
        out.append((b"x-forwarded-port", peer.port))
    else:
        out.append((b"x-forwarded-proto", kept.get(b"x-forwarded-proto", peer.proto)))
        out.append((b"x-forwarded-host", kept.get(b"x-forwarded-host", host)))
        out.append((b"x-forwarded-port", kept.get(b"x-forwarded-port", peer.port)))
    element = _element(peer, host)
    if prior_forwarded is None:
        out.append((b"forwarded", element))
    else:
        prior_forwarded.append(element)
        out.append((b"forwarded", b", ".join(prior_forwarded)))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    if client_cert is not None:
        out.append((_XFCC, client_cert))
    return out


def request_head(
    object request,
    object client,
    *,
    bytes host,
    bint trusted,
    bint via=False,
    object client_cert=None,
    bint chunked=False,
):
    """As ``headers.request_head``: the head sent upstream for a client request."""
    cdef _Req r = _as_request(request)
    cdef list headers = _forwarded(
        r.headers, _peer(client), host, trusted, r.upgrade, via, client_cert
    )
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    return _request_head(r.method, r.target, headers)


def response_headers(list headers, *, object hsts, bint via=False, object upgrade=None):
    """As ``headers.response_headers``."""
    return _response_headers(headers, hsts, via, upgrade)


cdef list _response_headers(list headers, object hsts, bint via, object upgrade):
    cdef set tokens = _connection_tokens(headers)
    cdef list out = []
    cdef bint has_hsts = False
    for header in headers:
        name, value = header
        if not _dropped(name, _name_class(name), tokens):
            out.append(header if type(header) is tuple else (name, value))
            if name == b"strict-transport-security":
                has_hsts = True
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if hsts is not None and not has_hsts:
        out.append((b"strict-transport-security", hsts))
    if via:
        out.append((b"via", b"1.1 tlsgate"))
    return out


def response_head(
    object response,
    object request,
    *,
    object hsts,
    bint via=False,
    bint close=False,
):
    """As ``headers.response_head``: ``(head, rechunk, close)``."""
    return _respond(_as_response(response), _as_request(request), hsts, via, close)


cdef tuple _respond(_Resp response, _Req request, object hsts, bint via, bint close):
    cdef long status = response.status
    cdef object upgrade = None
    cdef list headers
    cdef object body = response.body
    cdef bint until_close, rechunk
    cdef bytes version = request.version
    if status == 101:
        for name, value in response.headers:
            if name == b"upgrade":
                upgrade = value
    headers = _response_headers(response.headers, hsts, via, upgrade)
    until_close = body is _UNTIL_CLOSE_KIND
    rechunk = body is _CHUNKED_KIND or (until_close and version == b"1.1")
    if rechunk:
        headers.append((b"transfer-encoding", b"chunked"))
    if (
        close
        or not request.keep_alive
        or (request.upgrade is not None and status != 101)
        or (until_close and version != b"1.1")
    ):
        close = True
        if status != 101:
            headers.append((b"connection", b"close"))
    return _response_head(status, response.reason, headers), rechunk, close


cdef _Req _as_request(object request):
    """The compiled event, or a copy of the dataclass twin's fields in one (TLSGATE_PURE=1 makes
    the dataclasses, and the differential tests hand them to these functions too)."""
    if type(request) is _Req:
        return <_Req>request
    return _Req(*[getattr(request, name) for name in _Req.__match_args__])


cdef _Resp _as_response(object response):
    if type(response) is _Resp:
        return <_Resp>response
    return _Resp(*[getattr(response, name) for name in _Resp.__match_args__])


# -- serializing a head, with serialize.py's refusals ---------------------------------------------

cdef bint _tokens(bytes text):
    """Non-empty, and only tchars (a method)."""
    cdef const unsigned char *p = <const unsigned char *>PyBytes_AS_STRING(text)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(text)
    if n == 0:
        return False
    for i in range(n):
        if not _TCHAR[p[i]]:
            return False
    return True


cdef Py_ssize_t _block_size(list headers) except -1:
    """The size of the header lines, or a LocalProtocolError as serialize.py's _header_block
    raises it (the same checks, in the same order of precedence)."""
    cdef Py_ssize_t size = 0, i, n, m
    cdef const unsigned char *p
    cdef bint injection = False, empty = False, invalid = False
    cdef unsigned char c
    for header in headers:
        if type(header) is not tuple or len(<tuple>header) != 2:
            raise TypeError("a header is a (name, value) tuple of bytes")
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        if type(name) is not bytes or type(value) is not bytes:
            raise TypeError("a header is a (name, value) tuple of bytes")
        n = PyBytes_GET_SIZE(name)
        m = PyBytes_GET_SIZE(value)
        p = <const unsigned char *>PyBytes_AS_STRING(name)
        if n == 0 or p[0] == b':':
            empty = True
        for i in range(n):
            c = p[i]
            if not _TCHAR[c]:
                invalid = True
                if c == 10 or c == 13 or c == 0:
                    injection = True
        p = <const unsigned char *>PyBytes_AS_STRING(value)
        for i in range(m):
            c = p[i]
            if c == 10 or c == 13 or c == 0:
                injection = True
        size += n + m + 4
    if injection:
        raise LocalProtocolError("cr, lf or nul in a header (header injection)")
    if empty:
        raise LocalProtocolError("empty header name")
    if invalid:
        raise LocalProtocolError("invalid header name")
    return size


cdef char *_put_block(char *out, list headers) noexcept:
    """The header lines (``_block_size`` checked them and counted their bytes)."""
    cdef Py_ssize_t n
    for header in headers:
        name = (<tuple>header)[0]
        value = (<tuple>header)[1]
        n = PyBytes_GET_SIZE(name)
        memcpy(out, PyBytes_AS_STRING(name), n)
        out += n
        out[0] = b':'
        out[1] = b' '
        out += 2
        n = PyBytes_GET_SIZE(value)
        memcpy(out, PyBytes_AS_STRING(value), n)
        out += n
        out[0] = b'\r'
        out[1] = b'\n'
        out += 2
    return out


cdef bytes _request_head(bytes method, bytes target, list headers):
    # serialize_request_head
    cdef const unsigned char *p
    cdef Py_ssize_t i, n, size
    cdef bytes head
    cdef char *out
    if method is None or not _tokens(method):
        raise LocalProtocolError("invalid method")
    n = 0 if target is None else PyBytes_GET_SIZE(target)
    if n == 0:
        raise LocalProtocolError("invalid request target")
    p = <const unsigned char *>PyBytes_AS_STRING(target)
    for i in range(n):
        if not 0x21 <= p[i] <= 0x7E:
            raise LocalProtocolError("invalid request target")
    size = _block_size(headers)
    size += PyBytes_GET_SIZE(method) + 1 + n + 11 + 2
    head = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(head)
    memcpy(out, PyBytes_AS_STRING(method), PyBytes_GET_SIZE(method))
    out += PyBytes_GET_SIZE(method)
    out[0] = b' '
    out += 1
    memcpy(out, p, n)
    out += n
    memcpy(out, b" HTTP/1.1\r\n", 11)
    out = _put_block(out + 11, headers)
    out[0] = b'\r'
    out[1] = b'\n'
    return head


cdef bytes _response_head(long status, bytes reason, list headers):
    # serialize_response_head, version 1.1
    cdef Py_ssize_t size, n
    cdef bytes head
    cdef char *out
    cdef char line[24]
    cdef int start
    if not 100 <= status <= 999:
        raise LocalProtocolError("invalid status code")
    if not reason:
        reason = _PHRASE.get(status, b"")
    elif (
        memchr(PyBytes_AS_STRING(reason), b'\r', PyBytes_GET_SIZE(reason)) != NULL
        or memchr(PyBytes_AS_STRING(reason), b'\n', PyBytes_GET_SIZE(reason)) != NULL
        or memchr(PyBytes_AS_STRING(reason), 0, PyBytes_GET_SIZE(reason)) != NULL
    ):
        raise LocalProtocolError("cr, lf or nul in the reason phrase (header injection)")
    size = _block_size(headers)
    start = snprintf(line, sizeof(line), "HTTP/1.1 %ld ", status)
    n = PyBytes_GET_SIZE(reason)
    size += start + n + 2 + 2
    head = PyBytes_FromStringAndSize(NULL, size)
    out = PyBytes_AS_STRING(head)
    memcpy(out, line, start)
    out += start
    memcpy(out, PyBytes_AS_STRING(reason), n)
    out += n
    out[0] = b'\r'
    out[1] = b'\n'
    out = _put_block(out + 2, headers)
    out[0] = b'\r'
    out[1] = b'\n'
    return head
