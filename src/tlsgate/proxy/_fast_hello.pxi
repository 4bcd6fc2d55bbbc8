# The site chosen from the ClientHello on the socket path (included by _fast.pyx after
# _fast_tls.pxi): what proxy/acceptor.py's HelloAcceptor does by peeking at the socket, done in
# OpenSSL's ClientHello callback instead.
#
# Some sites must be chosen before the handshake goes anywhere: a site that asks for client
# certificates (OpenSSL takes the verify settings from the SSL, made from the listener's first
# context, not from a context switched to later), a tls-alpn-01 answer (the challenge
# certificate, picked by the ALPN offer), a TCP site (its protocol is not HTTP). OpenSSL calls the
# ClientHello callback first thing on the hello it parsed: the server name and ALPN extensions
# go to the serve's chooser (the same one HelloAcceptor calls), whose context the SSL moves to,
# with that context's verify mode, depth and parameters copied onto the SSL (SSL_set_SSL_CTX
# leaves them as they were), and whose protocol factory makes the connection's protocol.

cdef extern from "openssl/x509_vfy.h" nogil:
    ctypedef struct X509_STORE_CTX:
        pass
    ctypedef struct X509_VERIFY_PARAM:
        pass
    int X509_VERIFY_PARAM_set1(X509_VERIFY_PARAM *to, const X509_VERIFY_PARAM *src)
    unsigned long X509_VERIFY_PARAM_get_flags(const X509_VERIFY_PARAM *param)
    int X509_VERIFY_PARAM_clear_flags(X509_VERIFY_PARAM *param, unsigned long flags)
    const char *X509_verify_cert_error_string(long n)
    enum:
        X509_V_OK

cdef extern from "openssl/ssl.h" nogil:
    ctypedef int (*_verify_fp)(int, X509_STORE_CTX *) noexcept nogil
    ctypedef int (*_client_hello_fp)(SSL *, int *, void *) noexcept
    void SSL_CTX_set_client_hello_cb(SSL_CTX *c, _client_hello_fp cb, void *arg)
    int SSL_client_hello_get0_ext(SSL *s, unsigned int kind, const unsigned char **out,
                                  size_t *outlen)
    int SSL_CTX_get_verify_mode(const SSL_CTX *ctx)
    int SSL_CTX_get_verify_depth(const SSL_CTX *ctx)
    _verify_fp SSL_CTX_get_verify_callback(const SSL_CTX *ctx)
    X509_VERIFY_PARAM *SSL_CTX_get0_param(SSL_CTX *ctx)
    void SSL_set_verify(SSL *s, int mode, _verify_fp cb)
    void SSL_set_verify_depth(SSL *s, int depth)
    int SSL_get_verify_mode(const SSL *s)
    X509_VERIFY_PARAM *SSL_get0_param(SSL *s)
    long SSL_get_verify_result(const SSL *s)
    enum:
        SSL_CLIENT_HELLO_SUCCESS
        SSL_CLIENT_HELLO_ERROR
        SSL_AD_INTERNAL_ERROR
        SSL_VERIFY_NONE

from tlsgate.tls.clienthello import ClientHelloError as _HelloError
from tlsgate.tls.clienthello import from_extensions as _hello_from_extensions

DEF _EXT_SERVER_NAME = 0
DEF _EXT_ALPN = 16

from tlsgate.proxy.acceptor import log_refusal as _log_refusal_line


cdef object _extension(SSL *s, unsigned int kind):
    cdef const unsigned char *data = NULL
    cdef size_t size = 0
    if SSL_client_hello_get0_ext(s, kind, &data, &size) != 1:
        return None
    return PyBytes_FromStringAndSize(<const char *>data, <Py_ssize_t>size)


cdef int _on_client_hello(SSL *s, int *alert, void *arg) noexcept with gil:
    cdef void *owner = SSL_get_ex_data(s, _EX_INDEX)
    if owner == NULL:
        return SSL_CLIENT_HELLO_SUCCESS  # not one of ours
    try:
        _choose_site(<TLSTransport>owner, s)
        return SSL_CLIENT_HELLO_SUCCESS
    except BaseException:  # never into C: the handshake fails with an internal_error alert
        _logger().exception("TLS: choosing the site from the ClientHello failed")
        alert[0] = SSL_AD_INTERNAL_ERROR
        return SSL_CLIENT_HELLO_ERROR


cdef _choose_site(TLSTransport t, SSL *s):
    """The chooser's context and protocol for this hello (once: a HelloRetryRequest brings a
    second ClientHello, which must not change the site)."""
    cdef SSL_CTX *pointer
    cdef X509_VERIFY_PARAM *param
    if t._protocol is not None:
        return
    try:
        hello = _hello_from_extensions(_extension(s, _EXT_SERVER_NAME), _extension(s, _EXT_ALPN))
    except _HelloError:  # OpenSSL refuses what it cannot parse either, with the proper alert
        hello = _hello_from_extensions(None, None)
    ctx, factory = t._choose(hello)
    t._sni = hello.server_name
    if ctx is not t._ctx:
        pointer = TLSGATE_SSL_CTX(ctx)
        if pointer == NULL:
            raise RuntimeError("the chosen SSLContext has no SSL_CTX")
        SSL_set_SSL_CTX(s, pointer)
        # What SSL_set_SSL_CTX leaves from the first context: the client-certificate policy.
        SSL_set_verify(s, SSL_CTX_get_verify_mode(pointer), SSL_CTX_get_verify_callback(pointer))
        SSL_set_verify_depth(s, SSL_CTX_get_verify_depth(pointer))
        param = SSL_get0_param(s)
        if X509_VERIFY_PARAM_set1(param, SSL_CTX_get0_param(pointer)) != 1:
            raise MemoryError("X509_VERIFY_PARAM_set1")
        # set1 adds the flags (CRL checks...) to the first context's: keep only the chosen's.
        X509_VERIFY_PARAM_clear_flags(
            param,
            X509_VERIFY_PARAM_get_flags(param)
            & ~X509_VERIFY_PARAM_get_flags(SSL_CTX_get0_param(pointer)),
        )
        t._ctx = ctx
    t._set_protocol(factory())


cdef _log_refusal(TLSTransport t, object failure):
    """The peeking acceptor's refusal line, with what Python's SSLError would carry
    (verify_message is X509_verify_cert_error_string of the verify result)."""
    cdef long result
    if SSL_get_verify_mode(t._ssl) == SSL_VERIFY_NONE:
        return
    result = SSL_get_verify_result(t._ssl)
    message = None
    if result != X509_V_OK:
        message = (<bytes>X509_verify_cert_error_string(result)).decode("latin-1")
    _log_refusal_line(t._peername[0] if t._peername else "?", failure.reason, message)


def install_choice(object ctx, size_t checked_pointer):
    """Make OpenSSL call the site chooser's ClientHello callback on ``ctx``, a listener's first
    context (connections without a chooser are left alone)."""
    cdef SSL_CTX *pointer = _checked_ctx(ctx, checked_pointer)
    SSL_CTX_set_client_hello_cb(pointer, _on_client_hello, NULL)
