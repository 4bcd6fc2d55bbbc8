"""Value checks for the scalars and shapes of the schema: numbers, booleans, paths, lists.

Each takes a raw TOML (or flag) value and where it came from, and returns the validated value or
raises the positioned :class:`~tlsgate.errors.ConfigError`. Addresses live in
:mod:`tlsgate.config.addresses`.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from pathlib import Path

from tlsgate.config.messages import At, show


def table_value(value: object, at: At, expected: str = "a table") -> dict[str, object]:
    if not isinstance(value, dict):
        raise at.error(f"expected {expected}, got {show(value)}")
    return value


def _items(value: object, at: At, expected: str) -> list[tuple[object, At]]:
    """A string or a list of them, each with its own position (list elements are indexed)."""
    if isinstance(value, str):
        return [(value, at)]
    if isinstance(value, list):
        return [(item, at.child(index)) for index, item in enumerate(value)]
    raise at.error(f"expected {expected}, got {show(value)}")


def _choice(
    value: object,
    choices: tuple[str, ...],
    at: At,
    hints: Mapping[str, str] | None = None,
) -> str:
    """One of ``choices``; ``hints`` name the choice meant by another program's word for it."""
    if isinstance(value, str) and value in choices:
        return value
    close: list[str] = []
    if isinstance(value, str):
        lower = value.lower()
        if hints and lower in hints:
            close = [hints[lower]]
        elif lower in choices:
            close = [lower]
        else:
            close = difflib.get_close_matches(value, choices, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    expected = " or ".join(f'"{choice}"' for choice in choices)
    raise at.error(f"expected {expected}, got {show(value)}{hint}")


def _is_int(value: object) -> bool:
    # bool is an int subclass: "workers = true" must not quietly mean one worker.
    return isinstance(value, int) and not isinstance(value, bool)


def bool_value(value: object, at: At) -> bool:
    if not isinstance(value, bool):
        raise at.error(f"expected true or false, got {show(value)}")
    return value


def _workers(value: object, at: At) -> int:
    if not _is_int(value):
        raise at.error(f"expected a whole number of worker processes, got {show(value)}")
    assert isinstance(value, int)
    if value < 0:
        raise at.error(f"{value} is negative; 0 means one worker per core")
    return value


def path_value(value: object, at: At, base: Path | None) -> Path:
    if not isinstance(value, str):
        raise at.error(f"expected a path as a string, got {show(value)}")
    if not value:
        raise at.error("expected a path, got an empty string")
    if "\0" in value:
        raise at.error(f"{show(value)}: a path cannot contain a NUL character")
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # "~nosuchuser", or no home directory at all
        raise at.error(f"{show(value)}: cannot expand ~ ({exc})") from None
    return path if base is None or path.is_absolute() else base / path


def _access_log(value: object, at: At, base: Path | None) -> str:
    if value in ("stdout", "off"):
        assert isinstance(value, str)
        return value
    if not isinstance(value, str) or not value:
        raise at.error(f'expected "stdout", "off" or a file path, got {show(value)}')
    return str(path_value(value, at, base))


def _seconds(value: object, at: At, *, zero: bool = False) -> float:
    """A timeout (positive), or with ``zero`` a wait that may be skipped (0 or more)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise at.error(f"expected a number of seconds, got {show(value)}")
    if zero:
        if not math.isfinite(value):
            raise at.error(f"{show(value)}: expected a finite number of seconds")
        if value < 0:
            raise at.error(f"{show(value)}: must be 0 or more seconds")
    elif not math.isfinite(value) or value <= 0:
        raise at.error(f"{show(value)}: a timeout must be a positive number of seconds")
    return float(value)


def count_value(value: object, at: At, what: str, *, zero: bool = False) -> int:
    if not _is_int(value):
        raise at.error(f"expected a whole number of {what}, got {show(value)}")
    assert isinstance(value, int)
    if value < 0 or (value == 0 and not zero):
        raise at.error(f"{value}: must be {'0 or more' if zero else 'at least 1'}")
    return value


_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: Tickets stay valid for up to two periods; longer would defeat rotating at all.
_MAX_ROTATION = 7 * 86400


def duration_from_text(value: str) -> float | None:
    """Seconds in "12h", "1h30m", "90s", "2d"; None if it is not written that way."""
    parts = _DURATION_PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return float(sum(int(n) * _UNIT_SECONDS[u] for n, u in parts))


def _duration(value: str, at: At) -> float:
    """A positive duration written "12h", "30m", "90s" or "1d2h" (a command-line value)."""
    seconds = duration_from_text(value)
    if seconds is None or seconds <= 0:
        raise at.error(f'{show(value)}: expected a duration like "90d", "12h", "30m" or "60s"')
    return seconds


def _rotation(value: object, at: At) -> float | None:
    """``ticket_rotation``: "off", a duration ("12h", "1h30m", "2s") or a number of seconds."""
    if value == "off":
        return None
    if isinstance(value, str):
        parsed = duration_from_text(value)
        if parsed is None:
            raise at.error(f'{show(value)}: expected "off" or a duration like "12h", "30m", "1d"')
        seconds = parsed
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise at.error(f'expected "off", a duration like "12h" or seconds, got {show(value)}')
    if seconds < 1:
        raise at.error(f"{show(value)}: the ticket rotation must be at least 1 second")
    if seconds > _MAX_ROTATION:
        raise at.error(f"{show(value)}: the ticket rotation must be at most 7 days")
    return seconds


def _poll(value: object, at: At) -> float:
    """``store_poll``: a duration ("5s", "1m") or seconds, at least 1 (a read every second of
    every node is already more than a revocation needs)."""
    if isinstance(value, str):
        parsed = duration_from_text(value)
        if parsed is None:
            raise at.error(f'{show(value)}: expected a duration like "5s", "1m" or seconds')
        seconds = parsed
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise at.error(f'expected a duration like "5s" or seconds, got {show(value)}')
    if seconds < 1:
        raise at.error(f"{show(value)}: the store poll must be at least 1 second")
    return seconds
