"""Who may reach which path: allow lists of client identities, per site and per path prefix.

Matching is on what a verified certificate names (:class:`~tlsgate.mtls.identity.ClientIdentity`):
SPIFFE IDs by pattern, DNS names like TLS matches them, subject CN and OU exactly. Any entry of
any list lets a client in; no entries at all means any verified certificate.

Paths are judged the way the upstream will read them, and since tlsgate cannot know that, it
judges every common reading and lets a request through only if each of them would
(:func:`authorize`). The readings all start from the request target without its query (and the
path of an absolute-form target), with ``//``, ``/./`` and ``/../`` resolved the RFC 3986 way,
so ``/public/../admin`` is judged as ``/admin``. They differ in what servers disagree on:

- percent-decoding each segment (``%2F`` stays inside a segment, as Express does) or the whole
  path first (``/x%2F..%2Fadmin`` becomes ``/admin``, as nginx and Go do);
- keeping ``;params`` or dropping them from each segment (Tomcat: ``/public/..;/admin``);
- ``\\`` as a character or as ``/`` (IIS);
- letter case kept or ignored (case-insensitive routers).

More readings can only refuse more, never less: a request that one backend would see as
``/admin`` is judged as ``/admin`` whatever another backend would make of it.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from tlsgate.errors import InvalidIdentity
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.pki.names import dns_matches, parse_dns_name, parse_spiffe_id

__all__ = [
    "AllowList",
    "Decision",
    "PathRule",
    "authorize",
    "check_path_prefix",
    "check_spiffe_pattern",
    "match_spiffe",
    "normalize_path",
]

_SPIFFE = "spiffe://"
#: A stand-in for a wildcard segment while the rest of a pattern is checked as a SPIFFE ID.
_PLACEHOLDER = "x"


# --- SPIFFE patterns ---------------------------------------------------------------------------


def check_spiffe_pattern(pattern: str) -> str:
    """The pattern in canonical form, or ValueError saying what is wrong with it.

    A pattern is a SPIFFE ID whose path segments may be ``*`` (exactly one segment) or end in
    ``/**`` (one or more). The trust domain is never a wildcard: which trust domain vouches for
    a workload is the one thing an allow list must pin down. Everything else is checked by the
    SPIFFE ID parser itself, so a pattern without wildcards is exactly a valid SPIFFE ID.
    """
    if pattern[: len(_SPIFFE)].lower() != _SPIFFE:
        raise ValueError("a SPIFFE pattern starts with spiffe://")
    if any(char.isspace() or not char.isprintable() for char in pattern):
        raise ValueError("a SPIFFE pattern has no spaces or control characters")
    domain, slash, path = pattern[len(_SPIFFE) :].partition("/")
    if "*" in domain:
        raise ValueError(
            "the trust domain cannot be a wildcard; write it out (spiffe://example.org/ns/*)"
        )
    segments = path.split("/") if slash else []
    wildcards: list[int] = []
    for index, segment in enumerate(segments):
        if segment == "**" and index != len(segments) - 1:
            raise ValueError("'**' can only be the last segment (like spiffe://example.org/ns/**)")
        if segment in ("*", "**"):
            wildcards.append(index)
        elif "*" in segment:
            raise ValueError("a wildcard must be a whole path segment: '*' or a final '**'")
    concrete = [_PLACEHOLDER if i in wildcards else s for i, s in enumerate(segments)]
    written = pattern[: len(_SPIFFE)] + domain + (slash + "/".join(concrete) if slash else "")
    try:
        canonical = parse_spiffe_id(written)
    except InvalidIdentity as exc:
        # Its messages start with the text it was given, which here holds the stand-ins.
        raise ValueError(str(exc).removeprefix(f"{written!r}: ")) from None
    head, _, tail = canonical[len(_SPIFFE) :].partition("/")
    if not slash:
        return _SPIFFE + head
    out = tail.split("/")
    for index in wildcards:
        out[index] = segments[index]
    return _SPIFFE + head + "/" + "/".join(out)


@functools.lru_cache(maxsize=1024)
def _pattern_parts(pattern: str) -> tuple[str, tuple[str, ...]]:
    canonical = check_spiffe_pattern(pattern)
    return _split_id(canonical)


def _split_id(spiffe_id: str) -> tuple[str, tuple[str, ...]]:
    domain, slash, path = spiffe_id[len(_SPIFFE) :].partition("/")
    return domain, tuple(path.split("/")) if slash else ()


def _spiffe_matches(pattern: tuple[str, tuple[str, ...]], spiffe_id: str) -> bool:
    """``spiffe_id`` must be a valid, canonical SPIFFE ID (a ClientIdentity's always is)."""
    domain, wanted = pattern
    id_domain, segments = _split_id(spiffe_id)
    if id_domain != domain:
        return False
    if wanted and wanted[-1] == "**":
        wanted = wanted[:-1]
        if len(segments) <= len(wanted):
            return False
        segments = segments[: len(wanted)]
    elif len(segments) != len(wanted):
        return False
    return all(want in ("*", have) for want, have in zip(wanted, segments, strict=True))


def match_spiffe(pattern: str, spiffe_id: str) -> bool:
    """Whether ``spiffe_id`` matches ``pattern``; ValueError for an invalid pattern.

    An invalid pattern is a mistake to report, not a "no": config checks them up front, so this
    only raises for a pattern that skipped :func:`check_spiffe_pattern`. An invalid or
    non-canonical ID matches nothing, since ``..`` or ``//`` in it could otherwise be made to
    line up with a wildcard.
    """
    parts = _pattern_parts(pattern)
    try:
        if parse_spiffe_id(spiffe_id) != spiffe_id:
            return False
    except InvalidIdentity:
        return False
    return _spiffe_matches(parts, spiffe_id)


# --- DNS names --------------------------------------------------------------------------------


def _dns_matches(pattern: str, name: str) -> bool:
    """TLS-style: ``*.svc.internal`` stands for exactly one label, like a wildcard certificate.

    A wildcard name in the certificate only matches the identical pattern: the holder of
    ``*.svc.internal`` is not known to be ``api.svc.internal`` in particular.
    """
    if name == pattern:
        return True
    if not pattern.startswith("*.") or name.startswith("*."):
        return False
    # One label more than the pattern's parent, and below it (dns_matches with a leading dot).
    return name.count(".") == pattern.count(".") and dns_matches(name, pattern[1:])


# --- allow lists ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """Who may pass: any entry of any list matches (OR).

    Empty everywhere = any verified certificate.
    """

    #: "spiffe://td/ns/prod/sa/web"; "*" matches exactly one path segment, a trailing "/**" any
    #: number (>= 1) of segments; the trust domain must match exactly (no wildcard there).
    spiffe: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()  # "api.internal" or "*.svc.internal" (one label, like TLS wildcards)
    cn: tuple[str, ...] = ()  # exact subject CN
    ou: tuple[str, ...] = ()  # exact subject OU

    def __post_init__(self) -> None:
        """Refuse what could never match, so a hand-built list fails here, not per request."""
        for pattern in self.spiffe:
            canonical = check_spiffe_pattern(pattern)
            if canonical != pattern:
                raise ValueError(f"{pattern!r}: write the SPIFFE pattern as {canonical!r}")
        for pattern in self.dns:
            try:
                canonical = parse_dns_name(pattern)
            except InvalidIdentity as exc:
                raise ValueError(str(exc)) from None
            if canonical != pattern:
                raise ValueError(f"{pattern!r}: write the DNS pattern as {canonical!r}")
        if "" in self.cn or "" in self.ou:
            raise ValueError("an empty CN or OU matches no certificate")

    def is_empty(self) -> bool:
        return not (self.spiffe or self.dns or self.cn or self.ou)

    def _match(self, identity: ClientIdentity) -> str | None:
        """The entry that lets ``identity`` in, as a reason; None when none does."""
        if identity.spiffe_id is not None:
            for pattern in self.spiffe:
                if _spiffe_matches(_pattern_parts(pattern), identity.spiffe_id):
                    return f"allowed by spiffe pattern {pattern}"
        for pattern in self.dns:
            if any(_dns_matches(pattern, name) for name in identity.dns):
                return f"allowed by dns pattern {pattern}"
        for cn in self.cn:
            if cn in identity.common_names:
                return f"allowed by cn {cn}"
        for ou in self.ou:
            if ou in identity.organizational_units:
                return f"allowed by ou {ou}"
        return None


# --- paths ------------------------------------------------------------------------------------


def check_path_prefix(prefix: str) -> str:
    """``prefix`` itself, or ValueError for one that could never match a normalised path."""
    if not prefix.startswith("/"):
        raise ValueError('a path prefix starts with "/" (like "/admin")')
    if any(char.isspace() or not char.isprintable() for char in prefix):
        raise ValueError("a path prefix cannot contain spaces or control characters")
    if "?" in prefix or "#" in prefix:
        raise ValueError("a path prefix has no query or fragment (requests match on the path)")
    if "%" in prefix:
        raise ValueError("write the prefix without percent-encoding (paths are decoded first)")
    if "\\" in prefix:
        raise ValueError("a path prefix cannot contain a backslash")
    if prefix != "/" and prefix.endswith("/"):
        raise ValueError(
            f"write it without the trailing slash ({prefix.rstrip('/') or '/'!r} covers "
            "itself and everything under it)"
        )
    if prefix != "/" and any(s in ("", ".", "..") for s in prefix[1:].split("/")):
        raise ValueError(
            "empty, '.' or '..' segment: paths are normalised before matching, "
            "so it would never match"
        )
    return prefix


@dataclass(frozen=True)
class PathRule:
    #: "/admin" matches "/admin", "/admin/x", not "/administrator"; must start with "/"
    prefix: str
    allow: AllowList
    #: under mode = "optional": a client without a certificate gets 403 on this path
    require_certificate: bool = True

    def __post_init__(self) -> None:
        check_path_prefix(self.prefix)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    #: short, safe to send in a 403 body and to log: "no client certificate",
    #: "spiffe://td/x is not allowed on /admin", "allowed by spiffe pattern spiffe://td/ns/*/sa/web"
    reason: str


