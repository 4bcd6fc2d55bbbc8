"""Messages: where a value came from and how the reader wrote it, for one-line errors.

Every check reports through :class:`At`, so the same check yields ``FILE:LINE: key: ...`` for
the config file and ``--flag: ...`` for the command line.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time

from tlsgate.config.locate import _BARE_KEY, _Key, _Locator
from tlsgate.errors import ConfigError


@dataclass(frozen=True)
class At:
    """Where a value came from (``site[1].upstream`` at a file line, or ``--to``).

    Carrying this next to every value lets one set of checks serve both the file and the flags,
    each producing the prefix its reader can act on.
    """

    label: str
    source: str | None = None  # None for command-line flags
    path: _Key = ()
    locator: _Locator | None = None

    @property
    def line(self) -> int | None:
        return None if self.locator is None else self.locator.line(self.path)

    def child(self, key: str | int) -> At:
        if self.source is None:
            return self  # a repeated flag has no index worth showing
        if isinstance(key, int):
            label = f"{self.label}[{key}]"
        else:
            shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
            label = f"{self.label}.{shown}" if self.label else shown
        return At(label, self.source, (*self.path, key), self.locator)

    def error(self, message: str) -> ConfigError:
        line = self.line
        if self.source is None:
            prefix = ""
        elif line is None:
            prefix = f"{self.source}: "
        else:
            prefix = f"{self.source}:{line}: "
        label = f"{self.label}: " if self.label else ""
        return ConfigError(f"{prefix}{label}{message}")


def show(value: object) -> str:
    """A value as the reader wrote it, short enough for a one-line message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time"
    return type(value).__name__


def syntax_error(text: str, source: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """Move tomllib's "(at line L, column C)" suffix to the FILE:LINE:COL front editors jump to."""
    message = str(exc)
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S)
    if match:
        return ConfigError(f"{source}:{match[2]}:{match[3]}: {match[1]}")
    match = re.fullmatch(r"(.*) \(at end of document\)", message, re.S)
    if match:
        # Point just past the last thing written, not at an empty line after it.
        end = len(text.rstrip())
        line = text.count("\n", 0, end) + 1
        column = end - text.rfind("\n", 0, end)
        return ConfigError(f"{source}:{line}:{column}: {match[1]}")
    return ConfigError(f"{source}: {message}")
