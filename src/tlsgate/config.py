"""``tlsgate.toml``: frozen dataclasses, loaded with exact errors that point at the line.

One shape for both ways of starting the edge: the config file (``serve -c tlsgate.toml``) and the
zero-config flags (``serve --host NAME --to URL``) both produce a :class:`Config`, so every later
stage sees validated values only.

Example::

    [server]
    listen = "0.0.0.0:443"            # or a list; "[::]:443" for IPv6, ":443" = "0.0.0.0:443"
    http_listen = "0.0.0.0:80"        # plain HTTP: ACME http-01 + redirect to HTTPS; false = off
    admin_listen = "127.0.0.1:9100"   # /metrics; false or left out = off
    workers = 0                       # 0 = one per core
    trusted_proxies = ["10.0.0.0/8"]  # peers whose X-Forwarded-* / Forwarded we keep
    access_log = "stdout"             # "stdout", "off" or a file path (JSON lines)
    state = "/var/lib/tlsgate"        # the CA and certificate store

    [server.timeouts]                 # seconds
    handshake = 10
    header = 15
    idle = 75
    upstream_connect = 5
    upstream_response = 60
    drain = 30

    [server.limits]
    max_header_bytes = 32768
    max_headers = 100
    max_body_bytes = 0                # 0 = unlimited

    [[site]]
    hosts = ["example.com", "*.example.com"]
    upstream = ["http://127.0.0.1:8000", "http://127.0.0.1:8001"]
    balance = "round_robin"           # or "least_conn"
    hsts = true                       # true / false / a max-age in seconds
    via = false

    [site.tls]                        # optional: a file pair instead of the internal CA
    cert = "/etc/ssl/example/fullchain.pem"
    key = "/etc/ssl/example/key.pem"

    [[site]]
    hosts = "api.example.net"
    upstream = "[::1]:9000"           # "host:port" is short for "http://host:port"
    hsts = { max_age = 31536000, include_subdomains = true, preload = false }

Relative paths (``state``, ``access_log``, ``cert``, ``key``) are relative to the directory of the
config file, not to wherever the server happens to be started, and ``~`` means the home directory.
Whether the files exist is checked when the server starts, where the error can say what it was
trying to do. Port 0 in a listen address asks the kernel for any free port, which only tests want.

Unknown keys are errors, never ignored: a misspelt ``trusted_proxy`` that silently kept the default
would trust nobody's ``X-Forwarded-For`` (or, misspelt the other way, everybody's).
"""

from __future__ import annotations

import bisect
import difflib
import ipaddress
import json
import math
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path

from tlsgate.errors import ConfigError, InvalidIdentity
from tlsgate.pki.names import parse_dns_name

__all__ = [
    "DEFAULT_HSTS_MAX_AGE",
    "Config",
    "HstsPolicy",
    "Limits",
    "ListenAddress",
    "ServerConfig",
    "SiteConfig",
    "Timeouts",
    "TlsFiles",
    "Upstream",
    "from_flags",
    "load",
    "loads",
]

#: Mozilla recommends two years.
DEFAULT_HSTS_MAX_AGE = 63072000


@dataclass(frozen=True)
class ListenAddress:
    host: str  # "0.0.0.0", "::", "127.0.0.1"
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Upstream:
    host: str  # a name or an IP address; IPv6 without brackets, ready for connect()
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True)
class Timeouts:
    handshake: float = 10.0
    header: float = 15.0
    idle: float = 75.0
    upstream_connect: float = 5.0
    upstream_response: float = 60.0
    drain: float = 30.0


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 32 * 1024
    max_headers: int = 100
    max_body_bytes: int | None = None


@dataclass(frozen=True)
class HstsPolicy:
    max_age: int = DEFAULT_HSTS_MAX_AGE
    include_subdomains: bool = False
    preload: bool = False

    def header_value(self) -> bytes:
        value = f"max-age={self.max_age}"
        if self.include_subdomains:
            value += "; includeSubDomains"
        if self.preload:
            value += "; preload"
        return value.encode()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path


