"""x509-limbo: tlsgate's chain verdicts beside cryptography's, on the C2SP path-validation suite.

The suite (``tests/data/x509-limbo/limbo.json``, see the README there) is a list of chains, each
with the trust anchors, the intermediates a peer sent, the name expected, a validation time and
the verdict a correct verifier reaches. This module runs every case through two verifiers:

- **tlsgate**: :func:`tlsgate.pki.chain.verify_chain`, the function ``check``, ``monitor`` and
  mTLS use, given everything the case specifies (anchors, intermediates, peer name, time,
  maximum depth, CRLs, server or client usage). It skips nothing it can express.
- **cryptography**: its own verifier called the way pyca's x509-limbo harness calls it, skipping
  the features and cases pyca declares unsupported (``PYCA_SKIPPED_*`` below), so the column is
  comparable with the suite's published pyca results.

Run from the repository root::

    .venv/bin/python -m tests.limbo.harness < tests/data/x509-limbo/limbo.json > results.json
    .venv/bin/python -m tests.limbo.harness --harness cryptography tests/data/x509-limbo/limbo.json
    .venv/bin/python -m tests.limbo.harness --table tests/data/x509-limbo/limbo.json
    .venv/bin/python -m tests.limbo.harness --differences tests/data/x509-limbo/limbo.json

The JSON is the suite's result format, ``{version, harness, results: [{id, actual_result,
context}]}``; ``--table`` prints passed/failed/skipped per category for both verifiers (the
README's table) and ``--differences`` every case where tlsgate's verdict differs from
cryptography's or from the expected one, with the reason from :data:`DIFFERENCES`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from cryptography import __version__ as cryptography_version
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from tlsgate import __version__ as tlsgate_version
from tlsgate.pki.chain import Usage, VerificationFailed, verify_chain

__all__ = [
    "DIFFERENCES",
    "LIMBO",
    "Case",
    "Outcome",
    "Result",
    "differences",
    "load_cases",
    "run_cryptography",
    "run_tlsgate",
]

LIMBO = Path(__file__).resolve().parents[1] / "data" / "x509-limbo" / "limbo.json"

SERVER_AUTH = "serverAuth"
CLIENT_AUTH = "clientAuth"


class Result(StrEnum):
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class Case:
    """One limbo test case, as the suite writes it (PEM text, not parsed yet)."""

    id: str
    kind: str  # SERVER or CLIENT
    trusted: tuple[str, ...]
    intermediates: tuple[str, ...]
    peer: str
    peer_name: str | None  # a DNS name or an IP address, as text
    validation_time: datetime | None
    max_chain_depth: int | None
    extended_key_usage: tuple[str, ...]
    crls: tuple[str, ...]
    features: frozenset[str]
    expected: Result

    @property
    def category(self) -> str:
        return self.id.split("::", 1)[0]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        name = data.get("expected_peer_name")
        when = data.get("validation_time")
        return cls(
            id=data["id"],
            kind=data["validation_kind"],
            trusted=tuple(data["trusted_certs"]),
            intermediates=tuple(data["untrusted_intermediates"]),
            peer=data["peer_certificate"],
            peer_name=name["value"] if name else None,
            validation_time=datetime.fromisoformat(when) if when else None,
            max_chain_depth=data.get("max_chain_depth"),
            extended_key_usage=tuple(data.get("extended_key_usage") or ()),
            crls=tuple(data.get("crls") or ()),
            features=frozenset(data.get("features") or ()),
            expected=Result(data["expected_result"]),
        )


@dataclass(frozen=True)
class Outcome:
    result: Result
    context: str
    crashed: bool = False  # an exception other than VerificationFailed: never a pass


def load_cases(text: str) -> list[Case]:
    """Every case of a ``limbo.json`` document, in the suite's order."""
    document = json.loads(text)
    if document.get("version") != 1:
        raise ValueError(f"limbo.json version {document.get('version')!r}; this harness reads 1")
    return [Case.from_json(case) for case in document["testcases"]]


@dataclass(frozen=True)
class _Parsed:
    trusted: list[x509.Certificate]
    intermediates: list[x509.Certificate]
    peer: x509.Certificate
    crls: list[x509.CertificateRevocationList]
    now: datetime


def _parse(case: Case) -> _Parsed:
    """The case's certificates and CRLs; ValueError when one does not even parse as DER."""

    def cert(pem: str) -> x509.Certificate:
        with warnings.catch_warnings():
            # rfc5280::serial::zero: cryptography warns it will refuse such serials one day.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificate(pem.encode())

    return _Parsed(
        trusted=[cert(pem) for pem in case.trusted],
        intermediates=[cert(pem) for pem in case.intermediates],
        peer=cert(case.peer),
        crls=[x509.load_pem_x509_crl(pem.encode()) for pem in case.crls],
        now=case.validation_time or datetime.now(UTC),
    )


