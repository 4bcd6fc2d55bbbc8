"""The entry points: check an endpoint, a certificate file, or certificates already in hand.

They never raise for anything the *target* does wrong (refused connections, garbage PEM, a server
that hangs): those are findings with a CRITICAL verdict, so ``monitor`` can check a thousand
targets without one bad answer stopping the round. Only our own bad input (an unreadable ``--ca``)
raises, before any target is touched.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from cryptography import x509

from tlsgate.inspect.findings import judge_chain, protocol_findings
from tlsgate.inspect.http import check_http
from tlsgate.inspect.options import CheckOptions
from tlsgate.inspect.probe import (
    Observation,
    ProbeFailed,
    describe_offer,
    legacy_context,
    modern_context,
    observe,
)
from tlsgate.inspect.report import Code, Finding, Negotiated, Report, Severity
from tlsgate.inspect.revocation import RevocationStatus, check_stapled, lookup
from tlsgate.inspect.target import Endpoint
from tlsgate.inspect.trust import parse_certificates
from tlsgate.pki.malformed import MISSING_OR_MALFORMED

__all__ = ["check_certificates", "check_endpoint", "check_file"]

#: Handshake failures worth a second try with everything OpenSSL can still speak, to tell
#: "only TLS 1.0" or "only a 1024-bit key" from a server that is simply broken.
_RETRY_LEGACY = {Code.HANDSHAKE_FAILED, Code.RESET}


@lru_cache(maxsize=16)
def _modern(client_cert: Path | None, client_key: Path | None) -> ssl.SSLContext:
    # One context per client identity: building one (and reading a key) per target would
    # dominate a thousand-target monitor round.
    return modern_context(
        str(client_cert) if client_cert else None, str(client_key) if client_key else None
    )


def _now(options: CheckOptions) -> datetime:
    return options.now or datetime.now(UTC)


async def check_endpoint(endpoint: Endpoint, options: CheckOptions) -> Report:
    """Connect like a browser, fetch the chain, judge it. Never raises for a bad peer."""
    started = time.monotonic()
    now = _now(options)
    ctx = _modern(options.client_cert, options.client_key)
    host, port = endpoint.dial
    findings: list[Finding] = []
    observation: Observation | None = None
    try:
        observation = await observe(host, port, endpoint.sni, ctx, options.timeout)
    except ProbeFailed as failure:
        if failure.code in _RETRY_LEGACY:
            try:
                observation = await observe(
                    host, port, endpoint.sni, legacy_context(), options.timeout
                )
            except ProbeFailed:
                observation = None
        if observation is None:
            findings.append(Finding(Severity.CRITICAL, failure.code, failure.message))
        elif observation.version in ("TLSv1.2", "TLSv1.3"):
            # Legacy settings were needed for something else than the version: say what.
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    Code.HANDSHAKE_FAILED,
                    f"a browser's handshake fails ({failure.alert or failure.message}); it works "
                    "only with settings browsers no longer allow (weak key or cipher)",
                )
            )
    report = Report(
        target=endpoint.display,
        kind="endpoint",
        checked_at=now,
        servername=endpoint.name,
        trust=options.trust.label,
        offered=describe_offer(ctx, endpoint.sni),
    )
    if observation is None:
        return _finish(report, findings, started)
    findings += protocol_findings(observation.version)
    judgement = judge_chain(
        observation.chain,
        options.trust.roots,
        name=endpoint.name,
        now=now,
        warn_days=options.warn_days,
        critical_days=options.critical_days,
        trust_label=options.trust.label,
    )
    findings += judgement.findings
    revocation = None
    if options.revocation and judgement.path:
        revocation = await _revocation(observation, judgement.path, now, options.timeout)
        if revocation.revoked:
            findings.append(
                Finding(
                    Severity.CRITICAL,
                    Code.REVOKED,
                    f"the certificate is revoked: {revocation.detail}; browsers refuse it",
                    0,
                )
            )
    hsts = redirect = None
    if options.http and judgement.path:
        cafile = str(options.trust.cafile) if options.trust.cafile else None
        http = await check_http(endpoint, cafile, options.timeout, options.http_port)
        findings += http.findings
        hsts, redirect = http.hsts, http.redirect
    report = report.replace(
        address=observation.address,
        negotiated=Negotiated(
            version=observation.version,
            cipher=observation.cipher,
            group=observation.group,
            alpn=observation.alpn,
            ocsp_stapled=observation.ocsp is not None,
            client_certificate_sent=options.client_cert is not None,
        ),
        chain=observation.chain,
        path=judgement.path,
        hsts=hsts,
        redirect=redirect,
        revocation=revocation.detail if revocation else None,
    )
    return _finish(report, findings, started)


async def _revocation(
    observation: Observation, path: Sequence[x509.Certificate], now: datetime, timeout: float
) -> RevocationStatus:
    if observation.ocsp is not None:
        stapled = check_stapled(observation.ocsp, path, now)
        if stapled is not None:
            return stapled
    return await lookup(path, now, timeout=timeout)


def _finish(report: Report, findings: list[Finding], started: float) -> Report:
    ordered = sorted(findings, key=lambda f: -f.severity)
    return report.replace(findings=tuple(ordered), duration=time.monotonic() - started)


def check_file(path: Path, options: CheckOptions, *, name: str | None = None) -> Report:
    """Judge the certificate(s) in a PEM/DER file; a garbage file is a finding, not an error."""
    started = time.monotonic()
    try:
        chain = parse_certificates(path.read_bytes())
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror or exc}"
    except ValueError as exc:
        problem = f"{path} is not a certificate file: {exc}"
    else:
        report = check_certificates(str(path), chain, options, name=name)
        return report.replace(duration=time.monotonic() - started)
    report = Report(
        target=str(path), kind="file", checked_at=_now(options), trust=options.trust.label
    )
    return _finish(report, [Finding(Severity.CRITICAL, Code.INVALID_FILE, problem)], started)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except MISSING_OR_MALFORMED:  # malformed: judge_chain reports it
        return False


def check_certificates(
    target: str,
    chain: Sequence[x509.Certificate],
    options: CheckOptions,
    *,
    name: str | None,
    kind: str = "file",
) -> Report:
    """Judge a chain already in hand (a file, the CA store, a managed certificate).

    A CA certificate on its own is judged for what can go wrong with it (dates, key strength):
    it is the anchor, not something that chains to one.
    """
    started = time.monotonic()
    now = _now(options)
    chain = tuple(chain)
    roots = options.trust.roots
    anchor_only = len(chain) == 1 and _is_ca(chain[0])
    if anchor_only:
        roots = (*roots, chain[0])
    judgement = judge_chain(
        chain,
        roots,
        name=name,
        now=now,
        warn_days=options.warn_days,
        critical_days=options.critical_days,
        trust_label=options.trust.label,
    )
    findings = judgement.findings
    if anchor_only:
        # verify_chain rejects a CA as an end entity; dates and strength still apply.
        findings = [f for f in findings if f.code not in _ANCHOR_IRRELEVANT]
    report = Report(
        target=target,
        kind=kind,
        checked_at=now,
        servername=name,
        trust=options.trust.label,
        chain=chain,
        path=judgement.path,
        judged_as=judgement.usage.value,
    )
    return _finish(report, findings, started)


_ANCHOR_IRRELEVANT = {
    Code.INVALID,
    Code.WRONG_USAGE,
    Code.UNKNOWN_ISSUER,
    Code.SELF_SIGNED,
    Code.INCOMPLETE_CHAIN,
    Code.NO_SUBJECT_ALT_NAME,
}
