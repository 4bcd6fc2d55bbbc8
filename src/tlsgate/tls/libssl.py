"""The few OpenSSL features Python's ``ssl`` does not expose, reached through ctypes.

Python's ``ssl`` has no API for session-ticket key callbacks (needed to rotate TLS 1.3 ticket keys
on a schedule and share them across workers), for OCSP stapling (serving a response, or asking
for and reading one as a client), for the key-exchange group a handshake used, or for choosing
the groups a client offers. All are plain OpenSSL calls on the ``SSL_CTX`` that an
``ssl.SSLContext`` wraps (or the ``SSL`` inside an ``SSLObject``), so this module finds those
pointers and the very ``libssl``/``libcrypto`` the interpreter's ``_ssl`` module is linked against
(``dlopen`` of the same soname returns the already-loaded copy, never a second OpenSSL).

Finding the pointer relies on CPython's layout of ``PySSLContext`` (``PyObject_HEAD`` then
``SSL_CTX *ctx``), stable since Python 3.x began. It is checked before use: the options and
verify mode OpenSSL reports for the candidate pointer must equal what ``ssl`` reports for the
context. When anything does not match (another interpreter, another OpenSSL, a debug build),
:func:`available` is false and callers fall back to what plain ``ssl`` does; nothing is guessed.
"""

from __future__ import annotations

import ctypes
import ssl
import sys
from functools import cache

__all__ = [
    "LibSSL",
    "available",
    "libssl",
    "negotiated_group",
    "request_ocsp",
    "set_groups",
    "ssl_ctx_pointer",
    "ssl_pointer",
    "stapled_ocsp",
]


class LibSSL:
    """Handles on the interpreter's libssl and libcrypto, with the prototypes used here."""

    def __init__(self, ssl_lib: ctypes.CDLL, crypto_lib: ctypes.CDLL) -> None:
        self.ssl = ssl_lib
        self.crypto = crypto_lib
        self.ssl.SSL_CTX_get_options.restype = ctypes.c_uint64
        self.ssl.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
        self.ssl.SSL_CTX_get_verify_mode.restype = ctypes.c_int
        self.ssl.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
        self.ssl.SSL_CTX_ctrl.restype = ctypes.c_long
        self.ssl.SSL_CTX_ctrl.argtypes = [
            ctypes.c_void_p,
            ctypes.c_int,
            ctypes.c_long,
            ctypes.c_void_p,
        ]
        self.ssl.SSL_CTX_callback_ctrl.restype = ctypes.c_long
        self.ssl.SSL_CTX_callback_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        self.ssl.SSL_ctrl.restype = ctypes.c_long
        self.ssl.SSL_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.ssl.SSL_get_SSL_CTX.restype = ctypes.c_void_p
        self.ssl.SSL_get_SSL_CTX.argtypes = [ctypes.c_void_p]
        self.crypto.OBJ_nid2sn.restype = ctypes.c_char_p
        self.crypto.OBJ_nid2sn.argtypes = [ctypes.c_int]
        self.ssl.SSL_CTX_set_session_id_context.restype = ctypes.c_int
        self.ssl.SSL_CTX_set_session_id_context.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]


def _load() -> LibSSL | None:
    if sys.implementation.name != "cpython" or hasattr(sys, "getobjects"):
        return None  # PyPy, or a Py_TRACE_REFS build whose object header is larger
    version = ssl.OPENSSL_VERSION_INFO
    if version < (3, 0):
        return None
    soname = f"{version[0]}"
    try:
        ssl_lib = ctypes.CDLL(f"libssl.so.{soname}")
        crypto_lib = ctypes.CDLL(f"libcrypto.so.{soname}")
    except OSError:
        return None
    try:
        crypto_lib.OpenSSL_version_num.restype = ctypes.c_ulong
        loaded = crypto_lib.OpenSSL_version_num()
    except AttributeError:
        return None
    if loaded != ssl.OPENSSL_VERSION_NUMBER:
        return None  # some other OpenSSL than the one _ssl uses
    try:
        return LibSSL(ssl_lib, crypto_lib)
    except AttributeError:
        return None


@cache
def libssl() -> LibSSL | None:
    """The interpreter's OpenSSL, or None when it cannot be reached safely."""
    lib = _load()
    if lib is None:
        return None
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.options |= ssl.OP_NO_TICKET  # an option pattern unlikely to be read by accident
    if _checked_pointer(lib, probe) is None:
        return None
    return lib


def available() -> bool:
    return libssl() is not None


#: What ``_ssl`` sets for each verify mode: SSL_VERIFY_PEER (1), | FAIL_IF_NO_PEER_CERT (2).
_VERIFY_FLAGS = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


def _checked_pointer(lib: LibSSL, ctx: ssl.SSLContext) -> int | None:
    candidate = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    if not candidate:
        return None
    if lib.ssl.SSL_CTX_get_options(candidate) != int(ctx.options):
        return None
    if lib.ssl.SSL_CTX_get_verify_mode(candidate) != _VERIFY_FLAGS[ctx.verify_mode]:
        return None
    return candidate


