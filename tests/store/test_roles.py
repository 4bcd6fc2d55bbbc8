"""Every backend implements every role of the store, and ``Store`` is exactly their union.

The assignments in :func:`_backends_implement_every_role` are for mypy (``scripts`` run it
over tests): a backend missing a method, or with one of a different signature, fails the type
check there. The tests below hold the same at run time, by name, for a reader without mypy.
"""

from __future__ import annotations

import inspect

import pytest

from tlsgate.store.acme import AcmeStore
from tlsgate.store.base import Store
from tlsgate.store.postgres import PostgresStore
from tlsgate.store.roles import (
    AcmeServerStore,
    CAStore,
    ChangeFeed,
    Coordination,
    IssuingStore,
    LeasedRenewalStore,
    Leases,
    Located,
    NonceTable,
    RateTokens,
    RenewalStore,
    ServedCertificateStore,
    TicketSecret,
)
from tlsgate.store.sqlite import SQLiteStore

#: The smallest roles: each method of the store is in exactly one of them.
SMALL_ROLES: tuple[type, ...] = (
    CAStore,
    AcmeStore,
    RenewalStore,
    ChangeFeed,
    TicketSecret,
    Leases,
    NonceTable,
    RateTokens,
)
#: Every role, with the unions a consumer of several is typed against.
ROLES: tuple[type, ...] = (
    Located,
    *SMALL_ROLES,
    Coordination,
    AcmeServerStore,
    IssuingStore,
    LeasedRenewalStore,
    ServedCertificateStore,
)
BACKENDS: tuple[type, ...] = (SQLiteStore, PostgresStore)


def _backends_implement_every_role(sqlite: SQLiteStore, postgres: PostgresStore) -> None:
    """Never called: mypy checks each backend against each role structurally."""
    for store in (sqlite, postgres):
        whole: Store = store
        ca: CAStore = store
        acme: AcmeStore = store
        renewal: RenewalStore = store
        coordination: Coordination = store
        del whole, ca, acme, renewal, coordination


def _members(protocol: type) -> set[str]:
    return {
        name
        for klass in protocol.__mro__
        if klass is not object and getattr(klass, "_is_protocol", False)
        for name in vars(klass)
        if not name.startswith("_")
    }


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
@pytest.mark.parametrize("role", ROLES, ids=lambda r: r.__name__)
def test_backend_has_every_method_of_the_role(backend: type, role: type) -> None:
    missing = {name for name in _members(role) if not hasattr(backend, name)}
    assert not missing, f"{backend.__name__} lacks {sorted(missing)} of {role.__name__}"


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.__name__)
def test_backend_signatures_match_the_protocol(backend: type) -> None:
    for name in _members(Store):
        wanted = getattr(Store, name)
        if isinstance(wanted, property):
            assert isinstance(getattr(backend, name), property), name
            continue
        expected = list(inspect.signature(wanted).parameters)
        assert list(inspect.signature(getattr(backend, name)).parameters) == expected, name


def test_store_is_the_union_of_the_roles() -> None:
    roles = set().union(*(_members(role) for role in ROLES))
    assert _members(Store) - roles == {"reopen", "close"}
    assert roles <= _members(Store)


def test_roles_do_not_overlap() -> None:
    """One method, one role (Coordination gathers the small ones, Located is in each)."""
    seen: dict[str, str] = {}
    for role in SMALL_ROLES:
        for name in _members(role) - _members(Located):
            assert name not in seen, f"{name} is in {seen.get(name)} and {role.__name__}"
            seen[name] = role.__name__
