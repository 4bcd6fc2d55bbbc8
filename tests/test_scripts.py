"""scripts/install.sh and scripts/demo.sh, run for real on a copy of the checkout whose .venv is
a stand-in that records what it is asked to do (so no pip download and no Debian package)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """pyproject.toml, setup.py and scripts/ as in the repository, and a .venv whose python and
    tlsgate append their arguments to calls.log."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", repo)
    shutil.copy(ROOT / "setup.py", repo)
    for script in ("install.sh", "demo.sh"):
        shutil.copy(ROOT / "scripts" / script, repo / "scripts")
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = repo / "calls.log"
    for name, answer in (("python", ""), ("tlsgate", "echo 'tlsgate 0.1.0'")):
        path = bin_dir / name
        path.write_text(f'#!/bin/sh\necho "{name} $*" >>{log}\n{answer}\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return repo


def run(repo: Path, *argv: str) -> str:
    """Run a script (install.sh needs openssl, curl and python3-venv, as scripts/test.sh has
    them installed); its stderr."""
    proc = subprocess.run(
        ["bash", *argv], cwd=repo, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL, env={**os.environ},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stderr


def pip_installs(repo: Path) -> list[str]:
    log = repo / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return [call for call in calls if call.startswith("python -m pip install") and " -e " in call]


def test_install_shows_each_step(checkout: Path) -> None:
    err = run(checkout, "scripts/install.sh")
    lines = err.splitlines()
    assert lines[0] == (
        "install.sh: pip install -e . (tlsgate, its dependencies and its compiled modules, about "
        "45 s the first time)"
    ), err
    assert lines[-1].startswith("install.sh: done in "), err
    assert lines[-1].endswith(f"s: tlsgate installed in {checkout}/.venv (run .venv/bin/tlsgate)")
    assert len(lines) == 2, err  # quiet otherwise
    assert pip_installs(checkout) == [
        "python -m pip install --quiet --disable-pip-version-check -e ."
    ]


def test_an_up_to_date_venv_is_not_installed_again(checkout: Path) -> None:
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 1
    err = run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 1, "installed again"
    assert err == (
        f"install.sh: {checkout}/.venv is up to date (pyproject.toml, setup.py, install.sh, *.pyx "
        "unchanged since it was made)\n"
    )
    # --test wants more than the plain install had: installed; the plain one is within it.
    run(checkout, "scripts/install.sh", "--test")
    assert pip_installs(checkout)[-1].endswith("-e .[test]")
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 2
    # New dependencies: installed again.
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"rich>=13.7",', '"rich>=13.8",'))
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 3


def test_a_changed_or_unbuilt_extension_is_built_again(checkout: Path) -> None:
    """An editable install does not rebuild a Cython module: install.sh does, when its source
    changed or its built module is gone."""
    source = checkout / "src" / "tlsgate" / "http" / "_fast.pyx"
    source.parent.mkdir(parents=True)
    source.write_text("# cython: language_level=3\n")
    python = checkout / ".venv" / "bin" / "python"
    built = source.with_name("_fast.cpython-311-x86_64-linux-gnu.so")
    # the stand-in pip "builds" the module, as setuptools' build_ext does beside the .pyx
    python.write_text(python.read_text() + f"case \"$*\" in *' -e '*) touch {built};; esac\n")
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 1
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 1, "installed again"
    source.write_text("# cython: language_level=3\n# changed\n")
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 2
    built.unlink()
    run(checkout, "scripts/install.sh")
    assert len(pip_installs(checkout)) == 3
    assert built.exists()


def test_demo_runs_without_reinstalling(checkout: Path) -> None:
    run(checkout, "scripts/demo.sh", "--once")
    run(checkout, "scripts/demo.sh", "--once", "--port", "9443")
    calls = (checkout / "calls.log").read_text().splitlines()
    assert len(pip_installs(checkout)) == 1
    assert [c for c in calls if c.startswith("tlsgate demo")] == [
        "tlsgate demo --once",
        "tlsgate demo --once --port 9443",
    ]


def test_a_failed_pip_install_is_not_stamped(checkout: Path) -> None:
    python = checkout / ".venv" / "bin" / "python"
    python.write_text(
        python.read_text().replace("\n\n", "\ncase \"$*\" in *' -e '*) exit 1;; esac\n")
    )
    proc = subprocess.run(
        ["bash", "scripts/install.sh"], cwd=checkout, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "pip install failed" in proc.stderr
    assert not (checkout / ".venv" / ".tlsgate-install").exists()
