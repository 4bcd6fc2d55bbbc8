"""tlsgate.toml and the zero-config flags (tlsgate.config).

A proxy config is read by a person under pressure, so every error here is asserted verbatim,
FILE:LINE included: a message that points at the wrong line is a bug like any other.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
import textwrap
import tomllib
from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tlsgate import config
from tlsgate.config import (
    DEFAULT_HSTS_MAX_AGE,
    Config,
    HstsPolicy,
    Limits,
    ListenAddress,
    ServerConfig,
    SiteConfig,
    Timeouts,
    TlsFiles,
    Upstream,
    from_flags,
    load,
    loads,
)
from tlsgate.errors import ConfigError

#: The smallest valid document: three lines, so the lines after it are easy to count.
SITE = '[[site]]\nhosts = "example.com"\nupstream = "127.0.0.1:8000"\n'


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        loads(text)
    return str(info.value)


def docstring_example() -> str:
    """The example in the module docstring, so the documentation is tested, not just read."""
    doc = config.__doc__
    assert doc is not None
    _, marker, rest = doc.partition("Example::\n")
    assert marker
    block: list[str] = []
    for line in rest.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        block.append(line)
    return textwrap.dedent("\n".join(block)).strip() + "\n"


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


def test_minimal_config_gets_the_defaults() -> None:
    cfg = loads(SITE)
    assert cfg.server == ServerConfig()
    assert cfg.sites == (
        SiteConfig(hosts=("example.com",), upstreams=(Upstream("127.0.0.1", 8000),)),
    )
    assert cfg.sites[0].hsts is None and not cfg.sites[0].hsts_explicit


# ---------------------------------------------------------------------------------------------
# Accepted values
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "address"),
    [
        ('"0.0.0.0:443"', ListenAddress("0.0.0.0", 443)),
        ('":8443"', ListenAddress("0.0.0.0", 8443)),
        ('"[::]:443"', ListenAddress("::", 443)),
        ('"[0:0::1]:443"', ListenAddress("::1", 443)),
        ('"127.0.0.1:0"', ListenAddress("127.0.0.1", 0)),  # any free port, for tests
        ('"LocalHost:8443"', ListenAddress("localhost", 8443)),
        ('"127.0.0.1:065535"', ListenAddress("127.0.0.1", 65535)),
    ],
)
def test_listen_forms(written: str, address: ListenAddress) -> None:
    assert loads(f"[server]\nlisten = {written}\n" + SITE).server.listen == (address,)


def test_listen_lists_and_turning_listeners_off() -> None:
    cfg = loads('[server]\nlisten = [":443", "[::]:443"]\nhttp_listen = false\n' + SITE)
    assert cfg.server.listen == (ListenAddress("0.0.0.0", 443), ListenAddress("::", 443))
    assert cfg.server.http_listen == ()
    assert loads("[server]\nhttp_listen = []\n" + SITE).server.http_listen == ()
    assert loads("[server]\nadmin_listen = false\n" + SITE).server.admin_listen is None
    assert loads('[server]\nadmin_listen = "[::1]:9100"\n' + SITE).server.admin_listen == (
        ListenAddress("::1", 9100)
    )


def test_port_zero_may_repeat() -> None:
    """Every port-0 socket gets its own port, so repeating one is no conflict."""
    text = '[server]\nlisten = "127.0.0.1:0"\nhttp_listen = "127.0.0.1:0"\n' + SITE
    assert loads(text).server.http_listen == (ListenAddress("127.0.0.1", 0),)


@pytest.mark.parametrize(
    ("written", "upstream"),
    [
        ("http://127.0.0.1:8000", Upstream("127.0.0.1", 8000)),
        ("http://backend", Upstream("backend", 80)),
        ("HTTP://Backend.Internal:8080/", Upstream("backend.internal", 8080)),
        ("http://[::1]:8000", Upstream("::1", 8000)),
        ("http://[::1]", Upstream("::1", 80)),
        ("127.0.0.1:8000", Upstream("127.0.0.1", 8000)),
        ("[::1]:9000", Upstream("::1", 9000)),
        ("app", Upstream("app", 80)),
    ],
)
def test_upstream_forms(written: str, upstream: Upstream) -> None:
    text = f'[[site]]\nhosts = "example.com"\nupstream = "{written}"\n'
    assert loads(text).sites[0].upstreams == (upstream,)


def test_upstream_str_brackets_ipv6() -> None:
    assert str(Upstream("::1", 8000)) == "http://[::1]:8000"
    assert str(Upstream("127.0.0.1", 8000)) == "http://127.0.0.1:8000"


def test_hosts_are_canonical_and_deduplicated_within_a_site() -> None:
    text = '[[site]]\nhosts = ["Example.COM.", "bücher.example", "*.Example.com", "example.com"]\n'
    text += 'upstream = "a:1"\n'
    assert loads(text).sites[0].hosts == ("example.com", "xn--bcher-kva.example", "*.example.com")


def test_a_wildcard_and_a_name_under_it_may_be_different_sites() -> None:
    text = SITE.replace('"example.com"', '"*.example.com"') + SITE.replace("example", "a.example")
    assert [s.hosts for s in loads(text).sites] == [("*.example.com",), ("a.example.com",)]


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


def test_trusted_proxies_bare_addresses_become_single_host_networks() -> None:
    text = '[server]\ntrusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::1", "fd00::/8"]\n'
    assert loads(text + SITE).server.trusted_proxies == (
        ipaddress.IPv4Network("10.0.0.0/8"),
        ipaddress.IPv4Network("192.0.2.7/32"),
        ipaddress.IPv6Network("2001:db8::1/128"),
        ipaddress.IPv6Network("fd00::/8"),
    )


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


def test_dotted_and_inline_forms_mean_the_same() -> None:
    headers = (
        "[server]\n[server.timeouts]\nidle = 5\n" + SITE + "[site.tls]\ncert = 'c'\nkey = 'k'\n"
    )
    dotted = "[server]\ntimeouts.idle = 5\n" + SITE + "tls.cert = 'c'\ntls.key = 'k'\n"
    inline = "server = { timeouts = { idle = 5 } }\nsite = [\n"
    inline += "  { hosts = 'example.com', upstream = '127.0.0.1:8000',"
    inline += " tls = { cert = 'c', key = 'k' } },\n]\n"
    assert loads(headers) == loads(dotted) == loads(inline)


def test_loads_keeps_relative_paths_relative() -> None:
    text = '[server]\nstate = "state"\naccess_log = "log/access.jsonl"\n' + SITE
    text += '[site.tls]\ncert = "c.pem"\nkey = "/abs/k.pem"\n'
    cfg = loads(text)
    assert cfg.server.state == Path("state")
    assert cfg.server.access_log == "log/access.jsonl"
    assert cfg.sites[0].tls == TlsFiles(Path("c.pem"), Path("/abs/k.pem"))


def test_access_log_keywords_are_not_paths(tmp_path: Path) -> None:
    for keyword in ("stdout", "off"):
        path = tmp_path / f"{keyword}.toml"
        path.write_text(f'[server]\naccess_log = "{keyword}"\n' + SITE)
        assert load(path).server.access_log == keyword


# ---------------------------------------------------------------------------------------------
# Syntax errors: FILE:LINE:COL and tomllib's own words
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server\n", "tlsgate.toml:1:8: Expected ']' at the end of a table declaration"),
        ('[server]\nlisten = "x\n', "tlsgate.toml:2:12: Illegal character '\\n'"),
        (SITE + 'hosts = "x"\n', "tlsgate.toml:4:12: Cannot overwrite a value"),
        ("[server]\nlisten = \n\n\n", "tlsgate.toml:2:10: Invalid value"),
        # tomllib says "at end of document"; that becomes the position after the last thing written.
        ("[server]\nlisten = ", "tlsgate.toml:2:9: Invalid value"),
        ('[server]\nlisten = [":443",\n', "tlsgate.toml:2:18: Invalid value"),
        ("a = 1\n\x00", "tlsgate.toml:2:1: Invalid statement"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    assert error(text) == message


def test_syntax_error_uses_the_given_source_name() -> None:
    with pytest.raises(ConfigError, match=r"^/etc/tlsgate\.toml:1:8: Expected"):
        loads("[server\n", source="/etc/tlsgate.toml")


def test_absurd_nesting_is_a_config_error() -> None:
    assert error("x = " + "[" * 5000 + "]" * 5000) == "tlsgate.toml: values are nested too deeply"


# ---------------------------------------------------------------------------------------------
# Semantic errors: FILE:LINE of the key (or of its table when the key is missing)
# ---------------------------------------------------------------------------------------------

ERRORS: list[tuple[str, str]] = [
    # -- document ---------------------------------------------------------------------------
    ("", "tlsgate.toml: at least one [[site]] is required (with hosts and upstream)"),
    (
        "[server]\nworkers = 2\n",
        "tlsgate.toml: at least one [[site]] is required (with hosts and upstream)",
    ),
    (
        "site = []\n",
        "tlsgate.toml:1: site: at least one [[site]] is required (with hosts and upstream)",
    ),
    (
        '[site]\nhosts = "example.com"\n',
        "tlsgate.toml:1: site: expected [[site]] tables, got a single table"
        " ([site] instead of [[site]]?)",
    ),
    ("site = 5\n", "tlsgate.toml:1: site: expected [[site]] tables, got 5"),
    ("site = [1]\n", "tlsgate.toml:1: site[0]: expected a table, got 1"),
    ("server = 1\n" + SITE, "tlsgate.toml:1: server: expected a [server] table, got 1"),
    ("[sites]\n" + SITE, "tlsgate.toml:1: sites: unknown key (did you mean 'site'?)"),
    (SITE + "[proxy]\n", "tlsgate.toml:4: proxy: unknown key (known keys: server, site)"),
    (
        'listen = ":443"\n' + SITE,
        "tlsgate.toml:1: listen: unknown key (listen belongs in [server])",
    ),
    # -- [server] ---------------------------------------------------------------------------
    (
        '[server]\nlisten = [":443"]\ntrusted_proxy = []\n' + SITE,
        "tlsgate.toml:3: server.trusted_proxy: unknown key (did you mean 'trusted_proxies'?)",
    ),
    (
        "[server]\nbind = 1\n" + SITE,
        "tlsgate.toml:2: server.bind: unknown key (known keys: listen, http_listen, admin_listen, "
        "workers, trusted_proxies, access_log, state, timeouts, limits)",
    ),
    (
        "[server]\nhosts = []\n" + SITE,
        "tlsgate.toml:2: server.hosts: unknown key (hosts belongs in [[site]])",
    ),
    (
        '[server]\nlisten = "0.0.0.0"\n' + SITE,
        "tlsgate.toml:2: server.listen: '0.0.0.0': a listen address needs a port: "
        "HOST:PORT, [IPv6]:PORT or :PORT",
    ),
    (
        '[server]\nlisten = "::1:443"\n' + SITE,
        "tlsgate.toml:2: server.listen: '::1:443': "
        "an IPv6 address goes in brackets, like [::1]:8443",
    ),
    (
        '[server]\nlisten = "[::1:443"\n' + SITE,
        "tlsgate.toml:2: server.listen: '[::1:443': missing ']' after the IPv6 address",
    ),
    (
        '[server]\nlisten = "[::1]443"\n' + SITE,
        "tlsgate.toml:2: server.listen: '[::1]443': expected ':PORT' after ']'",
    ),
    (
        '[server]\nlisten = "[10.0.0.1]:443"\n' + SITE,
        "tlsgate.toml:2: server.listen: '[10.0.0.1]:443': "
        "'10.0.0.1' in brackets is not an IPv6 address",
    ),
    (
        '[server]\nlisten = ":70000"\n' + SITE,
        "tlsgate.toml:2: server.listen: ':70000': port 70000 is out of range 0-65535"
        " (0 = any free port)",
    ),
    (
        '[server]\nlisten = ":https"\n' + SITE,
        "tlsgate.toml:2: server.listen: ':https': port 'https' is not a number",
    ),
    (
        '[server]\nlisten = "*:443"\n' + SITE,
        "tlsgate.toml:2: server.listen: '*:443': '*': wildcards are not allowed here",
    ),
    (
        "[server]\nlisten = []\n" + SITE,
        "tlsgate.toml:2: server.listen: at least one address is required",
    ),
    (
        "[server]\nlisten = false\n" + SITE,
        'tlsgate.toml:2: server.listen: expected "HOST:PORT" or a list of them, got false',
    ),
    (
        "[server]\nlisten = 443\n" + SITE,
        'tlsgate.toml:2: server.listen: expected "HOST:PORT" or a list of them, got 443',
    ),
    (
        '[server]\nlisten = [\n  ":443",\n  443,\n]\n' + SITE,
        'tlsgate.toml:4: server.listen[1]: expected a "HOST:PORT" string, got 443',
    ),
    (
        "[server]\nhttp_listen = true\n" + SITE,
        'tlsgate.toml:2: server.http_listen: expected "HOST:PORT" or a list of them '
        "(or false to turn it off), got true",
    ),
    (
        "[server]\nadmin_listen = true\n" + SITE,
        'tlsgate.toml:2: server.admin_listen: expected "HOST:PORT" or false, got true',
    ),
    (
        '[server]\nlisten = ":8080"\nhttp_listen = "0.0.0.0:8080"\n' + SITE,
        "tlsgate.toml:3: server.http_listen: 0.0.0.0:8080 is already used by server.listen"
        " (line 2)",
    ),
    (
        # A clash with a default is reported where the other address was written.
        '[server]\nadmin_listen = ":80"\n' + SITE,
        "tlsgate.toml:2: server.admin_listen: 0.0.0.0:80 is already the default of "
        "server.http_listen; give server.http_listen a different value",
    ),
    (
        '[server]\nworkers = 1\nlisten = ":80"\n' + SITE,
        "tlsgate.toml:3: server.listen: 0.0.0.0:80 is already the default of server.http_listen; "
        "give server.http_listen a different value",
    ),
    (
        '[server]\nlisten = [":443", "0.0.0.0:443"]\n' + SITE,
        "tlsgate.toml:2: server.listen[1]: 0.0.0.0:443 is already used by server.listen[0]"
        " (line 2)",
    ),
    (
        "[server]\nworkers = -1\n" + SITE,
        "tlsgate.toml:2: server.workers: -1 is negative; 0 means one worker per core",
    ),
    (
        "[server]\nworkers = true\n" + SITE,
        "tlsgate.toml:2: server.workers: expected a whole number of worker processes, got true",
    ),
    (
        "[server]\nworkers = 2.0\n" + SITE,
        "tlsgate.toml:2: server.workers: expected a whole number of worker processes, got 2.0",
    ),
    (
        '[server]\ntrusted_proxies = ["10.0.0.1/8"]\n' + SITE,
        "tlsgate.toml:2: server.trusted_proxies[0]: '10.0.0.1/8' has host bits set"
        " (did you mean 10.0.0.0/8?)",
    ),
    (
        '[server]\ntrusted_proxies = ["10.0.0.0/8", "lb.internal"]\n' + SITE,
        "tlsgate.toml:2: server.trusted_proxies[1]: 'lb.internal' is not an IP address "
        "or a CIDR range like 10.0.0.0/8",
    ),
    (
        "[server]\ntrusted_proxies = [10]\n" + SITE,
        "tlsgate.toml:2: server.trusted_proxies[0]: expected an address or CIDR range as a "
        "string, got 10",
    ),
    (
        "[server]\ntrusted_proxies = true\n" + SITE,
        "tlsgate.toml:2: server.trusted_proxies: "
        "expected a list of strings (addresses or CIDR ranges), got true",
    ),
    (
        '[server]\naccess_log = ""\n' + SITE,
        'tlsgate.toml:2: server.access_log: expected "stdout", "off" or a file path, got \'\'',
    ),
    (
        "[server]\naccess_log = false\n" + SITE,
        'tlsgate.toml:2: server.access_log: expected "stdout", "off" or a file path, got false',
    ),
    (
        "[server]\nstate = 1\n" + SITE,
        "tlsgate.toml:2: server.state: expected a path as a string, got 1",
    ),
    (
        '[server]\nstate = ""\n' + SITE,
        "tlsgate.toml:2: server.state: expected a path, got an empty string",
    ),
    (
        '[server]\nstate = "a\\u0000b"\n' + SITE,
        "tlsgate.toml:2: server.state: 'a\\x00b': a path cannot contain a NUL character",
    ),
    # -- [server.timeouts] / [server.limits], as headers, dotted keys and inline tables -----
    (
        '[server.timeouts]\nidle = "75s"\n' + SITE,
        "tlsgate.toml:2: server.timeouts.idle: expected a number of seconds, got '75s'",
    ),
    (
        "[server.timeouts]\nheader = true\n" + SITE,
        "tlsgate.toml:2: server.timeouts.header: expected a number of seconds, got true",
    ),
    (
        "[server.timeouts]\ndrain = 0\n" + SITE,
        "tlsgate.toml:2: server.timeouts.drain: 0: a timeout must be a positive number of seconds",
    ),
    (
        "[server.timeouts]\nidle = -1.5\n" + SITE,
        "tlsgate.toml:2: server.timeouts.idle: "
        "-1.5: a timeout must be a positive number of seconds",
    ),
    (
        "[server.timeouts]\nidle = inf\n" + SITE,
        "tlsgate.toml:2: server.timeouts.idle: inf: a timeout must be a positive number of seconds",
    ),
    (
        "[server.timeouts]\nidel = 5\n" + SITE,
        "tlsgate.toml:2: server.timeouts.idel: unknown key (did you mean 'idle'?)",
    ),
    (
        "[server]\nworkers = 1\ntimeouts.idle = 0\n" + SITE,
        "tlsgate.toml:3: server.timeouts.idle: 0: a timeout must be a positive number of seconds",
    ),
    (
        "[server]\nworkers = 1\n\ntimeouts = { handshake = 1, idle = false }\n" + SITE,
        "tlsgate.toml:4: server.timeouts.idle: expected a number of seconds, got false",
    ),
    (
        "[server]\ntimeouts = 30\n" + SITE,
        "tlsgate.toml:2: server.timeouts: expected a [server.timeouts] table, got 30",
    ),
    (
        "[server.limits]\nmax_headers = 0\n" + SITE,
        "tlsgate.toml:2: server.limits.max_headers: 0: must be at least 1",
    ),
    (
        "[server.limits]\nmax_header_bytes = 32.0\n" + SITE,
        "tlsgate.toml:2: server.limits.max_header_bytes: "
        "expected a whole number of bytes, got 32.0",
    ),
    (
        "[server.limits]\nmax_body_bytes = -1\n" + SITE,
        "tlsgate.toml:2: server.limits.max_body_bytes: -1: must be 0 or more",
    ),
    (
        "[server.limits]\nmax_body_bytes = true\n" + SITE,
        "tlsgate.toml:2: server.limits.max_body_bytes: expected a whole number of bytes, got true",
    ),
    (
        "[server.limits]\nhandshake = 1\n" + SITE,
        "tlsgate.toml:2: server.limits.handshake: unknown key (handshake belongs in "
        "[server.timeouts])",
    ),
    # -- [[site]] -----------------------------------------------------------------------------
    (
        '[[site]]\nupstream = "a:1"\n',
        "tlsgate.toml:1: site[0]: hosts is missing (the names this site answers to, like hosts = "
        '["example.com"])',
    ),
    (
        '[[site]]\nhosts = "example.com"\n',
        "tlsgate.toml:1: site[0]: upstream is missing (where requests go, like upstream = "
        '"http://127.0.0.1:8000")',
    ),
    (
        SITE + "upstreams = []\n",
        "tlsgate.toml:4: site[0].upstreams: unknown key (did you mean 'upstream'?)",
    ),
    (
        SITE + "workers = 2\n",
        "tlsgate.toml:4: site[0].workers: unknown key (workers belongs in [server])",
    ),
    (
        SITE + 'cert = "c"\n',
        "tlsgate.toml:4: site[0].cert: unknown key (cert belongs in [site.tls])",
    ),
    (
        '[[site]]\nhosts = []\nupstream = "a:1"\n',
        'tlsgate.toml:2: site[0].hosts: at least one host name is required, like "example.com"',
    ),
    (
        '[[site]]\nhosts = 5\nupstream = "a:1"\n',
        "tlsgate.toml:2: site[0].hosts: expected a host name or a list of them, got 5",
    ),
    (
        '[[site]]\nhosts = ["a.example", 5]\nupstream = "a:1"\n',
        "tlsgate.toml:2: site[0].hosts[1]: expected a host name as a string, got 5",
    ),
    (
        '[[site]]\nhosts = "*.com"\nupstream = "a:1"\n',
        "tlsgate.toml:2: site[0].hosts: '*.com': a wildcard needs at least two labels after it "
        "(like *.example.com)",
    ),
    (
        '[[site]]\nhosts = ["ok.example", "foo.*.example"]\nupstream = "a:1"\n',
        "tlsgate.toml:2: site[0].hosts[1]: 'foo.*.example': a wildcard must be the whole left-most "
        "label, once (like *.example.com)",
    ),
    (
        '[[site]]\nhosts = "127.0.0.1"\nupstream = "a:1"\n',
        "tlsgate.toml:2: site[0].hosts: '127.0.0.1' is an IP address; hosts are DNS names "
        "(TLS clients do not send IP addresses as the server name)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = []\n',
        "tlsgate.toml:3: site[0].upstream: at least one upstream is required, like "
        '"http://127.0.0.1:8000"',
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = 8000\n',
        'tlsgate.toml:3: site[0].upstream: expected "http://HOST:PORT" or a list of them, got 8000',
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = ["a:1", 8000]\n',
        'tlsgate.toml:3: site[0].upstream[1]: expected an "http://HOST:PORT" string, got 8000',
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "ftp://x"\n',
        "tlsgate.toml:3: site[0].upstream: 'ftp://x' is not an http://host:port URL",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "https://backend:8443"\n',
        "tlsgate.toml:3: site[0].upstream: 'https://backend:8443': "
        "https:// upstreams are not supported yet; "
        "point tlsgate at the backend's plain http:// port",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "http://backend:8000/api"\n',
        "tlsgate.toml:3: site[0].upstream: 'http://backend:8000/api': an upstream is only "
        "http://host:port, without a path, query or fragment (requests keep their own path)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "backend:8000?x=1"\n',
        "tlsgate.toml:3: site[0].upstream: 'backend:8000?x=1': an upstream is only "
        "http://host:port, without a path, query or fragment (requests keep their own path)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "http://user:pw@backend:8000"\n',
        "tlsgate.toml:3: site[0].upstream: 'http://user:pw@backend:8000': an upstream URL cannot "
        "carry a user name or password",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "http://backend:0"\n',
        "tlsgate.toml:3: site[0].upstream: 'http://backend:0' is not an http://host:port URL "
        "(port 0 is out of range 1-65535)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "http://::1:8000"\n',
        "tlsgate.toml:3: site[0].upstream: 'http://::1:8000' is not an http://host:port URL "
        "(an IPv6 address goes in brackets, like [::1]:8443)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "http://:8000"\n',
        "tlsgate.toml:3: site[0].upstream: 'http://:8000' is not an http://host:port URL "
        "(the host is missing)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = "8000"\n',
        "tlsgate.toml:3: site[0].upstream: '8000' is not an http://host:port URL "
        "(a local port is 127.0.0.1:8000)",
    ),
    (
        '[[site]]\nhosts = "example.com"\nupstream = ["a:1", "http://A:1/"]\n',
        "tlsgate.toml:3: site[0].upstream[1]: http://a:1 is listed twice",
    ),
    (
        SITE + 'balance = "roundrobin"\n',
        'tlsgate.toml:4: site[0].balance: expected "round_robin" or "least_conn", got '
        "'roundrobin' "
        "(did you mean 'round_robin'?)",
    ),
    (
        SITE + 'balance = "random"\n',
        'tlsgate.toml:4: site[0].balance: expected "round_robin" or "least_conn", got \'random\'',
    ),
    (
        SITE + "balance = 1\n",
        'tlsgate.toml:4: site[0].balance: expected "round_robin" or "least_conn", got 1',
    ),
    (SITE + 'via = "yes"\n', "tlsgate.toml:4: site[0].via: expected true or false, got 'yes'"),
    (SITE + "hsts = -1\n", "tlsgate.toml:4: site[0].hsts: -1: must be 0 or more"),
    (
        SITE + 'hsts = "on"\n',
        "tlsgate.toml:4: site[0].hsts: expected true, false, a max-age in seconds or a table "
        "{max_age, include_subdomains, preload}, got 'on'",
    ),
    (
        SITE + "hsts = 1.5\n",
        "tlsgate.toml:4: site[0].hsts: expected true, false, a max-age in seconds or a table "
        "{max_age, include_subdomains, preload}, got 1.5",
    ),
    (
        SITE + "hsts = { maxage = 10 }\n",
        "tlsgate.toml:4: site[0].hsts.maxage: unknown key (did you mean 'max_age'?)",
    ),
    (
        SITE + "hsts = { max_age = true }\n",
        "tlsgate.toml:4: site[0].hsts.max_age: expected a whole number of seconds, got true",
    ),
    (
        SITE + '[site.hsts]\ninclude_subdomains = "yes"\n',
        "tlsgate.toml:5: site[0].hsts.include_subdomains: expected true or false, got 'yes'",
    ),
    (
        SITE + "hsts = { include_subdomains = true, preload = true, max_age = 300 }\n",
        "tlsgate.toml:4: site[0].hsts.preload: preload needs include_subdomains = true and "
        "max_age >= 31536000 (the browsers' preload list accepts nothing less)",
    ),
    # -- [site.tls] -------------------------------------------------------------------------
    (
        SITE + '[site.tls]\ncert = "c.pem"\n',
        "tlsgate.toml:4: site[0].tls: key is missing (cert and key go together)",
    ),
    (
        SITE + '\n[site.tls]\n\nkey = "k.pem"\n',
        "tlsgate.toml:5: site[0].tls: cert is missing (cert and key go together)",
    ),
    (
        SITE + "[site.tls]\n",
        "tlsgate.toml:4: site[0].tls: cert and key are required"
        " (or leave out [site.tls] for the internal CA)",
    ),
    (
        SITE + 'tls = "c.pem"\n',
        "tlsgate.toml:4: site[0].tls: expected a table with cert and key, got 'c.pem'",
    ),
    (
        SITE + '[site.tls]\ncert = "c"\nkey = "k"\nchain = "x"\n',
        "tlsgate.toml:7: site[0].tls.chain: unknown key (known keys: cert, key)",
    ),
    (
        SITE + '[site.tls]\ncert = 1\nkey = "k"\n',
        "tlsgate.toml:5: site[0].tls.cert: expected a path as a string, got 1",
    ),
    (
        SITE + 'tls.cert = "c.pem"\n',
        "tlsgate.toml:4: site[0].tls: key is missing (cert and key go together)",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    assert error(text) == message


def test_unknown_key_with_an_odd_name_is_quoted() -> None:
    assert error(SITE + '"via " = true\n') == (
        "tlsgate.toml:4: site[0].\"via \": unknown key (did you mean 'via'?)"
    )


# ---------------------------------------------------------------------------------------------
# Lines in multi-site files
# ---------------------------------------------------------------------------------------------

MULTI = """\
# tlsgate.toml
[server]
listen = ":443"
access_log = '''
[[site]]
hosts = "a file name can hold anything, even a fake table header"
'''

