"""Client TLS contexts that present a renewed identity and verify the server, always.

What a context built here checks, on every connection made with it (sockets, asyncio, uvloop,
httpx alike): TLS 1.2 or 1.3; the server's chain against the trust (the internal CA's root by
default, or a PEM bundle); and the server's identity, which is one of

* a **DNS name** (or IP address): OpenSSL's hostname check against the name the connection is
  made for (``server_hostname``), as every HTTPS client does;
* a **SPIFFE ID**: the server's certificate must carry exactly that URI name. A workload's
  X.509-SVID need not name any host, so the hostname check is done on the SPIFFE ID instead:
  the context's own handshake (:class:`_CheckedObject`, :class:`_CheckedSocket`) refuses the
  server right after the TLS handshake, before a single byte is sent. It is never switched off:
  there is no way to build a context here that checks neither.

The client's certificate comes from :mod:`tlsgate.client.identity`; :class:`ReloadingIdentity`
loads each renewed one into the *same* context (as ``serve`` does for its sites), so anything
holding the context (an httpx transport, a connection pool) presents the new certificate on its
next connection without being rebuilt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from cryptography import x509

from tlsgate.ca import CertificateAuthority, passphrase_from_env
from tlsgate.client.identity import (
    CLIENT_ISSUER,
    DEFAULT_LIFETIME,
    ClientCertificate,
    canonical_identity,
    check_lifetime,
    client_renewer,
    current_certificate,
    managed_name,
)
from tlsgate.errors import ConfigError, NotInitialized, TlsgateError
from tlsgate.pki.names import parse_spiffe_id
from tlsgate.pki.pem import certificate_pem
from tlsgate.store import open_store
from tlsgate.store.base import Store
from tlsgate.store.roles import CAStore
from tlsgate.tls.context import load_chain_into

__all__ = [
    "ClientContext",
    "ReloadingIdentity",
    "ServerIdentityError",
    "check_server_spiffe",
    "new_client_context",
    "peer_spiffe_ids",
    "ssl_context",
]

log = logging.getLogger("tlsgate.client")

#: How often :meth:`ReloadingIdentity.refresh` reads the store for a certificate another
#: process renewed (its own renewals are seen at once).
POLL_SECONDS = 5.0


class ServerIdentityError(TlsgateError, ssl.SSLCertVerificationError):
    """The server's certificate verified, but names another workload than the one expected.

    An ``ssl.SSLCertVerificationError`` too, so asyncio, uvloop and httpx report it as the
    certificate failure it is.
    """

    def __init__(self, message: str) -> None:
        super().__init__(1, message)  # (errno, strerror): str() is the message
        self.verify_message = message
        self.verify_code = 0


def peer_spiffe_ids(der: bytes) -> list[str]:
    """The SPIFFE IDs (URI names starting ``spiffe://``) of a DER certificate."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [u for u in san.get_values_for_type(x509.UniformResourceIdentifier)]


def check_server_spiffe(der: bytes | None, expected: str) -> None:
    """Raise :class:`ServerIdentityError` unless the certificate is an SVID for ``expected``.

    The SPIFFE X.509-SVID rule is exactly one URI name; a certificate with several is refused
    even if one of them matches, since a validator elsewhere might pick another.
    """
    if der is None:
        raise ServerIdentityError(f"the server presented no certificate (expected {expected})")
    uris = peer_spiffe_ids(der)
    if not uris:
        raise ServerIdentityError(
            f"the server's certificate has no SPIFFE ID (expected {expected})"
        )
    if len(uris) > 1:
        raise ServerIdentityError(
            f"the server's certificate has {len(uris)} URI names, an SVID has one "
            f"(expected {expected})"
        )
    if uris[0] != expected:
        raise ServerIdentityError(
            f"the server is {uris[0]}, not {expected}: refusing to talk to it"
        )


class _CheckedObject(ssl.SSLObject):
    """What ``wrap_bio`` makes (asyncio, uvloop, httpx async): the SPIFFE check is part of the
    handshake, so no caller can skip it."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_after_handshake(self.context, self.getpeercert(binary_form=True))


class _CheckedSocket(ssl.SSLSocket):
    """What ``wrap_socket`` makes (blocking clients, httpx sync), with the same check."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        try:
            _check_after_handshake(self.context, self.getpeercert(binary_form=True))
        except ServerIdentityError:
            with contextlib.suppress(OSError):
                self.close()
            raise


def _check_after_handshake(ctx: ssl.SSLContext, der: bytes | None) -> None:
    expected = getattr(ctx, "expect_spiffe", None)
    if expected is not None:
        check_server_spiffe(der, expected)


class ClientContext(ssl.SSLContext):
    """An ``SSLContext`` that also knows which SPIFFE ID the server must have (if one)."""

    sslobject_class = _CheckedObject
    sslsocket_class = _CheckedSocket
    expect_spiffe: str | None = None


def new_client_context(
    *,
    trust_pem: bytes | None = None,
    trust_file: Path | None = None,
    expect_spiffe: str | None = None,
    alpn: Sequence[str] | None = None,
) -> ClientContext:
    """A verifying client context without a certificate yet (``load_chain_into`` adds one).

    ``trust_pem`` (PEM bytes) or ``trust_file`` (a PEM bundle) is the only trust: the system
    roots are not added, since an internal service's certificate comes from the internal CA.
    """
    if (trust_pem is None) == (trust_file is None):
        raise ConfigError("a client context trusts exactly one of: PEM bytes or a PEM file")
    ctx = ClientContext(ssl.PROTOCOL_TLS_CLIENT)  # verify_mode CERT_REQUIRED, check_hostname on
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        if trust_file is not None:
            ctx.load_verify_locations(cafile=str(trust_file))
        else:
            assert trust_pem is not None
            ctx.load_verify_locations(cadata=trust_pem.decode("ascii"))
    except FileNotFoundError:
        raise ConfigError(f"the trusted CA file {trust_file} does not exist") from None
    except (ssl.SSLError, OSError, ValueError, UnicodeDecodeError) as exc:
        where = trust_file if trust_file is not None else "the trusted CA"
        raise ConfigError(f"{where} is not a PEM certificate bundle: {exc}") from None
    if expect_spiffe is not None:
        ctx.expect_spiffe = parse_spiffe_id(expect_spiffe)
        # The SPIFFE check replaces the hostname check (an SVID need not name a host); the
        # chain is still verified (CERT_REQUIRED) and the SPIFFE ID always checked.
        ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def internal_root_pem(store: CAStore) -> bytes:
    """The internal CA's root, the trust anchor for servers with certificates from it."""
    try:
        ca = CertificateAuthority.load(store, passphrase_from_env())
    except NotInitialized:
        raise NotInitialized(
            f"no certificate authority in {store.location}: give the state directory that "
            "`tlsgate serve` or `tlsgate ca init` made (--state DIR or TLSGATE_STATE)"
        ) from None
    return certificate_pem(ca.root)


class ReloadingIdentity:
    """A client identity presented from one context that outlives its certificates.

    On creation it takes the stored certificate (or gets one from the CA) and loads it into
    :attr:`context`. Renewal is :func:`~tlsgate.client.identity.client_renewer`, driven one of
    two ways:

    * ``await identity.run()`` in an asyncio program (``tlsgate tunnel``): a new certificate is
      loaded into the context at once, on the loop's thread, where the handshakes happen;
    * :meth:`start` (synchronous programs): the loop runs in a daemon thread, and the new
      certificate is loaded by the next :meth:`refresh` in the thread that calls it (the httpx
      transports here call it before each request).

    :meth:`refresh` also picks up a certificate another process renewed in the same state.
    Loading happens under a lock, but OpenSSL does not lock a context against connections being
    set up from it in other threads at that instant: a program with several threads opening
    connections should give each thread its own identity (or use asyncio).
    """

    def __init__(
        self,
        identity: str,
        *,
        state: str | Path | None = None,
        store: Store | None = None,
        trust: Path | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        expect_spiffe: str | None = None,
        alpn: Sequence[str] | None = None,
    ) -> None:
        #: bumps with each certificate loaded: whoever pools connections can tell old from new
        self.generation = 1
        self._lock = threading.Lock()
        self._renewed: ClientCertificate | None = None
        self._next_poll = time.monotonic() + POLL_SECONDS
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread_task: asyncio.Task[None] | None = None
        self._closed = False
        self._own_store = store is None
        self.store: Store = store if store is not None else open_store(state)
        try:
            self.identity = canonical_identity(identity)
            self.lifetime = check_lifetime(lifetime)
            self.context = new_client_context(
                trust_pem=None if trust is not None else internal_root_pem(self.store),
                trust_file=trust,
                expect_spiffe=expect_spiffe,
                alpn=alpn,
            )
            self.current = current_certificate(self.store, self.identity, lifetime=self.lifetime)
            self._load(self.current)
        except BaseException:
            self.close()
            raise

    @property
    def serial(self) -> int:
        return self.current.serial

    def _load(self, cert: ClientCertificate) -> None:
        load_chain_into(self.context, cert.record.fullchain_pem, cert.record.key_pem)

    def _newer(self, cert: ClientCertificate) -> bool:
        """Issued no earlier than the loaded one (whatever its lifetime) and valid now."""
        now = datetime.now(UTC)
        issued = cert.leaf.not_valid_before_utc
        return (
            cert.serial != self.current.serial
            and cert.record.issuer == CLIENT_ISSUER
            and issued >= self.current.leaf.not_valid_before_utc
            and issued <= now < cert.not_after
        )

    def _install(self, cert: ClientCertificate) -> bool:
        with self._lock:
            if not self._newer(cert):
                return False
            try:
                self._load(cert)
            except TlsgateError as exc:  # keep presenting the current one; it still verifies
                log.error("%s: cannot load certificate %X: %s", self.identity, cert.serial, exc)
                with contextlib.suppress(TlsgateError):
                    self._load(self.current)  # a half-done load may have left the old key out
                return False
            self.current = cert
            self.generation += 1
        log.info(
            "%s: presenting certificate %X from now on (valid until %s)",
            self.identity,
            cert.serial,
            cert.not_after.strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
        return True

    def refresh(self, *, poll: bool = False) -> bool:
        """Present the newest usable certificate from now on; True if it changed.

        Cheap enough for every connection: the store is read at most every
        :data:`POLL_SECONDS` (``poll=True``: now).
        """
        with self._lock:
            candidate, self._renewed = self._renewed, None
            due = poll or time.monotonic() >= self._next_poll
            if due:
                self._next_poll = time.monotonic() + POLL_SECONDS
        if candidate is None and due:
            try:
                record = self.store.load_managed(managed_name(self.identity))
                candidate = None if record is None else ClientCertificate.of(self.identity, record)
            except TlsgateError as exc:
                log.warning("%s: cannot read the stored certificate: %s", self.identity, exc)
        return candidate is not None and self._install(candidate)

    async def run(self) -> None:
        """Renew until cancelled, loading each new certificate into the context at once."""

        def renewed(cert: ClientCertificate) -> None:
            self._install(cert)

        renewer = client_renewer(
            self.store, self.identity, lifetime=self.lifetime, on_renewed=renewed
        )
        await renewer.run()

    # -- synchronous programs: renewal in a thread ----------------------------------------------
    def start(self) -> None:
        """Renew in a daemon thread (with its own store connection) until :meth:`stop`."""
        if self._thread is not None:
            return
        started = threading.Event()

        def handoff(cert: ClientCertificate) -> None:
            with self._lock:
                self._renewed = cert

        async def main() -> None:
            store = self.store.reopen()
            try:
                renewer = client_renewer(
                    store, self.identity, lifetime=self.lifetime, on_renewed=handoff
                )
                self._thread_loop = asyncio.get_running_loop()
                self._thread_task = asyncio.current_task()
                started.set()
                await renewer.run()
            finally:
                store.close()

        def thread() -> None:
            try:
                asyncio.run(main())
            except asyncio.CancelledError:
                pass
            except Exception:  # never silently: the certificate would expire unnoticed
                log.exception("%s: the renewal thread stopped", self.identity)
            finally:
                started.set()

        self._thread = threading.Thread(target=thread, name="tlsgate-renewal", daemon=True)
        self._thread.start()
        started.wait(30)

    def stop(self) -> None:
        thread, loop, task = self._thread, self._thread_loop, self._thread_task
        self._thread = self._thread_loop = self._thread_task = None
        if thread is None:
            return
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(task.cancel)
        thread.join(30)

    def close(self) -> None:
        """Stop renewing and close the store if we opened it; the context stays usable."""
        self.stop()
        if self._own_store and not self._closed:
            self.store.close()
        self._closed = True

    def __enter__(self) -> ReloadingIdentity:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def ssl_context(
    *,
    state: str | Path | None = None,
    identity: str,
    trust: Path | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    expect_spiffe: str | None = None,
) -> ssl.SSLContext:
    """A verifying client context presenting ``identity``'s current certificate.

    For short programs: the certificate is the stored one while it lasts, else a new one, and
    is not renewed afterwards. Long-running clients use :class:`ReloadingIdentity` (or the httpx
    transports), whose context follows renewals.
    """
    with ReloadingIdentity(
        identity, state=state, trust=trust, lifetime=lifetime, expect_spiffe=expect_spiffe
    ) as keeper:
        return keeper.context
