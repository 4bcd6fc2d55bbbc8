"""The bad TLS zoo, built once per session: its servers are read-only, so every test shares them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import require_tool
from tests.inspect.zoo import Zoo


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoo]:
    openssl = require_tool("openssl")
    zoo = Zoo(tmp_path_factory.mktemp("zoo"), openssl)
    try:
        yield zoo.start()
    finally:
        zoo.stop()
