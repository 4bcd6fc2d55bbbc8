"""Chain verification that answers "would a browser accept this, and if not, why?".

The verdict is ``cryptography``'s RFC 5280 / CA-Browser-Forum path validation (the same Rust code
as its TLS verifier), never ours. When it says no, :func:`diagnose` walks the presented chain to
name the reason the way a browser's error page does (expired, wrong host, unknown issuer, ...),
because "validation failed" is not something a person can fix. Revocation is checked against CRLs
signed by the certificate's issuer, since ``cryptography``'s verifier does not do it.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tlsgate.errors import PKIError
from tlsgate.pki.keys import MIN_RSA_BITS
from tlsgate.pki.names import NameConstraints, check_constraints
from tlsgate.pki.revocation import REASONS
from tlsgate.pki.serial import format_serial

__all__ = [
    "Reason",
    "Usage",
    "VerificationFailed",
    "VerifiedChain",
    "build_path",
    "diagnose",
    "hostname_matches",
    "verify_chain",
]


class Reason(StrEnum):
    """Why a client refuses a certificate; values are stable identifiers for JSON and metrics."""

    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    HOSTNAME_MISMATCH = "hostname-mismatch"
    UNKNOWN_ISSUER = "unknown-issuer"
    SELF_SIGNED = "self-signed"
    REVOKED = "revoked"
    BAD_SIGNATURE = "bad-signature"
    NAME_CONSTRAINTS = "name-constraints"
    WRONG_USAGE = "wrong-usage"
    WEAK_KEY = "weak-key"
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"
    INVALID = "invalid"


class Usage(StrEnum):
    SERVER = "server"
    CLIENT = "client"


class VerificationFailed(PKIError):
    """The chain does not verify; ``reason`` says why in a machine-readable way."""

    def __init__(self, reason: Reason, message: str, certificate: x509.Certificate | None = None):
        super().__init__(message)
        self.reason = reason
        self.certificate = certificate


@dataclass(frozen=True)
class VerifiedChain:
    """A validated path, leaf first, trust anchor last."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]

    @property
    def anchor(self) -> x509.Certificate:
        return self.certificates[-1]


def _who(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {format_serial(cert.serial_number)}"


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []


def hostname_matches(cert: x509.Certificate, hostname: str) -> bool:
    """RFC 6125 matching against SANs only (browsers ignore the CN since 2017)."""
    host = hostname.strip().rstrip(".").lower()
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    for name in _sans(cert):
        if address is not None:
            if isinstance(name, x509.IPAddress) and name.value == address:
                return True
            continue
        if not isinstance(name, x509.DNSName):
            continue
        pattern = name.value.lower()
        if pattern == host:
            return True
        if pattern.startswith("*."):
            head, _, rest = host.partition(".")
            if head and rest == pattern[2:]:
                return True
    return False


def _subject_for(leaf: x509.Certificate, hostname: str | None) -> x509.verification.Subject:
    if hostname is not None:
        host = hostname.strip().rstrip(".").strip("[]")
        try:
            return x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            return x509.DNSName(host.lower())
    # No name to check: verify the path for the leaf's own first name.
    for name in _sans(leaf):
        if isinstance(name, x509.DNSName):
            return x509.DNSName(name.value.removeprefix("*."))
        if isinstance(name, x509.IPAddress):
            return name
    # No usable name: let validation fail and diagnose() explain the whole chain.
    return x509.DNSName("no-name.invalid")


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: datetime,
    hostname: str | None = None,
    usage: Usage = Usage.SERVER,
    crls: Sequence[x509.CertificateRevocationList] = (),
) -> VerifiedChain:
    """Validate ``leaf`` up to one of ``roots`` at ``now``, or raise :class:`VerificationFailed`."""
    if not roots:
        raise VerificationFailed(Reason.UNKNOWN_ISSUER, "no trust anchors were given", leaf)
    builder = PolicyBuilder().store(Store(list(roots))).time(now)
    try:
        if usage is Usage.SERVER:
            verifier = builder.build_server_verifier(_subject_for(leaf, hostname))
            path = verifier.verify(leaf, list(intermediates))
        else:
            path = builder.build_client_verifier().verify(leaf, list(intermediates)).chain
            if hostname is not None and not hostname_matches(leaf, hostname):
                raise VerificationFailed(
                    Reason.HOSTNAME_MISMATCH, f"the certificate is not valid for {hostname}", leaf
                )
    except VerificationError as exc:
        raise diagnose(
            leaf, intermediates, roots, now=now, hostname=hostname, usage=usage, detail=str(exc)
        ) from None
    chain = VerifiedChain(tuple(path))
    check_revocation(chain, crls, now=now)
    return chain


