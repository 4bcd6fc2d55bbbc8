"""tlsgate.toml -> Config (tlsgate.config.parse): the documented example, tables, junk, load()."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tlsgate.config import (
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
    Upstream,
    load,
    loads,
)
from tlsgate.errors import ConfigError
from tlsgate.mtls.policy import AllowList, PathRule

from .helpers import LEAVES, SITE, docstring_example, toml_value

# ---------------------------------------------------------------------------------------------
# The documented example
# ---------------------------------------------------------------------------------------------


def test_docstring_example_parses_into_the_documented_values() -> None:
    assert loads(docstring_example()) == Config(
        server=ServerConfig(
            listen=(ListenAddress("0.0.0.0", 443),),
            http_listen=(ListenAddress("0.0.0.0", 80),),
            admin_listen=ListenAddress("127.0.0.1", 9100),
            workers=0,
            trusted_proxies=(ipaddress.IPv4Network("10.0.0.0/8"),),
            access_log="stdout",
            state=Path("/var/lib/tlsgate"),
            timeouts=Timeouts(
                handshake=10, header=15, idle=75, upstream_connect=5, upstream_response=60, drain=30
            ),
            limits=Limits(max_header_bytes=32768, max_headers=100, max_body_bytes=None),
        ),
        sites=(
            SiteConfig(
                hosts=("example.com", "*.example.com"),
                upstreams=(Upstream("127.0.0.1", 8000), Upstream("127.0.0.1", 8001)),
                balance="round_robin",
                hsts=HstsPolicy(),
                hsts_explicit=True,
                via=False,
                tls=TlsFiles(
                    cert=Path("/etc/ssl/example/fullchain.pem"),
                    key=Path("/etc/ssl/example/key.pem"),
                ),
            ),
            SiteConfig(
                hosts=("api.example.net",),
                upstreams=(Upstream("::1", 9000),),
                hsts=HstsPolicy(max_age=31536000, include_subdomains=True),
                hsts_explicit=True,
                issuer="acme",
                acme=AcmeSettings(
                    directory="https://acme-v02.api.letsencrypt.org/directory",
                    email=("api@example.net", "ops@example.com"),
                    challenges=("http-01", "tls-alpn-01"),
                    dns_wait=0.0,
                ),
            ),
            SiteConfig(
                hosts=("intranet.example.net",),
                upstreams=(Upstream("127.0.0.1", 7000),),
                issuer="internal",
                client_auth=ClientAuth(
                    mode="require",
                    crl_refresh=300.0,
                    allow=AllowList(
                        spiffe=("spiffe://example.net/ns/prod/*",), dns=("*.svc.example.net",)
                    ),
                    paths=(PathRule("/admin", AllowList(cn=("ops",))),),
                    forward="sanitize_set",
                ),
            ),
        ),
        source="tlsgate.toml",
    )


def test_the_example_values_are_the_defaults_where_it_says_so() -> None:
    """The example doubles as the list of defaults; if a default moves, the docs must follow."""
    server = loads(docstring_example()).server
    defaults = ServerConfig()
    assert server.timeouts == defaults.timeouts
    assert server.limits == defaults.limits
    assert (server.listen, server.http_listen) == (defaults.listen, defaults.http_listen)
    # challenges and dns_wait are written as their defaults: leaving them out changes nothing.
    text = docstring_example()
    for line in (
        'challenges = ["http-01", "tls-alpn-01"]',
        "dns_wait = 0 ",
        'crl_refresh = "5m" ',
        'forward = "sanitize_set" ',
    ):
        assert text.count(line) == 1
        text = "\n".join(row for row in text.splitlines() if not row.startswith(line))
    assert loads(text) == loads(docstring_example())


def test_minimal_config_gets_the_defaults() -> None:
    cfg = loads(SITE)
    assert cfg.server == ServerConfig()
    assert cfg.sites == (
        SiteConfig(hosts=("example.com",), upstreams=(Upstream("127.0.0.1", 8000),)),
    )
    assert cfg.sites[0].hsts is None and not cfg.sites[0].hsts_explicit


# ---------------------------------------------------------------------------------------------
# Accepted tables and values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "policy"),
    [
        ("true", HstsPolicy(max_age=DEFAULT_HSTS_MAX_AGE)),
        ("false", None),
        ("0", HstsPolicy(max_age=0)),  # how a site tells browsers to forget HSTS
        ("300", HstsPolicy(max_age=300)),
        ("{}", HstsPolicy()),
        ("{ include_subdomains = true }", HstsPolicy(include_subdomains=True)),
        (
            "{ max_age = 31536000, include_subdomains = true, preload = true }",
            HstsPolicy(max_age=31536000, include_subdomains=True, preload=True),
        ),
    ],
)
def test_hsts_forms(written: str, policy: HstsPolicy | None) -> None:
    site = loads(SITE + f"hsts = {written}\n").sites[0]
    assert (site.hsts, site.hsts_explicit) == (policy, True)


def test_hsts_as_a_sub_table() -> None:
    site = loads(SITE + "[site.hsts]\nmax_age = 600\n").sites[0]
    assert site.hsts == HstsPolicy(max_age=600)
    assert site.hsts.header_value() == b"max-age=600"


def test_timeouts_limits_workers_and_balance() -> None:
    text = (
        "[server]\nworkers = 4\n"
        "[server.timeouts]\nhandshake = 2.5\nidle = 1\n"
        "[server.limits]\nmax_body_bytes = 1048576\nmax_headers = 50\n" + SITE
    )
    text += 'balance = "least_conn"\nvia = true\n'
    cfg = loads(text)
    assert cfg.server.workers == 4
    assert cfg.server.timeouts == Timeouts(handshake=2.5, idle=1.0)
    assert isinstance(cfg.server.timeouts.idle, float)
    assert cfg.server.limits == Limits(max_body_bytes=1048576, max_headers=50)
    assert (cfg.sites[0].balance, cfg.sites[0].via) == ("least_conn", True)


def test_max_connections_per_worker() -> None:
    """Recycling is off unless asked for; 0 says "never" explicitly; a count is a whole number."""
    assert loads(SITE).server.max_connections_per_worker == 0
    cfg = loads("[server]\nmax_connections_per_worker = 50000\n" + SITE)
    assert cfg.server.max_connections_per_worker == 50000
    assert loads("[server]\nmax_connections_per_worker = 0\n" + SITE).server == loads(SITE).server
    for bad in ("-1", "1.5", '"many"', "true"):
        with pytest.raises(ConfigError, match="max_connections_per_worker"):
            loads(f"[server]\nmax_connections_per_worker = {bad}\n" + SITE)


def test_dotted_and_inline_forms_mean_the_same() -> None:
    headers = (
        "[server]\n[server.timeouts]\nidle = 5\n" + SITE + "[site.tls]\ncert = 'c'\nkey = 'k'\n"
    )
    dotted = "[server]\ntimeouts.idle = 5\n" + SITE + "tls.cert = 'c'\ntls.key = 'k'\n"
    inline = "server = { timeouts = { idle = 5 } }\nsite = [\n"
    inline += "  { hosts = 'example.com', upstream = '127.0.0.1:8000',"
    inline += " tls = { cert = 'c', key = 'k' } },\n]\n"
    assert loads(headers) == loads(dotted) == loads(inline)


# ---------------------------------------------------------------------------------------------
# Junk never escapes as anything but ConfigError
# ---------------------------------------------------------------------------------------------

_ANY_VALUE = st.recursive(
    st.one_of(
        LEAVES,
        st.floats(),  # nan and inf too
        st.sampled_from(
            [
                ":443",
                "[::]:0",
                "http://[::1]:80",
                "https://x",
                "~",
                "~nosuchuser_tlsgate/x",
                "10.0.0.0/8",
                "::1",
                "*.example.com",
                "example.com",
                "0",
                "round_robin",
                "stdout",
            ]
        ),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)

#: The ACME keys and the TOML types each may accept.
_ACME_TYPES: dict[str, tuple[type, ...]] = {
    "directory": (str,),
    "email": (str, list),
    "eab": (str, dict),
    "challenges": (str, list),
    "ca": (str,),
    "dns_hook": (str,),
    "dns_wait": (int, float),
    "profile": (str,),
}


_REQUIRE = '[site.client_auth]\nmode = "require"\n'
#: The [site.client_auth] keys (but mode) and the TOML types each may accept.
_CLIENT_AUTH_TYPES: dict[str, tuple[type, ...]] = {
    "mode": (str,),
    "trust": (str, list),
    "crl": (str, list),
    "crl_refresh": (str, int, float),
    "allow_spiffe": (str, list),
    "allow_dns": (str, list),
    "allow_cn": (str, list),
    "allow_ou": (str, list),
    "forward": (str,),
    "path": (list,),
}
_PATH_RULE_TYPES: dict[str, tuple[type, ...]] = {
    "prefix": (str,),
    "allow_spiffe": (str, list),
    "allow_dns": (str, list),
    "allow_cn": (str, list),
    "allow_ou": (str, list),
    "require_certificate": (bool,),
}


def _client_auth_table(key: str) -> str:
    """[site.client_auth] with what KEY needs to be looked at (a mode, and trust for crl)."""
    if key == "mode":
        return "[site.client_auth]\n"
    return _REQUIRE + ("trust = 'ca.pem'\n" if key == "crl" else "")


def _acme_template(where: str, key: str) -> str:
    """KEY = VALUE in [acme] or [site.acme], with what the rest needs (a directory, a hook)."""
    lines = [
        f"{k} = {v}" for k, v in (("directory", '"https://ca.example/d"'), ("dns_hook", '"h"'))
    ]
    table = "\n".join([f"[{where}]", *(line for line in lines if not line.startswith(key))])
    table += f"\n{key} = VALUE\n"
    return table + SITE if where == "acme" else SITE + table


#: Every key, a document with VALUE in its place, and the TOML types it may ever accept.
KEYS: dict[str, tuple[str, tuple[type, ...]]] = {
    "server": ("server = VALUE\n" + SITE, (dict,)),
    "site": ("site = VALUE\n", (list,)),
    "server.listen": ("[server]\nlisten = VALUE\n" + SITE, (str, list)),
    "server.http_listen": ("[server]\nhttp_listen = VALUE\n" + SITE, (str, list, bool)),
    "server.admin_listen": ("[server]\nadmin_listen = VALUE\n" + SITE, (str, bool)),
    "server.workers": ("[server]\nworkers = VALUE\n" + SITE, (int,)),
    "server.trusted_proxies": ("[server]\ntrusted_proxies = VALUE\n" + SITE, (str, list)),
    "server.access_log": ("[server]\naccess_log = VALUE\n" + SITE, (str,)),
    "server.ticket_rotation": ("[server]\nticket_rotation = VALUE\n" + SITE, (str, int, float)),
    "server.store_poll": ("[server]\nstore_poll = VALUE\n" + SITE, (str, int, float)),
    "server.max_connections_per_worker": (
        "[server]\nmax_connections_per_worker = VALUE\n" + SITE,
        (int,),
    ),
    "server.state": ("[server]\nstate = VALUE\n" + SITE, (str,)),
    "server.store": ("[server]\nstore = VALUE\n" + SITE, (str,)),
    "server.timeouts": ("[server]\ntimeouts = VALUE\n" + SITE, (dict,)),
    "server.limits": ("[server]\nlimits = VALUE\n" + SITE, (dict,)),
    **{
        f"server.timeouts.{key}": (f"[server.timeouts]\n{key} = VALUE\n" + SITE, (int, float))
        for key in ("handshake", "header", "idle", "upstream_connect", "upstream_response", "drain")
    },
    **{
        f"server.limits.{key}": (f"[server.limits]\n{key} = VALUE\n" + SITE, (int,))
        for key in ("max_header_bytes", "max_headers", "max_body_bytes")
    },
    "site.hosts": ('[[site]]\nhosts = VALUE\nupstream = "127.0.0.1:8000"\n', (str, list)),
    "site.upstream": ('[[site]]\nhosts = "example.com"\nupstream = VALUE\n', (str, list)),
    "site.balance": (SITE + "balance = VALUE\n", (str,)),
    "site.hsts": (SITE + "hsts = VALUE\n", (bool, int, dict)),
    "site.hsts.max_age": (SITE + "hsts = { max_age = VALUE }\n", (int,)),
    "site.hsts.include_subdomains": (SITE + "hsts = { include_subdomains = VALUE }\n", (bool,)),
    "site.hsts.preload": (
        SITE + "hsts = { include_subdomains = true, preload = VALUE }\n",
        (bool,),
    ),
    "site.via": (SITE + "via = VALUE\n", (bool,)),
    "site.tls": (SITE + "tls = VALUE\n", (dict,)),
    "site.tls.cert": (SITE + '[site.tls]\ncert = VALUE\nkey = "k.pem"\n', (str,)),
    "site.tls.key": (SITE + '[site.tls]\ncert = "c.pem"\nkey = VALUE\n', (str,)),
    "site.tls.ocsp_stapling": (
        SITE + '[site.tls]\ncert = "c.pem"\nkey = "k.pem"\nocsp_stapling = VALUE\n',
        (bool,),
    ),
    "site.issuer": (SITE + "issuer = VALUE\n", (str,)),
    "acme": ("acme = VALUE\n" + SITE, (dict,)),
    "site.acme": (SITE + "acme = VALUE\n", (dict,)),
    **{
        f"{where}.{key}": (_acme_template(where, key), accepted)
        for where in ("acme", "site.acme")
        for key, accepted in _ACME_TYPES.items()
    },
    "site.client_auth": (SITE + "client_auth = VALUE\n", (dict,)),
    **{
        f"site.client_auth.{key}": (
            SITE + _client_auth_table(key) + f"{key} = VALUE\n",
            accepted,
        )
        for key, accepted in _CLIENT_AUTH_TYPES.items()
    },
    **{
        f"site.client_auth.path.{key}": (
            SITE
            + _REQUIRE.replace("require", "optional")
            + "[[site.client_auth.path]]\n"
            + ("" if key == "prefix" else "prefix = '/a'\n")
            + f"{key} = VALUE\n",
            accepted,
        )
        for key, accepted in _PATH_RULE_TYPES.items()
    },
    "acme.eab.kid": (
        '[acme]\ndirectory = "https://ca.example/d"\neab = { kid = VALUE, hmac = "AAAA" }\n' + SITE,
        (str,),
    ),
    "acme.eab.hmac": (
        '[acme]\ndirectory = "https://ca.example/d"\neab = { kid = "k", hmac = VALUE }\n' + SITE,
        (str,),
    ),
}


def test_every_schema_key_is_fuzzed() -> None:
    tables: dict[str, Any] = {
        "server": ServerConfig,
        "server.timeouts": Timeouts,
        "server.limits": Limits,
        "site.hsts": HstsPolicy,
        "site.tls": TlsFiles,
        "acme": AcmeSettings,
        "site.acme": AcmeSettings,
    }
    for prefix, cls in tables.items():
        for f in dataclasses.fields(cls):
            assert f"{prefix}.{f.name}" in KEYS, f.name
    site_keys = {"hosts", "upstream", "balance", "hsts", "via", "tls", "issuer", "acme"}
    assert {f"site.{k}" for k in site_keys | {"client_auth"}} <= KEYS.keys()
    # allow and paths are written as allow_* and [[path]]; the rest by their own names.
    for f in dataclasses.fields(ClientAuth):
        if f.name not in ("allow", "paths"):
            assert f"site.client_auth.{f.name}" in KEYS, f.name
    for key in ("allow_spiffe", "allow_dns", "allow_cn", "allow_ou", "path"):
        assert f"site.client_auth.{key}" in KEYS, key
    for f in dataclasses.fields(PathRule):
        if f.name != "allow":
            assert f"site.client_auth.path.{f.name}" in KEYS, f.name


@pytest.mark.parametrize("key", sorted(KEYS))
@settings(max_examples=60, deadline=None)
@given(value=_ANY_VALUE)
@example(value=True)
@example(value=1)
@example(value=float("nan"))
@example(value=[])
@example(value={})
def test_junk_values_give_config_errors_with_a_line(key: str, value: object) -> None:
    template, accepted = KEYS[key]
    text = template.replace("VALUE", toml_value(value))
    try:
        loads(text)
    except ConfigError as exc:
        # Every key in these documents is written down, so every message has a line.
        assert re.match(r"tlsgate\.toml:\d+: ", str(exc)), str(exc)
    else:
        assert type(value) in accepted, f"{key} accepted {value!r}"


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=0),
    st.integers(min_value=0, max_value=4),
    st.text(alphabet="[]{}\"'=.,#\n \\abx1:", max_size=6),
)
def test_edited_example_never_raises_anything_but_config_error(
    position: int, delete: int, insert: str
) -> None:
    text = docstring_example()
    position %= len(text) + 1
    edited = text[:position] + insert + text[position + delete :]
    try:
        cfg = loads(edited)
    except ConfigError:
        return
    assert isinstance(cfg, Config)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_never_raises_anything_but_config_error(text: str) -> None:
    try:
        loads(text)
    except ConfigError:
        pass


# ---------------------------------------------------------------------------------------------
# load(): files and relative paths
# ---------------------------------------------------------------------------------------------


def test_load_resolves_paths_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    conf = tmp_path / "etc"
    conf.mkdir()
    (conf / "tlsgate.toml").write_text(
        '[server]\nstate = "state"\naccess_log = "logs/access.jsonl"\n'
        + SITE
        + '[site.tls]\ncert = "certs/site.pem"\nkey = "~/keys/site.key"\n'
        + SITE.replace("example.com", "other.example")
        + '[site.tls]\ncert = "/abs/other.pem"\nkey = "../other.key"\n'
    )
    monkeypatch.chdir(tmp_path)  # a relative config path still anchors at its own directory
    cfg = load(Path("etc/tlsgate.toml"))
    assert cfg.source == "etc/tlsgate.toml"
    assert cfg.server.state == conf / "state"
    assert cfg.server.access_log == str(conf / "logs/access.jsonl")
    assert cfg.sites[0].tls == TlsFiles(conf / "certs/site.pem", home / "keys/site.key")
    assert cfg.sites[1].tls == TlsFiles(Path("/abs/other.pem"), conf / "../other.key")
    assert cfg.server.state is not None and cfg.server.state.is_absolute()


def test_load_does_not_check_that_files_exist(tmp_path: Path) -> None:
    path = tmp_path / "tlsgate.toml"
    path.write_text(SITE + '[site.tls]\ncert = "missing.pem"\nkey = "missing.key"\n')
    tls = load(path).sites[0].tls
    assert tls is not None and not tls.cert.exists()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tlsgate.toml"
    path.write_text(SITE + 'balance = "fastest"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == (
        f'{path}:4: site[0].balance: expected "round_robin" or "least_conn", got \'fastest\''
    )


def test_load_accepts_a_utf8_bom(tmp_path: Path) -> None:
    path = tmp_path / "tlsgate.toml"
    path.write_bytes(b"\xef\xbb\xbf" + SITE.encode())
    assert load(path).sites[0].hosts == ("example.com",)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "{path}: no such file"),
        ("directory", "cannot read {path}: Is a directory"),
        ("latin1", "{path}: not UTF-8 text (byte 17)"),
    ],
)
def test_load_file_problems(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "tlsgate.toml"
    if setup == "directory":
        path.mkdir()
    elif setup == "latin1":
        path.write_bytes(b'[[site]]\nhosts="b\xfccher.example"\n')
    with pytest.raises(ConfigError) as info:
        load(path)
    assert str(info.value) == message.format(path=path)


def test_store_is_a_database_url_or_a_directory() -> None:
    url = "postgresql://tlsgate:pw@db.example/tlsgate"
    assert loads(f'[server]\nstore = "{url}"\n' + SITE).server.store == url
    assert loads('[server]\nstore = "/var/lib/tlsgate"\n' + SITE).server.store == "/var/lib/tlsgate"
    with pytest.raises(ConfigError, match=r"server\.store: unsupported store redis://"):
        loads('[server]\nstore = "redis://x"\n' + SITE)
    with pytest.raises(ConfigError, match=r'give "state" \(a directory\) or "store", not both'):
        loads(f'[server]\nstate = "/s"\nstore = "{url}"\n' + SITE)
