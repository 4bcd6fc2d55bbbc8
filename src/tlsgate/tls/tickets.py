"""TLS session-ticket keys rotated on a schedule, the same in every worker and (later) every node.

Python's ``ssl`` leaves ticket keys to OpenSSL, which makes random ones per ``SSL_CTX``: they
never rotate, and a restart (or another node) cannot read tickets issued before. Here a 32-byte
secret kept in the store is the only shared state. Time is cut into epochs of ``rotation``
seconds; the keys of epoch *e* (a 16-byte key name, a 32-byte HMAC key, a 32-byte AES key) are
HKDF-SHA256 of the secret and *e*. Every process that holds the secret derives the same keys at
the same moment, with no coordination and nothing else to store.

OpenSSL does all the ticket cryptography (AES-256-CBC + HMAC-SHA256, RFC 5077 layout); the
callback registered with ``SSL_CTX_set_tlsext_ticket_key_evp_cb`` only picks keys:

- issuing: the current epoch's key and a fresh random IV;
- resuming: the key whose name the ticket carries, among epochs *e-1*, *e*, *e+1* (the previous
  epoch so a ticket survives a rotation; the next one for clock skew between nodes). A TLS 1.3
  resumption, or any under a key that is not the current one, asks OpenSSL for a fresh ticket
  (TLS 1.3 clients use each ticket once); an unknown name (too old, another secret, garbage)
  means a full handshake, never an error.

So a ticket is accepted for at least one and at most two rotation periods (OpenSSL's own session
timeout, 2 hours by default, still applies on top).

The callback runs inside OpenSSL's handshake: it never lets an exception escape into C.
"""

from __future__ import annotations

import ctypes
import hmac
import logging
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tlsgate.tls import libssl

__all__ = [
    "DEFAULT_ROTATION",
    "SECRET_SIZE",
    "CompiledKeys",
    "EpochKey",
    "TicketKeys",
    "derive",
    "disable_tickets",
    "install",
    "install_all",
]

log = logging.getLogger("tlsgate.tickets")

#: Seconds per epoch unless configured otherwise.
DEFAULT_ROTATION = 12 * 3600
SECRET_SIZE = 32
NAME_SIZE = 16
_IV_SIZE = 16  # AES-256-CBC
_TLS1_3_VERSION = 0x0304
_INFO = b"tlsgate session-ticket keys v1 epoch "

_OSSL_PARAM_OCTET_STRING = 5


class _OsslParam(ctypes.Structure):
    _fields_ = [
        ("key", ctypes.c_char_p),
        ("data_type", ctypes.c_uint),
        ("data", ctypes.c_void_p),
        ("data_size", ctypes.c_size_t),
        ("return_size", ctypes.c_size_t),
    ]


# int cb(SSL *, unsigned char key_name[16], unsigned char *iv, EVP_CIPHER_CTX *, EVP_MAC_CTX *,
#        int enc)
_TicketCallback = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_int,
)


class CompiledKeys(Protocol):
    """The compiled callback's state (``proxy/_fast_tickets.pxi``): its own counters."""

    def counts(self) -> tuple[int, int, int, int]:
        """(issued, resumed, renewed, unknown)."""


@dataclass(frozen=True)
class EpochKey:
    epoch: int
    name: bytes
    hmac_key: bytes
    aes_key: bytes


def derive(secret: bytes, epoch: int) -> EpochKey:
    """The keys of ``epoch``: HKDF-SHA256(secret, info = label || epoch) split 16/32/32."""
    if len(secret) != SECRET_SIZE:
        raise ValueError(f"ticket secret must be {SECRET_SIZE} bytes, not {len(secret)}")
    if epoch < 0:
        raise ValueError("epoch must not be negative")
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=NAME_SIZE + 32 + 32,
        salt=None,
        info=_INFO + epoch.to_bytes(8, "big"),
    ).derive(secret)
    return EpochKey(epoch, okm[:NAME_SIZE], okm[NAME_SIZE:48], okm[48:])


