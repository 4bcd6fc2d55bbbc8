"""``tlsgate check`` against the bad TLS zoo: the right verdict, exit code and reason, text + JSON.

The zoo itself is first checked against ``openssl s_client`` (an independent verifier), so a
failure below is about ``check``, not about a server that does not show what it should.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from tests.inspect.runner import Run, run_all
from tests.inspect.zoo import CASES, NAME, Case, Zoo
from tlsgate.inspect.report import Code

pytestmark = pytest.mark.interop

VERDICTS = {0: "ok", 1: "warning", 2: "critical"}


def s_client(zoo: Zoo, case: Case, *args: str) -> str:
    proc = subprocess.run(
        [zoo.openssl, "s_client", "-connect", case.target, "-servername", NAME,
         "-verify_hostname", NAME, "-CAfile", str(zoo.root), "-brief", *args],
        capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return proc.stdout + proc.stderr


def test_zoo_has_every_case(zoo: Zoo) -> None:
    assert tuple(zoo.cases) == CASES
    assert len({c.port for c in zoo.cases.values()}) == len(CASES)


@pytest.mark.parametrize("name", CASES)
def test_zoo_servers_answer(zoo: Zoo, name: str) -> None:
    """Each server completes a handshake and OpenSSL's verifier sees exactly the planted mistake."""
    case = zoo.cases[name]
    out = s_client(zoo, case, *case.client_args)
    assert "CONNECTION ESTABLISHED" in out, out
    verification = re.search(r"^Verification(?: error)?: .*$", out, re.MULTILINE)
    assert verification is not None, out
    assert case.openssl_verify in verification.group(0), out
    if name == "tls-1.0-only":
        assert re.search(r"^Protocol version: TLSv1$", out, re.MULTILINE), out
        refused = s_client(zoo, case)  # a modern client (TLS 1.2+ at SECLEVEL 2) gets nowhere
        assert "CONNECTION ESTABLISHED" not in refused, refused
    else:
        assert "Protocol version: TLSv1.3" in out, out


def check_argv(zoo: Zoo, *targets: str) -> tuple[str, ...]:
    return ("check", *targets, "--servername", NAME, "--ca", str(zoo.root))


def plain(text: str) -> str:
    """Whitespace collapsed (the terminal wraps lines) and numbers masked (the clock moved)."""
    return re.sub(r"[0-9]+", "#", " ".join(text.split()))


@dataclass(frozen=True)
class Results:
    text: dict[str, Run]  # one text run per case (and per file case): its own exit code
    reports: dict[str, dict[str, Any]]  # every case from one --json run over all targets
    runs: dict[str, Run]  # the --json runs themselves
    crl_fetches: int  # CRL downloads from the zoo's CRL server while the checks ran


@pytest.fixture(scope="module")
def results(zoo: Zoo) -> Results:
    cases = list(zoo.cases.values())
    files = {f"file:{n}": str(zoo.cases[n].fullchain) for n in ("valid", "expired")}
    jobs: dict[str, tuple[str, ...]] = {c.name: check_argv(zoo, c.target) for c in cases}
    jobs |= {name: ("check", path, "--ca", str(zoo.root)) for name, path in files.items()}
    jobs["json:all"] = (*check_argv(zoo, *(c.target for c in cases)), "--json")
    # A single target prints one object, and --json keeps the exit code of the verdict.
    jobs["json:expires-soon"] = (*check_argv(zoo, zoo.cases["expires-soon"].target), "--json")
    jobs["json:files"] = ("check", *files.values(), "--ca", str(zoo.root), "--json")
    before = zoo.crl_fetches
    runs = run_all(jobs)
    reports = dict(zip(zoo.cases, runs["json:all"].reports(len(cases)), strict=True))
    reports |= dict(zip(files, runs["json:files"].reports(len(files)), strict=True))
    return Results(
        text={k: v for k, v in runs.items() if not k.startswith("json:")},
        reports=reports,
        runs={k: v for k, v in runs.items() if k.startswith("json:")},
        crl_fetches=zoo.crl_fetches - before,
    )


