"""Paths, the access_log keywords, ticket rotation and OCSP stapling (tlsgate.config.values)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.config import (
    TlsFiles,
    load,
    loads,
)

from .helpers import SITE


def test_loads_keeps_relative_paths_relative() -> None:
    text = '[server]\nstate = "state"\naccess_log = "log/access.jsonl"\n' + SITE
    text += '[site.tls]\ncert = "c.pem"\nkey = "/abs/k.pem"\n'
    cfg = loads(text)
    assert cfg.server.state == Path("state")
    assert cfg.server.access_log == "log/access.jsonl"
    assert cfg.sites[0].tls == TlsFiles(Path("c.pem"), Path("/abs/k.pem"))


def test_access_log_keywords_are_not_paths(tmp_path: Path) -> None:
    for keyword in ("stdout", "off"):
        path = tmp_path / f"{keyword}.toml"
        path.write_text(f'[server]\naccess_log = "{keyword}"\n' + SITE)
        assert load(path).server.access_log == keyword


@pytest.mark.parametrize(
    ("value", "seconds"),
    [('"12h"', 43200.0), ('"1h30m"', 5400.0), ('"2s"', 2.0), ("90", 90.0), ('"off"', None)],
)
def test_ticket_rotation_values(value: str, seconds: float | None) -> None:
    cfg = loads(f"[server]\nticket_rotation = {value}\n" + SITE)
    assert cfg.server.ticket_rotation == seconds


@pytest.mark.parametrize(("value", "seconds"), [('"5s"', 5.0), ('"1h"', 3600.0), ("2.5", 2.5)])
def test_store_poll_values(value: str, seconds: float) -> None:
    assert loads(SITE).server.store_poll == 5.0
    assert loads(f"[server]\nstore_poll = {value}\n" + SITE).server.store_poll == seconds


def test_ocsp_stapling_defaults_on_and_can_be_turned_off() -> None:
    tls = '[site.tls]\ncert = "c.pem"\nkey = "k.pem"\n'
    site = loads(SITE + tls).sites[0]
    assert site.tls is not None and site.tls.ocsp_stapling
    site = loads(SITE + tls + "ocsp_stapling = false\n").sites[0]
    assert site.tls is not None and not site.tls.ocsp_stapling