@dataclass(frozen=True)
class SiteConfig:
    hosts: tuple[str, ...]  # canonical (lower-case A-label) names, wildcards allowed
    upstreams: tuple[Upstream, ...]
    balance: str = "round_robin"  # "round_robin" | "least_conn"
    #: None = the default (on for public names, off for localhost/IPs/.local/.internal/.test)
    hsts: HstsPolicy | None = None
    hsts_explicit: bool = False  # True when the config said hsts = ... (even false)
    via: bool = False
    tls: TlsFiles | None = None  # None = certificates from the internal CA


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 443),)
    http_listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 80),)
    admin_listen: ListenAddress | None = None
    workers: int = 0
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    access_log: str = "stdout"
    state: Path | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Config:
    server: ServerConfig
    sites: tuple[SiteConfig, ...]
    source: str = "<flags>"  # file name for messages


# ---------------------------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------------------------


def loads(text: str, *, source: str = "tlsgate.toml") -> Config:
    """Parse and validate TOML text; raises ConfigError("FILE:LINE: what is wrong").

    Without a file there is no directory to anchor relative paths to, so they stay relative (to
    the working directory); :func:`load` anchors them to the file's directory.
    """
    return _parse(text, source=source, base=None)


def load(path: Path) -> Config:
    """Read and validate a config file, with relative paths taken from the file's directory.

    The directory is made absolute (without resolving symlinks, like nginx does) so the result
    means the same thing whatever the working directory is later.
    """
    path = Path(path)
    try:
        # utf-8-sig: a BOM from a Windows editor is not worth a syntax error at line 1.
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return _parse(text, source=str(path), base=path.absolute().parent)


def from_flags(
    hosts: list[str],
    to: list[str],
    *,
    listen: list[str] | None = None,
    http_listen: list[str] | None = None,
    admin_listen: str | None = None,
    workers: int = 0,
    state: str | None = None,
) -> Config:
    """The zero-config form: ``serve --host NAME... --to URL... [--listen ...]``.

    Every value goes through the same checks as the file, so the two forms cannot disagree about
    what is valid; messages name the flag instead of a file position.
    """
    host_at = _At("--host")
    names = _hosts([(h, host_at) for h in hosts], host_at)
    to_at = _At("--to")
    upstreams = _upstreams([(u, to_at) for u in to], to_at)
    listen_at, http_at, admin_at = _At("--listen"), _At("--http-listen"), _At("--admin-listen")
    listen_given = None
    if listen is not None:
        listen_given = _listens([(a, listen_at) for a in listen], listen_at, required=True)
    # An empty --http-listen list is how a caller says "no plain HTTP port".
    http_given = None
    if http_listen is not None:
        http_given = _listens([(a, http_at) for a in http_listen], http_at, required=False)
    admin = None if admin_listen is None else _listen(admin_listen, admin_at)
    listens, http_listens = _listeners(
        listen_given, listen_at, http_given, http_at, (admin, admin_at) if admin else None
    )
    server = ServerConfig(
        listen=listens,
        http_listen=http_listens,
        admin_listen=admin,
        workers=_workers(workers, _At("--workers")),
        state=None if state is None else _path(state, _At("--state"), base=None),
    )
    site = SiteConfig(hosts=tuple(name for name, _, _ in names), upstreams=upstreams)
    return Config(server=server, sites=(site,))


# ---------------------------------------------------------------------------------------------
# Locating keys in the source
# ---------------------------------------------------------------------------------------------

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


def _locate(text: str) -> _Locator:
    """A locator for ``text``; a scan that trips up costs line numbers, never the whole load."""
    locator = _Locator(text)
    try:
        locator.scan()
    except (ValueError, IndexError, RecursionError):
        pass  # keep what was found before the trouble; the rest falls back to coarser lines
    return locator


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _At:
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

    def child(self, key: str | int) -> _At:
        if self.source is None:
            return self  # a repeated flag has no index worth showing
        if isinstance(key, int):
            label = f"{self.label}[{key}]"
        else:
            shown = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
            label = f"{self.label}.{shown}" if self.label else shown
        return _At(label, self.source, (*self.path, key), self.locator)

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


