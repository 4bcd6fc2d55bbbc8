"""The switch between compiled modules and their pure-Python twins (src/tlsgate/compiled.py).

CI must test what it ships: under ``CI=true`` without ``TLSGATE_PURE`` the compiled modules are
the ones in use, never a silent fallback. Elsewhere: ``TLSGATE_PURE=1`` selects the pure ones,
and an extension that cannot be imported falls back to pure with one warning line.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest

import tlsgate.http
from tlsgate.compiled import PURE_VARIABLE, pure_forced

#: Each compiled module, and the module of the class tlsgate exports in its place when pure.
COMPILED = {
    "tlsgate.http._fast": ("tlsgate.http", "RequestParser", "tlsgate.http.request"),
    "tlsgate.proxy._fast": ("tlsgate.proxy.access_log", "AccessLog", "tlsgate.proxy.access_log"),
    "tlsgate.http._h2": ("tlsgate.http.h2_session", "H2Session", "tlsgate.http.h2_session"),
}

SHOW = "import tlsgate.http as h; print(h.RequestParser.__module__, h.ResponseParser.__module__)"

BLOCK = """
import logging, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "tlsgate.http._fast":
            raise ImportError("not built")
sys.meta_path.insert(0, Block())
logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
"""


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != PURE_VARIABLE}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def built() -> bool:
    try:
        for name in COMPILED:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_ci_uses_the_compiled_modules() -> None:
    if os.environ.get("CI") != "true" or pure_forced():
        pytest.skip("checked under CI=true without TLSGATE_PURE")
    for name, (package, attribute, _) in COMPILED.items():
        module = importlib.import_module(name)  # an ImportError here fails CI
        exported = getattr(importlib.import_module(package), attribute)
        assert exported is getattr(module, attribute), f"{package} does not use {name}"


def test_compiled_by_default_when_built() -> None:
    if not built():
        assert os.environ.get("CI") != "true", "CI runs without the compiled parser"
        pytest.skip("the compiled parser is not built")
    proc = python(SHOW)
    assert proc.stdout.split() == ["tlsgate.http._fast", "tlsgate.http._fast"]
    assert proc.stderr == ""


@pytest.mark.parametrize("value", ["1", "yes"])
def test_tlsgate_pure_selects_the_pure_twins(value: str) -> None:
    proc = python(SHOW, **{PURE_VARIABLE: value})
    assert proc.stdout.split() == ["tlsgate.http.request", "tlsgate.http.response"]
    assert proc.stderr == ""


def test_tlsgate_pure_0_is_not_pure() -> None:
    if not built():
        pytest.skip("the compiled parser is not built")
    assert python(SHOW, **{PURE_VARIABLE: "0"}).stdout.split()[0] == "tlsgate.http._fast"


def test_a_missing_extension_falls_back_with_one_warning() -> None:
    proc = python(BLOCK + SHOW)
    assert proc.stdout.split() == ["tlsgate.http.request", "tlsgate.http.response"]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("WARNING tlsgate.compiled: tlsgate.http._fast is not built"), lines
    assert "pure-Python" in lines[0]


def test_this_session_exports_what_the_switch_says() -> None:
    fast = "tlsgate.http._fast"
    expected = "tlsgate.http.request" if pure_forced() or not built() else fast
    assert tlsgate.http.RequestParser.__module__ == expected
    # The events go with the parsers: both directions make, and the proxy reads, one set.
    events = "tlsgate.http.events" if pure_forced() or not built() else "tlsgate.http.fast_events"
    for name in ("Request", "Response", "Data", "EndOfMessage", "Upgraded"):
        assert getattr(tlsgate.http, name).__module__ == events, name


def test_ci_serves_connections_with_the_compiled_class() -> None:
    """What ``tlsgate serve`` builds its client connections from (serve/listeners.py's factory)
    and what its upstream pool opens are the compiled classes under CI."""
    if os.environ.get("CI") != "true" or pure_forced():
        pytest.skip("checked under CI=true without TLSGATE_PURE")
    import asyncio

    from tlsgate.proxy import _fast, upstream
    from tlsgate.serve import listeners

    factory: object = vars(listeners)["ClientProtocol"]
    opened: object = upstream.UpstreamConnection
    assert factory is _fast.ClientProtocol
    assert opened is _fast.UpstreamConnection
    # uvloop reads into the protocol's buffer only if it is a BufferedProtocol
    assert issubclass(_fast.ClientProtocol, asyncio.BufferedProtocol)


def test_serve_uses_what_the_switch_says() -> None:
    """Out of CI too: ``TLSGATE_PURE=1`` gives serve the pure connection, the default the
    compiled one (when built)."""
    show = "import tlsgate.serve.listeners as l; print(l.ClientProtocol.__module__)"
    assert python(show, **{PURE_VARIABLE: "1"}).stdout.split() == ["tlsgate.proxy.protocol"]
    if built():
        assert python(show).stdout.split() == ["tlsgate.proxy._fast"]
