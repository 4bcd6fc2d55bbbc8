"""OCSP responses for stapling: build the request, check the answer, cache and refresh it.

Pure part (bytes and ``now`` in, decisions out): :func:`ocsp_target` finds the responder URL and
the issuer of a chain, :func:`build_request` makes the DER request (SHA-1 certificate ID, no
nonce: that is what responders and their CDN caches expect), :func:`check_response` accepts a
response only when every check passes -- successful status, our certificate ID, status good,
``this_update <= now < next_update``, and a signature made by the issuer or by a responder
certificate the issuer delegated (``id-kp-OCSPSigning``) -- and :func:`refresh_time` says when to
ask again (half-way through the validity window, hourly without ``next_update``).

A revoked certificate is not stapled, as nginx and Caddy do: the answer is logged as an error and
any earlier "good" response is dropped at once (stapling it would vouch for a revoked certificate),
while a stapled "revoked" would only make the site fail for the clients that check, without telling
the operator anything more than the log does.

I/O part: :func:`fetch_response` POSTs the request over plain HTTP (run in a thread), and
:class:`OcspCache` keeps one verified response per site in memory and in ``<state>/ocsp/`` (atomic
writes, so a restart staples at once). A failed refresh keeps the current response until it
expires, retrying with backoff; an expired response is never handed out.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)

from tlsgate.store.files import atomic_write

__all__ = [
    "CertificateRevoked",
    "OcspCache",
    "OcspError",
    "OcspTarget",
    "VerifiedResponse",
    "build_request",
    "cache_directory",
    "check_response",
    "fetch_response",
    "ocsp_target",
    "refresh_time",
    "request_der",
]

log = logging.getLogger("tlsgate.ocsp")

#: A responder's clock may run a little ahead of ours (nginx allows the same 5 minutes).
CLOCK_SKEW = timedelta(minutes=5)
#: How long a response without ``next_update`` is stapled, and how often it is renewed.
NO_NEXT_UPDATE_LIFETIME = timedelta(days=1)
NO_NEXT_UPDATE_REFRESH = timedelta(hours=1)
#: Never ask the same responder more often than this, whatever its response says.
MIN_REFRESH = timedelta(minutes=1)
#: Waits after consecutive failed fetches (the certificate renewal table, capped at 6 hours).
BACKOFF = tuple(timedelta(minutes=m) for m in (1, 2, 2, 5, 10, 20, 30, 60, 120, 240, 360))
MAX_RESPONSE = 256 * 1024
FETCH_TIMEOUT = 10.0


class OcspError(Exception):
    """The response cannot be used (never stapled)."""


class CertificateRevoked(OcspError):
    """A verified response says the certificate is revoked."""


@dataclass(frozen=True)
class OcspTarget:
    leaf: x509.Certificate
    issuer: x509.Certificate
    url: str

    @property
    def fingerprint(self) -> str:
        return self.leaf.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class VerifiedResponse:
    der: bytes = field(repr=False)
    this_update: datetime
    next_update: datetime | None

    @property
    def expires(self) -> datetime:
        """The first moment the response must no longer be stapled."""
        if self.next_update is not None:
            return self.next_update
        return self.this_update + NO_NEXT_UPDATE_LIFETIME

    def usable(self, now: datetime) -> bool:
        return now < self.expires


# --- pure --------------------------------------------------------------------------------------


def ocsp_target(chain: Sequence[x509.Certificate]) -> OcspTarget | None:
    """The leaf's OCSP responder and its issuer from the chain, or None when either is absent."""
    if not chain:
        return None
    leaf = chain[0]
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    urls = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
        and d.access_location.value.lower().startswith(("http://", "https://"))
    ]
    if not urls:
        return None
    for candidate in chain[1:]:
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return OcspTarget(leaf, candidate, urls[0])
    return None


def build_request(
    target: OcspTarget, algorithm: hashes.HashAlgorithm | None = None
) -> ocsp.OCSPRequest:
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(target.leaf, target.issuer, algorithm or hashes.SHA1())
        .build()
    )


def request_der(target: OcspTarget) -> bytes:
    return build_request(target).public_bytes(serialization.Encoding.DER)


def _key_hash(key: object) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING: the ``byKey`` responder ID."""
    return x509.SubjectKeyIdentifier.from_public_key(key).digest  # type: ignore[arg-type]


def _verify_signature(key: object, response: ocsp.OCSPResponse) -> None:
    algorithm = response.signature_hash_algorithm
    data, signature = response.tbs_response_bytes, response.signature
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                raise OcspError("RSASSA-PSS response signatures are not supported")
            if algorithm is None:
                raise OcspError("response signature has no hash algorithm")
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if algorithm is None:
                raise OcspError("response signature has no hash algorithm")
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise OcspError(f"unsupported responder key type {type(key).__name__}")
    except InvalidSignature:
        raise OcspError("response signature does not verify") from None


def _signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The certificate whose key signed the response, checked to be allowed to sign it."""
    candidates = [issuer, *response.certificates]
    if response.responder_name is not None:
        matching = [c for c in candidates if c.subject == response.responder_name]
    else:
        wanted = response.responder_key_hash
        matching = [c for c in candidates if _key_hash(c.public_key()) == wanted]
    if not matching:
        raise OcspError("the responder's certificate is neither the issuer nor in the response")
    for cert in matching:
        if cert.public_key() == issuer.public_key():
            return issuer
    errors: list[str] = []
    for cert in matching:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            errors.append("not issued by the certificate's issuer")
            continue
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            errors.append("responder certificate lacks the OCSPSigning extended key usage")
            continue
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            errors.append("responder certificate is not valid now")
            continue
        return cert
    raise OcspError(f"response signer not authorized: {'; '.join(errors)}")


