"""The OCSP validator and cache: every rejection, with responses signed by real keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from tlsgate.proxy.ocsp import (
    MIN_REFRESH,
    CertificateRevoked,
    OcspCache,
    OcspError,
    OcspTarget,
    VerifiedResponse,
    build_request,
    check_response,
    ocsp_target,
    refresh_time,
)

from .ocsp_pki import Pki, build_response, make_pki, other_cert

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9/ocsp"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(URL, NOW)


@pytest.fixture(scope="module")
def target(pki: Pki) -> OcspTarget:
    found = ocsp_target([pki.leaf, pki.root])
    assert found is not None
    return found


def test_target_needs_a_responder_url_and_the_issuer(pki: Pki) -> None:
    assert ocsp_target([pki.leaf, pki.root]) == OcspTarget(pki.leaf, pki.root, URL)
    assert ocsp_target([pki.leaf]) is None  # no issuer in the chain
    assert ocsp_target([pki.leaf, pki.responder]) is None  # not the issuer
    plain = make_pki(None, NOW)
    assert ocsp_target([plain.leaf, plain.root]) is None  # no AIA OCSP URL


def test_request_uses_a_sha1_cert_id(target: OcspTarget) -> None:
    request = build_request(target)
    assert isinstance(request.hash_algorithm, hashes.SHA1)
    assert request.serial_number == target.leaf.serial_number


def test_issuer_signed_response_is_accepted(pki: Pki, target: OcspTarget) -> None:
    der = build_response(pki, NOW)
    verified = check_response(der, target, NOW)
    assert verified.der == der
    assert verified.next_update == verified.this_update + timedelta(days=1)


@pytest.mark.parametrize("by_hash", [False, True], ids=["by-name", "by-key-hash"])
def test_delegated_responder_is_accepted(pki: Pki, target: OcspTarget, by_hash: bool) -> None:
    der = build_response(pki, NOW, signer=(pki.responder_key, pki.responder), by_hash=by_hash)
    assert check_response(der, target, NOW).der == der


def test_wrong_cert_id_is_rejected(target: OcspTarget) -> None:
    stranger = make_pki(URL, NOW)  # another issuer and serial altogether
    with pytest.raises(OcspError, match="certificate ID"):
        check_response(build_response(stranger, NOW), target, NOW)


def test_response_about_another_leaf_of_the_same_issuer_is_rejected(
    pki: Pki, target: OcspTarget
) -> None:
    _, sibling = other_cert(pki, NOW, ocsp_signing=False)  # issued by the same root
    der = build_response(pki, NOW, cert=sibling)
    with pytest.raises(OcspError, match="certificate ID"):
        check_response(der, target, NOW)


def test_expired_response_is_rejected(pki: Pki, target: OcspTarget) -> None:
    der = build_response(pki, NOW, this_update=NOW - timedelta(days=2))
    with pytest.raises(OcspError, match="expired"):
        check_response(der, target, NOW)
    # Valid up to the last instant before next_update, not at it.
    edge = build_response(pki, NOW, this_update=NOW - timedelta(days=1))
    with pytest.raises(OcspError, match="expired"):
        check_response(edge, target, NOW)
    assert check_response(edge, target, NOW - timedelta(seconds=1))


def test_response_from_the_future_is_rejected(pki: Pki, target: OcspTarget) -> None:
    der = build_response(pki, NOW, this_update=NOW + timedelta(hours=1))
    with pytest.raises(OcspError, match="future"):
        check_response(der, target, NOW)


def test_bad_signature_is_rejected(pki: Pki, target: OcspTarget) -> None:
    # A signature that is not the issuer's over these bytes.
    good = build_response(pki, NOW)
    signature = ocsp.load_der_ocsp_response(good).signature
    at = good.rindex(signature) + 8  # inside the ECDSA r value
    forged = good[:at] + bytes([good[at] ^ 0x01]) + good[at + 1 :]
    with pytest.raises(OcspError, match="signature"):
        check_response(forged, target, NOW)
    # A genuine response whose signed data was altered after signing.
    index = good.index(b"\x18\x0f")  # the first GeneralizedTime (producedAt): change a digit
    tampered = good[: index + 2] + b"1" + good[index + 3 :]
    assert tampered != good
    with pytest.raises(OcspError, match="signature"):
        check_response(tampered, target, NOW)


def test_undelegated_signer_is_rejected(pki: Pki, target: OcspTarget) -> None:
    # Issued by the root but without id-kp-OCSPSigning.
    der = build_response(pki, NOW, signer=other_cert(pki, NOW, ocsp_signing=False))
    with pytest.raises(OcspError, match="OCSPSigning"):
        check_response(der, target, NOW)
    # Has the EKU but was not issued by the root.
    der = build_response(pki, NOW, signer=other_cert(pki, NOW, ocsp_signing=True, self_signed=True))
    with pytest.raises(OcspError, match="not issued by"):
        check_response(der, target, NOW)
    # A delegated responder that does not ship its certificate cannot be checked.
    der = build_response(pki, NOW, signer=(pki.responder_key, pki.responder), include_signer=False)
    with pytest.raises(OcspError, match="neither the issuer"):
        check_response(der, target, NOW)


def test_delegated_responder_outside_its_validity_is_rejected(pki: Pki, target: OcspTarget) -> None:
    later = pki.responder.not_valid_after_utc + timedelta(hours=1)
    der = build_response(pki, later, signer=(pki.responder_key, pki.responder))
    with pytest.raises(OcspError, match="not valid now"):
        check_response(der, target, later)


@pytest.mark.parametrize(
    "status",
    [
        ocsp.OCSPResponseStatus.TRY_LATER,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
        ocsp.OCSPResponseStatus.INTERNAL_ERROR,
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
    ],
)
def test_unsuccessful_status_is_rejected(
    target: OcspTarget, status: ocsp.OCSPResponseStatus
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    der = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(Encoding.DER)
    with pytest.raises(OcspError, match=status.name.lower()):
        check_response(der, target, NOW)


def test_garbage_is_rejected(target: OcspTarget) -> None:
    for der in (b"", b"<html>502 Bad Gateway</html>", b"\x30\x03\x0a\x01\x00"):
        with pytest.raises(OcspError):
            check_response(der, target, NOW)


def test_revoked_and_unknown_are_not_stapled(pki: Pki, target: OcspTarget) -> None:
    revoked = build_response(pki, NOW, status=ocsp.OCSPCertStatus.REVOKED)
    with pytest.raises(CertificateRevoked, match="REVOKED"):
        check_response(revoked, target, NOW)
    unknown = build_response(pki, NOW, status=ocsp.OCSPCertStatus.UNKNOWN)
    with pytest.raises(OcspError, match="unknown"):
        check_response(unknown, target, NOW)


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
