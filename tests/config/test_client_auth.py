"""[site.client_auth]: mutual TLS settings, their defaults, and every rule with its line.

Like test_messages, every error is asserted verbatim with FILE:LINE: a mistake here is an
access-control mistake, so it has to stop the server at start, pointing at the line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.config import CLIENT_AUTH_MODES, ClientAuth, load, loads
from tlsgate.mtls.policy import AllowList, PathRule
from tlsgate.mtls.xfcc import FORWARD_MODES

from .helpers import SITE, error

#: SITE is lines 1-3, so the table is line 4, mode line 5 and the next key line 6.
TABLE = SITE + "[site.client_auth]\n"
REQUIRE = TABLE + 'mode = "require"\n'
OPTIONAL = TABLE + 'mode = "optional"\n'


def auth(text: str, index: int = 0) -> ClientAuth | None:
    return loads(text).sites[index].client_auth


# ---------------------------------------------------------------------------------------------
# Accepted
# ---------------------------------------------------------------------------------------------


def test_without_the_table_or_with_mode_off_there_is_none() -> None:
    assert auth(SITE) is None
    assert auth(TABLE) is None
    assert auth(TABLE + 'mode = "off"\n') is None
    assert auth(SITE + "client_auth = {}\n") is None


def test_mode_alone_takes_the_defaults() -> None:
    assert auth(REQUIRE) == ClientAuth(mode="require")
    assert auth(OPTIONAL) == ClientAuth(mode="optional")
    defaults = ClientAuth()
    assert (defaults.trust, defaults.crl, defaults.crl_refresh) == ((), (), 300.0)
    assert (defaults.allow, defaults.paths, defaults.forward) == (AllowList(), (), "sanitize_set")
    assert CLIENT_AUTH_MODES == ("off", "optional", "require")


def test_every_key() -> None:
    text = OPTIONAL + (
        'trust = ["clients.pem", "/etc/partners.pem"]\n'
        'crl = "clients.crl"\n'
        'crl_refresh = "1h30m"\n'
        'allow_spiffe = ["spiffe://example.org/ns/*/sa/web", "SPIFFE://example.org/ops/**"]\n'
        'allow_dns = "*.SVC.internal"\n'
        'allow_cn = ["billing", "Billing"]\n'
        'allow_ou = "payments"\n'
        'forward = "append_forward"\n'
        "[[site.client_auth.path]]\n"
        'prefix = "/admin"\n'
        'allow_cn = "ops"\n'
        "[[site.client_auth.path]]\n"
        'prefix = "/health"\n'
        "require_certificate = false\n"
        "[[site.client_auth.path]]\n"
        'prefix = "/api"\n'
        "require_certificate = true\n"
        'allow_spiffe = "spiffe://example.org/**"\n'
        'allow_dns = ["api.internal"]\n'
        'allow_ou = ["eng", "ops"]\n'
    )
    assert auth(text) == ClientAuth(
        mode="optional",
        trust=(Path("clients.pem"), Path("/etc/partners.pem")),
        crl=(Path("clients.crl"),),
        crl_refresh=5400.0,
        allow=AllowList(
            spiffe=("spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ops/**"),
            dns=("*.svc.internal",),
            cn=("billing", "Billing"),  # exact: case matters
            ou=("payments",),
        ),
        paths=(
            PathRule("/admin", AllowList(cn=("ops",))),
            PathRule("/health", AllowList(), require_certificate=False),
            PathRule(
                "/api",
                AllowList(
                    spiffe=("spiffe://example.org/**",), dns=("api.internal",), ou=("eng", "ops")
                ),
            ),
        ),
        forward="append_forward",
    )


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("60", 60.0),
        ("1.5", 1.5),
        ("1", 1.0),
        ('"5m"', 300.0),
        ('"1h30m"', 5400.0),
        ('"2d"', 172800.0),
    ],
)
def test_crl_refresh_forms(written: str, seconds: float) -> None:
    found = auth(REQUIRE + f"crl_refresh = {written}\n")
    assert found is not None and found.crl_refresh == seconds
    assert isinstance(found.crl_refresh, float)


@pytest.mark.parametrize("mode", FORWARD_MODES)
def test_every_forward_mode(mode: str) -> None:
    found = auth(REQUIRE + f'forward = "{mode}"\n')
    assert found is not None and found.forward == mode


def test_dotted_inline_and_header_forms_mean_the_same() -> None:
    headers = REQUIRE + 'allow_cn = "a"\n[[site.client_auth.path]]\nprefix = "/x"\n'
    dotted = SITE + 'client_auth.mode = "require"\nclient_auth.allow_cn = "a"\n'
    dotted += 'client_auth.path = [{ prefix = "/x" }]\n'
    inline = (
        SITE + 'client_auth = { mode = "require", allow_cn = ["a"], path = [{ prefix = "/x" }] }\n'
    )
    assert loads(headers) == loads(dotted) == loads(inline)


def test_sites_have_their_own() -> None:
    text = REQUIRE + SITE.replace("example.com", "other.example")
    cfg = loads(text)
    assert [site.client_auth for site in cfg.sites] == [ClientAuth(mode="require"), None]


def test_trust_and_crl_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "etc" / "tlsgate.toml"
    path.parent.mkdir()
    path.write_text(REQUIRE + 'trust = ["ca/clients.pem", "~/partner.pem"]\ncrl = "/abs.crl"\n')
    found = load(path).sites[0].client_auth
    assert found is not None
    assert found.trust == (tmp_path / "etc/ca/clients.pem", tmp_path / "home/partner.pem")
    assert found.crl == (Path("/abs.crl"),)


# ---------------------------------------------------------------------------------------------
# Errors, verbatim
# ---------------------------------------------------------------------------------------------

IGNORED = 'set mode = "require" or "optional"'
PATH = "[[site.client_auth.path]]\n"  # line 6 after REQUIRE / OPTIONAL

ERRORS: list[tuple[str, str]] = [
    # -- the table and where keys belong ---------------------------------------------------------
    (
        SITE + "client_auth = true\n",
        "tlsgate.toml:4: site[0].client_auth: expected a [site.client_auth] table, got true",
    ),
    (
        SITE + 'mode = "require"\n',
        "tlsgate.toml:4: site[0].mode: 'require' is a client certificate mode: it belongs in "
        '[site.client_auth] (a site\'s own mode is "http" or "tcp")',
    ),
    (
        SITE + 'allow_cn = "ops"\n',
        "tlsgate.toml:4: site[0].allow_cn: unknown key (allow_cn belongs in [site.client_auth])",
    ),
    (
        "[server]\nallow_spiffe = []\n" + SITE,
        "tlsgate.toml:2: server.allow_spiffe: unknown key (allow_spiffe belongs in "
        "[site.client_auth])",
    ),
    (
        "[server.client_auth]\n" + SITE,
        "tlsgate.toml:1: server.client_auth: unknown key (client_auth belongs in [[site]])",
    ),
    (
        REQUIRE + 'prefix = "/admin"\n',
        "tlsgate.toml:6: site[0].client_auth.prefix: unknown key (prefix belongs in a "
        "[[site.client_auth.path]] table)",
    ),
    (
        REQUIRE + "require_certificate = true\n",
        "tlsgate.toml:6: site[0].client_auth.require_certificate: unknown key "
        "(require_certificate belongs in a [[site.client_auth.path]] table)",
    ),
    (
        REQUIRE + 'ca = "clients.pem"\n',
        "tlsgate.toml:6: site[0].client_auth.ca: unknown key (did you mean 'trust'?)",
    ),
    (
        REQUIRE + 'allow_uri = "spiffe://example.org/x"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_uri: unknown key (did you mean 'allow_spiffe'?)",
    ),
    (
        REQUIRE + 'allow_cns = "x"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_cns: unknown key (did you mean 'allow_cn'?)",
    ),
    (
        REQUIRE + "verify = true\n",
        "tlsgate.toml:6: site[0].client_auth.verify: unknown key (known keys: mode, trust, crl, "
        "crl_refresh, allow_spiffe, allow_dns, allow_cn, allow_ou, forward, path)",
    ),
    (
        REQUIRE + PATH + 'path = "/admin"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].path: unknown key (did you mean 'prefix'?)",
    ),
    (
        REQUIRE + PATH + 'prefix = "/a"\nmode = "optional"\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].mode: unknown key (mode belongs in "
        "[site.client_auth])",
    ),
    (
        REQUIRE + PATH + 'prefix = "/a"\ndeny = "x"\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].deny: unknown key (known keys: prefix, "
        "allow_spiffe, allow_dns, allow_cn, allow_ou, require_certificate)",
    ),
    (
        REQUIRE + '[site.client_auth.path]\nprefix = "/a"\n',
        "tlsgate.toml:6: site[0].client_auth.path: expected [[site.client_auth.path]] tables, got "
        "a single table ([site.client_auth.path] instead of [[site.client_auth.path]]?)",
    ),
    (
        REQUIRE + 'path = "/admin"\n',
        "tlsgate.toml:6: site[0].client_auth.path: expected [[site.client_auth.path]] tables, got "
        "'/admin'",
    ),
    (
        REQUIRE + 'path = ["/admin"]\n',
        "tlsgate.toml:6: site[0].client_auth.path[0]: expected a [[site.client_auth.path]] table, "
        "got '/admin'",
    ),
    # -- mode ---------------------------------------------------------------------------------
    (
        TABLE + 'mode = "required"\n',
        'tlsgate.toml:5: site[0].client_auth.mode: expected "off" or "optional" or "require", '
        "got 'required' (did you mean 'require'?)",
    ),
    (
        TABLE + 'mode = "Optional"\n',
        'tlsgate.toml:5: site[0].client_auth.mode: expected "off" or "optional" or "require", '
        "got 'Optional' (did you mean 'optional'?)",
    ),
    (
        TABLE + "mode = true\n",
        'tlsgate.toml:5: site[0].client_auth.mode: expected "off" or "optional" or "require", '
        "got true",
    ),
    # -- what mode = "off" would ignore ------------------------------------------------------
    (
        TABLE + 'allow_cn = "ops"\n',
        "tlsgate.toml:5: site[0].client_auth.allow_cn: would be ignored with mode = \"off\" "
        f"(the default): {IGNORED}",
    ),
    (
        TABLE + 'mode = "off"\nallow_spiffe = "spiffe://example.org/**"\n',
        'tlsgate.toml:6: site[0].client_auth.allow_spiffe: would be ignored with mode = "off": '
        + IGNORED,
    ),
    (
        TABLE + 'mode = "off"\n' + PATH + 'prefix = "/admin"\n',
        f'tlsgate.toml:6: site[0].client_auth.path: would be ignored with mode = "off": {IGNORED}',
    ),
    (
        TABLE + 'trust = "clients.pem"\nmode = "off"\n',
        f'tlsgate.toml:5: site[0].client_auth.trust: would be ignored with mode = "off": {IGNORED}',
    ),
    (
        TABLE + 'forward = "sanitize"\n',
        'tlsgate.toml:5: site[0].client_auth.forward: would be ignored with mode = "off" '
        f"(the default): {IGNORED}",
    ),
    # -- trust, crl, crl_refresh ---------------------------------------------------------------
    (
        REQUIRE + "trust = []\n",
        "tlsgate.toml:6: site[0].client_auth.trust: an empty list: leave trust out to trust the "
        "internal CA",
    ),
    (
        REQUIRE + "trust = 1\n",
        "tlsgate.toml:6: site[0].client_auth.trust: expected a path or a list of paths, got 1",
    ),
    (
        REQUIRE + 'trust = ["a.pem", 1]\n',
        "tlsgate.toml:6: site[0].client_auth.trust[1]: expected a path as a string, got 1",
    ),
    (
        REQUIRE + 'trust = ["a.pem", "b.pem", "a.pem"]\n',
        "tlsgate.toml:6: site[0].client_auth.trust[2]: 'a.pem' is listed twice",
    ),
    (
        REQUIRE + 'crl = "clients.crl"\n',
        "tlsgate.toml:6: site[0].client_auth.crl: the internal CA's own CRL is used "
        "automatically; crl is for the CAs in trust",
    ),
    (
        REQUIRE + 'trust = "a.pem"\ncrl = []\n',
        "tlsgate.toml:7: site[0].client_auth.crl: an empty list: leave crl out (no CRL files)",
    ),
    (
        REQUIRE + 'trust = "a.pem"\ncrl = [""]\n',
        "tlsgate.toml:7: site[0].client_auth.crl[0]: expected a path, got an empty string",
    ),
    (
        REQUIRE + "crl_refresh = 0\n",
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: 0: must be at least 1 second "
        "(CRL files are re-read that often)",
    ),
    (
        REQUIRE + "crl_refresh = 0.5\n",
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: 0.5: must be at least 1 second "
        "(CRL files are re-read that often)",
    ),
    (
        REQUIRE + 'crl_refresh = "0s"\n',
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: '0s': must be at least 1 second "
        "(CRL files are re-read that often)",
    ),
    (
        REQUIRE + "crl_refresh = -5\n",
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: -5: must be 0 or more seconds",
    ),
    (
        REQUIRE + "crl_refresh = inf\n",
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: inf: expected a finite number of seconds",
    ),
    (
        REQUIRE + 'crl_refresh = "5 minutes"\n',
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: '5 minutes': expected a duration like "
        '"5m", "1h" or "90s"',
    ),
    (
        REQUIRE + "crl_refresh = true\n",
        "tlsgate.toml:6: site[0].client_auth.crl_refresh: expected seconds or a duration like "
        '"5m", got true',
    ),
    # -- allow lists ---------------------------------------------------------------------------
    (
        REQUIRE + 'allow_spiffe = "spiffe://*.example.org/ns"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe: 'spiffe://*.example.org/ns': the trust "
        "domain cannot be a wildcard; write it out (spiffe://example.org/ns/*)",
    ),
    (
        REQUIRE + 'allow_spiffe = ["spiffe://example.org/a", "spiffe://example.org//b"]\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe[1]: 'spiffe://example.org//b': empty, "
        "'.' or '..' path segment",
    ),
    (
        REQUIRE + 'allow_spiffe = "spiffe://example.org/ns?x=1"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe: 'spiffe://example.org/ns?x=1': a SPIFFE "
        "ID has no query or fragment",
    ),
    (
        REQUIRE + 'allow_spiffe = "spiffe://example.org/ns/web-*"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe: 'spiffe://example.org/ns/web-*': a "
        "wildcard must be a whole path segment: '*' or a final '**'",
    ),
    (
        REQUIRE + 'allow_spiffe = "spiffe://example.org/**/web"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe: 'spiffe://example.org/**/web': '**' "
        "can only be the last segment (like spiffe://example.org/ns/**)",
    ),
    (
        REQUIRE + 'allow_spiffe = "example.org/ns"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe: 'example.org/ns': a SPIFFE pattern "
        "starts with spiffe://",
    ),
    (
        REQUIRE + 'allow_spiffe = ["spiffe://example.org/a", "SPIFFE://example.org/a"]\n',
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe[1]: 'SPIFFE://example.org/a' is listed "
        "twice",
    ),
    (
        REQUIRE + "allow_spiffe = [1]\n",
        "tlsgate.toml:6: site[0].client_auth.allow_spiffe[0]: expected a SPIFFE ID pattern as a "
        "string, got 1",
    ),
    (
        REQUIRE + 'allow_dns = "*.*.internal"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_dns: '*.*.internal': a wildcard must be the "
        "whole left-most label, once (like *.example.com)",
    ),
    (
        REQUIRE + 'allow_dns = "api*.internal"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_dns: 'api*.internal': a wildcard must be the "
        "whole left-most label, once (like *.example.com)",
    ),
    (
        REQUIRE + 'allow_dns = ["*.internal"]\n',
        "tlsgate.toml:6: site[0].client_auth.allow_dns[0]: '*.internal': a wildcard needs at least "
        "two labels after it (like *.example.com)",
    ),
    (
        REQUIRE + 'allow_dns = "10.0.0.1"\n',
        "tlsgate.toml:6: site[0].client_auth.allow_dns: '10.0.0.1': the last label cannot be all "
        "digits",
    ),
    (
        REQUIRE + 'allow_dns = ["api.internal", "API.internal."]\n',
        "tlsgate.toml:6: site[0].client_auth.allow_dns[1]: 'API.internal.' is listed twice",
    ),
    (
        REQUIRE + "allow_cn = []\n",
        "tlsgate.toml:6: site[0].client_auth.allow_cn: an empty list: leave allow_cn out (no "
        "allow list at all means any verified certificate)",
    ),
    (
        REQUIRE + 'allow_cn = [""]\n',
        "tlsgate.toml:6: site[0].client_auth.allow_cn[0]: expected a common name, got an empty "
        "string",
    ),
    (
        REQUIRE + "allow_ou = 7\n",
        "tlsgate.toml:6: site[0].client_auth.allow_ou: expected a string or a list of strings, "
        "got 7",
    ),
    (
        REQUIRE + "allow_ou = [true]\n",
        "tlsgate.toml:6: site[0].client_auth.allow_ou[0]: expected an organizational unit as a "
        "string, got true",
    ),
    # -- forward -------------------------------------------------------------------------------
    (
        REQUIRE + 'forward = "forward_only"\n',
        'tlsgate.toml:6: site[0].client_auth.forward: expected "sanitize" or "sanitize_set" or '
        '"forward" or "append_forward", got \'forward_only\' (did you mean \'forward\'?)',
    ),
    (
        REQUIRE + 'forward = "SANITIZE_SET"\n',
        'tlsgate.toml:6: site[0].client_auth.forward: expected "sanitize" or "sanitize_set" or '
        '"forward" or "append_forward", got \'SANITIZE_SET\' (did you mean \'sanitize_set\'?)',
    ),
    (
        REQUIRE + 'forward = "passthrough"\n',
        'tlsgate.toml:6: site[0].client_auth.forward: expected "sanitize" or "sanitize_set" or '
        "\"forward\" or \"append_forward\", got 'passthrough'",
    ),
    # -- path rules ----------------------------------------------------------------------------
    (
        REQUIRE + PATH + 'allow_cn = "ops"\n',
        "tlsgate.toml:6: site[0].client_auth.path[0]: prefix is missing (the path the rule "
        'covers, like prefix = "/admin")',
    ),
    (
        REQUIRE + PATH + 'prefix = "admin"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: 'admin': a path prefix starts with "
        '"/" (like "/admin")',
    ),
    (
        REQUIRE + PATH + "prefix = 1\n",
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: expected a path prefix like "
        '"/admin", got 1',
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin/"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: '/admin/': write it without the "
        "trailing slash ('/admin' covers itself and everything under it)",
    ),
    (
        REQUIRE + PATH + 'prefix = "/public/../admin"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: '/public/../admin': empty, '.' or "
        "'..' segment: paths are normalised before matching, so it would never match",
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin?x=1"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: '/admin?x=1': a path prefix has no "
        "query or fragment (requests match on the path)",
    ),
    (
        REQUIRE + PATH + 'prefix = "/%61dmin"\n',
        "tlsgate.toml:7: site[0].client_auth.path[0].prefix: '/%61dmin': write the prefix without "
        "percent-encoding (paths are decoded first)",
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin"\n\n' + PATH + 'prefix = "/admin"\n',
        "tlsgate.toml:10: site[0].client_auth.path[1].prefix: '/admin' is already the prefix of "
        "path[0] (line 7)",
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin"\n' + (PATH + 'prefix = "/api"\n') * 2,
        "tlsgate.toml:11: site[0].client_auth.path[2].prefix: '/api' is already the prefix of "
        "path[1] (line 9)",
    ),
    (
        REQUIRE + "path = [{ prefix = '/Admin' }, { prefix = '/admin' }]\n",
        "tlsgate.toml:6: site[0].client_auth.path[1].prefix: '/admin' differs from path[0]'s "
        "'/Admin' (line 6) only in case, and requests are judged ignoring case too: keep one",
    ),
    (
        REQUIRE + PATH + 'prefix = "/health"\nrequire_certificate = false\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].require_certificate: would be ignored with "
        'mode = "require", where every client has a certificate (mode = "optional" lets clients '
        "without one in)",
    ),
    (
        OPTIONAL + PATH + 'prefix = "/health"\nrequire_certificate = "no"\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].require_certificate: expected true or false, "
        "got 'no'",
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin"\nallow_spiffe = "spiffe://example.org/a b"\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].allow_spiffe: 'spiffe://example.org/a b': a "
        "SPIFFE pattern has no spaces or control characters",
    ),
    (
        REQUIRE + PATH + 'prefix = "/admin"\nallow_dns = []\n',
        "tlsgate.toml:8: site[0].client_auth.path[0].allow_dns: an empty list: leave allow_dns "
        "out (no allow list at all means any verified certificate)",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    assert error(text) == message


def test_lines_in_the_second_site() -> None:
    text = (
        SITE
        + "\n"
        + SITE.replace("example.com", "api.example.com")  # line 5
        + "[site.client_auth]\n"  # line 8
        + 'mode = "optional"\n'
        + "\n"
        + "[[site.client_auth.path]]\n"  # line 11
        + 'prefix = "/admin"\n'
        + 'allow_dns = ["ops.internal", "*.*.internal"]\n'  # line 13
    )
    assert error(text) == (
        "tlsgate.toml:13: site[1].client_auth.path[0].allow_dns[1]: '*.*.internal': a wildcard "
        "must be the whole left-most label, once (like *.example.com)"
    )
