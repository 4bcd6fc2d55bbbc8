# The session-ticket key callback in C (included by _fast.pyx after _fast_openssl.pxi): what
# socket_tls.compile_ticket_keys installs in place of tls/tickets.py's ctypes thunk.

# tls/tickets.py derives the keys and documents the scheme; its callback is a ctypes thunk, a
# Python call into OpenSSL's handshake for every ticket issued and every one presented: 10 % of
# a worker's CPU under resumed-handshake load, measured, most of it the crossing itself. Here the
# keys of the current epoch and its two neighbours sit in C memory beside the OSSL_PARAM array
# OpenSSL's HMAC reads them from; the callback picks one with no Python at all, and asks Python
# (the ring's TicketKeys) for the next neighbourhood once per rotation, when the epoch moves.
# Same decisions, same counters, same keys as the thunk: tests/tls/test_tickets.py runs on both.

cdef extern from "openssl/params.h" nogil:
    ctypedef struct OSSL_PARAM:
        const char *key
        unsigned int data_type
        void *data
        size_t data_size
        size_t return_size
    OSSL_PARAM OSSL_PARAM_construct_octet_string(const char *key, void *buf, size_t bsize)
    OSSL_PARAM OSSL_PARAM_construct_utf8_string(const char *key, char *buf, size_t bsize)
    OSSL_PARAM OSSL_PARAM_construct_end()

cdef extern from "openssl/evp.h" nogil:
    ctypedef struct EVP_CIPHER_CTX:
        pass
    ctypedef struct EVP_CIPHER:
        pass
    ctypedef struct EVP_MAC_CTX:
        pass
    ctypedef struct ENGINE:
        pass
    const EVP_CIPHER *EVP_aes_256_cbc()
    EVP_CIPHER *EVP_CIPHER_fetch(void *libctx, const char *algorithm, const char *properties)
    int EVP_EncryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *impl,
                           const unsigned char *key, const unsigned char *iv)
    int EVP_DecryptInit_ex(EVP_CIPHER_CTX *ctx, const EVP_CIPHER *cipher, ENGINE *impl,
                           const unsigned char *key, const unsigned char *iv)
    int EVP_MAC_CTX_set_params(EVP_MAC_CTX *ctx, const OSSL_PARAM *params)

cdef extern from "openssl/rand.h" nogil:
    int RAND_bytes(unsigned char *buf, int num)

cdef extern from "openssl/crypto.h" nogil:
    int CRYPTO_memcmp(const void *a, const void *b, size_t n)

cdef extern from "openssl/ssl.h" nogil:
    ctypedef int (*_ticket_key_fp)(SSL *, unsigned char *, unsigned char *, EVP_CIPHER_CTX *,
                                   EVP_MAC_CTX *, int) noexcept nogil
    int SSL_CTX_set_tlsext_ticket_key_evp_cb(SSL_CTX *ctx, _ticket_key_fp cb)

cdef extern from "<math.h>" nogil:
    double floor(double x)

DEF _NAME_SIZE = 16
DEF _KEY_SIZE = 32
DEF _IV_SIZE = 16
DEF _NEIGHBOURS = 3  # the current epoch, the previous one, the next one (tickets.py's rule)

cdef int _CTX_TICKETS = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL)
if _CTX_TICKETS < 0:  # pragma: no cover - OpenSSL out of memory
    raise ImportError("proxy/_fast: SSL_CTX_get_ex_new_index failed")

cdef char *_TICKET_DIGEST = b"SHA256"
# Fetched once: the legacy EVP_aes_256_cbc() makes every EVP_*Init_ex fetch it from the
# provider again (as OpenSSL's own ticket code avoids by fetching at SSL_CTX creation).
cdef const EVP_CIPHER *_TICKET_CIPHER = EVP_CIPHER_fetch(NULL, b"AES-256-CBC", NULL)
if _TICKET_CIPHER == NULL:  # pragma: no cover - every default provider has it
    _TICKET_CIPHER = EVP_aes_256_cbc()


cdef struct _EpochKey:
    long long epoch
    unsigned char name[_NAME_SIZE]
    unsigned char hmac_key[_KEY_SIZE]
    unsigned char aes_key[_KEY_SIZE]
    OSSL_PARAM params[3]  # key = hmac_key, digest = SHA256, end


cdef struct _Ring:
    _EpochKey keys[_NEIGHBOURS]  # keys[0] is the current epoch's
    int count
    long long current  # -1 until the first fill
    double rotation
    bint wall_clock  # the TicketKeys' clock is time.time: read it here, without Python
    void *owner  # the TicketRing (borrowed: it owns this struct)
    unsigned long long issued
    unsigned long long resumed
    unsigned long long renewed
    unsigned long long unknown


