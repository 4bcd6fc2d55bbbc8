"""``tlsgate demo --once``: the README's main job runs, verifies itself and explains what it saw."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port


def test_demo_once(tmp_path: Path) -> None:
    port, http_port = free_port(), free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "tlsgate", "demo", "--once", "--port", str(port),
         "--http-port", str(http_port), "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "X-Forwarded-Proto:      https" in out
    assert "scheme on its socket:   http" in out
    assert f"curl --cacert {tmp_path / 'state' / 'root.pem'} https://localhost:{port}/hello" in out
    assert (tmp_path / "state" / "root.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    # A clean stop: no task left pending, no traceback (both print to stderr).
    assert "Task was destroyed" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
