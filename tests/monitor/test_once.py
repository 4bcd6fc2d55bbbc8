"""``monitor --once`` over files and a tlsgate store: the table, the JSON and the exit code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.store.postgres import PostgresServer
from tlsgate.ca import CertificateAuthority
from tlsgate.cli import main
from tlsgate.monitor import load
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile
from tlsgate.store import open_store
from tlsgate.store.sqlite import SQLiteStore


@pytest.fixture
def config(
    ca: CertificateAuthority, store: SQLiteStore, state_dir: Path, now: datetime, tmp_path: Path
) -> Path:
    def issue(name: str, days: float) -> bytes:
        issued = ca.issue(
            parse_identities([name]), now=now, profile=LeafProfile(lifetime=timedelta(days=days))
        )
        return issued.fullchain_pem

    issue("old.test", 30)
    issue("old.test", 60)  # renewed: only this one is watched in the store
    issue("soon.test", 5)
    (tmp_path / "good.pem").write_bytes(issue("good.test", 90))
    (tmp_path / "warn.pem").write_bytes(issue("warn.test", 12))
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    (tmp_path / "roots.pem").write_bytes(certificate_pem(ca.root))
    path = tmp_path / "monitor.toml"
    path.write_text(
        '[monitor]\nca = "roots.pem"\n'
        '[[target]]\nfile = "good.pem"\n'
        '[[target]]\nfile = "warn.pem"\nlabels = { team = "web" }\n'
        '[[target]]\nfile = "junk.pem"\n'
        f'[[target]]\nstore = "{state_dir}"\nname = "ca"\n'
    )
    return path


def test_json_reports_files_and_store(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["monitor", "-c", str(config), "--once", "--json"])
    out = capsys.readouterr()
    assert code == 2, out.err  # soon.test in the store is inside the critical window
    reports = {r["target"]: r for r in json.loads(out.out)}
    assert {t: r["verdict"] for t, r in reports.items()} == {
        "good.pem": "ok",
        "warn.pem": "warning",
        "junk.pem": "critical",
        "ca: root CA": "ok",
        "ca: intermediate CA": "ok",
        "ca: issued old.test": "ok",
        "ca: issued soon.test": "critical",
        "ca: issued good.test": "ok",
        "ca: issued warn.test": "warning",
    }
    assert reports["warn.pem"]["labels"] == {"team": "web"}
    assert reports["junk.pem"]["findings"][0]["code"] == "invalid-file"
    old = reports["ca: issued old.test"]["chain"][0]
    assert old["expires_in_seconds"] > 59 * 86400  # the renewed one, not the one it replaced
    assert "9 checked" in out.err


def test_table_worst_first(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "-c", str(config), "--once"]) == 2
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if ".pem" in line or "ca: " in line]
    verdicts = [next(v for v in ("critical", "warning", "ok") if v in line) for line in lines]
    assert verdicts == sorted(verdicts, key=["critical", "warning", "ok"].index)
    assert "Test Intermediate CA" in out  # the issuer column
    assert any("junk.pem" in line and "critical" in line for line in lines)
    assert "the certificate expires in" in out  # the first problem column


def test_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[monitor]\nca = "missing.pem"\n[[target]]\nendpoint = "a.test"\n')
    assert main(["monitor", "-c", str(path), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tlsgate: error: {path}: ca = ")
    assert "cannot read the CA file" in err
    assert main(["monitor", "-c", str(path), "--json"]) == 2
    assert "--json goes with --once" in capsys.readouterr().err
    assert main(["monitor", "-c", str(path), "--once", "--concurrency", "0"]) == 2
    assert "--concurrency 0" in capsys.readouterr().err


def test_a_missing_store_is_a_failed_check_not_a_new_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[[target]]\nstore = "nowhere"\n')
    assert main(["monitor", "-c", str(path), "--once", "--json"]) == 2
    (report,) = json.loads(capsys.readouterr().out)
    assert report["target"] == "nowhere" and report["verdict"] == "critical"
    assert "holds no tlsgate state" in report["findings"][0]["message"]
    assert not (tmp_path / "nowhere").exists()


def test_a_postgresql_store_is_watched_like_a_directory(
    postgres_server: PostgresServer,
    now: datetime,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = postgres_server.create_database()
    store = open_store(url)
    try:
        ca = CertificateAuthority.init(store, now=now, name="Cluster")
        ca.issue(parse_identities(["db.test"]), now=now, profile=LeafProfile())
    finally:
        store.close()
    path = tmp_path / "monitor.toml"
    path.write_text(f'[[target]]\nstore = "{url}"\nname = "cluster"\n')
    code = main(["monitor", "-c", str(path), "--once", "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    verdicts = {r["target"]: r["verdict"] for r in json.loads(out.out)}
    assert verdicts == {
        "cluster: root CA": "ok",
        "cluster: intermediate CA": "ok",
        "cluster: issued db.test": "ok",
    }


def test_a_database_url_name_never_carries_its_password(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[[target]]\nstore = "postgresql://tls:s3cret@db.internal:5432/tlsgate"\n')
    (target,) = load(path).targets
    assert target.name == "postgresql://tls@db.internal:5432/tlsgate"
    assert "s3cret" not in target.name
