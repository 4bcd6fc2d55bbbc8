"""Locating keys in the source: a dotted key path -> the line it was written on.

tomllib gives plain dicts without positions, yet every error message should say FILE:LINE, so
this module scans the (already valid) text once for structure only. It knows nothing about the
tlsgate schema.
"""

from __future__ import annotations

import bisect
import re
import tomllib
from collections.abc import Sequence

#: A path into the parsed document: keys, and indexes into arrays (``("site", 1, "upstream")``).
_Key = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}#\n]")


class _Locator:
    """Line numbers for the keys and tables of a document that tomllib has already accepted.

    tomllib returns plain dicts without positions. Because the text is known to be valid TOML,
    a scan that only follows structure (headers, keys, where each value ends) is enough to map
    every path tomllib produced back to the line it came from; values are skipped, not parsed.
    Strings are skipped exactly so that a ``[server]`` or ``key =`` inside a multi-line string
    cannot be mistaken for structure.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._newlines = [m.start() for m in re.finditer("\n", text)]
        #: Paths written out: a table header, a ``key =`` line, an array element.
        self.defined: dict[_Key, int] = {}
        #: Paths only implied, like ``server`` by ``[server.timeouts]`` or ``timeouts.idle = 1``.
        self.implicit: dict[_Key, int] = {}
        self._tables: dict[_Key, int] = {}  # arrays of tables -> how many elements so far

    def line(self, path: _Key) -> int | None:
        """The line of ``path``, else of the closest enclosing thing that was written down.

        A missing key is reported at its table's header, which is where it would have to go.
        """
        for end in range(len(path), 0, -1):
            prefix = path[:end]
            found = self.defined.get(prefix) or self.implicit.get(prefix)
            if found is not None:
                return found
        return None

    def scan(self) -> None:
        text = self._text
        table: _Key = ()
        pos = 0
        while True:
            pos = self._skip_blank(pos, newlines=True)
            if pos >= len(text):
                return
            line = self._line_at(pos)
            if text.startswith("[[", pos):
                parts, pos = self._key(pos + 2)
                pos = self._expect(pos, "]]")
                parent = self._resolve(parts[:-1])
                array: _Key = (*parent, parts[-1])
                count = self._tables.get(array, 0)
                self._tables[array] = count + 1
                table = (*array, count)
                self._define(table, line)
            elif text[pos] == "[":
                parts, pos = self._key(pos + 1)
                pos = self._expect(pos, "]")
                table = self._resolve(parts)
                self._define(table, line)
            else:
                pos = self._key_value(pos, table)

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _define(self, path: _Key, line: int) -> None:
        self.defined.setdefault(path, line)
        for end in range(1, len(path)):
            self.implicit.setdefault(path[:end], line)

    def _resolve(self, parts: Sequence[str]) -> _Key:
        """A header's dotted name -> the concrete path (``site.tls`` is the latest site's tls)."""
        path: _Key = ()
        for part in parts:
            path = (*path, part)
            if path in self._tables:
                path = (*path, self._tables[path] - 1)
        return path

    def _skip_blank(self, pos: int, *, newlines: bool) -> int:
        text = self._text
        blank = " \t\r\n" if newlines else " \t"
        while pos < len(text):
            char = text[pos]
            if char in blank:
                pos += 1
            elif char == "#":
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end
            else:
                break
        return pos

    def _expect(self, pos: int, token: str) -> int:
        pos = self._skip_blank(pos, newlines=False)
        if not self._text.startswith(token, pos):
            raise ValueError(f"expected {token!r} at offset {pos}")
        return pos + len(token)

    def _key(self, pos: int) -> tuple[list[str], int]:
        text = self._text
        parts: list[str] = []
        while True:
            pos = self._skip_blank(pos, newlines=False)
            if text.startswith('"', pos):
                end = self._basic_string_end(pos)
                # Escapes in a quoted key are rare; tomllib itself decodes them exactly.
                decoded = tomllib.loads(f"k = {text[pos:end]}")["k"]
                parts.append(str(decoded))
                pos = end
            elif text.startswith("'", pos):
                end = text.index("'", pos + 1)
                parts.append(text[pos + 1 : end])
                pos = end + 1
            else:
                match = _BARE_KEY.match(text, pos)
                if match is None:
                    raise ValueError(f"expected a key at offset {pos}")
                parts.append(match.group())
                pos = match.end()
            pos = self._skip_blank(pos, newlines=False)
            if not text.startswith(".", pos):
                return parts, pos
            pos += 1

    def _key_value(self, pos: int, table: _Key) -> int:
        line = self._line_at(pos)
        parts, pos = self._key(pos)
        path = (*table, *parts)
        self._define(path, line)
        pos = self._expect(pos, "=")
        pos = self._skip_blank(pos, newlines=False)
        return self._value(pos, path)

    def _value(self, pos: int, path: _Key) -> int:
        text = self._text
        if text.startswith('"""', pos) or text.startswith("'''", pos):
            return self._multiline_string_end(pos)
        if text.startswith('"', pos):
            return self._basic_string_end(pos)
        if text.startswith("'", pos):
            return text.index("'", pos + 1) + 1
        if text.startswith("[", pos):
            index = 0
            pos += 1
            while True:
                pos = self._skip_blank(pos, newlines=True)
                if text.startswith("]", pos):
                    return pos + 1
                element: _Key = (*path, index)
                self._define(element, self._line_at(pos))
                pos = self._value(pos, element)
                index += 1
                pos = self._skip_blank(pos, newlines=True)
                if text.startswith(",", pos):
                    pos += 1
        if text.startswith("{", pos):
            pos += 1
            while True:
                pos = self._skip_blank(pos, newlines=True)
                if text.startswith("}", pos):
                    return pos + 1
                pos = self._key_value(pos, path)
                pos = self._skip_blank(pos, newlines=True)
                if text.startswith(",", pos):
                    pos += 1
        # Numbers, booleans, dates: nothing inside them can look like structure.
        match = _SCALAR_END.search(text, pos)
        return len(text) if match is None else match.start()

    def _basic_string_end(self, pos: int) -> int:
        text = self._text
        pos += 1
        while text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        return pos + 1

    def _multiline_string_end(self, pos: int) -> int:
        text = self._text
        quote = text[pos]
        pos += 3
        while not text.startswith(quote * 3, pos):
            pos += 2 if quote == '"' and text[pos] == "\\" else 1
        pos += 3
        # Up to two quotes right before the closing delimiter belong to the string.
        for _ in range(2):
            if text.startswith(quote, pos):
                pos += 1
        return pos


def locator_for(text: str) -> _Locator:
    """A locator for ``text``; a scan that trips up costs line numbers, never the whole load."""
    locator = _Locator(text)
    try:
        locator.scan()
    except (ValueError, IndexError, RecursionError):
        pass  # keep what was found before the trouble; the rest falls back to coarser lines
    return locator
