"""``monitor.toml``: what to watch, how often, and where to say so, as frozen values.

Example::

    [monitor]
    interval = "5m"            # between the starts of two rounds ("30s", "5m", "1h", "2d")
    concurrency = 50           # checks in flight at most
    timeout = "10s"            # per check (connect + handshake)
    warn_days = 21             # WARNING below this many days left, anywhere in the chain
    critical_days = 7          # CRITICAL below this (and when expired)
    revocation = true          # ask CRL / OCSP when a certificate names where
    listen = "127.0.0.1:9325"  # /metrics and /healthz; left out = no listener
    webhook = "https://hooks.example.com/tls"  # alerts as JSON; left out = log only
    webhook_timeout = "10s"
    ca = "roots.pem"           # trust for every target; left out = the system store

    [[target]]
    endpoint = "example.com:443"     # HOST[:PORT], [v6]:PORT or an https:// URL
    servername = "www.example.com"   # SNI and the name verified (default: the host)
    connect = "10.0.0.7:8443"        # dial this instead, like curl --resolve
    ca = "other-roots.pem"           # this target's own trust
    name = "shop"                    # the target label (default: see below)
    labels = { team = "payments" }   # go into alerts and --json, not into metric labels

    [[target]]
    file = "/etc/ssl/certs/site.pem" # a PEM/DER file (leaf first), judged like a served chain

    [[target]]
    store = "/var/lib/tlsgate"       # tlsgate's state: its CA and the certificates it issued

A target's name defaults to what identifies it: the endpoint as written (``NAME@ENDPOINT`` when
a ``servername`` is given, so one address checked under many names stays many targets), the file
or the store path as written. Names are unique: they are the ``target`` label of every metric
and the key of the alert state, so two targets sharing one would overwrite each other.

Relative paths are taken from the config file's directory. Errors are one line,
``FILE:LINE: target[3].endpont: unknown key (did you mean 'endpoint'?)``, in the same format as
``tlsgate.toml``'s, through the same position-tracking helpers.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tlsgate.config.addresses import listen_value
from tlsgate.config.locate import locator_for
from tlsgate.config.messages import At, show, syntax_error
from tlsgate.config.model import ListenAddress
from tlsgate.config.parse import read_text
from tlsgate.config.values import (
    bool_value,
    count_value,
    duration_from_text,
    path_value,
    table_value,
)
from tlsgate.errors import ConfigError
from tlsgate.inspect.target import Endpoint, parse_endpoint

__all__ = [
    "EndpointTarget",
    "FileTarget",
    "MonitorConfig",
    "StoreTarget",
    "Target",
    "load",
    "loads",
]


@dataclass(frozen=True)
class EndpointTarget:
    name: str
    endpoint: Endpoint
    ca: Path | None = None  # None: the [monitor] ca, else the system store
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FileTarget:
    name: str
    path: Path
    ca: Path | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreTarget:
    """A state directory or database URL; trusted through its own root, so it takes no ``ca``."""

    name: str
    path: Path | str  # a directory, or a postgresql:// URL (kept as written)
    labels: Mapping[str, str] = field(default_factory=dict)


Target = EndpointTarget | FileTarget | StoreTarget


@dataclass(frozen=True)
class MonitorConfig:
    targets: tuple[Target, ...]
    source: str = "monitor.toml"
    interval: float = 300.0
    concurrency: int = 50
    timeout: float = 10.0
    warn_days: float = 21.0
    critical_days: float = 7.0
    revocation: bool = True
    listen: ListenAddress | None = None
    webhook: str | None = None
    webhook_timeout: float = 10.0
    ca: Path | None = None

    def trust_path(self, target: Target) -> Path | None:
        """The CA file a target is verified against; None is the system store."""
        if isinstance(target, StoreTarget):
            return None
        return target.ca if target.ca is not None else self.ca


def loads(text: str, *, source: str = "monitor.toml", base: Path | None = None) -> MonitorConfig:
    """Parse TOML text; relative paths are taken from ``base`` (else the working directory)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(text, source, exc) from None
    except RecursionError:
        raise ConfigError(f"{source}: values are nested too deeply") from None
    root = At("", source, (), locator_for(text))
    _check_keys(data, _TOP_KEYS, root)
    settings = _monitor(data.get("monitor", {}), root.child("monitor"), base)
    targets = _targets(data.get("target"), root, base)
    return replace(settings, targets=targets, source=source)


