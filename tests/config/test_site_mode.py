"""``mode = "tcp"`` sites: bytes relayed after TLS, to tcp:// upstreams, without HTTP options."""

from __future__ import annotations

import pytest

from tlsgate.config import Upstream, loads
from tlsgate.errors import ConfigError


def test_tcp_site_with_tcp_upstreams() -> None:
    config = loads(
        '[[site]]\nhosts = "db.example.com"\nmode = "tcp"\n'
        'upstream = ["tcp://10.0.0.5:5432", "10.0.0.6:5432"]\n'
    )
    site = config.sites[0]
    assert site.mode == "tcp"
    assert site.upstreams == (Upstream("10.0.0.5", 5432), Upstream("10.0.0.6", 5432))
    assert (
        loads('[[site]]\nhosts = "a.example"\nupstream = "127.0.0.1:1"\n').sites[0].mode == "http"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'mode = "tcp"\nupstream = "http://10.0.0.5:5432"\n',
            "tlsgate.toml:4: site[0].upstream: 'http://10.0.0.5:5432' is not a tcp://host:port URL",
        ),
        (
            'mode = "tcp"\nupstream = "tcp://10.0.0.5"\n',
            "tlsgate.toml:4: site[0].upstream: 'tcp://10.0.0.5' is not a tcp://host:port URL "
            "(a tcp upstream needs its port)",
        ),
        (
            'upstream = "tcp://10.0.0.5:5432"\n',
            "tlsgate.toml:3: site[0].upstream: 'tcp://10.0.0.5:5432' is not an http://host:port "
            'URL (set mode = "tcp" on the site to relay to one)',
        ),
        (
            'mode = "tcp"\nupstream = "tcp://10.0.0.5:1"\nhsts = true\n',
            'tlsgate.toml:5: site[0].hsts: hsts has no effect on a mode = "tcp" site',
        ),
        (
            'mode = "udp"\nupstream = "tcp://10.0.0.5:1"\n',
            "tlsgate.toml:3: site[0].mode: expected",
        ),
    ],
)
def test_tcp_site_errors(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        loads('[[site]]\nhosts = "db.example.com"\n' + body)
    assert str(info.value).startswith(message), str(info.value)
