"""Pure verdicts: certificates and handshake facts in, findings in plain words out.

The trust decision is ``cryptography``'s path validation (:func:`tlsgate.pki.chain.verify_chain`,
RFC 5280 plus the CA/Browser Forum rules); this module adds what a person needs on top of a yes
or no: *every* problem, not only the first (an expired certificate for the wrong host is two
fixes), each worded with the fix, and the dates that make a warning before the outage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from tlsgate.inspect.refusals import plain_refusal, purpose_of
from tlsgate.inspect.report import Code, Finding, Severity
from tlsgate.pki.chain import (
    Reason,
    Usage,
    VerificationFailed,
    VerifiedChain,
    build_path,
    hostname_matches,
    verify_chain,
)
from tlsgate.pki.info import format_remaining
from tlsgate.pki.keys import MIN_RSA_BITS
from tlsgate.pki.malformed import PARSE_ERRORS
from tlsgate.pki.serial import format_serial

__all__ = ["Judgement", "judge_chain", "protocol_findings"]

_REASON_CODES = {
    Reason.EXPIRED: Code.EXPIRED,
    Reason.NOT_YET_VALID: Code.NOT_YET_VALID,
    Reason.HOSTNAME_MISMATCH: Code.HOSTNAME_MISMATCH,
    Reason.UNKNOWN_ISSUER: Code.UNKNOWN_ISSUER,
    Reason.SELF_SIGNED: Code.SELF_SIGNED,
    Reason.REVOKED: Code.REVOKED,
    Reason.BAD_SIGNATURE: Code.BAD_SIGNATURE,
    Reason.NAME_CONSTRAINTS: Code.NAME_CONSTRAINTS,
    Reason.WRONG_USAGE: Code.WRONG_USAGE,
    Reason.WEAK_KEY: Code.WEAK_KEY,
    Reason.UNSUPPORTED_ALGORITHM: Code.WEAK_SIGNATURE,
    Reason.MALFORMED: Code.MALFORMED,
    Reason.INVALID: Code.INVALID,
}

#: Refusals none of the checks below can see for themselves: always reported.
_ALWAYS_REPORTED = {Reason.MALFORMED}

_WEAK_HASHES = (hashes.SHA1, hashes.MD5)


@dataclass(frozen=True)
class Judgement:
    """The outcome for one chain: the verified path (empty when none), the findings, and the
    policy it was judged by (client or server)."""

    path: tuple[x509.Certificate, ...]
    findings: list[Finding]
    usage: Usage = Usage.SERVER


def _who(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {format_serial(cert.serial_number)}"


def _role(index: int, cert: x509.Certificate) -> str:
    return "the certificate" if index == 0 else f"the issuing certificate {_who(cert)}"


def _self_issued(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except Exception:  # any failure means "not self-signed", whatever the key type says
        return False
    return True


def _dates(
    certs: Sequence[x509.Certificate], now: datetime, warn: timedelta, critical: timedelta
) -> list[Finding]:
    findings: list[Finding] = []
    for index, cert in enumerate(certs):
        role = _role(index, cert)
        not_after = cert.not_valid_after_utc
        left = not_after - now
        if now > not_after:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    Code.EXPIRED,
                    f"{role} expired on {not_after:%Y-%m-%d %H:%M} UTC "
                    f"({format_remaining(left)}); browsers refuse it: renew and deploy it",
                    index,
                )
            )
        elif now < cert.not_valid_before_utc:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    Code.NOT_YET_VALID,
                    f"{role} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                    "browsers refuse it (is this server's or the issuer's clock wrong?)",
                    index,
                )
            )
        elif left < critical or left < warn:
            severity = Severity.CRITICAL if left < critical else Severity.WARNING
            findings.append(
                Finding(
                    severity,
                    Code.EXPIRES_SOON,
                    f"{role} expires in {format_remaining(left)} "
                    f"({not_after:%Y-%m-%d %H:%M} UTC): renew it before then",
                    index,
                )
            )
    return findings


def _strength(certs: Sequence[x509.Certificate], anchors: int) -> list[Finding]:
    findings: list[Finding] = []
    for index, cert in enumerate(certs):
        try:
            key = cert.public_key()
            algorithm = cert.signature_hash_algorithm
        except PARSE_ERRORS:  # unreadable or unknown: the verdict's `malformed` says so
            continue
        weak = None
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            weak = f"a {key.key_size}-bit RSA key; browsers require at least {MIN_RSA_BITS} bits"
        elif isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
            weak = f"an EC key on {key.curve.name}; browsers accept P-256 and P-384"
        elif isinstance(key, dsa.DSAPublicKey):
            weak = "a DSA key, which no browser accepts"
        if weak is not None:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    Code.WEAK_KEY,
                    f"{_role(index, cert)} has {weak}: issue a new one with an ECDSA P-256 key",
                    index,
                )
            )
        # A root's own signature is never checked; every other one must be SHA-2 or better.
        if index < len(certs) - anchors or not _self_issued(cert):
            if isinstance(algorithm, _WEAK_HASHES):
                findings.append(
                    Finding(
                        Severity.CRITICAL,
                        Code.WEAK_SIGNATURE,
                        f"{_role(index, cert)} is signed with {algorithm.name.upper()}, which "
                        "browsers have refused since 2017",
                        index,
                    )
                )
    return findings


def _same_subject_and_key(a: x509.Certificate, b: x509.Certificate) -> bool:
    try:
        return a.subject == b.subject and bool(a.public_key() == b.public_key())
    except PARSE_ERRORS:
        return False


def _trust(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    trust_label: str,
) -> list[Finding]:
    """Why no path to a trusted root: self-signed, issuer not sent, or root not trusted."""
    leaf = chain[0]
    path, _ = build_path(leaf, [*chain[1:], *roots])
    top = path[-1]
    anchored = any(_same_subject_and_key(r, top) for r in roots)
    if anchored:
        return []
    if top is leaf and _self_issued(leaf):
        return [
            Finding(
                Severity.CRITICAL,
                Code.SELF_SIGNED,
                "the certificate is self-signed and not among the trusted roots "
                f"({trust_label}): browsers refuse it. Use a certificate from a CA the clients "
                "trust (tlsgate serve --acme, or your internal CA plus --ca for its clients)",
                0,
            )
        ]
    if _self_issued(top):
        return [
            Finding(
                Severity.CRITICAL,
                Code.UNKNOWN_ISSUER,
                f"the chain ends at the root {_who(top)}, which is not trusted here "
                f"({trust_label}); if it is your internal CA, check with --ca ROOT.pem",
                chain.index(top) if top in chain else None,
            )
        ]
    missing = top.issuer.rfc4514_string()
    sent = "the certificate" if top is leaf else f"{_who(top)}"
    return [
        Finding(
            Severity.CRITICAL,
            Code.INCOMPLETE_CHAIN,
            f"incomplete chain: {sent} was issued by {missing}, but the server did not send "
            f"that certificate and it is not a trusted root ({trust_label}). Configure the server "
            "with the full chain (leaf followed by intermediates: the 'fullchain' file); some "
            "browsers hide this by fetching the intermediate, most clients and Firefox fail",
            chain.index(top) if top in chain else None,
        )
    ]


def judge_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    name: str | None,
    now: datetime,
    warn_days: float,
    critical_days: float,
    trust_label: str,
) -> Judgement:
    """Every finding about ``chain`` (as presented, leaf first) for a client expecting ``name``.

    With a ``name``, the question is whether a server may present it for that name. Without
    one, a certificate is judged for what it is for (:func:`purpose_of`): an SVID, an e-mail or
    a client-only certificate by the client policy, with no host name to match.
    """
    if not chain:
        return Judgement((), [])
    leaf = chain[0]
    usage = Usage.SERVER if name is not None else purpose_of(leaf)
    findings: list[Finding] = []
    path: tuple[x509.Certificate, ...] = ()
    failure: VerificationFailed | None = None
    try:
        verified: VerifiedChain = verify_chain(
            leaf, chain[1:], roots, now=now, hostname=name, usage=usage
        )
        path = verified.certificates
    except VerificationFailed as exc:
        failure = exc
    shown = path or chain
    warn, critical = timedelta(days=warn_days), timedelta(days=critical_days)
    findings += _dates(shown, now, warn, critical)
    if name is not None and not _matches(leaf, name):
        findings.append(
            Finding(
                Severity.CRITICAL,
                Code.HOSTNAME_MISMATCH,
                f"the certificate is not valid for {name}: it names {_named(leaf)}. Browsers "
                "refuse it: issue one that includes this name",
                0,
            )
        )
    findings += _strength(shown, 1 if path else 0)
    if not path:
        findings += _trust(chain, roots, trust_label)
    if failure is not None and name is None and _lacks_sans(leaf):
        findings.append(
            Finding(
                Severity.CRITICAL,
                Code.NO_SUBJECT_ALT_NAME,
                "the certificate has no subjectAltName: clients have ignored the subject's "
                "common name since 2017, so it is valid for no name at all. Issue it with its "
                "names as subjectAltNames (tlsgate ca issue NAME...)",
                0,
            )
        )
    if failure is not None and (
        failure.reason in _ALWAYS_REPORTED
        or not any(f.severity is Severity.CRITICAL for f in findings)
    ):
        # Validation said no for a reason none of the checks above names: say what it said.
        findings.append(
            Finding(
                Severity.CRITICAL,
                _REASON_CODES.get(failure.reason, Code.INVALID),
                plain_refusal(failure, leaf, usage),
                chain.index(failure.certificate) if failure.certificate in chain else 0,
            )
        )
    return Judgement(path, findings, usage)


def _matches(leaf: x509.Certificate, name: str) -> bool:
    """Unreadable names match nothing, but are not a mismatch to report: `malformed` is."""
    try:
        return hostname_matches(leaf, name)
    except VerificationFailed:
        return True


def _lacks_sans(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return True
    except PARSE_ERRORS:  # there, but malformed: the `malformed` finding says so
        return False
    return False


def _named(cert: x509.Certificate) -> str:
    """What the certificate names, for "it names ...": hosts first, else whatever it carries."""
    try:
        sans = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return "no host at all (no subjectAltName)"
    except PARSE_ERRORS:
        return "nothing readable (its subjectAltName is malformed)"
    hosts = [str(n.value) for n in sans if isinstance(n, x509.DNSName | x509.IPAddress)]
    if hosts:
        return ", ".join(hosts)
    others = [
        str(n.value)
        for n in sans
        if isinstance(n, x509.UniformResourceIdentifier | x509.RFC822Name)
    ]
    return "no host, only " + ", ".join(others) if others else "no host at all"


def protocol_findings(version: str) -> list[Finding]:
    """TLS 1.0/1.1 were removed from every browser in 2020 (RFC 8996 deprecates them)."""
    shown = _LEGACY.get(version)
    if shown is None:
        return []
    return [
        Finding(
            Severity.CRITICAL,
            Code.LEGACY_TLS,
            f"the server speaks only {shown} here; browsers have refused TLS 1.0 and 1.1 "
            "since 2020 (RFC 8996). Enable TLS 1.2 and 1.3 on the server",
        )
    ]


_LEGACY = {"SSLv3": "SSL 3.0", "TLSv1": "TLS 1.0", "TLSv1.1": "TLS 1.1"}
