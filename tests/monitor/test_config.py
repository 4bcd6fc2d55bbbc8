"""``monitor.toml``: the shape it accepts, and errors that point at the file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlsgate.config import ListenAddress
from tlsgate.errors import ConfigError
from tlsgate.monitor.config import (
    EndpointTarget,
    FileTarget,
    MonitorConfig,
    StoreTarget,
    load,
    loads,
)

FULL = """\
[monitor]
interval = "5m"
concurrency = 20
timeout = "3s"
warn_days = 28
critical_days = 14
revocation = false
listen = "127.0.0.1:9325"
webhook = "http://127.0.0.1:9000/hook"
webhook_timeout = 2.5
ca = "roots.pem"

[[target]]
endpoint = "https://example.com/login"
servername = "www.example.com"
connect = "127.0.0.1:8443"
ca = "/etc/other.pem"
name = "shop"
labels = { team = "payments", tier = "1" }

[[target]]
endpoint = "example.org"

[[target]]
file = "certs/site.pem"

[[target]]
store = "/var/lib/tlsgate"
"""


def error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        loads(text, source="monitor.toml")
    return str(info.value)


def test_full_example(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(FULL)
    config = load(path)
    assert config.interval == 300
    assert config.concurrency == 20
    assert config.timeout == 3
    assert (config.warn_days, config.critical_days) == (28, 14)
    assert config.revocation is False
    assert config.listen == ListenAddress("127.0.0.1", 9325)
    assert config.webhook == "http://127.0.0.1:9000/hook"
    assert config.webhook_timeout == 2.5
    assert config.ca == tmp_path / "roots.pem"  # relative to the config file, not the cwd
    shop, org, file, store = config.targets
    assert isinstance(shop, EndpointTarget)
    assert shop.name == "shop"
    assert (shop.endpoint.host, shop.endpoint.port) == ("example.com", 443)
    assert shop.endpoint.servername == "www.example.com"
    assert shop.endpoint.connect == ("127.0.0.1", 8443)
    assert shop.ca == Path("/etc/other.pem")
    assert shop.labels == {"team": "payments", "tier": "1"}
    assert isinstance(org, EndpointTarget) and org.name == "example.org"
    assert config.trust_path(org) == tmp_path / "roots.pem"  # the [monitor] default
    assert config.trust_path(shop) == Path("/etc/other.pem")
    assert file == FileTarget("certs/site.pem", tmp_path / "certs" / "site.pem")
    assert store == StoreTarget("/var/lib/tlsgate", Path("/var/lib/tlsgate"))
    assert config.trust_path(store) is None  # a store is trusted through its own root


def test_defaults() -> None:
    config = loads('[[target]]\nendpoint = "example.com"\n')
    assert config == MonitorConfig(targets=config.targets, source="monitor.toml")
    assert (config.interval, config.concurrency, config.timeout) == (300, 50, 10)
    assert (config.warn_days, config.critical_days) == (21, 7)
    assert config.listen is None and config.webhook is None and config.ca is None


def test_sni_names_on_one_address_stay_distinct_targets() -> None:
    text = "".join(
        f'[[target]]\nendpoint = "127.0.0.1:8443"\nservername = "n{i}.test"\n' for i in range(3)
    )
    names = [t.name for t in loads(text).targets]
    assert names == ["n0.test@127.0.0.1:8443", "n1.test@127.0.0.1:8443", "n2.test@127.0.0.1:8443"]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [('"30s"', 30), ('"5m"', 300), ('"1h"', 3600), ('"2d"', 172800), ('"1h30m"', 5400), ("90", 90)],
)
def test_durations(value: str, seconds: float) -> None:
    config = loads(f'[monitor]\ninterval = {value}\n[[target]]\nendpoint = "a.test"\n')
    assert config.interval == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[target]]\nendpoint = "a.test"\n[[target]]\nendpoint = "b.test"\n'
            '[[target]]\nendpoint = "c.test"\n[[target]]\nendpont = "d.test"\n',
            "monitor.toml:8: target[3].endpont: unknown key (did you mean 'endpoint'?)",
        ),
        (
            '[monitor]\nintervall = "5m"\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.intervall: unknown key (did you mean 'interval'?)",
        ),
        (
            '[[target]]\nendpoint = "a.test"\ninterval = "5m"\n',
            "monitor.toml:3: target[0].interval: unknown key (interval belongs in [monitor])",
        ),
        (
            '[monitor]\ninterval = "5 minutes"\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.interval: '5 minutes': expected a duration like",
        ),
        (
            '[monitor]\ntimeout = 0\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.timeout: 0: must be more than 0 seconds",
        ),
        (
            '[monitor]\nconcurrency = 0\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.concurrency: 0: must be at least 1",
        ),
        (
            '[monitor]\nwarn_days = 5\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.warn_days: critical_days (7) is more than warn_days (5)",
        ),
        (
            '[monitor]\nwebhook = "ftp://x/"\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.webhook: 'ftp://x/': expected an http:// or https:// URL",
        ),
        (
            '[monitor]\nlisten = "127.0.0.1"\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:2: monitor.listen: '127.0.0.1': a listen address needs a port",
        ),
        ("[monitor]\n", "monitor.toml: at least one [[target]] is required"),
        (
            '[target]\nendpoint = "a.test"\n',
            "monitor.toml:1: target: expected [[target]] tables, got a single table",
        ),
        (
            "[[target]]\nname = 'x'\n",
            "monitor.toml:1: target[0]: expected one of endpoint, file or store",
        ),
        (
            '[[target]]\nendpoint = "a.test"\nfile = "a.pem"\n',
            "monitor.toml:3: target[0].file: a target is one of endpoint, file or store",
        ),
        (
            '[[target]]\nfile = "a.pem"\nservername = "a.test"\n',
            "monitor.toml:3: target[0].servername: servername does not apply to a file target",
        ),
        (
            '[[target]]\nstore = "/var/lib/tlsgate"\nca = "x.pem"\n',
            "monitor.toml:3: target[0].ca: ca does not apply to a store target",
        ),
        (
            '[[target]]\nendpoint = "a.test:99999"\n',
            "monitor.toml:2: target[0].endpoint: 'a.test:99999': port '99999' is not a number",
        ),
        (
            '[[target]]\nendpoint = "a.test"\nconnect = "127.0.0.1:x"\n',
            "monitor.toml:3: target[0].connect: '127.0.0.1:x': port 'x'",
        ),
        (
            '[[target]]\nendpoint = "a.test"\nlabels = { "team name" = "x" }\n',
            'monitor.toml:3: target[0].labels."team name": a label name is letters',
        ),
        (
            '[[target]]\nendpoint = "a.test"\nlabels = { team = 1 }\n',
            "monitor.toml:3: target[0].labels.team: expected a string, got 1",
        ),
        (
            '[[target]]\nendpoint = "a.test"\n\n[[target]]\nendpoint = "a.test"\n',
            "monitor.toml:4: target[1]: the name 'a.test' is already taken by target[0] "
            "(line 1); names must be unique",
        ),
        (
            '[[target]]\nendpoint = "a.test"\nname = "x"\n[[target]]\nfile = "x.pem"\nname = "x"\n',
            "monitor.toml:4: target[1]: the name 'x' is already taken by target[0]",
        ),
        ("[monitor\n", "monitor.toml:1:9: "),
        ('[[target]]\nendpoint = "a.test"\n[alerts]\n', "monitor.toml:3: alerts: unknown key"),
    ],
)
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    assert error(text).startswith(message)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"monitor\.toml: no such file"):
        load(tmp_path / "monitor.toml")


def test_a_thousand_targets() -> None:
    text = "[monitor]\nconcurrency = 50\n" + "".join(
        f'[[target]]\nendpoint = "n{i:04}.test:8443"\nconnect = "127.0.0.1:8443"\n'
        f'labels = {{ shard = "{i % 4}" }}\n'
        for i in range(1000)
    )
    config = loads(text)
    assert len(config.targets) == 1000
    assert len({t.name for t in config.targets}) == 1000
    last = config.targets[-1]
    assert isinstance(last, EndpointTarget)
    assert last.endpoint.name == "n0999.test" and last.endpoint.dial == ("127.0.0.1", 8443)