def check_response(der: bytes, target: OcspTarget, now: datetime) -> VerifiedResponse:
    """Accept ``der`` for ``target`` at ``now``, or raise :class:`OcspError` saying why not.

    Raises :class:`CertificateRevoked` for a verified "revoked" answer.
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError(f"not an OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"responder answered {response.response_status.name.lower()}")
    single = None
    for candidate in response.responses:
        if candidate.serial_number != target.leaf.serial_number:
            continue
        try:
            wanted = build_request(target, candidate.hash_algorithm)
        except (ValueError, TypeError):
            continue  # a hash OCSPRequestBuilder does not offer cannot be ours
        if (
            candidate.issuer_name_hash == wanted.issuer_name_hash
            and candidate.issuer_key_hash == wanted.issuer_key_hash
        ):
            single = candidate
            break
    if single is None:
        raise OcspError("response is not about this certificate (certificate ID mismatch)")
    signer = _signer(response, target.issuer, now)
    _verify_signature(signer.public_key(), response)
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > now + CLOCK_SKEW:
        raise OcspError(f"response is from the future (this_update {this_update.isoformat()})")
    if next_update is not None and now >= next_update:
        raise OcspError(f"response expired at {next_update.isoformat()}")
    verified = VerifiedResponse(der, this_update, next_update)
    if not verified.usable(now):
        raise OcspError(f"response from {this_update.isoformat()} is too old to staple")
    if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        reason = single.revocation_reason
        raise CertificateRevoked(
            "certificate is REVOKED"
            + (f" since {when.isoformat()}" if when else "")
            + (f" ({reason.name})" if reason else "")
        )
    if single.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise OcspError("responder does not know this certificate (status unknown)")
    return verified


def refresh_time(response: VerifiedResponse, now: datetime) -> datetime:
    """Half-way through the validity window (hourly without next_update), never sooner than
    :data:`MIN_REFRESH` from now."""
    if response.next_update is not None:
        due = response.this_update + (response.next_update - response.this_update) / 2
    else:
        due = response.this_update + NO_NEXT_UPDATE_REFRESH
    return max(due, now + MIN_REFRESH)


# --- I/O ---------------------------------------------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_response(url: str, request: bytes, timeout: float = FETCH_TIMEOUT) -> bytes:
    """POST ``request`` to the responder (blocking: run it in a thread). Proxies are not used,
    as nginx does not: the responder is asked directly."""
    req = urllib.request.Request(
        url,
        data=request,
        method="POST",
        headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
    )
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        if resp.status != 200:
            raise OcspError(f"responder answered HTTP {resp.status}")
        body: bytes = resp.read(MAX_RESPONSE + 1)
    if len(body) > MAX_RESPONSE:
        raise OcspError("response larger than 256 KiB")
    return body


Fetch = Callable[[str, bytes, float], bytes]


@dataclass
class _Site:
    target: OcspTarget
    response: VerifiedResponse | None = None
    next_fetch: datetime | None = None  # None: at once
    failures: int = 0


class OcspCache:
    """One verified response per site, kept in memory and in ``directory``."""

    def __init__(
        self, directory: Path | None, fetch: Fetch = fetch_response, timeout: float = FETCH_TIMEOUT
    ) -> None:
        self.directory = directory
        self.fetch = fetch
        self.timeout = timeout
        self._sites: dict[str, _Site] = {}

    # -- configuration -------------------------------------------------------------------------
    def configure(self, name: str, chain: Sequence[x509.Certificate] | None) -> bool:
        """Follow the site's current chain (None: stapling off). True when it has a responder."""
        target = ocsp_target(chain) if chain else None
        if target is None:
            self._sites.pop(name, None)
            return False
        current = self._sites.get(name)
        if current is None or current.target.leaf != target.leaf:
            self._sites[name] = _Site(target)
        return True

    def names(self) -> list[str]:
        return list(self._sites)

    def target(self, name: str) -> OcspTarget | None:
        site = self._sites.get(name)
        return site.target if site else None

    def current(self, name: str, now: datetime) -> VerifiedResponse | None:
        """The response to staple now, or None (never an expired one)."""
        site = self._sites.get(name)
        if site is None or site.response is None or not site.response.usable(now):
            return None
        return site.response

    # -- the disk cache ------------------------------------------------------------------------
    def _path(self, target: OcspTarget) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{target.fingerprint}.der"

    def load_cached(self, now: datetime) -> None:
        """Take each site's response from disk, verified again (what workers do on SIGHUP).

        The file is the truth: a missing or unusable file means nothing is stapled.
        """
        for name, site in self._sites.items():
            site.response = None
            path = self._path(site.target)
            if path is None:
                continue
            try:
                der = path.read_bytes()
            except OSError:
                continue
            try:
                site.response = check_response(der, site.target, now)
            except OcspError as exc:
                log.info("site %s: cached OCSP response not used: %s", name, exc)
                continue
            site.next_fetch = refresh_time(site.response, now)

    def _save(self, site: _Site, der: bytes | None) -> None:
        path = self._path(site.target)
        if path is None:
            return
        try:
            if der is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                atomic_write(path, der, mode=0o644)
        except Exception as exc:  # the in-memory response still staples
            log.warning("cannot update the OCSP cache %s: %s", path, exc)

    # -- refreshing ----------------------------------------------------------------------------
    def retry_failed(self) -> None:
        """Forget the backoff: sites whose last fetch failed are fetched at once."""
        for site in self._sites.values():
            if site.failures:
                site.next_fetch = None

    def due(self, now: datetime) -> list[str]:
        return [
            name
            for name, site in self._sites.items()
            if site.next_fetch is None or now >= site.next_fetch
        ]

    def next_due(self, now: datetime) -> datetime:
        dates = [site.next_fetch or now for site in self._sites.values()]
        return min(dates, default=now + timedelta(hours=1))

    def _fetch(self, target: OcspTarget, timeout: float | None = None) -> bytes:
        return self.fetch(target.url, request_der(target), timeout or self.timeout)

    def refresh_blocking(self, now: datetime, timeout: float = 5.0) -> list[str]:
        """Fetch what is due, in threads that are all gone on return (safe before ``fork``).

        The shorter timeout bounds how long a responder that does not answer delays start-up."""
        due = self.due(now)
        if not due:
            return []
        results: dict[str, bytes | BaseException] = {}
        with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
            futures = {
                name: pool.submit(self._fetch, self._sites[name].target, timeout) for name in due
            }
        for name, future in futures.items():
            error = future.exception()
            results[name] = error if error is not None else future.result()
        return [name for name in due if self.apply(name, results[name], now)]

    async def refresh(self, now: datetime) -> list[str]:
        due = self.due(now)
        if not due:
            return []
        targets = [self._sites[name].target for name in due]
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(self._fetch, t) for t in targets), return_exceptions=True
        )
        changed = []
        for name, target, outcome in zip(due, targets, outcomes, strict=True):
            site = self._sites.get(name)
            if site is None or site.target.leaf != target.leaf:
                continue  # the certificate changed while the request was out
            if self.apply(name, outcome, datetime.now(now.tzinfo)):
                changed.append(name)
        return changed

    def apply(self, name: str, outcome: bytes | BaseException, now: datetime) -> bool:
        """Take a fetch's outcome; True when what should be stapled for ``name`` changed."""
        site = self._sites[name]
        before = site.response
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            verified = check_response(outcome, site.target, now)
        except CertificateRevoked as exc:
            log.error(
                "site %s: OCSP responder %s says the certificate (serial %X) is revoked: %s; "
                "not stapling; replace the certificate",
                name,
                site.target.url,
                site.target.leaf.serial_number,
                exc,
            )
            site.response = None
            site.failures = 0
            site.next_fetch = now + NO_NEXT_UPDATE_REFRESH
            self._save(site, None)
            return before is not None
        except Exception as exc:
            count = site.failures
            site.failures = count + 1
            site.next_fetch = now + BACKOFF[min(count, len(BACKOFF) - 1)]
            if site.response is not None and not site.response.usable(now):
                site.response = None
            keeping = (
                f"still stapling the response valid until {site.response.expires.isoformat()}"
                if site.response is not None
                else "not stapling"
            )
            log.warning(
                "site %s: OCSP response from %s not usable (%s); %s; next attempt at %s",
                name,
                site.target.url,
                _describe(exc),
                keeping,
                site.next_fetch.isoformat(timespec="seconds"),
            )
            return site.response is not before
        site.response = verified
        site.failures = 0
        site.next_fetch = refresh_time(verified, now)
        self._save(site, verified.der)
        log.info(
            "site %s: stapling OCSP response from %s (good, this_update %s, next_update %s)",
            name,
            site.target.url,
            verified.this_update.isoformat(),
            verified.next_update.isoformat() if verified.next_update else "none",
        )
        return True


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OcspError) else f"{type(exc).__name__}: {text}"


def cache_directory(state_location: str) -> Path | None:
    """``<state>/ocsp`` when the store is a local directory; memory only otherwise."""
    path = Path(state_location)
    return path / "ocsp" if path.is_dir() else None
