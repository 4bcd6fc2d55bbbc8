# What get_extra_info("ssl_object") gives on the socket path (included by _fast.pyx after
# _fast_tls.pxi): the parts of ssl.SSLObject the proxy and its logs read, from OpenSSL.


cdef class TLSInfo:
    """What ``get_extra_info("ssl_object")`` gives on this transport: the parts of
    ``ssl.SSLObject`` that the proxy and its logs read, answered by OpenSSL directly."""

    cdef TLSTransport _t

    def __init__(self, TLSTransport transport):
        self._t = transport

    @property
    def tlsgate_sni(self):
        """The server name the client sent (None: none), as SiteContexts records it."""
        return self._t._sni

    @property
    def server_hostname(self):
        return self._t._sni

    @property
    def server_side(self):
        return True

    @property
    def context(self):
        return self._t._ctx

    @property
    def session_reused(self):
        return self._t._ssl != NULL and SSL_session_reused(self._t._ssl) == 1

    def version(self):
        if self._t._ssl == NULL or self._t._state == _HANDSHAKE:
            return None
        return (<bytes>SSL_get_version(self._t._ssl)).decode("ascii")

    def selected_alpn_protocol(self):
        cdef const unsigned char *data = NULL
        cdef unsigned int size = 0
        if self._t._ssl == NULL:
            return None
        SSL_get0_alpn_selected(self._t._ssl, &data, &size)
        if data == NULL or size == 0:
            return None
        return PyBytes_FromStringAndSize(<const char *>data, size).decode("ascii")

    def cipher(self):
        cdef const SSL_CIPHER *c
        if self._t._ssl == NULL:
            return None
        c = SSL_get_current_cipher(self._t._ssl)
        if c == NULL:
            return None
        return ((<bytes>SSL_CIPHER_get_name(c)).decode("ascii"),
                (<bytes>SSL_CIPHER_get_version(c)).decode("ascii"),
                SSL_CIPHER_get_bits(c, NULL))

    def getpeercert(self, binary_form=False):
        """The client's certificate: DER with ``binary_form`` (None when it sent none); the
        decoded form is not offered (read the DER with ``cryptography``)."""
        if not binary_form:
            raise ValueError("TLSInfo.getpeercert gives the DER form only (binary_form=True)")
        cdef X509 *cert
        cdef unsigned char *out = NULL
        cdef int size
        if self._t._ssl == NULL:
            return None
        cert = SSL_get1_peer_certificate(self._t._ssl)
        if cert == NULL:
            return None
        try:
            size = i2d_X509(cert, NULL)
            if size <= 0:
                return None
            der = PyBytes_FromStringAndSize(NULL, size)
            out = <unsigned char *>PyBytes_AS_STRING(der)
            if i2d_X509(cert, &out) != size:
                return None
            return der
        finally:
            X509_free(cert)
