"""The bad TLS zoo: real ``openssl s_server`` processes on loopback, each presenting one mistake.

The PKI is built here with ``cryptography`` directly (not through tlsgate's own CA code, so a bug
there cannot hide a bug in ``check``): a root, an intermediate, and one leaf per case, ECDSA P-256
except the RSA-1024 one. Every leaf names ``zoo.test`` unless the case is about the name, and
every leaf the intermediate signed carries a CRL Distribution Point on a loopback HTTP server that
serves the intermediate's CRL, which lists the "revoked" leaf. Each case is checked as
``tlsgate check 127.0.0.1:PORT --servername zoo.test --ca root.pem``.

Every case also says what OpenSSL's own verifier (``openssl s_client``) reports for it, so the
zoo is checked against an independent oracle before ``check`` is judged against the zoo.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import free_port
from tlsgate.inspect.report import Code

__all__ = ["CASES", "NAME", "Case", "Zoo"]

#: Every case, in the order the servers start; tests parametrize over these before the zoo exists.
CASES = (
    "valid", "expires-soon", "expired", "not-yet-valid", "wrong-host", "self-signed",
    "missing-intermediate", "revoked", "rsa-1024", "tls-1.0-only",
)  # fmt: skip
NAME = "zoo.test"  # the name every case is checked as (SNI and the name verified)
LEGACY = ("-cipher", "DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS 1.0 and RSA-1024 above this

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Case:
    """One server of the zoo and what ``check`` must say about it."""

    name: str
    port: int
    exit_code: int  # 0 ok, 1 warning, 2 critical
    code: Code | None  # the finding that must be among the findings; None: nothing wrong
    reason: str  # a regex (case-insensitive) the plain-words text output must match
    directory: Path  # cert.pem, key.pem, chain.pem (may be empty), fullchain.pem
    openssl_verify: str  # the "Verification" line of ``openssl s_client -brief``
    client_args: tuple[str, ...] = ()  # what s_client needs to connect at all, or to see it

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def fullchain(self) -> Path:
        return self.directory / "fullchain.pem"


@dataclass
class _Spec:
    name: str
    exit_code: int
    code: Code | None
    reason: str
    openssl_verify: str
    key: Key
    cert: x509.Certificate
    with_chain: bool = True  # serve the intermediate after the leaf
    server_args: tuple[str, ...] = ()
    client_args: tuple[str, ...] = ()


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ec() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _subject(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tlsgate bad TLS zoo"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(*, cert_sign: bool = False, encipher: bool = False) -> x509.KeyUsage:
    """A CA's keyCertSign + cRLSign, or a server's digitalSignature (+ keyEncipherment for RSA)."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=encipher,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    now: datetime,
    days: int,
    path_length: int | None,
) -> x509.Certificate:
    issuer_name = issuer[0].subject if issuer else _subject(common_name)
    signing_key = issuer[1] if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(common_name))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


def _leaf(
    key: Key,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    not_before: datetime,
    not_after: datetime,
    *,
    names: Sequence[str] = (NAME,),
    crl_url: str | None = None,
) -> x509.Certificate:
    """A server certificate; ``issuer`` None makes it self-signed (like a distro's snakeoil)."""
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(names[0]))
        .issuer_name(issuer[0].subject if issuer else _subject(names[0]))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            _usage(encipher=isinstance(key, rsa.RSAPrivateKey)), critical=True
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer[1].public_key()),
            critical=False,
        )
    if crl_url is not None:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _crl(
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    revoked: Sequence[x509.Certificate],
    now: datetime,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - timedelta(hours=1))
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - timedelta(hours=1))
            .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
            .build()
        )
    return builder.sign(issuer_key, hashes.SHA256())


class _CrlServer:
    """Loopback HTTP serving the intermediate's CRL (DER) at ``/int.crl``; counts the fetches."""

    def __init__(self) -> None:
        self.crl = b""
        self.fetches = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10

            def do_GET(self) -> None:
                if self.path != "/int.crl":
                    self.send_error(404)
                    return
                server.fetches += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(server.crl)))
                self.end_headers()
                self.wfile.write(server.crl)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/int.crl"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=10)


