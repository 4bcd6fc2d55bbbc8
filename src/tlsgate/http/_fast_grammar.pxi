# What llhttp's grammar allows, as tables and small C helpers (included by _fast.pyx): the
# character classes, the methods, the parser's states and the header facts read from bytes.

# -- character classes (llhttp's, as httptools builds it) ----------------------------------------
cdef unsigned char TOKEN[256]  # header names, chunk extension names and values
cdef unsigned char HCHAR[256]  # header values: HTAB, SP, VCHAR, obs-text
cdef unsigned char UCHAR[256]  # request target after its first byte: VCHAR
cdef unsigned char SERVER[256]  # authority of an absolute-form target (userinfo chars, [ ])
cdef unsigned char QDTEXT[256]  # chunk extension quoted string
cdef unsigned char QPAIR[256]  # after a backslash in it
cdef unsigned char MCHAR[256]  # characters of a method name
cdef signed char HEX[256]


cdef void _tables():
    cdef int c
    for c in range(256):
        alnum = (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122)
        TOKEN[c] = alnum or (c in b"!#$%&'*+-.^_`|~")
        HCHAR[c] = c == 9 or (32 <= c <= 255 and c != 127)
        UCHAR[c] = 33 <= c <= 126
        SERVER[c] = alnum or (c in b"-_.!~*'()%;:&=+$,[]")
        QDTEXT[c] = c == 9 or c == 32 or c == 33 or (35 <= c <= 91) or (93 <= c <= 126) or c >= 128
        QPAIR[c] = c == 9 or (32 <= c <= 126) or c >= 128
        MCHAR[c] = (65 <= c <= 90) or c == 45 or c == 95
        HEX[c] = (c - 48 if 48 <= c <= 57 else c - 87 if 97 <= c <= 102
                  else c - 55 if 65 <= c <= 70 else -1)


_tables()

# llhttp's methods; for each, whether it may go with HTTP/, RTSP/ and ICE/.
cdef tuple _METHODS = (
    b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
    b"COPY", b"LOCK", b"MKCOL", b"MOVE", b"PROPFIND", b"PROPPATCH", b"SEARCH", b"UNLOCK",
    b"BIND", b"REBIND", b"UNBIND", b"ACL", b"REPORT", b"MKACTIVITY", b"CHECKOUT", b"MERGE",
    b"M-SEARCH", b"NOTIFY", b"SUBSCRIBE", b"UNSUBSCRIBE", b"PURGE", b"MKCALENDAR", b"LINK",
    b"UNLINK", b"SOURCE", b"PRI", b"QUERY",
    # RTSP only
    b"DESCRIBE", b"ANNOUNCE", b"SETUP", b"PLAY", b"PAUSE", b"TEARDOWN", b"GET_PARAMETER",
    b"SET_PARAMETER", b"REDIRECT", b"RECORD", b"FLUSH",
)
cdef int _N_HTTP = 36  # the first 36 go with HTTP/
cdef frozenset _RTSP = frozenset(
    {b"OPTIONS", b"DESCRIBE", b"ANNOUNCE", b"SETUP", b"PLAY", b"PAUSE", b"TEARDOWN",
     b"GET_PARAMETER", b"SET_PARAMETER", b"REDIRECT", b"RECORD", b"FLUSH", b"GET", b"POST"}
)
cdef int M_GET = 0
cdef int M_CONNECT = 7
cdef int M_SOURCE = 33
cdef int M_PRI = 34

# -- states ------------------------------------------------------------------------------------
cdef enum:  # the parser's (framer.py's numbers)
    HEAD = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3
    IDLE = 4
    CLOSED = 5
    UPGRADED = 6
    EOF = 7

cdef enum:  # inside a head or trailer section
    R_METHOD, R_SP_URL, R_URL_START, R_SCHEMA, R_DELIM1, R_DELIM2, R_SERVER, R_SERVER_AT,
    R_PATH, R_URL_CR, R_SP_PROTO, R_PROTO, R_SLASH, R_MAJOR, R_DOT, R_MINOR, R_LINE_CR,
    R_LINE_LF, R_PRI,
    S_PROTO, S_SLASH, S_MAJOR, S_DOT, S_MINOR, S_SP, S_CODE, S_CODE_AFTER, S_REASON, S_LINE_LF,
    H_START, H_FIELD_START, H_FIELD, H_VALUE_WS, H_EMPTY_LF, H_EMPTY_PEEK, H_VALUE, H_VALUE_LF,
    H_VALUE_PEEK, H_END_LF

cdef enum:  # inside a chunked body
    C_SIZE_START, C_SIZE, C_EXT_START, C_EXT_NAME, C_EXT_VALUE, C_EXT_Q, C_EXT_QPAIR,
    C_EXT_QDONE, C_SIZE_LF, C_DATA, C_DATA_CR, C_DATA_LF, C_TRAILERS

cdef enum:  # what llhttp records about the message (its F_* flags)
    F_CL = 1
    F_TE = 2
    F_CHUNKED = 4
    F_UPGRADE = 8
    F_CLOSE = 16
    F_KEEP_ALIVE = 32
    F_CONN_UPGRADE = 64

cdef enum:  # header names looked at
    K_OTHER, K_HOST, K_CL, K_TE, K_CONNECTION, K_PROXY_CONNECTION, K_UPGRADE, K_EXPECT

