"""Leaf certificate issuance rate: tlsgate next to openssl, ECDSA P-256, one process.

Rows (see bench/README.md for what each one includes):

* tlsgate pki, from CSR      PEM CSR -> ``load_csr`` -> ``check_csr`` -> ``build_leaf`` -> PEM
* tlsgate pki, new key       ``generate_key`` -> ``build_leaf`` -> PEM
* tlsgate CA, from CSR       PEM CSR -> ``check_csr`` -> ``CertificateAuthority.issue`` (SQLite)
* tlsgate CA, new key        ``CertificateAuthority.issue`` generating the key (SQLite)
* openssl ca batch           ``openssl ca -batch -notext -infiles csr1 ... csrN`` (the reference)
* openssl x509 -req          one ``openssl x509 -req`` process per certificate, with and without
                             the default trust store it loads at every start
* primitive ceilings         ECDSA P-256 signatures/s in ``cryptography`` and ``openssl speed``

Every loop is bounded: it stops after ``--count`` certificates or once ``--seconds`` have passed,
whichever comes first; ``--repeat`` rounds run every row in turn and the median is reported. All
files live in one temporary directory that is removed at the end.

    .venv/bin/python bench/issuance.py [--count N] [--seconds S] [--repeat R] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import cryptography
from cryptography import x509
from cryptography.hazmat.backends.openssl import backend as crypto_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsgate.ca.authority import CertificateAuthority
from tlsgate.pki.csr import check_csr
from tlsgate.pki.keys import KeyType, PrivateKey, generate_key, private_key_pem, signature_hash
from tlsgate.pki.names import NameConstraints
from tlsgate.pki.pem import certificate_pem, load_csr
from tlsgate.pki.profiles import LeafProfile, build_leaf
from tlsgate.store.sqlite import SQLiteStore

T = TypeVar("T")

KEY_TYPE = KeyType.ECDSA_P256
LIFETIME_DAYS = 90
#: Iterations run before each in-process timed loop (imports, caches, first SQLite pages).
WARMUP = 10
#: Hard limit on any one openssl process, so a wedged tool cannot hang the benchmark.
SUBPROCESS_TIMEOUT = 300.0
BASELINE = "openssl-ca-batch"

OPENSSL_CA_CONFIG = """\
# Minimal 'openssl ca' for the issuance benchmark: the same intermediate as tlsgate, the same
# leaf shape (tlsgate.pki.profiles.build_leaf for a server certificate).
[ ca ]
default_ca = bench_ca