class _Native:
    """The OpenSSL functions the callback calls, with their prototypes."""

    def __init__(self, lib: libssl.LibSSL) -> None:
        crypto = lib.crypto
        self.set_evp_cb = lib.ssl.SSL_CTX_set_tlsext_ticket_key_evp_cb
        self.set_evp_cb.restype = ctypes.c_int
        self.set_evp_cb.argtypes = [ctypes.c_void_p, _TicketCallback]
        self.ssl_version = lib.ssl.SSL_version
        self.ssl_version.restype = ctypes.c_int
        self.ssl_version.argtypes = [ctypes.c_void_p]
        self.rand_bytes = crypto.RAND_bytes
        self.rand_bytes.restype = ctypes.c_int
        self.rand_bytes.argtypes = [ctypes.c_void_p, ctypes.c_int]
        crypto.EVP_aes_256_cbc.restype = ctypes.c_void_p
        crypto.EVP_aes_256_cbc.argtypes = []
        self.aes_256_cbc: int = crypto.EVP_aes_256_cbc()
        init_args = [ctypes.c_void_p] * 5
        self.encrypt_init = crypto.EVP_EncryptInit_ex
        self.encrypt_init.restype = ctypes.c_int
        self.encrypt_init.argtypes = init_args
        self.decrypt_init = crypto.EVP_DecryptInit_ex
        self.decrypt_init.restype = ctypes.c_int
        self.decrypt_init.argtypes = init_args
        self.mac_set_params = crypto.EVP_MAC_CTX_set_params
        self.mac_set_params.restype = ctypes.c_int
        self.mac_set_params.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.octet_string = crypto.OSSL_PARAM_construct_octet_string
        self.octet_string.restype = _OsslParam
        self.octet_string.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
        self.utf8_string = crypto.OSSL_PARAM_construct_utf8_string
        self.utf8_string.restype = _OsslParam
        self.utf8_string.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        self.end = crypto.OSSL_PARAM_construct_end
        self.end.restype = _OsslParam
        self.end.argtypes = []
        if not self.aes_256_cbc:
            raise RuntimeError("EVP_aes_256_cbc is not available")


_native_lock = threading.Lock()
_native_cache: list[_Native | None] = []


def _native() -> _Native | None:
    with _native_lock:
        if not _native_cache:
            lib = libssl.libssl()
            native: _Native | None = None
            if lib is not None:
                try:
                    native = _Native(lib)
                except (AttributeError, RuntimeError):
                    native = None
            _native_cache.append(native)
        return _native_cache[0]


@dataclass
class _NativeKey:
    """An epoch's keys in C memory, with the OSSL_PARAM array OpenSSL's HMAC reads them from."""

    key: EpochKey
    aes: ctypes.Array[ctypes.c_char]
    mac: ctypes.Array[ctypes.c_char]
    params: ctypes.Array[_OsslParam]
    _digest: ctypes.Array[ctypes.c_char] = field(repr=False)

    @classmethod
    def build(cls, native: _Native, key: EpochKey) -> _NativeKey:
        aes = ctypes.create_string_buffer(key.aes_key, len(key.aes_key))
        mac = ctypes.create_string_buffer(key.hmac_key, len(key.hmac_key))
        digest = ctypes.create_string_buffer(b"SHA256")
        params = (_OsslParam * 3)(
            native.octet_string(b"key", ctypes.cast(mac, ctypes.c_void_p), len(key.hmac_key)),
            native.utf8_string(b"digest", digest, 0),
            native.end(),
        )
        if params[0].data_type != _OSSL_PARAM_OCTET_STRING:
            raise RuntimeError("unexpected OSSL_PARAM layout")
        return cls(key, aes, mac, params, digest)


