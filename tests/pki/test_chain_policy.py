"""What verify_chain enforces beyond cryptography's defaults, and what "no hostname" means.

Chain depth, RSA size for every certificate in the path (cryptography only checks the keys that
verify a signature, so a 1024-bit leaf passed), ``hostname=None`` as "everything but the name",
and CRLs that cannot be trusted reported instead of skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.pki.helpers import Hierarchy, hierarchy
from tlsgate.pki.chain import MAX_DEPTH, Reason, VerificationFailed, verify_chain
from tlsgate.pki.keys import PrivateKey, generate_key
from tlsgate.pki.profiles import LeafProfile
from tlsgate.pki.revocation import RevokedEntry, build_crl

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LeafKey = PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey


@pytest.fixture(scope="module")
def pki() -> Hierarchy:
    return hierarchy(NOW - timedelta(days=1), name="Policy")


def _key_usage(*, crl_sign: bool = True, ca: bool = True) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def ca_cert(
    name: str,
    key: PrivateKey | rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: PrivateKey | rsa.RSAPrivateKey,
    *,
    crl_sign: bool = True,
) -> x509.Certificate:
    subject = x509.Name.from_rfc4514_string(f"CN={name}")
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(crl_sign=crl_sign), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def leaf_cert(
    issuer: x509.Certificate,
    issuer_key: PrivateKey | rsa.RSAPrivateKey,
    names: list[x509.GeneralName] | None,
    *,
    key: LeafKey | None = None,
    usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
) -> x509.Certificate:
    key = key or generate_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=leaf"))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def long_chain(
    intermediates: int,
) -> tuple[x509.Certificate, list[x509.Certificate], x509.Certificate]:
    root_key = generate_key()
    root = ca_cert("Deep Root", root_key, None, root_key)
    chain: list[x509.Certificate] = []
    issuer, issuer_key = root, root_key
    for depth in range(intermediates):
        key = generate_key()
        issuer = ca_cert(f"Deep {depth}", key, issuer, issuer_key)
        issuer_key = key
        chain.insert(0, issuer)
    leaf = leaf_cert(issuer, issuer_key, [x509.DNSName("deep.example")])
    return leaf, chain, root


# -- chain depth --------------------------------------------------------------------------------


def test_max_depth_is_enforced_and_named() -> None:
    leaf, intermediates, root = long_chain(3)
    verify_chain(leaf, intermediates, [root], now=NOW, hostname="deep.example", max_depth=3)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, intermediates, [root], now=NOW, hostname="deep.example", max_depth=2)
    assert exc.value.reason is Reason.INVALID
    assert "too long: more than 2 intermediate certificates" in str(exc.value)


def test_default_max_depth_is_cryptographys() -> None:
    assert MAX_DEPTH == 8
    leaf, intermediates, root = long_chain(MAX_DEPTH + 1)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, intermediates, [root], now=NOW)
    assert "too long: more than 8 intermediate" in str(exc.value)
    verify_chain(leaf, intermediates, [root], now=NOW, max_depth=MAX_DEPTH + 1)


def test_max_depth_out_of_range_is_a_programming_error(pki: Hierarchy) -> None:
    with pytest.raises(ValueError, match="max_depth"):
        verify_chain(pki.intermediate, [], [pki.root], now=NOW, max_depth=256)


# -- hostname=None: everything but the name -----------------------------------------------------


def test_no_hostname_accepts_a_wildcard_only_certificate(pki: Hierarchy) -> None:
    leaf = pki.leaf("*.shop.example", now=NOW)
    chain = verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW)
    assert chain.leaf == leaf


def test_no_hostname_does_not_check_against_the_first_name(pki: Hierarchy) -> None:
    """The old behaviour verified for the first SAN: an IP-only or URI-first leaf now passes
    on its merits, and the name is simply not checked."""
    leaf = pki.leaf("10.0.0.7", "api.example", now=NOW)
    verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW)


def test_no_hostname_still_requires_a_subject_alt_name(pki: Hierarchy) -> None:
    leaf = leaf_cert(pki.intermediate, pki.intermediate_key, None)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW)
    assert exc.value.reason is Reason.INVALID
    assert "no subjectAltName" in str(exc.value)
    assert "no-name.invalid" not in str(exc.value)


def test_no_hostname_still_requires_server_auth(pki: Hierarchy) -> None:
    client = pki.leaf("svc.example", now=NOW, profile=LeafProfile(server=False, client=True))
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(client, [pki.intermediate], [pki.root], now=NOW)
    assert exc.value.reason is Reason.WRONG_USAGE


# -- RSA key size everywhere in the path --------------------------------------------------------


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.mark.parametrize("hostname", ["a.example", None])
def test_a_1024_bit_rsa_leaf_is_refused(
    pki: Hierarchy, rsa1024: rsa.RSAPrivateKey, hostname: str | None
) -> None:
    """cryptography checks the size of keys that verify signatures; a leaf's signs nothing."""
    leaf = leaf_cert(
        pki.intermediate, pki.intermediate_key, [x509.DNSName("a.example")], key=rsa1024
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, hostname=hostname)
    assert exc.value.reason is Reason.WEAK_KEY and "1024-bit RSA" in str(exc.value)
    assert exc.value.certificate == leaf


