"""Which names ``check --http`` expects an HSTS policy for."""

from __future__ import annotations

import pytest

from tlsgate.inspect.http import hsts_expected


@pytest.mark.parametrize(
    "name",
    ["localhost", "LOCALHOST.", "app.localhost", "127.0.0.1", "::1", "10.1.2.3", "2001:db8::1"],
)
def test_no_hsts_expected_from_addresses_and_localhost(name: str) -> None:
    assert not hsts_expected(name)


@pytest.mark.parametrize(
    "name", ["www.example.com", "localhost.example.com", "notlocalhost", "api.internal", "a.test"]
)
def test_hsts_expected_from_real_names(name: str) -> None:
    assert hsts_expected(name)