class TicketKeys:
    """The epoch keys of one secret, and the OpenSSL callback that uses them.

    ``clock`` returns Unix seconds; tests move it to cross epochs. Counters (``issued``,
    ``resumed``, ``renewed``, ``unknown``) count callback outcomes in this process.
    """

    def __init__(
        self,
        secret: bytes,
        rotation: float = DEFAULT_ROTATION,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) != SECRET_SIZE:
            raise ValueError(f"ticket secret must be {SECRET_SIZE} bytes, not {len(secret)}")
        if rotation < 1:
            raise ValueError("ticket rotation must be at least 1 second")
        self._secret = secret
        self.rotation = rotation
        self.clock = clock
        self._lock = threading.Lock()
        self._derived: dict[int, EpochKey] = {}
        self._native_keys: dict[int, _NativeKey] = {}
        self._native: _Native | None = None
        self._callback: object | None = None  # the ctypes thunk; must outlive every SSL_CTX
        self._failed = False
        self._counts = [0, 0, 0, 0]  # the thunk's: issued, resumed, renewed, unknown
        #: The compiled callback's state, when the data plane put it in place of the thunk on
        #: some contexts (``socket_tls.compile_ticket_keys``): kept alive here, counted below.
        self.compiled: CompiledKeys | None = None

    def _count(self, index: int) -> int:
        extra = self.compiled.counts()[index] if self.compiled is not None else 0
        return self._counts[index] + extra

    @property
    def issued(self) -> int:
        """Tickets issued under the current epoch's key."""
        return self._count(0)

    @property
    def resumed(self) -> int:
        """TLS 1.2 tickets accepted under the current key (the client keeps using them)."""
        return self._count(1)

    @property
    def renewed(self) -> int:
        """Tickets accepted and replaced by a fresh one (TLS 1.3, or an older epoch's key)."""
        return self._count(2)

    @property
    def unknown(self) -> int:
        """Tickets under no accepted key: a full handshake instead."""
        return self._count(3)

    def epoch(self, now: float | None = None) -> int:
        return int((self.clock() if now is None else now) // self.rotation)

    def key(self, epoch: int) -> EpochKey:
        """The keys of ``epoch``, derived once and kept while the epoch is near."""
        with self._lock:
            found = self._derived.get(epoch)
            if found is None:
                found = derive(self._secret, epoch)
                self._derived[epoch] = found
                for old in [e for e in self._derived if abs(e - epoch) > 2]:
                    del self._derived[old]  # keep only the neighbourhood of now
                    self._native_keys.pop(old, None)
            return found

    def lookup(self, name: bytes, now: float | None = None) -> tuple[EpochKey, bool] | None:
        """The key called ``name`` among the current, previous and next epochs, and whether it
        is the current one; None when no accepted epoch has that name."""
        current = self.epoch(now)
        for epoch in (current, current - 1, current + 1):
            if epoch >= 0:
                key = self.key(epoch)
                if hmac.compare_digest(key.name, name):
                    return key, epoch == current
        return None

    # -- OpenSSL side ----------------------------------------------------------------------------
    def _native_key(self, native: _Native, key: EpochKey) -> _NativeKey:
        with self._lock:
            found = self._native_keys.get(key.epoch)
            if found is None:
                found = _NativeKey.build(native, key)
                self._native_keys[key.epoch] = found
            return found

    def callback(self) -> object:
        """The ctypes callback to register; built once and kept alive by this object."""
        if self._callback is None:
            native = _native()
            if native is None:
                raise RuntimeError("OpenSSL is not reachable through ctypes in this interpreter")
            self._native = native
            self._callback = _TicketCallback(self._on_ticket)
        return self._callback

    def _on_ticket(
        self, ssl_ptr: int, key_name: int, iv: int, cipher_ctx: int, mac_ctx: int, enc: int
    ) -> int:
        try:
            native = self._native
            assert native is not None
            if enc == 1:
                k = self._native_key(native, self.key(self.epoch()))
                if native.rand_bytes(iv, _IV_SIZE) != 1:
                    return 0
                ctypes.memmove(key_name, k.key.name, NAME_SIZE)
                if native.encrypt_init(cipher_ctx, native.aes_256_cbc, None, k.aes, iv) != 1:
                    return 0
                if native.mac_set_params(mac_ctx, k.params) != 1:
                    return 0
                self._counts[0] += 1
                return 1
            found = self.lookup(ctypes.string_at(key_name, NAME_SIZE))
            if found is None:
                self._counts[3] += 1
                return 0
            key, current = found
            k = self._native_key(native, key)
            if native.decrypt_init(cipher_ctx, native.aes_256_cbc, None, k.aes, iv) != 1:
                return 0
            if native.mac_set_params(mac_ctx, k.params) != 1:
                return 0
            if current and native.ssl_version(ssl_ptr) != _TLS1_3_VERSION:
                self._counts[1] += 1
                return 1  # a TLS 1.2 client keeps using this ticket
            # TLS 1.3 tickets are single-use (RFC 8446 C.4): without a fresh one after each
            # resumption, a client that chains them falls back to a full handshake every other
            # connection. OpenSSL only sends one when told to renew.
            self._counts[2] += 1
            return 2
        except BaseException:  # nothing may propagate into OpenSSL
            if not self._failed:
                self._failed = True
                log.exception("session-ticket callback failed; continuing without a ticket")
            return 0


# The callbacks must live as long as the contexts that call them: keyed weakly by context.
_installed: weakref.WeakKeyDictionary[ssl.SSLContext, TicketKeys] = weakref.WeakKeyDictionary()
_warned = False


def install(ctx: ssl.SSLContext, keys: TicketKeys) -> bool:
    """Make ``ctx`` issue and accept tickets under ``keys``.

    Returns False (after one warning per process) when OpenSSL cannot be reached through ctypes;
    the context then keeps OpenSSL's default, per-process random ticket keys.
    """
    global _warned
    native = _native()
    if native is None:
        if not _warned:
            _warned = True
            log.warning(
                "session tickets: cannot reach OpenSSL's ticket key callback from this "
                "interpreter; keys will not rotate or survive a restart"
            )
        return False
    callback = keys.callback()
    pointer = libssl.ssl_ctx_pointer(ctx)
    if native.set_evp_cb(pointer, callback) != 1:
        raise RuntimeError("SSL_CTX_set_tlsext_ticket_key_evp_cb failed")
    _installed[ctx] = keys
    ctx.options &= ~ssl.OP_NO_TICKET
    return True


def disable_tickets(ctx: ssl.SSLContext) -> None:
    """No session tickets at all: TLS 1.2 falls back to this process's session-ID cache and TLS
    1.3 issues none (``num_tickets = 0``)."""
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0


def install_all(contexts: Iterable[ssl.SSLContext], keys: TicketKeys | None) -> None:
    """``keys`` on every context, or no tickets at all when ``keys`` is None (rotation "off")."""
    for ctx in contexts:
        if keys is None:
            disable_tickets(ctx)
        elif not install(ctx, keys):
            return
