"""[acme], [site.acme] and issuer: defaults, overrides, the cross-key rules and their messages.

Like test_messages, every error is asserted verbatim with FILE:LINE: the renewal loop trusts these
settings, so a rule that does not fire here fails at the first renewal instead, far from its line.
"""

from __future__ import annotations

import base64
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.config import CHALLENGE_TYPES, AcmeSettings, eab_key, load, loads
from tlsgate.errors import ConfigError

from .helpers import SITE, error

LE = "https://acme-v02.api.letsencrypt.org/directory"
ACME = f'[acme]\ndirectory = "{LE}"\n'  # two lines, so SITE starts at line 3
WILD = SITE.replace('"example.com"', '["example.com", "*.example.com"]')
KEY = b"0123456789abcdef0123456789abcdef"
KEY64 = base64.urlsafe_b64encode(KEY).decode().rstrip("=")


def site(text: str, index: int = 0) -> AcmeSettings | None:
    parsed = loads(text).sites[index]
    assert (parsed.issuer == "acme") == (parsed.acme is not None)
    return parsed.acme


# ---------------------------------------------------------------------------------------------
# Which issuer
# ---------------------------------------------------------------------------------------------


def test_without_acme_sites_stay_on_the_internal_ca() -> None:
    parsed = loads(SITE).sites[0]
    assert (parsed.issuer, parsed.acme, parsed.tls) == ("internal", None, None)


def test_top_level_acme_is_every_sites_default() -> None:
    text = ACME + SITE + SITE.replace("example.com", "other.example")
    cfg = loads(text)
    assert [(s.issuer, s.acme) for s in cfg.sites] == [("acme", AcmeSettings(LE))] * 2


def test_a_site_acme_table_alone_makes_that_site_acme() -> None:
    text = SITE + f'[site.acme]\ndirectory = "{LE}"\n' + SITE.replace("example.com", "b.example")
    cfg = loads(text)
    assert [s.issuer for s in cfg.sites] == ["acme", "internal"]


def test_issuer_internal_keeps_a_site_off_acme() -> None:
    cfg = loads(ACME + SITE + 'issuer = "internal"\n' + SITE.replace("example.com", "b.example"))
    assert [(s.issuer, s.acme is None) for s in cfg.sites] == [("internal", True), ("acme", False)]


def test_files_keep_internal_as_the_issuer_and_ignore_top_level_acme() -> None:
    parsed = loads(ACME + SITE + '[site.tls]\ncert = "c.pem"\nkey = "k.pem"\n').sites[0]
    assert (parsed.issuer, parsed.acme) == ("internal", None)
    assert parsed.tls is not None


def test_explicit_issuer_acme_with_a_directory_from_the_top() -> None:
    assert site(ACME + SITE + 'issuer = "acme"\n') == AcmeSettings(LE)


@pytest.mark.parametrize(
    ("top", "own", "issuer", "files"),
    list(
        itertools.product([False, True], [False, True], [None, "internal", "acme"], [False, True])
    ),
)
def test_every_combination_follows_the_rules(
    top: bool, own: bool, issuer: str | None, files: bool
) -> None:
    """The whole decision table: either the documented error, or a site whose fields agree."""
    text = ACME if top else ""
    text += SITE
    if issuer is not None:
        text += f'issuer = "{issuer}"\n'
    if files:
        text += '[site.tls]\ncert = "c.pem"\nkey = "k.pem"\n'
    if own:
        text += f'[site.acme]\ndirectory = "{LE}"\n'
    if files and (issuer is not None or own):
        assert "from files or from an issuer, not both" in error(text)
        return
    if issuer == "internal" and own:
        assert '[site.acme] is for issuer = "acme"' in error(text)
        return
    if issuer == "acme" and not top and not own:
        assert "no ACME directory" in error(text)
        return
    parsed = loads(text).sites[0]
    expected = issuer or ("acme" if (top or own) and not files else "internal")
    assert parsed.issuer == expected
    assert (parsed.acme is not None) == (expected == "acme")
    assert (parsed.tls is not None) == files


# ---------------------------------------------------------------------------------------------
# Values and defaults
# ---------------------------------------------------------------------------------------------


