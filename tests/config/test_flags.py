"""from_flags(): the same checks, named after the flags (tlsgate.config.flags)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tlsgate.config import (
    AcmeSettings,
    ClientAuth,
    Config,
    ListenAddress,
    ServerConfig,
    SiteConfig,
    Upstream,
    from_flags,
    loads,
)
from tlsgate.errors import ConfigError
from tlsgate.mtls.policy import AllowList


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


# ---------------------------------------------------------------------------------------------
# --acme and its companions
# ---------------------------------------------------------------------------------------------

LE = "https://acme-v02.api.letsencrypt.org/directory"
MAC = "c2VjcmV0LW1hYy1rZXk"  # base64url of b"secret-mac-key"


def test_acme_flags_make_the_site_acme() -> None:
    cfg = from_flags(
        ["example.com", "*.example.com"],
        ["127.0.0.1:8000"],
        acme=LE,
        acme_ca="root.pem",
        email=["ops@example.com", "me@localhost"],
        eab=f"kid-1:{MAC}",
        challenges=["dns-01", "tls-alpn-01"],
        dns_hook="/usr/local/bin/dns-update",
    )
    site = cfg.sites[0]
    assert site.issuer == "acme"
    assert site.acme == AcmeSettings(
        directory=LE,
        email=("ops@example.com", "me@localhost"),
        eab=("kid-1", b"secret-mac-key"),
        challenges=("dns-01", "tls-alpn-01"),
        ca=Path("root.pem"),
        dns_hook="/usr/local/bin/dns-update",
    )


@pytest.mark.parametrize(
    ("kwargs", "challenges"),
    [
        ({}, ("http-01", "tls-alpn-01")),
        ({"http_listen": []}, ("tls-alpn-01",)),
        ({"dns_hook": "hook"}, ("dns-01",)),
    ],
)
def test_acme_flags_default_challenges(
    kwargs: dict[str, object], challenges: tuple[str, ...]
) -> None:
    cfg = from_flags(["example.com"], ["127.0.0.1:8000"], acme=LE, **kwargs)  # type: ignore[arg-type]
    assert cfg.sites[0].acme is not None and cfg.sites[0].acme.challenges == challenges


def test_acme_flags_match_the_equivalent_file() -> None:
    flags = from_flags(
        ["*.example.com"],
        ["127.0.0.1:8000"],
        acme=LE,
        email=["ops@example.com"],
        eab=f"kid-1:{MAC}",
        challenges=["dns-01"],
        dns_hook="hook",
    )
    text = f'[acme]\ndirectory = "{LE}"\nemail = "ops@example.com"\neab = "kid-1:{MAC}"\n'
    text += 'challenges = "dns-01"\ndns_hook = "hook"\n'
    text += '[[site]]\nhosts = "*.example.com"\nupstream = "127.0.0.1:8000"\n'
    assert flags.sites == loads(text).sites


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"email": ["ops@example.com"]},
            "--email: needs --acme DIRECTORY_URL (without it the certificate comes from the "
            "internal CA)",
        ),
        (
            {"acme_ca": "root.pem"},
            "--acme-ca: needs --acme DIRECTORY_URL (without it the certificate comes from the "
            "internal CA)",
        ),
        (
            {"eab": "k:AAAA"},
            "--eab: needs --acme DIRECTORY_URL (without it the certificate "
            "comes from the internal CA)",
        ),
        (
            {"challenges": ["http-01"]},
            "--challenge: needs --acme DIRECTORY_URL (without it the "
            "certificate comes from the internal CA)",
        ),
        (
            {"dns_hook": "h"},
            "--dns-hook: needs --acme DIRECTORY_URL (without it the certificate "
            "comes from the internal CA)",
        ),
        (
            {"acme": "http://acme.example/dir"},
            "--acme: 'http://acme.example/dir': the ACME directory must be an https:// URL "
            "(RFC 8555 requires HTTPS: over plain HTTP anyone on the path could answer for the "
            "CA)",
        ),
        ({"acme": LE, "acme_ca": ""}, "--acme-ca: expected a path, got an empty string"),
        (
            {"acme": LE, "email": ["ops.example.com"]},
            "--email: 'ops.example.com' is not an email address (one @, like you@example.com)",
        ),
        ({"acme": LE, "email": ["a@b", "a@b"]}, "--email: a@b is listed twice"),
        ({"acme": LE, "eab": MAC}, "--eab: expected KEY_ID:BASE64URL_MAC_KEY (there is no ':')"),
        (
            {"acme": LE, "eab": "kid:not base64"},
            "--eab: the MAC key for key id 'kid' is not base64url",
        ),
        (
            {"acme": LE, "challenges": ["http01"]},
            "--challenge: 'http01' is not a challenge type (did you mean 'http-01'?)",
        ),
        ({"acme": LE, "challenges": ["dns-01", "dns-01"]}, "--challenge: dns-01 is listed twice"),
        (
            {"acme": LE, "challenges": []},
            "--challenge: at least one challenge type is required (http-01, tls-alpn-01, dns-01)",
        ),
        (
            {"acme": LE, "challenges": ["dns-01"]},
            "--challenge: dns-01 needs --dns-hook: the command that publishes the TXT record",
        ),
        (
            {"acme": LE, "challenges": ["http-01"], "http_listen": []},
            "--challenge: http-01 needs a plain-HTTP listener for the CA to connect to, and "
            "--no-http turned it off",
        ),
        (
            {"acme": LE, "hosts": ["example.com", "*.example.com"]},
            "--host: *.example.com can only be validated by dns-01: set --dns-hook",
        ),
        (
            {"acme": LE, "hosts": ["*.example.com"], "dns_hook": "h", "challenges": ["http-01"]},
            "--host: *.example.com can only be validated by dns-01: add --challenge dns-01",
        ),
        ({"acme": LE, "dns_hook": "  "}, "--dns-hook: expected a command, got only spaces"),
        # the contrast cases: the same values, made whole
        ({"acme": LE, "challenges": ["dns-01"], "dns_hook": "h"}, None),
        ({"acme": LE, "hosts": ["*.example.com"], "dns_hook": "h"}, None),
        ({"acme": LE, "challenges": ["tls-alpn-01"], "http_listen": []}, None),
    ],
)
def test_acme_flag_errors(kwargs: dict[str, object], message: str | None) -> None:
    test_from_flags_errors(kwargs, message)


@pytest.mark.parametrize(
    ("key", "flag", "value"),
    [
        ("directory", "acme", "https://"),
        ("email", "email", "x@y z"),
        ("eab", "eab", "k:@@"),
        ("challenges", "challenges", "dns"),
    ],
)
def test_acme_flag_and_file_messages_agree(key: str, flag: str, value: str) -> None:
    text = f'[acme]\ndirectory = "{LE}"\n{key} = "{value}"\n' if key != "directory" else ""
    text = text or f'[acme]\ndirectory = "{value}"\n'
    text += '[[site]]\nhosts = "example.com"\nupstream = "127.0.0.1:8000"\n'
    with pytest.raises(ConfigError) as from_file:
        loads(text)
    kwargs: dict[str, object] = {
        "acme": LE,
        flag: [value] if flag in ("email", "challenges") else value,
    }
    with pytest.raises(ConfigError) as from_flag:
        from_flags(["example.com"], ["127.0.0.1:8000"], **kwargs)  # type: ignore[arg-type]
    line = 2 if key == "directory" else 3
    assert (
        str(from_file.value).partition(f"tlsgate.toml:{line}: acme.{key}: ")[2]
        == str(from_flag.value).partition(": ")[2]
    )


# ---------------------------------------------------------------------------------------------
# --client-auth and its lists (mTLS without a file, like ghostunnel's flags)
# ---------------------------------------------------------------------------------------------

WEB = "spiffe://example.org/ns/prod/sa/*"


def test_client_auth_flags_make_the_site_ask_for_certificates() -> None:
    cfg = from_flags(
        ["localhost"],
        ["127.0.0.1:8000"],
        client_auth="require",
        client_ca=["clients.pem", "partners.pem"],
        allow_spiffe=[WEB, "spiffe://example.org/ns/ops/**"],
        allow_dns=["*.svc.internal"],
        allow_cn=["backup job"],
        allow_ou=["SRE"],
    )
    assert cfg.sites[0].client_auth == ClientAuth(
        mode="require",
        trust=(Path("clients.pem"), Path("partners.pem")),
        allow=AllowList(
            spiffe=(WEB, "spiffe://example.org/ns/ops/**"),
            dns=("*.svc.internal",),
            cn=("backup job",),
            ou=("SRE",),
        ),
    )
    # Alone, the mode trusts the internal CA and lets in any certificate it verifies.
    optional = from_flags(["localhost"], ["127.0.0.1:8000"], client_auth="optional")
    assert optional.sites[0].client_auth == ClientAuth(mode="optional")
    # "off" is the file's default, and the same as leaving the flag out.
    assert (
        from_flags(["localhost"], ["127.0.0.1:8000"], client_auth="off").sites[0].client_auth
        is None
    )
    assert from_flags(["localhost"], ["127.0.0.1:8000"]).sites[0].client_auth is None


def test_client_auth_flags_match_the_equivalent_file() -> None:
    flags = from_flags(
        ["localhost"],
        ["127.0.0.1:8000"],
        client_auth="optional",
        client_ca=["ca.pem"],
        allow_spiffe=[WEB],
        allow_ou=["SRE", "Platform"],
    )
    text = '[[site]]\nhosts = "localhost"\nupstream = "127.0.0.1:8000"\n[site.client_auth]\n'
    text += f'mode = "optional"\ntrust = "ca.pem"\nallow_spiffe = ["{WEB}"]\n'
    text += 'allow_ou = ["SRE", "Platform"]\n'
    assert flags.sites == loads(text).sites


NEEDS_MODE = (
    "needs --client-auth require or optional (without it no client certificate is asked for)"
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"client_ca": ["ca.pem"]}, f"--client-ca: {NEEDS_MODE}"),
        ({"allow_spiffe": [WEB]}, f"--allow-spiffe: {NEEDS_MODE}"),
        ({"allow_dns": ["a.internal"]}, f"--allow-dns: {NEEDS_MODE}"),
        ({"allow_cn": ["web"]}, f"--allow-cn: {NEEDS_MODE}"),
        ({"allow_ou": ["SRE"]}, f"--allow-ou: {NEEDS_MODE}"),
        (
            {"client_auth": "off", "allow_cn": ["web"]},
            "--allow-cn: would be ignored with --client-auth off: use require or optional",
        ),
        (
            {"client_auth": "required"},
            '--client-auth: expected "off" or "optional" or "require", got \'required\' '
            "(did you mean 'require'?)",
        ),
        (
            {"client_auth": "require", "allow_spiffe": ["example.org/ns/prod"]},
            "--allow-spiffe: 'example.org/ns/prod': a SPIFFE pattern starts with spiffe://",
        ),
        (
            {"client_auth": "require", "allow_dns": ["*.internal"]},
            "--allow-dns: '*.internal': a wildcard needs at least two labels after it "
            "(like *.example.com)",
        ),
        (
            {"client_auth": "require", "allow_cn": [""]},
            "--allow-cn: expected a common name, got an empty string",
        ),
        (
            {"client_auth": "require", "allow_ou": ["SRE", "SRE"]},
            "--allow-ou: 'SRE' is listed twice",
        ),
        (
            {"client_auth": "require", "client_ca": ["ca.pem", "ca.pem"]},
            "--client-ca: 'ca.pem' is listed twice",
        ),
        (
            {"client_auth": "require", "client_ca": []},
            "--client-ca: an empty list: leave --client-ca out to trust the internal CA",
        ),
        (
            {"client_auth": "require", "allow_spiffe": []},
            "--allow-spiffe: an empty list: leave --allow-spiffe out (no allow list at all means "
            "any verified certificate)",
        ),
        # the contrast cases: the same lists, with a mode that asks for certificates
        ({"client_auth": "optional", "client_ca": ["ca.pem"], "allow_cn": ["web"]}, None),
        ({"client_auth": "require", "allow_spiffe": [WEB], "allow_dns": ["a.internal"]}, None),
    ],
)
def test_client_auth_flag_errors(kwargs: dict[str, object], message: str | None) -> None:
    test_from_flags_errors(kwargs, message)


@pytest.mark.parametrize(
    ("key", "flag", "value"),
    [
        ("mode", "client_auth", "yes"),
        ("allow_spiffe", "allow_spiffe", "spiffe://Example.org/x"),
        ("allow_spiffe", "allow_spiffe", "spiffe://example.org/a/**/b"),
        ("allow_dns", "allow_dns", "*.*.example.com"),
        ("allow_dns", "allow_dns", "under_score.example"),
        ("allow_cn", "allow_cn", ""),
        ("trust", "client_ca", ""),
    ],
)
def test_client_auth_flag_and_file_messages_agree(key: str, flag: str, value: str) -> None:
    text = '[[site]]\nhosts = "localhost"\nupstream = "127.0.0.1:8000"\n[site.client_auth]\n'
    text += f'mode = "{value}"\n' if key == "mode" else f'mode = "require"\n{key} = "{value}"\n'
    with pytest.raises(ConfigError) as from_file:
        loads(text)
    kwargs: dict[str, object] = {"client_auth": value if key == "mode" else "require"}
    if key != "mode":
        kwargs[flag] = [value]
    with pytest.raises(ConfigError) as from_flag:
        from_flags(["localhost"], ["127.0.0.1:8000"], **kwargs)  # type: ignore[arg-type]
    line = 5 if key == "mode" else 6
    assert (
        str(from_file.value).partition(f"tlsgate.toml:{line}: site[0].client_auth.{key}: ")[2]
        == str(from_flag.value).partition(": ")[2]
    )


# ---------------------------------------------------------------------------------------------
# tlsgate serve: the flags reach from_flags
# ---------------------------------------------------------------------------------------------


def _serve(*argv: str) -> Config:
    from tlsgate.cli import build_parser
    from tlsgate.cli.serve import _config

    return _config(build_parser().parse_args(["serve", *argv]))


def test_serve_passes_the_acme_flags() -> None:
    cfg = _serve(
        "--host", "*.example.com", "--to", "http://127.0.0.1:8000", "--acme", LE,
        "--acme-ca", "root.pem", "--email", "a@example.com", "--email", "b@example.com",
        "--eab", f"kid:{MAC}", "--challenge", "dns-01", "--challenge", "tls-alpn-01",
        "--dns-hook", "hook", "--no-http",
    )  # fmt: skip
    assert cfg.sites[0].acme == AcmeSettings(
        directory=LE,
        email=("a@example.com", "b@example.com"),
        eab=("kid", b"secret-mac-key"),
        challenges=("dns-01", "tls-alpn-01"),
        ca=Path("root.pem"),
        dns_hook="hook",
    )
    assert _serve("--host", "example.com", "--to", "127.0.0.1:8000").sites[0].issuer == "internal"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--email", "a@example.com"],
            "--email: needs --acme DIRECTORY_URL (without it the certificate comes from the "
            "internal CA)",
        ),
        (
            ["--acme", LE, "--cert", "c.pem", "--key", "k.pem"],
            "--cert: a site gets its certificate from files or from an issuer, not both "
            "(drop --cert/--key or --acme)",
        ),
    ],
)
def test_serve_refuses_acme_flag_mistakes(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _serve("--host", "example.com", "--to", "127.0.0.1:8000", *argv)
    assert str(info.value) == message


def test_serve_refuses_acme_flags_with_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        _serve("-c", str(tmp_path / "tlsgate.toml"), "--acme", LE)
    assert str(info.value) == "--acme: with -c FILE, ACME settings go in the file's [acme]"


def test_serve_passes_the_client_auth_flags() -> None:
    cfg = _serve(
        "--host", "localhost", "--to", "http://127.0.0.1:8000", "--client-auth", "require",
        "--client-ca", "ca.pem", "--allow-spiffe", WEB, "--allow-spiffe", "spiffe://x.org/job",
        "--allow-dns", "a.internal", "--allow-cn", "web", "--allow-ou", "SRE",
    )  # fmt: skip
    assert cfg.sites[0].client_auth == ClientAuth(
        mode="require",
        trust=(Path("ca.pem"),),
        allow=AllowList(
            spiffe=(WEB, "spiffe://x.org/job"), dns=("a.internal",), cn=("web",), ou=("SRE",)
        ),
    )
    assert _serve("--host", "localhost", "--to", "127.0.0.1:8000").sites[0].client_auth is None
    with pytest.raises(ConfigError) as info:
        _serve("--host", "localhost", "--to", "127.0.0.1:8000", "--allow-spiffe", WEB)
    assert str(info.value) == f"--allow-spiffe: {NEEDS_MODE}"


@pytest.mark.parametrize(
    "argv", [["--client-auth", "require"], ["--client-ca", "ca.pem"], ["--allow-ou", "SRE"]]
)
def test_serve_refuses_client_auth_flags_with_a_config_file(
    tmp_path: Path, argv: list[str]
) -> None:
    """Ignoring them would let in clients the command line meant to keep out."""
    with pytest.raises(ConfigError) as info:
        _serve("-c", str(tmp_path / "tlsgate.toml"), *argv)
    assert str(info.value) == (
        f"{argv[0]}: with -c FILE, client certificate settings go in the file's [site.client_auth]"
    )


def test_serve_max_connections_per_worker_flag(tmp_path: Path) -> None:
    """The flag sets recycling in both forms (over the file's value); off without it."""
    flags = ("--host", "localhost", "--to", "127.0.0.1:8000")
    assert _serve(*flags).server.max_connections_per_worker == 0
    server = _serve(*flags, "--max-connections-per-worker", "500").server
    assert server == replace(_serve(*flags).server, max_connections_per_worker=500)
    path = tmp_path / "tlsgate.toml"
    path.write_text(
        "[server]\nmax_connections_per_worker = 10\n"
        "[[site]]\nhosts = 'example.com'\nupstream = '127.0.0.1:8000'\n"
    )
    assert _serve("-c", str(path)).server.max_connections_per_worker == 10
    cfg = _serve("-c", str(path), "--max-connections-per-worker", "0")
    assert cfg.server.max_connections_per_worker == 0


@pytest.mark.parametrize("bad", ["-1", "many", "1.5"])
def test_serve_refuses_a_bad_max_connections_per_worker(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        _serve("--host", "localhost", "--to", "127.0.0.1:8000", "--max-connections-per-worker", bad)
    assert info.value.code == 2
    assert "--max-connections-per-worker" in capsys.readouterr().err
