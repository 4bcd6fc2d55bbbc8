from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.errors import ConfigError, PolicyDenied
from tlsgate.pki.keys import KeyType, generate_key
from tlsgate.pki.names import NameConstraints, parse_identities
from tlsgate.pki.profiles import CLOCK_SKEW, LeafProfile, backdate, build_leaf

from .helpers import hierarchy


def ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def test_root_and_intermediate_shape(now: datetime) -> None:
    h = hierarchy(now)
    root_bc = ext(h.root, x509.BasicConstraints)
    assert root_bc.critical
    assert isinstance(root_bc.value, x509.BasicConstraints)
    assert root_bc.value.ca and root_bc.value.path_length == 1
    int_bc = ext(h.intermediate, x509.BasicConstraints).value
    assert isinstance(int_bc, x509.BasicConstraints)
    assert int_bc.ca and int_bc.path_length == 0
    for cert in (h.root, h.intermediate):
        ku = ext(cert, x509.KeyUsage)
        assert ku.critical
        assert isinstance(ku.value, x509.KeyUsage)
        assert ku.value.key_cert_sign and ku.value.crl_sign
    root_ski = ext(h.root, x509.SubjectKeyIdentifier).value
    int_aki = ext(h.intermediate, x509.AuthorityKeyIdentifier).value
    assert isinstance(root_ski, x509.SubjectKeyIdentifier)
    assert isinstance(int_aki, x509.AuthorityKeyIdentifier)
    assert int_aki.key_identifier == root_ski.digest
    assert h.intermediate.issuer == h.root.subject
    # The root signs the intermediate.
    h.intermediate.verify_directly_issued_by(h.root)


