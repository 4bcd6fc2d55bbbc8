"""The schema and the table parsers: TOML text -> a validated :class:`Config`.

This is where the document's shape lives (which keys go in which table, and where a misplaced
key belongs instead); the values inside are checked by :mod:`tlsgate.config.values` and
:mod:`tlsgate.config.addresses`.
"""

from __future__ import annotations

import difflib
import ipaddress
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

from tlsgate.config.acme import (
    _ACME_KEYS,
    _FILE_WORDS,
    _acme_given,
    _acme_settings,
    _AcmeGiven,
    _merge,
)
from tlsgate.config.addresses import (
    _hosts,
    _listen_option,
    _listeners,
    _network,
    _upstreams,
    listen_value,
)
from tlsgate.config.client_auth import (
    _CLIENT_AUTH_ALIASES,
    _CLIENT_AUTH_KEYS,
    _PATH_ALIASES,
    _PATH_KEYS,
    _client_auth,
)
from tlsgate.config.locate import locator_for
from tlsgate.config.messages import At, show, syntax_error
from tlsgate.config.model import (
    DEFAULT_HSTS_MAX_AGE,
    AcmeSettings,
    ClientAuth,
    Config,
    HstsPolicy,
    Limits,
    ListenAddress,
    ServerConfig,
    SiteConfig,
    Timeouts,
    TlsFiles,
)
from tlsgate.config.values import (
    _access_log,
    _choice,
    _is_int,
    _items,
    _poll,
    _rotation,
    _seconds,
    _workers,
    bool_value,
    count_value,
    path_value,
    table_value,
)
from tlsgate.errors import ConfigError


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
    return _parse(read_text(path), source=str(path), base=path.absolute().parent)


def read_text(path: Path) -> str:
    """A config file's text (tlsgate.toml, monitor.toml), or ConfigError saying why not."""
    try:
        # utf-8-sig: a BOM from a Windows editor is not worth a syntax error at line 1.
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None


# --- the schema -------------------------------------------------------------------------------

_TOP_KEYS = ("server", "site", "acme")
_SERVER_KEYS = (
    "listen",
    "http_listen",
    "admin_listen",
    "workers",
    "trusted_proxies",
    "access_log",
    "state",
    "store",
    "ticket_rotation",
    "store_poll",
    "max_connections_per_worker",
    "timeouts",
    "limits",
)
_TIMEOUT_KEYS = tuple(Timeouts.__dataclass_fields__)
_LIMIT_KEYS = tuple(Limits.__dataclass_fields__)
_SITE_KEYS = (
    "hosts",
    "mode",
    "upstream",
    "balance",
    "hsts",
    "via",
    "http2",
    "tls",
    "issuer",
    "acme",
    "client_auth",
)
_TLS_KEYS = ("cert", "key")
_TLS_OPTIONS = ("ocsp_stapling",)
_HSTS_KEYS = ("max_age", "include_subdomains", "preload")
_BALANCE = ("round_robin", "least_conn")
_MODES = ("http", "tcp")
_ISSUERS = ("internal", "acme")
_EAB_KEYS = ("kid", "hmac")
_EAB_ALIASES = {"key": "hmac", "mac": "hmac", "mac_key": "hmac", "key_id": "kid"}

#: Where each key belongs, to answer "unknown key" with "it goes over there" when it does.
_HOME: dict[str, str] = {
    **{key: "[server]" for key in _SERVER_KEYS},
    **{key: "[server.timeouts]" for key in _TIMEOUT_KEYS},
    **{key: "[server.limits]" for key in _LIMIT_KEYS},
    **{key: "[[site]]" for key in _SITE_KEYS},
    **{key: "[site.tls]" for key in (*_TLS_KEYS, *_TLS_OPTIONS)},
    **{key: "a site's hsts table" for key in _HSTS_KEYS},
    **{key: "[acme] or [site.acme]" for key in (*_ACME_KEYS, "acme")},
    **{key: "an eab table" for key in _EAB_KEYS},
    **{key: "[site.client_auth]" for key in _CLIENT_AUTH_KEYS},
    **{key: "a [[site.client_auth.path]] table" for key in ("prefix", "require_certificate")},
}

#: hstspreload.org refuses shorter policies; sending "preload" with them only misleads.
_PRELOAD_MIN_AGE = 31536000


