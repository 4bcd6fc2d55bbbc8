"""``tlsgate ca serve``: bad options are one line on stderr and exit 2, before anything listens.

The server itself is exercised in tests/acme (in-process, and with certbot and lego).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .test_ca_cli import ok, refused


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--listen", "nonsense"], "--listen"),
        (["--listen", "127.0.0.1:99999"], "out of range"),
        (["--resolve", "no-equals-sign"], "no-equals-sign"),
        (["--resolve", "*.example.test=not-an-ip"], "not-an-ip"),
        (["--dns-resolver", "dns.example:53"], "dns.example"),
        (["--eab", "kid-without-key"], "KEY_ID:BASE64URL_MAC_KEY"),
        (["--eab", "kid:c2hvcnQ"], "at least 16 bytes"),
        (["--public-url", "http://localhost:8443"], "https://HOST[:PORT]"),
        (["--public-url", "https://localhost:8443/acme"], "https://HOST[:PORT]"),
        (["--public-url", "https://acme.example:443"], "must be --hostname (localhost)"),
        (["--nonces", "redis"], "invalid choice"),
        (["--rate-limits", "redis"], "invalid choice"),
    ],
)
def test_bad_options_are_refused(
    capsys: pytest.CaptureFixture[str], state_dir: Path, args: list[str], match: str
) -> None:
    ok(capsys, "ca", "init")
    refused(capsys, "ca", "serve", "--listen", "127.0.0.1:0", *args, match=match)


def test_needs_a_ca(capsys: pytest.CaptureFixture[str], state_dir: Path) -> None:
    refused(capsys, "ca", "serve", match="tlsgate ca init")
