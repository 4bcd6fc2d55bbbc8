"""The stapling cache: when it asks again, what it keeps through failures, what it drops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from tests.pki.ocsp_pki import Pki, build_response, make_pki, other_cert
from tlsgate.pki.ocsp import VerifiedResponse
from tlsgate.serve.ocsp import MIN_REFRESH, OcspCache, refresh_time

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/ocsp"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(URL, NOW)


def test_refresh_half_way_or_hourly() -> None:
    this = NOW - timedelta(hours=1)
    with_next = VerifiedResponse(b"", this, this + timedelta(days=4))
    assert refresh_time(with_next, NOW) == this + timedelta(days=2)
    without = VerifiedResponse(b"", this, None)
    assert refresh_time(without, NOW - timedelta(minutes=30)) == this + timedelta(hours=1)
    assert without.expires == this + timedelta(days=1)
    # Past the half-way point already (a stale responder cache): soon, but not in a loop.
    assert (
        refresh_time(with_next, this + timedelta(days=3)) == this + timedelta(days=3) + MIN_REFRESH
    )


class Responder:
    """Answers the cache's fetches from a queue of outcomes, and records the requests."""

    def __init__(self) -> None:
        self.outcomes: list[bytes | Exception] = []
        self.requests: list[tuple[str, bytes]] = []

    def __call__(self, url: str, request: bytes, timeout: float) -> bytes:
        self.requests.append((url, request))
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_cache_keeps_the_old_response_until_it_expires(pki: Pki, tmp_path: Path) -> None:
    responder = Responder()
    cache = OcspCache(tmp_path / "ocsp", fetch=responder)
    assert cache.configure("site", [pki.leaf, pki.root])
    first = build_response(pki, NOW)
    responder.outcomes = [first]
    assert cache.refresh_blocking(NOW) == ["site"]
    assert responder.requests[0][0] == URL
    ocsp.load_der_ocsp_request(responder.requests[0][1])  # a well-formed DER request
    current = cache.current("site", NOW)
    assert current is not None and current.der == first
    assert cache.due(NOW) == []
    # Half-way through the day: refresh fails, the old response is still stapled...
    half = NOW + timedelta(hours=12)
    assert cache.due(half) == ["site"]
    responder.outcomes = [OSError("connection refused")]
    assert cache.refresh_blocking(half) == []
    assert cache.current("site", half) is current
    assert cache.due(half) == []  # backoff
    # ...until it expires: never stapled after next_update.
    assert cache.current("site", current.expires) is None
    # A new process (a worker on SIGHUP, or a restart) finds it on disk.
    other = OcspCache(tmp_path / "ocsp", fetch=responder)
    other.configure("site", [pki.leaf, pki.root])
    other.load_cached(half)
    again = other.current("site", half)
    assert again is not None and again.der == first
    other.load_cached(current.expires)
    assert other.current("site", current.expires) is None


def test_cache_drops_the_response_when_revoked(pki: Pki, tmp_path: Path) -> None:
    responder = Responder()
    cache = OcspCache(tmp_path / "ocsp", fetch=responder)
    cache.configure("site", [pki.leaf, pki.root])
    responder.outcomes = [build_response(pki, NOW)]
    cache.refresh_blocking(NOW)
    assert list((tmp_path / "ocsp").iterdir())
    half = NOW + timedelta(hours=12)
    responder.outcomes = [build_response(pki, half, status=ocsp.OCSPCertStatus.REVOKED)]
    assert cache.refresh_blocking(half) == ["site"]
    assert cache.current("site", half) is None
    assert not list((tmp_path / "ocsp").iterdir())  # workers drop it on their reload too


def test_cache_rejects_a_bad_fetch_and_follows_a_new_certificate(pki: Pki, tmp_path: Path) -> None:
    responder = Responder()
    cache = OcspCache(None, fetch=responder)
    cache.configure("site", [pki.leaf, pki.root])
    responder.outcomes = [build_response(pki, NOW, signer=other_cert(pki, NOW, ocsp_signing=False))]
    assert cache.refresh_blocking(NOW) == []
    assert cache.current("site", NOW) is None
    cache.retry_failed()
    assert cache.due(NOW) == ["site"]
    responder.outcomes = [build_response(pki, NOW)]
    cache.refresh_blocking(NOW)
    assert cache.current("site", NOW) is not None
    renewed = make_pki(URL, NOW)
    cache.configure("site", [renewed.leaf, renewed.root])  # a new certificate: a new answer
    assert cache.current("site", NOW) is None
    assert cache.due(NOW) == ["site"]
    assert not cache.configure("site", None)  # stapling turned off
    assert cache.names() == []
