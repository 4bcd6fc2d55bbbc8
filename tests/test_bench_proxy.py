"""bench/proxy.py's own logic, without running a proxy: which proxies a command line asks for,
the order they run in, and the configurations it writes for Caddy and the reference nginx (the
issue's comparison is only as good as those)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from proxybench.caddy import caddy_argv, caddy_config
from proxybench.cli import proxy_specs
from proxybench.modes import run_order
from proxybench.nginx import NGINX_ACCESS_LOG, NGINX_NO_ACCESS_LOG, PROXY_CONF
from proxybench.proxies import ProxySpec, expand_template

TEMPLATE = "{root}/.venv/bin/tlsgate serve --listen 127.0.0.1:{port} --access-log {access_log}"


def test_one_bare_template_keeps_its_meaning_with_label() -> None:
    assert proxy_specs([TEMPLATE], "tlsgate", caddy=False) == [
        ProxySpec("nginx", None),
        ProxySpec("tlsgate", TEMPLATE, "command"),
    ]
    assert proxy_specs([TEMPLATE], None, caddy=False)[1].label == "proxy"
    assert proxy_specs([], None, caddy=False) == [ProxySpec("nginx", None)]
    assert proxy_specs(["nginx"], None, caddy=False)[1] == ProxySpec("nginx (B)", None)


def test_several_labelled_proxies_and_caddy_in_one_run() -> None:
    specs = proxy_specs(
        [f"tlsgate={TEMPLATE}", f"pure=env TLSGATE_PURE=1 {TEMPLATE}"], None, caddy=True
    )
    assert [(s.label, s.kind) for s in specs] == [
        ("nginx", "nginx"),
        ("tlsgate", "command"),
        ("pure", "command"),
        ("caddy", "caddy"),
    ]
    assert specs[2].template == f"env TLSGATE_PURE=1 {TEMPLATE}"
    # `--proxy-cmd caddy` is the same Caddy; --caddy does not add a second one.
    assert [s.label for s in proxy_specs(["caddy"], None, caddy=True)] == ["nginx", "caddy"]
    assert proxy_specs(["c2=caddy"], None, caddy=False)[1] == ProxySpec("c2", None, "caddy")


def test_a_template_with_an_equals_sign_is_not_taken_for_a_label() -> None:
    template = "/usr/bin/env A=1 {root}/proxy --flag=x"
    assert proxy_specs([template], None, caddy=False)[1].template == template


def test_two_proxies_with_one_label_are_refused() -> None:
    with pytest.raises(ValueError, match="tlsgate"):
        proxy_specs([f"tlsgate={TEMPLATE}", f"tlsgate={TEMPLATE}"], None, caddy=False)


def test_nginx_runs_next_to_each_of_one_or_two_proxies_under_test() -> None:
    assert run_order(1) == [0]
    assert run_order(2) == [0, 1]
    assert run_order(3) == [1, 0, 2]
    for count in (2, 3):
        for order in (run_order(count), run_order(count)[::-1]):
            position = order.index(0)
            neighbours = set(order[max(0, position - 1) : position + 2])
            assert neighbours == set(range(count))
    assert sorted(run_order(5)) == [0, 1, 2, 3, 4]


def test_templates_get_an_access_log_path() -> None:
    words = expand_template(TEMPLATE, {"root": "/r", "port": 1, "access_log": "/s/access.log"})
    assert words[-1] == "/s/access.log"


def test_caddy_is_local_and_has_no_admin_api_acme_or_access_log_by_default(
    tmp_path: Path,
) -> None:
    cert, key = tmp_path / "fullchain.pem", tmp_path / "key.pem"
    config = caddy_config(
        tmp_path / "caddy",
        port=8443,
        upstream_port=8080,
        cert=cert,
        key=key,
        client_ca=None,
        access_log=None,
    )
    text = config.read_text()
    for line in ("admin off", "auto_https off", "bind 127.0.0.1", "protocols h1 h2"):
        assert line in text
    assert f"tls {cert} {key}" in text
    assert "reverse_proxy 127.0.0.1:8080" in text and "keepalive 300s" in text
    assert "output file" not in text and "client_auth" not in text
    argv = caddy_argv(config, "0")
    assert argv[:3] == ["taskset", "-c", "0"] and argv[-4:] == [
        "--config",
        str(config),
        "--adapter",
        "caddyfile",
    ]


def test_caddy_with_access_log_and_client_certificates(tmp_path: Path) -> None:
    log, ca = tmp_path / "access.log", tmp_path / "root.pem"
    text = caddy_config(
        tmp_path,
        port=1,
        upstream_port=2,
        cert=tmp_path / "c",
        key=tmp_path / "k",
        client_ca=ca,
        access_log=log,
    ).read_text()
    assert f"output file {log}" in text
    assert "mode require_and_verify" in text and f"trusted_ca_cert_file {ca}" in text


def test_nginx_access_log_has_tlsgates_fields_as_json() -> None:
    line = NGINX_ACCESS_LOG.format(path="/p/access.log")
    for field in ("time", "client", "method", "target", "host", "status", "bytes", "upstream"):
        assert f'"{field}":' in line
    assert "escape=json" in line and "access_log /p/access.log tlsgate" in line
    assert "{access_log}" in PROXY_CONF and NGINX_NO_ACCESS_LOG.strip() == "access_log off;"
