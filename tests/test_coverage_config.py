"""pyproject.toml's coverage settings measure what runs in ``tlsgate serve`` processes: the
master (a subprocess, stopped by SIGTERM) and its forked workers (which leave by ``os._exit``).

Run outside the test session's own coverage: a fresh interpreter measures with exactly the
project's configuration, starts serve with two workers, stops it, and combines the data files.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import free_port
from tlsgate.serve import server, supervisor

ROOT = Path(__file__).resolve().parents[1]

MEASURE = """
import json, signal, socket, subprocess, sys, time
import coverage

pyproject, data_file, state, port = sys.argv[1:]
cov = coverage.Coverage(config_file=pyproject, data_file=data_file)
cov.start()
serve = subprocess.Popen(
    [sys.executable, "-m", "tlsgate", "serve", "--host", "localhost", "--to", "http://127.0.0.1:9",
     "--listen", f"127.0.0.1:{port}", "--no-http", "--workers", "2", "--state", state],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
)
deadline = time.monotonic() + 60
while time.monotonic() < deadline and serve.poll() is None:
    try:
        socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
time.sleep(1)  # the second worker too
serve.send_signal(signal.SIGTERM)
_, err = serve.communicate(timeout=60)
cov.stop()
cov.save()
cov.combine()
cov.save()
measured = cov.get_data()
print(json.dumps({
    "code": serve.returncode,
    "stderr": err,
    "lines": {f: sorted(measured.lines(f) or []) for f in measured.measured_files()},
}))
"""


def body_lines(function: object) -> set[int]:
    """The lines of a function's statements (not its ``def`` line or docstring, which run at
    import)."""
    source, first = inspect.getsourcelines(function)  # type: ignore[arg-type]
    tree = ast.parse(textwrap.dedent("".join(source)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    body = node.body[1:] if isinstance(node.body[0], ast.Expr) else node.body
    return {
        first - 1 + n.lineno
        for statement in body
        for n in ast.walk(statement)
        if hasattr(n, "lineno")
    }


def test_serve_processes_are_measured(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COVERAGE_", "COV_CORE_"))}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, str(ROOT / "pyproject.toml"),
         str(tmp_path / "data" / ".coverage"), str(tmp_path / "state"), str(free_port())],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["code"] == 0, result["stderr"]
    lines = set(result["lines"].get(str(Path(server.__file__).resolve()), []))
    # Run only in the serve process (the master), saved when it exits on SIGTERM.
    assert body_lines(server.EdgeServer._announce) & lines
    # Run only in a forked worker, saved before its os._exit.
    worker_lines = set(result["lines"].get(str(Path(supervisor.__file__).resolve()), []))
    assert body_lines(supervisor.label_logs) & worker_lines
    # Every process's data file (master, two workers, this one) was combined into one.
    assert len(list((tmp_path / "data").iterdir())) == 1
