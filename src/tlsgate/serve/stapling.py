"""Hand OCSP responses to OpenSSL during handshakes: the status callback, through ctypes.

``SSL_CTX_set_tlsext_status_cb`` and friends are macros; the calls and constants below are what
they expand to in OpenSSL 3.0 (``ssl.h``, ``tls1.h``). One callback function serves every
context; the context's status argument is a small integer that names the site. OpenSSL calls it
on the context the handshake ended up on (after an SNI switch, the site's), so it is installed on
every site context. The callback copies the DER into memory from ``CRYPTO_malloc`` (OpenSSL frees
it with the connection) and never raises into C: any error means "nothing stapled".
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import ssl
import time
from collections.abc import Callable
from datetime import UTC, datetime

from cryptography import x509

from tlsgate.pki.ocsp import ocsp_target
from tlsgate.serve.ocsp import OcspCache
from tlsgate.tls.libssl import LibSSL, libssl, ssl_ctx_pointer

__all__ = ["SiteStapling", "Stapler"]

log = logging.getLogger("tlsgate.ocsp")

SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB = 63
SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG = 64
SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP = 71
SSL_TLSEXT_ERR_OK = 0
SSL_TLSEXT_ERR_NOACK = 3

_STATUS_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)

#: Callback objects and the contexts they are installed on live as long as the process:
#: OpenSSL keeps calling the function pointer, and a freed thunk would crash the handshake.
_KEEP_ALIVE: list[object] = []


class Stapler:
    """Per-site DER responses, stapled by OpenSSL when a client asks (``status_request``)."""

    def __init__(self, lib: LibSSL) -> None:
        self._lib = lib
        self._malloc = lib.crypto.CRYPTO_malloc
        self._malloc.restype = ctypes.c_void_p
        self._malloc.argtypes = [ctypes.c_size_t, ctypes.c_char_p, ctypes.c_int]
        self._keys: dict[str, int] = {}
        #: key -> (DER, expiry as a Unix time): the callback re-checks expiry itself, so a worker
        #: that is never told about a newer response still stops stapling the old one in time.
        self._staples: dict[int, tuple[bytes, float]] = {}
        self._callback = _STATUS_CB(self._on_status)
        _KEEP_ALIVE.append(self._callback)

    def install(self, name: str, ctx: ssl.SSLContext) -> None:
        """Staple ``name``'s responses on handshakes that use ``ctx``."""
        if name in self._keys:
            return
        key = len(self._keys) + 1  # 0 would read back as NULL
        pointer = ssl_ctx_pointer(ctx)
        self._lib.ssl.SSL_CTX_callback_ctrl(
            pointer,
            SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB,
            ctypes.cast(self._callback, ctypes.c_void_p),
        )
        self._lib.ssl.SSL_CTX_ctrl(pointer, SSL_CTRL_SET_TLSEXT_STATUS_REQ_CB_ARG, 0, key)
        _KEEP_ALIVE.append(ctx)
        self._keys[name] = key

    def set(self, name: str, der: bytes | None, expires: float = 0.0) -> None:
        """Staple ``der`` for ``name`` until the Unix time ``expires``; None: staple nothing."""
        key = self._keys.get(name)
        if key is None:
            return
        if der is None:
            self._staples.pop(key, None)
        else:
            self._staples[key] = (der, expires)

    def names(self) -> list[str]:
        return list(self._keys)

    def stapled(self, name: str) -> bytes | None:
        key = self._keys.get(name)
        entry = self._staples.get(key) if key is not None else None
        if entry is None or time.time() >= entry[1]:
            return None
        return entry[0]

    def _on_status(self, ssl_pointer: int | None, arg: int | None) -> int:
        try:
            entry = self._staples.get(arg or 0)
            if entry is None or not ssl_pointer:
                return SSL_TLSEXT_ERR_NOACK
            der, expires = entry
            if time.time() >= expires:
                return SSL_TLSEXT_ERR_NOACK
            buffer = self._malloc(len(der), b"tlsgate/stapling.py", 0)
            if not buffer:
                return SSL_TLSEXT_ERR_NOACK
            ctypes.memmove(buffer, der, len(der))
            # OpenSSL owns the buffer from here on and frees it with the connection.
            self._lib.ssl.SSL_ctrl(
                ssl_pointer, SSL_CTRL_SET_TLSEXT_STATUS_REQ_OCSP_RESP, len(der), buffer
            )
            return SSL_TLSEXT_ERR_OK
        except BaseException:  # nothing may propagate into OpenSSL's handshake
            return SSL_TLSEXT_ERR_NOACK


class SiteStapling:
    """The sites' contexts, their OCSP responses, and the master's refresh loop, together.

    The master calls :meth:`start` before forking (cached responses, then a first fetch), runs
    :meth:`run` and tells the workers (SIGHUP) when a response changed; a worker's
    :meth:`reload` takes the responses the master wrote to disk.
    """

    def __init__(self, cache: OcspCache) -> None:
        self.cache = cache
        lib = libssl()
        self.stapler = Stapler(lib) if lib is not None else None
        self._warned = False
        self._wake: asyncio.Event | None = None

    def site(self, name: str, ctx: ssl.SSLContext, fullchain_pem: bytes, enabled: bool) -> None:
        """Follow the site's current certificate (at start and after every swap)."""
        chain = x509.load_pem_x509_certificates(fullchain_pem) if enabled else None
        if self.stapler is None:
            if chain is not None and ocsp_target(chain) is not None and not self._warned:
                self._warned = True
                log.warning(
                    "OCSP stapling is off: this Python's OpenSSL cannot be reached through ctypes"
                )
            return
        if self.cache.configure(name, chain):
            self.stapler.install(name, ctx)
        self._publish(datetime.now(UTC))
        if self._wake is not None:
            self._wake.set()

    def _publish(self, now: datetime) -> None:
        if self.stapler is None:
            return
        for name in self.stapler.names():
            response = self.cache.current(name, now)
            if response is None:
                self.stapler.set(name, None)
            else:
                self.stapler.set(name, response.der, response.expires.timestamp())

    def start(self, now: datetime) -> None:
        self.cache.load_cached(now)
        self.cache.refresh_blocking(now)
        self._publish(datetime.now(UTC))

    def reload(self, now: datetime) -> None:
        self.cache.load_cached(now)
        self._publish(now)

    def retry_now(self) -> None:
        """Master on SIGHUP: retry failed fetches now instead of after the backoff."""
        self.cache.retry_failed()
        if self._wake is not None:
            self._wake.set()

    async def run(self, notify: Callable[[], None]) -> None:
        """Master: refresh each response when due; ``notify`` after any change."""
        self._wake = asyncio.Event()
        while True:
            now = datetime.now(UTC)
            delay = (self.cache.next_due(now) - now).total_seconds()
            if delay > 0:
                # Short steps against the wall clock, as the renewal loop does.
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), min(30.0, delay))
                except TimeoutError:
                    pass
                continue
            if await self.cache.refresh(now):
                self._publish(datetime.now(UTC))
                notify()
