"""The dependency direction is a rule, so it is a test: pki <- store <- ca <- acme <- renewal
<- proxy <- cli, with tls and http below ca (an allow-list: ALLOWED) for acme, client, proxy, demo
and inspect to share.

Each check imports a package in a fresh interpreter and looks at what came along, which catches
imports hidden inside functions of other modules only once they run, and module-level ones always.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = {
    # pki is pure: no I/O engines, no persistence, nothing above it.
    "tlsgate.pki": ["sqlite3", "asyncio", "ssl", "tlsgate.store", "tlsgate.ca", "tlsgate.cli"],
    "tlsgate.store": ["asyncio", "tlsgate.ca", "tlsgate.cli"],
    "tlsgate.ca": ["asyncio", "tlsgate.cli"],
    # acme builds its tls-alpn-01 and `ca serve` contexts with tlsgate.tls, not the proxy's.
    "tlsgate.acme": ["tlsgate.cli", "tlsgate.renewal", "tlsgate.proxy"],
    # ACME by role: the server and the client share only the wire format left in acme/ itself.
    "tlsgate.acme.server": [
        "tlsgate.acme.client",
        "tlsgate.cli",
        "tlsgate.renewal",
        "tlsgate.proxy",
    ],
    "tlsgate.acme.client": [
        "tlsgate.acme.server",
        "tlsgate.cli",
        "tlsgate.renewal",
        "tlsgate.proxy",
    ],
    "tlsgate.renewal": ["tlsgate.cli", "tlsgate.proxy"],
    "tlsgate.proxy": ["tlsgate.cli"],
    # mtls decides from plain values; the proxy applies its decisions, not the other way round.
    "tlsgate.mtls": ["tlsgate.cli", "tlsgate.proxy", "tlsgate.store"],
    # The client side reuses the renewal loop, tlsgate.http's parsers and tlsgate.tls: no proxy.
    "tlsgate.client": ["tlsgate.cli", "tlsgate.proxy"],
    # check/monitor look at TLS from the outside: no server, no store, no CA machinery.
    "tlsgate.inspect": ["tlsgate.cli", "tlsgate.proxy", "tlsgate.store", "tlsgate.renewal"],
}


#: Packages below both planes, and all they may import from tlsgate besides themselves. Anything
#: else (``tlsgate.proxy`` included) fails ``test_may_import_only``.
ALLOWED = {
    # TLS contexts, OpenSSL access, ticket keys, session cache, ClientHello reader.
    "tlsgate.tls": ["tlsgate.errors", "tlsgate.pki", "tlsgate.store"],
    # Sans-IO HTTP/1.1.
    "tlsgate.http": ["tlsgate.errors", "tlsgate.compiled"],
}

#: Modules left out of a package's walk, and why.
NOT_WALKED: dict[str, tuple[str, ...]] = {
    # psycopg imports asyncio for its async API, which the PostgreSQL store does not use; it is
    # loaded only for a postgresql:// store (test_sqlite_users_never_load_psycopg).
    "tlsgate.store": ("tlsgate.store.postgres",),
}


def bare_env() -> dict[str, str]:
    """The environment without the test session's coverage: under scripts/test.sh coverage
    starts in every Python child (pyproject.toml: patch = subprocess) and brings its own imports
    (sqlite3 among them), which are not the package's."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}


def modules_after(code: str) -> set[str]:
    """Every module in ``sys.modules`` after a fresh interpreter runs ``code``."""
    code += "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    return set(
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=bare_env(),
        ).stdout.split()
    )


def loaded_by(package: str) -> set[str]:
    """Every module in ``sys.modules`` after importing each module of ``package``."""
    return modules_after(
        "import importlib, pkgutil\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        f"    if not m.name.startswith({NOT_WALKED.get(package, ())!r}):\n"
        "        importlib.import_module(m.name)"
    )


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependency_direction(package: str) -> None:
    loaded = loaded_by(package)
    offenders = [m for m in FORBIDDEN[package] if m in loaded]
    assert not offenders, f"{package} pulls in {offenders}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_may_import_only(package: str) -> None:
    allowed = (package, *ALLOWED[package])
    offenders = sorted(
        m
        for m in loaded_by(package)
        if m.startswith("tlsgate.") and not any(m == a or m.startswith(a + ".") for a in allowed)
    )
    assert not offenders, f"{package} pulls in {offenders}"


