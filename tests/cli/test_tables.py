"""``tlsgate status`` and ``tlsgate ca list`` in a real terminal of 80, 100 and 200 columns, and
piped: every row's identifying cells are there in full.

At 80-100 columns rich used to collapse the name and issuer columns to nothing and cut serials
with an ellipsis, and piped output was cut at 160 columns. Each command runs as a process whose
stdout is a pseudo-terminal (so rich sees a terminal, sized by COLUMNS as a shell would set it)
or a pipe.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tlsgate.store.base import RenewalState
from tlsgate.store.sqlite import SQLiteStore

from .test_status import served

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LONG_NAME = "very-long-service-name.payments.internal.prod.example.com"
SITES = [
    # name, issuer as stored, issuer as the table shows it
    (
        LONG_NAME,
        "acme:https://acme-v02.api.letsencrypt.org/directory",
        "acme:acme-v02.api.letsencrypt.org",
    ),
    ("localhost", "internal", "internal"),
    (
        "api.example.com",
        "acme:https://ca.internal.example.org:14000/acme/directory",
        "acme:ca.internal.example.org:14000/acme",
    ),
]
ISSUED = [
    ["a-really-long-hostname.service.internal.example.com", "www.example.com"],
    ["spiffe://prod.example/ns/payments/sa/api-gateway-worker"],
    ["localhost"],
    # Wider than the 160 columns piped output used to be cut at.
    [f"svc-{n}.cluster.internal.example.com" for n in range(6)],
]


def tlsgate(*args: str) -> list[str]:
    return [sys.executable, "-m", "tlsgate", *args]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TLSGATE_")}
    env.pop("COLUMNS", None)
    env.pop("NO_COLOR", None)
    return env


def in_terminal(cmd: list[str], columns: int) -> str:
    """What ``cmd`` prints on a terminal ``columns`` wide (escape sequences removed)."""
    controller, terminal = pty.openpty()
    env = clean_env() | {"COLUMNS": str(columns), "LINES": "50", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.PIPE, env=env
    )
    os.close(terminal)
    data = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(controller)
        _, err = proc.communicate(timeout=60)
    assert err == b"", err
    return ANSI.sub("", data.decode().replace("\r\n", "\n"))


def piped(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=60)
    assert done.stderr == "" and done.returncode in (0, 1), done
    return done.stdout


#: A serial shown whole, as format_serial writes it: 128 random bits in upper-case hex with an
#: even number of digits, so 30 (or fewer) when the top byte happens to be zero (1 in 256).
SERIAL = r"(?:[0-9A-F]{2}){1,16}"


def cells(out: str, key: str) -> Iterator[dict[str, str]]:
    """Each row of the table as {header: the cell's text, its folded lines joined}; a row
    starts on the line where the ``key`` column has text."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "┃" in line)
    headers = [h.strip() for h in lines[head].split("┃")]
    row: dict[str, list[str]] = {}
    for line in lines[head + 2 :]:
        if "│" not in line:
            continue
        parts = [p.strip() for p in line.split("│")]
        assert len(parts) == len(headers), line
        values = dict(zip(headers, parts, strict=True))
        if values[key] and row:
            yield {h: "".join(v) for h, v in row.items()}
            row = {}
        for h, v in values.items():
            row.setdefault(h, []).append(v)
    if row:
        yield {h: "".join(v) for h, v in row.items()}


def squash(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def status_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("status") / "state"
    store = SQLiteStore(state)
    now = datetime.now(UTC)
    for n, (name, issuer, _) in enumerate(SITES):
        served(store, name, now + timedelta(days=30 + n), issuer=issuer)
        store.save_renewal_state(
            RenewalState(name, issuer, now + timedelta(days=20), "lifetime", failures=n)
        )
    store.close()
    return state


@pytest.fixture(scope="module")
def ca_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("ca")
    state = tmp_path / "state"
    subprocess.run(tlsgate("ca", "init", "--state", str(state)), check=True, env=clean_env())
    for n, names in enumerate(ISSUED):
        flags = ["--client", "--spiffe", names[0]] if names[0].startswith("spiffe:") else names
        subprocess.run(
            tlsgate("ca", "issue", *flags, "--state", str(state), "--out", str(tmp_path / str(n))),
            check=True,
            env=clean_env(),
            stdout=subprocess.DEVNULL,
        )
    return state


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_status_in_a_terminal(status_state: Path, columns: int) -> None:
    out = in_terminal(tlsgate("status", "--state", str(status_state)), columns)
    assert "…" not in out
    assert all(len(line) <= columns for line in out.splitlines()), out
    rows = list(cells(out, "serial"))
    shown = {(r["name"], r["issuer"]) for r in rows}
    assert shown == {(name, issuer) for name, _, issuer in SITES}, out
    assert all(re.fullmatch(SERIAL, r["serial"]) for r in rows), out
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", r["expires"]) for r in rows), out
    if columns >= 200:  # room for everything
        assert "failures" in rows[0] and "too narrow" not in out


@pytest.mark.parametrize("columns", [80, 100, 200])
def test_ca_list_in_a_terminal(ca_state: Path, columns: int) -> None:
    out = in_terminal(tlsgate("ca", "list", "--state", str(ca_state)), columns)
    assert "…" not in out
    assert all(len(line) <= columns for line in out.splitlines()), out
    rows = list(cells(out, "serial"))
    assert sorted(squash(r["names"]) for r in rows) == sorted(
        squash(", ".join(names)) for names in ISSUED
    ), out
    assert all(re.fullmatch(SERIAL, r["serial"]) for r in rows), out
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", r["expires (UTC)"]) for r in rows), out
    if columns >= 200:
        assert {r["status"] for r in rows} == {"valid"} and "too narrow" not in out


def test_status_piped(status_state: Path) -> None:
    """Not a terminal: one line per row, every column, every value whole."""
    out = piped(tlsgate("status", "--state", str(status_state)))
    assert "…" not in out
    for name, _, issuer in SITES:
        (line,) = [line for line in out.splitlines() if f" {name} " in line]
        assert f" {issuer} " in line and "lifetime" in line
    assert "failures" in out.splitlines()[0]


def test_ca_list_piped(ca_state: Path) -> None:
    out = piped(tlsgate("ca", "list", "--state", str(ca_state)))
    assert "…" not in out
    for names in ISSUED:
        (line,) = [line for line in out.splitlines() if f" {', '.join(names)} " in line]
        assert "valid" in line
    assert all(h in out.splitlines()[0] for h in ("serial", "names", "usage", "left", "status"))
