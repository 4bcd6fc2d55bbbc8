"""The dataclasses of a loaded config (tlsgate.config.model)."""

from __future__ import annotations

from tlsgate.config import (
    Upstream,
)


def test_upstream_str_brackets_ipv6() -> None:
    assert str(Upstream("::1", 8000)) == "http://[::1]:8000"
    assert str(Upstream("127.0.0.1", 8000)) == "http://127.0.0.1:8000"
