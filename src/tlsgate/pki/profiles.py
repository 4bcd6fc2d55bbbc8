"""Certificate templates: root, intermediate, and server/client leaves.

Each builder is a pure function of its inputs, ``now`` included, so the same call makes the same
certificate apart from the signature and tests need no clock tricks. The shapes follow RFC 5280 and
the CA/Browser Forum baseline: a root that signs only intermediates (path length 1), an
intermediate that signs only leaves (path length 0), and leaves that cannot sign anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsgate.errors import ConfigError, PolicyDenied
from tlsgate.pki.keys import PrivateKey, PublicKey, signature_hash
from tlsgate.pki.names import NameConstraints, check_constraints
from tlsgate.pki.serial import random_serial

__all__ = [
    "BACKDATE_SHARE",
    "CLOCK_SKEW",
    "DEFAULT_INTERMEDIATE_LIFETIME",
    "DEFAULT_LEAF_LIFETIME",
    "DEFAULT_ROOT_LIFETIME",
    "MIN_LEAF_LIFETIME",
    "LeafProfile",
    "backdate",
    "build_intermediate",
    "build_leaf",
    "build_root",
]

DEFAULT_ROOT_LIFETIME = timedelta(days=3650)
DEFAULT_INTERMEDIATE_LIFETIME = timedelta(days=365 * 3)
DEFAULT_LEAF_LIFETIME = timedelta(days=90)
MIN_LEAF_LIFETIME = timedelta(minutes=1)
#: The most not-before is moved back, so that a client whose clock is slightly behind still
#: accepts a certificate issued a moment ago.
CLOCK_SKEW = timedelta(minutes=5)
#: The backdate as a share of the lifetime, for certificates too short for the full CLOCK_SKEW.
BACKDATE_SHARE = 0.01


def backdate(lifetime: timedelta) -> timedelta:
    """How far not-before goes back for a certificate meant to live ``lifetime`` (whole seconds).

    1 % of the lifetime, at most :data:`CLOCK_SKEW`: 5 minutes from about 8 hours up, 1.8 s for a
    3-minute certificate. A client that renews at two thirds of notAfter - notBefore (Caddy,
    certbot, ARI) renews a fixed 5-minute backdate away: a fresh 3-minute certificate looked
    5/8 spent and was renewed every 30 s. In proportion, the backdate never moves the renewal
    point by more than 1 % of the life. The larger CAs backdate a fixed amount because their
    shortest certificates live days (Boulder 0.9 x its configured maximum, 1 hour in production
    for 6 days and more; step-ca 1 minute by default, for 5 minutes and more); 1 % keeps the
    same order of share for any lifetime. notAfter stays issuance + lifetime, as in step-ca.
    """
    share = timedelta(seconds=int(lifetime.total_seconds() * BACKDATE_SHARE))
    return max(timedelta(0), min(CLOCK_SKEW, share))


@dataclass(frozen=True)
class LeafProfile:
    """What a leaf may be used for and how long it lives."""

    server: bool = True
    client: bool = False
    lifetime: timedelta = DEFAULT_LEAF_LIFETIME

    def __post_init__(self) -> None:
        if not (self.server or self.client):
            raise ConfigError("a certificate must be for server use, client use, or both")
        if self.lifetime < MIN_LEAF_LIFETIME:
            raise ConfigError("a certificate must live at least one minute")

    def usages(self) -> list[str]:
        return [u for u, on in (("server", self.server), ("client", self.client)) if on]


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca_name(common_name: str, organization: str | None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def build_root(
    key: PrivateKey,
    common_name: str,
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_ROOT_LIFETIME,
    organization: str | None = None,
) -> x509.Certificate:
    """A self-signed root: trusted by definition, it signs only intermediates (path length 1)."""
    name = _ca_name(common_name, organization)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(random_serial())
        .not_valid_before(now - backdate(lifetime))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return builder.sign(key, signature_hash(key))


def build_intermediate(
    root: x509.Certificate,
    root_key: PrivateKey,
    public_key: PublicKey,
    common_name: str,
    *,
    now: datetime,
    lifetime: timedelta = DEFAULT_INTERMEDIATE_LIFETIME,
    constraints: NameConstraints | None = None,
    organization: str | None = None,
) -> x509.Certificate:
    """An intermediate that signs leaves only (path length 0), optionally name-constrained.

    Name constraints go here, not on the root: verifiers are required to honour them on
    intermediates, while some ignore them on trust anchors.
    """
    not_after = min(now + lifetime, root.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(common_name, organization))
        .issuer_name(root.subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(now - backdate(not_after - now))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(root), critical=False)
    )
    if constraints:
        builder = builder.add_extension(constraints.extension(), critical=True)
    return builder.sign(root_key, signature_hash(root_key))


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _leaf_subject(names: Sequence[x509.GeneralName]) -> x509.Name:
    """CN = the first DNS name or IP (old clients still read it); empty for URI-only SVIDs."""
    for name in names:
        if isinstance(name, x509.DNSName | x509.IPAddress):
            text = str(name.value)
            if len(text) <= 64:
                return _name(text)
    return x509.Name([])


def build_leaf(
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    public_key: PublicKey,
    names: Sequence[x509.GeneralName],
    profile: LeafProfile,
    *,
    now: datetime,
    serial: int | None = None,
    crl_url: str | None = None,
    constraints: NameConstraints | None = None,
) -> x509.Certificate:
    """A leaf for ``names``; refuses to outlive its issuer or to leave the issuer's constraints.

    ``constraints`` defaults to the issuer's own name constraints; passing an empty
    :class:`NameConstraints` skips the check (tests use that to forge what a verifier must reject).
    """
    if not names:
        raise PolicyDenied("a certificate needs at least one name")
    if constraints is None:
        constraints = NameConstraints.from_certificate(issuer)
    check_constraints(names, constraints)
    not_after = now + profile.lifetime
    if not_after > issuer.not_valid_after_utc:
        raise PolicyDenied(
            f"the certificate would outlive its issuer, which expires on "
            f"{issuer.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; ask for a shorter lifetime"
        )
    subject = _leaf_subject(names)
    eku = [
        oid
        for oid, on in (
            (ExtendedKeyUsageOID.SERVER_AUTH, profile.server),
            (ExtendedKeyUsageOID.CLIENT_AUTH, profile.client),
        )
        if on
    ]
    rsa_server = isinstance(public_key, rsa.RSAPublicKey) and profile.server
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else random_serial())
        .not_valid_before(now - backdate(profile.lifetime))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                # TLS 1.2 RSA key exchange still needs it from RSA server keys.
                key_encipherment=rsa_server,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension must be critical.
        .add_extension(x509.SubjectAlternativeName(list(names)), critical=not subject)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, signature_hash(issuer_key))
