"""Every refusal reason a browser gives, produced by a real chain and named precisely."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tlsgate.pki.chain import Reason, Usage, VerificationFailed, verify_chain
from tlsgate.pki.keys import KeyType, generate_key
from tlsgate.pki.names import NameConstraints
from tlsgate.pki.profiles import LeafProfile, build_intermediate, build_leaf, build_root
from tlsgate.pki.revocation import RevokedEntry, build_crl, parse_reason

from .helpers import hierarchy


def reason_of(excinfo: pytest.ExceptionInfo[VerificationFailed]) -> Reason:
    return excinfo.value.reason


def test_valid_chain_returns_full_path(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("www.example.com", now=now)
    chain = verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="www.example.com")
    assert chain.certificates == (leaf, h.intermediate, h.root)
    assert chain.anchor == h.root and chain.leaf == leaf


def test_wildcard_and_ip_hosts(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("*.example.com", "::1", now=now)
    verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="api.example.com")
    verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="::1")
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="a.b.example.com")
    assert reason_of(exc) is Reason.HOSTNAME_MISMATCH
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="example.com")
    assert reason_of(exc) is Reason.HOSTNAME_MISMATCH


def test_hostname_mismatch_names_what_it_is_for(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example.com", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now, hostname="b.example.com")
    assert reason_of(exc) is Reason.HOSTNAME_MISMATCH
    assert "b.example.com" in str(exc.value) and "a.example.com" in str(exc.value)


def test_expired_and_not_yet_valid(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example", now=now, profile=LeafProfile(lifetime=timedelta(hours=1)))
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now + timedelta(hours=2))
    assert reason_of(exc) is Reason.EXPIRED and "expired on" in str(exc.value)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now - timedelta(days=1))
    assert reason_of(exc) is Reason.NOT_YET_VALID


def test_expired_intermediate_is_named(now: datetime) -> None:
    """A server still sending an expired intermediate while its leaf is valid (a classic outage)."""
    h = hierarchy(now)
    stale = build_intermediate(
        h.root,
        h.root_key,
        h.intermediate_key.public_key(),
        "Test Intermediate",
        now=now - timedelta(days=30),
        lifetime=timedelta(days=20),
    )
    leaf = h.leaf("a.example", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [stale], [h.root], now=now)
    assert reason_of(exc) is Reason.EXPIRED
    assert "issuing certificate" in str(exc.value) and exc.value.certificate == stale


def test_unknown_issuer_missing_intermediate(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [], [h.root], now=now)
    assert reason_of(exc) is Reason.UNKNOWN_ISSUER
    assert "missing intermediate" in str(exc.value)


def test_unknown_issuer_other_ca(now: datetime) -> None:
    h = hierarchy(now)
    other = hierarchy(now, name="Other")
    leaf = h.leaf("a.example", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [other.root], now=now)
    assert reason_of(exc) in (Reason.UNKNOWN_ISSUER, Reason.SELF_SIGNED)


def test_self_signed(now: datetime) -> None:
    h = hierarchy(now)
    key = generate_key()
    selfsigned = build_root(key, "me", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(selfsigned, [], [h.root], now=now)
    assert reason_of(exc) is Reason.SELF_SIGNED


def test_bad_signature(now: datetime) -> None:
    h = hierarchy(now)
    impostor = generate_key()
    leaf = build_leaf(
        h.intermediate,
        impostor,  # claims the intermediate as issuer, signed by another key
        generate_key().public_key(),
        [x509.DNSName("a.example")],
        LeafProfile(),
        now=now,
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now)
    assert reason_of(exc) is Reason.BAD_SIGNATURE


def test_name_constraint_violation_of_a_forged_leaf(now: datetime) -> None:
    h = hierarchy(now, constraints=NameConstraints.build(["example.com"]))
    forged = build_leaf(
        h.intermediate,
        h.intermediate_key,
        generate_key().public_key(),
        [x509.DNSName("bank.test")],
        LeafProfile(),
        now=now,
        constraints=NameConstraints(),  # bypass our own issuance check
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(forged, [h.intermediate], [h.root], now=now, hostname="bank.test")
    assert reason_of(exc) is Reason.NAME_CONSTRAINTS


def test_wrong_usage(now: datetime) -> None:
    h = hierarchy(now)
    server_only = h.leaf("svc.internal", now=now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(server_only, [h.intermediate], [h.root], now=now, usage=Usage.CLIENT)
    assert reason_of(exc) is Reason.WRONG_USAGE
    client = h.leaf("svc.internal", now=now, profile=LeafProfile(server=False, client=True))
    verify_chain(client, [h.intermediate], [h.root], now=now, usage=Usage.CLIENT)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(client, [h.intermediate], [h.root], now=now, usage=Usage.SERVER)
    assert reason_of(exc) is Reason.WRONG_USAGE


def test_weak_rsa_key(now: datetime) -> None:
    h = hierarchy(now)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(h.intermediate.subject)
        .public_key(weak.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example")]), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(h.intermediate_key, hashes.SHA256())
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now)
    assert reason_of(exc) is Reason.WEAK_KEY and "1024" in str(exc.value)


def test_ed25519_is_not_web_pki(now: datetime) -> None:
    h = hierarchy(now, key_type=KeyType.ED25519)
    leaf = h.leaf("a.example", now=now, key=generate_key(KeyType.ED25519))
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now)
    assert reason_of(exc) is Reason.UNSUPPORTED_ALGORITHM


def test_revoked_by_crl(now: datetime) -> None:
    h = hierarchy(now)
    leaf = h.leaf("a.example", now=now)
    other = h.leaf("b.example", now=now)
    crl = build_crl(
        h.intermediate,
        h.intermediate_key,
        [
            RevokedEntry(
                leaf.serial_number, now - timedelta(seconds=1), parse_reason("keyCompromise")
            )
        ],
        number=1,
        now=now,
    )
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [h.intermediate], [h.root], now=now, crls=[crl])
    assert reason_of(exc) is Reason.REVOKED and "key-compromise" in str(exc.value)
    verify_chain(other, [h.intermediate], [h.root], now=now, crls=[crl])


def test_crl_from_another_issuer_is_ignored(now: datetime) -> None:
    h = hierarchy(now)
    other = hierarchy(now, name="Other")
    leaf = h.leaf("a.example", now=now)
    forged_crl = build_crl(
        other.intermediate,
        other.intermediate_key,
        [RevokedEntry(leaf.serial_number, now - timedelta(seconds=1))],
        number=1,
        now=now,
    )
    verify_chain(leaf, [h.intermediate], [h.root], now=now, crls=[forged_crl])


def test_no_trust_anchors(now: datetime) -> None:
    h = hierarchy(now)
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(h.leaf("a.example", now=now), [h.intermediate], [], now=now)
    assert reason_of(exc) is Reason.UNKNOWN_ISSUER