def test_every_key() -> None:
    text = (
        "[acme]\n"
        'directory = "https://ca.internal:14000/dir"\n'
        'email = ["ops@example.com", "root@localhost"]\n'
        f'eab = "kid-1:{KEY64}"\n'
        'challenges = ["tls-alpn-01", "dns-01", "http-01"]\n'
        'ca = "/etc/tlsgate/ca.pem"\n'
        "dns_hook = \"/usr/local/bin/dns-update --zone 'example com'\"\n"
        "dns_wait = 1.5\n"
        'profile = "shortlived"\n' + SITE
    )
    assert site(text) == AcmeSettings(
        directory="https://ca.internal:14000/dir",
        email=("ops@example.com", "root@localhost"),
        eab=("kid-1", KEY),
        challenges=("tls-alpn-01", "dns-01", "http-01"),
        ca=Path("/etc/tlsgate/ca.pem"),
        dns_hook="/usr/local/bin/dns-update --zone 'example com'",
        dns_wait=1.5,
        profile="shortlived",
    )


@pytest.mark.parametrize(
    ("extra", "challenges"),
    [
        ("", ("http-01", "tls-alpn-01")),
        ("[server]\nhttp_listen = false\n", ("tls-alpn-01",)),
        ("[server]\nhttp_listen = []\n", ("tls-alpn-01",)),
        ('[server]\nhttp_listen = "127.0.0.1:8080"\n', ("http-01", "tls-alpn-01")),
    ],
)
def test_default_challenges_follow_the_listeners(extra: str, challenges: tuple[str, ...]) -> None:
    assert site(extra + ACME + SITE) == AcmeSettings(LE, challenges=challenges)


def test_a_dns_hook_makes_dns_01_the_default() -> None:
    settings = site(ACME + 'dns_hook = "hook"\n' + WILD)
    assert settings is not None and settings.challenges == ("dns-01",)


def test_string_forms() -> None:
    settings = site(ACME + 'email = "a@b"\nchallenges = "tls-alpn-01"\n' + SITE)
    assert settings == AcmeSettings(LE, email=("a@b",), challenges=("tls-alpn-01",))


@pytest.mark.parametrize(
    "written",
    [
        f'"kid-1:{KEY64}"',
        f'"kid-1:{KEY64}="',  # padding is fine
        f'{{ kid = "kid-1", hmac = "{KEY64}" }}',
        f'"kid-1:{base64.b64encode(KEY).decode()}"',  # the standard alphabet decodes the same
    ],
)
def test_eab_forms(written: str) -> None:
    settings = site(ACME + f"eab = {written}\n" + SITE)
    assert settings is not None and settings.eab == ("kid-1", KEY)


def test_eab_as_a_sub_table() -> None:
    text = ACME + SITE + f'[site.acme]\n[site.acme.eab]\nkid = "k"\nhmac = "{KEY64}"\n'
    settings = site(text)
    assert settings is not None and settings.eab == ("k", KEY)


def test_ca_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "tlsgate.toml"
    path.write_text(ACME + 'ca = "roots/ca.pem"\n' + SITE)
    settings = load(path).sites[0].acme
    assert settings is not None and settings.ca == tmp_path / "roots/ca.pem"


def test_dns_wait_takes_whole_seconds_and_zero() -> None:
    for written, seconds in (("0", 0.0), ("30", 30.0), ("2.5", 2.5)):
        settings = site(ACME + f'dns_hook = "h"\ndns_wait = {written}\n' + SITE)
        assert settings is not None and settings.dns_wait == seconds
        assert isinstance(settings.dns_wait, float)


def test_dotted_inline_and_header_forms_mean_the_same() -> None:
    header = SITE + f'[site.acme]\ndirectory = "{LE}"\nemail = "a@b"\n'
    dotted = SITE + f'acme.directory = "{LE}"\nacme.email = "a@b"\n'
    inline = SITE + f'acme = {{ directory = "{LE}", email = "a@b" }}\n'
    assert loads(header) == loads(dotted) == loads(inline)