def test_sqlite_users_never_load_psycopg(tmp_path: Path) -> None:
    loaded = modules_after(
        "from tlsgate.cli import main\n"
        "from tlsgate.store import open_store\n"
        f"open_store({str(tmp_path / 'state')!r}).close()"
    )
    assert "psycopg" not in loaded


def test_postgres_store_stays_below_ca_and_cli() -> None:
    loaded = modules_after("import tlsgate.store.postgres, tlsgate.store.postgres_schema")
    assert "psycopg" in loaded
    assert not [m for m in loaded if m.startswith(("tlsgate.ca", "tlsgate.cli"))]


#: Modules the pure layer must not import itself (``socket`` does arrive through
#: ``cryptography`` -> ``email.utils``, which does no I/O, so the sys.modules check cannot ban it).
PURE_BANNED = {"socket", "ssl", "asyncio", "sqlite3", "subprocess", "threading", "time"}


SRC = Path(__file__).resolve().parents[1] / "src" / "tlsgate"
#: Sans-IO modules outside pki: parsing and decisions only, the asyncio layer moves the bytes.
SANS_IO = [
    *sorted((SRC / "http").glob("*.py")),
    *(SRC / "proxy" / name for name in ("headers.py", "routing.py")),
    SRC / "tls" / "clienthello.py",
    *(SRC / "acme" / name for name in ("problems.py", "jose.py", "okp.py", "ari.py")),
    *(
        SRC / "acme" / "server" / name
        for name in (
            "nonces.py",
            "jws.py",
            "policy.py",
            "status.py",
            "csr.py",
            "resources.py",
        )
    ),
    SRC / "acme" / "client" / "schedule.py",
    *sorted((SRC / "mtls").glob("*.py")),
    *(
        SRC / "inspect" / name
        for name in ("checks.py", "records.py", "report.py", "target.py", "options.py")
    ),
]


@pytest.mark.parametrize("path", [*sorted((SRC / "pki").glob("*.py")), *SANS_IO], ids=str)
def test_sans_io_source_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in PURE_BANNED, f"{path.name} imports {name}"


def _package_of(module: str) -> str:
    """``tlsgate.config.values`` -> ``tlsgate.config``; a top-level module is its own package."""
    return ".".join(module.split(".")[:2])


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _private_imports(path: Path) -> list[str]:
    """Each ``_private`` name ``path`` takes from another package of tlsgate: by ``from X import
    _name``, through a private module (``X._mod``), or as ``alias._name`` of an imported module."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    home = _package_of(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    foreign: dict[str, str] = {}  # local alias -> module of another package
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith("tlsgate.") or _package_of(node.module) == home:
                continue
            if any(_private(part) for part in node.module.split(".")):
                found.append(f"{node.module} (line {node.lineno})")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.module}.{alias.name} (line {node.lineno})")
                else:
                    foreign[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("tlsgate.") or _package_of(alias.name) == home:
                    continue
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"{alias.name} (line {node.lineno})")
                if alias.asname:
                    foreign[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in foreign
            and _private(node.attr)
        ):
            found.append(f"{foreign[node.value.id]}.{node.attr} (line {node.lineno})")
    return found


def test_no_private_names_across_packages() -> None:
    """A package's ``_private`` names are its own to change; another package that needs one gets
    a public name for it instead (same package, any module, is fine)."""
    offenders = {
        str(path.relative_to(SRC)): found
        for path in sorted(SRC.rglob("*.py"))
        if (found := _private_imports(path))
    }
    assert not offenders, f"private names imported across packages: {offenders}"


#: The wire-format modules directly in acme/: what both roles import, so they import neither.
ACME_SHARED = sorted(
    f"tlsgate.acme.{path.stem}" for path in (SRC / "acme").glob("*.py") if path.stem != "__init__"
)


@pytest.mark.parametrize("module", ACME_SHARED)
def test_acme_wire_format_belongs_to_neither_role(module: str) -> None:
    loaded = modules_after(f"import {module}")
    assert not [m for m in loaded if m.startswith(("tlsgate.acme.server", "tlsgate.acme.client"))]