def load(path: Path) -> MonitorConfig:
    """Read a config file; its directory (made absolute) anchors relative paths."""
    path = Path(path)
    return loads(read_text(path), source=str(path), base=path.absolute().parent)


# --- the schema -------------------------------------------------------------------------------

_TOP_KEYS = ("monitor", "target")
_MONITOR_KEYS = (
    "interval",
    "concurrency",
    "timeout",
    "warn_days",
    "critical_days",
    "revocation",
    "listen",
    "webhook",
    "webhook_timeout",
    "ca",
)
_KINDS = ("endpoint", "file", "store")
_ENDPOINT_KEYS = ("endpoint", "servername", "connect", "ca", "name", "labels")
_FILE_KEYS = ("file", "ca", "name", "labels")
_STORE_KEYS = ("store", "name", "labels")
_TARGET_KEYS = tuple(dict.fromkeys((*_ENDPOINT_KEYS, *_FILE_KEYS, *_STORE_KEYS)))
#: Where a misplaced key belongs, so "unknown key" can say "it goes over there".
_HOME = {
    **{key: "[monitor]" for key in _MONITOR_KEYS if key != "ca"},
    **{key: "[[target]]" for key in _TARGET_KEYS if key != "ca"},
}
_LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: More days than this is a typo (hours? seconds?), not a threshold.
_MAX_DAYS = 3650


def _check_keys(table: Mapping[str, object], known: Sequence[str], at: At) -> None:
    for key in table:
        if key in known:
            continue
        if key in _HOME:
            hint = f"{key} belongs in {_HOME[key]}"
        elif close := difflib.get_close_matches(key, known, n=1):
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "known keys: " + ", ".join(known)
        raise at.child(key).error(f"unknown key ({hint})")


def _duration(value: object, at: At) -> float:
    """``"30s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or a positive number of seconds."""
    if isinstance(value, str):
        seconds = duration_from_text(value)
        if seconds is None:
            raise at.error(f'{show(value)}: expected a duration like "30s", "5m", "1h" or "2d"')
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        seconds = float(value)
    else:
        raise at.error(f'expected a duration like "5m" or a number of seconds, got {show(value)}')
    if seconds <= 0:
        raise at.error(f"{show(value)}: must be more than 0 seconds")
    return seconds


def _days(value: object, at: At) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise at.error(f"expected a number of days, got {show(value)}")
    if not 0 <= value <= _MAX_DAYS:
        raise at.error(f"{show(value)}: expected 0 to {_MAX_DAYS} days")
    return float(value)


