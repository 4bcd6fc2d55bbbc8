"""The dns-01 hook solver (tlsgate.acme.client.hooks): what the command gets, and its failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tlsgate.acme.client.hooks import Dns01Hook
from tlsgate.acme.client.session import AcmeClientError
from tlsgate.acme.jose import dns01_txt_value
from tlsgate.errors import ConfigError

from ..server.test_server import run


def test_the_command_gets_the_record_name_and_value(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = tmp_path / "hook.py"
    script.write_text(
        f"import sys\nopen({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
    )
    hook = Dns01Hook(f"{sys.executable} {script}")

    async def main() -> None:
        await hook.present("*.a.example.test", "tok", "tok.thumb")
        await hook.cleanup("*.a.example.test", "tok")

    run(main())
    value = dns01_txt_value("tok.thumb")
    assert log.read_text().splitlines() == [
        f"present _acme-challenge.a.example.test {value}",
        f"cleanup _acme-challenge.a.example.test {value}",
    ]


def test_failures() -> None:
    with pytest.raises(ConfigError, match="empty"):
        Dns01Hook("  ")

    async def main() -> None:
        failing = Dns01Hook(f"{sys.executable} -c \"import sys; print('no API key'); sys.exit(3)\"")
        with pytest.raises(AcmeClientError, match=r"\(3\): no API key"):
            await failing.present("a.example.test", "t", "t.k")
        await failing.cleanup("a.example.test", "t")  # logged, not raised
        missing = Dns01Hook("/nonexistent/dns-hook")
        with pytest.raises(AcmeClientError, match="dns-01 hook /nonexistent/dns-hook"):
            await missing.present("a.example.test", "t", "t.k")
        slow = Dns01Hook(f'{sys.executable} -c "import time; time.sleep(30)"', timeout=0.5)
        with pytest.raises(AcmeClientError, match=r"no answer within 0\.5 s"):
            await slow.present("a.example.test", "t", "t.k")

    run(main())
