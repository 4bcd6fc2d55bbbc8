"""x509-limbo in CI: every case through ``verify_chain`` and ``tlsgate check FILE``.

What must hold for each of the suite's chains, whatever it contains (malformed names, duplicate
extensions, name-constraint bombs): a verdict and never an exception; no more work than the bound
cryptography sets itself; and where tlsgate's verdict differs from cryptography's, or from the
suite's expected one, the case is in :data:`tests.limbo.harness.DIFFERENCES` with its reason and
in the README.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from tests.inspect.runner import run_all
from tests.limbo.harness import (
    DIFFERENCES,
    LIMBO,
    Case,
    Result,
    Row,
    differences,
    evaluate,
    load_cases,
    results_document,
    run_tlsgate,
    table,
)
from tlsgate.cli import build_parser, main

README = Path(__file__).resolve().parents[2] / "README.md"
CASES = load_cases(LIMBO.read_text())
BY_ID = {case.id: case for case in CASES}

#: cryptography stops a path search after 2**20 name-constraint checks
#: (``Budget::DEFAULT_NAME_CONSTRAINT_CHECK_LIMIT`` in its Rust verifier). tlsgate's own work on
#: one chain, counted as Python function calls (each name check costs at least one), must stay
#: under the same number: a chain a peer presents never costs more than cryptography allows.
WORK_BUDGET = 1 << 20

#: Fragments of cryptography's and Python's own messages, which a finding must never show.
RAW = (
    "validation failed",
    "candidates exhausted",
    "encountered processing",
    "<Certificate",
    "ParseError",
    "error parsing",
    "Traceback",
)


class OverBudget(BaseException):
    """Raised from the profiler, so no ``except Exception`` in the code under test can hide it."""


@contextmanager
def work_budget(limit: int = WORK_BUDGET) -> Iterator[Callable[[], int]]:
    """Count Python function calls made inside the block; stop it at ``limit``.

    A count, not a clock: deterministic on a loaded machine, and the block is cut short the
    moment it exceeds the budget instead of running for seconds.
    """
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call":
            calls += 1
            if calls > limit:
                raise OverBudget(f"more than {limit} Python calls")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield lambda: calls
    finally:
        sys.setprofile(previous)


def test_the_vectors_are_the_suite_described_in_their_readme() -> None:
    readme = (LIMBO.parent / "README.md").read_text()
    assert "Apache-2.0" in readme and "x509-limbo" in readme
    assert len(CASES) == 208 and len(BY_ID) == 208
    assert sum(c.kind == "CLIENT" for c in CASES) == 10


def test_the_work_budget_stops_runaway_work() -> None:
    """The safety net itself: a loop of calls is cut at the budget, not after it finishes."""

    def step() -> None:
        pass

    with pytest.raises(OverBudget), work_budget(1000) as used:
        for _ in range(10_000):
            step()
    assert used() == 1001


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_verify_chain_gives_a_verdict_within_the_budget(case: Case) -> None:
    """Only VerificationFailed may come out of verify_chain (run_tlsgate lets anything else
    escape), and the verdict costs no more than cryptography's own bound."""
    try:
        with work_budget() as used:
            outcome = run_tlsgate(case)
    except OverBudget as exc:
        pytest.fail(f"{case.id}: tlsgate's verdict took {exc}, cryptography stops at 2**20")
    assert outcome.result in (Result.SUCCESS, Result.FAILURE), outcome
    assert used() <= WORK_BUDGET


def _write_case(case: Case, where: Path) -> list[str]:
    """The case as ``check`` takes it: the presented chain in one file, the anchors in --ca."""
    chain, roots = where / "chain.pem", where / "roots.pem"
    chain.write_text(case.peer + "".join(case.intermediates))
    roots.write_text("".join(case.trusted))
    argv = ["check", str(chain), "--ca", str(roots), "--json"]
    if case.peer_name is not None:
        argv += ["--servername", case.peer_name]
    return argv


