#!/usr/bin/env bash
# The README's first command: install into ./.venv (skipped when it is up to date: see
# install.sh), then run the main job on embedded defaults:
# `tlsgate demo` starts a tiny echo app and `tlsgate serve` in front of it (internal CA, SQLite
# state), checks the chain of trust end to end, and prints the curl line to try.
# Extra arguments go to `tlsgate demo` (e.g. --port 9443, --once).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
exec .venv/bin/tlsgate demo "$@"
