"""A report told step by step, the way the handshake happened, then the verdict in plain words.

Rendering only: every fact comes from the :class:`Report`, so the text and ``--json`` can never
disagree. Each problem also names the error page a browser would show, because that is what the
person asking "why does it say not secure?" is looking at.
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from rich.console import Console
from rich.text import Text

from tlsgate.inspect.report import Code, Report, Severity
from tlsgate.pki.info import CertInfo, format_remaining
from tlsgate.pki.malformed import PARSE_ERRORS

__all__ = ["BROWSER_ERRORS", "STYLE", "explain"]

#: What Chrome / Firefox show for each refusal.
BROWSER_ERRORS: dict[Code, str] = {
    Code.EXPIRED: "NET::ERR_CERT_DATE_INVALID / SEC_ERROR_EXPIRED_CERTIFICATE",
    Code.NOT_YET_VALID: "NET::ERR_CERT_DATE_INVALID / SEC_ERROR_EXPIRED_CERTIFICATE",
    Code.HOSTNAME_MISMATCH: "NET::ERR_CERT_COMMON_NAME_INVALID / SSL_ERROR_BAD_CERT_DOMAIN",
    Code.SELF_SIGNED: "NET::ERR_CERT_AUTHORITY_INVALID / MOZILLA_PKIX_ERROR_SELF_SIGNED_CERT",
    Code.UNKNOWN_ISSUER: "NET::ERR_CERT_AUTHORITY_INVALID / SEC_ERROR_UNKNOWN_ISSUER",
    Code.INCOMPLETE_CHAIN: "NET::ERR_CERT_AUTHORITY_INVALID / SEC_ERROR_UNKNOWN_ISSUER",
    Code.REVOKED: "NET::ERR_CERT_REVOKED / SEC_ERROR_REVOKED_CERTIFICATE",
    Code.WEAK_KEY: "NET::ERR_CERT_WEAK_KEY / SSL_ERROR_WEAK_SERVER_CERT_KEY",
    Code.WEAK_SIGNATURE: "NET::ERR_CERT_WEAK_SIGNATURE_ALGORITHM / SEC_ERROR_CERT_SIGNATURE_...",
    Code.MALFORMED: "NET::ERR_CERT_INVALID / SEC_ERROR_BAD_DER",
    Code.LEGACY_TLS: "ERR_SSL_VERSION_OR_CIPHER_MISMATCH / SSL_ERROR_UNSUPPORTED_VERSION",
    Code.HANDSHAKE_FAILED: "ERR_SSL_PROTOCOL_ERROR / SSL_ERROR_NO_CYPHER_OVERLAP",
    Code.UNREACHABLE: "ERR_CONNECTION_REFUSED or ERR_NAME_NOT_RESOLVED",
    Code.TIMEOUT: "ERR_CONNECTION_TIMED_OUT / the connection has timed out",
    Code.RESET: "ERR_CONNECTION_RESET / PR_CONNECT_RESET_ERROR",
    Code.NOT_TLS: "ERR_SSL_PROTOCOL_ERROR / SSL_ERROR_RX_RECORD_TOO_LONG",
    Code.CLIENT_CERT_REQUIRED: "ERR_BAD_SSL_CLIENT_AUTH_CERT",
}

#: Findings that mean "no chain to a trusted root" (the others fail a chain that has one).
_TRUST_CODES = {Code.SELF_SIGNED, Code.UNKNOWN_ISSUER, Code.INCOMPLETE_CHAIN, Code.INVALID_FILE}

#: The colour of each verdict, wherever one is printed (``check``, ``monitor --once``).
STYLE = {Severity.OK: "green", Severity.WARNING: "yellow", Severity.CRITICAL: "red"}


def _cert_lines(index: int, cert: x509.Certificate, now: datetime) -> list[str]:
    info = CertInfo.of(cert)
    left = info.remaining(now)
    when = (
        f"expired {format_remaining(left).removeprefix('expired ')}"
        if left.total_seconds() < 0
        else f"{format_remaining(left)} left"
    )
    lines = [f"   [{index}] {info.subject or '(empty subject)'}"]
    if info.names:
        lines.append(f"       names:    {', '.join(info.names)}")
    lines += [
        f"       issuer:   {info.issuer}",
        f"       key:      {info.key_description}" + _signed_with(cert),
        f"       valid:    {info.not_before:%Y-%m-%d %H:%M} to {info.not_after:%Y-%m-%d %H:%M} "
        f"UTC ({when})",
        f"       serial:   {info.serial_hex}",
    ]
    return lines


def _signed_with(cert: x509.Certificate) -> str:
    try:
        algorithm = cert.signature_hash_algorithm
    except PARSE_ERRORS:  # an algorithm cryptography does not know: the verdict says so
        return "; signed with an unsupported algorithm"
    return f"; signed with {algorithm.name.upper()}" if algorithm else ""


def _steps(report: Report) -> list[str]:
    now = report.checked_at
    lines: list[str] = []
    step = 0

    def say(text: str) -> None:
        nonlocal step
        step += 1
        lines.append(f"{step}. {text}")

    if report.kind == "endpoint":
        target = report.servername or report.target
        via = f" at {report.address}" if report.address else ""
        say(f"Checking {target}{via} as a browser would.")
        if report.offered is not None:
            offer = report.offered
            say(
                f"We offered {' and '.join(offer.versions)}, {len(offer.ciphers)} cipher suites, "
                f"key exchange {', '.join(offer.groups)}"
                + (f", SNI {offer.servername}" if offer.servername else ", no SNI (an IP address)")
                + "."
            )
        if report.negotiated is None:
            say("No TLS session: see the verdict.")
            return lines
        chosen = report.negotiated
        say(
            f"The server chose {chosen.version.replace('v', ' ')} with {chosen.cipher}"
            + (f", key exchange {chosen.group}" if chosen.group else "")
            + (f", ALPN {chosen.alpn}" if chosen.alpn else "")
            + (", and stapled an OCSP response" if chosen.ocsp_stapled else "")
            + "."
        )
    else:
        say(f"Reading {report.target}.")
        if not report.chain:
            return lines
    count = len(report.chain)
    say(
        f"{'It presented' if report.kind == 'endpoint' else 'It contains'} "
        f"{count} certificate{'s' if count != 1 else ''}, leaf first:"
    )
    for index, cert in enumerate(report.chain):
        lines += _cert_lines(index, cert, now)
    if report.judged_as == "client":
        say(
            "It is a client certificate (client-only usage, a SPIFFE ID or e-mail addresses): "
            "judged as a server judges a client, with no host name to match."
        )
    if report.path:
        names = " -> ".join(CertInfo.of(c).subject or "?" for c in report.path)
        say(f"Path to a trusted root ({report.trust}): {names}.")
    elif report.kind != "endpoint" and count == 1 and CertInfo.of(report.chain[0]).is_ca:
        say("It is a CA certificate (a trust anchor): judged on its dates and key.")
    elif not any(f.code in _TRUST_CODES for f in report.findings):
        say(
            f"The chain leads to a trusted root ({report.trust}) but does not validate: "
            "see the verdict."
        )
    else:
        say(f"No path to a trusted root ({report.trust}).")
    if report.revocation is not None:
        say(f"Revocation: {report.revocation}.")
    if report.hsts is not None or report.redirect is not None or report.kind == "endpoint":
        if report.hsts is not None:
            say(f"HSTS: {report.hsts}")
        if report.redirect is not None:
            say(f"http:// redirects to {report.redirect}")
    return lines


def _judge(report: Report) -> str:
    """Who accepts or refuses it: a browser a server's certificate, a server a client's."""
    return "a server" if report.judged_as == "client" else "a browser"


def explain(report: Report, console: Console) -> None:
    for line in _steps(report):
        console.print(Text(line))
    severity = report.severity
    verdict = Text(f"Verdict: {severity.name}", style=f"bold {STYLE[severity]}")
    if severity is Severity.OK:
        leaf = report.leaf_not_after
        tail = ""
        if leaf is not None:
            tail = f" (the certificate is good for {format_remaining(leaf - report.checked_at)})"
        verdict.append(f": {_judge(report)} accepts this{tail}.")
        console.print(verdict)
        return
    verdict.append(
        " - "
        + (
            f"{_judge(report)} refuses this"
            if severity is Severity.CRITICAL
            else "works today, act soon"
        )
        + "."
    )
    console.print(verdict)
    for finding in report.findings:
        if finding.severity is Severity.OK:
            continue
        mark = Text(f"  - [{finding.code.value}] ", style=STYLE[finding.severity])
        mark.append(finding.message)
        browser = BROWSER_ERRORS.get(finding.code)
        if browser and finding.severity is Severity.CRITICAL:
            mark.append(f" (browser: {browser})", style="dim")
        console.print(mark)
