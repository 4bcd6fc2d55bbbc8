"""The dependency direction is a rule, so it is a test: the whole contract is :data:`MAY_IMPORT`,
for every package under ``src/tlsgate`` the packages of tlsgate it may import; any other import
fails, and so does taking a ``_private`` name from another package.

Two views of the same rule. The source view (:func:`test_imports_follow_the_contract`) reads
every ``import`` of every module, at module level, inside functions and under ``TYPE_CHECKING``
alike, so a lazy import cannot hide an arrow. The run-time view
(:func:`test_loads_only_what_it_may`) imports each package in a fresh interpreter and looks at
what came along, which also catches ``importlib`` and what third-party libraries drag in
(:data:`FORBIDDEN`: no event loop or database below the CA).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tlsgate"

#: The whole contract: each package of tlsgate (acme's two roles counted apart; a top-level
#: module counts as a package) and the packages it may import. A package missing here fails, as
#: does any import not listed: a new arrow is a decision made here, in review, not a side
#: effect. Top to bottom it is the direction: errors <- pki <- store, tls, http <- ca, mtls <-
#: config <- acme <- renewal <- proxy <- serve <- cli, with client, monitor and demo beside serve
#: (none of them inside the data plane) and inspect beside ca.
MAY_IMPORT: dict[str, frozenset[str]] = {
    name: frozenset(allowed)
    for name, allowed in {
        "errors": (),
        "plural": (),
        # Compiled or pure: the one switch every compiled module's package asks.
        "compiled": (),
        "pki": ("errors",),
        "store": ("errors", "pki"),
        # Below both planes: TLS contexts and OpenSSL access; sans-IO HTTP/1.1.
        "tls": ("errors", "pki"),
        "http": ("compiled", "errors"),
        "ca": ("errors", "pki", "store"),
        # mtls decides from plain values; the proxy applies its decisions.
        "mtls": ("errors", "pki"),
        "config": ("errors", "mtls", "pki"),
        # ACME by role: the server and the client share only the wire format left in acme/.
        "acme": ("errors", "pki"),
        "acme.server": ("acme", "ca", "errors", "pki", "store", "tls"),
        "acme.client": ("acme", "config", "errors", "pki", "store"),
        "renewal": ("acme", "acme.client", "ca", "config", "errors", "pki", "store"),
        # check/monitor look at TLS from the outside: no server, no store, no CA machinery.
        "inspect": ("errors", "pki", "tls"),
        # THE DATA PLANE: plain values in (tlsgate.proxy.settings); no configuration, store, CA,
        # ACME or renewal, and nothing of the control plane that drives it.
        "proxy": ("compiled", "errors", "http", "mtls", "pki", "plural", "tls"),
        # THE CONTROL PLANE of `tlsgate serve`: everything below, and the data plane.
        "serve": (
            *("acme", "ca", "config", "errors", "http", "mtls", "pki", "plural"),
            *("proxy", "renewal", "store", "tls"),
        ),
        # The mTLS client side reuses the renewal loop, http's parsers and tls: no proxy.
        "client": ("ca", "config", "errors", "http", "pki", "renewal", "store", "tls"),
        "monitor": ("config", "errors", "inspect", "pki", "plural", "store"),
        # The echo app answers with serve's tiny built-in server, not the data plane.
        "demo": ("http", "serve"),
        "cli": (
            *("acme.client", "acme.server", "ca", "client", "config", "demo", "errors"),
            *("inspect", "monitor", "pki", "plural", "serve", "store"),
        ),
        "__main__": ("cli",),
        "__init__": (),
    }.items()
}

#: What the run-time view bans besides tlsgate's own packages: pki is pure, and nothing below the
#: CA runs an event loop or (pki) touches a database or a socket's TLS.
FORBIDDEN = {
    "tlsgate.pki": ["sqlite3", "asyncio", "ssl"],
    "tlsgate.store": ["asyncio"],
    "tlsgate.ca": ["asyncio"],
    "tlsgate.mtls": ["asyncio", "sqlite3"],
    "tlsgate.http": ["asyncio", "ssl", "sqlite3"],
}


def package_of(module: str) -> str:
    """``tlsgate.acme.server.jws`` -> ``acme.server``; ``tlsgate.proxy.edge`` -> ``proxy``;
    ``tlsgate.errors`` -> ``errors``: the key of :data:`MAY_IMPORT` a module belongs to."""
    parts = module.split(".")[1:] or ["__init__"]
    if parts[0] == "acme" and len(parts) > 1 and parts[1] in ("server", "client"):
        return f"acme.{parts[1]}"
    return parts[0]


#: Cython's import statements, as Python would write them (``cimport`` aside): the source view
#: reads the compiled twins as it reads their pure modules.
CYTHON_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+c?import[ \t]+(?:\([^)]*\)|[^\n]*)|c?import[ \t]+[^\n]*)",
    re.M,
)


def sources() -> list[Path]:
    """Every source of tlsgate: Python modules and the Cython twins (``.pyx`` and the ``.pxi``
    files they include)."""
    return sorted(p for ext in ("py", "pyx", "pxi") for p in SRC.rglob(f"*.{ext}"))


def parse_source(path: Path) -> ast.Module:
    """``path`` as a Python syntax tree; for Cython, only its import statements (each at its own
    line, ``cimport`` read as ``import``), which is all the layering checks look at."""
    text = path.read_text()
    if path.suffix == ".py":
        return ast.parse(text, filename=str(path))
    module = ast.Module(body=[], type_ignores=[])
    for match in CYTHON_IMPORT.finditer(text):
        statement = re.sub(r"\bcimport\b", "import", match.group(0).strip())
        tree = ast.parse(statement, filename=str(path))
        ast.increment_lineno(tree, text.count("\n", 0, match.start()))
        module.body.extend(tree.body)
    return module


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 2 else parts)


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every tlsgate module ``path`` imports, wherever the statement is, with its line."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(parse_source(path)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
    return [(m, line) for m, line in found if m.startswith("tlsgate.")]


def closure(package: str) -> frozenset[str]:
    """``package`` and every package it may reach through :data:`MAY_IMPORT`."""
    seen = {package}
    todo = [package]
    while todo:
        for dep in MAY_IMPORT[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return frozenset(seen)


def test_every_package_is_in_the_contract() -> None:
    packages = {package_of(module_name(p)) for p in sources()}
    assert packages - MAY_IMPORT.keys() == set(), "packages missing from MAY_IMPORT"
    assert MAY_IMPORT.keys() - packages == set(), "MAY_IMPORT names packages that do not exist"
    for name, allowed in MAY_IMPORT.items():
        assert allowed <= MAY_IMPORT.keys(), (
            f"{name} may import unknown {allowed - MAY_IMPORT.keys()}"
        )
        assert name not in closure_without(name), f"{name} is in a cycle of MAY_IMPORT"


def closure_without(package: str) -> frozenset[str]:
    """What ``package``'s dependencies reach (itself only through a cycle)."""
    reached: set[str] = set()
    for dep in MAY_IMPORT[package]:
        reached |= closure(dep)
    return frozenset(reached)


