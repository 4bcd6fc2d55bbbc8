"""Chain verification that answers "would a browser accept this, and if not, why?".

The verdict is ``cryptography``'s RFC 5280 / CA-Browser-Forum path validation (the same Rust code
as its TLS verifier), never ours. When it says no, :func:`~tlsgate.pki.diagnosis.diagnose` walks
the presented chain to name the reason the way a browser's error page does (expired, wrong host,
unknown issuer, ...), because "validation failed" is not something a person can fix. Revocation
is checked against CRLs signed by the certificate's issuer, since ``cryptography``'s verifier
does not do it.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from tlsgate.pki.diagnosis import build_path, diagnose, weak_key
from tlsgate.pki.malformed import MISSING_OR_MALFORMED, PARSE_ERRORS
from tlsgate.pki.revocation import REASONS
from tlsgate.pki.serial import format_serial
from tlsgate.pki.verdict import (
    MAX_DEPTH,
    Reason,
    Usage,
    VerificationFailed,
    VerifiedChain,
    hostname_matches,
    who,
)

__all__ = [
    "MAX_DEPTH",
    "Reason",
    "Usage",
    "VerificationFailed",
    "VerifiedChain",
    "build_path",
    "diagnose",
    "hostname_matches",
    "verify_chain",
]

#: Everything cryptography raises for a chain it refuses or cannot read.
_VALIDATION_ERRORS: tuple[type[Exception], ...] = (VerificationError, *PARSE_ERRORS)


def _subject(hostname: str) -> x509.verification.Subject:
    host = hostname.strip().rstrip(".").strip("[]")
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host.lower())


def _eku_check(
    allowed: frozenset[x509.ObjectIdentifier], role: str
) -> Callable[[Policy, x509.Certificate, x509.ExtendedKeyUsage | None], None]:
    """An extendedKeyUsage validator: absent is "any", present must name one of ``allowed``."""

    def check(_policy: Policy, _cert: x509.Certificate, eku: x509.ExtendedKeyUsage | None) -> None:
        if eku is not None and not allowed.intersection(eku):
            raise ValueError(f"required EKU not found: the {role} is not for serverAuth")

    return check


def _nameless_server_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """Extension policies for a server certificate checked without a name.

    cryptography's server verifier needs a name, its client verifier wants ``clientAuth``: this is
    the client verifier's profile (subjectAltName required, not matched) with the server
    verifier's extendedKeyUsage rules (a leaf's EKU must include serverAuth, a CA's serverAuth or
    anyExtendedKeyUsage), so "no hostname" checks everything a server verifier does but the name.
    """
    server = ExtendedKeyUsageOID.SERVER_AUTH
    ee = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.ExtendedKeyUsage,
        Criticality.NON_CRITICAL,
        _eku_check(frozenset({server}), "certificate"),
    )
    ca = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.ExtendedKeyUsage,
        Criticality.NON_CRITICAL,
        _eku_check(frozenset({server, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}), "issuing CA"),
    )
    return ca, ee


_NAMELESS_CA, _NAMELESS_EE = _nameless_server_policies()


def _validate(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
    hostname: str | None,
    usage: Usage,
    max_depth: int,
) -> list[x509.Certificate]:
    """cryptography's verdict: the validated path, or VerificationError / a parse error."""
    builder = PolicyBuilder().store(Store(list(roots))).time(now).max_chain_depth(max_depth)
    if usage is Usage.CLIENT:
        path = builder.build_client_verifier().verify(leaf, list(intermediates)).chain
        if hostname is not None and not hostname_matches(leaf, hostname):
            raise VerificationFailed(
                Reason.HOSTNAME_MISMATCH, f"the certificate is not valid for {hostname}", leaf
            )
        return path
    if hostname is None:
        verifier = builder.extension_policies(
            ca_policy=_NAMELESS_CA, ee_policy=_NAMELESS_EE
        ).build_client_verifier()
        return verifier.verify(leaf, list(intermediates)).chain
    try:
        server = builder.build_server_verifier(_subject(hostname))
    except ValueError:
        raise VerificationFailed(
            Reason.HOSTNAME_MISMATCH,
            f"{hostname!r} is not a DNS name or IP address a certificate can be checked against",
            leaf,
        ) from None
    return server.verify(leaf, list(intermediates))


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: datetime,
    hostname: str | None = None,
    usage: Usage = Usage.SERVER,
    crls: Sequence[x509.CertificateRevocationList] = (),
    max_depth: int = MAX_DEPTH,
) -> VerifiedChain:
    """Validate ``leaf`` up to one of ``roots`` at ``now``, or raise :class:`VerificationFailed`.

    ``hostname=None`` checks everything but the name (a server certificate still needs a
    subjectAltName and the serverAuth usage). ``max_depth`` is the most intermediates between
    the leaf and the anchor (0 to 255). Whatever the certificates contain, nothing but
    :class:`VerificationFailed` comes out; a ``max_depth`` out of range is a ``ValueError``.
    """
    if not 0 <= max_depth <= 255:
        raise ValueError(f"max_depth must be between 0 and 255, not {max_depth}")
    if not roots:
        raise VerificationFailed(Reason.UNKNOWN_ISSUER, "no trust anchors were given", leaf)
    try:
        path = _validate(leaf, intermediates, roots, now, hostname, usage, max_depth)
    except _VALIDATION_ERRORS as exc:
        raise diagnose(
            leaf,
            intermediates,
            roots,
            now=now,
            hostname=hostname,
            usage=usage,
            detail=str(exc),
            max_depth=max_depth,
        ) from None
    chain = VerifiedChain(tuple(path))
    # cryptography checks a key's size and type only where it verifies a signature, so a
    # 1024-bit RSA or a DSA leaf (whose key signs nothing in the chain) passes it: browsers
    # refuse them (CA/B 6.1.5).
    weak = weak_key(chain.certificates)
    if weak is not None:
        raise weak
    check_revocation(chain, crls, now=now)
    return chain


