"""``--http``: does the site tell browsers to stay on HTTPS, and does http:// lead there?

HSTS only counts when it arrives over a connection the browser trusts (RFC 6797 §8.1), so the
request goes over a fully verifying context, and only after the chain verified; the redirect is
checked on the plain-HTTP port with one request, never following it anywhere else.

Some names need no HSTS, so a missing or short one is not a warning there: a browser ignores the
header from an IP-address host (RFC 6797 §8.1), and ``localhost`` and ``*.localhost`` never
leave the machine (RFC 6761 §6.3), so there is no network on which to strip TLS, while a policy
for them would pin every other local server on that name, whatever its port, to HTTPS.
``tlsgate serve`` leaves HSTS out for them on purpose.
"""

from __future__ import annotations

import ipaddress
import re
import ssl

import httpx

from tlsgate.inspect.report import Code, Finding, Severity
from tlsgate.inspect.target import Endpoint

__all__ = ["HSTS_MIN_AGE", "HttpResult", "check_http", "hsts_expected"]

#: One year: the HSTS preload list's minimum; Mozilla recommends two (63072000).
HSTS_MIN_AGE = 31_536_000
_MAX_AGE = re.compile(r"max-age\s*=\s*\"?([0-9]+)\"?", re.IGNORECASE)


class HttpResult:
    def __init__(self) -> None:
        self.hsts: str | None = None
        self.redirect: str | None = None
        self.findings: list[Finding] = []


def _url(scheme: str, host: str, port: int, default: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}/" if port == default else f"{scheme}://{shown}:{port}/"


async def check_http(
    endpoint: Endpoint, cafile: str | None, timeout: float, http_port: int = 80
) -> HttpResult:
    result = HttpResult()
    name = endpoint.name or endpoint.host
    dial_host, dial_port = endpoint.dial
    verify = ssl.create_default_context(cafile=cafile)  # full verification: CERT_REQUIRED + host
    headers = {"Host": name if endpoint.port == 443 else f"{name}:{endpoint.port}"}
    extensions = {"sni_hostname": endpoint.sni} if endpoint.sni else {}
    async with httpx.AsyncClient(verify=verify, timeout=timeout, follow_redirects=False) as http:
        try:
            response = await http.get(
                _url("https", dial_host, dial_port, 443), headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            result.findings.append(
                Finding(Severity.WARNING, Code.HTTP_FAILED, f"GET https://{name}/ failed: {exc}")
            )
        else:
            result.hsts = response.headers.get("strict-transport-security")
            if hsts_expected(name):
                result.findings += _hsts(result.hsts)
        try:
            plain = await http.get(
                _url("http", dial_host, http_port, 80),
                headers={"Host": name if http_port == 80 else f"{name}:{http_port}"},
            )
        except httpx.HTTPError as exc:
            result.findings.append(
                Finding(
                    Severity.WARNING,
                    Code.NO_REDIRECT,
                    f"http://{name}:{http_port}/ does not answer ({exc or type(exc).__name__}): "
                    "someone typing the bare name gets an error instead of the HTTPS site",
                )
            )
        else:
            location = plain.headers.get("location")
            result.redirect = location
            if plain.status_code not in (301, 302, 307, 308) or not (
                location or ""
            ).lower().startswith(f"https://{name.lower()}"):
                result.findings.append(
                    Finding(
                        Severity.WARNING,
                        Code.NO_REDIRECT,
                        f"http://{name}/ answers {plain.status_code}"
                        + (f" to {location}" if location else "")
                        + f" instead of redirecting to https://{name}/ (use 301 or 308)",
                    )
                )
    return result


def hsts_expected(name: str) -> bool:
    """Whether a browser would keep an HSTS policy for ``name`` (see the module docstring): not
    for an IP address, ``localhost`` or a ``.localhost`` name; for every other name."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        host = name.lower().rstrip(".")
        return host != "localhost" and not host.endswith(".localhost")
    return False


def _hsts(header: str | None) -> list[Finding]:
    if header is None:
        return [
            Finding(
                Severity.WARNING,
                Code.NO_HSTS,
                "no Strict-Transport-Security header: a browser may still try http:// first, "
                'where an attacker can intercept it (add "max-age=63072000")',
            )
        ]
    match = _MAX_AGE.search(header)
    age = int(match.group(1)) if match else 0
    if age < HSTS_MIN_AGE:
        return [
            Finding(
                Severity.WARNING,
                Code.WEAK_HSTS,
                f"HSTS max-age is {age} s, under one year ({HSTS_MIN_AGE} s); "
                "browsers forget it too soon (recommended: 63072000, two years)",
            )
        ]
    return []
