"""A real browser over HTTP/2: headless Chromium (Debian's ``chromium``) loads a page with 50
images from a real ``tlsgate serve``, which proxies it from a small HTTP/1.1 upstream, and the
page and every image come over h2 and over one TLS connection.

Chromium is driven by Playwright for Python, pointed at Debian's ``/usr/bin/chromium`` with
``executable_path`` (it downloads no browser). Playwright rather than ``chromium --headless``
by hand because it is the robust way to get what is checked here: it starts the browser with a
throw-away profile and its own quiet switches (no background networking, no first-run), waits
for the page's ``load`` event with a timeout, evaluates JavaScript in the page (the Resource
Timing entries' ``nextHopProtocol``, each image's ``naturalWidth``), opens a DevTools (CDP)
session on the page, whose ``Network.responseReceived`` events give each response's
``connectionId`` (Chromium's id of the socket it came over), and closes the whole process tree
on exit. ``chromium --headless --dump-dom`` shows only the final DOM, with neither protocol nor
connection; a CDP client of our own over ``--remote-debugging-pipe`` would redo Playwright.

No certificate check is turned off: Chromium on Linux trusts what the NSS database in
``$HOME/.pki/nssdb`` says, so each test gives it a temporary HOME whose database (made with
``certutil``) holds serve's internal CA root as a trusted CA, and the page is loaded as
``https://localhost:PORT/`` with the name checked against serve's certificate for localhost.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port, require_tool

from .conftest import Serve, config_text

pytestmark = pytest.mark.interop

IMAGES = 50


def png(width: int) -> bytes:
    """A valid ``width`` x 1 grey PNG: image ``n`` is ``n + 1`` pixels wide, so the page can tell
    that each image got its own body (not a neighbouring stream's)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, 1, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    row = b"\x00" + b"\x80" * width  # filter type 0, then the pixels
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row))
        + chunk(b"IEND", b"")
    )


# The icon link keeps Chromium from asking for /favicon.ico: the page is exactly 1 + 50 requests.
PAGE = (
    '<!doctype html>\n<html><head><meta charset="utf-8"><title>tlsgate over h2</title>'
    '<link rel="icon" href="data:,"></head>\n<body>\n'
    + "".join(f'<img src="/r/{n}.png" alt="{n}">\n' for n in range(IMAGES))
    + "</body></html>\n"
).encode()


@contextmanager
def page_upstream() -> Iterator[tuple[int, list[str]]]:
    """An HTTP/1.1 upstream on 127.0.0.1 serving ``/`` (the page) and ``/r/N.png`` (its images);
    its port, and the paths it was asked for."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so that serve pools its connections

        def do_GET(self) -> None:
            paths.append(self.path)
            image = re.fullmatch(r"/r/(\d+)\.png", self.path)
            if self.path == "/":
                status, kind, body = 200, "text/html; charset=utf-8", PAGE
            elif image is not None and int(image[1]) < IMAGES:
                status, kind, body = 200, "image/png", png(int(image[1]) + 1)
            else:
                status, kind, body = 404, "text/plain", b"not found\n"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # serve's access log is the one read here

    class Server(ThreadingHTTPServer):
        # serve opens an upstream connection for each of the 50 streams Chromium starts at once;
        # with socketserver's backlog of 5 the kernel drops the SYNs past it, and those requests
        # wait for TCP's retransmits (1 s, 3 s, 7 s, 15 s later).
        request_queue_size = 128

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server.server_address[1], paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@dataclass
class Load:
    """What Chromium saw of one page load."""

    ready_state: str
    navigation_protocol: str
    resources: list[dict[str, Any]]  # Resource Timing entries: name, nextHopProtocol
    image_widths: list[int]  # naturalWidth of each <img>, in page order (0: not loaded)
    responses: dict[str, dict[str, Any]]  # URL -> CDP Network.Response of the page's session


def trusting_home(home: Path, root: Path) -> None:
    """Make ``home/.pki/nssdb``, Chromium's certificate database on Linux, trusting ``root``
    as a CA for TLS servers (``C,,``) and nothing else."""
    certutil = require_tool("certutil")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    for args in (
        ["-N", "--empty-password"],
        ["-A", "-n", "tlsgate-test", "-t", "C,,", "-i", str(root)],
    ):
        subprocess.run(
            [certutil, "-d", f"sql:{nssdb}", *args], check=True, capture_output=True, timeout=30
        )


def load_in_chromium(url: str, home: Path, expected_responses: int) -> Load:
    """Load ``url`` in headless Chromium whose HOME is ``home``; wait for the ``load`` event."""
    chromium = require_tool("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            # Chromium refuses to start sandboxed as root (CI and the project's machines run the
            # tests as root); anyone else keeps the sandbox.
            chromium_sandbox=os.geteuid() != 0,
            args=[
                "--headless=new",
                # localhost is 127.0.0.1 only (serve listens there), never ::1 first.
                "--host-resolver-rules=MAP localhost 127.0.0.1",
            ],
            env={**os.environ, "HOME": str(home)},
            timeout=20_000,
        )
        try:
            page = browser.new_page()
            responses: dict[str, dict[str, Any]] = {}
            cdp = page.context.new_cdp_session(page)

            def received(event: dict[str, Any]) -> None:
                responses[event["response"]["url"]] = event["response"]

            cdp.on("Network.responseReceived", received)
            cdp.send("Network.enable")
            reply = page.goto(url, wait_until="load", timeout=15_000)
            assert reply is not None and reply.status == 200, reply
            # The session's events travel apart from the load event: wait for the last ones.
            deadline = time.monotonic() + 5
            while len(responses) < expected_responses and time.monotonic() < deadline:
                page.wait_for_timeout(50)
            seen = page.evaluate(
                """() => ({
                    ready: document.readyState,
                    navigation: performance.getEntriesByType('navigation')[0].nextHopProtocol,
                    resources: performance.getEntriesByType('resource').map(
                        e => ({name: e.name, nextHopProtocol: e.nextHopProtocol})),
                    widths: Array.from(document.images, i => i.complete ? i.naturalWidth : 0),
                })"""
            )
        finally:
            browser.close()
    return Load(seen["ready"], seen["navigation"], seen["resources"], seen["widths"], responses)


def access_lines(serve: Serve) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in serve.log.read_text().splitlines()
        if line.startswith('{"time"')
    ]


def wait_for(check: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def tls_connections(admin_port: int) -> float:
    """serve's ``tlsgate_tls_connections_total``: client connections that completed a handshake."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "tlsgate_tls_connections"
        for sample in family.samples
        if sample.name == "tlsgate_tls_connections_total"
    )


