"""Is the leaf revoked? A stapled OCSP response first, then the OCSP responder, then the CRL.

Browsers soft-fail when the answer cannot be had, and so does the verdict: only a *verified*
"revoked" is critical; "could not find out" is reported in words but never fails a check (a slow
responder must not page anyone at 3 a.m.). CRLs are cached per URL until their nextUpdate,
because a monitor checking a thousand names from one CA must not fetch its CRL a thousand times.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import httpx
from cryptography import x509

from tlsgate.errors import PKIError
from tlsgate.pki.chain import Reason, VerificationFailed, VerifiedChain, check_revocation
from tlsgate.pki.ocsp import (
    CertificateRevoked,
    OcspError,
    check_response,
    ocsp_target,
    request_der,
)

__all__ = ["RevocationStatus", "check_stapled", "lookup"]

MAX_CRL_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class RevocationStatus:
    revoked: bool
    known: bool  # False: nobody could tell us (no URL, responder down, bad answer)
    detail: str  # what we asked and what came back, for the explanation


_crl_cache: dict[str, tuple[x509.CertificateRevocationList, datetime]] = {}


def check_stapled(
    der: bytes, path: Sequence[x509.Certificate], now: datetime
) -> RevocationStatus | None:
    """Judge a stapled response; None when it cannot be used (then ask the responder)."""
    target = ocsp_target(path)
    if target is None:
        return None
    try:
        check_response(der, target, now)
    except CertificateRevoked as exc:
        return RevocationStatus(True, True, f"the stapled OCSP response says: {exc}")
    except OcspError:
        return None
    return RevocationStatus(False, True, "good (OCSP response stapled by the server)")


def _crl_urls(cert: x509.Certificate) -> list[str]:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [
        name.value
        for point in points
        for name in point.full_name or ()
        if isinstance(name, x509.UniformResourceIdentifier)
        and name.value.lower().startswith(("http://", "https://"))
    ]


def _load_crl(data: bytes) -> x509.CertificateRevocationList:
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)


async def lookup(
    path: Sequence[x509.Certificate], now: datetime, *, timeout: float
) -> RevocationStatus:
    """Ask the leaf's OCSP responder, else fetch its CRL; ``path`` is the verified path."""
    if len(path) < 2:
        return RevocationStatus(False, False, "not checked (no issuer to check against)")
    target = ocsp_target(path)
    urls = _crl_urls(path[0])
    if target is None and not urls:
        return RevocationStatus(
            False, False, "not checked: the certificate names no OCSP or CRL URL"
        )
    problems: list[str] = []
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, verify=_https_context()
    ) as client:
        if target is not None:
            try:
                response = await client.post(
                    target.url,
                    content=request_der(target),
                    headers={"Content-Type": "application/ocsp-request"},
                )
                check_response(response.content, target, now)
            except CertificateRevoked as exc:
                return RevocationStatus(True, True, f"the OCSP responder {target.url} says: {exc}")
            except (OcspError, httpx.HTTPError) as exc:
                problems.append(f"OCSP {target.url}: {exc or type(exc).__name__}")
            else:
                return RevocationStatus(False, True, f"good (OCSP responder {target.url})")
        for url in urls:
            try:
                crl = await _fetch_crl(client, url, now)
                if crl.issuer != path[1].subject or not crl.is_signature_valid(
                    path[1].public_key()  # type: ignore[arg-type]
                ):
                    raise ValueError("not signed by the certificate's issuer")
                check_revocation(VerifiedChain(tuple(path[:2])), [crl], now=now)
            except VerificationFailed as exc:
                if exc.reason is Reason.REVOKED:
                    return RevocationStatus(True, True, f"{exc} (CRL {url})")
                problems.append(f"CRL {url}: {exc}")  # stale or unusable: we cannot tell
                continue
            except (httpx.HTTPError, ValueError, TypeError, PKIError) as exc:
                problems.append(f"CRL {url}: {exc or type(exc).__name__}")
                continue
            return RevocationStatus(False, True, f"not revoked (CRL {url})")
    return RevocationStatus(False, False, "unknown: " + "; ".join(problems))


@cache
def _https_context() -> ssl.SSLContext:
    """One verifying context for every lookup: building one (reading the system bundle) per
    check would cost a thousand-target monitor round ~0.1 s of CPU per target."""
    return ssl.create_default_context()


async def _fetch_crl(
    client: httpx.AsyncClient, url: str, now: datetime
) -> x509.CertificateRevocationList:
    cached = _crl_cache.get(url)
    if cached is not None and now < cached[1]:
        return cached[0]
    async with client.stream("GET", url) as response:
        response.raise_for_status()
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_CRL_BYTES:
                raise ValueError(f"CRL larger than {MAX_CRL_BYTES // 2**20} MiB")
    crl = _load_crl(data)
    if crl.next_update_utc is not None:
        _crl_cache[url] = (crl, crl.next_update_utc)
    return crl
