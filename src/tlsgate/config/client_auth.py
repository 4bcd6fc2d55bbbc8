"""``[site.client_auth]``: mutual TLS settings, each value checked where it was written.

The patterns are checked by the same functions :mod:`tlsgate.mtls.policy` matches with, so a
pattern accepted here is one that can match. A key that would change nothing is an error, as
everywhere in the config: allow lists under ``mode = "off"`` would read like protection that is
not there, and ``require_certificate = false`` under ``mode = "require"`` like an opening that is
not there either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tlsgate.config.messages import At, show
from tlsgate.config.model import CLIENT_AUTH_MODES, ClientAuth
from tlsgate.config.values import (
    _choice,
    _items,
    _seconds,
    bool_value,
    duration_from_text,
    path_value,
)
from tlsgate.errors import InvalidIdentity
from tlsgate.mtls.policy import AllowList, PathRule, check_path_prefix, check_spiffe_pattern
from tlsgate.mtls.xfcc import FORWARD_MODES
from tlsgate.pki.names import parse_dns_name

_ALLOW_KEYS = ("allow_spiffe", "allow_dns", "allow_cn", "allow_ou")
#: The keys of [site.client_auth] and of its [[site.client_auth.path]] tables.
_CLIENT_AUTH_KEYS = ("mode", "trust", "crl", "crl_refresh", *_ALLOW_KEYS, "forward", "path")
_PATH_KEYS = ("prefix", *_ALLOW_KEYS, "require_certificate")
#: Other tools' names for our keys (ghostunnel's --allow-uri, nginx's ssl_client_certificate).
_CLIENT_AUTH_ALIASES = {"ca": "trust", "client_ca": "trust", "allow_uri": "allow_spiffe"}
_PATH_ALIASES = {"path": "prefix", "location": "prefix", "allow_uri": "allow_spiffe"}
#: Envoy's names for the forward modes (its enum values, lower-cased).
_FORWARD_HINTS = {"forward_only": "forward", "always_forward_only": "forward"}
_LISTS = "a path or a list of paths"


def _files(value: object, at: At, base: Path | None, key: str, empty: str) -> tuple[Path, ...]:
    items = _items(value, at, _LISTS)
    if not items:
        raise at.error(f"an empty list: leave {key} out {empty}")
    out: list[Path] = []
    for item, item_at in items:
        path = path_value(item, item_at, base)
        if path in out:
            raise item_at.error(f"{show(item)} is listed twice")
        out.append(path)
    return tuple(out)


def _crl_refresh(value: object, at: At) -> float:
    """Seconds, or a duration like "5m"; re-reading CRLs more than once a second buys nothing."""
    if isinstance(value, str):
        seconds = duration_from_text(value)
        if seconds is None:
            raise at.error(f'{show(value)}: expected a duration like "5m", "1h" or "90s"')
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = _seconds(value, at, zero=True)
    else:
        raise at.error(f'expected seconds or a duration like "5m", got {show(value)}')
    if not math.isfinite(seconds) or seconds < 1:
        raise at.error(
            f"{show(value)}: must be at least 1 second (CRL files are re-read that often)"
        )
    return seconds


def _spiffe(item: object, at: At) -> str:
    if not isinstance(item, str):
        raise at.error(f"expected a SPIFFE ID pattern as a string, got {show(item)}")
    try:
        return check_spiffe_pattern(item)
    except ValueError as exc:
        raise at.error(f"{show(item)}: {exc}") from None


def _dns(item: object, at: At) -> str:
    if not isinstance(item, str):
        raise at.error(f"expected a DNS name as a string, got {show(item)}")
    try:
        return parse_dns_name(item)
    except InvalidIdentity as exc:
        raise at.error(str(exc)) from None


def _name(what: str) -> Callable[[object, At], str]:
    def check(item: object, at: At) -> str:
        if not isinstance(item, str):
            raise at.error(f"expected {what} as a string, got {show(item)}")
        if not item:
            raise at.error(f"expected {what}, got an empty string")
        return item

    return check


_ALLOW_CHECKS: dict[str, Callable[[object, At], str]] = {
    "allow_spiffe": _spiffe,
    "allow_dns": _dns,
    "allow_cn": _name("a common name"),
    "allow_ou": _name("an organizational unit"),
}


def _allow(
    given: Mapping[str, tuple[object, At]], words: Mapping[str, str] | None = None
) -> AllowList:
    lists: dict[str, tuple[str, ...]] = {}
    for key, check in _ALLOW_CHECKS.items():
        if key not in given:
            continue
        value, at = given[key]
        items = _items(value, at, "a string or a list of strings")
        if not items:
            said = words.get(key, key) if words else key
            raise at.error(
                f"an empty list: leave {said} out (no allow list at all means any verified "
                "certificate)"
            )
        out: list[str] = []
        for item, item_at in items:
            entry = check(item, item_at)
            if entry in out:
                raise item_at.error(f"{show(item)} is listed twice")
            out.append(entry)
        lists[key.removeprefix("allow_")] = tuple(out)
    return AllowList(**lists)


def _rule(
    table: Mapping[str, object], at: At, mode: str, seen: dict[str, tuple[int, str, At]]
) -> PathRule:
    if "prefix" not in table:
        raise at.error('prefix is missing (the path the rule covers, like prefix = "/admin")')
    prefix_at = at.child("prefix")
    prefix = table["prefix"]
    if not isinstance(prefix, str):
        raise prefix_at.error(f'expected a path prefix like "/admin", got {show(prefix)}')
    try:
        check_path_prefix(prefix)
    except ValueError as exc:
        raise prefix_at.error(f"{show(prefix)}: {exc}") from None
    index = at.path[-1]
    assert isinstance(index, int)
    # Requests are also judged ignoring case (see tlsgate.mtls.policy): "/Admin" and "/admin"
    # would both apply to either, which no one writing them apart means.
    folded = "".join(char.lower() if char.isascii() else char for char in prefix)
    first_index, first, first_at = seen.setdefault(folded, (index, prefix, prefix_at))
    if first_index != index:
        where = f" (line {first_at.line})" if first_at.line is not None else ""
        if first == prefix:
            raise prefix_at.error(
                f"{show(prefix)} is already the prefix of path[{first_index}]{where}"
            )
        raise prefix_at.error(
            f"{show(prefix)} differs from path[{first_index}]'s {show(first)}{where} only in "
            "case, and requests are judged ignoring case too: keep one"
        )
    require = True
    if "require_certificate" in table:
        require_at = at.child("require_certificate")
        require = bool_value(table["require_certificate"], require_at)
        if not require and mode == "require":
            raise require_at.error(
                'would be ignored with mode = "require", where every client has a certificate '
                '(mode = "optional" lets clients without one in)'
            )
    allow = _allow({k: (v, at.child(k)) for k, v in table.items() if k in _ALLOW_KEYS})
    return PathRule(prefix=prefix, allow=allow, require_certificate=require)


def _client_auth(
    table: Mapping[str, object],
    at: At,
    rules: Sequence[tuple[Mapping[str, object], At]],
    base: Path | None,
) -> ClientAuth | None:
    """A site's settings from its table (keys known to be ours); None when mode is "off"."""
    given = {key: (value, at.child(key)) for key, value in table.items()}
    return _client_auth_given(given, rules, base)