def _usage(case: Case) -> Usage | None:
    """The verifier's usage for the case's kind and EKU; None when tlsgate cannot express it."""
    if case.kind == "SERVER" and set(case.extended_key_usage) <= {SERVER_AUTH}:
        return Usage.SERVER
    if case.kind == "CLIENT" and set(case.extended_key_usage) <= {CLIENT_AUTH}:
        return Usage.CLIENT
    return None


def run_tlsgate(case: Case) -> Outcome:
    """tlsgate's verdict: ``verify_chain`` with everything the case specifies.

    Only ``VerificationFailed`` means FAILURE; any other exception escapes on purpose, so the
    tests see it (the command-line harness reports it as a crash).
    """
    usage = _usage(case)
    if usage is None:
        return Outcome(Result.SKIPPED, f"EKU {list(case.extended_key_usage)} is not a usage")
    try:
        parsed = _parse(case)
    except ValueError as exc:  # a peer sending this is refused before any verifier runs
        return Outcome(Result.FAILURE, f"does not parse: {exc}")
    depth = {} if case.max_chain_depth is None else {"max_depth": case.max_chain_depth}
    try:
        verified = verify_chain(
            parsed.peer,
            parsed.intermediates,
            parsed.trusted,
            now=parsed.now,
            hostname=case.peer_name,
            usage=usage,
            crls=parsed.crls,
            **depth,
        )
    except VerificationFailed as exc:
        return Outcome(Result.FAILURE, f"{exc.reason}: {exc}")
    return Outcome(Result.SUCCESS, f"verified, {len(verified.certificates)} certificates")


#: Features pyca's harness declares unsupported: cases with any of them are SKIPPED there.
PYCA_SKIPPED_FEATURES = frozenset(
    {
        "pedantic-public-suffix-wildcard",
        "name-constraint-dn",
        "pedantic-webpki-eku",
        "pedantic-webpki-subscriber-key",
        "pedantic-rfc5280",
        "rfc5280-incompatible-with-webpki",
        "has-policy-constraints",
        "has-crl",
    }
)

#: Cases pyca's harness skips by name (deliberate choices of cryptography's verifier).
PYCA_SKIPPED_CASES = frozenset(
    {
        "pathlen::self-issued-certs-pathlen",
        "pathlen::max-chain-depth-1-self-issued",
        "rfc5280::serial::zero",
        "rfc5280::ski::root-missing-ski",
        "rfc5280::ski::intermediate-missing-ski",
        "rfc5280::aki::intermediate-missing-aki",
        "webpki::aki::root-with-aki-ski-mismatch",
        "webpki::forbidden-rsa-not-divisable-by-8-in-root",
        "rfc5280::ca-as-leaf",
        "pathlen::validation-ignores-pathlen-in-leaf",
        "pathological::pathological-chain-same-subject-same-key",
    }
)


def _pyca_skip(case: Case) -> str | None:
    if case.id in PYCA_SKIPPED_CASES:
        return "skipped by pyca's harness (explicitly unsupported case)"
    if case.features & PYCA_SKIPPED_FEATURES:
        return f"skipped by pyca's harness (unsupported feature {sorted(case.features)})"
    if case.kind != "SERVER":
        return "skipped by pyca's harness (non-SERVER cases)"
    if set(case.extended_key_usage) - {SERVER_AUTH}:
        return "skipped by pyca's harness (non-serverAuth EKU)"
    return None


def run_cryptography(case: Case, *, skips: bool = True) -> Outcome:
    """cryptography's verdict, its verifier used directly as pyca's x509-limbo harness does.

    ``skips=False`` asks it everything it can be asked (client cases through its client
    verifier, skipped features included): the verdict tlsgate is compared with.
    """
    if skips and (why := _pyca_skip(case)) is not None:
        return Outcome(Result.SKIPPED, why)
    try:
        parsed = _parse(case)
    except ValueError as exc:
        return Outcome(Result.FAILURE, f"does not parse: {exc}")
    builder = PolicyBuilder().store(Store(parsed.trusted)).time(parsed.now)
    if case.max_chain_depth is not None:
        builder = builder.max_chain_depth(case.max_chain_depth)
    try:
        if case.kind == "CLIENT":
            builder.build_client_verifier().verify(parsed.peer, parsed.intermediates)
        else:
            builder.build_server_verifier(_subject(case.peer_name)).verify(
                parsed.peer, parsed.intermediates
            )
    except (VerificationError, ValueError) as exc:  # ValueError: a peer name it cannot take
        return Outcome(Result.FAILURE, str(exc))
    return Outcome(Result.SUCCESS, "chain built successfully")


def _subject(name: str | None) -> x509.DNSName | x509.IPAddress:
    if name is None:
        raise ValueError("a SERVER case without a peer name")
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