def check_revocation(
    chain: VerifiedChain, crls: Sequence[x509.CertificateRevocationList], *, now: datetime
) -> None:
    """Fail if any certificate in the path is listed in a CRL its issuer signed."""
    certs = chain.certificates
    for cert, issuer in itertools.pairwise(certs):
        for crl in crls:
            if crl.issuer != issuer.subject or not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
                continue
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= now:
                reason = _crl_reason(entry)
                raise VerificationFailed(
                    Reason.REVOKED,
                    f"{_who(cert)} (serial {format_serial(cert.serial_number)}) was revoked on "
                    f"{entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
                    + (f" ({reason})" if reason else ""),
                    cert,
                )


def _crl_reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return next((name for name, value in REASONS.items() if value is flag), flag.name)


def build_path(
    leaf: x509.Certificate, pool: Sequence[x509.Certificate]
) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """Walk issuer links through ``pool``; returns (path, anchor-or-None). Stops on loops."""
    path = [leaf]
    current = leaf
    for _ in range(8):
        if current.issuer == current.subject and len(path) > 1:
            return path, current
        candidates = [c for c in pool if c.subject == current.issuer and c not in path]
        if not candidates:
            return path, None
        # Prefer a candidate whose key actually signed `current`.
        chosen = candidates[0]
        for candidate in candidates:
            try:
                current.verify_directly_issued_by(candidate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            chosen = candidate
            break
        path.append(chosen)
        current = chosen
    return path, None


def diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: datetime,
    hostname: str | None = None,
    usage: Usage = Usage.SERVER,
    detail: str = "",
) -> VerificationFailed:
    """Name the first problem a browser would show for a chain that failed validation."""
    path, _ = build_path(leaf, [*intermediates, *roots])
    top = path[-1]
    anchored = top in roots or any(
        r.subject == top.subject and r.public_key() == top.public_key() for r in roots
    )
    if not anchored:
        if top.issuer == top.subject:
            what = (
                "the certificate is self-signed"
                if top is leaf
                else f"its root {_who(top)} is self-signed"
            )
            return VerificationFailed(
                Reason.SELF_SIGNED, f"{what} and not among the trusted roots", top
            )
        return VerificationFailed(
            Reason.UNKNOWN_ISSUER,
            f"unknown issuer: {_who(top)} was issued by {top.issuer.rfc4514_string()}, which is "
            "neither a trusted root nor in the chain that was presented (missing intermediate?)",
            top,
        )
    for cert, issuer in itertools.pairwise(path):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return VerificationFailed(
                Reason.BAD_SIGNATURE,
                f"the signature on {_who(cert)} does not verify with the key of {_who(issuer)}",
                cert,
            )
    for cert in path:
        if now > cert.not_valid_after_utc:
            role = "certificate" if cert is leaf else f"issuing certificate {_who(cert)}"
            return VerificationFailed(
                Reason.EXPIRED,
                f"the {role} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                cert,
            )
        if now < cert.not_valid_before_utc:
            role = "certificate" if cert is leaf else f"issuing certificate {_who(cert)}"
            return VerificationFailed(
                Reason.NOT_YET_VALID,
                f"the {role} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                cert,
            )
    for ca in path[1:]:
        try:
            check_constraints(_sans(leaf), NameConstraints.from_certificate(ca))
        except PKIError as exc:
            return VerificationFailed(
                Reason.NAME_CONSTRAINTS,
                f"name constraints of {_who(ca)} forbid this certificate: {exc}",
                leaf,
            )
    if not _sans(leaf):
        return VerificationFailed(
            Reason.INVALID,
            "the certificate has no subjectAltName; browsers ignore the common name",
            leaf,
        )
    if "name constraint" in detail.lower():
        return VerificationFailed(
            Reason.NAME_CONSTRAINTS, f"name constraints violated: {detail}", leaf
        )
    if hostname is not None and not hostname_matches(leaf, hostname):
        shown = ", ".join(str(n.value) for n in _sans(leaf)) or "no names"
        return VerificationFailed(
            Reason.HOSTNAME_MISMATCH,
            f"the certificate is not valid for {hostname}; it is for {shown}",
            leaf,
        )
    for cert in path:
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            return VerificationFailed(
                Reason.WEAK_KEY,
                f"{_who(cert)} has a {key.key_size}-bit RSA key; browsers require at least "
                f"{MIN_RSA_BITS} bits",
                cert,
            )
    if "forbidden" in detail.lower() and "algorithm" in detail.lower():
        return VerificationFailed(
            Reason.UNSUPPORTED_ALGORITHM,
            "the chain uses a key or signature algorithm browsers do not accept "
            "(the Web PKI allows ECDSA P-256/P-384 and RSA; Ed25519 works only between "
            "OpenSSL peers)",
            leaf,
        )
    if "eku" in detail.lower() or "extended key usage" in detail.lower():
        return VerificationFailed(
            Reason.WRONG_USAGE,
            f"the certificate is not allowed for {usage.value} authentication",
            leaf,
        )
    return VerificationFailed(
        Reason.INVALID, f"the chain is not valid: {detail or 'rejected'}", leaf
    )
