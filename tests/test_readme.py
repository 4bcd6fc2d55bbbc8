"""Every ``tlsgate ...`` command shown in the README parses with the real CLI parser."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tlsgate.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line.startswith("tlsgate "):
                commands.append(line)
    return commands


def test_readme_has_commands() -> None:
    assert len(readme_commands()) >= 10


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_parses(command: str) -> None:
    args = shlex.split(command)[1:]
    parsed = build_parser().parse_args(args)
    assert callable(parsed.handler)


def test_readme_lists_every_finding_code() -> None:
    """Every code check and monitor can emit is explained in the README's table, and only those:
    a code a user meets in --json or an alert is one they can look up."""
    from tlsgate.inspect.report import Code

    table = README.read_text().split("What it tells apart", 1)[1].split("\n\n", 2)[1]
    listed = set(
        re.findall(r"`([a-z-]+)`", "".join(line.split("|")[1] for line in table.splitlines()[2:]))
    )
    assert listed == {code.value for code in Code}
