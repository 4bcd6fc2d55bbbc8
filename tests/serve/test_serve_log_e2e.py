"""What ``tlsgate serve`` writes to stderr, read as a person reads it: one prefix per line, no
line repeated by each worker without saying which, counts in the right number."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.proxy.conftest import Serve


def test_serve_log_lines(serve_factory: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    served = tmp_path / "served"

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "tlsgate", *args, "--state", str(state)],
            check=True, capture_output=True, text=True, timeout=60,
        ).stdout  # fmt: skip

    cli("ca", "init")
    cli("ca", "issue", "localhost", "--out", str(served))
    cli("ca", "issue", "client.example", "--client", "--out", str(tmp_path / "client"))
    client = x509.load_pem_x509_certificate((tmp_path / "client" / "cert.pem").read_bytes())
    cli("ca", "revoke", f"{client.serial_number:X}")
    serve: Serve = serve_factory(
        "--cert", str(served / "fullchain.pem"), "--key", str(served / "key.pem"),
        "--client-auth", "optional", workers=2, state=state,
    )  # fmt: skip

    # A renewal done outside (certbot's deploy hook, say), then HUP: the master and both workers
    # each load it and say so.
    cli("ca", "issue", "localhost", "--out", str(served), "--force")
    new = x509.load_pem_x509_certificate((served / "cert.pem").read_bytes()).serial_number
    serve.proc.send_signal(signal.SIGHUP)
    swapped = f"now serving certificate {new:X} for localhost"
    deadline = time.monotonic() + 20
    while serve.log.read_text().count(swapped) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert serve.stop() == 0
    text = serve.log.read_text()
    lines = [line for line in text.splitlines() if not line.startswith("{")]  # not access log

    assert "tlsgate: tlsgate" not in text and "tlsgate serve:" not in text, text
    assert f"tlsgate: serving https on 127.0.0.1:{serve.port}; " in text, text
    assert "tlsgate: internal CRL written (1 revoked certificate)" in lines, text

    said = [line for line in lines if line.endswith(swapped)]
    assert f"tlsgate: {swapped}" in said, text  # the master
    workers = sorted(
        m.group(1)
        for line in said
        if (m := re.fullmatch(r"tlsgate: worker (\d) \(pid \d+\): .*", line))
    )
    assert workers == ["1", "2"], text
    assert len(said) == 3, text
    # No line twice: each process's line says whose it is.
    assert len(set(lines)) == len(lines), text
