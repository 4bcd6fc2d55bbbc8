#!/usr/bin/env bash
# Install tlsgate into ./.venv on a fresh Debian machine, with the system tools it drives.
# Usage: scripts/install.sh [--test] [--bench]
#   --test adds what the test suite needs; --bench what bench/proxy.py drives (nginx, wrk, gcc for
#   its shim, and haproxy, the client-certificate originator of --client-cert and --haproxy).
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
tools=(openssl curl)
# Debian package for each tool the tests drive (command -> package).
declare -A packages=([openssl]=openssl [curl]=curl [certbot]=certbot [lego]=lego [pebble]=pebble
  [nginx]=nginx [wrk]=wrk [gcc]=gcc [haproxy]=haproxy [taskset]=util-linux [initdb]=postgresql)
for option in "$@"; do
  case "$option" in
    --test)
      extras="[test]"
      tools+=(certbot lego pebble)  # real ACME clients and a reference ACME server
      tools+=(initdb)  # the PostgreSQL store's tests start a real server (initdb + pg_ctl)
      ;;
    --bench)
      tools+=(nginx wrk gcc haproxy taskset)
      ;;
    *)
      echo "install.sh: unknown option $option (known: --test, --bench)" >&2
      exit 2
      ;;
  esac
done

# A tool on PATH, or in Debian's versioned PostgreSQL directory (initdb, pg_ctl live there).
have() {
  command -v "$1" >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/$1" >/dev/null
}
missing=()
for tool in "${tools[@]}"; do
  have "$tool" || missing+=("${packages[$tool]}")
done
# psycopg (the PostgreSQL store) is pure Python over the system's libpq.
compgen -G "/usr/lib/*/libpq.so.5*" >/dev/null || compgen -G "/usr/lib/libpq.so.5*" >/dev/null \
  || missing+=(libpq5)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: please install with apt-get: ${missing[*]}" >&2
    exit 1
  fi
  echo "install.sh: installing ${missing[*]} from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" ca-certificates >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
if [ -n "$extras" ]; then
  # sslyze checks `serve` against Mozilla's TLS profile (tests/interop/test_sslyze.py). It gets a
  # virtualenv of its own: it pins cryptography<47, which in .venv would hold back the
  # cryptography (and acme) that tlsgate is tested with.
  [ -x .venv/sslyze/bin/python ] || python3 -m venv .venv/sslyze
  .venv/sslyze/bin/python -m pip install --quiet --disable-pip-version-check "sslyze>=6.3" 2>&1 \
    | grep -v "is ignored: it is neither a file nor a directory" || true
  .venv/sslyze/bin/sslyze --help >/dev/null
fi
.venv/bin/tlsgate --version >/dev/null
echo "install.sh: tlsgate installed in $(pwd)/.venv (run .venv/bin/tlsgate)" >&2
