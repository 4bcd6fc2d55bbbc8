"""The only part of ``tlsgate check`` that touches the network: one TLS handshake, observed.

A check must see *bad* certificates (expired, self-signed, for another host) to explain them, so
the handshake here records what the server presents instead of refusing it; the trust decision is
made afterwards by :func:`tlsgate.pki.chain.verify_chain` against the same roots, and nothing but
the handshake ever crosses these connections: :func:`observe` closes the connection and returns
plain data (:class:`Observation`), never a socket that could carry a request. Anything sent to a
server after a check (the ``--http`` HSTS request) goes over a separate, fully verifying context.

The handshake is driven over memory BIOs so each failure is told apart precisely: no TCP connect,
a reset in the middle, silence until the deadline, plain HTTP on a TLS port, or a TLS alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from tlsgate.inspect.records import CERTIFICATE_REQUEST, handshake_types
from tlsgate.inspect.report import Code, Offer
from tlsgate.tls import libssl

__all__ = ["Observation", "ProbeFailed", "legacy_context", "modern_context", "observe"]

#: TLS 1.2 suites a current browser offers (Chrome's list minus 3DES), strongest first. The
#: server's choice is reported; the verdict does not depend on it.
BROWSER_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA",
        "AES256-SHA",
    ]
)
BROWSER_GROUPS = ("X25519", "P-256", "P-384")
ALPN = ("h2", "http/1.1")
#: With TLS 1.3 a server refuses a missing client certificate only after the client's Finished;
#: wait this long for that alert (normal servers answer at once with session tickets).
POST_HANDSHAKE_WAIT = 1.0


class ProbeFailed(Exception):
    """The handshake did not complete; ``code`` and ``message`` say why, for a person."""

    def __init__(self, code: Code, message: str, *, alert: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.alert = alert  # OpenSSL's reason (e.g. TLSV1_ALERT_PROTOCOL_VERSION), if any


@dataclass(frozen=True)
class Observation:
    address: str
    version: str
    cipher: str
    group: str | None
    alpn: str | None
    chain: tuple[x509.Certificate, ...]
    ocsp: bytes | None  # stapled OCSP response (DER)
    seconds: float


def modern_context(client_cert: str | None = None, client_key: str | None = None) -> ssl.SSLContext:
    """What a current browser offers: TLS 1.2 and 1.3, AEAD-first suites, X25519/P-256/P-384."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(BROWSER_CIPHERS)
    libssl.set_groups(ctx, ":".join(BROWSER_GROUPS))
    _observe_only(ctx)
    ctx.set_alpn_protocols(list(ALPN))
    if client_cert is not None:
        ctx.load_cert_chain(client_cert, client_key)
    return ctx


