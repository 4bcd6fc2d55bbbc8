# The shared TLS 1.2 session cache's callbacks filtered in C (included by _fast.pyx after
# _fast_openssl.pxi): what socket_tls.filter_session_callbacks installs.

# tls/sessions.py's callbacks are Python (ctypes thunks). OpenSSL calls the info callback on
# every state change, about 18 times per handshake, and the new-session callback for TLS 1.3
# too; both only act on what is rare (a fatal alert; a TLS 1.2 session). These C callbacks make
# those decisions and call the thunks, kept in the context's ex_data, only then (a thunk takes
# the GIL itself, so this works on the event loop's TLS as well).

ctypedef int (*_new_session_fp)(SSL *, SSL_SESSION *) noexcept nogil
ctypedef void (*_info_fp)(const SSL *, int, int) noexcept nogil

cdef int _CTX_NEW_SESSION = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)
cdef int _CTX_INFO = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)
if _CTX_NEW_SESSION < 0 or _CTX_INFO < 0:  # pragma: no cover - OpenSSL out of memory
    raise ImportError("proxy/_fast: SSL_CTX_get_ex_new_index failed")


cdef int _filtered_new_session(SSL *s, SSL_SESSION *session) noexcept nogil:
    cdef _new_session_fp forward
    if SSL_version(s) == TLS1_3_VERSION:
        return 0  # TLS 1.3 resumes with tickets only (as sessions.py's callback decides)
    forward = <_new_session_fp>SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), _CTX_NEW_SESSION)
    if forward == NULL:
        return 0
    return forward(s, session)


cdef void _filtered_info(const SSL *s, int where, int ret) noexcept nogil:
    cdef _info_fp forward
    if not (where & SSL_CB_ALERT) or (ret >> 8) != SSL3_AL_FATAL:
        return  # handshake progress or a warning: nothing for the cache
    forward = <_info_fp>SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), _CTX_INFO)
    if forward != NULL:
        forward(s, where, ret)


def filter_session_callbacks(object ctx, size_t checked_pointer, size_t new_session,
                             size_t info):
    """Put the C filters in front of ``ctx``'s session callbacks: ``new_session`` and
    ``info`` are the addresses of the ctypes thunks sessions.install set (kept alive by it)."""
    cdef SSL_CTX *pointer = _checked_ctx(ctx, checked_pointer)
    if new_session == 0 or info == 0:
        raise ValueError("no session callbacks to filter")
    SSL_CTX_set_ex_data(pointer, _CTX_NEW_SESSION, <void *>new_session)
    SSL_CTX_set_ex_data(pointer, _CTX_INFO, <void *>info)
    SSL_CTX_sess_set_new_cb(pointer, _filtered_new_session)
    SSL_CTX_set_info_callback(pointer, _filtered_info)
