"""A mistyped command, subcommand, choice or option: exit 2, one line, and the closest match."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tlsgate.cli import main


@pytest.mark.parametrize(
    ("argv", "prog", "hint"),
    [
        (["stauts"], "tlsgate", "invalid choice: 'stauts' (did you mean 'status'?)"),
        (["ca", "inti"], "tlsgate ca", "invalid choice: 'inti' (did you mean 'init'?)"),
        (["status", "--sate", "/tmp/x"], "tlsgate status", "--sate: did you mean --state?"),
        (["serve", "--hots", "a.example"], "tlsgate serve", "--hots: did you mean --host?"),
        (["ca", "list", "--expires-within", "3"], "tlsgate ca list", "--expiring-within?"),
        (["ca", "list", "--status", "revokd"], "tlsgate ca list", "did you mean 'revoked'?"),
        (["--verison", "status"], "tlsgate", "--verison: did you mean --version?"),
    ],
)
def test_closest_match_is_suggested(
    argv: list[str], prog: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{prog}: error: "), err
    assert hint in err, err


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["frobnicate"], "(choose from 'ca', 'cert', 'check'"),  # nothing close: the list
        (["status", "--frobnicate"], "unrecognized arguments: --frobnicate (see --help)"),
    ],
)
def test_nothing_close_suggests_nothing(
    argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert shown in err and "did you mean" not in err, err


def test_installed_command_suggests() -> None:
    """The same through ``python -m tlsgate``, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "tlsgate", "ca", "revokee", "01"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "tlsgate ca: error: argument COMMAND: invalid choice: 'revokee' (did you mean "
        "'revoke'?) (see --help)\n"
    )
