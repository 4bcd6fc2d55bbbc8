"""Error messages: FILE:LINE first, then the key, then what is wrong (tlsgate.config.messages).

A proxy config is read by a person under pressure, so every error here is asserted verbatim,
FILE:LINE included: a message that points at the wrong line is a bug like any other.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.config import (
    loads,
)
from tlsgate.errors import ConfigError

from .helpers import SITE, error

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
    (SITE + "[proxy]\n", "tlsgate.toml:4: proxy: unknown key (known keys: server, site, acme)"),
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
        "workers, trusted_proxies, access_log, state, store, ticket_rotation, store_poll, "
        "max_connections_per_worker, timeouts, limits)",
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
        "tlsgate.toml:7: site[0].tls.chain: unknown key (known keys: cert, key, ocsp_stapling)",
    ),
    (
        SITE + '[site.tls]\ncert = 1\nkey = "k"\n',
        "tlsgate.toml:5: site[0].tls.cert: expected a path as a string, got 1",
    ),
    (
        SITE + 'tls.cert = "c.pem"\n',
        "tlsgate.toml:4: site[0].tls: key is missing (cert and key go together)",
    ),
    (
        SITE + '[site.tls]\ncert = "c"\nkey = "k"\nocsp_stapling = "no"\n',
        "tlsgate.toml:7: site[0].tls.ocsp_stapling: expected true or false, got 'no'",
    ),
    (
        '[server]\nticket_rotation = "12 hours"\n' + SITE,
        "tlsgate.toml:2: server.ticket_rotation: '12 hours': expected \"off\" or a duration "
        'like "12h", "30m", "1d"',
    ),
    (
        "[server]\nticket_rotation = 0.5\n" + SITE,
        "tlsgate.toml:2: server.ticket_rotation: 0.5: the ticket rotation must be at least "
        "1 second",
    ),
    (
        '[server]\nticket_rotation = "8d"\n' + SITE,
        "tlsgate.toml:2: server.ticket_rotation: '8d': the ticket rotation must be at most 7 days",
    ),
    (
        '[server]\nstore_poll = "5 seconds"\n' + SITE,
        'tlsgate.toml:2: server.store_poll: \'5 seconds\': expected a duration like "5s", "1m" '
        "or seconds",
    ),
    (
        "[server]\nstore_poll = 0.5\n" + SITE,
        "tlsgate.toml:2: server.store_poll: 0.5: the store poll must be at least 1 second",
    ),
    (
        "[server]\nstore_poll = true\n" + SITE,
        'tlsgate.toml:2: server.store_poll: expected a duration like "5s" or seconds, got true',
    ),
    (
        "[server]\nticket_rotation = false\n" + SITE,
        'tlsgate.toml:2: server.ticket_rotation: expected "off", a duration like "12h" or '
        "seconds, got false",
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
