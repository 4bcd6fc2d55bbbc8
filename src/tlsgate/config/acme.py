"""ACME settings: the checks shared by ``[acme]``/``[site.acme]`` and ``serve --acme``.

Each value is checked where it was written. The rules that tie values together (dns-01 needs a
hook, a wildcard needs dns-01, http-01 needs a plain-HTTP listener, a directory must come from
somewhere) are checked once per site on the merged settings, because only then is it known which
table's value is in force. Both forms share all of it, so a file and the equivalent flags cannot
disagree; the messages name what to change in the reader's terms (a key, or a flag).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import re
import shlex
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TypeVar

from tlsgate.config.messages import At, show
from tlsgate.config.model import CHALLENGE_TYPES, AcmeSettings
from tlsgate.config.values import _items, _seconds, path_value

_V = TypeVar("_V")

_EAB_FORM = "KEY_ID:BASE64URL_MAC_KEY"
#: base64url as RFC 8555 uses it; the standard alphabet too, since some CAs' pages show that one.
_BASE64 = re.compile(r"[A-Za-z0-9_+/-]+")
_CHALLENGE_LIST = ", ".join(CHALLENGE_TYPES)


def _no_space(value: str) -> bool:
    return not any(char.isspace() or not char.isprintable() for char in value)


# --- one value each ---------------------------------------------------------------------------


def _directory(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected the ACME directory URL as a string, got {show(value)}")
    shown = show(value)
    if not _no_space(value):
        raise at.error(f"{shown}: a URL cannot contain spaces or control characters")
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError as exc:  # "https://[::1/dir": brackets that do not close
        raise at.error(f"{shown} is not a URL ({exc})") from None
    if url.scheme.lower() != "https":
        raise at.error(
            f"{shown}: the ACME directory must be an https:// URL "
            "(RFC 8555 requires HTTPS: over plain HTTP anyone on the path could answer for the CA)"
        )
    if not url.hostname:
        raise at.error(f"{shown}: the URL has no host")
    try:
        port = url.port
    except ValueError:
        port = 0
    if port == 0:
        raise at.error(f"{shown}: the port must be a number from 1 to 65535")
    return value


def _email(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected an email address as a string, got {show(value)}")
    shown = show(value)
    if value.lower().startswith("mailto:"):
        raise at.error(f"{shown}: write the address without mailto: (tlsgate adds it)")
    if not _no_space(value):
        raise at.error(f"{shown}: an email address cannot contain spaces or control characters")
    local, _, domain = value.partition("@")
    if value.count("@") != 1 or not local or not domain:
        raise at.error(f"{shown} is not an email address (one @, like you@example.com)")
    return value


def _emails(value: object, at: At) -> tuple[str, ...]:
    out: list[str] = []
    for item, item_at in _items(value, at, "an email address or a list of them"):
        address = _email(item, item_at)
        if address in out:
            raise item_at.error(f"{address} is listed twice")
        out.append(address)
    return tuple(out)


def _mac_key(encoded: str, kid: str, at: At) -> bytes:
    """The MAC key's bytes; never echoed in a message, since it is a secret."""
    data = encoded.rstrip("=")
    if _BASE64.fullmatch(data) and len(encoded) - len(data) <= 2:
        try:
            standard = data.replace("-", "+").replace("_", "/")
            return base64.b64decode(standard + "=" * (-len(data) % 4), validate=True)
        except (binascii.Error, ValueError):
            pass
    raise at.error(f"the MAC key for key id {kid!r} is not base64url")