@pytest.mark.parametrize(
    ("make_key", "words"),
    [
        (lambda: rsa.generate_private_key(65537, 2052), "2052-bit RSA key; the CA/Browser Forum"),
        (lambda: ec.generate_private_key(ec.SECP192R1()), "an EC key on secp192r1"),
        (lambda: dsa.generate_private_key(2048), "a DSA key, which no browser accepts"),
    ],
    ids=["rsa-2052", "p-192", "dsa"],
)
def test_other_keys_browsers_refuse_in_a_leaf(
    pki: Hierarchy, make_key: Callable[[], LeafKey], words: str
) -> None:
    leaf = leaf_cert(
        pki.intermediate, pki.intermediate_key, [x509.DNSName("a.example")], key=make_key()
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, hostname="a.example")
    assert exc.value.reason is Reason.WEAK_KEY and words in str(exc.value)


def test_a_1024_bit_rsa_intermediate_is_refused(pki: Hierarchy, rsa1024: rsa.RSAPrivateKey) -> None:
    weak = ca_cert("Weak Intermediate", rsa1024, pki.root, pki.root_key)
    leaf = leaf_cert(weak, rsa1024, [x509.DNSName("a.example")])
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [weak], [pki.root], now=NOW, hostname="a.example")
    assert exc.value.reason is Reason.WEAK_KEY and exc.value.certificate == weak


# -- CRLs that cannot be trusted ----------------------------------------------------------------


def crl_for(
    issuer: x509.Certificate,
    key: PrivateKey,
    revoked: list[int] = (),  # type: ignore[assignment]
    *,
    last_update: datetime = NOW - timedelta(hours=1),
    next_update: datetime = NOW + timedelta(days=1),
    number: bool = True,
    critical_number: bool = False,
) -> x509.CertificateRevocationList:
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
    builder = builder.last_update(last_update).next_update(next_update)
    if number:
        builder = builder.add_extension(x509.CRLNumber(7), critical=critical_number)
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(NOW - timedelta(minutes=5))
            .build()
        )
    return builder.sign(key, hashes.SHA256())


def test_a_good_crl_is_used(pki: Hierarchy) -> None:
    leaf = pki.leaf("a.example", now=NOW)
    good = crl_for(pki.intermediate, pki.intermediate_key)
    verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, crls=[good])
    revoking = crl_for(pki.intermediate, pki.intermediate_key, [leaf.serial_number])
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, crls=[revoking])
    assert exc.value.reason is Reason.REVOKED


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("forged", "its signature does not verify with the key of CN=Policy Intermediate"),
        ("no-number", "it has no CRL number"),
        ("critical-number", "its CRL number is marked critical"),
        ("not-yet-valid", "it is not valid until"),
        ("stale", "it is out of date: its nextUpdate was"),
    ],
)
def test_an_untrustworthy_crl_is_reported_not_skipped(
    pki: Hierarchy, case: str, words: str
) -> None:
    leaf = pki.leaf("a.example", now=NOW)
    key = pki.intermediate_key
    crl = {
        "forged": lambda: crl_for(pki.intermediate, generate_key(), [leaf.serial_number]),
        "no-number": lambda: crl_for(pki.intermediate, key, number=False),
        "critical-number": lambda: crl_for(pki.intermediate, key, critical_number=True),
        "not-yet-valid": lambda: crl_for(pki.intermediate, key, last_update=NOW + timedelta(1)),
        "stale": lambda: crl_for(
            pki.intermediate, key, last_update=NOW - timedelta(8), next_update=NOW - timedelta(1)
        ),
    }[case]()
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, crls=[crl])
    assert exc.value.reason is Reason.BAD_CRL
    assert "the CRL from CN=Policy Intermediate cannot be trusted: " + words in str(exc.value)


def test_a_crl_from_an_issuer_without_crl_sign_is_reported() -> None:
    root_key, int_key = generate_key(), generate_key()
    root = ca_cert("NoCRL Root", root_key, None, root_key)
    intermediate = ca_cert("NoCRL Intermediate", int_key, root, root_key, crl_sign=False)
    leaf = leaf_cert(intermediate, int_key, [x509.DNSName("a.example")])
    verify_chain(leaf, [intermediate], [root], now=NOW)
    crl = crl_for(intermediate, int_key)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [intermediate], [root], now=NOW, crls=[crl])
    assert exc.value.reason is Reason.BAD_CRL and "lacks cRLSign" in str(exc.value)


def test_an_authentic_stale_crl_still_proves_a_revocation(pki: Hierarchy) -> None:
    """Out of date, it cannot say "not revoked"; signed by the issuer, it still says "revoked"."""
    leaf = pki.leaf("a.example", now=NOW)
    stale = crl_for(
        pki.intermediate,
        pki.intermediate_key,
        [leaf.serial_number],
        last_update=NOW - timedelta(8),
        next_update=NOW - timedelta(1),
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, crls=[stale])
    assert exc.value.reason is Reason.REVOKED


def test_a_revocation_in_a_good_crl_wins_over_a_bad_crl(pki: Hierarchy) -> None:
    leaf = pki.leaf("a.example", now=NOW)
    stale = crl_for(
        pki.intermediate,
        pki.intermediate_key,
        last_update=NOW - timedelta(8),
        next_update=NOW - timedelta(1),
    )
    revoking = build_crl(
        pki.intermediate,
        pki.intermediate_key,
        [RevokedEntry(leaf.serial_number, NOW - timedelta(minutes=1))],
        number=2,
        now=NOW - timedelta(minutes=1),
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [pki.intermediate], [pki.root], now=NOW, crls=[stale, revoking])
    assert exc.value.reason is Reason.REVOKED
