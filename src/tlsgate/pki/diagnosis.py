"""Why a chain failed, named the way a browser's error page names it.

``cryptography`` says yes or no; when it says no, :func:`diagnose` walks the presented chain to
find the first problem a person can fix (expired, wrong host, unknown issuer, ...), because
"validation failed" is not something anyone can act on. The walk is bounded like cryptography's
own: at most :data:`MAX_DEPTH` intermediates, 128 signature checks and 2**20 name-constraint
comparisons, so a chain built to exhaust a verifier costs little here too.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from tlsgate.errors import PKIError
from tlsgate.pki.keys import MIN_RSA_BITS
from tlsgate.pki.malformed import PARSE_ERRORS
from tlsgate.pki.names import (
    ComparisonBudget,
    NameConstraints,
    TooManyNameChecks,
    check_constraints,
)
from tlsgate.pki.verdict import (
    MAX_DEPTH,
    Reason,
    Usage,
    VerificationFailed,
    hostname_matches,
    malformed,
    name_of,
    sans_of,
    who,
)

__all__ = ["build_path", "diagnose", "weak_key"]

#: The most signature checks :func:`build_path` makes for one chain (cryptography's own budget):
#: a server can present hundreds of certificates with the same subject.
_SIGNATURE_BUDGET = 128
_SIGNATURE_ERRORS: tuple[type[Exception], ...] = (InvalidSignature, *PARSE_ERRORS)


def build_path(
    leaf: x509.Certificate, pool: Sequence[x509.Certificate], *, max_depth: int = MAX_DEPTH
) -> tuple[list[x509.Certificate], x509.Certificate | None]:
    """Walk issuer links through ``pool``; returns (path, anchor-or-None).

    Stops on loops, at ``max_depth`` intermediates plus an anchor, and at a name it cannot read;
    checks at most 128 signatures (then takes the first candidate), so any pool costs little.
    """
    path = [leaf]
    current = leaf
    signatures = _SIGNATURE_BUDGET
    for _ in range(max_depth + 1):
        issuer, subject = name_of(current, "issuer"), name_of(current, "subject")
        if issuer is None:
            return path, None
        if issuer == subject and len(path) > 1:
            return path, current
        candidates = [c for c in pool if name_of(c, "subject") == issuer and c not in path]
        if not candidates:
            return path, None
        # Prefer a candidate whose key actually signed `current`.
        chosen = candidates[0]
        for candidate in candidates:
            if signatures <= 0:
                break
            signatures -= 1
            try:
                current.verify_directly_issued_by(candidate)
            except _SIGNATURE_ERRORS:
                continue
            chosen = candidate
            break
        path.append(chosen)
        current = chosen
    return path, None


def _same_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    try:
        return bool(a.public_key() == b.public_key())
    except PARSE_ERRORS:
        return False


def diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    now: datetime,
    hostname: str | None = None,
    usage: Usage = Usage.SERVER,
    detail: str = "",
    max_depth: int = MAX_DEPTH,
) -> VerificationFailed:
    """Name the first problem a browser would show for a chain that failed validation.

    Returns (never raises) the :class:`VerificationFailed`, whatever the certificates contain;
    its work is bounded like cryptography's (path length, signatures, name comparisons).
    """
    try:
        return _diagnose(leaf, intermediates, roots, now, hostname, usage, detail, max_depth)
    except PARSE_ERRORS as exc:  # a part of a certificate none of the checks read first
        return malformed(leaf, "the leaf's") or VerificationFailed(
            Reason.MALFORMED, f"a certificate in the chain cannot be read ({exc})", leaf
        )


def _role(cert: x509.Certificate, leaf: x509.Certificate) -> str:
    return "the leaf's" if cert is leaf else f"the issuing certificate {who(cert)}'s"


def _diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    now: datetime,
    hostname: str | None,
    usage: Usage,
    detail: str,
    max_depth: int,
) -> VerificationFailed:
    lowered = detail.lower()
    path, _ = build_path(leaf, [*intermediates, *roots], max_depth=max_depth)
    for cert in path:
        if (broken := malformed(cert, _role(cert, leaf))) is not None:
            return broken
    top = path[-1]
    anchored = top in roots or any(
        name_of(r, "subject") == top.subject and _same_key(r, top) for r in roots
    )
    if not anchored:
        if "max depth" in lowered or len(path) > max_depth + 1:
            return VerificationFailed(
                Reason.INVALID,
                f"the chain is too long: more than {max_depth} intermediate certificates "
                "between the certificate and a trusted root",
                leaf,
            )
        for cert in intermediates:
            if name_of(cert, "subject") is None and (broken := malformed(cert, _role(cert, leaf))):
                return broken
        if top.issuer == top.subject:
            what = (
                "the certificate is self-signed"
                if top is leaf
                else f"its root {who(top)} is self-signed"
            )
            return VerificationFailed(
                Reason.SELF_SIGNED, f"{what} and not among the trusted roots", top
            )
        return VerificationFailed(
            Reason.UNKNOWN_ISSUER,
            f"unknown issuer: {who(top)} was issued by {top.issuer.rfc4514_string()}, which is "
            "neither a trusted root nor in the chain that was presented (missing intermediate?)",
            top,
        )
    for cert, issuer in itertools.pairwise(path):
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            return VerificationFailed(
                Reason.BAD_SIGNATURE,
                f"the signature on {who(cert)} does not verify with the key of {who(issuer)}",
                cert,
            )
    for cert in path:
        if now > cert.not_valid_after_utc:
            role = "certificate" if cert is leaf else f"issuing certificate {who(cert)}"
            return VerificationFailed(
                Reason.EXPIRED,
                f"the {role} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
                cert,
            )
        if now < cert.not_valid_before_utc:
            role = "certificate" if cert is leaf else f"issuing certificate {who(cert)}"
            return VerificationFailed(
                Reason.NOT_YET_VALID,
                f"the {role} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
                cert,
            )
    if (refusal := _name_constraints(leaf, path, lowered)) is not None:
        return refusal
    if not sans_of(leaf):
        return VerificationFailed(
            Reason.INVALID,
            "the certificate has no subjectAltName; browsers ignore the common name",
            leaf,
        )
    if "name constraint" in lowered:
        return VerificationFailed(
            Reason.NAME_CONSTRAINTS, f"name constraints violated: {detail}", leaf
        )
    if hostname is not None and not hostname_matches(leaf, hostname):
        shown = ", ".join(str(n.value) for n in sans_of(leaf)) or "no names"
        return VerificationFailed(
            Reason.HOSTNAME_MISMATCH,
            f"the certificate is not valid for {hostname}; it is for {shown}",
            leaf,
        )
    if (weak := weak_key(path)) is not None:
        return weak
    if "forbidden" in lowered and "algorithm" in lowered:
        return VerificationFailed(
            Reason.UNSUPPORTED_ALGORITHM,
            "the chain uses a key or signature algorithm browsers do not accept "
            "(the Web PKI allows ECDSA P-256/P-384 and RSA; Ed25519 works only between "
            "OpenSSL peers)",
            leaf,
        )
    if "eku" in lowered or "extended key usage" in lowered:
        return VerificationFailed(
            Reason.WRONG_USAGE,
            f"the certificate is not allowed for {usage.value} authentication",
            leaf,
        )
    return VerificationFailed(
        Reason.INVALID, f"the chain is not valid: {detail or 'rejected'}", leaf
    )


def _name_constraints(
    leaf: x509.Certificate, path: Sequence[x509.Certificate], lowered_detail: str
) -> VerificationFailed | None:
    """The leaf's names against every CA's constraints, within cryptography's comparison budget.

    When cryptography already ran out of it, the Python check is not even started: a chain built
    to cost millions of comparisons costs none here.
    """
    too_many = (
        "too many name-constraint checks: the chain's name constraints and names need more than "
        "{limit} comparisons, the most a verifier makes (a chain built to exhaust verifiers)"
    )
    budget = ComparisonBudget()
    if "name constraint check limit" in lowered_detail:
        return VerificationFailed(
            Reason.NAME_CONSTRAINTS, too_many.format(limit=budget.limit), leaf
        )
    sans = sans_of(leaf)
    for ca in path[1:]:
        try:
            check_constraints(sans, NameConstraints.from_certificate(ca), budget)
        except TooManyNameChecks:
            return VerificationFailed(
                Reason.NAME_CONSTRAINTS, too_many.format(limit=budget.limit), ca
            )
        except PKIError as exc:
            return VerificationFailed(
                Reason.NAME_CONSTRAINTS,
                f"name constraints of {who(ca)} forbid this certificate: {exc}",
                leaf,
            )
    return None


def weak_key(path: Sequence[x509.Certificate]) -> VerificationFailed | None:
    """The refusal for the first key in ``path`` the Web PKI does not allow (CA/B 6.1.5), if any.

    RSA under :data:`~tlsgate.pki.keys.MIN_RSA_BITS` or of a size that is not a multiple of 8, EC
    on a curve other than P-256/P-384/P-521, DSA: what ``tlsgate check`` calls ``weak-key``.
    cryptography checks only the keys that verify a signature, so a leaf's key needs this.
    """
    for cert in path:
        try:
            key = cert.public_key()
        except PARSE_ERRORS:  # unreadable keys are `malformed`, not weak
            continue
        weak = None
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            weak = f"a {key.key_size}-bit RSA key; browsers require at least {MIN_RSA_BITS} bits"
        elif isinstance(key, rsa.RSAPublicKey) and key.key_size % 8:
            weak = (
                f"a {key.key_size}-bit RSA key; the CA/Browser Forum requires a size that is a "
                "multiple of 8"
            )
        elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _WEB_CURVES:
            weak = f"an EC key on {key.curve.name}; browsers accept P-256, P-384 and P-521"
        elif isinstance(key, dsa.DSAPublicKey):
            weak = "a DSA key, which no browser accepts"
        if weak is not None:
            return VerificationFailed(Reason.WEAK_KEY, f"{who(cert)} has {weak}", cert)
    return None


_WEB_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
