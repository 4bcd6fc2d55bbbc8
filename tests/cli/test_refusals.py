"""A refused start writes nothing, and a port it cannot have is said the same way everywhere.

``serve --client-ca missing.pem`` used to create the state, a CA and a certificate before
failing; ``ca serve`` and ``tunnel`` on a busy port issued a certificate first (``ca serve`` then
reported an internal error, exit 1). Now ``serve`` checks its ports and files before it opens the
state, and ``ca serve`` and ``tunnel`` bind their listeners before they issue. Each refusal is
checked against the state directory byte for byte (or its absence), with real processes.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

Snapshot = dict[str, tuple[int, bytes]]


def unprivileged_port_start() -> int:
    """From which port on anyone may listen (Linux; 1024 elsewhere)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def snapshot(state: Path) -> Snapshot:
    """Every file under ``state``: mode and bytes."""
    return {
        str(p.relative_to(state)): (p.stat().st_mode, p.read_bytes())
        for p in sorted(state.rglob("*"))
        if p.is_file()
    }


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("TLSGATE_")}
    out.pop("COLUMNS", None)
    return out


def tlsgate(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, sys.executable, "-m", "tlsgate", *args],
        capture_output=True,
        text=True,
        env=env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def refused(done: subprocess.CompletedProcess[str], match: str) -> str:
    """Exit 2, one line on stderr with ``match``, never an internal error."""
    assert done.returncode == 2, done
    (line,) = done.stderr.splitlines()
    assert line.startswith("tlsgate: error: ") and "internal error" not in line, line
    assert match in line, line
    return line


@pytest.fixture(scope="module")
def ca_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state with a CA and nothing issued yet (so a command that issues would show)."""
    state = tmp_path_factory.mktemp("refusals") / "state"
    done = tlsgate("ca", "init", "--state", str(state))
    assert done.returncode == 0, done
    return state


@pytest.fixture
def busy() -> Iterator[int]:
    """A loopback port something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def commands(state: Path, listen: str) -> dict[str, list[str]]:
    """The three commands that listen, each as far as its listener."""
    upstream = f"http://127.0.0.1:{free_port()}"
    return {
        "serve": ["serve", "--host", "localhost", "--to", upstream, "--listen", listen,
                  "--no-http", "--state", str(state)],
        "ca serve": ["ca", "serve", "--listen", listen, "--state", str(state)],
        "tunnel": ["tunnel", "--listen", listen, "--to", "https://localhost:1",
                   "--identity", "spiffe://example.org/ns/x/sa/y", "--state", str(state)],
    }  # fmt: skip


LISTENERS = ["serve", "ca serve", "tunnel"]


@pytest.mark.parametrize("name", LISTENERS)
def test_a_busy_port_is_refused_cleanly_and_issues_nothing(
    ca_state: Path, busy: int, name: str
) -> None:
    before = snapshot(ca_state)
    done = tlsgate(*commands(ca_state, f"127.0.0.1:{busy}")[name])
    refused(done, f"cannot listen on 127.0.0.1:{busy}: it is already in use by another process")
    assert snapshot(ca_state) == before


def test_serve_on_a_busy_port_creates_no_state(tmp_path: Path, busy: int) -> None:
    state = tmp_path / "new-state"
    refused(tlsgate(*commands(state, f"127.0.0.1:{busy}")["serve"]), "already in use")
    assert not state.exists()


def _drop_bind_privilege() -> tuple[str, ...]:
    """A prefix that runs a command without the right to bind low ports: as root, without
    CAP_NET_BIND_SERVICE (nothing is bound: the kernel refuses before it looks at the port)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # util-linux: on every Debian and in the CI image
        if os.environ.get("CI") == "true":
            pytest.fail("setpriv (util-linux) is missing")
        pytest.skip("setpriv (util-linux) is missing")
    return (setpriv, "--bounding-set=-net_bind_service")


@pytest.mark.parametrize("name", [*LISTENERS, "cert obtain"])
def test_a_privileged_port_says_what_to_do(ca_state: Path, tmp_path: Path, name: str) -> None:
    low = unprivileged_port_start()
    if low <= 1:
        pytest.skip("this kernel lets anyone bind any port (ip_unprivileged_port_start is 0)")
    port = 443 if low > 443 else low - 1
    before = snapshot(ca_state)
    args = commands(ca_state, f"127.0.0.1:{port}").get(name) or [
        "cert", "obtain", "x.example", "--directory", "https://127.0.0.1:1/directory",
        "--http-01-address", "127.0.0.1", "--http-01-port", str(port),
        "--state", str(ca_state), "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    done = tlsgate(*args, prefix=_drop_bind_privilege())
    line = refused(done, f"cannot listen on 127.0.0.1:{port}: permission denied")
    assert f"use a port of {low} or more" in line
    assert "cap_net_bind_service" in line and "authbind" in line and "root" in line
    assert snapshot(ca_state) == before


@pytest.mark.parametrize("existing", [False, True], ids=["new state", "existing state"])
def test_serve_with_a_missing_client_ca_writes_nothing(
    ca_state: Path, tmp_path: Path, existing: bool
) -> None:
    state = ca_state if existing else tmp_path / "new-state"
    before = snapshot(state) if existing else None
    args = commands(state, f"127.0.0.1:{free_port()}")["serve"]
    missing = tmp_path / "missing.pem"
    done = tlsgate(*args, "--client-auth", "require", "--client-ca", str(missing))
    refused(done, f"cannot read trust bundle {missing}")
    if existing:
        assert snapshot(state) == before
    else:
        assert not state.exists()


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"not a certificate\n", "PEM"), (b"", "PEM")],
    ids=["garbage", "empty"],
)
def test_serve_with_an_unparseable_client_ca_writes_nothing(
    tmp_path: Path, content: bytes, match: str
) -> None:
    state = tmp_path / "new-state"
    bundle = tmp_path / "clients.pem"
    bundle.write_bytes(content)
    args = commands(state, f"127.0.0.1:{free_port()}")["serve"]
    done = tlsgate(*args, "--client-auth", "require", "--client-ca", str(bundle))
    assert done.returncode == 2 and match in done.stderr, done
    assert not state.exists()


def test_serve_with_missing_certificate_files_writes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "new-state"
    args = commands(state, f"127.0.0.1:{free_port()}")["serve"]
    done = tlsgate(*args, "--cert", str(tmp_path / "c.pem"), "--key", str(tmp_path / "k.pem"))
    refused(done, "cannot read")
    assert not state.exists()
