"""``check --http`` against ``tlsgate serve`` itself: HSTS for public names, the 308 redirect."""

from __future__ import annotations

from typing import Any

from tests.inspect.runner import tlsgate
from tests.proxy.conftest import Serve, config_text, serve_factory

__all__ = ["serve_factory"]  # the fixture, imported so this module can use it


def test_hsts_and_redirect_reported_for_a_public_name(serve_factory: Any) -> None:
    serve: Serve = serve_factory(config=config_text('["www.example.com"]'))
    run = tlsgate(
        "check",
        f"127.0.0.1:{serve.port}",
        "--servername",
        "www.example.com",
        "--ca",
        str(serve.root),
        "--http",
        "--http-port",
        str(serve.http_port),
        "--json",
    )
    report = run.report()
    assert run.returncode == 0, run.describe()
    assert report["http"] == {
        "hsts": "max-age=63072000",
        "redirect": f"https://www.example.com:{serve.port}/",
    }
    text = tlsgate(
        "check",
        f"127.0.0.1:{serve.port}",
        "--servername",
        "www.example.com",
        "--ca",
        str(serve.root),
        "--http",
        "--http-port",
        str(serve.http_port),
    )
    assert "HSTS: max-age=63072000" in text.stdout, text.describe()
    assert f"redirects to https://www.example.com:{serve.port}/" in text.stdout


def test_no_hsts_is_a_warning_and_a_missing_redirect_too(serve_factory: Any) -> None:
    serve: Serve = serve_factory()  # localhost: serve sends no HSTS for local names
    closed = serve.upstream_port  # a plain-HTTP app, not a redirect
    run = tlsgate(
        "check",
        f"127.0.0.1:{serve.port}",
        "--servername",
        "localhost",
        "--ca",
        str(serve.root),
        "--http",
        "--http-port",
        str(closed),
        "--json",
    )
    report = run.report()
    assert run.returncode == 1, run.describe()
    codes = {f["code"] for f in report["findings"]}
    assert codes == {"no-hsts", "no-redirect"}, run.describe()
    assert report["verified"] is True