# ---------------------------------------------------------------------------------------------
# [site.acme] over [acme], key by key
# ---------------------------------------------------------------------------------------------


def test_site_values_override_the_top_level_key_by_key() -> None:
    text = (
        ACME + 'email = "ops@example.com"\nprofile = "classic"\ndns_hook = "top-hook"\n'
        + WILD  # lines 6-8
        + '[site.acme]\nemail = ["api@example.com"]\ndns_wait = 10\n'
        + SITE.replace("example.com", "b.example")  # inherits everything
    )  # fmt: skip
    cfg = loads(text)
    assert cfg.sites[0].acme == AcmeSettings(
        LE,
        email=("api@example.com",),
        challenges=("dns-01",),
        dns_hook="top-hook",
        dns_wait=10.0,
        profile="classic",
    )
    assert cfg.sites[1].acme == AcmeSettings(
        LE,
        email=("ops@example.com",),
        challenges=("dns-01",),
        dns_hook="top-hook",
        profile="classic",
    )


def test_a_site_can_point_at_another_ca() -> None:
    other = "https://acme.internal:14000/dir"
    text = ACME + SITE + f'[site.acme]\ndirectory = "{other}"\nca = "root.pem"\n'
    assert site(text) == AcmeSettings(other, ca=Path("root.pem"))


def test_site_challenges_replace_the_top_level_ones_whole() -> None:
    text = ACME + 'challenges = ["http-01", "tls-alpn-01"]\n' + SITE
    text += '[site.acme]\nchallenges = "tls-alpn-01"\n'
    settings = site(text)
    assert settings is not None and settings.challenges == ("tls-alpn-01",)


def test_the_default_challenges_are_decided_per_site() -> None:
    """A hook in one site's table makes dns-01 that site's default, not its neighbours'."""
    text = ACME + WILD + '[site.acme]\ndns_hook = "hook"\n'
    text += SITE.replace("example.com", "b.example")
    cfg = loads(text)
    assert [s.acme.challenges for s in cfg.sites if s.acme] == [
        ("dns-01",),
        ("http-01", "tls-alpn-01"),
    ]


# ---------------------------------------------------------------------------------------------
# Errors, verbatim
# ---------------------------------------------------------------------------------------------