@dataclass
class PageSite:
    serve: Serve
    admin_port: int  # serve's /metrics
    upstream_port: int
    paths: list[str]  # what the upstream was asked for

    @property
    def url(self) -> str:
        return f"https://localhost:{self.serve.port}/"


@pytest.fixture
def site(serve_factory: Any) -> Iterator[PageSite]:
    """serve, with an admin listener, in front of the page upstream."""
    with page_upstream() as (upstream_port, paths):
        admin = free_port()
        serve: Serve = serve_factory(
            config=config_text(
                f'["localhost"] -> http://127.0.0.1:{upstream_port}',
                server=f'admin_listen = "127.0.0.1:{admin}"',
            )
        )
        yield PageSite(serve, admin, upstream_port, paths)
        serve.stop()  # before the upstream goes


def expected_paths() -> list[str]:
    return ["/", *(f"/r/{n}.png" for n in range(IMAGES))]


def test_chromium_loads_a_page_and_its_images_over_h2(site: PageSite, tmp_path: Path) -> None:
    serve, url = site.serve, site.url
    trusting_home(tmp_path / "home", serve.root)
    load = load_in_chromium(url, tmp_path / "home", 1 + IMAGES)

    assert load.ready_state == "complete"
    assert load.navigation_protocol == "h2"
    # Chromium checked serve's certificate and found it good: issued for localhost by serve's
    # CA, which it trusts only through the NSS database in the temporary HOME.
    document = load.responses[url]
    assert document["securityState"] == "secure", document
    details = document["securityDetails"]
    assert details["subjectName"] == "localhost" and "tlsgate" in details["issuer"], details
    names = sorted(e["name"] for e in load.resources)
    assert names == sorted(f"{url}r/{n}.png" for n in range(IMAGES))
    assert {e["nextHopProtocol"] for e in load.resources} == {"h2"}
    # Every image decoded, and is the one it asked for (image n is n + 1 pixels wide).
    assert load.image_widths == [n + 1 for n in range(IMAGES)]
    # The page came from the upstream, through serve: one request each, no more.
    assert sorted(site.paths) == sorted(expected_paths())
    assert wait_for(lambda: len(access_lines(serve)) >= 1 + IMAGES), serve.log.read_text()
    lines = access_lines(serve)
    assert sorted(x["target"] for x in lines) == sorted(expected_paths())
    upstream = f"http://127.0.0.1:{site.upstream_port}"
    assert {(x["method"], x["status"], x["host"], x["upstream"]) for x in lines} == {
        ("GET", 200, "localhost", upstream)
    }


def test_chromium_gets_the_page_and_its_images_over_one_connection(
    site: PageSite, tmp_path: Path
) -> None:
    serve, url = site.serve, site.url
    assert tls_connections(site.admin_port) == 0
    trusting_home(tmp_path / "home", serve.root)
    load = load_in_chromium(url, tmp_path / "home", 1 + IMAGES)

    # Chromium's own account: every response (the page and its 50 images) came over h2, from
    # serve's port, on one and the same connection (the socket's id in Chromium's network stack).
    assert sorted(load.responses) == sorted(f"{url}{p[1:]}" for p in expected_paths())
    got = {
        (r["protocol"], r["remoteIPAddress"], r["remotePort"], r["connectionId"])
        for r in load.responses.values()
    }
    assert len(got) == 1, got
    ((protocol, address, port, connection),) = got
    assert (protocol, address, port) == ("h2", "127.0.0.1", serve.port)
    assert connection, got  # a real socket's id (0 would be "none reported")
    # serve's account: all 51 requests answered, and exactly one client connection completed a
    # TLS handshake (none speculative, none for another request). The handshake is counted before
    # any request on it, and the counts reach /metrics within a second: once every request is
    # logged, a scrape a little over a second later has them all.
    assert wait_for(lambda: len(access_lines(serve)) >= 1 + IMAGES), serve.log.read_text()
    assert sorted(x["target"] for x in access_lines(serve)) == sorted(expected_paths())
    time.sleep(1.5)
    assert tls_connections(site.admin_port) == 1
    assert sorted(site.paths) == sorted(expected_paths())
