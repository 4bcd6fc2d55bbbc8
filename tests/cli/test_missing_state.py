"""Commands that use state made before refuse a state that is not there, and create nothing.

A mistyped ``--state`` or ``TLSGATE_STATE`` used to become a new, empty state: ``status`` and
``ca list`` then answered "nothing here" with exit 0, and every other command left an empty
state directory behind its refusal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tlsgate.cli import main
from tlsgate.store.sqlite import DB_NAME, SQLiteStore

#: Every command that reads state made before (the CA, or what serve manages), with the
#: arguments it needs to get as far as opening the state.
READERS: list[list[str]] = [
    ["status"],
    ["status", "--json"],
    ["ca", "list"],
    ["ca", "list", "--json"],
    ["ca", "info"],
    ["ca", "show", "01"],
    ["ca", "export-root"],
    ["ca", "crl"],
    ["ca", "revoke", "01"],
    ["ca", "issue", "a.example", "--out", "{tmp}/out"],
    ["ca", "serve", "--listen", "127.0.0.1:0"],
    [
        "tunnel",
        "--listen",
        "127.0.0.1:0",
        "--to",
        "https://localhost:1",
        "--identity",
        "spiffe://example.org/x",
    ],
]


def run(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys: pytest.CaptureFixture[str], args: list[str], path: Path) -> None:
    code, out, err = run(capsys, args)
    assert code == 2, (args, code, out, err)
    assert out == ""
    (line,) = err.splitlines()
    assert str(path) in line and "tlsgate ca init" in line, line


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
def test_a_mistyped_state_option_is_refused_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    typo = tmp_path / "stat"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    refused(capsys, [*args, "--state", str(typo)], typo)
    assert not typo.exists()
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a[:2]))
def test_a_mistyped_state_variable_is_refused_and_not_created(
    state_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    refused(capsys, args, state_dir)  # TLSGATE_STATE names a directory that is not there
    assert not state_dir.exists()


def test_a_directory_without_state_is_refused_and_left_empty(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir.mkdir()
    for args in (["status"], ["ca", "list"], ["ca", "export-root"]):
        refused(capsys, args, state_dir)
    assert list(state_dir.iterdir()) == []


def test_an_existing_empty_state_is_read(
    state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    SQLiteStore(state_dir).close()
    before = sorted(p.name for p in state_dir.iterdir())
    assert DB_NAME in before
    assert run(capsys, ["status"])[0] == 0
    code, out, _ = run(capsys, ["ca", "list"])
    assert (code, out.strip()) == (0, "No certificates match.")


def test_through_the_entry_point(tmp_path: Path) -> None:
    """What a script sees: exit 2, one line naming the path, and no directory made."""
    typo = tmp_path / "typo"
    env = {k: v for k, v in os.environ.items() if k != "TLSGATE_STORE"}
    env["TLSGATE_STATE"] = str(typo)
    for args in (["status"], ["ca", "list"]):
        done = subprocess.run(
            [sys.executable, "-m", "tlsgate", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done
        assert done.stdout == ""
        assert f"no tlsgate state at {typo}" in done.stderr
    assert not typo.exists()
