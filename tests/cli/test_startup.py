"""Start-up: ``tlsgate --version``/``--help`` import no command module and none of the heavy
libraries, a command imports only its own module, and the help stays what the modules say.

Counted in imported modules, not seconds: the modules are the cost (cryptography, rich, aiohttp
... about half a second), and a module count does not depend on how busy the machine is.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tlsgate.cli import COMMANDS, build_parser

#: Top-level packages a bare ``--version``/``--help`` must not load.
HEAVY = {
    "acme",
    "aiohttp",
    "cryptography",
    "dns",
    "httptools",
    "httpx",
    "josepy",
    "prometheus_client",
    "psycopg",
    "rich",
    "sqlite3",
    "ssl",
    "uvloop",
}


#: Runs ``python -m tlsgate ARGV`` as ``-m`` does, then prints its exit code and sys.modules.
PROBE = """
import contextlib, io, runpy, sys
sys.argv = ["tlsgate", *sys.argv[1:]]
code = 0
try:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        runpy.run_module("tlsgate", run_name="__main__", alter_sys=True)
except SystemExit as exit:
    code = exit.code
print(code)
print("\\n".join(sorted(sys.modules)))
"""


def imported(*argv: str) -> tuple[int, set[str]]:
    """The exit code of ``python -m tlsgate ARGV`` and every module it left in sys.modules."""
    # Without the test session's coverage, which would start in the child and load its own.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    code, *names = proc.stdout.split()
    assert "tlsgate.cli" in names and "argparse" in names  # it did run the CLI
    return int(code), set(names)


@pytest.mark.parametrize(
    ("argv", "code"), [(["--version"], 0), (["--help"], 0), ([], 2), (["stauts"], 2)]
)
def test_top_level_imports_nothing_heavy(argv: list[str], code: int) -> None:
    """Also when there is no command or a mistyped one: the usage error is just as quick."""
    exit_code, names = imported(*argv)
    assert exit_code == code
    heavy = sorted(name for name in names if name.partition(".")[0] in HEAVY)
    assert not heavy, heavy
    commands = sorted(name for name in names if name.startswith("tlsgate.cli."))
    assert not commands, commands


@pytest.mark.parametrize(("name", "module", "help"), COMMANDS)
def test_a_command_imports_only_its_module(name: str, module: str, help: str) -> None:
    code, names = imported(name, "--help")
    assert code == 0
    assert module in names
    others = {other for _, other, _ in COMMANDS} - {module}
    assert not others & names, sorted(others & names)


def test_listed_help_is_what_the_modules_register() -> None:
    """``tlsgate --help`` from COMMANDS alone reads exactly as with every module imported."""
    assert build_parser(()).format_help() == build_parser().format_help()


@pytest.mark.parametrize("name", [name for name, _, _ in COMMANDS])
def test_command_help_is_complete(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``tlsgate NAME --help`` shows the command's own options, as the full parser does."""
    from tlsgate.cli import main

    with pytest.raises(SystemExit) as exit:
        main([name, "--help"])
    assert exit.value.code == 0
    shown = capsys.readouterr().out
    full = build_parser()
    parsers = next(a.choices for a in full._actions if isinstance(a.choices, dict))
    assert shown == parsers[name].format_help()
    assert "--help" in shown and f"usage: tlsgate {name}" in shown
