"""A TLS 1.2 session-ID cache shared by every worker of ``tlsgate serve``, like nginx's
``ssl_session_cache shared:``.

OpenSSL's own session cache lives in each process. With several workers on one port
(``SO_REUSEPORT``), a client that resumes by session ID reaches another worker about half the
time, which has never seen that ID: a full handshake instead of a resumption. Tickets do not have
this problem (every worker derives the same ticket keys, :mod:`tlsgate.tls.tickets`), but a
client that does not use them (``SSL_OP_NO_TICKET``, some Java and embedded stacks) relies on the
ID alone.

A second way sessions were lost, with one worker too: OpenSSL forgets a session when the
``SSL`` that used it is freed without having *sent* a close_notify (``ssl_clear_bad_session``).
The event loop's TLS sends one when tlsgate closes first; when the client closes first (a
keep-alive client going away, a client that only handshakes), the session went, and the
client's next resumption with it failed whenever that ``SSL`` had been freed before the client
came back: measured, one reconnect in about 20, at a steady rhythm. nginx avoids it by marking
such connections shut down (``SSL_set_shutdown``) before freeing them.

So the contexts use OpenSSL's *external* cache hooks instead of its internal cache
(``SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL``):

- ``new_session_cb`` serializes each new TLS 1.2 session (``i2d_SSL_SESSION``) into a table in a
  shared anonymous memory mapping made by the master before the workers fork;
- ``get_session_cb`` looks a client's session ID up there and hands OpenSSL a fresh
  ``SSL_SESSION`` (``d2i_SSL_SESSION``), which OpenSSL owns from then on;
- there is no ``remove_session_cb``, so a connection that merely ended without our close_notify
  costs nothing; a fatal alert, sent or received, still invalidates its session as RFC 5246
  7.2.2 requires: the info callback sees the alert and drops the entry. An expired session is
  a miss (here, and OpenSSL checks the lifetime again).

The table is set-associative: :data:`WAYS` slots per set, the set picked by the session ID
(random, made by the server); a new session replaces an empty, expired or else the
soonest-to-expire slot of its set. It takes no lock: every slot carries a BLAKE2b checksum of its
content, and a slot that is torn (two workers writing it at once, or one reading while another
writes) fails the check and is a miss, never a wrong session. A session larger than a slot (a
client certificate over about 1.9 KiB) is not cached; its client gets a full handshake.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import mmap
import ssl
import struct
import time
import weakref
from collections.abc import Callable

from tlsgate.tls import libssl

__all__ = [
    "SLOT_SIZE",
    "WAYS",
    "SessionCache",
    "callback_addresses",
    "install",
]

log = logging.getLogger("tlsgate.sessions")

#: Bytes per slot, header included; a serialized session must fit in the rest.
SLOT_SIZE = 2048
#: Slots per set.
WAYS = 4
#: Sets by default: 2048 x 4 sessions, 16 MiB of shared memory (mapped lazily: a page costs
#: memory once a session is written to it).
DEFAULT_SETS = 2048

# Slot layout: payload length (0 = empty), id length, expiry (Unix seconds), id, checksum, payload.
_HEADER = struct.Struct("<IB3xd32s16s")
_MAX_ID = 32  # SSL_MAX_SSL_SESSION_ID_LENGTH
MAX_SESSION = SLOT_SIZE - _HEADER.size

# ssl.h
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_SESS_CACHE_SERVER = 0x0002
_SSL_SESS_CACHE_NO_INTERNAL = 0x0100 | 0x0200  # no internal lookup, no internal store
_TLS1_3_VERSION = 0x0304
_SSL_CB_ALERT = 0x4000
_SSL3_AL_FATAL = 2


def _checksum(id_len: int, expires: float, session_id: bytes, der: bytes) -> bytes:
    head = struct.pack("<IBd", len(der), id_len, expires)
    return hashlib.blake2b(head + session_id + der, digest_size=16).digest()


class SessionCache:
    """The shared table; usable on its own (tests), and by :func:`install`'s callbacks.

    Counters (``stored``, ``hits``, ``misses``, ``too_big``) count this process's operations.
    """

    def __init__(self, sets: int = DEFAULT_SETS, *, clock: Callable[[], float] = time.time) -> None:
        if sets < 1:
            raise ValueError("a session cache needs at least one set")
        self.sets = sets
        self.clock = clock
        # MAP_SHARED | anonymous: the workers forked after this share the very pages.
        self._map = mmap.mmap(-1, sets * WAYS * SLOT_SIZE, flags=mmap.MAP_SHARED)
        self._callbacks: tuple[object, object, object] | None = None  # ctypes thunks
        self._native: _Native | None = None
        self._failed = False
        self.stored = 0
        self.hits = 0
        self.misses = 0
        self.too_big = 0

    # -- the table -----------------------------------------------------------------------------
    def _slots(self, session_id: bytes) -> range:
        first = int.from_bytes(hashlib.blake2b(session_id, digest_size=8).digest(), "big")
        start = (first % self.sets) * WAYS * SLOT_SIZE
        return range(start, start + WAYS * SLOT_SIZE, SLOT_SIZE)

    def _read(self, offset: int) -> tuple[bytes, float, bytes] | None:
        """The (id, expiry, session) a slot holds, or None when it is empty or torn."""
        length, id_len, expires, padded_id, checksum = _HEADER.unpack_from(self._map, offset)
        if length == 0 or length > MAX_SESSION or not 0 < id_len <= _MAX_ID:
            return None
        start = offset + _HEADER.size
        der = self._map[start : start + length]
        session_id = padded_id[:id_len]
        if checksum != _checksum(id_len, expires, session_id, der):
            return None
        return session_id, expires, der

    def get(self, session_id: bytes) -> bytes | None:
        """The serialized session stored under ``session_id``, if present and not expired."""
        now = self.clock()
        for offset in self._slots(session_id):
            found = self._read(offset)
            if found is not None and found[0] == session_id and found[1] > now:
                self.hits += 1
                return found[2]
        self.misses += 1
        return None

    def put(self, session_id: bytes, der: bytes, expires: float) -> bool:
        """Store a session until ``expires``; False when it does not fit in a slot."""
        if not 0 < len(session_id) <= _MAX_ID:
            raise ValueError("a session id is 1-32 bytes")
        if not der or len(der) > MAX_SESSION:
            self.too_big += 1
            return False
        victim, victim_expiry = -1, float("inf")
        for offset in self._slots(session_id):
            found = self._read(offset)
            if found is None or found[0] == session_id:
                victim = offset
                break
            if found[1] < victim_expiry:  # the one to expire first (an expired one, if any)
                victim, victim_expiry = offset, found[1]
        checksum = _checksum(len(session_id), expires, session_id, der)
        header = _HEADER.pack(len(der), len(session_id), expires, session_id, checksum)
        struct.pack_into("<I", self._map, victim, 0)  # empty while being written
        start = victim + _HEADER.size
        self._map[start : start + len(der)] = der
        self._map[victim + 4 : victim + _HEADER.size] = header[4:]
        self._map[victim : victim + 4] = header[:4]
        self.stored += 1
        return True

    def remove(self, session_id: bytes) -> None:
        for offset in self._slots(session_id):
            found = self._read(offset)
            if found is not None and found[0] == session_id:
                struct.pack_into("<I", self._map, offset, 0)

    # -- OpenSSL side ----------------------------------------------------------------------------
    def callbacks(self, native: _Native) -> tuple[object, object, object]:
        """The new-session, get-session and info callbacks; built once, kept alive here."""
        if self._callbacks is None:
            self._native = native
            # Bound methods, no wrapper: the info callback runs ~18 times per handshake.
            self._callbacks = (
                _NewCallback(self._on_new),
                _GetCallback(self._on_get),
                _InfoCallback(self._on_info),
            )
        return self._callbacks

    def _failure(self, what: str) -> None:
        if not self._failed:
            self._failed = True
            log.exception("shared session cache: %s failed; continuing without it", what)

    def _on_new(self, ssl_ptr: int, sess: int) -> int:
        try:
            native = self._native
            assert native is not None
            if native.ssl_version(ssl_ptr) == _TLS1_3_VERSION:
                return 0  # TLS 1.3 resumes with tickets only
            session_id = native.session_id(sess)
            if not session_id:
                return 0
            size = native.i2d(sess, None)
            if size <= 0 or size > MAX_SESSION:
                if size > MAX_SESSION:
                    self.too_big += 1
                return 0
            buffer = ctypes.create_string_buffer(size)
            cursor = ctypes.c_void_p(ctypes.addressof(buffer))
            if native.i2d(sess, ctypes.byref(cursor)) != size:
                return 0
            expires = native.get_time(sess) + native.get_timeout(sess)
            self.put(session_id, buffer.raw, float(expires))
        except BaseException:  # nothing may propagate into OpenSSL
            self._failure("storing a session")
        return 0  # we keep no reference to the SSL_SESSION: OpenSSL drops the one it gave us

    def _on_get(self, ssl_ptr: int, data: int, length: int, copy: int) -> int | None:
        try:
            native = self._native
            assert native is not None
            if not 0 < length <= _MAX_ID:
                return None
            der = self.get(ctypes.string_at(data, length))
            if der is None:
                return None
            buffer = ctypes.create_string_buffer(der, len(der))
            cursor = ctypes.c_void_p(ctypes.addressof(buffer))
            sess: int | None = native.d2i(None, ctypes.byref(cursor), len(der))
            if not sess:
                return None
            ctypes.c_int.from_address(copy).value = 0  # OpenSSL owns the new SSL_SESSION
            return sess
        except BaseException:
            self._failure("looking a session up")
            return None

    def _on_info(self, ssl_ptr: int, where: int, ret: int) -> None:
        if not (where & _SSL_CB_ALERT and ret >> 8 == _SSL3_AL_FATAL):
            return  # handshake progress, or a warning (close_notify): nothing to do
        try:
            native = self._native
            assert native is not None
            sess = native.get_session(ssl_ptr)
            session_id = native.session_id(sess) if sess else b""
            if session_id:
                self.remove(session_id)
        except BaseException:
            self._failure("dropping a session after a fatal alert")


# int new_session_cb(SSL *, SSL_SESSION *)
_NewCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
# SSL_SESSION *get_session_cb(SSL *, const unsigned char *id, int len, int *copy)
_GetCallback = ctypes.CFUNCTYPE(
    ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
)
# void info_callback(const SSL *, int where, int ret)
_InfoCallback = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int, ctypes.c_int)


class _Native:
    """The OpenSSL functions used here, with their prototypes."""

    def __init__(self, lib: libssl.LibSSL) -> None:
        s = lib.ssl
        self.ctrl = s.SSL_CTX_ctrl
        self.set_new_cb = s.SSL_CTX_sess_set_new_cb
        self.set_new_cb.restype = None
        self.set_new_cb.argtypes = [ctypes.c_void_p, _NewCallback]
        self.set_get_cb = s.SSL_CTX_sess_set_get_cb
        self.set_get_cb.restype = None
        self.set_get_cb.argtypes = [ctypes.c_void_p, _GetCallback]
        self.set_info_cb = s.SSL_CTX_set_info_callback
        self.set_info_cb.restype = None
        self.set_info_cb.argtypes = [ctypes.c_void_p, _InfoCallback]
        self.get_session = s.SSL_get_session
        self.get_session.restype = ctypes.c_void_p
        self.get_session.argtypes = [ctypes.c_void_p]
        self.ssl_version = s.SSL_version
        self.ssl_version.restype = ctypes.c_int
        self.ssl_version.argtypes = [ctypes.c_void_p]
        self.i2d = s.i2d_SSL_SESSION
        self.i2d.restype = ctypes.c_int
        self.i2d.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        self.d2i = s.d2i_SSL_SESSION
        self.d2i.restype = ctypes.c_void_p
        self.d2i.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
        self._get_id = s.SSL_SESSION_get_id
        self._get_id.restype = ctypes.c_void_p
        self._get_id.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint)]
        self.get_time = s.SSL_SESSION_get_time
        self.get_time.restype = ctypes.c_long
        self.get_time.argtypes = [ctypes.c_void_p]
        self.get_timeout = s.SSL_SESSION_get_timeout
        self.get_timeout.restype = ctypes.c_long
        self.get_timeout.argtypes = [ctypes.c_void_p]

    def session_id(self, sess: int) -> bytes:
        length = ctypes.c_uint(0)
        pointer = self._get_id(sess, ctypes.byref(length))
        if not pointer or not 0 < length.value <= _MAX_ID:
            return b""
        return ctypes.string_at(pointer, length.value)


_native_cache: list[_Native | None] = []


def _native() -> _Native | None:
    if not _native_cache:
        lib = libssl.libssl()
        native: _Native | None = None
        if lib is not None:
            try:
                native = _Native(lib)
            except AttributeError:
                native = None
        _native_cache.append(native)
    return _native_cache[0]


# Contexts -> their cache, so the callbacks outlive no context that calls them.
_installed: weakref.WeakKeyDictionary[ssl.SSLContext, SessionCache] = weakref.WeakKeyDictionary()
_warned = False


def callback_addresses(ctx: ssl.SSLContext) -> tuple[int, int] | None:
    """The addresses of the new-session and info callbacks :func:`install` set on ``ctx``
    (alive while ``ctx`` is), for a compiled filter to call (:mod:`tlsgate.proxy.socket_tls`);
    None when it set none."""
    cache = _installed.get(ctx)
    if cache is None or cache._callbacks is None:
        return None
    new, _, info = cache._callbacks
    return (
        ctypes.cast(new, ctypes.c_void_p).value or 0,  # type: ignore[arg-type]
        ctypes.cast(info, ctypes.c_void_p).value or 0,  # type: ignore[arg-type]
    )


def install(ctx: ssl.SSLContext, cache: SessionCache) -> bool:
    """Make ``ctx`` keep its TLS 1.2 sessions in ``cache`` instead of in this process.

    Returns False (after one warning per process) when OpenSSL cannot be reached through ctypes:
    the context keeps OpenSSL's per-process cache, which resumes by ID only on the worker that
    made the session.
    """
    global _warned
    native = _native()
    if native is None:
        if not _warned:
            _warned = True
            log.warning(
                "session cache: cannot reach OpenSSL's session callbacks from this interpreter; "
                "with several workers, TLS 1.2 clients without tickets resume only on the worker "
                "that made their session"
            )
        return False
    pointer = libssl.ssl_ctx_pointer(ctx)
    new, get, info = cache.callbacks(native)
    native.set_new_cb(pointer, new)
    native.set_get_cb(pointer, get)
    native.set_info_cb(pointer, info)
    mode = _SSL_SESS_CACHE_SERVER | _SSL_SESS_CACHE_NO_INTERNAL
    native.ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)
    _installed[ctx] = cache
    return True