ERRORS: list[tuple[str, str]] = [
    # -- where keys belong ------------------------------------------------------------------
    (
        "[acme]\ndirectry = 1\n" + SITE,
        "tlsgate.toml:2: acme.directry: unknown key (did you mean 'directory'?)",
    ),
    (
        "[acme]\nissuer = 'acme'\n" + SITE,
        "tlsgate.toml:2: acme.issuer: unknown key (issuer belongs in [[site]])",
    ),
    (
        "[acme]\nhosts = []\n" + SITE,
        "tlsgate.toml:2: acme.hosts: unknown key (hosts belongs in [[site]])",
    ),
    (
        SITE + f'directory = "{LE}"\n',
        "tlsgate.toml:4: site[0].directory: unknown key (directory belongs in [acme] or "
        "[site.acme])",
    ),
    (
        "[server]\ndns_hook = 'h'\n" + SITE,
        "tlsgate.toml:2: server.dns_hook: unknown key (dns_hook belongs in [acme] or [site.acme])",
    ),
    (
        "[server.acme]\n" + SITE,
        "tlsgate.toml:1: server.acme: unknown key (acme belongs in [acme] or [site.acme])",
    ),
    (
        ACME + "eab = { kid = 'k', key = 'AAAA' }\n" + SITE,
        "tlsgate.toml:3: acme.eab.key: unknown key (did you mean 'hmac'?)",
    ),
    (
        ACME + "eab = { kid = 'k', hmac = 'AAAA', alg = 'HS256' }\n" + SITE,
        "tlsgate.toml:3: acme.eab.alg: unknown key (known keys: kid, hmac)",
    ),
    (
        SITE + "[site.acme]\nkid = 'k'\n",
        "tlsgate.toml:5: site[0].acme.kid: unknown key (kid belongs in an eab table)",
    ),
    ("acme = 1\n" + SITE, "tlsgate.toml:1: acme: expected an [acme] table, got 1"),
    (SITE + "acme = 'x'\n", "tlsgate.toml:4: site[0].acme: expected a [site.acme] table, got 'x'"),
    # -- issuer -------------------------------------------------------------------------------
    (
        SITE + 'issuer = "acm"\n',
        'tlsgate.toml:4: site[0].issuer: expected "internal" or "acme", got \'acm\' '
        "(did you mean 'acme'?)",
    ),
    (
        SITE + 'issuer = "letsencrypt"\n',
        'tlsgate.toml:4: site[0].issuer: expected "internal" or "acme", got \'letsencrypt\'',
    ),
    (
        SITE + "issuer = true\n",
        'tlsgate.toml:4: site[0].issuer: expected "internal" or "acme", got true',
    ),
    (
        SITE + 'issuer = "acme"\n',
        "tlsgate.toml:4: site[0].issuer: no ACME directory: set directory in [acme] or "
        '[site.acme] (the CA\'s URL, like "https://acme-v02.api.letsencrypt.org/directory")',
    ),
    (
        "[acme]\nemail = 'a@b'\n" + SITE,
        "tlsgate.toml:1: acme: no ACME directory (for site[0]): set directory in [acme] or "
        '[site.acme] (the CA\'s URL, like "https://acme-v02.api.letsencrypt.org/directory")',
    ),
    (
        SITE + "[site.acme]\nemail = 'a@b'\n",
        "tlsgate.toml:4: site[0].acme: no ACME directory: set directory in [acme] or "
        '[site.acme] (the CA\'s URL, like "https://acme-v02.api.letsencrypt.org/directory")',
    ),
    (
        SITE + 'issuer = "acme"\n[site.tls]\ncert = "c"\nkey = "k"\n',
        "tlsgate.toml:4: site[0].issuer: a site gets its certificate from files or from an "
        "issuer, not both (drop [site.tls] or issuer)",
    ),
    (
        SITE + '[site.tls]\ncert = "c"\nkey = "k"\n[site.acme]\nemail = "a@b"\n',
        "tlsgate.toml:7: site[0].acme: a site gets its certificate from files or from an "
        "issuer, not both (drop [site.tls] or [site.acme])",
    ),
    (
        SITE + f'issuer = "internal"\n[site.acme]\ndirectory = "{LE}"\n',
        'tlsgate.toml:5: site[0].acme: [site.acme] is for issuer = "acme", and this site says '
        'issuer = "internal" (line 4)',
    ),
    # -- directory ----------------------------------------------------------------------------
    (
        '[acme]\ndirectory = "http://acme.example/dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'http://acme.example/dir': the ACME directory must be "
        "an https:// URL (RFC 8555 requires HTTPS: over plain HTTP anyone on the path could "
        "answer for the CA)",
    ),
    (
        '[acme]\ndirectory = "acme.example/dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'acme.example/dir': the ACME directory must be "
        "an https:// URL (RFC 8555 requires HTTPS: over plain HTTP anyone on the path could "
        "answer for the CA)",
    ),
    (
        '[acme]\ndirectory = "https:///dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'https:///dir': the URL has no host",
    ),
    (
        '[acme]\ndirectory = "https://ca:99999/dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'https://ca:99999/dir': "
        "the port must be a number from 1 to 65535",
    ),
    (
        '[acme]\ndirectory = "https://ca:0/dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'https://ca:0/dir': "
        "the port must be a number from 1 to 65535",
    ),
    (
        '[acme]\ndirectory = "https://[::1/dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'https://[::1/dir' is not a URL (Invalid IPv6 URL)",
    ),
    (
        '[acme]\ndirectory = "https://ca.example/ dir"\n' + SITE,
        "tlsgate.toml:2: acme.directory: 'https://ca.example/ dir': a URL cannot contain spaces "
        "or control characters",
    ),
    (
        "[acme]\ndirectory = 443\n" + SITE,
        "tlsgate.toml:2: acme.directory: expected the ACME directory URL as a string, got 443",
    ),
    # -- email --------------------------------------------------------------------------------
    (
        ACME + 'email = "ops.example.com"\n' + SITE,
        "tlsgate.toml:3: acme.email: 'ops.example.com' is not an email address "
        "(one @, like you@example.com)",
    ),
    (
        ACME + 'email = ["ok@example.com", "a@b@c"]\n' + SITE,
        "tlsgate.toml:3: acme.email[1]: 'a@b@c' is not an email address "
        "(one @, like you@example.com)",
    ),
    (
        ACME + 'email = "@example.com"\n' + SITE,
        "tlsgate.toml:3: acme.email: '@example.com' is not an email address "
        "(one @, like you@example.com)",
    ),
    (
        ACME + 'email = "ops@"\n' + SITE,
        "tlsgate.toml:3: acme.email: 'ops@' is not an email address (one @, like you@example.com)",
    ),
    (
        ACME + 'email = "ops @example.com"\n' + SITE,
        "tlsgate.toml:3: acme.email: 'ops @example.com': an email address cannot contain spaces "
        "or control characters",
    ),
    (
        ACME + 'email = "mailto:ops@example.com"\n' + SITE,
        "tlsgate.toml:3: acme.email: 'mailto:ops@example.com': write the address without "
        "mailto: (tlsgate adds it)",
    ),
    (
        ACME + 'email = ["a@b", "a@b"]\n' + SITE,
        "tlsgate.toml:3: acme.email[1]: a@b is listed twice",
    ),
    (
        ACME + "email = 1\n" + SITE,
        "tlsgate.toml:3: acme.email: expected an email address or a list of them, got 1",
    ),
    (
        ACME + "email = [1]\n" + SITE,
        "tlsgate.toml:3: acme.email[0]: expected an email address as a string, got 1",
    ),
    # -- eab (the MAC key is never shown) -----------------------------------------------------
    (
        ACME + 'eab = "c2VjcmV0LW1hYy1rZXk"\n' + SITE,
        "tlsgate.toml:3: acme.eab: expected KEY_ID:BASE64URL_MAC_KEY (there is no ':')",
    ),
    (
        ACME + 'eab = ":c2VjcmV0LW1hYy1rZXk"\n' + SITE,
        "tlsgate.toml:3: acme.eab: expected KEY_ID:BASE64URL_MAC_KEY "
        "(the key id before ':' is empty)",
    ),
    (
        ACME + 'eab = "kid:"\n' + SITE,
        "tlsgate.toml:3: acme.eab: expected KEY_ID:BASE64URL_MAC_KEY "
        "(the MAC key after ':' is empty)",
    ),
    (
        ACME + 'eab = "kid:c2VjcmV0 LW1hYy1rZXk"\n' + SITE,
        "tlsgate.toml:3: acme.eab: the MAC key for key id 'kid' is not base64url",
    ),
    (
        ACME + 'eab = "kid:c2VjcmV0L"\n' + SITE,  # 9 characters cannot be base64
        "tlsgate.toml:3: acme.eab: the MAC key for key id 'kid' is not base64url",
    ),
    (
        ACME + 'eab = "kid:c2VjcmV0LW1hYy1rZXk==="\n' + SITE,
        "tlsgate.toml:3: acme.eab: the MAC key for key id 'kid' is not base64url",
    ),
    (
        ACME + 'eab = "k id:c2VjcmV0LW1hYy1rZXk"\n' + SITE,
        "tlsgate.toml:3: acme.eab: 'k id': a key id cannot contain spaces or control characters",
    ),
    (
        ACME + "eab = 1\n" + SITE,
        'tlsgate.toml:3: acme.eab: expected "KEY_ID:BASE64URL_MAC_KEY" or a table '
        "{ kid, hmac }, got 1",
    ),
    (
        ACME + "[acme.eab]\nkid = 'k'\n" + SITE,
        "tlsgate.toml:3: acme.eab: hmac is missing (kid and hmac go together)",
    ),
    (
        ACME + "eab = {}\n" + SITE,
        "tlsgate.toml:3: acme.eab: kid is missing (kid and hmac go together)",
    ),
    (
        ACME + "eab = { kid = '', hmac = 'AAAA' }\n" + SITE,
        "tlsgate.toml:3: acme.eab.kid: expected a key id, got an empty string",
    ),
    (
        ACME + "[acme.eab]\nkid = 'k'\nhmac = 5\n" + SITE,
        "tlsgate.toml:5: acme.eab.hmac: expected the MAC key as a base64url string, got 5",
    ),
    (
        ACME + "[acme.eab]\nkid = 'k'\nhmac = 'not base64'\n" + SITE,
        "tlsgate.toml:5: acme.eab.hmac: the MAC key for key id 'k' is not base64url",
    ),
    # -- challenges ---------------------------------------------------------------------------
    (
        ACME + 'challenges = ["http01"]\n' + SITE,
        "tlsgate.toml:3: acme.challenges[0]: 'http01' is not a challenge type "
        "(did you mean 'http-01'?)",
    ),
    (
        ACME + 'challenges = "TLS_ALPN_01"\n' + SITE,
        "tlsgate.toml:3: acme.challenges: 'TLS_ALPN_01' is not a challenge type "
        "(did you mean 'tls-alpn-01'?)",
    ),
    (
        ACME + 'challenges = "email-reply-00"\n' + SITE,
        "tlsgate.toml:3: acme.challenges: 'email-reply-00' is not a challenge type "
        "(known: http-01, tls-alpn-01, dns-01)",
    ),
    (
        ACME + 'challenges = ["http-01", "tls-alpn-01", "http-01"]\n' + SITE,
        "tlsgate.toml:3: acme.challenges[2]: http-01 is listed twice",
    ),
    (
        ACME + "challenges = []\n" + SITE,
        "tlsgate.toml:3: acme.challenges: at least one challenge type is required "
        "(http-01, tls-alpn-01, dns-01)",
    ),
    (
        ACME + "challenges = [1]\n" + SITE,
        "tlsgate.toml:3: acme.challenges[0]: expected a challenge type as a string, got 1",
    ),
    (
        ACME + "challenges = true\n" + SITE,
        "tlsgate.toml:3: acme.challenges: expected a challenge type or a list of them "
        "(http-01, tls-alpn-01, dns-01), got true",
    ),
    # -- the rules between keys ---------------------------------------------------------------
    (
        ACME + 'challenges = ["dns-01"]\n' + SITE,
        "tlsgate.toml:3: acme.challenges: dns-01 needs dns_hook (for site[0]): the command that "
        "publishes the TXT record",
    ),
    (
        ACME + SITE + '[site.acme]\nchallenges = ["http-01", "dns-01"]\n',
        "tlsgate.toml:7: site[0].acme.challenges: dns-01 needs dns_hook: the command that "
        "publishes the TXT record",
    ),
    (
        ACME + WILD,
        "tlsgate.toml:4: site[0].hosts[1]: *.example.com can only be validated by dns-01: "
        "set dns_hook",
    ),
    (
        ACME + 'dns_hook = "hook"\nchallenges = ["http-01", "tls-alpn-01"]\n' + WILD,
        "tlsgate.toml:6: site[0].hosts[1]: *.example.com can only be validated by dns-01: "
        'add "dns-01" to challenges',
    ),
    (
        '[server]\nhttp_listen = false\n[acme]\ndirectory = "https://ca.example/d"\n'
        'challenges = ["tls-alpn-01", "http-01"]\n' + SITE,
        "tlsgate.toml:5: acme.challenges: http-01 needs a plain-HTTP listener for the CA to "
        "connect to, and server.http_listen is off",
    ),
    (
        "[server]\nhttp_listen = false\n"
        + SITE
        + '[site.acme]\ndirectory = "https://ca.example/d"\nchallenges = "http-01"\n',
        "tlsgate.toml:8: site[0].acme.challenges: http-01 needs a plain-HTTP listener for the CA "
        "to connect to, and server.http_listen is off",
    ),
    # -- the other keys -----------------------------------------------------------------------
    (
        ACME + 'dns_hook = ""\n' + SITE,
        "tlsgate.toml:3: acme.dns_hook: expected a command, got an empty string",
    ),
    (
        ACME + 'dns_hook = "update \'zone"\n' + SITE,
        'tlsgate.toml:3: acme.dns_hook: "update \'zone": cannot split into a command '
        "(No closing quotation)",
    ),
    (
        ACME + "dns_hook = ['a', 'b']\n" + SITE,
        "tlsgate.toml:3: acme.dns_hook: expected a command as a string, got a list",
    ),
    (
        ACME + "dns_wait = -1\n" + SITE,
        "tlsgate.toml:3: acme.dns_wait: -1: must be 0 or more seconds",
    ),
    (
        ACME + "dns_wait = inf\n" + SITE,
        "tlsgate.toml:3: acme.dns_wait: inf: expected a finite number of seconds",
    ),
    (
        ACME + 'dns_wait = "30s"\n' + SITE,
        "tlsgate.toml:3: acme.dns_wait: expected a number of seconds, got '30s'",
    ),
    (ACME + 'ca = ""\n' + SITE, "tlsgate.toml:3: acme.ca: expected a path, got an empty string"),
    (ACME + "ca = 1\n" + SITE, "tlsgate.toml:3: acme.ca: expected a path as a string, got 1"),
    (
        ACME + 'profile = ""\n' + SITE,
        "tlsgate.toml:3: acme.profile: expected a profile name, got an empty string",
    ),
    (
        ACME + 'profile = "short lived"\n' + SITE,
        "tlsgate.toml:3: acme.profile: 'short lived': a profile name cannot contain spaces",
    ),
    (
        ACME + "profile = 1\n" + SITE,
        "tlsgate.toml:3: acme.profile: expected a profile name as a string, got 1",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_error_messages(text: str, message: str) -> None:
    assert error(text) == message


def test_an_inherited_value_is_reported_where_it_was_written_for_the_site_it_fails() -> None:
    """site[0] sets its own hook; site[1] inherits dns-01 without one, from line 3."""
    text = ACME + 'challenges = "dns-01"\n' + SITE + '[site.acme]\ndns_hook = "h"\n'
    text += SITE.replace("example.com", "b.example")
    assert error(text) == (
        "tlsgate.toml:3: acme.challenges: dns-01 needs dns_hook (for site[1]): the command that "
        "publishes the TXT record"
    )


def test_a_wildcard_on_a_site_without_acme_needs_nothing() -> None:
    assert loads(WILD).sites[0].acme is None
    text = ACME + WILD + 'issuer = "internal"\n'
    assert loads(text).sites[0].acme is None


def test_the_unused_top_level_table_is_still_checked() -> None:
    """[acme] applies to no site here, yet a bad value in it is still an error at its line."""
    text = '[acme]\ndirectory = "http://x"\n' + SITE + 'issuer = "internal"\n'
    assert error(text).startswith("tlsgate.toml:2: acme.directory: 'http://x': ")


# ---------------------------------------------------------------------------------------------
# eab_key: the one parser for the file and every --eab
# ---------------------------------------------------------------------------------------------


def test_eab_key_names_its_flag() -> None:
    assert eab_key(f"kid:{KEY64}") == ("kid", KEY)
    assert eab_key(f"urn:kid:1:{KEY64}") == ("urn:kid:1", KEY)  # the last ':' ends the key id
    with pytest.raises(ConfigError) as info:
        eab_key("nokey")
    assert str(info.value) == "--eab: expected KEY_ID:BASE64URL_MAC_KEY (there is no ':')"
    with pytest.raises(ConfigError) as info:
        eab_key("kid:!!!!", "--account-eab")
    assert str(info.value) == "--account-eab: the MAC key for key id 'kid' is not base64url"


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters=":"),
        min_size=12,
        max_size=40,
    )
)
def test_eab_messages_never_show_the_mac_key(mac: str) -> None:
    """The key id may be echoed; what follows the last ':' is a secret and never is."""
    try:
        eab_key(f"kid:{mac}")
    except ConfigError as exc:
        assert mac not in str(exc), str(exc)


def test_challenge_types_are_the_ones_the_model_documents() -> None:
    assert CHALLENGE_TYPES == ("http-01", "tls-alpn-01", "dns-01")
    assert set(AcmeSettings(LE).challenges) <= set(CHALLENGE_TYPES)
