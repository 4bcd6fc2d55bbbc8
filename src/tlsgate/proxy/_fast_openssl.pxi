# The system calls and OpenSSL functions the socket TLS transport uses (included by _fast.pyx
# before _fast_tls.pxi), CPython's SSLContext layout, and the helpers that turn their failures
# and addresses into Python values.

# (EWOULDBLOCK is EAGAIN on Linux.)
from libc.errno cimport EAGAIN, EINTR, errno
from libc.string cimport strerror


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        unsigned short sa_family
    struct sockaddr_storage:
        unsigned short ss_family
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    int accept4(int fd, sockaddr *addr, socklen_t *addrlen, int flags)
    int setsockopt(int fd, int level, int name, const void *value, socklen_t size)
    int getsockname(int fd, sockaddr *addr, socklen_t *addrlen)
    int shutdown(int fd, int how)
    enum:
        MSG_NOSIGNAL
        MSG_PEEK
        MSG_DONTWAIT
        SHUT_WR
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        AF_INET
        AF_INET6

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        pass
    struct in6_addr:
        pass
    struct sockaddr_in:
        unsigned short sin_port
        in_addr sin_addr
    struct sockaddr_in6:
        unsigned short sin6_port
        unsigned int sin6_flowinfo
        in6_addr sin6_addr
        unsigned int sin6_scope_id
    unsigned short ntohs(unsigned short)
    unsigned int ntohl(unsigned int)
    enum:
        IPPROTO_TCP
        INET6_ADDRSTRLEN

cdef extern from "<netinet/tcp.h>" nogil:
    enum:
        TCP_NODELAY

cdef extern from "<arpa/inet.h>" nogil:
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

cdef extern from "openssl/bio.h" nogil:
    ctypedef struct BIO:
        pass
    int BIO_new_bio_pair(BIO **bio1, size_t writebuf1, BIO **bio2, size_t writebuf2)
    int BIO_nread0(BIO *bio, char **buf)
    int BIO_nread(BIO *bio, char **buf, int num)
    int BIO_nwrite0(BIO *bio, char **buf)
    int BIO_nwrite(BIO *bio, char **buf, int num)
    size_t BIO_ctrl_pending(BIO *b)
    int BIO_shutdown_wr(BIO *b)
    int BIO_free(BIO *a)

cdef extern from "openssl/x509.h" nogil:
    ctypedef struct X509:
        pass
    int i2d_X509(X509 *x, unsigned char **out)
    void X509_free(X509 *x)

cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_CTX:
        pass
    ctypedef struct SSL:
        pass
    ctypedef struct SSL_CIPHER:
        pass
    SSL *SSL_new(SSL_CTX *ctx)
    void SSL_free(SSL *s)
    void SSL_set_bio(SSL *s, BIO *rbio, BIO *wbio)
    void SSL_set_accept_state(SSL *s)
    int SSL_do_handshake(SSL *s)
    int SSL_read_ex(SSL *s, void *buf, size_t num, size_t *readbytes)
    int SSL_write_ex(SSL *s, const void *buf, size_t num, size_t *written)
    int SSL_get_error(const SSL *s, int ret)
    int SSL_shutdown(SSL *s)
    long SSL_set_mode(SSL *s, long mode)
    unsigned long SSL_set_options(SSL *s, unsigned long options)
    int SSL_has_pending(const SSL *s)
    BIO *SSL_get_rbio(const SSL *s)
    int SSL_get_ex_new_index(long argl, void *argp, void *new_func, void *dup_func,
                             void *free_func)
    int SSL_set_ex_data(SSL *s, int idx, void *data)
    void *SSL_get_ex_data(const SSL *s, int idx)
    const char *SSL_get_servername(const SSL *s, int type)
    SSL_CTX *SSL_set_SSL_CTX(SSL *s, SSL_CTX *ctx)
    SSL_CTX *SSL_get_SSL_CTX(const SSL *s)
    long SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg)
    int SSL_session_reused(const SSL *s)
    const char *SSL_get_version(const SSL *s)
    void SSL_get0_alpn_selected(const SSL *s, const unsigned char **data, unsigned int *len)
    const SSL_CIPHER *SSL_get_current_cipher(const SSL *s)
    const char *SSL_CIPHER_get_name(const SSL_CIPHER *c)
    const char *SSL_CIPHER_get_version(const SSL_CIPHER *c)
    int SSL_CIPHER_get_bits(const SSL_CIPHER *c, int *alg_bits)
    X509 *SSL_get1_peer_certificate(const SSL *s)
    enum:
        SSL_ERROR_NONE
        SSL_ERROR_SSL
        SSL_ERROR_WANT_READ
        SSL_ERROR_WANT_WRITE
        SSL_ERROR_SYSCALL
        SSL_ERROR_ZERO_RETURN
        SSL_MODE_ENABLE_PARTIAL_WRITE
        SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
        SSL_MODE_RELEASE_BUFFERS
        SSL_OP_IGNORE_UNEXPECTED_EOF
        SSL_CTRL_SET_TLSEXT_SERVERNAME_CB
        SSL_TLSEXT_ERR_OK
        TLSEXT_NAMETYPE_host_name

