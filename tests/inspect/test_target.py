"""What people type as a target: host, host:port, [v6]:port, pasted URLs, and file paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.errors import ConfigError
from tlsgate.inspect.target import Endpoint, looks_like_file, parse_endpoint


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("example.com", "example.com", 443),
        ("Example.COM:8443", "example.com", 8443),
        ("127.0.0.1:4433", "127.0.0.1", 4433),
        ("[::1]:4433", "::1", 4433),
        ("::1", "::1", 443),
        ("https://shop.example.com/cart?x=1", "shop.example.com", 443),
        ("https://user@shop.example.com:9443/", "shop.example.com", 9443),
        ("bücher.example", "xn--bcher-kva.example", 443),
    ],
)
def test_forms(text: str, host: str, port: int) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.host, endpoint.port) == (host, port)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "no host"),
        ("example.com:0", "port"),
        ("example.com:99999", "port"),
        ("example.com:https", "port"),
        ("[::1", "]"),
        ("ftp://example.com", "https://"),
        ("exa mple.com", "not a host name"),
        ("1:2:3", "IPv6"),
    ],
)
def test_bad_targets_say_why(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_endpoint(text)


def test_servername_and_connect() -> None:
    endpoint = parse_endpoint("shop.test:8443", servername="www.shop.test", connect="127.0.0.1")
    assert endpoint.dial == ("127.0.0.1", 8443)
    assert endpoint.name == endpoint.sni == "www.shop.test"
    assert endpoint.display == "shop.test:8443"


def test_an_ip_address_is_verified_but_never_sent_as_sni() -> None:
    endpoint = parse_endpoint("[::1]:4433")
    assert endpoint.name == "::1"
    assert endpoint.sni is None
    assert endpoint.display == "[::1]:4433"
    assert Endpoint("10.0.0.1").dial == ("10.0.0.1", 443)


def test_files_are_told_from_hosts(tmp_path: Path) -> None:
    existing = tmp_path / "site"
    existing.write_text("x")
    assert looks_like_file("cert.pem") and looks_like_file("./x") and looks_like_file(str(existing))
    assert not looks_like_file("example.com") and not looks_like_file("https://a.test/x.pem")
