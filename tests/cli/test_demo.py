"""``tlsgate demo --once``: the README's main job runs, verifies itself and explains what it saw."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import free_port

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(
    argv: list[str], columns: int, stderr: Path, timeout: float = 120
) -> tuple[int, str]:
    """Run argv with its stdout on a pseudo-terminal ``columns`` wide, as a user sees it; its
    exit code and what the terminal got, without colours (stderr goes to the file)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            argv, stdout=slave, stderr=err, stdin=subprocess.DEVNULL,
            env={**os.environ, "COLUMNS": str(columns)},
        )  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while True:
            ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                proc.kill()
                raise AssertionError(f"no end within {timeout} s: {out!r}")
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    code = proc.wait(timeout)
    return code, ANSI.sub("", out.decode()).replace("\r\n", "\n")


def test_demo_once(tmp_path: Path) -> None:
    """At 80 columns, and with a state path long enough that the curl line is wider than that,
    the curl line is still one line of its own, exactly the command (so it can be copied)."""
    port, http_port = free_port(), free_port()
    state = tmp_path / "a-state-directory-with-a-long-name"
    code, out = run_in_terminal(
        [sys.executable, "-m", "tlsgate", "demo", "--once", "--port", str(port),
         "--http-port", str(http_port), "--state", str(state)],
        columns=80, stderr=tmp_path / "stderr",
    )  # fmt: skip
    stderr = (tmp_path / "stderr").read_text()
    assert code == 0, out + stderr
    assert "X-Forwarded-Proto:      https" in out
    assert "scheme on its socket:   http" in out
    curl = f"curl --cacert {state / 'root.pem'} https://localhost:{port}/hello"
    assert len(curl) > 80
    lines = out.splitlines()
    assert curl in lines, out
    assert f"curl -i http://localhost:{http_port}/hello   # a 308 redirect to https" in lines, out
    assert (state / "root.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    # A clean stop: no task left pending, no traceback (both print to stderr).
    assert "Task was destroyed" not in stderr and "Traceback" not in stderr, stderr


def test_demo_once_piped(tmp_path: Path) -> None:
    """Piped (a script, a CI log): the same line, alone on its line."""
    port, http_port = free_port(), free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "tlsgate", "demo", "--once", "--port", str(port),
         "--http-port", str(http_port), "--state", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "80"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    curl = f"curl --cacert {tmp_path / 'state' / 'root.pem'} https://localhost:{port}/hello"
    assert curl in proc.stdout.splitlines(), proc.stdout