def _client_auth_given(
    given: Mapping[str, tuple[object, At]],
    rules: Sequence[tuple[Mapping[str, object], At]],
    base: Path | None,
    words: Mapping[str, str] | None = None,
) -> ClientAuth | None:
    """The settings from values that each know where they were written; None when "off".

    Both readers come through here (the file's table, and ``serve --client-auth ...``), so a
    value one of them accepts the other cannot refuse. ``words`` names a key the way its reader
    wrote it ("--client-ca" for ``trust``) where a message tells them to leave it out.
    """
    mode = "off"
    if "mode" in given:
        mode = _choice(given["mode"][0], CLIENT_AUTH_MODES, given["mode"][1])
    if mode == "off":
        ignored = next((key for key in given if key != "mode"), None)
        if ignored is not None:
            said = 'mode = "off"' if "mode" in given else 'mode = "off" (the default)'
            raise given[ignored][1].error(
                f'would be ignored with {said}: set mode = "require" or "optional"'
            )
        return None
    trust: tuple[Path, ...] = ()
    if "trust" in given:
        said = words.get("trust", "trust") if words else "trust"
        trust = _files(*given["trust"], base, said, "to trust the internal CA")
    crl: tuple[Path, ...] = ()
    if "crl" in given:
        crl_at = given["crl"][1]
        if not trust:
            raise crl_at.error(
                "the internal CA's own CRL is used automatically; crl is for the CAs in trust"
            )
        crl = _files(*given["crl"], base, "crl", "(no CRL files)")
    defaults = ClientAuth()
    forward = defaults.forward
    if "forward" in given:
        forward = _choice(given["forward"][0], FORWARD_MODES, given["forward"][1], _FORWARD_HINTS)
    seen: dict[str, tuple[int, str, At]] = {}
    return ClientAuth(
        mode=mode,
        trust=trust,
        crl=crl,
        crl_refresh=(
            _crl_refresh(*given["crl_refresh"]) if "crl_refresh" in given else defaults.crl_refresh
        ),
        allow=_allow({k: v for k, v in given.items() if k in _ALLOW_KEYS}, words),
        paths=tuple(_rule(rule, rule_at, mode, seen) for rule, rule_at in rules),
        forward=forward,
    )
