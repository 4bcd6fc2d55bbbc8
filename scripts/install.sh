#!/usr/bin/env bash
# Install tlsgate into ./.venv on a fresh Debian machine, with the system tools it drives.
# Usage: scripts/install.sh [--test] [--bench]
#   --test adds what the test suite needs; --bench what bench/proxy.py drives (nginx, wrk, gcc for
#   its shim, haproxy, the client-certificate originator of --client-cert and --haproxy, and
#   caddy, the second reference proxy of --caddy).
#
# One line on stderr per step it takes (the whole install is 30-60 s, mostly pip), nothing else
# unless something fails. It is a no-op (well under a second) when .venv was installed by this
# same install.sh from this same pyproject.toml with at least these options: the stamp
# .venv/.tlsgate-install holds their hash. tlsgate itself is installed in editable mode, so a
# change to its source needs no reinstall; a change to its dependencies does, and gets one.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { echo "install.sh: $*" >&2; }

extras=""
# gcc builds the compiled modules (Cython's C) at install, against the headers of python3-dev.
tools=(openssl curl gcc)
# Debian package for each tool the tests drive (command -> package).
declare -A packages=([openssl]=openssl [curl]=curl [certbot]=certbot [lego]=lego [pebble]=pebble
  [nginx]=nginx [caddy]=caddy [wrk]=wrk [gcc]=gcc [haproxy]=haproxy [taskset]=util-linux [initdb]=postgresql
  [nghttp]=nghttp2-client [h2load]=nghttp2-client [chromium]=chromium [certutil]=libnss3-tools)
for option in "$@"; do
  case "$option" in
    --test)
      extras="[test]"
      tools+=(certbot lego pebble)  # real ACME clients and a reference ACME server
      tools+=(initdb)  # the PostgreSQL store's tests start a real server (initdb + pg_ctl)
      tools+=(nghttp h2load)  # HTTP/2 clients for the edge's h2 tests
      tools+=(chromium certutil)  # a real browser over h2, trusting the test CA through NSS
      ;;
    --bench)
      tools+=(nginx caddy wrk gcc haproxy taskset h2load)
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
# Python.h of the interpreter .venv is made from, for the compiled modules.
[ -f "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
  || missing+=(python3-dev)
# OpenSSL's headers: the data plane drives the system libssl (the one Python's ssl loads) itself.
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
# nghttp2's headers: HTTP/2 at the edge is libnghttp2 driven by the data plane (http/_h2.pyx).
[ -f /usr/include/nghttp2/nghttp2.h ] || missing+=(libnghttp2-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: please install with apt-get: ${missing[*]}" >&2
    exit 1
  fi
  step "installing ${missing[*]} from Debian (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" ca-certificates >/dev/null
fi

# What this install is: these options of this install.sh, pyproject.toml, setup.py and the Cython
# sources (an editable install does not rebuild an extension by itself). A .venv stamped with it
# (or with --test's, which includes the plain install) is up to date if every extension is built.
stamp=.venv/.tlsgate-install
mapfile -t cython_sources < <(find src \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' \) 2>/dev/null | sort)
wanted="$(cat pyproject.toml setup.py scripts/install.sh "${cython_sources[@]}" | sha256sum | cut -d' ' -f1)"
built() {
  local source
  for source in "${cython_sources[@]}"; do
    [[ $source == *.pyx ]] || continue
    compgen -G "${source%.pyx}.cpython-*.so" >/dev/null || return 1
  done
}
if [ -f "$stamp" ] && [ -x .venv/bin/tlsgate ] && { [ -z "$extras" ] || [ -x .venv/sslyze/bin/sslyze ]; }; then
  read -r have_hash have_extras <"$stamp" || true
  if [ "${have_hash:-}" = "$wanted" ] && { [ -z "$extras" ] || [ "${have_extras:-}" = "$extras" ]; } \
    && built && .venv/bin/tlsgate --version >/dev/null 2>&1; then
    step "$(pwd)/.venv is up to date (pyproject.toml, setup.py, install.sh, *.pyx unchanged since it was made)"
    exit 0
  fi
fi
rm -f "$stamp"  # an install cut short must not look complete

if [ ! -x .venv/bin/python ]; then
  step "creating .venv (python3 -m venv)"
  python3 -m venv .venv
fi
step "pip install -e .${extras} (tlsgate, its dependencies and its compiled modules, about 45 s the first time)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
pip_log=$(mktemp)
trap 'rm -f "$pip_log"' EXIT
quiet() { grep -v "is ignored: it is neither a file nor a directory" "$pip_log" >&2 || true; }
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras}" \
  >"$pip_log" 2>&1; then
  quiet
  step "pip install failed (above); .venv is left unstamped, the next run installs again"
  exit 1
fi
quiet
if [ -n "$extras" ]; then
  # sslyze checks `serve` against Mozilla's TLS profile (tests/proxy/test_tls_profile_e2e.py). It
  # gets a virtualenv of its own: it pins cryptography<47, which in .venv would hold back the
  # cryptography (and acme) that tlsgate is tested with.
  step "pip install sslyze into .venv/sslyze (the TLS profile check the tests run)"
  [ -x .venv/sslyze/bin/python ] || python3 -m venv .venv/sslyze
  if ! .venv/sslyze/bin/python -m pip install --quiet --disable-pip-version-check "sslyze>=6.3" \
    >"$pip_log" 2>&1; then
    quiet
    step "pip install sslyze failed (above); .venv is left unstamped, the next run installs again"
    exit 1
  fi
  .venv/sslyze/bin/sslyze --help >/dev/null
fi
.venv/bin/tlsgate --version >/dev/null
if ! built; then
  step "pip install built no extension module next to ${cython_sources[*]}; .venv is left unstamped"
  exit 1
fi
echo "$wanted ${extras}" >"$stamp"
step "done in $((SECONDS - started)) s: tlsgate installed in $(pwd)/.venv (run .venv/bin/tlsgate)"
