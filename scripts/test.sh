#!/usr/bin/env bash
# The README's second command: install what the tests need, then lint, type-check and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
# Bytecode goes to a cache outside the checkout, not nowhere: each of the hundreds of
# `python -m tlsgate` processes the tests start would otherwise compile tlsgate again (~0.4 s).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-${TMPDIR:-/tmp}/tlsgate-pycache-$(id -u)}"
# Coverage data stays out of the checkout: every measured process (tests start hundreds of
# `python -m tlsgate`, see [tool.coverage.run] in pyproject.toml) writes a file of its own, which
# pytest-cov combines into one for the report; all of it is removed when the run ends.
coverage_dir=$(mktemp -d "${TMPDIR:-/tmp}/tlsgate-coverage.XXXXXX")
trap 'rm -rf "$coverage_dir"' EXIT
export COVERAGE_FILE="$coverage_dir/.coverage"
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"
# One pytest-xdist worker per core of the 2-core CI machine (TLSGATE_TEST_WORKERS=0: no xdist).
# Each test file stays on one worker; files start in collection order, where tests/conftest.py
# puts the longest first.
.venv/bin/pytest -n "${TLSGATE_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder \
  --cov --cov-report=term:skip-covered "$@"
# The pure-Python twins stay the reference and the fallback: the proxy's and the parsers' tests
# run again on them (TLSGATE_PURE=1), their coverage added to the first pass's.
echo "== pytest, pure-Python twins (TLSGATE_PURE=1): tests/proxy and tests/http"
TLSGATE_PURE=1 .venv/bin/pytest -n "${TLSGATE_TEST_WORKERS:-2}" --dist loadfile \
  --no-loadscope-reorder --cov --cov-append --cov-report=term:skip-covered -m "not compiled_only" \
  tests/proxy tests/http