#: Every case where tlsgate's verdict differs from cryptography's (asked without pyca's skips)
#: or from the suite's expected result, and why that is deliberate. The tests recompute the set
#: and compare; the README lists every id (``--differences`` prints that section).
_CRL = (
    "tlsgate checks the CRLs it is given and refuses one it cannot trust (bad-crl); "
    "cryptography's verifier takes no CRLs"
)
_CA_KEY_USAGE = "cryptography requires keyUsage on every CA certificate (CA/Browser Forum)"
_SELF_ISSUED = (
    "self-issued intermediates count towards pathLen and the depth limit, as in Go and webpki"
)
_CA_AS_LEAF = "a CA certificate is never accepted as the peer's own (CA/Browser Forum)"
_KEY_IDS = "missing or odd key identifiers (AKI/SKI) are accepted, as in Go and webpki"
_DN_CONSTRAINTS = "directory-name constraints are not supported; a leaf without a SAN is refused"
_NONCRITICAL_NC = "non-critical name constraints are applied, as the CA/Browser Forum allows"
_POLICIES = "certificate policies and policy constraints are not processed"
_SERIAL = "a zero serial number is accepted: trust stores still carry such roots"
_CN = "the subject CN is ignored, as browsers do; its agreement with the SANs is not checked"
_EKU = "EKU rules beyond serverAuth/clientAuth in the leaf are not enforced"
_WEB_PKI_KEYS = (
    "tlsgate refuses keys the Web PKI forbids anywhere in the path, the leaf's too (DSA, P-192, "
    "RSA under 2048 bits or not a multiple of 8); cryptography does not check them"
)
_PUBLIC_SUFFIX = "wildcards on public suffixes are accepted: no public suffix list is consulted"

DIFFERENCES: dict[str, str] = {
    "crl::crlnumber-critical": _CRL,
    "crl::crlnumber-missing": _CRL,
    "crl::issuer-missing-crlsign": _CRL,
    "crl::revoked-certificate-with-crl": _CRL,
    "crl::issuer-no-keyusage-extension": _CA_KEY_USAGE,
    "pathlen::max-chain-depth-1-self-issued": _SELF_ISSUED,
    "pathlen::self-issued-certs-pathlen": _SELF_ISSUED,
    "pathlen::validation-ignores-pathlen-in-leaf": _CA_AS_LEAF,
    "rfc5280::ca-as-leaf": _CA_AS_LEAF,
    "rfc5280::aki::cross-signed-root-missing-aki": _KEY_IDS,
    "rfc5280::aki::intermediate-missing-aki": _KEY_IDS,
    "rfc5280::ski::root-missing-ski": _KEY_IDS,
    "rfc5280::ski::intermediate-missing-ski": _KEY_IDS,
    "webpki::aki::root-with-aki-all-fields": _KEY_IDS,
    "webpki::aki::root-with-aki-authoritycertissuer": _KEY_IDS,
    "webpki::aki::root-with-aki-authoritycertserialnumber": _KEY_IDS,
    "webpki::aki::root-with-aki-ski-mismatch": _KEY_IDS,
    "rfc5280::nc::permitted-dn-match": _DN_CONSTRAINTS,
    "rfc5280::nc::permitted-dns-match-noncritical": _NONCRITICAL_NC,
    "rfc5280::pc::ica-noncritical-pc": _POLICIES,
    "rfc5280::serial::zero": _SERIAL,
    "webpki::cn::case-mismatch": _CN,
    "webpki::cn::ipv4-hex-mismatch": _CN,
    "webpki::cn::ipv4-leading-zeros-mismatch": _CN,
    "webpki::cn::ipv6-non-rfc5952-mismatch": _CN,
    "webpki::cn::ipv6-uncompressed-mismatch": _CN,
    "webpki::cn::ipv6-uppercase-mismatch": _CN,
    "webpki::cn::not-in-san": _CN,
    "webpki::cn::punycode-not-in-san": _CN,
    "webpki::cn::utf8-vs-punycode-mismatch": _CN,
    "webpki::eku::ee-anyeku": _EKU,
    "webpki::eku::ee-without-eku": _EKU,
    "webpki::eku::root-has-eku": _EKU,
    "webpki::forbidden-dsa-leaf": _WEB_PKI_KEYS,
    "webpki::forbidden-p192-leaf": _WEB_PKI_KEYS,
    "webpki::forbidden-weak-rsa-in-leaf": _WEB_PKI_KEYS,
    "webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf": _WEB_PKI_KEYS,
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": _WEB_PKI_KEYS,
    "webpki::san::public-suffix-multi-label-wildcard-san": _PUBLIC_SUFFIX,
    "webpki::san::public-suffix-private-namespace-wildcard-san": _PUBLIC_SUFFIX,
    "webpki::san::public-suffix-wildcard-san": _PUBLIC_SUFFIX,
}