_ABSOLUTE_FORM = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/]*")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: Characters that make the readings differ; a path without them has only one.
_AMBIGUOUS = frozenset("%;\\")


def _target_path(target: str) -> str:
    """The path of a request target, as latin-1 text of its bytes (how HTTP hands it over)."""
    path = target.partition("?")[0].partition("#")[0]
    absolute = _ABSOLUTE_FORM.match(path)
    if absolute:
        path = path[absolute.end() :]
    if not path.isascii() and max(map(ord, path)) > 0xFF:
        path = path.encode("utf-8").decode("latin-1")
    return path


def _resolve(parts: list[str]) -> tuple[str, ...]:
    """RFC 3986 remove_dot_segments, with empty segments dropped as servers merge slashes."""
    out: list[str] = []
    for part in parts:
        if part == "..":
            if out:
                out.pop()
        elif part not in ("", "."):
            out.append(part)
    return tuple(out)


def _decode(text: str) -> str:
    return unquote(text, encoding="latin-1")


def _reading(path: str, *, whole: bool, params: bool, backslash: bool) -> tuple[str, ...]:
    if backslash:
        path = path.replace("\\", "/")
    if whole:
        path = _decode(path)
        if backslash:
            path = path.replace("\\", "/")
        parts = path.split("/")
        if not params:
            parts = [part.partition(";")[0] for part in parts]
    else:
        parts = path.split("/")
        if not params:
            parts = [part.partition(";")[0] for part in parts]
        parts = [_decode(part) for part in parts]
    return _resolve(parts)