def contract_offenders(path: Path, home: str) -> list[str]:
    """The imports of ``path`` (a module of package ``home``) that :data:`MAY_IMPORT` refuses."""
    return [
        f"{module} (line {line})"
        for module, line in imported_modules(path)
        if (target := package_of(module)) != home and target not in MAY_IMPORT[home]
    ]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_contract(path: Path) -> None:
    home = package_of(module_name(path))
    offenders = contract_offenders(path, home)
    assert not offenders, f"{home} may not import {offenders} (MAY_IMPORT[{home!r}])"


def test_the_source_view_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    """The negative control: an upward import hidden in a function or under TYPE_CHECKING is
    refused as surely as one at the top of a module."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from tlsgate.serve.metrics import Metrics\n"
        "def f() -> None:\n    import tlsgate.config.model\n"
        "from tlsgate.http import Request\n"
    )
    assert contract_offenders(probe, "proxy") == [
        "tlsgate.serve.metrics (line 3)",
        "tlsgate.config.model (line 5)",
    ]
    assert contract_offenders(probe, "serve") == []


def test_the_source_view_reads_cython(tmp_path: Path) -> None:
    """The compiled twins are held to the same contract: imports and cimports, one-line and
    parenthesized, and a private name taken across packages."""
    probe = tmp_path / "probe.pyx"
    probe.write_text(
        "from libc.string cimport memchr\n"
        "cdef class X:\n    pass\n"
        "from tlsgate.http import (\n    Request,\n    Response,\n)\n"
        "from tlsgate.store.base cimport Record\n"
        "    import tlsgate.serve.metrics\n"
    )
    assert contract_offenders(probe, "proxy") == [
        "tlsgate.store.base (line 8)",
        "tlsgate.serve.metrics (line 9)",
    ]
    assert [type(node).__name__ for node in parse_source(probe).body] == [
        "ImportFrom", "ImportFrom", "ImportFrom", "Import",
    ]  # fmt: skip


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
    """Every module in ``sys.modules`` after importing each module of ``package`` (as the
    contract counts it: ``tlsgate.acme`` without its two roles), but :data:`NOT_WALKED`."""
    key = package_of(package)
    modules = sorted(
        name
        for path in (SRC / package.split(".", 1)[1].replace(".", "/")).rglob("*.py")
        if package_of(name := module_name(path)) == key
        and not name.startswith(NOT_WALKED.get(package, ("-",)))
    )
    return modules_after("".join(f"import {m}\n" for m in modules))


#: Every package the run-time view imports: each key of MAY_IMPORT but the top-level modules.
RUNTIME = sorted(
    f"tlsgate.{name}" for name in MAY_IMPORT if (SRC / name.replace(".", "/")).is_dir()
)


@pytest.mark.parametrize("package", RUNTIME)
def test_loads_only_what_it_may(package: str) -> None:
    loaded = loaded_by(package)
    reach = closure(package_of(package))
    beyond = sorted(m for m in loaded if m.startswith("tlsgate.") and package_of(m) not in reach)
    assert not beyond, f"{package} pulls in {beyond}"
    banned = [m for m in FORBIDDEN.get(package, []) if m in loaded]
    assert not banned, f"{package} pulls in {banned}"


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


#: Sans-IO modules outside pki: parsing and decisions only, the asyncio layer moves the bytes.
SANS_IO = [
    *sorted((SRC / "http").glob("*.py")),
    *(SRC / "proxy" / name for name in ("headers.py", "routing.py", "settings.py")),
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
        for name in ("findings.py", "records.py", "report.py", "target.py", "options.py")
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
    tree = parse_source(path)
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
        str(path.relative_to(SRC)): found for path in sources() if (found := _private_imports(path))
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


def level(package: str) -> int:
    """0 for a package that imports nothing of tlsgate, else one more than its highest import."""
    return 1 + max((level(dep) for dep in MAY_IMPORT[package]), default=-1)


def render_contract() -> str:
    """:data:`MAY_IMPORT` as the README's map: the highest level first, each package with what
    it may import directly."""
    rows = sorted(
        (name for name in MAY_IMPORT if name not in ("__init__", "__main__")),
        key=lambda name: (-level(name), name),
    )
    lines = [f"{'level':<6} {'package':<12} may import"]
    for name in rows:
        deps = " ".join(sorted(MAY_IMPORT[name])) or "-"
        lines.append(f"{level(name):<6} {name:<12} {deps}")
    return "\n".join(lines)


def test_readme_shows_the_contract() -> None:
    """The README's package map is this table, so it cannot drift from what is enforced."""
    readme = (SRC.parents[1] / "README.md").read_text()
    assert f"```\n{render_contract()}\n```" in readme, render_contract()
