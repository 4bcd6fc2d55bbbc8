"""Listen addresses, upstream URLs, host names and trusted proxies (tlsgate.config.addresses)."""

from __future__ import annotations

import ipaddress

import pytest

from tlsgate.config import (
    ListenAddress,
    Upstream,
    loads,
)

from .helpers import SITE


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ('"0.0.0.0:443"', ListenAddress("0.0.0.0", 443)),
        ('":8443"', ListenAddress("0.0.0.0", 8443)),
        ('"[::]:443"', ListenAddress("::", 443)),
        ('"[0:0::1]:443"', ListenAddress("::1", 443)),
        ('"127.0.0.1:0"', ListenAddress("127.0.0.1", 0)),  # any free port, for tests
        ('"LocalHost:8443"', ListenAddress("localhost", 8443)),
        ('"127.0.0.1:065535"', ListenAddress("127.0.0.1", 65535)),
    ],
)
def test_listen_forms(written: str, address: ListenAddress) -> None:
    assert loads(f"[server]\nlisten = {written}\n" + SITE).server.listen == (address,)


def test_listen_lists_and_turning_listeners_off() -> None:
    cfg = loads('[server]\nlisten = [":443", "[::]:443"]\nhttp_listen = false\n' + SITE)
    assert cfg.server.listen == (ListenAddress("0.0.0.0", 443), ListenAddress("::", 443))
    assert cfg.server.http_listen == ()
    assert loads("[server]\nhttp_listen = []\n" + SITE).server.http_listen == ()
    assert loads("[server]\nadmin_listen = false\n" + SITE).server.admin_listen is None
    assert loads('[server]\nadmin_listen = "[::1]:9100"\n' + SITE).server.admin_listen == (
        ListenAddress("::1", 9100)
    )


def test_port_zero_may_repeat() -> None:
    """Every port-0 socket gets its own port, so repeating one is no conflict."""
    text = '[server]\nlisten = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n' + SITE
    assert loads(text).server.http_listen == (ListenAddress("127.0.0.1", 0),)


@pytest.mark.parametrize(
    ("written", "upstream"),
    [
        ("http://127.0.0.1:8000", Upstream("127.0.0.1", 8000)),
        ("http://backend", Upstream("backend", 80)),
        ("HTTP://Backend.Internal:8080/", Upstream("backend.internal", 8080)),
        ("http://[::1]:8000", Upstream("::1", 8000)),
        ("http://[::1]", Upstream("::1", 80)),
        ("127.0.0.1:8000", Upstream("127.0.0.1", 8000)),
        ("[::1]:9000", Upstream("::1", 9000)),
        ("app", Upstream("app", 80)),
    ],
)
def test_upstream_forms(written: str, upstream: Upstream) -> None:
    text = f'[[site]]\nhosts = "example.com"\nupstream = "{written}"\n'
    assert loads(text).sites[0].upstreams == (upstream,)


def test_hosts_are_canonical_and_deduplicated_within_a_site() -> None:
    text = '[[site]]\nhosts = ["Example.COM.", "bücher.example", "*.Example.com", "example.com"]\n'
    text += 'upstream = "a:1"\n'
    assert loads(text).sites[0].hosts == ("example.com", "xn--bcher-kva.example", "*.example.com")


def test_a_wildcard_and_a_name_under_it_may_be_different_sites() -> None:
    text = SITE.replace('"example.com"', '"*.example.com"') + SITE.replace("example", "a.example")
    assert [s.hosts for s in loads(text).sites] == [("*.example.com",), ("a.example.com",)]


def test_trusted_proxies_bare_addresses_become_single_host_networks() -> None:
    text = '[server]\ntrusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::1", "fd00::/8"]\n'
    assert loads(text + SITE).server.trusted_proxies == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.0.2.7/32"),
        ipaddress.IPv6Network("2001:db8::1/128"),
        ipaddress.IPv6Network("fd00::/8"),
    )
