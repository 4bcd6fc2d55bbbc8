from __future__ import annotations

import importlib
from typing import Any

import pytest

from tlsgate.config import SiteConfig, Upstream
from tlsgate.proxy import routing
from tlsgate.proxy.routing import Balancer, Router, is_local_host, normalize_host

A, B, C = Upstream("127.0.0.1", 1), Upstream("127.0.0.1", 2), Upstream("127.0.0.1", 3)


def _compiled_balancer() -> Any:
    try:
        return importlib.import_module("tlsgate.proxy._fast").Balancer
    except ImportError:
        pytest.skip("the compiled data plane is not built")


# Balancing and passive health run on both twins: routing.py's and the compiled one.
TWINS = pytest.mark.parametrize("twin", ["pure", "compiled"])


@pytest.fixture
def balancer_class(twin: str) -> Any:
    return routing.PureBalancer if twin == "pure" else _compiled_balancer()


def test_normalize_host() -> None:
    assert normalize_host(b"Example.COM:8443") == "example.com"
    assert normalize_host("[::1]:443") == "::1"
    assert normalize_host("::1") == "::1"
    assert normalize_host("a.example.") == "a.example"


def test_router_exact_then_one_label_wildcard() -> None:
    exact = SiteConfig(hosts=("api.example.com",), upstreams=(A,))
    wild = SiteConfig(hosts=("*.example.com",), upstreams=(B,))
    router = Router([exact, wild])
    assert router.match("api.example.com") is router.routes[0]
    assert router.match("www.example.com") is router.routes[1]
    assert router.match("a.b.example.com") is None
    assert router.match("example.com") is None
    assert router.default is None
    assert Router([exact]).default is not None


def test_route_for_a_request() -> None:
    api = SiteConfig(hosts=("api.example.com",), upstreams=(A,))
    web = SiteConfig(hosts=("*.example.com",), upstreams=(B,))
    router = Router([api, web])
    api_route, web_route = router.routes
    # The Host header picks the site when the handshake named it, or named nothing we serve.
    assert router.route_for("api.example.com", api_route) == (api_route, 0)
    assert router.route_for("www.example.com", None) == (web_route, 0)
    # A Host naming another site than the handshake: 421 (the certificate did not cover it).
    assert router.route_for("www.example.com", api_route) == (None, 421)
    # No Host (HTTP/1.0): the handshake's site; nothing known at all: 404.
    assert router.route_for("", api_route) == (api_route, 0)
    assert router.route_for("", None) == (None, 404)
    assert router.route_for("other.org", None) == (None, 404)
    # One site: it answers local names and bare IPs that match nothing, as nginx's default does.
    only = Router([api])
    assert only.route_for("127.0.0.1", None) == (only.routes[0], 0)
    assert only.route_for("localhost", None) == (only.routes[0], 0)
    assert only.route_for("other.org", None) == (None, 404)


def test_is_local_host() -> None:
    local = ("localhost", "app.localhost", "db.internal", "x.test", "printer", "10.0.0.1", "::1")
    for name in local:
        assert is_local_host(name), name
    for name in ("example.com", "api.example.co.uk"):
        assert not is_local_host(name), name


@TWINS
def test_round_robin_skips_failed_until_cooldown(balancer_class: Any) -> None:
    Balancer = balancer_class  # noqa: N806 - the twin under test
    balancer = Balancer.of([A, B, C])
    picks = [balancer.pick(0.0).upstream for _ in range(6)]
    assert picks == [A, B, C, A, B, C]
    b = balancer.states[1]
    Balancer.failed(b, now=10.0)
    assert all(balancer.pick(10.5).upstream != B for _ in range(6))
    assert any(balancer.pick(13.0).upstream == B for _ in range(3))  # 2 s cool-down is over
    Balancer.failed(b, now=20.0)
    assert b.down_until == 24.0  # doubled
    Balancer.succeeded(b)
    assert b.failures == 0 and b.healthy(0.0)


@TWINS
def test_all_down_still_tries_the_first_to_recover(balancer_class: Any) -> None:
    Balancer = balancer_class  # noqa: N806 - the twin under test
    balancer = Balancer.of([A, B])
    Balancer.failed(balancer.states[0], now=0.0)
    Balancer.failed(balancer.states[1], now=1.0)
    assert balancer.pick(1.5).upstream == A


@TWINS
def test_least_conn_and_exclude(balancer_class: Any) -> None:
    Balancer = balancer_class  # noqa: N806 - the twin under test
    balancer = Balancer.of([A, B], "least_conn")
    balancer.states[0].active = 3
    assert balancer.pick(0.0).upstream == B
    assert balancer.pick(0.0, exclude=balancer.states[1]).upstream == A


@TWINS
def test_cooldown_is_capped_and_every_state_excluded_falls_back(balancer_class: Any) -> None:
    Balancer = balancer_class  # noqa: N806 - the twin under test
    balancer = Balancer.of([A, B])
    a = balancer.states[0]
    for _ in range(10):
        Balancer.failed(a, now=100.0)
    assert a.failures == 10 and a.down_until == 100.0 + routing.MAX_COOLDOWN
    assert balancer.pick(101.0).upstream == B  # the only healthy one
    assert balancer.pick(101.0, exclude=balancer.states[1]).upstream == A  # excluded: the other
    one = Balancer.of([A])
    assert one.pick(0.0, exclude=one.states[0]).upstream == A  # nothing else to try


def test_router_builds_the_selected_balancer() -> None:
    router = Router([SiteConfig(hosts=("a.test",), upstreams=(A, B))])
    assert type(router.routes[0].balancer) is Balancer
