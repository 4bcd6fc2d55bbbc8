"""``tlsgate serve`` as a real process (the fixture the proxy tests use), for the tunnel tests."""

from __future__ import annotations

from tests.proxy.conftest import serve_factory

__all__ = ["serve_factory"]
