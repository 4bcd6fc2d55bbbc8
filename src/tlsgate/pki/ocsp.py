"""OCSP messages (RFC 6960): find the responder, build the request, check the answer.

Pure (bytes and ``now`` in, decisions out), so everything that asks a responder -- the proxy's
stapling cache, ``tlsgate check`` -- applies the same rules: :func:`ocsp_target` finds the
responder URL and the issuer of a chain, :func:`build_request` makes the request (SHA-1
certificate ID, no nonce: that is what responders and their CDN caches expect), and
:func:`check_response` accepts a response only when every check passes -- successful status, our
certificate ID, status good, ``this_update <= now < next_update``, and a signature made by the
issuer or by a responder certificate the issuer delegated (``id-kp-OCSPSigning``).

Moving the bytes (HTTP) and deciding when to ask again belong to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    SignatureAlgorithmOID,
)

from tlsgate.errors import PKIError

__all__ = [
    "CLOCK_SKEW",
    "NO_NEXT_UPDATE_LIFETIME",
    "CertificateRevoked",
    "OcspError",
    "OcspTarget",
    "VerifiedResponse",
    "build_request",
    "check_response",
    "ocsp_target",
    "request_der",
]

#: A responder's clock may run a little ahead of ours (nginx allows the same 5 minutes).
CLOCK_SKEW = timedelta(minutes=5)
#: How long a response without ``next_update`` is trusted (RFC 6960 leaves it to the client).
NO_NEXT_UPDATE_LIFETIME = timedelta(days=1)


class OcspError(PKIError):
    """The response cannot be used: not a valid, current, good answer about this certificate."""


class CertificateRevoked(OcspError):
    """A verified response says the certificate is revoked."""


@dataclass(frozen=True)
class OcspTarget:
    """What to ask about (the leaf, identified through its issuer) and whom to ask."""

    leaf: x509.Certificate
    issuer: x509.Certificate
    url: str

    @property
    def fingerprint(self) -> str:
        return self.leaf.fingerprint(hashes.SHA256()).hex()


@dataclass(frozen=True)
class VerifiedResponse:
    """A response :func:`check_response` accepted; ``der`` is what gets stapled or cached."""

    der: bytes = field(repr=False)
    this_update: datetime
    next_update: datetime | None

    @property
    def expires(self) -> datetime:
        """The first moment the response must no longer be relied on."""
        if self.next_update is not None:
            return self.next_update
        return self.this_update + NO_NEXT_UPDATE_LIFETIME

    def usable(self, now: datetime) -> bool:
        return now < self.expires


def ocsp_target(chain: Sequence[x509.Certificate]) -> OcspTarget | None:
    """The leaf's OCSP responder and its issuer from the chain, or None when either is absent."""
    if not chain:
        return None
    leaf = chain[0]
    try:
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return None
    urls = [
        d.access_location.value
        for d in aia
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
        and d.access_location.value.lower().startswith(("http://", "https://"))
    ]
    if not urls:
        return None
    for candidate in chain[1:]:
        try:
            leaf.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return OcspTarget(leaf, candidate, urls[0])
    return None


def build_request(
    target: OcspTarget, algorithm: hashes.HashAlgorithm | None = None
) -> ocsp.OCSPRequest:
    """SHA-1 unless told otherwise: what every responder answers (and caches) for."""
    return (
        ocsp.OCSPRequestBuilder()
        .add_certificate(target.leaf, target.issuer, algorithm or hashes.SHA1())
        .build()
    )


def request_der(target: OcspTarget) -> bytes:
    return build_request(target).public_bytes(serialization.Encoding.DER)


def _key_hash(key: object) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING: the ``byKey`` responder ID."""
    return x509.SubjectKeyIdentifier.from_public_key(key).digest  # type: ignore[arg-type]


def _verify_signature(key: object, response: ocsp.OCSPResponse) -> None:
    algorithm = response.signature_hash_algorithm
    data, signature = response.tbs_response_bytes, response.signature
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if response.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS:
                raise OcspError("RSASSA-PSS response signatures are not supported")
            if algorithm is None:
                raise OcspError("response signature has no hash algorithm")
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if algorithm is None:
                raise OcspError("response signature has no hash algorithm")
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise OcspError(f"unsupported responder key type {type(key).__name__}")
    except InvalidSignature:
        raise OcspError("response signature does not verify") from None


def _signer(
    response: ocsp.OCSPResponse, issuer: x509.Certificate, now: datetime
) -> x509.Certificate:
    """The certificate whose key signed the response, checked to be allowed to sign it."""
    candidates = [issuer, *response.certificates]
    if response.responder_name is not None:
        matching = [c for c in candidates if c.subject == response.responder_name]
    else:
        wanted = response.responder_key_hash
        matching = [c for c in candidates if _key_hash(c.public_key()) == wanted]
    if not matching:
        raise OcspError("the responder's certificate is neither the issuer nor in the response")
    for cert in matching:
        if cert.public_key() == issuer.public_key():
            return issuer
    errors: list[str] = []
    for cert in matching:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            errors.append("not issued by the certificate's issuer")
            continue
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            errors.append("responder certificate lacks the OCSPSigning extended key usage")
            continue
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            errors.append("responder certificate is not valid now")
            continue
        return cert
    raise OcspError(f"response signer not authorized: {'; '.join(errors)}")


def check_response(der: bytes, target: OcspTarget, now: datetime) -> VerifiedResponse:
    """Accept ``der`` for ``target`` at ``now``, or raise :class:`OcspError` saying why not.

    Raises :class:`CertificateRevoked` for a verified "revoked" answer.
    """
    try:
        response = ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise OcspError(f"not an OCSP response: {exc}") from None
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"responder answered {response.response_status.name.lower()}")
    single = None
    for candidate in response.responses:
        if candidate.serial_number != target.leaf.serial_number:
            continue
        try:
            wanted = build_request(target, candidate.hash_algorithm)
        except (ValueError, TypeError):
            continue  # a hash OCSPRequestBuilder does not offer cannot be ours
        if (
            candidate.issuer_name_hash == wanted.issuer_name_hash
            and candidate.issuer_key_hash == wanted.issuer_key_hash
        ):
            single = candidate
            break
    if single is None:
        raise OcspError("response is not about this certificate (certificate ID mismatch)")
    signer = _signer(response, target.issuer, now)
    _verify_signature(signer.public_key(), response)
    this_update = single.this_update_utc
    next_update = single.next_update_utc
    if this_update > now + CLOCK_SKEW:
        raise OcspError(f"response is from the future (this_update {this_update.isoformat()})")
    if next_update is not None and now >= next_update:
        raise OcspError(f"response expired at {next_update.isoformat()}")
    verified = VerifiedResponse(der, this_update, next_update)
    if not verified.usable(now):
        raise OcspError(f"response from {this_update.isoformat()} is too old to rely on")
    if single.certificate_status == ocsp.OCSPCertStatus.REVOKED:
        when = single.revocation_time_utc
        reason = single.revocation_reason
        raise CertificateRevoked(
            "certificate is REVOKED"
            + (f" since {when.isoformat()}" if when else "")
            + (f" ({reason.name})" if reason else "")
        )
    if single.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise OcspError("responder does not know this certificate (status unknown)")
    return verified