def _readings(target: str) -> list[tuple[str, ...]]:
    """Every reading of the target's path, the plain RFC 3986 one first (see the module doc)."""
    path = _target_path(target)
    if _AMBIGUOUS.isdisjoint(path):
        return [_resolve(path.split("/"))]
    found = {
        _reading(path, whole=whole, params=params, backslash=backslash): None
        for whole in (False, True)
        for params in (True, False)
        for backslash in (False, True)
    }
    return list(found)


def normalize_path(target: str) -> str:
    """The plain reading of a request target's path: ``/public/../admin?x`` -> ``/admin``.

    A ``/`` that was ``%2F`` stays encoded (with ``%`` itself as ``%25``), so the result still
    shows where the segments are.
    """
    segments = _readings(target)[0]
    return "/" + "/".join(s.replace("%", "%25").replace("/", "%2F") for s in segments)


@functools.lru_cache(maxsize=1024)
def _prefix_segments(prefix: str) -> tuple[str, ...]:
    # Compared with paths as latin-1 text of their bytes, so "/café" matches its UTF-8 bytes.
    return _resolve(prefix.encode("utf-8").decode("latin-1").split("/"))


def _fold(segments: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(segment.translate(_ASCII_LOWER) for segment in segments)


def _rules_for(segments: tuple[str, ...], rules: tuple[PathRule, ...], fold: bool) -> list[int]:
    """The longest matching rules (several only when case is ignored); [] for the site's list."""
    best: list[int] = []
    best_length = -1
    for index, rule in enumerate(rules):
        prefix = _prefix_segments(rule.prefix)
        if fold:
            prefix = _fold(prefix)
        if segments[: len(prefix)] != prefix or len(prefix) < best_length:
            continue
        if len(prefix) > best_length:
            best, best_length = [], len(prefix)
        best.append(index)
    return best


def _printable(text: str, limit: int = 200) -> str:
    shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def _who(identity: ClientIdentity) -> str:
    """The holder's most specific name, for a refusal the client and the log can read."""
    for name in (identity.spiffe_id, identity.subject, *identity.dns, *identity.uris):
        if name:
            return _printable(name)
    return f"certificate {identity.sha256[:16]}"


def _judge(
    identity: ClientIdentity | None,
    rule: PathRule | None,
    allow: AllowList,
    certificate_required: bool,
) -> Decision:
    if rule is None:
        where, on = "this site", ""
        # A list of who may pass has no anonymous client on it.
        needed = certificate_required or not allow.is_empty()
    else:
        allow, where = rule.allow, rule.prefix
        on = f" on {where}"
        needed = certificate_required or rule.require_certificate
    if identity is None:
        if needed:
            return Decision(False, "no client certificate")
        return Decision(True, f"allowed without a client certificate{on}")
    if allow.is_empty():
        return Decision(True, f"allowed: any verified certificate{on}")
    reason = allow._match(identity)
    if reason is not None:
        return Decision(True, reason)
    hint = ""
    if allow.spiffe and identity.spiffe_id is None:
        if any(uri.lower().startswith(_SPIFFE) for uri in identity.uris):
            hint = " (its certificate is not a valid X.509-SVID)"
    return Decision(False, f"{_who(identity)} is not allowed on {where}{hint}")


def authorize(
    identity: ClientIdentity | None,
    path: str,
    allow: AllowList,
    rules: tuple[PathRule, ...],
    *,
    certificate_required: bool,
) -> Decision:
    """May this client reach ``path`` (a request target; its query is ignored)?

    The longest matching rule's prefix wins and its lists replace the site's ``allow`` for that
    path. Without a certificate a client passes only where none is needed: not under
    ``certificate_required`` (mode = "require"), not under a rule with ``require_certificate``,
    and not where the site's own list applies and names anyone. A rule with
    ``require_certificate = False`` lets clients without a certificate in, while one that
    presents a certificate is still judged by the rule's lists.

    Every reading of the path (see the module doc) must be allowed; the refusal of the first
    that is not is the answer, else the plain reading's reason.
    """
    if not rules:
        return _judge(identity, None, allow, certificate_required)
    chosen: dict[int | None, None] = {}
    for segments in _readings(path):
        for fold in (False, True):
            matched: list[int | None] = [
                *_rules_for(_fold(segments) if fold else segments, rules, fold)
            ]
            for index in matched or [None]:
                chosen[index] = None
    decisions = [
        _judge(identity, None if index is None else rules[index], allow, certificate_required)
        for index in chosen
    ]
    for decision in decisions:
        if not decision.allowed:
            return decision
    return decisions[0]
