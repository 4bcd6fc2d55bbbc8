"""``tlsgate`` command line: parsing, dispatch, and the exit-code contract.

Exit codes: 0 success; 2 for anything the user can fix (bad input, missing state, refused
policy), always as exactly one line on stderr; 1 for an internal error (a bug), with the traceback
only when ``TLSGATE_DEBUG=1``. Scripts can therefore rely on "2 means my input was wrong".

Start-up cost: a command's module pulls in cryptography, rich, aiohttp and friends (about half a
second), so only the module of the command being run is imported. ``tlsgate --help`` and
``--version`` import none of them: the list of commands and their one-line help live in
:data:`COMMANDS` (tests/cli/test_startup.py checks they say what the modules register).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, NoReturn

from tlsgate import __version__
from tlsgate.errors import TlsgateError

__all__ = ["COMMANDS", "Parser", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

#: Every command, in the order ``--help`` lists them: name, the module whose ``register()`` adds
#: it (one module may add several), and its one-line help as that module registers it.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("ca", "tlsgate.cli.ca", "run the internal certificate authority"),
    ("cert", "tlsgate.cli.cert", "certificates from any ACME CA, for hosts not behind serve"),
    (
        "check",
        "tlsgate.cli.check",
        "explain a TLS endpoint or certificate file: what a browser sees and its verdict",
    ),
    (
        "monitor",
        "tlsgate.cli.monitor",
        "check many endpoints, files and stores on a schedule; /metrics and alerts",
    ),
    ("serve", "tlsgate.cli.serve", "terminate TLS in front of plain-HTTP services"),
    ("demo", "tlsgate.cli.serve", "run the edge in front of a tiny echo app and explain it"),
    (
        "status",
        "tlsgate.cli.status",
        "certificates serve manages and their renewal (exit 1: failing, 2: expired)",
    ),
    (
        "tunnel",
        "tlsgate.cli.tunnel",
        "a local plain port to a service over mutual TLS, with a renewed identity",
    ),
)


def _closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate a typo most likely meant (difflib, as git and pip do), or None."""
    import difflib  # only on the error path

    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract instead of usage dumps, and a "did you mean"
    for a mistyped command, choice or option."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        if action.choices is None or value in action.choices or not isinstance(value, str):
            return super()._check_value(action, value)
        hint = _closest(value, (str(choice) for choice in action.choices))
        if hint is None:
            return super()._check_value(action, value)
        raise argparse.ArgumentError(action, f"invalid choice: {value!r} (did you mean {hint!r}?)")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Refuse unknown arguments here, in the (sub)command that was given them, which knows
        its own options; argparse would refuse them in the top-level parser, which does not."""
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            options = [s for action in self._actions for s in action.option_strings]
            hints = []
            for extra in extras:
                name = extra.partition("=")[0]
                hint = _closest(name, options) if name.startswith("-") else None
                if hint is not None:
                    hints.append(f"{name}: did you mean {hint}?")
            message = f"unrecognized arguments: {' '.join(extras)}"
            self.error(f"{message} ({'; '.join(hints)})" if hints else message)
        return parsed, extras


def build_parser(commands: Collection[str] | None = None) -> Parser:
    """The whole parser. ``commands``: only these commands' modules are imported and their
    arguments known; the others are listed by name and help only (None: every command)."""
    parser = Parser(
        prog="tlsgate",
        description="The whole HTTPS system in one tool: certificate authority, ACME, "
        "TLS-terminating proxy, mutual TLS and expiry monitoring.",
    )
    parser.add_argument("--version", action="version", version=f"tlsgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    chosen = {module for name, module, _ in COMMANDS if commands is None or name in commands}
    for name, module, help in COMMANDS:
        if name in sub.choices:  # added by an earlier command's module
            continue
        if module in chosen:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help, add_help=False)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command argv names: its first positional argument (the top-level options, --help and
    --version, take no value). None when there is none or it is not a command."""
    names = {name for name, _, _ in COMMANDS}
    for arg in argv:
        if arg == "--" or arg.startswith("-"):
            continue
        return arg if arg in names else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_in(argv)
    args = build_parser(() if command is None else (command,)).parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:  # parsed differently than _command_in read it: use the whole parser
        args = build_parser().parse_args(argv)
        handler = args.handler
    try:
        return handler(args)
    except TlsgateError as exc:
        message = str(exc).replace("\n", " ")
        sys.stderr.write(f"tlsgate: error: {message}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("tlsgate: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("TLSGATE_DEBUG"):
            import traceback

            traceback.print_exc()
        sys.stderr.write(
            f"tlsgate: internal error: {type(exc).__name__}: {exc} "
            "(set TLSGATE_DEBUG=1 for a traceback and please report it)\n"
        )
        return 1
