"""Paths and the access_log keywords (tlsgate.config.values)."""

from __future__ import annotations

from pathlib import Path

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