cdef enum:  # protocol names on a start line
    P_HTTP = 1
    P_RTSP = 2
    P_ICE = 3

cdef bytes _B_HTTP = b"HTTP"
cdef bytes _B_RTSP = b"RTSP"
cdef bytes _B_ICE = b"ICE"
cdef bytes _PREFACE = b"\r\n\r\n"
cdef bytes _V10 = b"1.0"
cdef bytes _V11 = b"1.1"
cdef tuple _NAMES = (
    b"", b"host", b"content-length", b"transfer-encoding", b"connection", b"proxy-connection",
    b"upgrade", b"expect",
)
cdef unsigned long long _U64_MAX = 0xFFFFFFFFFFFFFFFF


cdef inline bint _ieq(const unsigned char* b, Py_ssize_t n, bytes lower):
    """``b[:n]`` equals the lower-case ASCII ``lower``, ignoring case."""
    cdef const unsigned char* w = <const unsigned char*>PyBytes_AS_STRING(lower)
    cdef Py_ssize_t k
    if n != PyBytes_GET_SIZE(lower):
        return False
    for k in range(n):  # k < n == len(lower); the caller guarantees n bytes at b
        if (b[k] | 0x20 if 65 <= b[k] <= 90 else b[k]) != w[k]:
            return False
    return True


cdef inline int _kind(const unsigned char* b, Py_ssize_t n):
    if n == 4:
        return K_HOST if _ieq(b, n, b"host") else K_OTHER
    if n == 14:
        return K_CL if _ieq(b, n, b"content-length") else K_OTHER
    if n == 17:
        return K_TE if _ieq(b, n, b"transfer-encoding") else K_OTHER
    if n == 10:
        return K_CONNECTION if _ieq(b, n, b"connection") else K_OTHER
    if n == 16:
        return K_PROXY_CONNECTION if _ieq(b, n, b"proxy-connection") else K_OTHER
    if n == 7:
        return K_UPGRADE if _ieq(b, n, b"upgrade") else K_OTHER
    if n == 6:
        return K_EXPECT if _ieq(b, n, b"expect") else K_OTHER
    return K_OTHER


cdef bytes _lower(const unsigned char* b, Py_ssize_t n):
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n)
    cdef unsigned char* o = <unsigned char*>PyBytes_AS_STRING(out)
    cdef Py_ssize_t k
    for k in range(n):  # out has n bytes, b has n bytes (caller)
        o[k] = b[k] | 0x20 if 65 <= b[k] <= 90 else b[k]
    return out


cdef int _method_index(const unsigned char* b, Py_ssize_t n):
    """Index of ``b[:n]`` in _METHODS, or -1."""
    cdef Py_ssize_t k
    cdef bytes m
    for k in range(len(_METHODS)):
        m = <bytes>_METHODS[k]
        if PyBytes_GET_SIZE(m) == n and memcmp(PyBytes_AS_STRING(m), b, n) == 0:
            return <int>k
    return -1


cdef bint _method_prefix(const unsigned char* b, Py_ssize_t n):
    """``b[:n]`` begins some method (llhttp refuses a method at its first impossible byte)."""
    cdef bytes m
    for m in _METHODS:
        if PyBytes_GET_SIZE(m) >= n and memcmp(PyBytes_AS_STRING(m), b, n) == 0:
            return True
    return False


cdef unsigned int _connection_flags(const unsigned char* b, Py_ssize_t start, Py_ssize_t stop):
    """The tokens of a Connection value that matter (close, keep-alive, upgrade) as flags:
    comma-separated, trimmed of spaces and tabs, any case."""
    cdef unsigned int flags = 0
    cdef Py_ssize_t end, a, z
    while start <= stop:
        end = start
        while end < stop and b[end] != 44:
            end += 1
        a, z = start, end
        while a < z and (b[a] == 32 or b[a] == 9):
            a += 1
        while z > a and (b[z - 1] == 32 or b[z - 1] == 9):
            z -= 1
        if _ieq(b + a, z - a, b"close"):
            flags |= F_CLOSE
        elif _ieq(b + a, z - a, b"keep-alive"):
            flags |= F_KEEP_ALIVE
        elif _ieq(b + a, z - a, b"upgrade"):
            flags |= F_CONN_UPGRADE
        start = end + 1
    return flags


cdef inline bint _keeps(bytes version, bint has_connection, unsigned int flags):
    """RFC 9112 9.3 (fields.py's keep_alive): HTTP/1.1 persists unless ``close``; HTTP/1.0 only
    with ``keep-alive``."""
    if not has_connection:
        return version == _V11
    if flags & F_CLOSE:
        return False
    return version == _V11 or flags & F_KEEP_ALIVE


cdef bint _element_is_chunked(const unsigned char* b, Py_ssize_t start, Py_ssize_t stop):
    """One Transfer-Encoding list element, as llhttp reads it: OWS, ``chunked``, spaces."""
    while start < stop and (b[start] == 32 or b[start] == 9):
        start += 1
    if stop - start < 7 or not _ieq(b + start, 7, b"chunked"):
        return False
    start += 7
    while start < stop and b[start] == 32:
        start += 1
    return start == stop
