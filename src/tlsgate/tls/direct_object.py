"""The ``SSLObject`` every server connection is wrapped in: its hot methods are OpenSSL's own.

uvloop's (and asyncio's) TLS transport calls ``read``, ``write`` and ``pending`` of the object
``SSLContext.wrap_bio`` makes once per record or more. On ``ssl.SSLObject`` each of those is a
Python method whose whole body is the same call on the C ``_ssl._SSLSocket`` it wraps; measured
under keep-alive load, running those frames cost about 9 % of a worker's CPU. Binding the C
methods on the instance gives the transport the same calls with the same arguments and results,
without a Python frame per record. Everything else (the handshake, ``getpeercert``, the SNI
callback's ``context`` switch) stays ``ssl.SSLObject``'s.
"""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["DirectSSLObject"]


class DirectSSLObject(ssl.SSLObject):
    """``ssl.SSLObject`` with ``read``, ``write`` and ``pending`` bound to the C object."""

    @classmethod
    def _create(cls, *args: Any, **kwargs: Any) -> DirectSSLObject:
        obj: DirectSSLObject = super()._create(*args, **kwargs)  # type: ignore[misc]
        inner = obj._sslobj  # type: ignore[attr-defined]
        # The same signatures as SSLObject's wrappers: read(len, buffer=None), write(data),
        # pending(); instance attributes win over the class's methods.
        obj.read = inner.read  # type: ignore[method-assign]
        obj.write = inner.write  # type: ignore[method-assign]
        obj.pending = inner.pending  # type: ignore[method-assign]
        return obj