def _kid(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected the key id as a string, got {show(value)}")
    if not value:
        raise at.error("expected a key id, got an empty string")
    if not _no_space(value):
        raise at.error(f"{show(value)}: a key id cannot contain spaces or control characters")
    return value


def _eab(value: object, at: At) -> tuple[str, bytes]:
    """``"KEY_ID:BASE64URL_MAC_KEY"`` (the form CAs hand out), or ``{ kid, hmac }``.

    The table's keys have already been checked against the schema by the caller that has one;
    a message may name the key id but never shows the MAC key.
    """
    if isinstance(value, dict):
        for key in ("kid", "hmac"):
            if key not in value:
                raise at.error(f"{key} is missing (kid and hmac go together)")
        kid = _kid(value["kid"], at.child("kid"))
        hmac_at = at.child("hmac")
        hmac = value["hmac"]
        if not isinstance(hmac, str):
            raise hmac_at.error(f"expected the MAC key as a base64url string, got {show(hmac)}")
        return kid, _mac_key(hmac, kid, hmac_at)
    if not isinstance(value, str):
        raise at.error(f'expected "{_EAB_FORM}" or a table {{ kid, hmac }}, got {show(value)}')
    # base64url has no ':', so the last one ends the key id (which may hold colons itself).
    kid, colon, encoded = value.rpartition(":")
    if not colon:
        raise at.error(f"expected {_EAB_FORM} (there is no ':')")
    if not kid:
        raise at.error(f"expected {_EAB_FORM} (the key id before ':' is empty)")
    if not encoded:
        raise at.error(f"expected {_EAB_FORM} (the MAC key after ':' is empty)")
    return _kid(kid, at), _mac_key(encoded, kid, at)


def _challenges(value: object, at: At) -> tuple[str, ...]:
    items = _items(value, at, f"a challenge type or a list of them ({_CHALLENGE_LIST})")
    if not items:
        raise at.error(f"at least one challenge type is required ({_CHALLENGE_LIST})")
    out: list[str] = []
    for item, item_at in items:
        if not isinstance(item, str):
            raise item_at.error(f"expected a challenge type as a string, got {show(item)}")
        if item not in CHALLENGE_TYPES:
            guess = item.lower().replace("_", "-")
            close = difflib.get_close_matches(guess, CHALLENGE_TYPES, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {_CHALLENGE_LIST}"
            raise item_at.error(f"{show(item)} is not a challenge type ({hint})")
        if item in out:
            raise item_at.error(f"{item} is listed twice")
        out.append(item)
    return tuple(out)


def _dns_hook(value: object, at: At) -> str:
    """Split now as the hook runner will, so a stray quote fails here, not at 3 a.m. renewal."""
    if not isinstance(value, str):
        raise at.error(f"expected a command as a string, got {show(value)}")
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise at.error(f"{show(value)}: cannot split into a command ({exc})") from None
    if not argv:
        raise at.error(f"expected a command, got {'only spaces' if value else 'an empty string'}")
    return value


def _profile(value: object, at: At) -> str:
    if not isinstance(value, str):
        raise at.error(f"expected a profile name as a string, got {show(value)}")
    if not value:
        raise at.error("expected a profile name, got an empty string")
    if not _no_space(value):
        raise at.error(f"{show(value)}: a profile name cannot contain spaces")
    return value


# --- one table, or the flags ------------------------------------------------------------------


@dataclass(frozen=True)
class _AcmeGiven:
    """What one table (or the command line) said, each value checked and kept with its position.

    None means "not said here", so a site's table can override the top-level one key by key.
    """

    directory: tuple[str, At] | None = None
    email: tuple[tuple[str, ...], At] | None = None
    eab: tuple[tuple[str, bytes], At] | None = None
    challenges: tuple[tuple[str, ...], At] | None = None
    ca: tuple[Path, At] | None = None
    dns_hook: tuple[str, At] | None = None
    dns_wait: tuple[float, At] | None = None
    profile: tuple[str, At] | None = None


#: The keys of [acme] and [site.acme], in the order the model has them.
_ACME_KEYS = tuple(field.name for field in fields(_AcmeGiven))


def _acme_given(values: Mapping[str, tuple[object, At]], base: Path | None) -> _AcmeGiven:
    """Check each value that was given, where it was written; the keys are known to be ours."""

    def check(key: str, valid: Callable[[object, At], _V]) -> tuple[_V, At] | None:
        if key not in values:
            return None
        value, at = values[key]
        return valid(value, at), at

    return _AcmeGiven(
        directory=check("directory", _directory),
        email=check("email", _emails),
        eab=check("eab", _eab),
        challenges=check("challenges", _challenges),
        ca=check("ca", lambda value, at: path_value(value, at, base)),
        dns_hook=check("dns_hook", _dns_hook),
        dns_wait=check("dns_wait", lambda value, at: _seconds(value, at, zero=True)),
        profile=check("profile", _profile),
    )


def _merge(defaults: _AcmeGiven | None, override: _AcmeGiven | None) -> _AcmeGiven:
    """The site's own values over the top-level ones, key by key."""
    if override is None:
        return _AcmeGiven() if defaults is None else defaults
    if defaults is None:
        return override
    said = {f.name: getattr(override, f.name) for f in fields(override)}
    return replace(defaults, **{key: value for key, value in said.items() if value is not None})


# --- one site's settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """How messages name the other settings: config keys for the file, flags for the CLI."""

    dns_hook: str
    add_dns01: str
    no_http: str


_FILE_WORDS = _Words(
    dns_hook="dns_hook",
    add_dns01='add "dns-01" to challenges',
    no_http="server.http_listen is off",
)
_FLAG_WORDS = _Words(
    dns_hook="--dns-hook",
    add_dns01="add --challenge dns-01",
    no_http="--no-http turned it off",
)


def _default_challenges(dns_hook: bool, http: bool) -> tuple[str, ...]:
    """A hook says the user wants dns-01; else whatever the listeners can answer, http-01 first."""
    if dns_hook:
        return ("dns-01",)
    return ("http-01", "tls-alpn-01") if http else ("tls-alpn-01",)


def _acme_settings(
    given: _AcmeGiven,
    *,
    missing_at: At,
    wildcards: Sequence[tuple[str, At]],
    http: bool,
    words: _Words,
    site: At | None = None,
) -> AcmeSettings:
    """One ACME site's settings, with the rules that only the merged values can decide.

    ``missing_at`` is where a missing directory is reported (what made the site an ACME site);
    ``site`` (file only) lets a message about a value inherited from ``[acme]`` say which site
    it failed for, since another site may well override it.
    """

    def whose(at: At) -> str:
        if site is None or at.path[: len(site.path)] == site.path:
            return ""
        return f" (for {site.label})"

    if given.directory is None:
        raise missing_at.error(
            f"no ACME directory{whose(missing_at)}: set directory in [acme] or [site.acme] "
            '(the CA\'s URL, like "https://acme-v02.api.letsencrypt.org/directory")'
        )
    dns_hook = None if given.dns_hook is None else given.dns_hook[0]
    if given.challenges is None:
        challenges = _default_challenges(dns_hook is not None, http)
    else:
        challenges, at = given.challenges
        if "dns-01" in challenges and dns_hook is None:
            raise at.error(
                f"dns-01 needs {words.dns_hook}{whose(at)}: the command that publishes the "
                "TXT record"
            )
        if "http-01" in challenges and not http:
            raise at.error(
                f"http-01 needs a plain-HTTP listener for the CA to connect to, and {words.no_http}"
            )
    if wildcards and "dns-01" not in challenges:
        name, at = wildcards[0]
        fix = f"set {words.dns_hook}" if dns_hook is None else words.add_dns01
        raise at.error(f"{name} can only be validated by dns-01: {fix}")
    return AcmeSettings(
        directory=given.directory[0],
        email=() if given.email is None else given.email[0],
        eab=None if given.eab is None else given.eab[0],
        challenges=challenges,
        ca=None if given.ca is None else given.ca[0],
        dns_hook=dns_hook,
        dns_wait=0.0 if given.dns_wait is None else given.dns_wait[0],
        profile=None if given.profile is None else given.profile[0],
    )
