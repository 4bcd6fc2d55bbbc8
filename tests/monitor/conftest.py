"""Real certificates from a test CA, and Report values built from them (data, not mocks)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509

from tlsgate.ca import CertificateAuthority
from tlsgate.inspect import Code, Finding, Report, Severity
from tlsgate.pki.names import parse_identities
from tlsgate.pki.profiles import LeafProfile

Issue = Callable[[str, float], tuple[x509.Certificate, x509.Certificate]]
MakeReport = Callable[..., Report]


@pytest.fixture
def issue(ca: CertificateAuthority, now: datetime) -> Issue:
    """``issue(name, days)``: a leaf for ``name`` living ``days`` from now, and its intermediate."""

    def make(name: str, days: float) -> tuple[x509.Certificate, x509.Certificate]:
        issued = ca.issue(
            parse_identities([name]), now=now, profile=LeafProfile(lifetime=timedelta(days=days))
        )
        return issued.certificate, issued.intermediate

    return make


@pytest.fixture
def report(issue: Issue, now: datetime) -> MakeReport:
    """``report(target, severity, codes, days=, reachable=)``, as a check would return it."""

    def make(
        target: str,
        severity: Severity = Severity.OK,
        codes: tuple[Code, ...] = (),
        *,
        days: float = 90,
        reachable: bool = True,
        labels: dict[str, str] | None = None,
    ) -> Report:
        chain: tuple[x509.Certificate, ...] = ()
        if reachable:
            chain = issue(f"{target}.test", days)
        findings = tuple(Finding(severity, code, f"{code.value} on {target}") for code in codes)
        return Report(
            target=target,
            kind="endpoint",
            checked_at=now,
            duration=0.25,
            chain=chain,
            path=chain,
            findings=findings,
            labels=labels or {},
        )

    return make
