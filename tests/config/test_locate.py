"""The locator on its own (tlsgate.config.locate).

Every path tomllib produced maps back to where it was written.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.config.locate import _Locator, locator_for

from .helpers import LEAVES, fits_multiline_literal, toml_key, toml_value

_KEY_TEXT = st.text(alphabet="ab_-. \"'\\[]=#\nü", max_size=4)
_TREES = st.recursive(
    st.dictionaries(_KEY_TEXT, LEAVES, max_size=3),
    lambda children: st.dictionaries(
        _KEY_TEXT,
        st.one_of(
            LEAVES,
            children,
            st.lists(LEAVES, max_size=3),
            st.lists(children, min_size=1, max_size=2),
        ),
        max_size=3,
    ),
    max_leaves=12,
)


def write_document(
    tree: dict[str, object], data: st.DataObject
) -> tuple[str, dict[tuple[str | int, ...], int]]:
    """Serialise ``tree`` in a randomly mixed style; return the text and where each key went."""
    out: list[str] = []
    lines: dict[tuple[str | int, ...], int] = {}

    def current_line() -> int:
        return "".join(out).count("\n") + 1

    def comment() -> str:
        return "  # [fake] key = 1" if data.draw(st.booleans()) else ""

    def body(table: dict[str, object], path: tuple[str | int, ...], header: list[str]) -> None:
        later: list[tuple[str, object]] = []
        for key, value in table.items():
            is_table_array = (
                isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
            )
            if (isinstance(value, dict) or is_table_array) and data.draw(st.booleans()):
                later.append((key, value))
                continue
            lines[(*path, key)] = current_line()
            if (
                isinstance(value, str)
                and fits_multiline_literal(value)
                and data.draw(st.booleans())
            ):
                written = f"'''{value}'''"  # a multi-line literal string
            elif isinstance(value, list) and value and data.draw(st.booleans()):
                written = "[\n" + "".join(f"  {toml_value(v)},\n" for v in value) + "]"
            else:
                written = toml_value(value)
            out.append(f"{toml_key(key)} = {written}{comment()}\n")
        for key, value in later:
            name = [*header, toml_key(key)]
            dot = data.draw(st.sampled_from([".", " . "]))
            if isinstance(value, dict):
                lines[(*path, key)] = current_line()
                out.append(f"[{dot.join(name)}]{comment()}\n")
                body(value, (*path, key), name)
            else:
                assert isinstance(value, list)
                for index, element in enumerate(value):
                    lines[(*path, key, index)] = current_line()
                    out.append(f"[[ {dot.join(name)} ]]{comment()}\n")
                    assert isinstance(element, dict)
                    body(element, (*path, key, index), name)

    body(tree, (), [])
    return "".join(out), lines


def all_paths(value: object, path: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from all_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from all_paths(item, (*path, index))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_locator_finds_every_key_where_it_was_written(data: st.DataObject) -> None:
    tree = data.draw(_TREES)
    text, lines = write_document(tree, data)
    assert tomllib.loads(text) == tree  # the writer itself is right
    locator = _Locator(text)
    locator.scan()  # the strict form: on valid TOML the scan must not stumble at all
    for path, line in lines.items():
        assert locator.defined.get(path) == line, (path, text)
    for path in all_paths(tree):
        assert locator.line(path) is not None, (path, text)


def test_locator_falls_back_to_the_enclosing_key() -> None:
    locator = locator_for('[server]\nlisten = ":443"\n')
    assert locator.line(("server", "listen")) == 2
    assert locator.line(("server", "listen", 3)) == 2
    assert locator.line(("server", "workers")) == 1
    assert locator.line(("site", 0)) is None


def test_locator_that_stumbles_keeps_what_it_found() -> None:
    """Line numbers are a courtesy: losing some must never turn into a crash."""
    locator = locator_for('[server]\nlisten = ":443"\n[[\n')
    assert locator.line(("server", "listen")) == 2
