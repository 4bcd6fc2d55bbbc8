"""OCSP stapling end to end: a real ``openssl ocsp`` responder, ``tlsgate serve``, ``s_client``."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, require_tool
from tests.pki.ocsp_pki import Pki, make_pki
from tests.proxy.conftest import Serve, config_text

pytestmark = pytest.mark.interop

NO_STAPLE = "OCSP response: no response sent"


class Responder:
    """``openssl ocsp`` answering from an index file, signing as the delegated responder."""

    def __init__(self, directory: Path, pki: Pki, port: int) -> None:
        self.directory = directory
        self.pki = pki
        self.port = port
        self.files = pki.write(directory)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, revoked: bool = False) -> None:
        openssl = require_tool("openssl")
        index = self.directory / "index.txt"
        index.write_text(self.pki.index_txt(revoked_at=datetime.now(UTC) if revoked else None))
        # OpenSSL 3.0's -port takes a number only; the tests talk to it on 127.0.0.1. It serves
        # one connection at a time, so readiness is its own message, not a probe connection.
        log = self.directory / "responder.log"
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    openssl, "ocsp",
                    "-index", str(index),
                    "-port", str(self.port),
                    "-rsigner", str(self.files["responder"]),
                    "-rkey", str(self.files["responder.key"]),
                    "-CA", str(self.files["root"]),
                    "-ndays", "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"openssl ocsp exited: {log.read_text()}"
            if "waiting for OCSP client connections" in log.read_text():
                return
            time.sleep(0.02)
        raise AssertionError(f"openssl ocsp did not start: {log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[Responder]:
    port = free_port()
    pki = make_pki(f"http://127.0.0.1:{port}", datetime.now(UTC))
    r = Responder(tmp_path / "pki", pki, port)
    yield r
    r.stop()


def s_client(serve: Serve, root: Path, *flags: str, name: str = "localhost") -> str:
    openssl = require_tool("openssl")
    proc = subprocess.run(
        [
            openssl, "s_client",
            "-connect", f"127.0.0.1:{serve.port}",
            "-servername", name,
            "-status",
            "-CAfile", str(root),
            *flags,
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )  # fmt: skip
    out = proc.stdout.decode(errors="replace")
    assert "CONNECTED" in out, proc.stderr.decode(errors="replace")
    return out


def assert_stapled_good(out: str) -> None:
    assert "OCSP Response Status: successful" in out, out
    assert "Cert Status: good" in out, out
    assert NO_STAPLE not in out


def file_pair(responder: Responder) -> tuple[str, ...]:
    return (
        "--cert", str(responder.files["fullchain"]),
        "--key", str(responder.files["key"]),
        "--no-http",
    )  # fmt: skip


def test_staples_a_good_response_after_sni_in_every_worker(
    serve_factory: Callable[..., Serve], responder: Responder
) -> None:
    """The default context is an internal-CA site; the stapling site is reached through SNI."""
    responder.start()
    files = responder.files
    config = config_text('["other.test"]', '["localhost"]') + (
        f'[site.tls]\ncert = "{files["fullchain"]}"\nkey = "{files["key"]}"\n'
    )
    config = config.replace("workers = 1", "workers = 2")
    serve = serve_factory(config=config)
    for flag in ("-tls1_3", "-tls1_2"):
        assert_stapled_good(s_client(serve, files["root"], flag))
    # The internal-CA site has no responder: nothing stapled there.
    assert NO_STAPLE in s_client(serve, serve.root, name="other.test")
    cached = list((serve.state / "ocsp").iterdir())
    assert len(cached) == 1 and cached[0].suffix == ".der"
    # Workers re-read the cache on SIGHUP and keep stapling.
    serve.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    for _ in range(4):  # the connections spread over both workers
        assert_stapled_good(s_client(serve, files["root"]))
    assert serve.stop() == 0


def test_revoked_certificate_is_not_stapled(
    serve_factory: Callable[..., Serve], responder: Responder
) -> None:
    responder.start(revoked=True)
    serve = serve_factory(*file_pair(responder))
    assert NO_STAPLE in s_client(serve, responder.files["root"])
    assert serve.stop() == 0
    log = serve.log.read_text()
    assert "revoked" in log and "not stapling" in log, log
    assert not list((serve.state / "ocsp").glob("*.der"))


def test_responder_down_then_cache_staples_after_restart(
    serve_factory: Callable[..., Serve], responder: Responder, tmp_path: Path
) -> None:
    state = tmp_path / "shared-state"
    pair = (*file_pair(responder), "--state", str(state))
    # No responder: serve starts, serves, staples nothing.
    serve: Any = serve_factory(*pair)
    out = s_client(serve, responder.files["root"])
    assert NO_STAPLE in out and "Verify return code: 0 (ok)" in out
    assert serve.stop() == 0
    assert "not stapling" in serve.log.read_text()
    # Responder up: the response is fetched at start and written to the state directory.
    responder.start()
    serve = serve_factory(*pair)
    assert_stapled_good(s_client(serve, responder.files["root"]))
    assert serve.stop() == 0
    # Responder gone again: a restart staples the cached response at once.
    responder.stop()
    serve = serve_factory(*pair)
    assert_stapled_good(s_client(serve, responder.files["root"]))
    assert serve.stop() == 0


def test_stapling_can_be_turned_off(
    serve_factory: Callable[..., Serve], responder: Responder
) -> None:
    responder.start()
    files = responder.files
    # (an internal-CA site too, so that the state has a root for the test to export)
    config = config_text('["other.test"]', '["localhost"]') + (
        f'[site.tls]\ncert = "{files["fullchain"]}"\nkey = "{files["key"]}"\n'
        "ocsp_stapling = false\n"
    )
    serve = serve_factory(config=config)
    assert NO_STAPLE in s_client(serve, files["root"])
    assert serve.stop() == 0
    # The responder was never asked: nothing cached.
    assert not list((serve.state / "ocsp").glob("*.der"))