[ bench_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/intermediate.pem
private_key = $dir/intermediate.key
rand_serial = yes
unique_subject = no
default_days = {days}
default_md = sha256
policy = bench_policy
email_in_dn = no
copy_extensions = copy
x509_extensions = leaf_ext

[ bench_policy ]
commonName = supplied

[ leaf_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


def cpu_time() -> float:
    """CPU seconds used so far by this process and by the children it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@dataclass(frozen=True)
class Span:
    wall: float
    cpu: float


class Stopwatch:
    """Wall time, and CPU time (ours plus finished children's) since it was made."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = cpu_time()

    def wall(self) -> float:
        return time.perf_counter() - self._wall

    def stop(self) -> Span:
        return Span(self.wall(), cpu_time() - self._cpu)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str  # what is counted: "certs" or "signs"
    count: int
    span: Span
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.count / self.span.wall if self.span.wall > 0 else 0.0

    @property
    def cpu_us(self) -> float:
        """CPU microseconds per unit: compute, without the time spent waiting (e.g. fsync)."""
        return self.span.cpu / self.count * 1e6 if self.count else 0.0


@dataclass(frozen=True)
class Issuer:
    certificate: x509.Certificate
    key: PrivateKey
    constraints: NameConstraints


def progress(message: str) -> None:
    print(f"[issuance] {message}", file=sys.stderr, flush=True)


def timed_loop(
    step: Callable[[int], T], *, count: int, seconds: float, warmup: int = WARMUP
) -> tuple[int, Span, T]:
    """Call ``step(i)`` until ``count`` calls or ``seconds`` elapsed; return (calls, span, last)."""
    last = step(0)
    for i in range(1, min(warmup, count)):
        last = step(i)
    done = 0
    clock = Stopwatch()
    while done < count:
        last = step(done)
        done += 1
        if clock.wall() >= seconds:
            break
    return done, clock.stop(), last


# -- inputs ------------------------------------------------------------------------------------


def hostname(i: int) -> str:
    return f"host{i:05d}.bench.example"


def make_csr_pems(count: int) -> list[bytes]:
    """One fresh P-256 key per CSR; subject CN and SAN both carry the host name.

    The CN is there for ``openssl ca`` (its policy needs a subject); tlsgate reads the SAN.
    """
    pems: list[bytes] = []
    for i in range(count):
        key = generate_key(KEY_TYPE)
        name = hostname(i)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, signature_hash(key))
        )
        pems.append(csr.public_bytes(serialization.Encoding.PEM))
    return pems


def check_leaf(cert: x509.Certificate, issuer: x509.Certificate, what: str) -> None:
    """Sanity check outside the timed loops: every row must make the same kind of certificate."""
    cert.verify_directly_issued_by(issuer)
    ext = cert.extensions
    problems = []
    if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
        problems.append("is a CA")
    if not ext.get_extension_for_class(x509.KeyUsage).value.digital_signature:
        problems.append("no digitalSignature")
    if (
        ExtendedKeyUsageOID.SERVER_AUTH
        not in ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    ):
        problems.append("no serverAuth")
    if not ext.get_extension_for_class(x509.SubjectAlternativeName).value:
        problems.append("no subjectAltName")
    ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    ext.get_extension_for_class(x509.AuthorityKeyIdentifier)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    if not timedelta(days=LIFETIME_DAYS) <= lifetime <= timedelta(days=LIFETIME_DAYS, minutes=10):
        problems.append(f"lifetime {lifetime}")
    if not isinstance(cert.public_key(), ec.EllipticCurvePublicKey):
        problems.append("not an EC key")
    if problems:
        raise SystemExit(f"{what}: unexpected certificate: {', '.join(problems)}")


# -- tlsgate -----------------------------------------------------------------------------------


def bench_pki_csr(issuer: Issuer, csrs: Sequence[bytes], count: int, seconds: float) -> Row:
    profile = LeafProfile()

    def step(i: int) -> bytes:
        checked = check_csr(load_csr(csrs[i % len(csrs)]))
        cert = build_leaf(
            issuer.certificate,
            issuer.key,
            checked.public_key,
            checked.names,
            profile,
            now=datetime.now(UTC),
            constraints=issuer.constraints,
        )
        return certificate_pem(cert)

    n, span, last = timed_loop(step, count=count, seconds=seconds)
    check_leaf(x509.load_pem_x509_certificate(last), issuer.certificate, "pki from CSR")
    return Row(
        "tlsgate-pki-csr",
        "tlsgate pki: load_csr + check_csr + build_leaf",
        "certs",
        n,
        span,
        "like-for-like with openssl ca (in memory, no store)",
    )


def bench_pki_keygen(issuer: Issuer, count: int, seconds: float) -> Row:
    profile = LeafProfile()
    names = [[x509.DNSName(hostname(i))] for i in range(min(count, 1000))]

    def step(i: int) -> bytes:
        key = generate_key(KEY_TYPE)
        cert = build_leaf(
            issuer.certificate,
            issuer.key,
            key.public_key(),
            names[i % len(names)],
            profile,
            now=datetime.now(UTC),
            constraints=issuer.constraints,
        )
        return certificate_pem(cert)

    n, span, last = timed_loop(step, count=count, seconds=seconds)
    check_leaf(x509.load_pem_x509_certificate(last), issuer.certificate, "pki new key")
    return Row(
        "tlsgate-pki-keygen",
        "tlsgate pki: generate_key + build_leaf",
        "certs",
        n,
        span,
        "includes a P-256 key generation per cert",
    )


def bench_ca_csr(
    ca: CertificateAuthority, csrs: Sequence[bytes], count: int, seconds: float
) -> Row:
    def step(i: int) -> bytes:
        checked = check_csr(load_csr(csrs[i % len(csrs)]))
        issued = ca.issue(checked.names, now=datetime.now(UTC), csr=checked, requester="bench")
        return issued.cert_pem

    n, span, last = timed_loop(step, count=count, seconds=seconds)
    check_leaf(x509.load_pem_x509_certificate(last), ca.intermediate, "CA from CSR")
    return Row(
        "tlsgate-ca-csr",
        "tlsgate CA: check_csr + issue (SQLite, FULL)",
        "certs",
        n,
        span,
        "one durable SQLite commit (fsync) per cert",
    )


def bench_ca_keygen(ca: CertificateAuthority, count: int, seconds: float) -> Row:
    names = [[x509.DNSName(hostname(i))] for i in range(min(count, 1000))]

    def step(i: int) -> bytes:
        issued = ca.issue(names[i % len(names)], now=datetime.now(UTC), requester="bench")
        return issued.cert_pem

    n, span, last = timed_loop(step, count=count, seconds=seconds)
    check_leaf(x509.load_pem_x509_certificate(last), ca.intermediate, "CA new key")
    return Row(
        "tlsgate-ca-keygen",
        "tlsgate CA: issue with new key (SQLite, FULL)",
        "certs",
        n,
        span,
        "key generation + one durable SQLite commit per cert",
    )


def bench_crypto_sign(issuer: Issuer, tbs: bytes, count: int, seconds: float) -> Row:
    key = issuer.key
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise SystemExit("the benchmark CA must use an ECDSA key")
    algorithm = ec.ECDSA(hashes.SHA256())
    # The primitive is ~10x faster than issuance: give it ten times the count, same time bound.
    n, span, _ = timed_loop(lambda _i: key.sign(tbs, algorithm), count=count * 10, seconds=seconds)
    return Row(
        "cryptography-sign",
        "cryptography ECDSA P-256 sign (in process)",
        "signs",
        n,
        span,
        f"signing a leaf's TBSCertificate; bundled {crypto_backend.openssl_version_text()}",
    )


# -- openssl -----------------------------------------------------------------------------------


def run(
    command: Sequence[str], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        list(command),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT,
        env=env,
    )


def setup_openssl_ca(root: Path, issuer: Issuer) -> Path:
    """An ``openssl ca`` directory holding the same intermediate certificate and key as tlsgate."""
    root.mkdir()
    (root / "newcerts").mkdir()
    (root / "index.txt").write_bytes(b"")
    (root / "intermediate.pem").write_bytes(certificate_pem(issuer.certificate))
    key_path = root / "intermediate.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(private_key_pem(issuer.key))
    config = root / "openssl-ca.cnf"
    config.write_text(OPENSSL_CA_CONFIG.format(dir=root, days=LIFETIME_DAYS))
    return config


def bench_openssl_ca(
    openssl: str,
    config: Path,
    csr_files: Sequence[Path],
    issuer: Issuer,
    count: int,
    seconds: float,
    batch: int,
) -> Row:
    newcerts = config.parent / "newcerts"

    def invoke(files: Sequence[Path]) -> None:
        command = [openssl, "ca", "-config", str(config), "-batch", "-notext", "-out", os.devnull]
        run([*command, "-infiles", *map(str, files)])

    invoke(csr_files[:1])  # warm-up: page cache, and index.txt exists from here on
    before = len(list(newcerts.iterdir()))
    done = 0
    clock = Stopwatch()
    while done < count:
        first = done % len(csr_files)
        chunk = csr_files[first : first + min(batch, count - done)]
        invoke(chunk)
        done += len(chunk)
        if clock.wall() >= seconds:
            break
    span = clock.stop()
    # Every certificate is written to new_certs_dir: count and check those.
    written = sorted(newcerts.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    if len(written) - before != done:
        raise SystemExit(f"openssl ca wrote {len(written) - before} certificates, expected {done}")
    check_leaf(x509.load_pem_x509_certificate(written[-1].read_bytes()), issuer.certificate, "ca")
    return Row(
        BASELINE,
        f"openssl ca -batch -infiles ({min(batch, count)} CSRs/process)",
        "certs",
        done,
        span,
        "writes newcerts/<serial>.pem and index.txt (-out /dev/null); no fsync",
    )


def bench_openssl_x509(
    openssl: str,
    config: Path,
    csr_files: Sequence[Path],
    issuer: Issuer,
    workdir: Path,
    count: int,
    seconds: float,
    *,
    trust_store: bool,
) -> Row:
    """One ``openssl x509 -req`` per certificate.

    The x509 command loads the default trust store on every start (``OPENSSLDIR/cert.pem``, on
    Debian the 144 roots of ``/etc/ssl/certs/ca-certificates.crt``), although signing does not
    use it. ``trust_store=False`` points ``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` at empty ones,
    leaving process start-up, config and key loading.
    """
    ca_dir = config.parent
    out = workdir / "x509-out.pem"
    env: dict[str, str] | None = None
    if not trust_store:
        empty_file, empty_dir = workdir / "empty-trust.pem", workdir / "empty-trust.d"
        empty_file.write_bytes(b"")
        empty_dir.mkdir(exist_ok=True)
        env = {**os.environ, "SSL_CERT_FILE": str(empty_file), "SSL_CERT_DIR": str(empty_dir)}

    def step(i: int) -> None:
        run(
            [
                openssl,
                "x509",
                "-req",
                "-in",
                str(csr_files[i % len(csr_files)]),
                "-CA",
                str(ca_dir / "intermediate.pem"),
                "-CAkey",
                str(ca_dir / "intermediate.key"),
                "-days",
                str(LIFETIME_DAYS),
                "-sha256",
                "-extfile",
                str(config),
                "-extensions",
                "leaf_ext",
                "-copy_extensions",
                "copy",
                "-out",
                str(out),
            ],
            env,
        )

    n, span, _ = timed_loop(step, count=count, seconds=seconds, warmup=1)
    check_leaf(x509.load_pem_x509_certificate(out.read_bytes()), issuer.certificate, "x509 -req")
    if trust_store:
        return Row(
            "openssl-x509-per-process",
            "openssl x509 -req, 1 process/cert",
            "certs",
            n,
            span,
            "process start-up, including the default trust store load",
        )
    return Row(
        "openssl-x509-per-process-no-trust-store",
        "openssl x509 -req, 1 process/cert, no trust store",
        "certs",
        n,
        span,
        "process start-up with SSL_CERT_FILE/SSL_CERT_DIR empty",
    )


_SPEED_TABLE = re.compile(rb"256 bits ecdsa \(nistp256\)\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)")
_SPEED_COUNT = re.compile(rb"(\d+) 256 bits? ECDSA signs? in ([\d.]+)s", re.I)


def bench_openssl_speed(openssl: str, seconds: int) -> Row:
    result = run([openssl, "speed", "-seconds", str(seconds), "ecdsap256"])
    text = result.stdout + result.stderr
    counted = _SPEED_COUNT.search(text)
    # openssl speed divides by CPU user time unless -elapsed is given: wall = CPU here.
    if counted:
        n, elapsed = int(counted.group(1)), float(counted.group(2))
    else:
        table = _SPEED_TABLE.search(text)
        if table is None:
            raise SystemExit(
                f"cannot read 'openssl speed' output:\n{text.decode(errors='replace')}"
            )
        n, elapsed = round(float(table.group(1)) * seconds), float(seconds)
    return Row(
        "openssl-speed-sign",
        f"openssl speed -seconds {seconds} ecdsap256 (sign)",
        "signs",
        n,
        Span(elapsed, elapsed),
        "the primitive alone (per CPU second): the physical ceiling",
    )


# -- one round ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bench:
    """Everything a round needs, prepared once: the CA, the CSRs and the openssl CA directory."""

    ca: CertificateAuthority
    issuer: Issuer
    csr_pems: Sequence[bytes]
    tbs: bytes
    workdir: Path
    count: int
    seconds: float
    batch: int
    openssl: str | None
    openssl_config: Path | None
    csr_files: Sequence[Path]

    @classmethod
    def prepare(
        cls, tmp: Path, store: SQLiteStore, openssl: str | None, args: argparse.Namespace
    ) -> Bench:
        count: int = args.count
        progress(f"creating a CA and {count} CSRs in {tmp}")
        ca = CertificateAuthority.init(store, now=datetime.now(UTC), name="bench")
        issuer = Issuer(ca.intermediate, ca.intermediate_key, ca.constraints)
        csr_pems = make_csr_pems(count)
        # What the primitive rows sign: a real leaf's TBSCertificate.
        sample = check_csr(load_csr(csr_pems[0]))
        leaf = build_leaf(
            issuer.certificate,
            issuer.key,
            sample.public_key,
            sample.names,
            LeafProfile(),
            now=datetime.now(UTC),
        )
        config: Path | None = None
        csr_files: list[Path] = []
        if openssl:
            csr_dir = tmp / "csr"
            csr_dir.mkdir()
            for i, pem in enumerate(csr_pems):
                path = csr_dir / f"{i:05d}.csr"
                path.write_bytes(pem)
                csr_files.append(path)
            config = setup_openssl_ca(tmp / "openssl-ca", issuer)
        return cls(
            ca=ca,
            issuer=issuer,
            csr_pems=csr_pems,
            tbs=leaf.tbs_certificate_bytes,
            workdir=tmp,
            count=count,
            seconds=args.seconds,
            batch=args.batch,
            openssl=openssl,
            openssl_config=config,
            csr_files=csr_files,
        )

    def round(self) -> list[Row]:
        n, t = self.count, self.seconds
        rows: list[Row] = []
        progress("tlsgate pki, from CSR")
        rows.append(bench_pki_csr(self.issuer, self.csr_pems, n, t))
        progress("tlsgate pki, generated keys")
        rows.append(bench_pki_keygen(self.issuer, n, t))
        progress("tlsgate CA, from CSR")
        rows.append(bench_ca_csr(self.ca, self.csr_pems, n, t))
        progress("tlsgate CA, generated keys")
        rows.append(bench_ca_keygen(self.ca, n, t))
        if self.openssl and self.openssl_config:
            openssl, config, files = self.openssl, self.openssl_config, self.csr_files
            progress(f"openssl ca -batch, {min(self.batch, n)} CSRs per process")
            rows.append(bench_openssl_ca(openssl, config, files, self.issuer, n, t, self.batch))
            for trust_store in (True, False):
                progress(f"openssl x509 -req, one process per certificate ({trust_store=})")
                rows.append(
                    bench_openssl_x509(
                        openssl,
                        config,
                        files,
                        self.issuer,
                        self.workdir,
                        n,
                        t,
                        trust_store=trust_store,
                    )
                )
        progress("primitive: cryptography ECDSA P-256 sign")
        rows.append(bench_crypto_sign(self.issuer, self.tbs, n, t))
        if self.openssl:
            speed_seconds = max(1, round(t))
            progress(f"primitive: openssl speed -seconds {speed_seconds} ecdsap256")
            rows.append(bench_openssl_speed(self.openssl, speed_seconds))
        return rows


# -- report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One row over all rounds: the median rate, and the spread that came with it."""

    samples: tuple[Row, ...]

    @property
    def row(self) -> Row:
        return self.samples[-1]

    @property
    def median(self) -> float:
        return statistics.median(r.per_second for r in self.samples)

    @property
    def low(self) -> float:
        return min(r.per_second for r in self.samples)

    @property
    def high(self) -> float:
        return max(r.per_second for r in self.samples)

    @property
    def cpu_us(self) -> float:
        return statistics.median(r.cpu_us for r in self.samples)

    @property
    def timed(self) -> int:
        return sum(r.count for r in self.samples)

    def ratio(self, baseline: Result | None) -> float | None:
        if baseline is None or baseline.median == 0:
            return None
        return self.median / baseline.median


def collect(rounds: Sequence[Sequence[Row]]) -> list[Result]:
    by_key: dict[str, list[Row]] = {}
    for rows in rounds:
        for row in rows:
            by_key.setdefault(row.key, []).append(row)
    return [Result(tuple(rows)) for rows in by_key.values()]


def environment(openssl: str | None) -> dict[str, object]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    openssl_version = None
    if openssl:
        openssl_version = run([openssl, "version"]).stdout.decode().strip()
    return {
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "cryptography_openssl": crypto_backend.openssl_version_text(),
        "openssl": openssl_version,
        "cpu": cpu or platform.processor(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def baseline_of(results: Sequence[Result]) -> Result | None:
    return next((r for r in results if r.row.key == BASELINE), None)


def render_text(
    results: Sequence[Result], env: dict[str, object], args: argparse.Namespace, tmp: str
) -> str:
    baseline = baseline_of(results)
    lines = [
        f"Leaf certificate issuance, ECDSA P-256, one process: median of {args.repeat} round(s),"
        f" each row at most {args.count} certs or ~{args.seconds:g} s per round",
        f"python {env['python']}, cryptography {env['cryptography']}"
        f" ({env['cryptography_openssl']}), {env['openssl'] or 'no openssl'}",
        f"{env['cpus']} CPUs: {env['cpu']}; temp dir under {tmp}",
        "",
    ]
    header = (
        f"{'row':<50} {'median/s':>17} {'min-max':>15} {'cpu us':>7} {'timed':>7}"
        f" {'vs ca batch':>11}"
    )
    lines += [header, "-" * len(header)]
    for result in results:
        row, r = result.row, result.ratio(baseline)
        spread = f"{result.low:,.0f}-{result.high:,.0f}"
        versus = f"{r:.2f}x" if r is not None else "-"
        lines.append(
            f"{row.label:<50} {result.median:>11,.0f} {row.unit:<5} {spread:>15}"
            f" {result.cpu_us:>7,.0f} {result.timed:>7} {versus:>11}"
        )
    lines += [
        "",
        "median/s: wall-clock rate, median over the rounds (min-max beside it); cpu us: CPU",
        "microseconds per cert or sign, this process plus its openssl children, median (waiting",
        "for fsync is not CPU); vs ca batch: median rate / median rate of 'openssl ca -batch'.",
        "",
        "notes:",
    ]
    lines += [f"  {r.row.label}: {r.row.note}" for r in results if r.row.note]
    return "\n".join(lines)


def render_json(
    results: Sequence[Result], env: dict[str, object], args: argparse.Namespace, tmp: str
) -> str:
    baseline = baseline_of(results)
    return json.dumps(
        {
            "benchmark": "issuance",
            "key_type": KEY_TYPE.value,
            "params": {
                "count": args.count,
                "seconds": args.seconds,
                "repeat": args.repeat,
                "batch": args.batch,
                "tmpdir": tmp,
            },
            "environment": env,
            "baseline": baseline.row.key if baseline else None,
            "rows": [
                {
                    "key": result.row.key,
                    "label": result.row.label,
                    "unit": result.row.unit,
                    "per_second_median": round(result.median, 1),
                    "per_second_min": round(result.low, 1),
                    "per_second_max": round(result.high, 1),
                    "cpu_us_per_unit_median": round(result.cpu_us, 1),
                    "ratio_vs_baseline": (
                        round(r, 4) if (r := result.ratio(baseline)) is not None else None
                    ),
                    "samples": [
                        {
                            "count": row.count,
                            "seconds": round(row.span.wall, 6),
                            "cpu_seconds": round(row.span.cpu, 6),
                            "per_second": round(row.per_second, 1),
                        }
                        for row in result.samples
                    ],
                    "note": result.row.note,
                }
                for result in results
            ],
        },
        indent=2,
    )


# -- main --------------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Leaf certificate issuance rate (ECDSA P-256), tlsgate next to openssl."
    )
    parser.add_argument(
        "--count",
        type=positive_int,
        default=2000,
        help="at most this many certificates per row and round (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=2.0,
        help="stop a row once this much time has passed (default: %(default)s); "
        "openssl speed runs for this many whole seconds, at least 1",
    )
    parser.add_argument(
        "--repeat",
        type=positive_int,
        default=3,
        help="rounds over all rows; the table shows the median (default: %(default)s)",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=500,
        help="CSRs per 'openssl ca' process (default: %(default)s)",
    )
    parser.add_argument(
        "--openssl",
        default=shutil.which("openssl"),
        help="openssl binary (default: %(default)s); 'none' skips the openssl rows",
    )
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=None,
        help="create the temporary directory (SQLite state, CSR files) under this one; "
        "the CA rows measure the fsync latency of its file system",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    openssl: str | None = None if args.openssl in (None, "", "none") else args.openssl
    if openssl is not None and shutil.which(openssl) is None:
        parser.error(f"--openssl: {openssl} is not an executable (use 'none' to skip openssl)")
    env = environment(openssl)
    rounds: list[list[Row]] = []
    with tempfile.TemporaryDirectory(prefix="tlsgate-bench-", dir=args.tmpdir) as tmp_name:
        tmp = Path(tmp_name)
        store = SQLiteStore(tmp / "state")
        try:
            bench = Bench.prepare(tmp, store, openssl, args)
            for number in range(1, args.repeat + 1):
                progress(f"round {number} of {args.repeat}")
                rounds.append(bench.round())
            progress(f"the CA recorded {len(store.list_certificates())} certificates")
        finally:
            store.close()
    results = collect(rounds)
    where = str(args.tmpdir or tempfile.gettempdir())
    if args.json:
        print(render_json(results, env, args, where))
    else:
        print(render_text(results, env, args, where))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the temporary directory is already gone
        sys.exit(130)
