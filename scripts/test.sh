#!/usr/bin/env bash
# The README's second command: install what the tests need, then lint, type-check and run them all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh --test
export PYTHONDONTWRITEBYTECODE=1
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy --strict"; .venv/bin/mypy
echo "== pytest"
.venv/bin/pytest --cov --cov-report=term:skip-covered "$@"