@pytest.fixture(scope="module")
def cli_loaded() -> None:
    """Import every command module once, so the work budget counts checking, not imports."""
    build_parser()


@pytest.mark.usefixtures("cli_loaded")
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_check_file_gives_a_verdict(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tlsgate check FILE`` through the CLI's entry function: a report and a Nagios exit code
    (0, 1, 2), never an internal error, within the same work budget."""
    argv = _write_case(case, tmp_path)
    try:
        with work_budget():
            code = main(argv)
    except OverBudget as exc:
        pytest.fail(f"{case.id}: check took {exc}, cryptography stops at 2**20")
    out = capsys.readouterr()
    assert "internal error" not in out.err and "Traceback" not in out.err, out.err
    report = json.loads(out.out)
    assert code in (0, 1, 2) and report["exit_code"] == code, out
    assert report["verdict"] in ("ok", "warning", "critical")
    if code:
        assert report["findings"], report
    for finding in report["findings"]:  # plain words, never cryptography's own message
        assert not any(raw in finding["message"] for raw in RAW), finding


#: A few cases as real processes: the bombs, the chains that used to raise, a client case.
SUBPROCESS_CASES = [
    "pathological::nc-dos-1",
    "rfc5280::san::malformed",
    "rfc5280::duplicate-extensions",
    "webpki::malformed-aia",
    "rfc5280::serial::zero",
    "rfc5280::nc::nc-permits-email-exact",
]


def test_check_as_a_process(tmp_path: Path) -> None:
    jobs = {}
    for case_id in SUBPROCESS_CASES:
        where = tmp_path / case_id.replace("::", "-")
        where.mkdir()
        jobs[case_id] = _write_case(BY_ID[case_id], where)
    for case_id, run in run_all(jobs, timeout=120).items():
        run.assert_no_traceback()
        assert run.returncode in (0, 1, 2), run.describe()
        assert run.report()["exit_code"] == run.returncode, (case_id, run.describe())


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return evaluate(CASES)


def test_every_difference_is_deliberate(rows: list[Row]) -> None:
    """Where tlsgate says something else than cryptography, or than the suite expects, the case
    is listed with its reason; a listed case that no longer differs must leave the list too."""
    found = differences(rows)
    unexplained = {
        case_id: (row.case.expected, row.cryptography, row.tlsgate)
        for case_id, row in found.items()
        if case_id not in DIFFERENCES
    }
    assert not unexplained
    assert sorted(DIFFERENCES) == sorted(found)


def test_the_readme_lists_every_difference_and_the_measured_table(rows: list[Row]) -> None:
    readme = README.read_text()
    section = readme.split("### Conformance: x509-limbo", 1)[1].split("\n## ", 1)[0]
    missing = [case_id for case_id in DIFFERENCES if f"`{case_id}`" not in section]
    assert not missing
    assert table(rows) in section
    for reason in set(DIFFERENCES.values()):
        assert reason in " ".join(section.split()), reason


def test_differences_name_real_cases_with_one_line_reasons() -> None:
    for case_id, reason in DIFFERENCES.items():
        assert case_id in BY_ID, case_id
        assert reason and "\n" not in reason and not re.search(r"\s{2}", reason), case_id


@pytest.mark.parametrize("harness", ["tlsgate", "cryptography"])
def test_results_are_in_the_suites_format(rows: list[Row], harness: str) -> None:
    document = json.loads(json.dumps(results_document(rows, harness)))
    assert document["version"] == 1 and document["harness"].startswith(("tlsgate-", "pyca-"))
    assert [r["id"] for r in document["results"]] == [c.id for c in CASES]
    results = {r["actual_result"] for r in document["results"]}
    assert results <= {"SUCCESS", "FAILURE", "SKIPPED"}
    # tlsgate skips nothing it can express; pyca's harness skips what pyca declares unsupported.
    assert ("SKIPPED" in results) is (harness == "cryptography")
