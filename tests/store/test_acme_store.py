"""The ACME part of the Store contract on every backend: round trips, uniqueness, compare-and-set,
atomicity; and the SQLite schema migration that added it."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest

from tlsgate.errors import AlreadyExists, NotFound, StorageError
from tlsgate.store import Store, open_store
from tlsgate.store.acme import (
    AccountStatus,
    AcmeAccount,
    AcmeAuthorization,
    AcmeChallenge,
    AcmeIdentifier,
    AcmeOrder,
    AuthzStatus,
    ChallengeStatus,
    ChallengeType,
    OrderStatus,
    new_id,
)
from tlsgate.store.base import CertificateRecord, CertStatus, NewAuthority
from tlsgate.store.sqlite import _MIGRATIONS, DB_NAME, SQLiteStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DNS = AcmeIdentifier("dns", "a.example")


def account(tag: str = "1") -> AcmeAccount:
    return AcmeAccount(
        id=new_id(),
        jwk=f'{{"kty":"OKP","crv":"Ed25519","x":"{tag}"}}',
        thumbprint=f"thumb-{tag}",
        contact=("mailto:a@example.com", "mailto:b@example.com"),
        status=AccountStatus.VALID,
        created_at=NOW,
        eab_kid="kid-1",
    )


def authorization(
    account_id: str, *, status: AuthzStatus = AuthzStatus.PENDING, days: int = 7
) -> AcmeAuthorization:
    return AcmeAuthorization(
        id=new_id(),
        account_id=account_id,
        identifier=DNS,
        status=status,
        expires=NOW + timedelta(days=days),
        created_at=NOW,
    )


def challenges(authz: AcmeAuthorization) -> list[AcmeChallenge]:
    return [
        AcmeChallenge(new_id(), authz.id, kind, token="tok")
        for kind in (ChallengeType.HTTP_01, ChallengeType.DNS_01, ChallengeType.TLS_ALPN_01)
    ]


def order(account_id: str, authz_ids: tuple[str, ...], **changes: object) -> AcmeOrder:
    base = AcmeOrder(
        id=new_id(),
        account_id=account_id,
        identifiers=(DNS,),
        status=OrderStatus.PENDING,
        expires=NOW + timedelta(days=7),
        authorization_ids=authz_ids,
        created_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def new_order(store: Store, account_id: str) -> tuple[AcmeOrder, AcmeAuthorization]:
    authz = authorization(account_id)
    o = order(account_id, (authz.id,))
    store.add_order(o, [authz], challenges(authz))
    return o, authz


def new_authority() -> NewAuthority:
    return NewAuthority("t", b"root", b"int", {"a1": b"k1", "a2": b"k2"}, "a1", "a2", None, NOW)


def certificate(serial: int, authority_id: int, **changes: object) -> CertificateRecord:
    base = CertificateRecord(
        serial, authority_id, ("a.example",), ("server",), NOW, NOW + timedelta(days=90), NOW, b"p"
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# -- accounts ----------------------------------------------------------------------------------
def test_account_round_trip_and_lookup(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    assert store.get_account(acct.id) == acct
    assert store.find_account_by_thumbprint("thumb-1") == acct
    assert store.find_account_by_thumbprint("thumb-x") is None
    with pytest.raises(NotFound):
        store.get_account("nope")
    assert len(acct.id) == 22 and "=" not in acct.id  # 16 bytes of base64url


def test_duplicate_thumbprint_is_refused(store: Store) -> None:
    store.add_account(account("1"))
    with pytest.raises(AlreadyExists, match="already exists for this key"):
        store.add_account(account("1"))
    first = account("2")
    store.add_account(first)
    with pytest.raises(AlreadyExists, match="is taken"):
        store.add_account(replace(account("3"), id=first.id))


def test_update_account(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    got = store.update_account(acct.id, contact=["mailto:new@example.com"])
    assert got == replace(acct, contact=("mailto:new@example.com",))
    got = store.update_account(acct.id, jwk='{"new":1}', thumbprint="thumb-new")
    assert (got.jwk, got.thumbprint) == ('{"new":1}', "thumb-new")
    assert store.find_account_by_thumbprint("thumb-1") is None  # the old key is free again
    got = store.update_account(acct.id, status=AccountStatus.DEACTIVATED)
    assert got.status is AccountStatus.DEACTIVATED and got.thumbprint == "thumb-new"
    assert store.update_account(acct.id) == got
    with pytest.raises(NotFound):
        store.update_account("nope", status=AccountStatus.DEACTIVATED)
    with pytest.raises(StorageError, match="both"):
        store.update_account(acct.id, jwk="{}")


def test_key_change_to_a_taken_thumbprint_is_refused(store: Store) -> None:
    one, two = account("1"), account("2")
    store.add_account(one)
    store.add_account(two)
    with pytest.raises(AlreadyExists, match="another ACME account"):
        store.update_account(one.id, jwk=two.jwk, thumbprint=two.thumbprint, contact=["x"])
    assert store.get_account(one.id) == one  # nothing changed, not even the contact


# -- orders, authorizations, challenges --------------------------------------------------------
def test_order_authorization_challenge_round_trip(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    authz = replace(authorization(acct.id), wildcard=True)
    chals = challenges(authz)
    chals[1] = replace(chals[1], status=ChallengeStatus.INVALID, validated_at=NOW, error='{"e":1}')
    full = order(
        acct.id,
        (authz.id,),
        identifiers=(AcmeIdentifier("dns", "*.a.example"), AcmeIdentifier("ip", "192.0.2.1")),
        not_before=NOW,
        not_after=NOW + timedelta(days=1),
        error='{"type":"x"}',
        replaces="aaa.bbb",
        profile="shortlived",
    )
    store.add_order(full, [authz], chals)
    assert store.get_order(full.id) == full
    assert store.get_authorization(authz.id) == authz
    assert list(store.challenges_for(authz.id)) == chals  # in the order they were offered
    assert store.get_challenge(chals[1].id) == chals[1]
    second, _ = new_order(store, acct.id)
    assert [o.id for o in store.list_orders(acct.id)] == [full.id, second.id]
    assert store.list_orders("nobody") == []
    assert store.challenges_for("nothing") == []
    for getter in (store.get_order, store.get_authorization, store.get_challenge):
        with pytest.raises(NotFound):
            getter("unknown")


def test_add_order_is_all_or_nothing(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    _, taken = new_order(store, acct.id)
    authz = authorization(acct.id)
    chals = challenges(authz)
    chals[-1] = replace(chals[-1], id=store.challenges_for(taken.id)[0].id)  # fails last
    o = order(acct.id, (authz.id,))
    with pytest.raises(AlreadyExists):
        store.add_order(o, [authz], chals)
    with pytest.raises(NotFound):
        store.get_order(o.id)
    with pytest.raises(NotFound):
        store.get_authorization(authz.id)
    assert store.challenges_for(authz.id) == []
    assert len(store.list_orders(acct.id)) == 1


def test_add_order_refuses_records_that_do_not_belong(store: Store) -> None:
    acct, other = account("1"), account("2")
    store.add_account(acct)
    store.add_account(other)
    _, others_authz = new_order(store, other.id)
    authz = authorization(acct.id)
    cases: list[tuple[AcmeOrder, list[AcmeAuthorization], type[Exception]]] = [
        (order(acct.id, (authz.id, others_authz.id)), [authz], NotFound),  # not ours to reuse
        (order(acct.id, (authz.id, "missing")), [authz], NotFound),
        (order("ghost", (authz.id,)), [replace(authz, account_id="ghost")], NotFound),
        (order(acct.id, ()), [authz], StorageError),  # a new authz the order does not list
        (order(acct.id, (authz.id, authz.id)), [authz], StorageError),
        (order(other.id, (authz.id,)), [authz], StorageError),  # authz of another account
    ]
    for o, authzs, error in cases:
        with pytest.raises(error):
            store.add_order(o, authzs, challenges(authz))
        with pytest.raises(NotFound):
            store.get_authorization(authz.id)
    stray = AcmeChallenge(new_id(), "elsewhere", ChallengeType.DNS_01, "t")
    with pytest.raises(StorageError, match="not for a new authorization"):
        store.add_order(order(acct.id, (authz.id,)), [authz], [stray])
    assert store.list_orders(acct.id) == []


def test_authorization_reuse_only_while_valid_unexpired_and_own(store: Store) -> None:
    acct, other = account("1"), account("2")
    store.add_account(acct)
    store.add_account(other)
    _, authz = new_order(store, acct.id)
    assert store.find_valid_authorization(acct.id, DNS, NOW) is None  # still pending
    assert store.update_authorization(authz.id, status=AuthzStatus.VALID)
    assert store.find_valid_authorization(acct.id, DNS, NOW) == replace(
        authz, status=AuthzStatus.VALID
    )
    assert store.find_valid_authorization(other.id, DNS, NOW) is None
    assert store.find_valid_authorization(acct.id, AcmeIdentifier("dns", "b.example"), NOW) is None
    assert store.find_valid_authorization(acct.id, DNS, NOW, wildcard=True) is None
    assert store.find_valid_authorization(acct.id, DNS, authz.expires) is None  # expired
    # The one valid longest wins; a reused authorization is referenced by id only.
    longer = authorization(acct.id, status=AuthzStatus.VALID, days=20)
    store.add_order(order(acct.id, (longer.id,)), [longer], [])
    found = store.find_valid_authorization(acct.id, DNS, NOW)
    assert found == longer
    reusing = order(acct.id, (found.id,))
    store.add_order(reusing, [], [])
    assert store.get_order(reusing.id).authorization_ids == (longer.id,)
    store.update_authorization(longer.id, status=AuthzStatus.DEACTIVATED)
    store.update_authorization(authz.id, status=AuthzStatus.REVOKED)
    assert store.find_valid_authorization(acct.id, DNS, NOW) is None


def test_compare_and_set(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    o, authz = new_order(store, acct.id)
    assert store.update_order(o.id, status=OrderStatus.READY, expected_status=OrderStatus.PENDING)
    ready = OrderStatus.READY
    assert store.update_order(o.id, status=OrderStatus.PROCESSING, expected_status=ready)
    assert not store.update_order(o.id, status=OrderStatus.PROCESSING, expected_status=ready)
    assert store.update_order(o.id, error='{"late":1}')  # unconditional
    assert store.get_order(o.id).status is OrderStatus.PROCESSING
    with pytest.raises(NotFound):
        store.update_order("nope", status=OrderStatus.INVALID)
    pending = AuthzStatus.PENDING
    assert not store.update_authorization(
        authz.id, status=AuthzStatus.DEACTIVATED, expected_status=AuthzStatus.VALID
    )
    assert store.update_authorization(
        authz.id, status=AuthzStatus.DEACTIVATED, expected_status=pending
    )
    with pytest.raises(NotFound):
        store.update_authorization("nope", status=AuthzStatus.VALID)
    with pytest.raises(NotFound):
        store.update_challenge("nope", status=ChallengeStatus.VALID)


def test_challenge_outcome_updates_its_authorization_atomically(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    _, authz = new_order(store, acct.id)
    chal = store.challenges_for(authz.id)[0]
    start = ChallengeStatus.PENDING
    assert store.update_challenge(chal.id, status=ChallengeStatus.PROCESSING, expected_status=start)
    lost = store.update_challenge(
        chal.id,
        status=ChallengeStatus.PROCESSING,
        expected_status=start,
        authorization_status=AuthzStatus.INVALID,
    )
    assert not lost and store.get_authorization(authz.id).status is AuthzStatus.PENDING
    assert store.update_challenge(
        chal.id,
        status=ChallengeStatus.VALID,
        validated_at=NOW,
        expected_status=ChallengeStatus.PROCESSING,
        authorization_status=AuthzStatus.VALID,
    )
    assert store.get_challenge(chal.id) == replace(
        chal, status=ChallengeStatus.VALID, validated_at=NOW
    )
    assert store.get_authorization(authz.id).status is AuthzStatus.VALID
    others = store.challenges_for(authz.id)[1:]
    assert all(c.status is ChallengeStatus.PENDING for c in others)


def test_order_certificate_link_and_revoker(store: Store) -> None:
    auth = store.create_authority(new_authority())
    acct = account()
    store.add_account(acct)
    o, _ = new_order(store, acct.id)
    with pytest.raises(NotFound, match="0BAD"):
        store.update_order(o.id, status=OrderStatus.VALID, certificate_serial=0xBAD)
    assert store.get_order(o.id).status is OrderStatus.PENDING  # rolled back whole
    with pytest.raises(NotFound, match="ACME order"):
        store.add_certificate(certificate(5, auth.id, order_id="ghost"))
    store.add_certificate(certificate(5, auth.id, order_id=o.id, requester=f"acme:{acct.id}"))
    assert store.update_order(o.id, status=OrderStatus.VALID, certificate_serial=5)
    got = store.get_order(o.id)
    assert (got.status, got.certificate_serial) == (OrderStatus.VALID, 5)
    cert = store.get_certificate(5)
    assert (cert.order_id, cert.requester, cert.revoked_by) == (o.id, f"acme:{acct.id}", None)
    revoked = store.revoke_certificate(5, at=NOW, reason="keyCompromise", revoked_by="acme:x")
    assert (revoked.status, revoked.revoked_by) == (CertStatus.REVOKED, "acme:x")
    store.add_certificate(certificate(6, auth.id))
    assert store.revoke_certificate(6, at=NOW, reason="superseded").revoked_by == "cli"


# -- schema migration --------------------------------------------------------------------------
def test_migration_from_schema_2_keeps_data(state_dir: Path) -> None:
    state_dir.mkdir(mode=0o700)
    db = sqlite3.connect(state_dir / DB_NAME, isolation_level=None)
    for migration in _MIGRATIONS[:2]:  # what the previous release created
        db.executescript(migration)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO authority (name, root_pem, intermediate_pem, root_key_id,"
        " intermediate_key_id, created_at) VALUES ('old', x'00', x'00', 'a1', 'a2', ?)",
        ("2025-01-01T00:00:00.000000Z",),
    )
    db.execute(
        "INSERT INTO certificate (serial, authority_id, names, usages, not_before, not_after,"
        " issued_at, pem, requester) VALUES ('07', 1, '[\"a.example\"]', '[\"server\"]', ?, ?, ?,"
        " x'70', 'old-cli')",
        ("2026-01-01T00:00:00.000000Z",) * 3,
    )
    db.close()
    store = SQLiteStore(state_dir)
    cert = store.get_certificate(7)
    assert (cert.names, cert.requester, cert.order_id, cert.revoked_by) == (
        ("a.example",),
        "old-cli",
        None,
        None,
    )
    assert store.revoke_certificate(7, at=NOW, reason="superseded").revoked_by == "cli"
    acct = account()
    store.add_account(acct)  # the new tables are there
    new_order(store, acct.id)
    store.close()
    db = sqlite3.connect(state_dir / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone() == (len(_MIGRATIONS),)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    db.close()


# -- several processes at once -----------------------------------------------------------------
def _finalize(location: str, order_id: str, barrier: Barrier, out: Queue[bool]) -> None:
    store = open_store(location)
    barrier.wait(timeout=60)
    out.put(
        store.update_order(
            order_id, status=OrderStatus.PROCESSING, expected_status=OrderStatus.READY
        )
    )
    store.close()


def test_concurrent_finalize_has_one_winner(store_location: str) -> None:
    store = open_store(store_location)
    acct = account()
    store.add_account(acct)
    o, _ = new_order(store, acct.id)
    store.update_order(o.id, status=OrderStatus.READY)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    out: Queue[bool] = ctx.Queue()
    procs = [
        ctx.Process(target=_finalize, args=(store_location, o.id, barrier, out)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sorted(results) == [False, False, False, True]
    assert store.get_order(o.id).status is OrderStatus.PROCESSING
    store.close()


def test_first_validation_outcome_decides_the_authorization(store: Store) -> None:
    """Two challenges of one authorization validated at once (say on two nodes): the first
    outcome stands; and an outcome arriving after deactivation does not revive it."""
    acct = account()
    store.add_account(acct)
    _, authz = new_order(store, acct.id)
    first, second = store.challenges_for(authz.id)[:2]
    for chal in (first, second):
        assert store.update_challenge(
            chal.id, status=ChallengeStatus.PROCESSING, expected_status=ChallengeStatus.PENDING
        )
    assert store.update_challenge(
        first.id,
        status=ChallengeStatus.VALID,
        validated_at=NOW,
        expected_status=ChallengeStatus.PROCESSING,
        authorization_status=AuthzStatus.VALID,
    )
    assert store.update_challenge(
        second.id,
        status=ChallengeStatus.INVALID,
        expected_status=ChallengeStatus.PROCESSING,
        authorization_status=AuthzStatus.INVALID,
    )  # the challenge records its own outcome...
    assert store.get_challenge(second.id).status is ChallengeStatus.INVALID
    assert store.get_authorization(authz.id).status is AuthzStatus.VALID  # ...not its parent's

    _, deactivated = new_order(store, acct.id)
    chal = store.challenges_for(deactivated.id)[0]
    assert store.update_challenge(
        chal.id, status=ChallengeStatus.PROCESSING, expected_status=ChallengeStatus.PENDING
    )
    assert store.update_authorization(deactivated.id, status=AuthzStatus.DEACTIVATED)
    assert store.update_challenge(
        chal.id,
        status=ChallengeStatus.VALID,
        validated_at=NOW,
        expected_status=ChallengeStatus.PROCESSING,
        authorization_status=AuthzStatus.VALID,
    )
    assert store.get_authorization(deactivated.id).status is AuthzStatus.DEACTIVATED


# -- what a stopped node left processing -------------------------------------------------------
def test_processing_since_and_csr_round_trip(store: Store) -> None:
    acct = account()
    store.add_account(acct)
    o, authz = new_order(store, acct.id)
    assert (store.get_order(o.id).processing_since, store.get_order(o.id).csr) == (None, None)
    assert store.update_order(
        o.id,
        status=OrderStatus.PROCESSING,
        expected_status=OrderStatus.PENDING,
        processing_since=NOW,
        csr=b"\x30\x00der",
    )
    got = store.get_order(o.id)
    assert (got.status, got.processing_since, got.csr) == (
        OrderStatus.PROCESSING,
        NOW,
        b"\x30\x00der",
    )
    first = store.challenges_for(authz.id)[0]
    assert first.processing_since is None
    later = NOW + timedelta(seconds=3)
    assert store.update_challenge(
        first.id,
        status=ChallengeStatus.PROCESSING,
        expected_status=ChallengeStatus.PENDING,
        processing_since=later,
    )
    assert store.get_challenge(first.id).processing_since == later


def test_take_over_order_only_when_stale_and_once(stores: list[Store]) -> None:
    store = stores[0]
    acct = account()
    store.add_account(acct)
    o, _ = new_order(store, acct.id)
    minute = timedelta(minutes=1)
    # Not processing: nothing to take over.
    assert not store.take_over_order(o.id, stale_before=NOW, now=NOW)
    store.update_order(o.id, status=OrderStatus.PROCESSING, processing_since=NOW)
    assert not store.take_over_order(o.id, stale_before=NOW, now=NOW + minute)  # fresh
    later = NOW + 2 * minute
    results = _at_once(
        stores, lambda s: s.take_over_order(o.id, stale_before=later - minute, now=later)
    )
    assert results.count(True) == 1  # of many nodes noticing at once, one takes it
    assert store.get_order(o.id).processing_since == later
    with pytest.raises(NotFound):
        store.take_over_order("ghost", stale_before=NOW, now=NOW)


def test_take_over_order_without_a_recorded_start(store: Store) -> None:
    """Rows made processing before schema 6 have no start time: they count as abandoned."""
    acct = account()
    store.add_account(acct)
    o, _ = new_order(store, acct.id)
    store.update_order(o.id, status=OrderStatus.PROCESSING)
    assert store.take_over_order(o.id, stale_before=NOW, now=NOW)
    assert not store.take_over_order(o.id, stale_before=NOW, now=NOW)


def test_order_certificate(store: Store) -> None:
    auth = store.create_authority(new_authority())
    acct = account()
    store.add_account(acct)
    o, _ = new_order(store, acct.id)
    assert store.order_certificate(o.id) is None
    store.add_certificate(certificate(0x7F01, auth.id, order_id=o.id))
    store.add_certificate(certificate(0x02, auth.id, issued_at=NOW + timedelta(seconds=1)))
    assert store.order_certificate(o.id) == 0x7F01


def _at_once(stores: list[Store], work: object) -> list[object]:
    barrier = threading.Barrier(len(stores))
    results: list[object] = [None] * len(stores)

    def run(index: int, s: Store) -> None:
        barrier.wait(timeout=60)
        results[index] = work(s)  # type: ignore[operator]

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return results


@pytest.fixture
def stores(store: Store) -> Iterator[list[Store]]:
    """10 stores on the same state, each with its own connection, like 10 nodes."""
    opened = [store.reopen() for _ in range(10)]
    yield opened
    for s in opened:
        s.close()