cdef class TicketRing:
    """One TicketKeys' neighbourhood of epoch keys in C memory, for :func:`_on_ticket_key`.

    Kept alive by the TicketKeys (``keys.compiled``) as long as any context calls it; the
    contexts' ex_data point into it."""

    cdef _Ring ring
    cdef object keys
    cdef bint failed

    def __cinit__(self, keys):
        self.keys = keys
        self.ring.count = 0
        self.ring.current = -1
        self.ring.rotation = float(keys.rotation)
        self.ring.wall_clock = keys.clock is time.time
        self.ring.owner = <void *>self
        self.failed = False

    def counts(self):
        """(issued, resumed, renewed, unknown) as this ring decided them."""
        return (self.ring.issued, self.ring.resumed, self.ring.renewed, self.ring.unknown)

    cdef long long _python_epoch(self) except -2:
        return self.keys.epoch()

    cdef int _fill(self, long long current) except -1:
        """The neighbourhood of ``current`` from the TicketKeys, which derives (and caches) it."""
        cdef _EpochKey *slot
        cdef int n = 0
        for epoch in (current, current - 1, current + 1):
            if epoch < 0:
                continue
            key = self.keys.key(epoch)
            name, hmac_key, aes_key = key.name, key.hmac_key, key.aes_key
            if len(name) != _NAME_SIZE or len(hmac_key) != _KEY_SIZE or len(aes_key) != _KEY_SIZE:
                raise ValueError("ticket keys of an unexpected size")
            slot = &self.ring.keys[n]
            slot.epoch = epoch
            memcpy(slot.name, PyBytes_AS_STRING(name), _NAME_SIZE)
            memcpy(slot.hmac_key, PyBytes_AS_STRING(hmac_key), _KEY_SIZE)
            memcpy(slot.aes_key, PyBytes_AS_STRING(aes_key), _KEY_SIZE)
            slot.params[0] = OSSL_PARAM_construct_octet_string(b"key", slot.hmac_key, _KEY_SIZE)
            slot.params[1] = OSSL_PARAM_construct_utf8_string(b"digest", _TICKET_DIGEST, 0)
            slot.params[2] = OSSL_PARAM_construct_end()
            n += 1
        self.ring.count = n
        self.ring.current = current
        return 0

    cdef int _refresh(self, long long known) noexcept:
        """Slow path, with the GIL: the epoch from a test's clock, or a new epoch's keys.
        Returns the current epoch's index state: 0 ready, -1 failed (no ticket, logged once)."""
        cdef long long current
        try:
            current = known if known >= 0 else self._python_epoch()
            if current != self.ring.current:
                self._fill(current)
            return 0
        except BaseException:  # nothing may propagate into OpenSSL
            if not self.failed:
                self.failed = True
                import logging
                logging.getLogger("tlsgate.tickets").exception(
                    "session-ticket callback failed; continuing without a ticket"
                )
            return -1


cdef int _ring_ready(_Ring *ring) noexcept nogil:
    """Make ``ring.keys[0]`` the current epoch's: 0 when it is, -1 when it cannot be."""
    cdef timespec now
    cdef long long current = -1
    cdef int ok
    if ring.wall_clock:
        clock_gettime(CLOCK_REALTIME, &now)
        current = <long long>floor((now.tv_sec + now.tv_nsec * 1e-9) / ring.rotation)
        if current == ring.current:
            return 0
    with gil:
        ok = (<TicketRing>ring.owner)._refresh(current)
    return ok if ring.count > 0 else -1


cdef int _on_ticket_key(SSL *s, unsigned char *name, unsigned char *iv,
                        EVP_CIPHER_CTX *cipher, EVP_MAC_CTX *mac, int enc) noexcept nogil:
    cdef _Ring *ring = <_Ring *>SSL_CTX_get_ex_data(SSL_get_SSL_CTX(s), _CTX_TICKETS)
    cdef _EpochKey *key = NULL
    cdef int i
    if ring == NULL or _ring_ready(ring) != 0:
        return 0
    if enc == 1:
        key = &ring.keys[0]
        if RAND_bytes(iv, _IV_SIZE) != 1:
            return 0
        memcpy(name, key.name, _NAME_SIZE)
        if EVP_EncryptInit_ex(cipher, _TICKET_CIPHER, NULL, key.aes_key, iv) != 1:
            return 0
        if EVP_MAC_CTX_set_params(mac, key.params) != 1:
            return 0
        ring.issued += 1
        return 1
    for i in range(ring.count):
        if CRYPTO_memcmp(ring.keys[i].name, name, _NAME_SIZE) == 0:
            key = &ring.keys[i]
            break
    if key == NULL:
        ring.unknown += 1
        return 0  # too old, another secret, garbage: a full handshake, never an error
    if EVP_DecryptInit_ex(cipher, _TICKET_CIPHER, NULL, key.aes_key, iv) != 1:
        return 0
    if EVP_MAC_CTX_set_params(mac, key.params) != 1:
        return 0
    if key.epoch == ring.current and SSL_version(s) != TLS1_3_VERSION:
        ring.resumed += 1
        return 1  # a TLS 1.2 client keeps using this ticket
    ring.renewed += 1
    return 2  # TLS 1.3 tickets are single-use; an older key's ticket is replaced


def compile_ticket_keys(object ctx, size_t checked_pointer, TicketRing ring):
    """Make ``ctx`` pick its ticket keys from ``ring`` in C, in place of the ctypes callback."""
    cdef SSL_CTX *pointer = _checked_ctx(ctx, checked_pointer)
    if SSL_CTX_set_ex_data(pointer, _CTX_TICKETS, <void *>&ring.ring) != 1:
        raise RuntimeError("SSL_CTX_set_ex_data failed")
    if SSL_CTX_set_tlsext_ticket_key_evp_cb(pointer, _on_ticket_key) != 1:
        raise RuntimeError("SSL_CTX_set_tlsext_ticket_key_evp_cb failed")
