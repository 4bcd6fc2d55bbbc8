from __future__ import annotations

import multiprocessing
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tlsgate.ca import CertificateAuthority
from tlsgate.errors import AlreadyExists, ConfigError, InvalidKey, NotInitialized, PolicyDenied
from tlsgate.pki.chain import Reason, VerificationFailed, verify_chain
from tlsgate.pki.csr import build_csr, check_csr
from tlsgate.pki.keys import KeyType, generate_key
from tlsgate.pki.names import NameConstraints, parse_identities
from tlsgate.pki.profiles import LeafProfile
from tlsgate.pki.revocation import parse_reason
from tlsgate.store.acme import AccountStatus, AcmeAccount, AcmeOrder, OrderStatus
from tlsgate.store.base import CertStatus
from tlsgate.store.sqlite import SQLiteStore


def test_load_without_init(store: SQLiteStore) -> None:
    with pytest.raises(NotInitialized, match="tlsgate ca init"):
        CertificateAuthority.load(store)


def test_init_refuses_to_overwrite(
    ca: CertificateAuthority, store: SQLiteStore, now: datetime
) -> None:
    with pytest.raises(AlreadyExists, match="--force"):
        CertificateAuthority.init(store, now=now)
    replaced = CertificateAuthority.init(store, now=now, force=True)
    assert replaced.root != ca.root
    assert CertificateAuthority.load(store).root == replaced.root


def test_issue_generated_key_is_recorded_and_verifies(
    ca: CertificateAuthority, now: datetime
) -> None:
    issued = ca.issue(parse_identities(["www.example.com", "127.0.0.1"]), now=now)
    assert issued.private_key is not None
    assert issued.certificate.public_key() == issued.private_key.public_key()
    verify_chain(
        issued.certificate, [issued.intermediate], [issued.root], now=now, hostname="127.0.0.1"
    )
    record = ca.store.get_certificate(issued.certificate.serial_number)
    assert record.names == ("www.example.com", "127.0.0.1")
    assert record.status is CertStatus.VALID
    assert record.pem == issued.cert_pem
    assert issued.fullchain_pem == issued.cert_pem + issued.chain_pem


def test_issue_from_csr_keeps_requester_key(ca: CertificateAuthority, now: datetime) -> None:
    key = generate_key(KeyType.RSA_3072)
    csr = check_csr(build_csr(key, parse_identities(["api.internal"])))
    issued = ca.issue(csr.names, now=now, csr=csr, profile=LeafProfile(client=True))
    assert issued.private_key is None
    assert issued.certificate.public_key() == key.public_key()


def test_serials_unique(ca: CertificateAuthority, now: datetime) -> None:
    names = parse_identities(["a.example"])
    serials = {ca.issue(names, now=now).certificate.serial_number for _ in range(50)}
    assert len(serials) == 50
    assert len(ca.certificates()) == 50


def test_constraints_enforced(store: SQLiteStore, now: datetime) -> None:
    ca = CertificateAuthority.init(
        store,
        now=now,
        constraints=NameConstraints.build(["corp.example"], permit_ip=["10.0.0.0/8"]),
    )
    ca.issue(parse_identities(["db.corp.example", "10.0.0.5"]), now=now)
    with pytest.raises(PolicyDenied):
        ca.issue(parse_identities(["www.google.com"]), now=now)
    assert len(ca.certificates()) == 1  # nothing recorded for the refusal
    # Constraints survive a reload from the store.
    assert CertificateAuthority.load(store).constraints == ca.constraints