def test_server_leaf_shape(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("www.example.com", "127.0.0.1", now=now)
    bc = ext(leaf, x509.BasicConstraints)
    assert bc.critical and isinstance(bc.value, x509.BasicConstraints) and not bc.value.ca
    ku = ext(leaf, x509.KeyUsage).value
    assert isinstance(ku, x509.KeyUsage)
    assert ku.digital_signature and not ku.key_cert_sign and not ku.key_encipherment
    eku = ext(leaf, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.DNSName) == ["www.example.com"]
    assert leaf.subject.rfc4514_string() == "CN=www.example.com"
    # Backdated for clock skew, 90 days by default, 128-bit random serial.
    assert leaf.not_valid_before_utc <= now - CLOCK_SKEW + timedelta(seconds=1)
    assert leaf.not_valid_after_utc - now == pytest.approx(
        timedelta(days=90), abs=timedelta(seconds=1)
    )
    assert 0 < leaf.serial_number < 2**128
    aki = ext(leaf, x509.AuthorityKeyIdentifier).value
    ski = ext(h.intermediate, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier) and isinstance(
        ski, x509.SubjectKeyIdentifier
    )
    assert aki.key_identifier == ski.digest


@pytest.mark.parametrize(
    ("lifetime", "most"),
    [
        (timedelta(minutes=1), timedelta(seconds=1)),
        (timedelta(minutes=3), timedelta(seconds=2)),
        (timedelta(hours=1), timedelta(seconds=36)),
    ],
)
def test_short_leaf_is_backdated_in_proportion(
    now: datetime, lifetime: timedelta, most: timedelta
) -> None:
    """A fixed 5-minute backdate made a fresh 3-minute certificate 5/8 spent for a client that
    renews at two thirds of notAfter - notBefore (Caddy renewed it every 30 s)."""
    h = hierarchy(now)
    leaf = h.leaf("short.example", now=now, profile=LeafProfile(lifetime=lifetime))
    issued = now.replace(microsecond=0)
    assert issued - most <= leaf.not_valid_before_utc <= issued
    assert leaf.not_valid_after_utc == issued + lifetime
    # Where a two-thirds renewer renews: at least 64 % of the lifetime after issuance.
    life = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    renew_at = leaf.not_valid_before_utc + life * 2 / 3
    assert renew_at - issued >= lifetime * 0.64


def test_backdate_keeps_the_clock_skew_margin_for_long_certificates(now: datetime) -> None:
    assert backdate(timedelta(days=90)) == CLOCK_SKEW == timedelta(minutes=5)
    assert backdate(timedelta(hours=9)) == CLOCK_SKEW
    assert backdate(timedelta(hours=1)) == timedelta(seconds=36)
    h = hierarchy(now)
    leaf = h.leaf("long.example", now=now, profile=LeafProfile(lifetime=timedelta(days=90)))
    assert leaf.not_valid_before_utc == now.replace(microsecond=0) - CLOCK_SKEW
    assert h.root.not_valid_before_utc == now.replace(microsecond=0) - CLOCK_SKEW
    assert h.intermediate.not_valid_before_utc == now.replace(microsecond=0) - CLOCK_SKEW


def test_rsa_server_leaf_has_key_encipherment(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example", now=now, key=generate_key(KeyType.RSA_2048))
    ku = ext(leaf, x509.KeyUsage).value
    assert isinstance(ku, x509.KeyUsage) and ku.key_encipherment
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)


def test_client_and_both_usages(now: datetime) -> None:
    h = hierarchy(now)
    client = h.leaf("svc.internal", now=now, profile=LeafProfile(server=False, client=True))
    eku = ext(client, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    both = h.leaf("svc.internal", now=now, profile=LeafProfile(server=True, client=True))
    eku = ext(both, x509.ExtendedKeyUsage).value
    assert isinstance(eku, x509.ExtendedKeyUsage)
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    with pytest.raises(ConfigError):
        LeafProfile(server=False, client=False)


def test_spiffe_svid_shape(now: datetime) -> None:
    """X.509-SVID: one URI SAN, cA=false, critical KU with digitalSignature only, both EKUs."""
    h = hierarchy(now)
    leaf = h.leaf(
        "spiffe://prod.example/ns/web/sa/api",
        now=now,
        profile=LeafProfile(server=True, client=True),
    )
    san_ext = ext(leaf, x509.SubjectAlternativeName)
    assert isinstance(san_ext.value, x509.SubjectAlternativeName)
    uris = san_ext.value.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == ["spiffe://prod.example/ns/web/sa/api"]
    assert len(list(san_ext.value)) == 1
    # Empty subject -> SAN must be critical (RFC 5280 4.2.1.6).
    assert leaf.subject == x509.Name([]) and san_ext.critical
    ku = ext(leaf, x509.KeyUsage)
    assert ku.critical and isinstance(ku.value, x509.KeyUsage)
    assert ku.value.digital_signature and not ku.value.key_cert_sign and not ku.value.crl_sign


def test_lifetime_down_to_minutes(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example", now=now, profile=LeafProfile(lifetime=timedelta(minutes=5)))
    assert leaf.not_valid_after_utc - now == pytest.approx(
        timedelta(minutes=5), abs=timedelta(seconds=1)
    )
    with pytest.raises(ConfigError):
        LeafProfile(lifetime=timedelta(seconds=30))


def test_leaf_never_outlives_issuer(now: datetime) -> None:
    h = hierarchy(now, intermediate_lifetime=timedelta(days=30))
    with pytest.raises(PolicyDenied, match="outlive its issuer"):
        h.leaf("a.example", now=now, profile=LeafProfile(lifetime=timedelta(days=90)))


def test_crl_distribution_point(now: datetime) -> None:
    h = hierarchy(now)
    leaf = build_leaf(
        h.intermediate,
        h.intermediate_key,
        generate_key().public_key(),
        parse_identities(["a.example"]),
        LeafProfile(),
        now=now,
        crl_url="http://ca.internal/crl",
    )
    cdp = ext(leaf, x509.CRLDistributionPoints).value
    assert isinstance(cdp, x509.CRLDistributionPoints)
    assert cdp[0].full_name == [x509.UniformResourceIdentifier("http://ca.internal/crl")]


def test_name_constraints_refused_at_issuance(now: datetime) -> None:
    h = hierarchy(now, constraints=NameConstraints.build(["example.com"], permit_ip=["10.0.0.0/8"]))
    nc = ext(h.intermediate, x509.NameConstraints)
    assert nc.critical
    h.leaf("a.example.com", "10.1.2.3", now=now)
    with pytest.raises(PolicyDenied, match="outside"):
        h.leaf("evil.org", now=now)
    with pytest.raises(PolicyDenied, match="outside"):
        h.leaf("a.example.com", "192.168.1.1", now=now)
    # "example.com" must not permit "notexample.com".
    with pytest.raises(PolicyDenied):
        h.leaf("notexample.com", now=now)


def test_excluded_names(now: datetime) -> None:
    h = hierarchy(now, constraints=NameConstraints.build(exclude_dns=["secret.example"]))
    h.leaf("public.example", now=now)
    with pytest.raises(PolicyDenied, match="excluded"):
        h.leaf("db.secret.example", now=now)


@pytest.mark.parametrize("key_type", list(KeyType))
def test_every_key_type_builds_a_verifiable_hierarchy(now: datetime, key_type: KeyType) -> None:
    h = hierarchy(now, key_type=key_type)
    leaf = h.leaf("a.example", now=now, key=generate_key(key_type))
    leaf.verify_directly_issued_by(h.intermediate)
    h.intermediate.verify_directly_issued_by(h.root)
