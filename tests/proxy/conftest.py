"""``tlsgate serve`` as a real process on loopback, with a real upstream and its own CA."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

from .upstream_app import Seen, run_upstream


def config_text(*sites: str, timeouts: str = "", server: str = "") -> str:
    """A tlsgate.toml template for ``serve_factory(config=...)``: loopback listeners, one worker.

    Each site is ``'HOSTS_TOML_LIST'`` or ``'HOSTS_TOML_LIST -> UPSTREAM_URL'``; by default the
    upstream is the test upstream. ``{port}``, ``{http_port}``, ``{upstream_port}`` are filled in
    later. ``server`` adds lines to the ``[server]`` table.
    """
    text = (
        '[server]\nlisten = "127.0.0.1:{port}"\nhttp_listen = "127.0.0.1:{http_port}"\n'
        "workers = 1\n"
    )
    if server:
        text += server.rstrip("\n") + "\n"
    if timeouts:
        text += f"\n[server.timeouts]\n{timeouts}\n"
    for site in sites:
        hosts, _, upstream = site.partition(" -> ")
        upstream = upstream or "http://127.0.0.1:{upstream_port}"
        text += f'\n[[site]]\nhosts = {hosts}\nupstream = "{upstream}"\n'
    return text


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    port: int
    http_port: int
    state: Path
    root: Path
    upstream_port: int
    seen: Seen
    log: Path

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.root))

    def connect(self, server_hostname: str = "localhost") -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return self.context().wrap_socket(raw, server_hostname=server_hostname)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tlsgate serve exited {proc.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"tlsgate serve did not listen on {port}: {log.read_text()}")


def export_root(state: Path, out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tlsgate",
            "ca",
            "export-root",
            "--state",
            str(state),
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def serve_factory(tmp_path: Path) -> Iterator[object]:
    started: list[Serve] = []
    procs: list[subprocess.Popen[bytes]] = []
    stack: list[object] = []

    def start(
        *extra: str,
        config: str | None = None,
        workers: int = 1,
        env: dict[str, str] | None = None,
        state: Path | None = None,
    ) -> Serve:
        """``state``: reuse an earlier instance's state directory (a restart)."""
        cm = run_upstream()
        upstream_port, seen = cm.__enter__()
        stack.append(cm)
        port, http_port = free_port(), free_port()
        state = state or tmp_path / f"state{len(started)}"
        log = tmp_path / f"serve{len(started)}.log"
        cmd: Sequence[str]
        if config is not None:
            path = tmp_path / f"tlsgate{len(started)}.toml"
            path.write_text(
                config.format(port=port, http_port=http_port, upstream_port=upstream_port)
            )
            cmd = [sys.executable, "-m", "tlsgate", "serve", "-c", str(path), "--state", str(state)]
        else:
            cmd = [
                sys.executable, "-m", "tlsgate", "serve",
                "--host", "localhost",
                "--to", f"http://127.0.0.1:{upstream_port}",
                "--listen", f"127.0.0.1:{port}",
                "--http-listen", f"127.0.0.1:{http_port}",
                "--workers", str(workers),
                "--state", str(state),
                *extra,
            ]  # fmt: skip
        with log.open("wb") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
            )
        procs.append(proc)  # killed at teardown even if it never becomes ready
        wait_ready(port, proc, log)
        root = tmp_path / f"root{len(started)}.pem"
        if "--cert" not in extra:  # with a file pair, serve has no CA: the test brings its root
            export_root(state, root)
        serve = Serve(proc, port, http_port, state, root, upstream_port, seen, log)
        started.append(serve)
        return serve

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for cm in reversed(stack):
        cm.__exit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
def serve(serve_factory: object) -> Serve:
    return serve_factory()  # type: ignore[operator,no-any-return]