def _wait_accepting(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> bool:
    """True once something accepts on ``port``; False if ``proc`` died (say, the port was taken)."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.05)  # one that lost the port to another process exits right away
            return proc.poll() is None
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"openssl s_server did not accept on {port} within {timeout} s: "
                    + log.read_text(errors="replace")
                ) from None
            time.sleep(0.05)


@dataclass
class Zoo:
    """Build with :meth:`start`, stop with :meth:`stop` (kills every server, even half-started)."""

    directory: Path
    openssl: str
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    cases: dict[str, Case] = field(default_factory=dict)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _crl_server: _CrlServer | None = None

    @property
    def root(self) -> Path:
        return self.directory / "root.pem"

    @property
    def crl_fetches(self) -> int:
        return self._crl_server.fetches if self._crl_server else 0

    def start(self) -> Zoo:
        self._crl_server = _CrlServer()
        crl_url = self._crl_server.url
        now = self.now
        day = timedelta(days=1)
        root_key, int_key = _ec(), _ec()
        root = _ca("Zoo Root CA", root_key, None, now, 3650, None)
        intermediate = _ca("Zoo Intermediate CA", int_key, (root, root_key), now, 1825, 0)
        issuer = (intermediate, int_key)

        def leaf(
            key: Key, before: datetime, after: datetime, names: tuple[str, ...] = (NAME,)
        ) -> x509.Certificate:
            return _leaf(key, issuer, before, after, names=names, crl_url=crl_url)

        k = [_ec() for _ in range(9)]
        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        revoked = leaf(k[7], now - day, now + 90 * day)
        specs = [
            _Spec("valid", 0, None, r"\bOK\b|valid|trusted", "Verification: OK",
                  k[0], leaf(k[0], now - day, now + 90 * day)),
            _Spec("expires-soon", 1, Code.EXPIRES_SOON, r"\b(9|10) days\b", "Verification: OK",
                  k[1], leaf(k[1], now - 80 * day, now + 10 * day)),
            _Spec("expired", 2, Code.EXPIRED, r"expired", "certificate has expired",
                  k[2], leaf(k[2], now - 91 * day, now - day)),
            _Spec("not-yet-valid", 2, Code.NOT_YET_VALID, r"not (yet )?valid|valid from|until",
                  "certificate is not yet valid", k[3], leaf(k[3], now + day, now + 91 * day)),
            _Spec("wrong-host", 2, Code.HOSTNAME_MISMATCH, r"other\.test", "hostname mismatch",
                  k[4], leaf(k[4], now - day, now + 90 * day, names=("other.test",))),
            _Spec("self-signed", 2, Code.SELF_SIGNED, r"self[- ]signed|signed itself",
                  "self-signed certificate", k[5], _leaf(k[5], None, now - day, now + 90 * day),
                  with_chain=False),
            _Spec("missing-intermediate", 2, Code.INCOMPLETE_CHAIN, r"intermediate|incomplete",
                  "unable to verify the first certificate", k[6],
                  leaf(k[6], now - day, now + 90 * day), with_chain=False),
            _Spec("revoked", 2, Code.REVOKED, r"revoked", "certificate revoked", k[7], revoked,
                  client_args=("-crl_check", "-crl_download")),
            _Spec("rsa-1024", 2, Code.WEAK_KEY, r"1024", "EE certificate key too weak",
                  weak, leaf(weak, now - day, now + 90 * day), server_args=LEGACY),
            _Spec("tls-1.0-only", 2, Code.LEGACY_TLS, r"TLS ?v?1\.0|TLSv1\b", "Verification: OK",
                  k[8], leaf(k[8], now - day, now + 90 * day), server_args=("-tls1", *LEGACY),
                  client_args=("-tls1", *LEGACY)),
        ]  # fmt: skip
        crl = _crl(intermediate, int_key, [revoked], now)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.root.write_bytes(_pem(root))
        (self.directory / "int.crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        self._crl_server.crl = crl.public_bytes(serialization.Encoding.DER)
        for s in specs:
            self._start(s, (intermediate,) if s.with_chain else ())
        return self

    def _start(self, s: _Spec, chain: tuple[x509.Certificate, ...]) -> None:
        where = self.directory / s.name
        where.mkdir()
        (where / "cert.pem").write_bytes(_pem(s.cert))
        (where / "key.pem").write_bytes(_key_pem(s.key))
        (where / "chain.pem").write_bytes(_pem(*chain))
        (where / "fullchain.pem").write_bytes(_pem(s.cert, *chain))
        log = where / "s_server.log"
        for _attempt in range(5):  # free_port() can race with another process taking the port
            port = free_port()
            argv = [self.openssl, "s_server", "-accept", f"127.0.0.1:{port}",
                    "-cert", str(where / "cert.pem"), "-key", str(where / "key.pem"),
                    "-www", "-quiet", *s.server_args]  # fmt: skip
            if chain:
                argv += ["-cert_chain", str(where / "chain.pem")]
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
                )
            self._procs.append(proc)
            if _wait_accepting(port, proc, log, timeout=10):
                break
        else:
            raise RuntimeError(f"openssl s_server for {s.name} never started: {log.read_text()}")
        self.cases[s.name] = Case(
            name=s.name, port=port, exit_code=s.exit_code, code=s.code, reason=s.reason,
            directory=where, openssl_verify=s.openssl_verify, client_args=s.client_args,
        )  # fmt: skip

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        if self._crl_server is not None:
            self._crl_server.close()
            self._crl_server = None
