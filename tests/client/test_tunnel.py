"""The tunnel's inputs and header rules, without sockets (test_tunnel_e2e.py has the traffic)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.cli import main
from tlsgate.client.tunnel import _end_to_end
from tlsgate.client.tunnel_config import parse_server_name, parse_target
from tlsgate.errors import ConfigError
from tlsgate.store.sqlite import SQLiteStore


def test_targets() -> None:
    t = parse_target("https://Service-B:8443")
    assert (t.host, t.port, t.authority) == ("service-b", 8443, "service-b:8443")
    t = parse_target("https://api.internal/")
    assert (t.port, t.authority, str(t)) == (443, "api.internal", "api.internal:443")
    t = parse_target("https://[::1]:9443")
    assert (t.host, t.authority) == ("::1", "[::1]:9443")
    for bad in (
        "http://service-b:8080",  # the tunnel speaks TLS
        "https://service-b:8443/api",  # local clients choose the path
        "https://user@service-b",
        "https://service-b:99999",
        "https://bad_name",
        "service-b:8443",
    ):
        with pytest.raises(ConfigError):
            parse_target(bad)
    assert parse_server_name("B.Internal") == "b.internal"
    assert parse_server_name("[::1]") == "::1"


def test_hop_by_hop_headers_stay_behind() -> None:
    headers = [
        (b"host", b"a"),
        (b"connection", b"keep-alive, x-trace"),
        (b"x-trace", b"1"),
        (b"keep-alive", b"timeout=5"),
        (b"te", b"trailers"),
        (b"upgrade", b"websocket"),
        (b"proxy-authorization", b"secret"),
        (b"transfer-encoding", b"chunked"),
        (b"content-length", b"3"),
        (b"accept", b"*/*"),
    ]
    assert _end_to_end(headers) == [(b"content-length", b"3"), (b"accept", b"*/*")]


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["tunnel", "--listen", "127.0.0.1:0", "--state", str(tmp_path / "empty")]
    ident = ["--identity", "spiffe://example.org/a"]
    assert main([*base, "--to", "http://b:80", *ident]) == 2
    assert "https://HOST[:PORT]" in capsys.readouterr().err
    assert main([*base, "--to", "https://b:8443", "--identity", "nope://x"]) == 2
    assert "SPIFFE ID" in capsys.readouterr().err
    assert main([*base, "--to", "https://b:8443", *ident, "--connect", ":80"]) == 2
    assert "--connect" in capsys.readouterr().err
    assert main([*base, "--to", "https://b:8443", *ident, "--lifetime", "30s"]) == 2
    assert "at least one minute" in capsys.readouterr().err
    # No state at all: refused, and none is made.
    assert main([*base, "--to", "https://b:8443", *ident]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no tlsgate state at" in err
    assert not (tmp_path / "empty").exists()
    # No CA in the state: a client never makes one (nobody would trust it).
    SQLiteStore(tmp_path / "empty").close()
    assert main([*base, "--to", "https://b:8443", *ident]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no certificate authority" in err