cdef extern from "openssl/ssl.h" nogil:
    ctypedef struct SSL_SESSION:
        pass
    int SSL_version(const SSL *s)
    int SSL_CTX_get_ex_new_index(long argl, void *argp, void *new_func, void *dup_func,
                                 void *free_func)
    int SSL_CTX_set_ex_data(SSL_CTX *ctx, int idx, void *data)
    void *SSL_CTX_get_ex_data(const SSL_CTX *ctx, int idx)
    void SSL_CTX_sess_set_new_cb(SSL_CTX *ctx, int (*cb)(SSL *, SSL_SESSION *) noexcept nogil)
    void SSL_CTX_set_info_callback(SSL_CTX *ctx,
                                   void (*cb)(const SSL *, int, int) noexcept nogil)
    enum:
        TLS1_3_VERSION
        SSL_CB_ALERT
        SSL3_AL_FATAL

cdef extern from "openssl/crypto.h" nogil:
    unsigned long OpenSSL_version_num()

cdef extern from "openssl/err.h" nogil:
    unsigned long ERR_get_error()
    unsigned long ERR_peek_last_error()
    void ERR_clear_error()
    void ERR_error_string_n(unsigned long e, char *buf, size_t len)
    const char *ERR_reason_error_string(unsigned long e)

cdef extern from *:
    """
    /* CPython's _ssl: an SSLContext is PyObject_HEAD then its SSL_CTX * (Modules/_ssl.c,
       unchanged since 3.7). socket_tls.py checks the offset against OpenSSL before use. */
    typedef struct { PyObject_HEAD void *ctx; } tlsgate_PySSLContext;
    #define TLSGATE_SSL_CTX(o) ((SSL_CTX *)(((tlsgate_PySSLContext *)(o))->ctx))
    typedef void (*tlsgate_generic_callback)(void);
    """
    ctypedef void (*_generic_callback "tlsgate_generic_callback")()
    SSL_CTX *TLSGATE_SSL_CTX(object ctx)
    long SSL_CTX_callback_ctrl(SSL_CTX *ctx, int cmd, _generic_callback fp)


cdef SSL_CTX *_checked_ctx(object ctx, size_t checked_pointer) except NULL:
    """``ctx``'s SSL_CTX, if it is where :func:`tlsgate.tls.libssl.ssl_ctx_pointer` found and
    checked it (``checked_pointer``): every function here that sets something on a context
    takes that proof first."""
    cdef SSL_CTX *pointer = TLSGATE_SSL_CTX(ctx)
    if <size_t>pointer != checked_pointer or pointer == NULL:
        raise RuntimeError("the SSLContext's SSL_CTX is not where this build expects it")
    return pointer


cdef object _tls_log = None


cdef object _logger():
    global _tls_log
    if _tls_log is None:
        import logging
        _tls_log = logging.getLogger("tlsgate.serve")
    return _tls_log


class TLSFailure(ConnectionError):
    """The TLS layer failed (a protocol error, a reset, an unexpected end): the connection is
    closed; ``reason`` is OpenSSL's (``"WRONG_VERSION_NUMBER"``) or the system's."""

    def __init__(self, message, reason=""):
        super().__init__(message)
        self.reason = reason


cdef object _ssl_failure(str what):
    """A TLSFailure from OpenSSL's error queue (emptied), or from errno when the queue is empty."""
    cdef unsigned long code = ERR_peek_last_error()
    cdef char text[256]
    cdef const char *reason
    if code == 0:
        ERR_clear_error()
        return TLSFailure(f"{what}: connection closed or reset", "")
    ERR_error_string_n(code, text, sizeof(text))
    reason = ERR_reason_error_string(code)
    ERR_clear_error()
    name = (<bytes>reason).decode("latin-1").upper().replace(" ", "_") if reason != NULL else ""
    return TLSFailure(f"{what}: {(<bytes>text).decode('latin-1')}", name)


cdef object _errno_failure(int code):
    """The OSError subclass Python makes for ``code`` (ConnectionResetError, BrokenPipeError...)."""
    return OSError(code, (<bytes>strerror(code)).decode("latin-1"))


cdef object _address(sockaddr *addr):
    """The (host, port) or (host, port, flowinfo, scope_id) tuple asyncio gives as peername."""
    cdef char text[INET6_ADDRSTRLEN + 1]
    cdef sockaddr_in *v4
    cdef sockaddr_in6 *v6
    if addr.sa_family == AF_INET:
        v4 = <sockaddr_in *>addr
        if inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text)) == NULL:
            return None
        return ((<bytes>text).decode("ascii"), ntohs(v4.sin_port))
    if addr.sa_family == AF_INET6:
        v6 = <sockaddr_in6 *>addr
        if inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text)) == NULL:
            return None
        return ((<bytes>text).decode("ascii"), ntohs(v6.sin6_port), ntohl(v6.sin6_flowinfo),
                v6.sin6_scope_id)
    return None


def openssl_version_number():
    """The OpenSSL this module runs on (``ssl.OPENSSL_VERSION_NUMBER`` must be the same: the
    transport shares ``SSL_CTX`` objects with Python's ``ssl``)."""
    return OpenSSL_version_num()