def legacy_context() -> ssl.SSLContext:
    """Anything OpenSSL can still speak, to tell "TLS 1.0 only" from "not a TLS server at all"."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # naming TLSv1 is the point here
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    _observe_only(ctx)
    return ctx


def _observe_only(ctx: ssl.SSLContext) -> None:
    # Recording, not trusting: see the module docstring. The verdict is verify_chain's.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE


def describe_offer(ctx: ssl.SSLContext, servername: str | None) -> Offer:
    versions = tuple(
        v.name.replace("v", " ").replace("_", ".")
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)
        if ctx.minimum_version <= v
    )
    ciphers = tuple(str(c["name"]) for c in ctx.get_ciphers())
    return Offer(versions, ciphers, BROWSER_GROUPS, servername, ALPN)


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _looks_like_tls(first: bytes) -> bool:
    """A TLS record starts with content type 21/22 and major version 3."""
    return len(first) < 2 or (first[0] in (0x15, 0x16) and first[1] == 0x03)


def _printable(data: bytes) -> str:
    line = data[:60].replace(b"\r", b"\n").split(b"\n")[0]
    text = "".join(c if c.isprintable() else "." for c in line.decode("latin-1"))
    return text or data[:16].hex(" ")


def _tls_error(exc: ssl.SSLError, received: bytes) -> ProbeFailed:
    reason = getattr(exc, "reason", None) or ""
    text = exc.strerror or str(exc)
    upper = reason.upper()
    asked = CERTIFICATE_REQUEST in handshake_types(received)
    if (
        "CERTIFICATE_REQUIRED" in upper
        or ("ALERT" in upper and ("BAD_CERTIFICATE" in upper or "UNKNOWN_CA" in upper))
        or (asked and "HANDSHAKE_FAILURE" in upper)
    ):
        return ProbeFailed(
            Code.CLIENT_CERT_REQUIRED,
            "the server requires a client certificate (mutual TLS) and refused the handshake "
            "without an acceptable one: pass --client-cert and --client-key",
            alert=reason,
        )
    if "WRONG_VERSION_NUMBER" in upper or "PACKET_LENGTH_TOO_LONG" in upper:
        return ProbeFailed(
            Code.NOT_TLS, "the server answered with something that is not TLS", alert=reason
        )
    return ProbeFailed(
        Code.HANDSHAKE_FAILED, f"the TLS handshake failed: {reason or text}", alert=reason
    )


def _peer_chain(obj: ssl.SSLObject) -> tuple[x509.Certificate, ...]:
    """The chain exactly as the server sent it (``get_unverified_chain``: private before 3.13)."""
    inner: Any = getattr(obj, "_sslobj", None)
    getter = getattr(inner, "get_unverified_chain", None)
    if getter is not None:
        raw = getter() or []
        return tuple(
            x509.load_der_x509_certificate(c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
            for c in raw
        )
    der = obj.getpeercert(binary_form=True)
    return (x509.load_der_x509_certificate(der),) if der else ()


async def observe(
    host: str,
    port: int,
    servername: str | None,
    ctx: ssl.SSLContext,
    timeout: float,
) -> Observation:
    """Connect, handshake, record, close. Raises :class:`ProbeFailed` with the precise reason."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    shown = _hostport(host, port)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        raise ProbeFailed(
            Code.TIMEOUT,
            f"no TCP connection to {shown} within {timeout:g} s (a firewall dropping packets, "
            "or the host is down)",
        ) from None
    except socket.gaierror as exc:
        raise ProbeFailed(Code.UNREACHABLE, f"cannot resolve {host}: {exc.strerror}") from None
    except ConnectionRefusedError:
        raise ProbeFailed(
            Code.UNREACHABLE, f"connection refused: nothing listens on {shown}"
        ) from None
    except OSError as exc:
        raise ProbeFailed(
            Code.UNREACHABLE, f"cannot connect to {shown}: {exc.strerror or exc}"
        ) from None
    peer = writer.get_extra_info("peername")
    address = _hostport(peer[0], peer[1]) if peer else shown
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=servername)
    libssl.request_ocsp(obj)
    received = 0
    transcript = bytearray()  # the server's first bytes, for records.handshake_types

    async def pump() -> bool:
        """Send what OpenSSL wrote, read one chunk into it; False at EOF."""
        nonlocal received
        data = outgoing.read()
        if data:
            writer.write(data)
            await writer.drain()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError
        chunk = await asyncio.wait_for(reader.read(65536), remaining)
        if not chunk:
            incoming.write_eof()
            return False
        if received == 0 and not _looks_like_tls(chunk):
            raise ProbeFailed(
                Code.NOT_TLS,
                f"the server does not speak TLS on {shown}: it answered {_printable(chunk)!r}"
                + (" (plain HTTP)" if chunk.startswith(b"HTTP/") else ""),
            )
        received += len(chunk)
        if len(transcript) < 65536:
            transcript.extend(chunk)
        incoming.write(chunk)
        return True

    try:
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            if not await pump() and received == 0:
                raise ProbeFailed(
                    Code.RESET,
                    "the server closed the connection without answering the ClientHello "
                    "(a TLS server that has no certificate for this name, or not a TLS port)",
                )
        chain = _peer_chain(obj)
        version = obj.version() or "unknown"
        cipher = (obj.cipher() or ("unknown", "", 0))[0]
        if version == "TLSv1.3":
            await _after_handshake(obj, outgoing, writer, reader, incoming, deadline)
        return Observation(
            address=address,
            version=version,
            cipher=cipher,
            group=libssl.negotiated_group(obj),
            alpn=obj.selected_alpn_protocol(),
            chain=chain,
            ocsp=libssl.stapled_ocsp(obj),
            seconds=loop.time() - started,
        )
    except TimeoutError:
        what = "no answer to the ClientHello" if received == 0 else "the handshake stalled"
        raise ProbeFailed(Code.TIMEOUT, f"{what} from {shown} within {timeout:g} s") from None
    except (ConnectionResetError, BrokenPipeError):
        raise ProbeFailed(
            Code.RESET, f"{shown} reset the connection during the TLS handshake"
        ) from None
    except ssl.SSLEOFError:
        raise ProbeFailed(
            Code.RESET, f"{shown} closed the connection in the middle of the TLS handshake"
        ) from None
    except ssl.SSLError as exc:
        raise _tls_error(exc, bytes(transcript)) from None
    except OSError as exc:
        raise ProbeFailed(
            Code.RESET, f"the connection to {shown} failed: {exc.strerror or exc}"
        ) from None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def _after_handshake(
    obj: ssl.SSLObject,
    outgoing: ssl.MemoryBIO,
    writer: asyncio.StreamWriter,
    reader: asyncio.StreamReader,
    incoming: ssl.MemoryBIO,
    deadline: float,
) -> None:
    """Send our Finished and read the server's first records: tickets, or a refusal alert."""
    loop = asyncio.get_running_loop()
    data = outgoing.read()
    if data:
        writer.write(data)
        await writer.drain()
    wait = min(POST_HANDSHAKE_WAIT, deadline - loop.time())
    if wait <= 0:
        return
    try:
        chunk = await asyncio.wait_for(reader.read(65536), wait)
    except TimeoutError:
        return  # a server that sends no tickets: nothing to learn, nothing wrong
    if not chunk:
        return
    incoming.write(chunk)
    try:
        obj.read(1)
    except (ssl.SSLWantReadError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
        return