def check_revocation(
    chain: VerifiedChain, crls: Sequence[x509.CertificateRevocationList], *, now: datetime
) -> None:
    """Fail if any certificate in the path is listed in a CRL its issuer signed.

    A CRL that names an issuer in the path is never skipped. If it is not authentic (its
    signature does not verify with that issuer's key, the issuer may not sign CRLs, it cannot be
    parsed) it proves nothing: :attr:`Reason.BAD_CRL`. If it is authentic it proves a revocation
    it lists (:attr:`Reason.REVOKED`) even when it is not current, but it can only prove "not
    revoked" when it is: no CRL number or a critical one, not yet valid, past its nextUpdate is
    also ``bad-crl``. A revocation is reported before any bad CRL. A CRL from an issuer that is
    not in the path is not about this chain and is left alone.
    """
    problem: VerificationFailed | None = None
    for cert, issuer in itertools.pairwise(chain.certificates):
        for crl in crls:
            if _crl_issuer(crl) != issuer.subject:
                continue
            forged = _crl_not_authentic(crl, issuer)
            if forged is not None:
                problem = problem or _bad_crl(issuer, forged)
                continue
            try:
                entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
                revoked_on = entry.revocation_date_utc if entry is not None else None
                reason = _crl_reason(entry) if entry is not None else None
            except PARSE_ERRORS as exc:
                problem = problem or _bad_crl(issuer, f"an entry is malformed ({exc})")
                continue
            if revoked_on is not None and revoked_on <= now:
                raise VerificationFailed(
                    Reason.REVOKED,
                    f"{who(cert)} (serial {format_serial(cert.serial_number)}) was revoked on "
                    f"{revoked_on:%Y-%m-%d %H:%M} UTC" + (f" ({reason})" if reason else ""),
                    cert,
                )
            stale = _crl_not_current(crl, now)
            if stale is not None:
                problem = problem or _bad_crl(issuer, stale)
    if problem is not None:
        raise problem


def _bad_crl(issuer: x509.Certificate, why: str) -> VerificationFailed:
    return VerificationFailed(
        Reason.BAD_CRL, f"the CRL from {who(issuer)} cannot be trusted: {why}", issuer
    )


def _crl_issuer(crl: x509.CertificateRevocationList) -> x509.Name | None:
    try:
        return crl.issuer
    except PARSE_ERRORS:
        return None


def _crl_not_authentic(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> str | None:
    """Why the CRL may not come from ``issuer`` at all, or None when it does."""
    try:
        if not crl.is_signature_valid(issuer.public_key()):  # type: ignore[arg-type]
            return f"its signature does not verify with the key of {who(issuer)}"
        crl.extensions  # noqa: B018 - parsing them is the check
    except PARSE_ERRORS as exc:
        return f"it cannot be parsed ({exc})"
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except MISSING_OR_MALFORMED:
        return None  # no keyUsage: every usage is allowed (RFC 5280 4.2.1.3)
    if not usage.crl_sign:
        return f"{who(issuer)} may not sign CRLs (its keyUsage lacks cRLSign)"
    return None


def _crl_not_current(crl: x509.CertificateRevocationList, now: datetime) -> str | None:
    """Why an authentic CRL cannot say "not revoked" at ``now``, or None when it can."""
    try:
        if crl.extensions.get_extension_for_class(x509.CRLNumber).critical:
            return "its CRL number is marked critical (RFC 5280 5.2.3 forbids it)"
    except x509.ExtensionNotFound:
        return "it has no CRL number (RFC 5280 requires one)"
    if crl.last_update_utc > now:
        return f"it is not valid until {crl.last_update_utc:%Y-%m-%d %H:%M} UTC"
    if crl.next_update_utc is None:
        return "it has no nextUpdate, so nothing says when it stops being current"
    if crl.next_update_utc < now:
        return (
            f"it is out of date: its nextUpdate was {crl.next_update_utc:%Y-%m-%d %H:%M} UTC "
            "(a newer CRL is needed)"
        )
    return None


def _crl_reason(entry: x509.RevokedCertificate) -> str | None:
    try:
        flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None
    return next((name for name, value in REASONS.items() if value is flag), flag.name)
