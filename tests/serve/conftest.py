"""The control plane's end-to-end tests run the same ``tlsgate serve`` process as the data
plane's: one fixture for both, defined beside the data plane's tests."""

from __future__ import annotations

from tests.proxy.conftest import serve, serve_factory

__all__ = ["serve", "serve_factory"]
