#!/usr/bin/env bash
# The README's first command: install, then walk the chain of trust end to end on this machine.
# A throw-away state in ./.demo keeps your real CA (if any) untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export TLSGATE_STATE="$PWD/.demo/state"
tg=.venv/bin/tlsgate
rm -rf .demo && mkdir -p .demo

echo; echo "== 1. A certificate authority: a root trusted by definition, an intermediate it signs"
$tg ca init --name "tlsgate demo"
$tg ca export-root --out .demo/root.pem

echo; echo "== 2. A server certificate, signed by the intermediate"
$tg ca issue localhost 127.0.0.1 --out .demo/localhost

echo; echo "== 3. OpenSSL walks the chain from the leaf up to the root"
openssl verify -CAfile .demo/root.pem -untrusted .demo/localhost/chain.pem .demo/localhost/fullchain.pem

echo; echo "== 4. A real HTTPS server with that certificate, and curl trusting only our root"
.venv/bin/python - <<'PY' &
import http.server, pathlib, ssl
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(".demo/localhost/fullchain.pem", ".demo/localhost/key.pem")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello over HTTPS, verified against the tlsgate demo root\n"
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
srv = http.server.HTTPServer(("127.0.0.1", 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
pathlib.Path(".demo/port").write_text(str(srv.server_address[1]))
srv.serve_forever()
PY
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s .demo/port ] && break; sleep 0.1; done
port=$(cat .demo/port)
echo "\$ curl --cacert .demo/root.pem https://localhost:$port/"
curl --silent --show-error --max-time 10 --cacert .demo/root.pem \
  --resolve "localhost:$port:127.0.0.1" "https://localhost:$port/"
kill $server 2>/dev/null || true

echo; echo "== 5. What the CA remembers"
$tg ca list
echo
echo "Try: TLSGATE_STATE=$TLSGATE_STATE $tg ca revoke <serial> && $tg ca crl"