@dataclass(frozen=True)
class Row:
    """One case's three verdicts: expected, tlsgate's, cryptography's (raw and as pyca runs it)."""

    case: Case
    tlsgate: Outcome
    cryptography: Outcome
    pyca: Outcome

    @property
    def differs(self) -> bool:
        actual = self.tlsgate.result
        return (
            self.tlsgate.crashed
            or actual is not self.cryptography.result
            or actual is not self.case.expected
        )


def evaluate(cases: Iterable[Case]) -> list[Row]:
    rows = []
    for case in cases:
        raw = run_cryptography(case, skips=False)
        pyca = raw if _pyca_skip(case) is None else run_cryptography(case)
        rows.append(Row(case, _guarded(case), raw, pyca))
    return rows


def _guarded(case: Case) -> Outcome:
    """run_tlsgate for the command line: a crash is reported in the results, not raised."""
    try:
        return run_tlsgate(case)
    except Exception as exc:  # the harness must finish to show every crash; tests raise instead
        return Outcome(Result.FAILURE, f"CRASH {type(exc).__name__}: {exc}", crashed=True)


def differences(rows: Iterable[Row]) -> dict[str, Row]:
    return {row.case.id: row for row in rows if row.differs}


def results_document(rows: Sequence[Row], harness: str) -> dict[str, Any]:
    """The suite's result format for one of the verifiers."""
    ours = harness == "tlsgate"
    name = f"tlsgate-{tlsgate_version}" if ours else f"pyca-cryptography-{cryptography_version}"
    results = []
    for row in rows:
        outcome = row.tlsgate if ours else row.pyca
        results.append(
            {"id": row.case.id, "actual_result": outcome.result.value, "context": outcome.context}
        )
    return {"version": 1, "harness": name, "results": results}


def _tally(rows: Iterable[Row], pick: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in rows:
        outcome: Outcome = getattr(row, pick)
        if outcome.result is Result.SKIPPED:
            counts["skip"] += 1
        elif outcome.result is row.case.expected and not outcome.crashed:
            counts["pass"] += 1
        else:
            counts["fail"] += 1
    return counts


def table(rows: Sequence[Row]) -> str:
    """Per category (the id before ``::``): cases, then pass/fail/skip against the expected
    verdict for tlsgate and for cryptography as pyca's harness runs it. Markdown."""
    categories = sorted({r.case.category for r in rows})
    lines = [
        "| category | cases | tlsgate pass | fail | skip | cryptography pass | fail | skip |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for category in [*categories, None]:
        subset = [r for r in rows if category is None or r.case.category == category]
        ours, theirs = _tally(subset, "tlsgate"), _tally(subset, "pyca")
        label = f"`{category}`" if category else "**all**"
        cells = [label, str(len(subset))]
        cells += [str(ours[k]) for k in ("pass", "fail", "skip")]
        cells += [str(theirs[k]) for k in ("pass", "fail", "skip")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def differences_markdown(rows: Sequence[Row]) -> str:
    """Every differing case, as the README lists them: first where tlsgate and cryptography
    disagree, then where both disagree with the suite; grouped by reason and verdicts."""
    found = differences(rows)
    parts = []
    for title, ours in (
        ("tlsgate differs from cryptography", True),
        ("tlsgate and cryptography agree, the suite expects otherwise", False),
    ):
        groups: dict[tuple[str, str], list[str]] = {}
        for case_id, row in sorted(found.items()):
            if (row.tlsgate.result is not row.cryptography.result) is not ours:
                continue
            verdicts = (
                f"expected {row.case.expected.value.lower()}, cryptography "
                f"{row.cryptography.result.value.lower()}, "
                f"tlsgate {row.tlsgate.result.value.lower()}"
            )
            reason = DIFFERENCES.get(case_id, "NOT EXPLAINED")
            groups.setdefault((reason, verdicts), []).append(f"`{case_id}`")
        lines = [f"- {r} ({v}): {', '.join(ids)}" for (r, v), ids in groups.items()]
        parts.append(f"{title}:\n\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None, stdout: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.limbo.harness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("limbo", nargs="?", help="limbo.json (default: standard input)")
    parser.add_argument("--harness", choices=("tlsgate", "cryptography"), default="tlsgate")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--table", action="store_true", help="the per-category table")
    shown.add_argument("--differences", action="store_true", help="the README's list")
    args = parser.parse_args(argv)
    text = Path(args.limbo).read_text() if args.limbo else sys.stdin.read()
    rows = evaluate(load_cases(text))
    if args.table:
        stdout.write(table(rows))
    elif args.differences:
        stdout.write(differences_markdown(rows))
    else:
        json.dump(results_document(rows, args.harness), stdout, indent=2)
        stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
