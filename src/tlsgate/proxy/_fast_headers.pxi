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


cdef set _connection_tokens(list headers):
    """The names a Connection header lists (None when there is none: the common case)."""
    cdef set tokens = None
    for name, value in headers:
        if name == b"connection":
            if tokens is None:
                tokens = set()
            tokens.update([t.strip().lower() for t in value.split(b",") if t.strip()])
    return tokens


cdef inline bint _dropped(object name, set tokens):
    return name in _HOP_BY_HOP or (tokens is not None and name in tokens)


cdef bytes _forwarded_for(str address):
    # RFC 7239 6: IPv6 addresses are bracketed and the value quoted.
    return f'"[{address}]"'.encode() if ":" in address else address.encode()


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
    return _forwarded(headers, client, host, trusted, upgrade, via, client_cert)


cdef list _forwarded(
    list headers,
    object client,
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
    cdef str address = client.address
    cdef bytes proto = client.proto
    cdef bytes encoded = address.encode()
    cdef bytes element
    for header in headers:
        name, value = header
        if _dropped(name, tokens) or name == _XFCC:
            continue
        if name in _FORWARDING:
            if trusted:
                if name == b"x-forwarded-for":
                    if prior_for is None:
                        prior_for = []
                    prior_for.append(value)
                elif name == b"forwarded":
                    if prior_forwarded is None:
                        prior_forwarded = []
                    prior_forwarded.append(value)
                else:
                    if kept is None:
                        kept = {}
                    kept.setdefault(name, value)
            continue
        out.append((name, value))
    if upgrade is not None:
        out.append((b"connection", b"upgrade"))
        out.append((b"upgrade", upgrade))
    if prior_for is None:
        out.append((b"x-forwarded-for", encoded))
    else:
        prior_for.append(encoded)
        out.append((b"x-forwarded-for", b", ".join(prior_for)))
    if kept is None:
        out.append((b"x-forwarded-proto", proto))
        out.append((b"x-forwarded-host", host))
        out.append((b"x-forwarded-port", str(client.port).encode()))
    else:
        out.append((b"x-forwarded-proto", kept.get(b"x-forwarded-proto", proto)))
        out.append((b"x-forwarded-host", kept.get(b"x-forwarded-host", host)))
        port = kept.get(b"x-forwarded-port")
        out.append((b"x-forwarded-port", str(client.port).encode() if port is None else port))
    element = b"for=" + _forwarded_for(address) + b";proto=" + proto
    if host:
        element += b';host="' + host.replace(b'"', b"") + b'"'
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
    cdef list headers = _forwarded(
        request.headers, client, host, trusted, request.upgrade, via, client_cert
    )
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    return _request_head(request.method, request.target, headers)


def response_headers(list headers, *, object hsts, bint via=False, object upgrade=None):
    """As ``headers.response_headers``."""
    return _response_headers(headers, hsts, via, upgrade)


cdef list _response_headers(list headers, object hsts, bint via, object upgrade):
    cdef set tokens = _connection_tokens(headers)
    cdef list out = []
    cdef bint has_hsts = False
    for header in headers:
        name, value = header
        if not _dropped(name, tokens):
            out.append((name, value))
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
    return _respond(response, request, hsts, via, close)


cdef tuple _respond(object response, object request, object hsts, bint via, bint close):
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
