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


def test_no_hsts_is_a_warning_for_a_real_name_and_a_missing_redirect_too(
    serve_factory: Any,
) -> None:
    serve: Serve = serve_factory(config=config_text('["www.example.com"]').replace(
        'upstream = "http://127.0.0.1:{upstream_port}"\n',
        'upstream = "http://127.0.0.1:{upstream_port}"\nhsts = false\n',
    ))  # fmt: skip
    closed = serve.upstream_port  # a plain-HTTP app, not a redirect
    run = tlsgate(
        "check",
        f"127.0.0.1:{serve.port}",
        "--servername",
        "www.example.com",
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


def test_no_hsts_warning_where_serve_leaves_it_out_on_purpose(serve_factory: Any) -> None:
    """``localhost`` and its loopback addresses: serve sends no HSTS there, and check agrees
    that none is expected (a browser ignores it from an IP, localhost never leaves the host)."""
    serve: Serve = serve_factory()  # --host localhost: its certificate names 127.0.0.1 and ::1
    for target, name in (
        (f"127.0.0.1:{serve.port}", "localhost"),
        (f"127.0.0.1:{serve.port}", None),  # the IP itself is the name a browser would show
    ):
        named = ["--servername", name] if name else []
        run = tlsgate(
            "check", target, *named, "--ca", str(serve.root), "--http",
            "--http-port", str(serve.http_port), "--json",
        )  # fmt: skip
        report = run.report()
        assert run.returncode == 0, run.describe()
        assert report["findings"] == [], run.describe()
        assert report["http"]["hsts"] is None, run.describe()