def _check_keys(
    table: dict[str, object],
    known: Sequence[str],
    at: At,
    aliases: Mapping[str, str] | None = None,
) -> None:
    """Refuse unknown keys; ``aliases`` are names that mean a known key in this table only."""
    for key in table:
        if key in known:
            continue
        home = _HOME.get(key)
        if aliases and key in aliases:
            hint = f"did you mean {aliases[key]!r}?"
        elif home is not None:
            hint = f"{key} belongs in {home}"
        elif close := difflib.get_close_matches(key, known, n=1):
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = "known keys: " + ", ".join(known)
        raise at.child(key).error(f"unknown key ({hint})")


# --- sub-tables -------------------------------------------------------------------------------


def _hsts(value: object, at: At) -> HstsPolicy | None:
    if value is True:
        return HstsPolicy()
    if value is False:
        return None
    if _is_int(value):
        return HstsPolicy(max_age=count_value(value, at, "seconds", zero=True))
    if not isinstance(value, dict):
        raise at.error(
            "expected true, false, a max-age in seconds or a table "
            f"{{max_age, include_subdomains, preload}}, got {show(value)}"
        )
    _check_keys(value, _HSTS_KEYS, at)
    max_age = DEFAULT_HSTS_MAX_AGE
    if "max_age" in value:
        max_age = count_value(value["max_age"], at.child("max_age"), "seconds", zero=True)
    policy = HstsPolicy(
        max_age=max_age,
        include_subdomains=bool_value(
            value.get("include_subdomains", False), at.child("include_subdomains")
        ),
        preload=bool_value(value.get("preload", False), at.child("preload")),
    )
    if policy.preload and (not policy.include_subdomains or policy.max_age < _PRELOAD_MIN_AGE):
        raise at.child("preload").error(
            f"preload needs include_subdomains = true and max_age >= {_PRELOAD_MIN_AGE} "
            "(the browsers' preload list accepts nothing less)"
        )
    return policy


def _tls(value: object, at: At, base: Path | None) -> TlsFiles:
    table = table_value(value, at, "a table with cert and key")
    _check_keys(table, (*_TLS_KEYS, *_TLS_OPTIONS), at)
    missing = [key for key in _TLS_KEYS if key not in table]
    if len(missing) == 2:
        raise at.error("cert and key are required (or leave out [site.tls] for the internal CA)")
    if missing:
        raise at.error(f"{missing[0]} is missing (cert and key go together)")
    return TlsFiles(
        cert=path_value(table["cert"], at.child("cert"), base),
        key=path_value(table["key"], at.child("key"), base),
        ocsp_stapling=(
            bool_value(table["ocsp_stapling"], at.child("ocsp_stapling"))
            if "ocsp_stapling" in table
            else True
        ),
    )


def _acme(value: object, at: At, base: Path | None, expected: str) -> _AcmeGiven:
    table = table_value(value, at, expected)
    _check_keys(table, _ACME_KEYS, at)
    eab = table.get("eab")
    if isinstance(eab, dict):
        # "key" would otherwise be sent to [site.tls], which is not what an eab table means.
        _check_keys(eab, _EAB_KEYS, at.child("eab"), aliases=_EAB_ALIASES)
    return _acme_given({key: (item, at.child(key)) for key, item in table.items()}, base)


def _client_auth_table(value: object, at: At, base: Path | None) -> ClientAuth | None:
    table = table_value(value, at, "a [site.client_auth] table")
    _check_keys(table, _CLIENT_AUTH_KEYS, at, aliases=_CLIENT_AUTH_ALIASES)
    rules: list[tuple[dict[str, object], At]] = []
    if "path" in table:
        path_at = at.child("path")
        items = table["path"]
        if isinstance(items, dict):
            raise path_at.error(
                "expected [[site.client_auth.path]] tables, got a single table "
                "([site.client_auth.path] instead of [[site.client_auth.path]]?)"
            )
        if not isinstance(items, list):
            raise path_at.error(f"expected [[site.client_auth.path]] tables, got {show(items)}")
        for index, item in enumerate(items):
            rule_at = path_at.child(index)
            rule = table_value(item, rule_at, "a [[site.client_auth.path]] table")
            _check_keys(rule, _PATH_KEYS, rule_at, aliases=_PATH_ALIASES)
            rules.append((rule, rule_at))
    return _client_auth(table, at, rules, base)


# --- tables -----------------------------------------------------------------------------------


