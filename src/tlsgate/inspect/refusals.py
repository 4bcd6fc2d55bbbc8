"""Plain words for a chain the verifier refused, and the policy a certificate is judged by.

``cryptography`` explains a refusal in its own terms ("validation failed: candidates exhausted:
... (encountered processing <Certificate(...)>)"), which names neither the problem in words a
person can act on nor the fix. :func:`plain_refusal` turns a :class:`VerificationFailed` into a
sentence with the fix; the raw text never reaches the report.

:func:`purpose_of` answers which question to ask of a certificate when nobody named a host: a
SPIFFE SVID, an e-mail certificate or a certificate for client authentication only is meant for
clients, and judging it as a server certificate calls every one of them broken.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.pki.chain import Reason, Usage, VerificationFailed

__all__ = ["RAW_MARKERS", "plain_refusal", "purpose_of"]

#: Fragments only cryptography's own messages contain; a message with one is never shown.
RAW_MARKERS = (
    "validation failed",
    "candidates exhausted",
    "encountered processing",
    "<Certificate",
    "ParseError",
    "error parsing",
)

#: (fragment of cryptography's message, lower case) -> what it means, in order of precedence.
_DETAILS = (
    (
        "maximum name constraint",
        "its name constraints need more checks than any client is willing to do (more than a "
        "million, the limit cryptography and browsers set): a denial-of-service pattern",
    ),
    ("duplicate extension", "a certificate in it carries the same extension twice"),
    (
        "asn.1",
        "a certificate in it is malformed: part of it does not parse as RFC 5280 DER "
        "(a broken subjectAltName, name constraint or other extension)",
    ),
    ("malformed", "a certificate in it has a malformed extension (often its name constraints)"),
    (
        "must not be asserted in an ee",
        "the certificate is a CA certificate (basicConstraints CA:TRUE): a peer must present an "
        "end-entity certificate, never a CA",
    ),
    (
        "must be asserted in a ca",
        "an issuing certificate in it is not a CA (basicConstraints CA:TRUE is missing)",
    ),
    (
        "unaccounted-for critical",
        "a certificate in it has a critical extension clients do not know, so they must refuse it",
    ),
    (
        "incorrect criticality",
        "a certificate in it marks an extension critical where it must not, or the reverse",
    ),
    (
        "prohibited extension",
        "a certificate in it carries an extension not allowed there (such as name constraints "
        "on a leaf)",
    ),
    (
        "subjectaltname must",
        "the leaf's subjectAltName must be critical exactly when its subject is empty (RFC 5280)",
    ),
    ("serial", "a certificate's serial number is not 1 to 20 octets and positive (RFC 5280)"),
    ("non-empty issuer", "a certificate in it has an empty issuer name"),
    (
        "must contain keyidentifier",
        "a certificate's authorityKeyIdentifier lacks the key identifier",
    ),
    (
        "missing required extension",
        "a certificate in it lacks an extension clients require (keyUsage on a CA, "
        "basicConstraints, or a subjectAltName on the leaf)",
    ),
    ("name constraint", "an issuing CA's name constraints are malformed or forbid its names"),
    ("nameconstraints", "an issuing CA's name constraints are malformed or forbid its names"),
    (
        "path length",
        "it is longer than an issuing CA's path-length constraint (or the depth limit) allows",
    ),
    ("pathlen", "it is longer than an issuing CA's path-length constraint allows"),
    ("depth", "it is longer than the depth limit allows"),
    ("key usage", "a certificate's keyUsage does not allow what it is used for"),
    ("keyusage", "a certificate's keyUsage does not allow what it is used for"),
    ("signature", "a signature in it does not verify, or uses an algorithm clients refuse"),
    ("no matching subjectaltname", "the certificate names nothing the client asked for"),
)

_MALFORMED_PART = re.compile(
    r"(.*?(?:is malformed|appears more than once|cannot be used|is not supported))", re.S
)

_GENERIC = (
    "it breaks a rule of RFC 5280 or the CA/Browser Forum that clients enforce "
    "(`openssl verify -x509_strict` may name it)"
)


def _eku(cert: x509.Certificate) -> set[x509.ObjectIdentifier] | None:
    """The extended key usages, None when absent (any use); empty when unreadable."""
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension):
        return set()


def _sans(cert: x509.Certificate) -> list[x509.GeneralName]:
    try:
        return list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return []


def _is_spiffe(name: x509.GeneralName) -> bool:
    return isinstance(name, x509.UniformResourceIdentifier) and name.value.lower().startswith(
        "spiffe://"
    )


def purpose_of(leaf: x509.Certificate) -> Usage:
    """The policy to judge ``leaf`` by when no host name is asked for.

    Client: its extended key usage allows client but not server authentication; or it carries a
    SPIFFE ID (an X.509-SVID is verified by that ID, never by a host name); or it names e-mail
    addresses and no host. Anything else is a server certificate.
    """
    eku = _eku(leaf)
    if (
        eku is not None
        and ExtendedKeyUsageOID.CLIENT_AUTH in eku
        and ExtendedKeyUsageOID.SERVER_AUTH not in eku
    ):
        return Usage.CLIENT
    sans = _sans(leaf)
    if any(_is_spiffe(n) for n in sans):
        return Usage.CLIENT
    hosts = any(isinstance(n, x509.DNSName | x509.IPAddress) for n in sans)
    if not hosts and any(isinstance(n, x509.RFC822Name) for n in sans):
        return Usage.CLIENT
    return Usage.SERVER


def _what(leaf: x509.Certificate) -> str:
    sans = _sans(leaf)
    if any(_is_spiffe(n) for n in sans):
        return "an X.509-SVID (a SPIFFE ID)"
    if any(isinstance(n, x509.RFC822Name) for n in sans):
        return "an e-mail certificate"
    return "the certificate"


def _wrong_usage(leaf: x509.Certificate, usage: Usage) -> str:
    eku = _eku(leaf)
    if usage is Usage.SERVER and eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        return (
            "the certificate is a client certificate (its extended key usage does not include "
            "server authentication): clients refuse it from a server. Issue one for server use "
            "(tlsgate ca issue NAME --server)"
        )
    if usage is Usage.CLIENT and eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        return (
            f"{_what(leaf)} is for clients, but its extended key usage does not include client "
            "authentication: servers refuse it from a client. Issue it with --client"
        )
    return (
        f"the certificate is not allowed for {usage.value} authentication "
        "(its keyUsage or extended key usage forbids it)"
    )


def plain_refusal(failure: VerificationFailed, leaf: x509.Certificate, usage: Usage) -> str:
    """Why the chain was refused, in words with the fix, never cryptography's own message."""
    if failure.reason is Reason.WRONG_USAGE:
        return _wrong_usage(leaf, usage)
    message = str(failure)
    if failure.reason is Reason.MALFORMED:
        # "the leaf's subjectAltName extension is malformed (ParseError {...})": the part is
        # named in words; the parser's own detail after it helps nobody.
        part = _MALFORMED_PART.match(message)
        if part is not None:
            return f"{part.group(1)}: clients refuse a certificate they cannot parse; reissue it"
    if not any(marker.lower() in message.lower() for marker in RAW_MARKERS):
        return message
    lowered = message.lower()
    meaning = next((text for fragment, text in _DETAILS if fragment in lowered), _GENERIC)
    return f"clients refuse this chain: {meaning}"