def test_revoke_and_crl(ca: CertificateAuthority, now: datetime) -> None:
    names = parse_identities(["a.example"])
    bad = ca.issue(names, now=now)
    good = ca.issue(names, now=now)
    short = ca.issue(names, now=now, profile=LeafProfile(lifetime=timedelta(minutes=5)))
    ca.revoke(bad.certificate.serial_number, now=now, reason=parse_reason("key-compromise"))
    ca.revoke(short.certificate.serial_number, now=now, reason=parse_reason("superseded"))
    later = now + timedelta(minutes=10)
    crl = ca.crl(now=later)
    # The expired one is dropped; the live revoked one is listed.
    assert [e.serial_number for e in crl] == [bad.certificate.serial_number]
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(bad.certificate, [ca.intermediate], [ca.root], now=later, crls=[crl])
    assert exc.value.reason is Reason.REVOKED
    verify_chain(good.certificate, [ca.intermediate], [ca.root], now=later, crls=[crl])
    first = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    second = ca.crl(now=later).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert second > first
    root_crl = ca.root_crl(now=now)
    assert root_crl.issuer == ca.root.subject and len(root_crl) == 0


def test_passphrase_protects_keys(store: SQLiteStore, state_dir: Path, now: datetime) -> None:
    CertificateAuthority.init(store, now=now, passphrase=b"correct horse")
    for key_file in (state_dir / "keys").iterdir():
        assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    names = parse_identities(["a.example"])
    with pytest.raises(InvalidKey, match="TLSGATE_CA_PASSPHRASE"):
        CertificateAuthority.load(store).issue(names, now=now)
    with pytest.raises(InvalidKey, match="wrong passphrase"):
        CertificateAuthority.load(store, b"wrong").issue(names, now=now)
    CertificateAuthority.load(store, b"correct horse").issue(names, now=now)
    assert len(store.list_certificates()) == 1


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P384, KeyType.RSA_2048, KeyType.ED25519])
def test_other_ca_key_types(store: SQLiteStore, now: datetime, key_type: KeyType) -> None:
    ca = CertificateAuthority.init(store, now=now, key_type=key_type)
    issued = CertificateAuthority.load(store).issue(parse_identities(["a.example"]), now=now)
    issued.certificate.verify_directly_issued_by(ca.intermediate)


def test_intermediate_cannot_outlive_root(store: SQLiteStore, now: datetime) -> None:
    with pytest.raises(PolicyDenied):
        CertificateAuthority.init(
            store,
            now=now,
            root_lifetime=timedelta(days=10),
            intermediate_lifetime=timedelta(days=20),
        )
    assert store.active_authority() is None


def _init(directory: str, barrier: Barrier, results: Queue[str]) -> None:
    store = SQLiteStore(Path(directory))
    barrier.wait()
    try:
        ca = CertificateAuthority.init(store, now=datetime.now(UTC))
        results.put(ca.root.fingerprint(hashes.SHA256()).hex())
    except AlreadyExists:
        results.put("exists")
    store.close()


def test_racing_inits_one_wins(state_dir: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_init, args=(str(state_dir), barrier, results)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    outcomes = sorted(results.get(timeout=5) for _ in procs)
    assert outcomes.count("exists") == 3
    store = SQLiteStore(state_dir)
    ca = CertificateAuthority.load(store)
    assert len(list((state_dir / "keys").iterdir())) == 2
    ca.issue(parse_identities(["a.example"]), now=datetime.now(UTC))
    store.close()


@pytest.mark.parametrize("name", ["", "   ", "x" * 60])
def test_ca_name_must_fit(store: SQLiteStore, now: datetime, name: str) -> None:
    with pytest.raises(ConfigError, match="CA name"):
        CertificateAuthority.init(store, now=now, name=name)
    assert store.active_authority() is None


def test_acme_issuance_and_revocation_are_audited(
    ca: CertificateAuthority, store: SQLiteStore, now: datetime
) -> None:
    account = AcmeAccount("acct", "{}", "tp", (), AccountStatus.VALID, now)
    store.add_account(account)
    order = AcmeOrder("ord", account.id, (), OrderStatus.PROCESSING, now, (), now)
    store.add_order(order, [], [])
    issued = ca.issue(
        parse_identities(["a.example"]), now=now, requester="acme:acct", order_id="ord"
    )
    serial = issued.certificate.serial_number
    assert store.get_certificate(serial).order_id == "ord"
    revoked = ca.revoke(serial, now=now, reason=parse_reason("superseded"), revoked_by="acme:acct")
    assert (revoked.requester, revoked.revoked_by) == ("acme:acct", "acme:acct")
