"""Every test in tests/http runs on both parser implementations: the compiled one
(``tlsgate.http._fast``) and the pure-Python reference (``request.py``/``response.py``).

The test modules name ``RequestParser``/``ResponseParser`` as ``tlsgate.http`` exports them; the
module-scoped fixture ``parsers``, which such a module uses (``pytestmark``), rebinds those names,
in the module and in ``http_helpers``, to one implementation at a time (module scope, because
hypothesis refuses function-scoped fixtures). Modules that compare the two name them explicitly.
Without the extension built, the compiled runs skip, except under CI (``CI=true``), where they
fail: CI must test what it ships.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from types import ModuleType

import pytest

from tests.http import http_helpers
from tlsgate.http import request, response

IMPLEMENTATIONS = ("compiled", "pure")


def implementation(name: str) -> tuple[type, type]:
    """``(RequestParser, ResponseParser)`` of the named implementation."""
    if name == "pure":
        return request.RequestParser, response.ResponseParser
    try:
        fast: ModuleType = importlib.import_module("tlsgate.http._fast")
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the compiled parser is not built: {exc}")
        pytest.skip(f"the compiled parser is not built: {exc}")
    return fast.RequestParser, fast.ResponseParser


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def parsers(request: pytest.FixtureRequest) -> Iterator[str]:
    """The module's tests, on one implementation; yields its name."""
    request_parser, response_parser = implementation(request.param)
    with pytest.MonkeyPatch.context() as patch:
        for module in (request.module, http_helpers):
            for name, cls in (
                ("RequestParser", request_parser),
                ("ResponseParser", response_parser),
            ):
                if hasattr(module, name):
                    patch.setattr(module, name, cls)
        yield request.param
