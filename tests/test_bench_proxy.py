"""bench/proxy.py's own logic, without running a proxy: which proxies a command line asks for,
the order they run in, and the configurations it writes for Caddy and the reference nginx (the
issue's comparison is only as good as those)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from proxybench.caddy import caddy_argv, caddy_config
from proxybench.cli import proxy_specs, select_tests
from proxybench.common import BenchError
from proxybench.h2load import check_protocol, h2load_argv, parse_h2load, parse_log
from proxybench.modes import run_order
from proxybench.nginx import (
    NGINX_ACCESS_LOG,
    NGINX_NO_ACCESS_LOG,
    PROXY_CONF,
    nginx_common,
    nginx_http2,
)
from proxybench.proxies import ProxySpec, expand_template
from proxybench.wrk import H2_TEST, WrkRun, check_run, make_tests

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
    assert "keepalive_idle_conns 64" in text and "keepalive_idle_conns_per_host 64" in text
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
        upstream_idle=500,  # the HTTP/2 test's pool
    ).read_text()
    assert f"output file {log}" in text
    assert "keepalive_idle_conns 500" in text and "keepalive_idle_conns_per_host 500" in text
    assert "mode require_and_verify" in text and f"trusted_ca_cert_file {ca}" in text


def test_nginx_access_log_has_tlsgates_fields_as_json() -> None:
    line = NGINX_ACCESS_LOG.format(path="/p/access.log")
    for field in ("time", "client", "method", "target", "host", "status", "bytes", "upstream"):
        assert f'"{field}":' in line
    assert "escape=json" in line and "access_log /p/access.log tlsgate" in line
    assert "{access_log}" in PROXY_CONF and NGINX_NO_ACCESS_LOG.strip() == "access_log off;"


# h2load 1.52 (nghttp2-client, Debian bookworm), captured on this repository's VM:
# `taskset -c 1 h2load -t1 -c50 -m10 -D 2 --npn-list=h2 --log-file=... https://127.0.0.1:P/100b`
# against `tlsgate serve` (one worker, core 0) in front of an nginx serving /100b, while other
# sessions kept the machine busy. Its "progress: N% of clients started" lines are left out
# here; a backslash at the end of a line continues it (one line of h2load's output).
H2LOAD_TLSGATE = """\
starting benchmark...
spawning thread #0: 50 total client(s). Timing-based test with 0s of warm-up time and 2s of main \
duration for measurements.
Warm-up started for thread #0.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.3
Cipher: TLS_AES_128_GCM_SHA256
Server Temp Key: X25519 253 bits
Application protocol: h2
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.02s, 1888.00 req/s, 253.96KB/s
requests: 3776 total, 4276 started, 3776 done, 3776 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 3776 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 507.92KB (520107) total, 36.92KB (37805) headers (space savings 89.99%), 368.75KB \
(377600) data
                     min         max         mean         sd        +/- sd
time for request:    65.95ms    544.93ms    226.70ms    108.98ms    69.89%
time for connect:    28.38ms    131.82ms     84.46ms     30.39ms    54.00%
time to 1st byte:   233.01ms    473.80ms    370.98ms     46.11ms    72.00%
req/s           :      19.89       55.48       37.65       12.81    74.00%
"""

# `h2load -c2 -m2 -D 1 https://127.0.0.1:P/100b`, its default ALPN list (h2 first, then
# http/1.1), against an nginx 1.22 listener without `http2`: it falls back to HTTP/1.1 and still
# prints figures.
H2LOAD_FALLBACK = """\
starting benchmark...
spawning thread #0: 2 total client(s). Timing-based test with 0s of warm-up time and 1s of main \
duration for measurements.
Warm-up started for thread #0.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
TLS Protocol: TLSv1.2
Cipher: ECDHE-ECDSA-AES128-GCM-SHA256
Server Temp Key: X25519 253 bits
Application protocol: http/1.1
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 1.00s, 38753.00 req/s, 9.20MB/s
requests: 38753 total, 38757 started, 38753 done, 38753 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 38753 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 9.20MB (9649497) total, 4.07MB (4263050) headers (space savings 0.00%), 3.70MB \
(3875500) data
                     min         max         mean         sd        +/- sd
