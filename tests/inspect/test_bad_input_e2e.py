"""``tlsgate check`` on what is not a TLS server or not a certificate: a verdict, no traceback.

The misbehaving peers are tiny TCP servers in threads of the test process: one resets the
connection after reading the ClientHello, one reads and never answers, one answers in plain HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import free_port
from tests.inspect.runner import Run, run_all
from tests.inspect.zoo import NAME, Zoo
from tlsgate.inspect.report import Code

pytestmark = pytest.mark.interop

Handler = Callable[[socket.socket, threading.Event], None]


def reset_after_hello(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(5)
    conn.recv(4096)  # the ClientHello
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST


def never_answer(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(0.1)
    while not stop.is_set():  # read whatever comes, say nothing, until the client gives up
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            continue


def plain_http(conn: socket.socket, stop: threading.Event) -> None:
    conn.settimeout(5)
    conn.recv(4096)
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    conn.shutdown(socket.SHUT_WR)  # a clean FIN after the answer, not an RST over unread data
    with contextlib.suppress(OSError):
        while conn.recv(4096):
            pass


class Peer:
    """A TCP server on 127.0.0.1 handing each connection to ``handle`` in its own thread."""

    def __init__(self, handle: Handler) -> None:
        self._handle = handle
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.port: int = self._sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._handle(conn, self._stop)

    def close(self) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()


@dataclass(frozen=True)
class Bad:
    code: Code
    reason: str  # a regex (case-insensitive) the plain-words text must match


CASES: dict[str, Bad] = {
    "unreachable": Bad(Code.UNREACHABLE, r"refused|unreachable|connect"),
    "connection-reset": Bad(Code.RESET, r"reset|closed"),
    "timeout": Bad(Code.TIMEOUT, r"time[ds]? ?out|did not answer|no answer|within"),
    "not-tls": Bad(Code.NOT_TLS, r"not (speak(ing)? )?TLS|HTTP|plain"),
    "garbage-pem": Bad(Code.INVALID_FILE, r"certificate|PEM"),
    "random-bytes": Bad(Code.INVALID_FILE, r"certificate|PEM|DER"),
    "missing-file": Bad(Code.INVALID_FILE, r"no such file|not found|does not exist|cannot"),
}


@dataclass(frozen=True)
class Results:
    text: dict[str, Run]  # one text run per case: its own exit code and explanation
    json: Run  # one --json run over every case (a list of reports, in order)
    reports: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def results(zoo: Zoo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Results]:
    files = tmp_path_factory.mktemp("bad-files")
    garbage = files / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    random_bytes = files / "random.crt"
    random_bytes.write_bytes(os.urandom(1024))
    trust = ("--servername", NAME, "--ca", str(zoo.root))
    handlers = {
        "connection-reset": reset_after_hello,
        "timeout": never_answer,
        "not-tls": plain_http,
    }
    peers = {name: Peer(handle) for name, handle in handlers.items()}
    try:
        targets = {
            "unreachable": f"127.0.0.1:{free_port()}",
            **{name: f"127.0.0.1:{peer.port}" for name, peer in peers.items()},
            "garbage-pem": str(garbage),
            "random-bytes": str(random_bytes),
            "missing-file": str(files / "missing.pem"),
        }
        assert list(targets) == list(CASES)
        jobs: dict[str, tuple[str, ...]] = {n: ("check", t, *trust) for n, t in targets.items()}
        jobs["timeout"] += ("--timeout", "1")
        jobs["json"] = ("check", *targets.values(), *trust, "--timeout", "1", "--json")
        runs = run_all(jobs)
        reports = runs.pop("json")
        yield Results(runs, reports, dict(zip(CASES, reports.reports(len(CASES)), strict=True)))
    finally:
        for peer in peers.values():
            peer.close()


def test_json_run(results: Results) -> None:
    results.json.assert_no_traceback()
    assert results.json.returncode == 2, results.json.describe()


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_a_verdict(results: Results, name: str) -> None:
    bad = CASES[name]
    text, report = results.text[name], results.reports[name]
    context = f"{text.describe()}\n--- json\n{json.dumps(report, indent=1)}"
    text.assert_no_traceback()
    assert text.returncode == 2, context
    assert report["verdict"] == "critical", context
    assert report["exit_code"] == 2, context
    assert report["kind"] == ("file" if bad.code is Code.INVALID_FILE else "endpoint")
    codes = [f["code"] for f in report["findings"]]
    assert bad.code.value in codes, f"expected {bad.code.value!r}\n{context}"
    assert report["chain"] == [] and report["verified"] is False, context
    assert re.search(bad.reason, text.output, re.IGNORECASE), (
        f"no plain-words reason matching {bad.reason!r}\n{context}"
    )
    lines = [line for line in text.output.splitlines() if line.strip()]
    assert len(lines) <= 12, context  # an explanation, not a dump


def test_timeout_is_bounded(results: Results) -> None:
    """--timeout 1 against a server that never answers: given up after about a second."""
    report = results.reports["timeout"]
    assert report["duration_seconds"] < 5, json.dumps(report, indent=1)
