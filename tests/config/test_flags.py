"""from_flags(): the same checks, named after the flags (tlsgate.config.flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.config import (
    Config,
    ListenAddress,
    ServerConfig,
    SiteConfig,
    Upstream,
    from_flags,
    loads,
)
from tlsgate.errors import ConfigError


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
