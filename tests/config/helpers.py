"""What the tlsgate.config tests share: the smallest valid document, and a TOML writer."""

from __future__ import annotations

import math
import re
import textwrap
from datetime import date, datetime, time

import pytest
from hypothesis import strategies as st

from tlsgate import config
from tlsgate.config import loads
from tlsgate.errors import ConfigError

#: The smallest valid document: three lines, so the lines after it are easy to count.
SITE = '[[site]]\nhosts = "example.com"\nupstream = "127.0.0.1:8000"\n'


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        loads(text)
    return str(info.value)


def docstring_example() -> str:
    """The example in the module docstring, so the documentation is tested, not just read."""
    doc = config.__doc__
    assert doc is not None
    _, marker, rest = doc.partition("Example::\n")
    assert marker
    block: list[str] = []
    for line in rest.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


_TRICKY_STRINGS = st.sampled_from(
    [
        "",
        "[server]",
        "[[site]]\nkey = 1",
        "a = '''",
        'x """ y',
        "\\",
        "# not a comment",
        "{ a = 1 }",
    ]
)
LEAVES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    _TRICKY_STRINGS,
    st.datetimes(),
    st.dates(),
    st.times(),
)


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def fits_multiline_literal(text: str) -> bool:
    """A multi-line literal has no escapes, so some strings cannot be written as one."""
    return (
        "'''" not in text
        and not text.startswith("\n")  # TOML drops a newline right after the opening quotes
        and all(c in "\t\n" or (ord(c) >= 0x20 and ord(c) != 0x7F) for c in text)
    )


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: object) -> str:
    """One value in inline form (the test's own writer; the project needs none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