def _show(value: object) -> str:
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


def _syntax_error(text: str, source: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
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


# ---------------------------------------------------------------------------------------------
# The schema
# ---------------------------------------------------------------------------------------------

_TOP_KEYS = ("server", "site")
_SERVER_KEYS = (
    "listen",
    "http_listen",
    "admin_listen",
    "workers",
    "trusted_proxies",
    "access_log",
    "state",
    "timeouts",
    "limits",
)
_TIMEOUT_KEYS = tuple(Timeouts.__dataclass_fields__)
_LIMIT_KEYS = tuple(Limits.__dataclass_fields__)
_SITE_KEYS = ("hosts", "upstream", "balance", "hsts", "via", "tls")
_TLS_KEYS = ("cert", "key")
_HSTS_KEYS = ("max_age", "include_subdomains", "preload")
_BALANCE = ("round_robin", "least_conn")

#: Where each key belongs, to answer "unknown key" with "it goes over there" when it does.
_HOME: dict[str, str] = {
    **{key: "[server]" for key in _SERVER_KEYS},
    **{key: "[server.timeouts]" for key in _TIMEOUT_KEYS},
    **{key: "[server.limits]" for key in _LIMIT_KEYS},
    **{key: "[[site]]" for key in _SITE_KEYS},
    **{key: "[site.tls]" for key in _TLS_KEYS},
    **{key: "a site's hsts table" for key in _HSTS_KEYS},
}

#: hstspreload.org refuses shorter policies; sending "preload" with them only misleads.
_PRELOAD_MIN_AGE = 31536000


def _check_keys(table: dict[str, object], known: Sequence[str], at: _At) -> None:
    for key in table:
        if key in known:
            continue
        home = _HOME.get(key)
        if home is not None:
            hint = f"{key} belongs in {home}"
        elif close := difflib.get_close_matches(key, known, n=1):
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "known keys: " + ", ".join(known)
        raise at.child(key).error(f"unknown key ({hint})")


def _table(value: object, at: _At, expected: str = "a table") -> dict[str, object]:
    if not isinstance(value, dict):
        raise at.error(f"expected {expected}, got {_show(value)}")
    return value


def _items(value: object, at: _At, expected: str) -> list[tuple[object, _At]]:
    """A string or a list of them, each with its own position (list elements are indexed)."""
    if isinstance(value, str):
        return [(value, at)]
    if isinstance(value, list):
        return [(item, at.child(index)) for index, item in enumerate(value)]
    raise at.error(f"expected {expected}, got {_show(value)}")


def _is_int(value: object) -> bool:
    # bool is an int subclass: "workers = true" must not quietly mean one worker.
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(value: object, at: _At) -> bool:
    if not isinstance(value, bool):
        raise at.error(f"expected true or false, got {_show(value)}")
    return value


# --- addresses --------------------------------------------------------------------------------

_PORT = re.compile(r"[0-9]+")


def _split_host_port(text: str) -> tuple[str, bool, str | None]:
    """``host:port`` / ``[v6]:port`` / ``host`` -> (host, bracketed, port or None).

    Raises ValueError with the reason, worded for the person who wrote the address.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        return text[1:end], True, rest[1:] if rest else None
    if text.count(":") > 1:
        raise ValueError("an IPv6 address goes in brackets, like [::1]:8443")
    host, colon, port = text.partition(":")
    return host, False, port if colon else None


def _host(host: str, bracketed: bool) -> str:
    """An address literal or a DNS name in canonical form; raises ValueError with the reason."""
    if bracketed:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    try:
        return parse_dns_name(host, allow_wildcard=False)
    except InvalidIdentity as exc:
        raise ValueError(str(exc)) from None


def _port(text: str, *, allow_zero: bool) -> int:
    if not _PORT.fullmatch(text):
        raise ValueError(f"port {text!r} is not a number")
    digits = text.lstrip("0") or "0"
    port = int(digits) if len(digits) <= 5 else 65536  # no 4000-digit int() for a typo
    if port > 65535 or (port == 0 and not allow_zero):
        allowed = "0-65535 (0 = any free port)" if allow_zero else "1-65535"
        raise ValueError(f"port {digits} is out of range {allowed}")
    return port


def _listen(value: object, at: _At) -> ListenAddress:
    if not isinstance(value, str):
        raise at.error(f'expected a "HOST:PORT" string, got {_show(value)}')
    try:
        host, bracketed, port = _split_host_port(value)
        if port is None:
            raise ValueError("a listen address needs a port: HOST:PORT, [IPv6]:PORT or :PORT")
        number = _port(port, allow_zero=True)
        canonical = "0.0.0.0" if not host and not bracketed else _host(host, bracketed)
    except ValueError as exc:
        raise at.error(f"{_show(value)}: {exc}") from None
    return ListenAddress(canonical, number)


def _listens(
    items: list[tuple[object, _At]], at: _At, *, required: bool
) -> list[tuple[ListenAddress, _At]]:
    if required and not items:
        raise at.error("at least one address is required")
    return [(_listen(value, item_at), item_at) for value, item_at in items]


def _listen_option(value: object, at: _At, *, can_disable: bool) -> list[tuple[ListenAddress, _At]]:
    if can_disable and value is False:
        return []
    expected = '"HOST:PORT" or a list of them'
    if can_disable:
        expected += " (or false to turn it off)"
    return _listens(_items(value, at, expected), at, required=not can_disable)


def _check_listen_conflicts(
    addresses: list[tuple[ListenAddress, _At]], defaults: list[tuple[ListenAddress, _At]]
) -> None:
    """Two sockets on one address would fail at bind time, far from the line that caused it.

    Defaults are checked first so that a clash is always reported at the address someone wrote,
    naming the default it collides with, rather than at a line that does not mention it.
    """
    seen: dict[ListenAddress, tuple[_At, bool]] = {}
    for address, at, is_default in [(a, w, True) for a, w in defaults] + [
        (a, w, False) for a, w in addresses
    ]:
        if address.port == 0:
            continue  # every port-0 socket gets its own port
        if address in seen:
            first, first_is_default = seen[address]
            if first_is_default:
                raise at.error(
                    f"{address} is already the default of {first.label}; "
                    f"give {first.label} a different value"
                )
            where = f" (line {first.line})" if first.line is not None else ""
            raise at.error(f"{address} is already used by {first.label}{where}")
        seen[address] = (at, is_default)


def _listeners(
    listen: list[tuple[ListenAddress, _At]] | None,
    listen_at: _At,
    http_listen: list[tuple[ListenAddress, _At]] | None,
    http_at: _At,
    admin: tuple[ListenAddress, _At] | None,
) -> tuple[tuple[ListenAddress, ...], tuple[ListenAddress, ...]]:
    """Fill in the defaults for what was not given (None) and refuse clashes, for both forms."""
    defaults = ServerConfig()
    unset: list[tuple[ListenAddress, _At]] = []
    if listen is None:
        unset += [(address, listen_at) for address in defaults.listen]
    if http_listen is None:
        unset += [(address, http_at) for address in defaults.http_listen]
    given = (listen or []) + (http_listen or []) + ([admin] if admin else [])
    _check_listen_conflicts(given, unset)
    return (
        defaults.listen if listen is None else tuple(address for address, _ in listen),
        defaults.http_listen if http_listen is None else tuple(a for a, _ in http_listen),
    )


def _network(value: object, at: _At) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(value, str):
        raise at.error(f"expected an address or CIDR range as a string, got {_show(value)}")
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise at.error(
            f"{_show(value)} is not an IP address or a CIDR range like 10.0.0.0/8"
        ) from None
    # strict: "10.0.0.1/8" is more likely a typo for one address than a wish for the whole /8.
    raise at.error(f"{_show(value)} has host bits set (did you mean {loose}?)")


def _upstream(value: object, at: _At) -> Upstream:
    if not isinstance(value, str):
        raise at.error(f'expected an "http://HOST:PORT" string, got {_show(value)}')
    shown = _show(value)
    scheme, sep, rest = value.partition("://")
    if sep:
        if scheme.lower() == "https":
            raise at.error(
                f"{shown}: https:// upstreams are not supported yet; "
                "point tlsgate at the backend's plain http:// port"
            )
        if scheme.lower() != "http":
            raise at.error(f"{shown} is not an http://host:port URL")
    else:
        if value.isdigit():
            raise at.error(
                f"{shown} is not an http://host:port URL (a local port is 127.0.0.1:{value})"
            )
        rest = value
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if tail not in ("", "/"):
        raise at.error(
            f"{shown}: an upstream is only http://host:port, without a path, query or fragment "
            "(requests keep their own path)"
        )
    if "@" in authority:
        raise at.error(f"{shown}: an upstream URL cannot carry a user name or password")
    try:
        host, bracketed, port = _split_host_port(authority)
        if not host:
            raise ValueError("the host is missing")
        canonical = _host(host, bracketed)
        number = 80 if port is None else _port(port, allow_zero=False)
    except ValueError as exc:
        raise at.error(f"{shown} is not an http://host:port URL ({exc})") from None
    return Upstream(canonical, number)


def _upstreams(items: list[tuple[object, _At]], at: _At) -> tuple[Upstream, ...]:
    if not items:
        raise at.error('at least one upstream is required, like "http://127.0.0.1:8000"')
    out: list[Upstream] = []
    for value, item_at in items:
        upstream = _upstream(value, item_at)
        if upstream in out:
            raise item_at.error(f"{upstream} is listed twice")
        out.append(upstream)
    return tuple(out)


def _hosts(items: list[tuple[object, _At]], at: _At) -> list[tuple[str, str, _At]]:
    """Canonical names with what was written and where, for the duplicate-site message."""
    if not items:
        raise at.error('at least one host name is required, like "example.com"')
    out: list[tuple[str, str, _At]] = []
    for value, item_at in items:
        if not isinstance(value, str):
            raise item_at.error(f"expected a host name as a string, got {_show(value)}")
        try:
            ipaddress.ip_address(value.strip().strip("[]"))
        except ValueError:
            pass
        else:
            raise item_at.error(
                f"{_show(value)} is an IP address; hosts are DNS names "
                "(TLS clients do not send IP addresses as the server name)"
            )
        try:
            name = parse_dns_name(value)
        except InvalidIdentity as exc:
            raise item_at.error(str(exc)) from None
        if all(name != seen for seen, _, _ in out):
            out.append((name, value, item_at))
    return out


# --- other values -------------------------------------------------------------------------------


def _workers(value: object, at: _At) -> int:
    if not _is_int(value):
        raise at.error(f"expected a whole number of worker processes, got {_show(value)}")
    assert isinstance(value, int)
    if value < 0:
        raise at.error(f"{value} is negative; 0 means one worker per core")
    return value


def _path(value: object, at: _At, base: Path | None) -> Path:
    if not isinstance(value, str):
        raise at.error(f"expected a path as a string, got {_show(value)}")
    if not value:
        raise at.error("expected a path, got an empty string")
    if "\0" in value:
        raise at.error(f"{_show(value)}: a path cannot contain a NUL character")
    try:
        path = Path(value).expanduser()
    except RuntimeError as exc:  # "~nosuchuser", or no home directory at all
        raise at.error(f"{_show(value)}: cannot expand ~ ({exc})") from None
    return path if base is None or path.is_absolute() else base / path


def _access_log(value: object, at: _At, base: Path | None) -> str:
    if value in ("stdout", "off"):
        assert isinstance(value, str)
        return value
    if not isinstance(value, str) or not value:
        raise at.error(f'expected "stdout", "off" or a file path, got {_show(value)}')
    return str(_path(value, at, base))


def _seconds(value: object, at: _At) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise at.error(f"expected a number of seconds, got {_show(value)}")
    if not math.isfinite(value) or value <= 0:
        raise at.error(f"{_show(value)}: a timeout must be a positive number of seconds")
    return float(value)


def _count(value: object, at: _At, what: str, *, zero: bool = False) -> int:
    if not _is_int(value):
        raise at.error(f"expected a whole number of {what}, got {_show(value)}")
    assert isinstance(value, int)
    if value < 0 or (value == 0 and not zero):
        raise at.error(f"{value}: must be {'0 or more' if zero else 'at least 1'}")
    return value


def _hsts(value: object, at: _At) -> HstsPolicy | None:
    if value is True:
        return HstsPolicy()
    if value is False:
        return None
    if _is_int(value):
        return HstsPolicy(max_age=_count(value, at, "seconds", zero=True))
    if not isinstance(value, dict):
        raise at.error(
            "expected true, false, a max-age in seconds or a table "
            f"{{max_age, include_subdomains, preload}}, got {_show(value)}"
        )
    _check_keys(value, _HSTS_KEYS, at)
    max_age = DEFAULT_HSTS_MAX_AGE
    if "max_age" in value:
        max_age = _count(value["max_age"], at.child("max_age"), "seconds", zero=True)
    policy = HstsPolicy(
        max_age=max_age,
        include_subdomains=_bool(
            value.get("include_subdomains", False), at.child("include_subdomains")
        ),
        preload=_bool(value.get("preload", False), at.child("preload")),
    )
    if policy.preload and (not policy.include_subdomains or policy.max_age < _PRELOAD_MIN_AGE):
        raise at.child("preload").error(
            f"preload needs include_subdomains = true and max_age >= {_PRELOAD_MIN_AGE} "
            "(the browsers' preload list accepts nothing less)"
        )
    return policy


def _tls(value: object, at: _At, base: Path | None) -> TlsFiles:
    table = _table(value, at, "a table with cert and key")
    _check_keys(table, _TLS_KEYS, at)
    missing = [key for key in _TLS_KEYS if key not in table]
    if len(missing) == 2:
        raise at.error("cert and key are required (or leave out [site.tls] for the internal CA)")
    if missing:
        raise at.error(f"{missing[0]} is missing (cert and key go together)")
    return TlsFiles(
        cert=_path(table["cert"], at.child("cert"), base),
        key=_path(table["key"], at.child("key"), base),
    )


# --- tables -----------------------------------------------------------------------------------


def _server(value: object, at: _At, base: Path | None) -> ServerConfig:
    table = _table(value, at, "a [server] table")
    _check_keys(table, _SERVER_KEYS, at)
    defaults = ServerConfig()

    listen_at, http_at = at.child("listen"), at.child("http_listen")
    listen_given = None
    if "listen" in table:
        listen_given = _listen_option(table["listen"], listen_at, can_disable=False)
    http_given = None
    if "http_listen" in table:
        http_given = _listen_option(table["http_listen"], http_at, can_disable=True)
    admin: tuple[ListenAddress, _At] | None = None
    if "admin_listen" in table and table["admin_listen"] is not False:
        admin_at = at.child("admin_listen")
        if not isinstance(table["admin_listen"], str):
            raise admin_at.error(
                f'expected "HOST:PORT" or false, got {_show(table["admin_listen"])}'
            )
        admin = (_listen(table["admin_listen"], admin_at), admin_at)
    listen, http_listen = _listeners(listen_given, listen_at, http_given, http_at, admin)

    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    if "trusted_proxies" in table:
        expected = "a list of strings (addresses or CIDR ranges)"
        for item, item_at in _items(
            table["trusted_proxies"], at.child("trusted_proxies"), expected
        ):
            trusted.append(_network(item, item_at))

    timeouts = Timeouts()
    if "timeouts" in table:
        t = _table(table["timeouts"], at.child("timeouts"), "a [server.timeouts] table")
        _check_keys(t, _TIMEOUT_KEYS, at.child("timeouts"))
        timeouts = Timeouts(**{k: _seconds(v, at.child("timeouts").child(k)) for k, v in t.items()})

    limits = Limits()
    if "limits" in table:
        t = _table(table["limits"], at.child("limits"), "a [server.limits] table")
        limits_at = at.child("limits")
        _check_keys(t, _LIMIT_KEYS, limits_at)
        limits = Limits(
            max_header_bytes=_count(
                t.get("max_header_bytes", limits.max_header_bytes),
                limits_at.child("max_header_bytes"),
                "bytes",
            ),
            max_headers=_count(
                t.get("max_headers", limits.max_headers), limits_at.child("max_headers"), "headers"
            ),
            # 0 = unlimited
            max_body_bytes=_count(
                t.get("max_body_bytes", 0), limits_at.child("max_body_bytes"), "bytes", zero=True
            )
            or None,
        )

    return ServerConfig(
        listen=listen,
        http_listen=http_listen,
        admin_listen=admin[0] if admin else None,
        workers=_workers(table["workers"], at.child("workers")) if "workers" in table else 0,
        trusted_proxies=tuple(trusted),
        access_log=_access_log(table["access_log"], at.child("access_log"), base)
        if "access_log" in table
        else defaults.access_log,
        state=_path(table["state"], at.child("state"), base) if "state" in table else None,
        timeouts=timeouts,
        limits=limits,
    )


def _site(
    table: dict[str, object], at: _At, base: Path | None
) -> tuple[SiteConfig, list[tuple[str, str, _At]]]:
    _check_keys(table, _SITE_KEYS, at)
    if "hosts" not in table:
        raise at.error(
            'hosts is missing (the names this site answers to, like hosts = ["example.com"])'
        )
    hosts_at = at.child("hosts")
    hosts = _hosts(_items(table["hosts"], hosts_at, "a host name or a list of them"), hosts_at)
    if "upstream" not in table:
        raise at.error(
            'upstream is missing (where requests go, like upstream = "http://127.0.0.1:8000")'
        )
    up_at = at.child("upstream")
    upstreams = _upstreams(
        _items(table["upstream"], up_at, '"http://HOST:PORT" or a list of them'), up_at
    )
    balance = table.get("balance", "round_robin")
    if balance not in _BALANCE:
        close = (
            difflib.get_close_matches(balance, _BALANCE, n=1) if isinstance(balance, str) else []
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise at.child("balance").error(
            f'expected "round_robin" or "least_conn", got {_show(balance)}{hint}'
        )
    assert isinstance(balance, str)
    site = SiteConfig(
        hosts=tuple(name for name, _, _ in hosts),
        upstreams=upstreams,
        balance=balance,
        hsts=_hsts(table["hsts"], at.child("hsts")) if "hsts" in table else None,
        hsts_explicit="hsts" in table,
        via=_bool(table["via"], at.child("via")) if "via" in table else False,
        tls=_tls(table["tls"], at.child("tls"), base) if "tls" in table else None,
    )
    return site, hosts


def _sites(value: object, root: _At, base: Path | None) -> tuple[SiteConfig, ...]:
    at = root.child("site")
    if value is None:
        raise root.error("at least one [[site]] is required (with hosts and upstream)")
    if isinstance(value, dict):
        raise at.error("expected [[site]] tables, got a single table ([site] instead of [[site]]?)")
    if not isinstance(value, list):
        raise at.error(f"expected [[site]] tables, got {_show(value)}")
    if not value:
        raise at.error("at least one [[site]] is required (with hosts and upstream)")
    sites: list[SiteConfig] = []
    owners: dict[str, tuple[int, _At]] = {}
    for index, item in enumerate(value):
        site_at = at.child(index)
        site, hosts = _site(_table(item, site_at), site_at, base)
        for name, written, host_at in hosts:
            owner = owners.setdefault(name, (index, host_at))
            if owner[0] != index:
                first = owner[1]
                where = f" (line {first.line})" if first.line is not None else ""
                raise host_at.error(
                    f"{_show(written)} is already served by site[{owner[0]}]{where}"
                )
        sites.append(site)
    return tuple(sites)


def _parse(text: str, *, source: str, base: Path | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _syntax_error(text, source, exc) from None
    except RecursionError:
        raise ConfigError(f"{source}: values are nested too deeply") from None
    root = _At("", source, (), _locate(text))
    _check_keys(data, _TOP_KEYS, root)
    server = _server(data.get("server", {}), root.child("server"), base)
    sites = _sites(data.get("site"), root, base)
    return Config(server=server, sites=sites, source=source)