time for request:       51us      5.72ms       102us       127us    98.11%
time for connect:     2.02ms      2.76ms      2.39ms       527us   100.00%
time to 1st byte:     2.94ms      2.96ms      2.95ms        17us   100.00%
req/s           :   19298.83    19425.83    19362.33       89.80   100.00%
"""

# The same with --npn-list=h2: no protocol agreed, no request made, and still exit status 0.
H2LOAD_NO_ALPN = """\
starting benchmark...
spawning thread #0: 2 total client(s). Timing-based test with 0s of warm-up time and 1s of main \
duration for measurements.
Warm-up started for thread #0.
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 1.00s, 0.00 req/s, 0B/s
requests: 0 total, 0 started, 0 done, 0 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :       0.00        0.00        0.00        0.00   100.00%
"""


def test_h2load_report_is_parsed() -> None:
    report = parse_h2load(H2LOAD_TLSGATE)
    assert report.protocol == "h2"
    assert report.tls_version == "TLSv1.3" and report.cipher == "TLS_AES_128_GCM_SHA256"
    assert report.duration == pytest.approx(2.02)
    assert (report.total, report.started, report.done, report.succeeded) == (
        3776,
        4276,
        3776,
        3776,
    )
    assert (report.failed, report.errored, report.timeout, report.non_2xx) == (0, 0, 0, 0)
    assert report.status_2xx == 3776
    assert (report.bytes_total, report.bytes_headers, report.bytes_data) == (520107, 37805, 377600)
    assert report.bytes_data == 100 * report.succeeded
    assert report.request_mean_ms == pytest.approx(226.70)
    check_protocol(report, H2LOAD_TLSGATE)


def test_an_h2load_run_that_is_not_http2_is_an_error() -> None:
    fallback = parse_h2load(H2LOAD_FALLBACK)
    assert fallback.protocol == "http/1.1" and fallback.succeeded == 38753
    with pytest.raises(BenchError, match=r"negotiated http/1\.1"):
        check_protocol(fallback, H2LOAD_FALLBACK)
    none = parse_h2load(H2LOAD_NO_ALPN)
    assert none.protocol is None and none.succeeded == 0
    with pytest.raises(BenchError, match="agreed no ALPN protocol"):
        check_protocol(none, H2LOAD_NO_ALPN)
    with pytest.raises(ValueError, match="finished in"):
        parse_h2load("starting benchmark...\n")


def test_h2load_log_gives_the_percentiles() -> None:
    rows = [f"1796689942798{i:03d}\t200\t{(i + 1) * 1000}" for i in range(200)]
    rows += ["1796689942799000\t-1\t6000001", "short line"]
    latency = parse_log("\n".join(rows) + "\n")
    assert latency.rows == 201 and latency.failed_streams == 1 and latency.slow == 1
    assert latency.p50_ms == pytest.approx(101.0)  # nearest rank: the 101st of 201
    assert latency.p99_ms == pytest.approx(199.0)
    assert parse_log("").p99_ms == 0.0


def test_the_h2_test_runs_h2load_with_50_connections_and_10_streams(tmp_path: Path) -> None:
    test = next(t for t in make_tests(50, 10) if t.key == H2_TEST)
    assert test.h2 and test.client == "h2load" and test.path == "/100b"
    assert (test.connections, test.streams, test.body) == (50, 10, 100)
    assert all(not t.h2 and t.client == "wrk" for t in make_tests(50, 10) if t.key != H2_TEST)
    argv = h2load_argv("https://127.0.0.1:1/100b", 50, 10, 7, tmp_path / "log")
    assert argv[:4] == ["h2load", "-t1", "-c50", "-m10"] and argv[4:6] == ["-D", "7"]
    assert "--npn-list=h2" in argv and argv[-1] == "https://127.0.0.1:1/100b"


def test_h2_runs_are_checked_for_errors_tls_and_body_bytes() -> None:
    test = next(t for t in make_tests(50, 10) if t.key == H2_TEST)
    ok = WrkRun(
        duration=2.0,
        requests=1000,
        bytes=1000 * 100 + 300 * 100,  # some of the 500 streams in flight had their body
        errors={"failed": 0, "errored": 0, "timeout": 0, "status": 0},
        p50_ms=1.0,
        p99_ms=2.0,
        full=None,
        resumed=None,
        protocol="h2",
        tls_version="TLSv1.3",
        cipher="TLS_AES_128_GCM_SHA256",
    )
    assert check_run(ok, test) == []  # no shim counts: not a problem for h2load
    bad = WrkRun(
        **{
            **vars(ok),
            "bytes": 1000 * 90,
            "errors": {**ok.errors, "status": 3},
            "tls_version": "TLSv1.2",
            "slow": 2,
        }
    )
    problems = " | ".join(check_run(bad, test))
    for words in ("status 3", "TLSv1.2", "90.0 body bytes", "2 requests took over 5 s"):
        assert words in problems


def test_tests_selection_accepts_the_h2_test_but_not_through_haproxy() -> None:
    everything = select_tests(None, originated=False)
    assert everything[-1] == H2_TEST and len(everything) == 5
    assert H2_TEST not in select_tests(None, originated=True)
    assert select_tests(f"{H2_TEST}, keepalive-100b", originated=False) == [
        H2_TEST,
        "keepalive-100b",
    ]
    with pytest.raises(ValueError, match="haproxy"):
        select_tests(H2_TEST, originated=True)
    with pytest.raises(ValueError, match="unknown"):
        select_tests("h3", originated=False)


def _proxy_conf(http2: dict[str, str]) -> str:
    return PROXY_CONF.format(
        **nginx_common(Path("/p"), 1),
        port=8443,
        upstream_port=8080,
        upstream_idle=500,
        cert="/c",
        key="/k",
        ciphers="X",
        client_verify="",
        access_log=NGINX_NO_ACCESS_LOG,
        **http2,
    )


def test_nginx_gets_http2_in_the_syntax_of_its_version() -> None:
    old = _proxy_conf(nginx_http2(True, (1, 22, 1)))
    assert "listen 127.0.0.1:8443 ssl http2 backlog=4096;\n" in old and "http2 on;" not in old
    assert "keepalive 500;" in old
    new = _proxy_conf(nginx_http2(True, (1, 25, 1)))
    assert "listen 127.0.0.1:8443 ssl backlog=4096;\n        http2 on;\n" in new
    assert "http2 on" not in _proxy_conf(nginx_http2(True, None)).replace("ssl http2", "")
    # Without the HTTP/2 test, the listener is what it always was.
    plain = _proxy_conf(nginx_http2(False, (1, 25, 1)))
    assert "listen 127.0.0.1:8443 ssl backlog=4096;\n        ssl_certificate /c;" in plain
    assert "http2" not in plain
