"""Each site's Strict-Transport-Security value, derived on the control plane's side: the data
plane is handed the bytes (``Edge.hsts``) and only looks them up."""

from __future__ import annotations

from tlsgate.config import HstsPolicy, SiteConfig, Upstream
from tlsgate.serve.hsts import hsts_header, hsts_headers

UP = (Upstream("127.0.0.1", 8000),)


def site(*hosts: str, hsts: HstsPolicy | None = None, explicit: bool = False) -> SiteConfig:
    return SiteConfig(hosts=hosts, upstreams=UP, hsts=hsts, hsts_explicit=explicit)


def test_default_is_on_for_public_names_only() -> None:
    assert hsts_header(site("www.example.com")) == b"max-age=63072000"
    assert hsts_header(site("localhost", "*.example.com")) == b"max-age=63072000"
    for local in ("localhost", "app.test", "*.svc.internal", "127.0.0.1", "::1"):
        assert hsts_header(site(local)) is None, local


def test_configured_policy_wins() -> None:
    assert hsts_header(site("app.test", hsts=HstsPolicy(max_age=600))) == b"max-age=600"
    assert hsts_header(site("www.example.com", explicit=True)) is None  # hsts = false


def test_map_is_keyed_by_site_object_and_omits_sites_without_header() -> None:
    public, local = site("www.example.com"), site("localhost")
    assert hsts_headers([public, local]) == {id(public): b"max-age=63072000"}
