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


def readme_section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_demo_once_is_documented() -> None:
    assert "tlsgate demo --once" in readme_commands()
    assert "./scripts/demo.sh --once" in readme_section("Two commands")


def test_ca_commands_start_from_a_scratch_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A new user runs the demo, then the README's `ca init`: the demo's CA is in the default
    state, so the section says to use a scratch one first, and the refusal says so too."""
    block = re.search(r"```sh\n(.*?)```", readme_section("Running the CA"), re.S)
    assert block is not None
    lines = block.group(1).splitlines()
    assert lines[0].startswith("export TLSGATE_STATE=$(mktemp -d)")
    assert lines[1].startswith("tlsgate ca init ")

    from tlsgate.cli import main

    monkeypatch.delenv("TLSGATE_STATE", raising=False)
    monkeypatch.delenv("TLSGATE_STORE", raising=False)
    monkeypatch.delenv("TLSGATE_CA_PASSPHRASE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert main(["ca", "init"]) == 0  # what the demo did in the default state
    capsys.readouterr()
    assert main(["ca", "init"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "tlsgate ca info" in err and "--force" in err, err
    assert "export TLSGATE_STATE=$(mktemp -d)" in err, err
    monkeypatch.setenv("TLSGATE_STATE", str(tmp_path / "scratch"))  # what that line does
    assert main(["ca", "init"]) == 0


def test_readme_lists_every_finding_code() -> None:
    """Every code check and monitor can emit is explained in the README's table, and only those:
    a code a user meets in --json or an alert is one they can look up."""
    from tlsgate.inspect.report import Code

    table = README.read_text().split("What it tells apart", 1)[1].split("\n\n", 2)[1]
    listed = set(
        re.findall(r"`([a-z-]+)`", "".join(line.split("|")[1] for line in table.splitlines()[2:]))
    )
    assert listed == {code.value for code in Code}
