"""The zero-config form: ``serve --host NAME --to URL`` as a :class:`Config`.

It goes through the very checks the file uses, with positions that name the flag, so the two
ways of starting the edge cannot disagree about what is valid.
"""

from __future__ import annotations

from tlsgate.config.acme import _FLAG_WORDS, _acme_given, _acme_settings, _eab
from tlsgate.config.addresses import _hosts, _listeners, _listens, _upstreams, listen_value
from tlsgate.config.client_auth import _client_auth_given
from tlsgate.config.messages import At
from tlsgate.config.model import (
    CLIENT_AUTH_MODES,
    ClientAuth,
    Config,
    ListenAddress,
    ServerConfig,
    SiteConfig,
)
from tlsgate.config.values import _choice, _duration, _workers, path_value

#: The [site.client_auth] key each client-certificate flag stands for (the flag's own name is
#: what messages show).
_CLIENT_AUTH_FLAGS = {
    "trust": "--client-ca",
    "allow_spiffe": "--allow-spiffe",
    "allow_dns": "--allow-dns",
    "allow_cn": "--allow-cn",
    "allow_ou": "--allow-ou",
}


def from_flags(
    hosts: list[str],
    to: list[str],
    *,
    listen: list[str] | None = None,
    http_listen: list[str] | None = None,
    admin_listen: str | None = None,
    workers: int = 0,
    state: str | None = None,
    acme: str | None = None,
    acme_ca: str | None = None,
    email: list[str] | None = None,
    eab: str | None = None,
    challenges: list[str] | None = None,
    dns_hook: str | None = None,
    client_auth: str | None = None,
    client_ca: list[str] | None = None,
    allow_spiffe: list[str] | None = None,
    allow_dns: list[str] | None = None,
    allow_cn: list[str] | None = None,
    allow_ou: list[str] | None = None,
) -> Config:
    """The zero-config form: ``serve --host NAME... --to URL... [--listen ...]``.

    Every value goes through the same checks as the file, so the two forms cannot disagree about
    what is valid; messages name the flag instead of a file position. ``acme`` (the directory
    URL) makes the site's issuer ACME; the other ACME options mean nothing without it. In the
    same way ``client_auth`` ("optional" or "require") asks clients for certificates, and the
    trust and allow lists mean nothing without it.
    """
    host_at = At("--host")
    names = _hosts([(h, host_at) for h in hosts], host_at)
    to_at = At("--to")
    upstreams = _upstreams([(u, to_at) for u in to], to_at)
    listen_at, http_at, admin_at = At("--listen"), At("--http-listen"), At("--admin-listen")
    listen_given = None
    if listen is not None:
        listen_given = _listens([(a, listen_at) for a in listen], listen_at, required=True)
    # An empty --http-listen list is how a caller says "no plain HTTP port".
    http_given = None
    if http_listen is not None:
        http_given = _listens([(a, http_at) for a in http_listen], http_at, required=False)
    admin = None if admin_listen is None else listen_value(admin_listen, admin_at)
    listens, http_listens = _listeners(
        listen_given, listen_at, http_given, http_at, (admin, admin_at) if admin else None
    )
    server = ServerConfig(
        listen=listens,
        http_listen=http_listens,
        admin_listen=admin,
        workers=_workers(workers, At("--workers")),
        state=None if state is None else path_value(state, At("--state"), base=None),
    )
    options = {
        "directory": ("--acme", acme),
        "ca": ("--acme-ca", acme_ca),
        "email": ("--email", email),
        "eab": ("--eab", eab),
        "challenges": ("--challenge", challenges),
        "dns_hook": ("--dns-hook", dns_hook),
    }
    given = {key: (value, At(flag)) for key, (flag, value) in options.items() if value is not None}
    settings = None
    if acme is not None:
        settings = _acme_settings(
            _acme_given(given, base=None),
            missing_at=At("--acme"),
            wildcards=[(name, name_at) for name, _, name_at in names if name.startswith("*.")],
            http=bool(http_listens),
            words=_FLAG_WORDS,
        )
    elif given:
        _, first = next(iter(given.values()))
        raise first.error(
            "needs --acme DIRECTORY_URL (without it the certificate comes from the internal CA)"
        )
    lists = {
        "trust": client_ca,
        "allow_spiffe": allow_spiffe,
        "allow_dns": allow_dns,
        "allow_cn": allow_cn,
        "allow_ou": allow_ou,
    }
    site = SiteConfig(
        hosts=tuple(name for name, _, _ in names),
        upstreams=upstreams,
        issuer="internal" if settings is None else "acme",
        acme=settings,
        client_auth=_client_auth_flags(client_auth, lists),
    )
    return Config(server=server, sites=(site,))


def _client_auth_flags(mode: str | None, lists: dict[str, list[str] | None]) -> ClientAuth | None:
    """``--client-auth`` and its lists, through the file's own checks for [site.client_auth].

    An allow list without a mode that asks for certificates would read like protection that is
    not there, so it is an error here as in the file.
    """
    given: dict[str, tuple[object, At]] = {
        key: (value, At(_CLIENT_AUTH_FLAGS[key]))
        for key, value in lists.items()
        if value is not None
    }
    mode_at = At("--client-auth")
    if mode is not None:
        mode = _choice(mode, CLIENT_AUTH_MODES, mode_at)
    if mode is None or mode == "off":
        if given:
            _, first = next(iter(given.values()))
            if mode is None:
                raise first.error(
                    "needs --client-auth require or optional (without it no client certificate "
                    "is asked for)"
                )
            raise first.error("would be ignored with --client-auth off: use require or optional")
        return None
    return _client_auth_given({"mode": (mode, mode_at), **given}, (), None, _CLIENT_AUTH_FLAGS)


def parse_duration(text: str, flag: str) -> float:
    """One duration value ("90d", "12h", "30m", "60s") in seconds, checked like the file's."""
    return _duration(text, At(flag))


def parse_listen(text: str, flag: str) -> ListenAddress:
    """One ``HOST:PORT`` command-line value, with the same checks and messages as the file's."""
    return listen_value(text, At(flag))


def eab_key(text: str, flag: str = "--eab") -> tuple[str, bytes]:
    """One ``KEY_ID:BASE64URL_MAC_KEY`` value (the form CAs hand out): the key id and MAC key.

    The same check as the file's ``eab``, for every command that takes one (``serve``,
    ``cert obtain``, ``ca serve``); a message names the key id, never the key.
    """
    return _eab(text, At(flag))
