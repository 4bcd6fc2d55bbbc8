"""A chain's name constraints cost at most cryptography's own budget of comparisons.

x509-limbo's ``pathological::nc-dos-*`` chains (a CA with thousands of constraints over a leaf
with thousands of names) took 7-8 s in the pure-Python re-check after cryptography had already
stopped at its limit. The work is counted here, never timed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from tlsgate.pki import diagnosis
from tlsgate.pki.chain import Reason, VerificationFailed, diagnose, verify_chain
from tlsgate.pki.keys import generate_key
from tlsgate.pki.names import (
    NAME_CONSTRAINT_CHECK_LIMIT,
    ComparisonBudget,
    NameConstraints,
    TooManyNameChecks,
    check_constraints,
)

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NAMES = 1100  # 1100 names x 1100 exclusions alone > 2**20 comparisons


class CountingBudget(ComparisonBudget):
    """The real budget, remembered so a test can read how much work was done."""

    made: ClassVar[list[CountingBudget]] = []

    def __init__(self, limit: int = NAME_CONSTRAINT_CHECK_LIMIT) -> None:
        super().__init__(limit)
        CountingBudget.made.append(self)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[CountingBudget]:
    CountingBudget.made = []
    monkeypatch.setattr(diagnosis, "ComparisonBudget", CountingBudget)
    return CountingBudget.made


def pathological_chain() -> tuple[x509.Certificate, x509.Certificate]:
    """root [NAMES + 1 permits, NAMES excludes] -> leaf [NAMES names], as in nc-dos-1."""
    root_key, leaf_key = generate_key(), generate_key()
    name = x509.Name.from_rfc4514_string("CN=Constrained Root")
    permitted: list[x509.GeneralName] = [x509.DNSName(f"t{i}.test") for i in range(NAMES + 1)]
    excluded: list[x509.GeneralName] = [x509.DNSName(f"x{i}.test") for i in range(NAMES)]
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(root_key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.NameConstraints(permitted, excluded), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=t0.test"))
        .issuer_name(name)
        .public_key(leaf_key.public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(hours=1))
        .not_valid_after(NOW + timedelta(days=10))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"t{i}.test") for i in range(NAMES)]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return root, leaf


@pytest.fixture(scope="module")
def chain() -> tuple[x509.Certificate, x509.Certificate]:
    return pathological_chain()


def test_check_constraints_stops_at_the_budget() -> None:
    constraints = NameConstraints.build(exclude_dns=[f"x{i}.test" for i in range(50)])
    names = [x509.DNSName(f"t{i}.test") for i in range(50)]
    check_constraints(names, constraints, ComparisonBudget(2500))  # 50 x 50 = 2500: fits
    budget = ComparisonBudget(2499)
    with pytest.raises(TooManyNameChecks, match="too many name-constraint checks"):
        check_constraints(names, constraints, budget)
    assert budget.used == 2500  # the one comparison over the limit is not made


def test_verify_chain_stops_where_cryptography_does(
    chain: tuple[x509.Certificate, x509.Certificate], counted: list[CountingBudget]
) -> None:
    root, leaf = chain
    with pytest.raises(VerificationFailed) as exc:
        verify_chain(leaf, [], [root], now=NOW, hostname="t0.test")
    assert exc.value.reason is Reason.NAME_CONSTRAINTS
    assert "too many name-constraint checks" in str(exc.value)
    # cryptography said it ran out: not one comparison is made again in Python.
    assert sum(b.used for b in counted) == 0


def test_diagnose_alone_is_bounded_by_the_same_budget(
    chain: tuple[x509.Certificate, x509.Certificate], counted: list[CountingBudget]
) -> None:
    """Without cryptography's word (an empty detail), the Python re-check stops at 2**20."""
    root, leaf = chain
    failure = diagnose(leaf, [], [root], now=NOW, hostname="t0.test", detail="")
    assert failure.reason is Reason.NAME_CONSTRAINTS
    assert "too many name-constraint checks" in str(failure)
    assert len(counted) == 1 and counted[0].used == NAME_CONSTRAINT_CHECK_LIMIT + 1