def _server(value: object, at: At, base: Path | None) -> ServerConfig:
    table = table_value(value, at, "a [server] table")
    _check_keys(table, _SERVER_KEYS, at)
    defaults = ServerConfig()

    listen_at, http_at = at.child("listen"), at.child("http_listen")
    listen_given = None
    if "listen" in table:
        listen_given = _listen_option(table["listen"], listen_at, can_disable=False)
    http_given = None
    if "http_listen" in table:
        http_given = _listen_option(table["http_listen"], http_at, can_disable=True)
    admin: tuple[ListenAddress, At] | None = None
    if "admin_listen" in table and table["admin_listen"] is not False:
        admin_at = at.child("admin_listen")
        if not isinstance(table["admin_listen"], str):
            raise admin_at.error(
                f'expected "HOST:PORT" or false, got {show(table["admin_listen"])}'
            )
        admin = (listen_value(table["admin_listen"], admin_at), admin_at)
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
        t = table_value(table["timeouts"], at.child("timeouts"), "a [server.timeouts] table")
        _check_keys(t, _TIMEOUT_KEYS, at.child("timeouts"))
        timeouts = Timeouts(**{k: _seconds(v, at.child("timeouts").child(k)) for k, v in t.items()})

    limits = Limits()
    if "limits" in table:
        t = table_value(table["limits"], at.child("limits"), "a [server.limits] table")
        limits_at = at.child("limits")
        _check_keys(t, _LIMIT_KEYS, limits_at)
        limits = Limits(
            max_header_bytes=count_value(
                t.get("max_header_bytes", limits.max_header_bytes),
                limits_at.child("max_header_bytes"),
                "bytes",
            ),
            max_headers=count_value(
                t.get("max_headers", limits.max_headers), limits_at.child("max_headers"), "headers"
            ),
            # 0 = unlimited
            max_body_bytes=count_value(
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
        state=path_value(table["state"], at.child("state"), base) if "state" in table else None,
        store=_store(table, at, base),
        ticket_rotation=_rotation(table["ticket_rotation"], at.child("ticket_rotation"))
        if "ticket_rotation" in table
        else defaults.ticket_rotation,
        store_poll=_poll(table["store_poll"], at.child("store_poll"))
        if "store_poll" in table
        else defaults.store_poll,
        max_connections_per_worker=count_value(
            table["max_connections_per_worker"],
            at.child("max_connections_per_worker"),
            "connections",
            zero=True,
        )
        if "max_connections_per_worker" in table
        else defaults.max_connections_per_worker,
        timeouts=timeouts,
        limits=limits,
    )


def _store(table: dict[str, object], at: At, base: Path | None) -> str | None:
    """``store``: a database URL as written (its password stays out of messages), or a directory
    resolved like ``state``; the two keys say the same thing, so giving both is an error."""
    if "store" not in table:
        return None
    if "state" in table:
        raise at.child("store").error('give "state" (a directory) or "store", not both')
    value = table["store"]
    if isinstance(value, str) and "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in ("postgresql", "postgres"):
            raise at.child("store").error(
                f"unsupported store {scheme}://; use postgresql://... or a directory"
            )
        return value
    return str(path_value(value, at.child("store"), base))


def _site(
    table: dict[str, object],
    at: At,
    base: Path | None,
    acme: tuple[_AcmeGiven, At] | None,
    http: bool,
) -> tuple[SiteConfig, list[tuple[str, str, At]]]:
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
    mode_value = table.get("mode", "http")
    if mode_value in ("off", "optional", "require"):
        raise at.child("mode").error(
            f"{show(mode_value)} is a client certificate mode: it belongs in [site.client_auth] "
            '(a site\'s own mode is "http" or "tcp")'
        )
    mode = _choice(mode_value, _MODES, at.child("mode"))
    if mode == "tcp":
        for key in ("hsts", "via", "http2"):  # HTTP: a TCP site relays bytes, not requests
            if key in table:
                raise at.child(key).error(f'{key} has no effect on a mode = "tcp" site')
    up_at = at.child("upstream")
    example = '"tcp://HOST:PORT"' if mode == "tcp" else '"http://HOST:PORT"'
    upstreams = _upstreams(
        _items(table["upstream"], up_at, f"{example} or a list of them"), up_at, scheme=mode
    )
    balance = _choice(table.get("balance", "round_robin"), _BALANCE, at.child("balance"))
    hsts = _hsts(table["hsts"], at.child("hsts")) if "hsts" in table else None
    via = bool_value(table["via"], at.child("via")) if "via" in table else False
    http2 = bool_value(table["http2"], at.child("http2")) if "http2" in table else mode == "http"
    tls = _tls(table["tls"], at.child("tls"), base) if "tls" in table else None
    issuer, settings = _issuer(table, at, base, tls is not None, hosts, acme, http)
    client_auth = None
    if "client_auth" in table:
        client_auth = _client_auth_table(table["client_auth"], at.child("client_auth"), base)
    site = SiteConfig(
        hosts=tuple(name for name, _, _ in hosts),
        upstreams=upstreams,
        mode=mode,
        balance=balance,
        hsts=hsts,
        hsts_explicit="hsts" in table,
        via=via,
        http2=http2,
        tls=tls,
        issuer=issuer,
        acme=settings,
        client_auth=client_auth,
    )
    return site, hosts


def _issuer(
    table: dict[str, object],
    at: At,
    base: Path | None,
    has_files: bool,
    hosts: list[tuple[str, str, At]],
    acme: tuple[_AcmeGiven, At] | None,
    http: bool,
) -> tuple[str, AcmeSettings | None]:
    """Where the site's certificate comes from; [acme] makes ACME every site's default.

    Files and an issuer are exclusive, and an explicit choice that contradicts another key is an
    error rather than a quiet winner: either way one of the two lines would be silently ignored.
    """
    issuer_at, acme_at = at.child("issuer"), at.child("acme")
    explicit = _choice(table["issuer"], _ISSUERS, issuer_at) if "issuer" in table else None
    own = _acme(table["acme"], acme_at, base, "a [site.acme] table") if "acme" in table else None
    if has_files and (explicit is not None or own is not None):
        drop = "issuer" if explicit is not None else "[site.acme]"
        raise (issuer_at if explicit is not None else acme_at).error(
            "a site gets its certificate from files or from an issuer, not both "
            f"(drop [site.tls] or {drop})"
        )
    if explicit == "internal" and own is not None:
        where = f" (line {issuer_at.line})" if issuer_at.line is not None else ""
        raise acme_at.error(
            f'[site.acme] is for issuer = "acme", and this site says issuer = "internal"{where}'
        )
    implied = not has_files and (own is not None or acme is not None)
    issuer = explicit or ("acme" if implied else "internal")
    if issuer == "internal":
        return issuer, None
    # A missing directory is reported at what made this an ACME site.
    if explicit is not None:
        missing_at = issuer_at
    elif own is not None:
        missing_at = acme_at
    else:
        assert acme is not None  # implied, without a table of its own
        missing_at = acme[1]
    settings = _acme_settings(
        _merge(acme[0] if acme else None, own),
        missing_at=missing_at,
        wildcards=[(name, name_at) for name, _, name_at in hosts if name.startswith("*.")],
        http=http,
        words=_FILE_WORDS,
        site=at,
    )
    return issuer, settings


def _sites(
    value: object,
    root: At,
    base: Path | None,
    acme: tuple[_AcmeGiven, At] | None,
    http: bool,
) -> tuple[SiteConfig, ...]:
    at = root.child("site")
    if value is None:
        raise root.error("at least one [[site]] is required (with hosts and upstream)")
    if isinstance(value, dict):
        raise at.error("expected [[site]] tables, got a single table ([site] instead of [[site]]?)")
    if not isinstance(value, list):
        raise at.error(f"expected [[site]] tables, got {show(value)}")
    if not value:
        raise at.error("at least one [[site]] is required (with hosts and upstream)")
    sites: list[SiteConfig] = []
    owners: dict[str, tuple[int, At]] = {}
    for index, item in enumerate(value):
        site_at = at.child(index)
        site, hosts = _site(table_value(item, site_at), site_at, base, acme, http)
        for name, written, host_at in hosts:
            owner = owners.setdefault(name, (index, host_at))
            if owner[0] != index:
                first = owner[1]
                where = f" (line {first.line})" if first.line is not None else ""
                raise host_at.error(f"{show(written)} is already served by site[{owner[0]}]{where}")
        sites.append(site)
    return tuple(sites)


def _parse(text: str, *, source: str, base: Path | None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise syntax_error(text, source, exc) from None
    except RecursionError:
        raise ConfigError(f"{source}: values are nested too deeply") from None
    root = At("", source, (), locator_for(text))
    _check_keys(data, _TOP_KEYS, root)
    server = _server(data.get("server", {}), root.child("server"), base)
    acme = None
    if "acme" in data:
        acme_at = root.child("acme")
        acme = (_acme(data["acme"], acme_at, base, "an [acme] table"), acme_at)
    sites = _sites(data.get("site"), root, base, acme, bool(server.http_listen))
    return Config(server=server, sites=sites, source=source)
