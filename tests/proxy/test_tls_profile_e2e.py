"""A real ``tlsgate serve`` checked from outside against Mozilla's "intermediate" profile:
``sslyze --mozilla_config=intermediate`` must call it compliant, and ``openssl s_client``
offering one group at a time must get exactly the profile's groups."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_tool

from .conftest import Serve

pytestmark = pytest.mark.interop

#: Where scripts/install.sh --test puts sslyze (a virtualenv of its own: see install.sh).
_SSLYZE = Path(__file__).resolve().parents[2] / ".venv" / "sslyze" / "bin" / "sslyze"


def sslyze() -> str:
    return str(_SSLYZE) if _SSLYZE.exists() else require_tool("sslyze")


def test_sslyze_finds_serve_compliant_with_mozilla_intermediate(serve: Serve) -> None:
    # host:port{ip}: SNI and name checks for localhost, connections to 127.0.0.1; the CA's root
    # is the trust store sslyze validates the chain against (its public stores do not know it).
    target = f"localhost:{serve.port}{{127.0.0.1}}"
    proc = subprocess.run(
        [sslyze(), "--mozilla_config=intermediate", "--certinfo_ca_file", str(serve.root), target],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report  # 1: not compliant, with the reasons in the report
    assert "OK - Compliant" in proc.stdout, report
    assert "Supported curves:                  X25519, secp256r1, secp384r1" in proc.stdout, report


#: Group offered -> what s_client reports the server chose (None: no handshake).
GROUPS = {"X25519": "X25519", "P-256": "ECDH, prime256v1", "P-384": "ECDH, secp384r1",
          "X448": None, "P-521": None}  # fmt: skip


def test_s_client_gets_only_the_profile_groups(serve: Serve) -> None:
    openssl = require_tool("openssl")
    for group, expected in GROUPS.items():
        cmd = [
            openssl, "s_client", "-connect", f"127.0.0.1:{serve.port}", "-servername", "localhost",
            "-CAfile", str(serve.root), "-verify_return_error", "-tls1_3", "-groups", group,
        ]  # fmt: skip
        proc = subprocess.run(cmd, input=b"", capture_output=True, timeout=30)
        out = proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")
        if expected is None:
            assert proc.returncode != 0, f"{group}: {out}"
            assert "Server Temp Key" not in out, f"{group}: {out}"
        else:
            assert proc.returncode == 0, f"{group}: {out}"
            assert f"Server Temp Key: {expected}" in out, f"{group}: {out}"