def ssl_ctx_pointer(ctx: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` inside ``ctx``; raises ``RuntimeError`` when it cannot be found safely.

    The caller must keep ``ctx`` alive for as long as it uses the pointer.
    """
    lib = libssl()
    if lib is None:
        raise RuntimeError("OpenSSL is not reachable through ctypes in this interpreter")
    pointer = _checked_pointer(lib, ctx)
    if pointer is None:
        raise RuntimeError("could not locate the SSL_CTX of this SSLContext")
    return pointer


#: SSL_MAX_SID_CTX_LENGTH in ssl.h.
MAX_SID_CTX = 32


def set_session_id_context(ctx: ssl.SSLContext, value: bytes) -> None:
    """Give ``ctx`` its own session id context: a session (or ticket) made under another value
    is not resumed here but gets a full handshake. Python sets the same "Python" for every
    context, which would let a session from a site without client certificates resume on one
    that requires them (TLS 1.3 resumption sends no CertificateRequest)."""
    if not 0 < len(value) <= MAX_SID_CTX:
        raise ValueError(f"a session id context is 1-{MAX_SID_CTX} bytes")
    lib = libssl()
    if lib is None:
        raise RuntimeError("OpenSSL is not reachable through ctypes in this interpreter")
    if lib.ssl.SSL_CTX_set_session_id_context(ssl_ctx_pointer(ctx), value, len(value)) != 1:
        raise RuntimeError("SSL_CTX_set_session_id_context failed")


# Control codes from ssl.h / tls1.h (stable ABI since OpenSSL 1.0.2 / 3.0).
_SET_TLSEXT_STATUS_REQ_TYPE = 65
_GET_TLSEXT_STATUS_REQ_OCSP_RESP = 70
_SET_GROUPS_LIST = 92
_GET_NEGOTIATED_GROUP = 134
_STATUSTYPE_OCSP = 1

#: OpenSSL short names -> the names people know from browsers and RFC 8446.
_GROUP_NAMES = {
    "prime256v1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "X25519": "X25519",
    "X448": "X448",
}


def ssl_pointer(obj: ssl.SSLObject) -> int | None:
    """The ``SSL *`` inside an ``SSLObject``, or None when it cannot be found safely.

    CPython's ``PySSLSocket`` is ``PyObject_HEAD``, a weak reference to the socket, then ``SSL *``.
    The candidate is accepted only if OpenSSL says it belongs to the object's own ``SSL_CTX``.
    """
    lib = libssl()
    inner = getattr(obj, "_sslobj", None)
    if lib is None or inner is None:
        return None
    try:
        ctx = ssl_ctx_pointer(obj.context)
    except RuntimeError:
        return None
    offset = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)
    candidate = ctypes.c_void_p.from_address(id(inner) + offset).value
    if not candidate or lib.ssl.SSL_get_SSL_CTX(candidate) != ctx:
        return None
    return candidate


def set_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """Offer exactly these key-exchange groups (``"X25519:P-256:P-384"``); False if unreachable."""
    lib = libssl()
    if lib is None:
        return False
    try:
        pointer = ssl_ctx_pointer(ctx)
    except RuntimeError:
        return False
    return bool(lib.ssl.SSL_CTX_ctrl(pointer, _SET_GROUPS_LIST, 0, groups.encode()) == 1)


def request_ocsp(obj: ssl.SSLObject) -> bool:
    """Ask the server to staple an OCSP response (status_request); call before the handshake."""
    lib = libssl()
    pointer = ssl_pointer(obj)
    if lib is None or pointer is None:
        return False
    return bool(lib.ssl.SSL_ctrl(pointer, _SET_TLSEXT_STATUS_REQ_TYPE, _STATUSTYPE_OCSP, None) == 1)


def stapled_ocsp(obj: ssl.SSLObject) -> bytes | None:
    """The DER OCSP response the server stapled, if it sent one."""
    lib = libssl()
    pointer = ssl_pointer(obj)
    if lib is None or pointer is None:
        return None
    data = ctypes.c_void_p()
    length = lib.ssl.SSL_ctrl(pointer, _GET_TLSEXT_STATUS_REQ_OCSP_RESP, 0, ctypes.byref(data))
    if length <= 0 or not data.value:
        return None
    return ctypes.string_at(data.value, length)


def negotiated_group(obj: ssl.SSLObject) -> str | None:
    """The key-exchange group of a finished handshake (``X25519``, ``P-256``), if any."""
    lib = libssl()
    pointer = ssl_pointer(obj)
    if lib is None or pointer is None:
        return None
    nid = lib.ssl.SSL_ctrl(pointer, _GET_NEGOTIATED_GROUP, 0, None)
    if nid <= 0:
        return None
    name = lib.crypto.OBJ_nid2sn(int(nid))
    if not name:
        return None
    text: str = name.decode()
    return _GROUP_NAMES.get(text, text)
