"""Caddy (Debian's 2.6) as a second reference proxy, configured like the reference nginx.

The issue compares tlsgate with Caddy as well as nginx, so the harness builds Caddy in the same
way: the same certificate and key files, the same upstream over HTTP/1.1 with keep-alive, the same
core. Caddy's automatic HTTPS (ACME, redirects) and its admin API are off, so it listens on one
port on 127.0.0.1 and touches nothing outside its own directory.
"""

from __future__ import annotations

from pathlib import Path

from proxybench.common import HOST, UPSTREAM_IDLE

#: The placeholder `--proxy-cmd caddy` (or --caddy) that runs this configuration.
CADDY_PLACEHOLDER = "caddy"

#: The whole configuration. `admin off`: no admin API at all (not even on localhost);
#: `auto_https off`: no ACME, no HTTP->HTTPS redirect listener; `protocols h1 h2`: no HTTP/3
#: (it would listen on UDP too). TLS 1.2 + 1.3 with nginx's curves; Go picks the TLS 1.2 suites
#: itself (all ECDHE with AEAD, the same family as Mozilla intermediate). The upstream keeps up to
#: 64 idle connections for 300 s, as nginx's `keepalive 64` (both more with the HTTP/2 test:
#: UPSTREAM_IDLE). Caddy's own log: warnings only.
CADDY_CONF = """\
{{
	admin off
	auto_https off
	storage file_system {prefix}/data
	log {{
		output stderr
		level WARN
	}}
	servers {host}:{port} {{
		protocols h1 h2
	}}
}}
:{port} {{
	bind {host}
	tls {cert} {key} {{
		protocols tls1.2 tls1.3
		curves x25519 secp256r1 secp384r1
{client_auth}
	}}
{access_log}
	reverse_proxy {host}:{upstream_port} {{
		transport http {{
			keepalive 300s
			keepalive_idle_conns {upstream_idle}
			keepalive_idle_conns_per_host {upstream_idle}
		}}
	}}
}}
"""

#: --client-cert: Caddy requires and verifies the client certificate, as nginx does.
CADDY_CLIENT_AUTH = """\
		client_auth {{
			mode require_and_verify
			trusted_ca_cert_file {client_ca}
		}}"""

#: --access-log: every request as a JSON line in a file. Caddy's access log has its own field
#: names (ts, request>remote_ip, method, uri, host, status, size, duration); the request and
#: response headers and TLS details, which tlsgate and nginx do not log, are filtered out.
CADDY_ACCESS_LOG = """\
	log {{
		output file {path}
		format filter {{
			wrap json
			fields {{
				request>headers delete
				request>tls delete
				resp_headers delete
			}}
		}}
	}}"""


def caddy_config(
    prefix: Path,
    *,
    port: int,
    upstream_port: int,
    cert: Path,
    key: Path,
    client_ca: Path | None,
    access_log: Path | None,
    upstream_idle: int = UPSTREAM_IDLE,
) -> Path:
    """Write the Caddyfile for one Caddy instance under ``prefix`` and return its path."""
    (prefix / "data").mkdir(parents=True, exist_ok=True)
    text = CADDY_CONF.format(
        prefix=prefix,
        host=HOST,
        port=port,
        upstream_port=upstream_port,
        upstream_idle=upstream_idle,
        cert=cert,
        key=key,
        client_auth=CADDY_CLIENT_AUTH.format(client_ca=client_ca) if client_ca else "",
        access_log=CADDY_ACCESS_LOG.format(path=access_log) if access_log else "",
    )
    path = prefix / "Caddyfile"
    path.write_text(text)
    return path


def caddy_argv(config: Path, cpus: str) -> list[str]:
    """`caddy run` in the foreground, pinned; XDG_* keep its autosave and state in its prefix
    (`env` execs, so the PID the harness holds is Caddy's)."""
    prefix = config.parent
    return [
        "taskset",
        "-c",
        cpus,
        "env",
        f"HOME={prefix}",
        f"XDG_DATA_HOME={prefix / 'data'}",
        f"XDG_CONFIG_HOME={prefix / 'config'}",
        "caddy",
        "run",
        "--config",
        str(config),
        "--adapter",
        "caddyfile",
    ]