def _webhook(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected an http:// or https:// URL, got {show(value)}")
    try:
        url = urlsplit(value)
        url.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise at.error(f"{show(value)}: {exc}") from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise at.error(f"{show(value)}: expected an http:// or https:// URL with a host")
    return value


def _monitor(value: object, at: At, base: Path | None) -> MonitorConfig:
    """The [monitor] settings, in a config that has no targets yet."""
    table = table_value(value, at, "a [monitor] table")
    _check_keys(table, _MONITOR_KEYS, at)
    d = MonitorConfig(targets=())

    def duration(key: str, default: float) -> float:
        return _duration(table[key], at.child(key)) if key in table else default

    def days(key: str, default: float) -> float:
        return _days(table[key], at.child(key)) if key in table else default

    warn, critical = days("warn_days", d.warn_days), days("critical_days", d.critical_days)
    if critical > warn:
        where = at.child("critical_days" if "critical_days" in table else "warn_days")
        raise where.error(
            f"critical_days ({critical:g}) is more than warn_days ({warn:g}): "
            "the critical window must lie inside the warning window"
        )
    return MonitorConfig(
        targets=(),
        interval=duration("interval", d.interval),
        concurrency=(
            count_value(table["concurrency"], at.child("concurrency"), "checks")
            if "concurrency" in table
            else d.concurrency
        ),
        timeout=duration("timeout", d.timeout),
        warn_days=warn,
        critical_days=critical,
        revocation=(
            bool_value(table["revocation"], at.child("revocation"))
            if "revocation" in table
            else d.revocation
        ),
        listen=listen_value(table["listen"], at.child("listen")) if "listen" in table else None,
        webhook=_webhook(table["webhook"], at.child("webhook")) if "webhook" in table else None,
        webhook_timeout=duration("webhook_timeout", d.webhook_timeout),
        ca=path_value(table["ca"], at.child("ca"), base) if "ca" in table else None,
    )


def _text(value: object, at: At, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise at.error(f"expected {what} as a non-empty string, got {show(value)}")
    return value


def _labels(value: object, at: At) -> dict[str, str]:
    table = table_value(value, at, 'a table of strings like { team = "payments" }')
    labels: dict[str, str] = {}
    for key, item in table.items():
        if not _LABEL_NAME.fullmatch(key):
            raise at.child(key).error("a label name is letters, digits and _ (not first a digit)")
        if not isinstance(item, str):
            raise at.child(key).error(f"expected a string, got {show(item)}")
        labels[key] = item
    return labels


def _target(table: dict[str, object], at: At, base: Path | None) -> Target:
    kinds = [kind for kind in _KINDS if kind in table]
    if not kinds:
        _check_keys(table, _TARGET_KEYS, at)
        raise at.error("expected one of endpoint, file or store (what to check)")
    if len(kinds) > 1:
        raise at.child(kinds[1]).error(
            f"a target is one of endpoint, file or store; this one also has {kinds[0]}"
        )
    kind = kinds[0]
    known = {"endpoint": _ENDPOINT_KEYS, "file": _FILE_KEYS, "store": _STORE_KEYS}[kind]
    for key in table:
        if key not in known and key in _TARGET_KEYS:
            raise at.child(key).error(f"{key} does not apply to a {kind} target")
    _check_keys(table, known, at)
    labels = _labels(table["labels"], at.child("labels")) if "labels" in table else {}
    name = _text(table["name"], at.child("name"), "a name") if "name" in table else None
    ca = path_value(table["ca"], at.child("ca"), base) if "ca" in table else None
    written = _text(table[kind], at.child(kind), f"the {kind}")
    if kind == "endpoint":
        servername = connect = None
        if "servername" in table:
            servername = _text(table["servername"], at.child("servername"), "a host name")
        if "connect" in table:
            connect = _text(table["connect"], at.child("connect"), "HOST:PORT")
        try:
            endpoint = parse_endpoint(written, servername=servername, connect=connect)
        except ConfigError as exc:
            # parse_endpoint names the value; which key it came from is ours to add.
            key = "endpoint"
            if connect is not None and repr(connect) in str(exc):
                key = "connect"
            elif servername is not None and repr(servername) in str(exc):
                key = "servername"
            raise at.child(key).error(str(exc)) from None
        default = f"{servername}@{written}" if servername is not None else written
        return EndpointTarget(name or default, endpoint, ca, labels)
    if kind == "store" and "://" in written:
        # A database store (postgresql://...): its URL may carry a password, which must never
        # become a metric label or a log line.
        return StoreTarget(name or _without_password(written), written, labels)
    path = path_value(written, at.child(kind), base)
    if kind == "file":
        return FileTarget(name or written, path, ca, labels)
    return StoreTarget(name or written, path, labels)


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[2]}"))


def _targets(value: object, root: At, base: Path | None) -> tuple[Target, ...]:
    at = root.child("target")
    if value is None:
        raise root.error("at least one [[target]] is required (endpoint, file or store)")
    if isinstance(value, dict):
        raise at.error(
            "expected [[target]] tables, got a single table ([target] instead of [[target]]?)"
        )
    if not isinstance(value, list):
        raise at.error(f"expected [[target]] tables, got {show(value)}")
    targets: list[Target] = []
    seen: dict[str, At] = {}
    for index, item in enumerate(value):
        target_at = at.child(index)
        target = _target(table_value(item, target_at, "a [[target]] table"), target_at, base)
        first = seen.setdefault(target.name, target_at)
        if first is not target_at:
            where = f" (line {first.line})" if first.line is not None else ""
            raise target_at.error(
                f"the name {target.name!r} is already taken by {first.label}{where}; "
                "names must be unique (set name = ...)"
            )
        targets.append(target)
    return tuple(targets)