def test_json_runs(zoo: Zoo, results: Results) -> None:
    """The runs behind ``results.reports`` exit like their worst target; one target, one object."""
    for key in ("json:all", "json:files"):
        results.runs[key].assert_no_traceback()
        assert results.runs[key].returncode == 2, results.runs[key].describe()
    for name, port in ((n, c.port) for n, c in zoo.cases.items()):
        assert results.reports[name]["target"] == f"127.0.0.1:{port}"
    run = results.runs["json:expires-soon"]
    run.assert_no_traceback()
    assert run.returncode == 1, run.describe()
    report = run.report()
    assert report["exit_code"] == 1 and report["verdict"] == "warning", run.describe()
    assert report["target"] == zoo.cases["expires-soon"].target


@pytest.mark.parametrize("name", CASES)
def test_check_verdict(zoo: Zoo, results: Results, name: str) -> None:
    case = zoo.cases[name]
    verdict = VERDICTS[case.exit_code]
    text, report = results.text[name], results.reports[name]
    context = f"{text.describe()}\n--- json\n{json.dumps(report, indent=1)}"
    text.assert_no_traceback()
    assert text.returncode == case.exit_code, context
    assert report["verdict"] == verdict, context
    assert report["exit_code"] == case.exit_code, context
    assert report["kind"] == "endpoint"
    assert report["servername"] == NAME
    findings = report["findings"]
    if case.code is None:
        assert all(f["severity"] == "ok" for f in findings), context
    else:
        matching = [f for f in findings if f["code"] == case.code.value]
        assert matching, f"expected {case.code.value!r} among the findings\n{context}"
        # The finding that explains the verdict is the one that carries it.
        assert any(f["severity"] == verdict for f in matching), context
        for finding in matching:  # the text tells the same story as the JSON
            assert plain(finding["message"]) in plain(text.stdout), context
    assert re.search(case.reason, text.stdout, re.IGNORECASE), (
        f"no plain-words reason matching {case.reason!r}\n{context}"
    )
    assert re.search(rf"\b{verdict.upper()}\b", text.stdout), context


def test_valid_chain_details(results: Results) -> None:
    report = results.reports["valid"]
    context = json.dumps(report, indent=1)
    assert report["verified"] is True, context
    assert report["negotiated"]["version"] == "TLSv1.3", context
    assert report["negotiated"]["cipher"], context
    chain, path = report["chain"], report["path"]
    assert len(chain) == 2, context  # as presented: leaf + intermediate
    assert len(path) == 3, context  # verified: leaf, intermediate, root
    assert chain[0]["names"] == [NAME]
    assert "Zoo Intermediate CA" in chain[1]["subject"]
    assert "Zoo Root CA" in path[2]["subject"]
    assert [c["sha256"] for c in path[:2]] == [c["sha256"] for c in chain]


@pytest.mark.parametrize("name", ["self-signed", "missing-intermediate"])
def test_no_path_to_the_root(results: Results, name: str) -> None:
    """Nothing links these leaves to the root: no verified path, whatever else is said."""
    report = results.reports[name]
    assert report["verified"] is False
    assert report["path"] == []
    assert len(report["chain"]) == 1


def test_revoked_was_looked_up(results: Results) -> None:
    """The "revoked" verdict came from the CRL the leaf names, fetched over HTTP."""
    assert results.crl_fetches > 0
    findings = results.reports["revoked"]["findings"]
    revoked = [f for f in findings if f["code"] == Code.REVOKED.value]
    assert revoked and revoked[0].get("certificate", 0) == 0, findings  # about the leaf


def test_legacy_tls_names_the_version(results: Results) -> None:
    findings = results.reports["tls-1.0-only"]["findings"]
    legacy = [f for f in findings if f["code"] == Code.LEGACY_TLS.value]
    assert legacy and re.search(r"TLS ?v?1(\.0)?\b", legacy[0]["message"]), findings


def test_check_file_valid_fullchain(results: Results) -> None:
    text, report = results.text["file:valid"], results.reports["file:valid"]
    text.assert_no_traceback()
    assert text.returncode == 0, text.describe()
    context = json.dumps(report, indent=1)
    assert report["kind"] == "file"
    assert report["verdict"] == "ok", context
    assert len(report["chain"]) == 2, context
    assert report["verified"] is True, context


def test_check_file_expired(results: Results) -> None:
    text, report = results.text["file:expired"], results.reports["file:expired"]
    text.assert_no_traceback()
    assert text.returncode == 2, text.describe()
    context = json.dumps(report, indent=1)
    assert report["kind"] == "file"
    assert report["verdict"] == "critical", context
    assert Code.EXPIRED.value in [f["code"] for f in report["findings"]], context
    assert re.search("expired", text.stdout, re.IGNORECASE), text.describe()
