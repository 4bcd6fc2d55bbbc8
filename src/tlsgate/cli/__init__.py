"""``tlsgate`` command line: parsing, dispatch, and the exit-code contract.

Exit codes: 0 success; 2 for anything the user can fix (bad input, missing state, refused
policy), always as exactly one line on stderr; 1 for an internal error (a bug), with the traceback
only when ``TLSGATE_DEBUG=1``. Scripts can therefore rely on "2 means my input was wrong".
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

from tlsgate import __version__
from tlsgate.errors import TlsgateError

__all__ = ["Parser", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    """argparse with the one-line error contract instead of usage dumps."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(2)


def build_parser() -> Parser:
    from tlsgate.cli import ca, cert, check, monitor, serve, status, tunnel

    parser = Parser(
        prog="tlsgate",
        description="The whole HTTPS system in one tool: certificate authority, ACME, "
        "TLS-terminating proxy, mutual TLS and expiry monitoring.",
    )
    parser.add_argument("--version", action="version", version=f"tlsgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    ca.register(commands)
    cert.register(commands)
    check.register(commands)
    monitor.register(commands)
    serve.register(commands)
    status.register(commands)
    tunnel.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
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
            traceback.print_exc()
        sys.stderr.write(
            f"tlsgate: internal error: {type(exc).__name__}: {exc} "
            "(set TLSGATE_DEBUG=1 for a traceback and please report it)\n"
        )
        return 1
