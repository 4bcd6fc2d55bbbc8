"""Identifier policy and rate limits of the ACME server (tlsgate.acme.server.policy)."""

from __future__ import annotations

import ipaddress

import pytest

from tlsgate.acme.server.policy import IdentifierPolicy, RateLimiter
from tlsgate.pki.names import NameConstraints


def kinds(policy: IdentifierPolicy, *identifiers: tuple[str, str]) -> list[str]:
    return [r.kind for r in policy.check(list(identifiers))]


def test_open_policy_accepts_names_wildcards_and_ips() -> None:
    policy = IdentifierPolicy()
    assert policy.check([("dns", "a.example.test"), ("dns", "*.example.test"), ("ip", "::1")]) == []
    assert policy.canonical(("ip", "::1")) == ("ip", "::1")


@pytest.mark.parametrize(
    ("identifier", "kind"),
    [
        (("email", "a@example.test"), "unsupportedIdentifier"),
        (("dns", "A.example.test"), "rejectedIdentifier"),  # not canonical: upper case
        (("dns", "a.example.test."), "rejectedIdentifier"),  # trailing dot
        (("dns", "bücher.example"), "rejectedIdentifier"),  # U-label: must be xn--
        (("dns", "*.*.example.test"), "rejectedIdentifier"),
        (("dns", "*.test"), "rejectedIdentifier"),
        (("dns", "-bad-.example.test"), "rejectedIdentifier"),
        (("ip", "300.1.1.1"), "malformed"),
        (("ip", "::0:1"), "malformed"),  # RFC 8738: the compressed form
    ],
)
def test_refusals_name_the_rfc_error(identifier: tuple[str, str], kind: str) -> None:
    assert kinds(IdentifierPolicy(), identifier) == [kind]


def test_every_refusal_is_reported_and_empty_orders_are_malformed() -> None:
    policy = IdentifierPolicy()
    refusals = policy.check([("dns", "ok.example.test"), ("dns", "BAD"), ("x", "y")])
    assert [r.identifier for r in refusals] == [("dns", "BAD"), ("x", "y")]
    assert kinds(policy) == ["malformed"]
    assert kinds(
        IdentifierPolicy(max_identifiers=2), *[("dns", f"{i}.example.test") for i in "abc"]
    ) == ["rejectedIdentifier"]


def test_name_constraints_of_the_ca_apply() -> None:
    constraints = NameConstraints.build(
        permit_dns=["example.test"], exclude_dns=["no.example.test"]
    )
    policy = IdentifierPolicy(constraints)
    assert kinds(policy, ("dns", "a.example.test")) == []
    assert kinds(policy, ("dns", "other.test")) == ["rejectedIdentifier"]
    assert kinds(policy, ("dns", "no.example.test")) == ["rejectedIdentifier"]
    # A wildcard one label above an excluded name would cover it.
    assert kinds(policy, ("dns", "*.example.test")) == ["rejectedIdentifier"]
    assert "outside the CA's permitted names" in policy.check([("dns", "x.org")])[0].detail


def test_allow_list_narrows_further() -> None:
    policy = IdentifierPolicy(
        allow_dns=("apps.example.test",), allow_ip=(ipaddress.ip_network("127.0.0.0/8"),)
    )
    assert kinds(policy, ("dns", "apps.example.test"), ("dns", "a.apps.example.test")) == []
    assert kinds(policy, ("dns", "*.apps.example.test"), ("ip", "127.0.0.1")) == []
    assert kinds(policy, ("dns", "db.example.test"), ("ip", "10.0.0.1")) == [
        "rejectedIdentifier",
        "rejectedIdentifier",
    ]
    dns_only = IdentifierPolicy(allow_dns=("example.test",))
    assert kinds(dns_only, ("ip", "127.0.0.1")) == ["rejectedIdentifier"]


def test_rate_limiter_bursts_then_refills() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("acct", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("acct", 0.0) == pytest.approx(0.5)
    assert limiter.take("other", 0.0) == 0.0  # buckets are per key
    assert limiter.take("acct", 0.5) == 0.0  # one token back after 1/rate seconds
    assert limiter.take("acct", 0.5) > 0
    assert limiter.take("acct", 10.0) == 0.0  # refilled, but never above the burst
    assert [limiter.take("acct", 10.0) for _ in range(3)][-1] > 0
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