[[site]]                               # site[0], line 9
hosts = ["example.com", "www.example.com"]
upstream = "http://127.0.0.1:8000"

[[site]]                               # site[1], line 13
hosts = [
    "api.example.com",
    "API2.example.com",                # line 16
]
upstream = ["http://127.0.0.1:9000", "http://127.0.0.1:9001"]

[site.tls]                             # site[1].tls, line 20
cert = "api.pem"
key = "api.key"

[[site]]                               # site[2], line 24
hosts = "static.example.com"
"upstream" = "http://127.0.0.1:7000"   # line 26
hsts = { max_age = 600, preload = false }

[site.tls]                             # site[2].tls, line 29
cert = "static.pem"
key = "static.key"
"""


def test_multi_site_file_parses() -> None:
    cfg = loads(MULTI)
    assert [s.hosts[0] for s in cfg.sites] == [
        "example.com",
        "api.example.com",
        "static.example.com",
    ]
    assert [s.tls.cert if s.tls else None for s in cfg.sites] == [
        None,
        Path("api.pem"),
        Path("static.pem"),
    ]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # After a multi-line string holding "[[site]]": still line 10, still site[0].
        (
            '"www.example.com"]',
            '"www..example.com"]',
            "tlsgate.toml:10: site[0].hosts[1]: 'www..example.com': empty label",
        ),
        (
            'upstream = "http://127.0.0.1:8000"',
            'upstrem = "http://127.0.0.1:8000"',
            "tlsgate.toml:11: site[0].upstrem: unknown key (did you mean 'upstream'?)",
        ),
        (
            '"API2.example.com",',
            '"API2..example.com",',
            "tlsgate.toml:16: site[1].hosts[1]: 'API2..example.com': empty label",
        ),
        (
            '"API2.example.com",',
            '"static.example.com",',
            "tlsgate.toml:25: site[2].hosts: 'static.example.com' is already served by site[1]"
            " (line 16)",
        ),
        (
            '"http://127.0.0.1:9001"]',
            '"ftp://x"]',
            "tlsgate.toml:18: site[1].upstream[1]: 'ftp://x' is not an http://host:port URL",
        ),
        (
            'key = "api.key"',
            'kee = "api.key"',
            "tlsgate.toml:22: site[1].tls.kee: unknown key (did you mean 'key'?)",
        ),
        (
            'key = "static.key"',
            "",
            "tlsgate.toml:29: site[2].tls: key is missing (cert and key go together)",
        ),
        (
            '"upstream" = "http://127.0.0.1:7000"',
            '"upstream" = "https://127.0.0.1:7000"',
            "tlsgate.toml:26: site[2].upstream: 'https://127.0.0.1:7000': https:// upstreams are "
            "not supported yet; point tlsgate at the backend's plain http:// port",
        ),
        (
            '"upstream" = "http://127.0.0.1:7000"',
            "",
            "tlsgate.toml:24: site[2]: upstream is missing "
            '(where requests go, like upstream = "http://127.0.0.1:8000")',
        ),
        (
            "preload = false",
            "preload = 1",
            "tlsgate.toml:27: site[2].hsts.preload: expected true or false, got 1",
        ),
    ],
)
def test_lines_in_a_multi_site_file(old: str, new: str, message: str) -> None:
    assert MULTI.count(old) == 1
    assert error(MULTI.replace(old, new)) == message


def test_host_in_two_sites_names_both() -> None:
    text = SITE + "\n" + SITE.replace('"example.com"', '["other.example", "EXAMPLE.com."]')
    assert error(text) == (
        "tlsgate.toml:6: site[1].hosts[1]: 'EXAMPLE.com.' is already served by site[0] (line 2)"
    )


# ---------------------------------------------------------------------------------------------
# The locator on its own: every path tomllib produced maps back to where it was written
# ---------------------------------------------------------------------------------------------

_KEY_TEXT = st.text(alphabet="ab_-. \"'\\[]=#\nü", max_size=4)
_TRICKY_STRINGS = st.sampled_from(
    [
        "",
        "[server]",
        "[[site]]\nkey = 1",
        "a = '''",
        'x """ y',
        "\\",
        "# not a comment",
        "{ a = 1 }",
    ]
)
_LEAVES = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=10),
    _TRICKY_STRINGS,
    st.datetimes(),
    st.dates(),
    st.times(),
)
_TREES = st.recursive(
    st.dictionaries(_KEY_TEXT, _LEAVES, max_size=3),
    lambda children: st.dictionaries(
        _KEY_TEXT,
        st.one_of(
            _LEAVES,
            children,
            st.lists(_LEAVES, max_size=3),
            st.lists(children, min_size=1, max_size=2),
        ),
        max_size=3,
    ),
    max_leaves=12,
)


def toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def fits_multiline_literal(text: str) -> bool:
    """A multi-line literal has no escapes, so some strings cannot be written as one."""
    return (
        "'''" not in text
        and not text.startswith("\n")  # TOML drops a newline right after the opening quotes
        and all(c in "\t\n" or (ord(c) >= 0x20 and ord(c) != 0x7F) for c in text)
    )


def toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else toml_string(key)


def toml_value(value: object) -> str:
    """One value in inline form (the test's own writer; the project needs none)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


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
    locator = config._Locator(text)
    locator.scan()  # the strict form: on valid TOML the scan must not stumble at all
    for path, line in lines.items():
        assert locator.defined.get(path) == line, (path, text)
    for path in all_paths(tree):
        assert locator.line(path) is not None, (path, text)


def test_locator_falls_back_to_the_enclosing_key() -> None:
    locator = config._locate('[server]\nlisten = ":443"\n')
    assert locator.line(("server", "listen")) == 2
    assert locator.line(("server", "listen", 3)) == 2
    assert locator.line(("server", "workers")) == 1
    assert locator.line(("site", 0)) is None


def test_locator_that_stumbles_keeps_what_it_found() -> None:
    """Line numbers are a courtesy: losing some must never turn into a crash."""
    locator = config._locate('[server]\nlisten = ":443"\n[[\n')
    assert locator.line(("server", "listen")) == 2


# ---------------------------------------------------------------------------------------------
# Junk never escapes as anything but ConfigError
# ---------------------------------------------------------------------------------------------

_ANY_VALUE = st.recursive(
    st.one_of(
        _LEAVES,
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
    "server.state": ("[server]\nstate = VALUE\n" + SITE, (str,)),
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
}


def test_every_schema_key_is_fuzzed() -> None:
    tables: dict[str, Any] = {
        "server": ServerConfig,
        "server.timeouts": Timeouts,
        "server.limits": Limits,
        "site.hsts": HstsPolicy,
        "site.tls": TlsFiles,
    }
    for prefix, cls in tables.items():
        for f in dataclasses.fields(cls):
            assert f"{prefix}.{f.name}" in KEYS, f.name
    site_keys = {"hosts", "upstream", "balance", "hsts", "via", "tls"}
    assert {f"site.{k}" for k in site_keys} <= KEYS.keys()


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


# ---------------------------------------------------------------------------------------------
# from_flags(): the same checks, named after the flags
# ---------------------------------------------------------------------------------------------


def test_from_flags_defaults() -> None:
    cfg = from_flags(
        ["Example.com", "*.example.com", "example.com"], ["127.0.0.1:8000", "http://[::1]"]
    )
    assert cfg == Config(
        server=ServerConfig(
            listen=(ListenAddress("0.0.0.0", 443),),
            http_listen=(ListenAddress("0.0.0.0", 80),),
            admin_listen=None,
            state=None,
        ),
        sites=(
            SiteConfig(
                hosts=("example.com", "*.example.com"),
                upstreams=(Upstream("127.0.0.1", 8000), Upstream("::1", 80)),
            ),
        ),
        source="<flags>",
    )


def test_from_flags_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = from_flags(
        ["example.com"],
        ["app:8000"],
        listen=["[::]:8443", ":8443"],
        http_listen=[],
        admin_listen="127.0.0.1:9100",
        workers=4,
        state="~/state",
    )
    assert cfg.server.listen == (ListenAddress("::", 8443), ListenAddress("0.0.0.0", 8443))
    assert cfg.server.http_listen == ()
    assert cfg.server.admin_listen == ListenAddress("127.0.0.1", 9100)
    assert cfg.server.workers == 4
    assert cfg.server.state == tmp_path / "state"
    assert from_flags(["example.com"], ["app:8000"], state="rel").server.state == Path("rel")


def test_from_flags_matches_the_equivalent_file() -> None:
    flags = from_flags(
        ["a.example", "b.example"], ["http://127.0.0.1:8000", "[::1]:9000"], workers=2
    )
    text = '[server]\nworkers = 2\n[[site]]\nhosts = ["a.example", "b.example"]\n'
    text += 'upstream = ["http://127.0.0.1:8000", "[::1]:9000"]\n'
    assert (flags.server, flags.sites) == (loads(text).server, loads(text).sites)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hosts": []}, '--host: at least one host name is required, like "example.com"'),
        ({"to": []}, '--to: at least one upstream is required, like "http://127.0.0.1:8000"'),
        (
            {"hosts": ["*.com"]},
            "--host: '*.com': a wildcard needs at least two labels after it (like *.example.com)",
        ),
        (
            {"hosts": ["10.0.0.1"]},
            "--host: '10.0.0.1' is an IP address; hosts are DNS names (TLS clients do not send IP "
            "addresses as the server name)",
        ),
        ({"to": ["ftp://x"]}, "--to: 'ftp://x' is not an http://host:port URL"),
        (
            {"to": ["https://x"]},
            "--to: 'https://x': https:// upstreams are not supported yet; point tlsgate at the "
            "backend's plain http:// port",
        ),
        ({"to": ["a:1", "a:1"]}, "--to: http://a:1 is listed twice"),
        ({"listen": []}, "--listen: at least one address is required"),
        (
            {"listen": ["443"]},
            "--listen: '443': a listen address needs a port: HOST:PORT, [IPv6]:PORT or :PORT",
        ),
        (
            {"listen": [":80"]},
            "--listen: 0.0.0.0:80 is already the default of --http-listen; "
            "give --http-listen a different value",
        ),
        ({"listen": [":80"], "http_listen": []}, None),
        (
            {"listen": [":8443", "0.0.0.0:8443"]},
            "--listen: 0.0.0.0:8443 is already used by --listen",
        ),
        (
            {"http_listen": [":99999"]},
            "--http-listen: ':99999': port 99999 is out of range 0-65535 (0 = any free port)",
        ),
        (
            {"admin_listen": ":443"},
            "--admin-listen: 0.0.0.0:443 is already the default of --listen; "
            "give --listen a different value",
        ),
        (
            {"listen": [":8443"], "admin_listen": ":8443"},
            "--admin-listen: 0.0.0.0:8443 is already used by --listen",
        ),
        ({"workers": -2}, "--workers: -2 is negative; 0 means one worker per core"),
        ({"workers": True}, "--workers: expected a whole number of worker processes, got true"),
        ({"state": ""}, "--state: expected a path, got an empty string"),
    ],
)
def test_from_flags_errors(kwargs: dict[str, object], message: str | None) -> None:
    """``None``: the same values without the clash are fine (the contrast case)."""
    args: dict[str, object] = {"hosts": ["example.com"], "to": ["127.0.0.1:8000"], **kwargs}
    if message is None:
        from_flags(**args)  # type: ignore[arg-type]
        return
    with pytest.raises(ConfigError) as info:
        from_flags(**args)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize("bad", ["ftp://x", "https://x", "x/y", "[::1", "8000", "a:0"])
def test_flag_and_file_messages_agree(bad: str) -> None:
    with pytest.raises(ConfigError) as from_file:
        loads(f'[[site]]\nhosts = "example.com"\nupstream = "{bad}"\n')
    with pytest.raises(ConfigError) as from_flag:
        from_flags(["example.com"], [bad])
    assert str(from_file.value).removeprefix("tlsgate.toml:3: site[0].upstream: ") == str(
        from_flag.value
    ).removeprefix("--to: ")
