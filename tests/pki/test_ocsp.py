"""The OCSP validator: every rejection, with responses signed by real keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

from tlsgate.errors import PKIError
from tlsgate.pki.ocsp import (
    CertificateRevoked,
    OcspError,
    OcspTarget,
    build_request,
    check_response,
    ocsp_target,
    request_der,
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


def test_request_der_is_a_well_formed_request(target: OcspTarget) -> None:
    request = ocsp.load_der_ocsp_request(request_der(target))
    assert request.serial_number == target.leaf.serial_number


def test_rejections_are_pki_errors() -> None:
    # The CLI reports any PKIError as a one-line message (exit code 2), not a traceback.
    assert issubclass(OcspError, PKIError)
    assert issubclass(CertificateRevoked, OcspError)
