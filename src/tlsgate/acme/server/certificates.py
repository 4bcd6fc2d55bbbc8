"""Certificate endpoints: download (RFC 8555 7.4.2), revokeCert (7.6) and renewalInfo (RFC 9773)."""

from __future__ import annotations

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tlsgate.acme.ari import cert_id, parse_cert_id, renewal_window
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server import jws
from tlsgate.acme.server.core import (
    PEM_CHAIN,
    REVOCATION_REASONS,
    ServerCore,
    b64_field,
    log,
    same_key,
)
from tlsgate.errors import NotFound
from tlsgate.store.base import CertStatus

__all__ = ["CertificateHandlers"]


class CertificateHandlers(ServerCore):
    """Certificate download, revocation and renewal information."""

    # -- certificates --------------------------------------------------------------------------
    async def certificate(self, request: web.Request) -> web.Response:
        _, account = await self._with_account(request)
        try:
            serial = int(request.match_info["serial"], 16)
            record = self.store.get_certificate(serial)
        except (ValueError, NotFound):
            raise AcmeProblem.malformed("no such certificate", status=404) from None
        if not record.requester.startswith(f"acme:{account.id}/"):
            raise AcmeProblem.unauthorized("this certificate belongs to another account")
        chain = record.pem + self.ca.intermediate.public_bytes(Encoding.PEM)
        return web.Response(body=chain, headers={"Content-Type": PEM_CHAIN})

    async def revoke_cert(self, request: web.Request) -> web.Response:
        # Either the account that ordered it (kid) or the certificate's own key (jwk).
        context = await self._authenticate(request, jws.KeyRule.EITHER)
        payload = context.request.payload_json or {}
        der = b64_field(payload, "certificate")
        try:
            cert = x509.load_der_x509_certificate(der)
            record = self.store.get_certificate(cert.serial_number)
        except (ValueError, NotFound):
            raise AcmeProblem.malformed("not a certificate this CA issued", status=404) from None
        if record.pem != cert.public_bytes(Encoding.PEM):
            raise AcmeProblem.malformed("not a certificate this CA issued", status=404)
        if context.account is not None:
            by = f"acme:{context.account.id}"
            if not record.requester.startswith(f"{by}/"):
                raise AcmeProblem.unauthorized("the account did not order this certificate")
        else:
            if not same_key(context.request.jwk, cert.public_key()):
                raise AcmeProblem.unauthorized("the JWS is not signed with the certificate's key")
            by = "acme:certificate-key"
        if record.status is CertStatus.REVOKED:
            raise AcmeProblem.already_revoked()
        reason_code = payload.get("reason", 0)
        if not isinstance(reason_code, int) or reason_code not in REVOCATION_REASONS:
            raise AcmeProblem.bad_revocation_reason(f"reason {reason_code!r} is not accepted")
        reason = REVOCATION_REASONS[reason_code]
        self.ca.revoke(cert.serial_number, now=self.clock(), reason=reason, revoked_by=by)
        log.info("revoked %X (%s) by %s", cert.serial_number, reason.name, by)
        return web.Response(status=200)

    async def renewal_info(self, request: web.Request) -> web.Response:
        text = request.match_info["cert_id"]
        try:
            _, serial = parse_cert_id(text)
            record = self.store.get_certificate(serial)
        except (ValueError, NotFound):
            raise AcmeProblem.malformed(
                "no certificate of this CA has that CertID", status=404
            ) from None
        cert = x509.load_pem_x509_certificate(record.pem)
        if cert_id(cert) != text:
            raise AcmeProblem.malformed("no certificate of this CA has that CertID", status=404)
        # From when it was issued, not from its not-before: that is backdated for clock skew,
        # which for a certificate of minutes would put the whole window in the past.
        window = renewal_window(
            max(record.not_before, record.issued_at),
            record.not_after,
            revoked=record.status is CertStatus.REVOKED,
            now=self.clock(),
        )
        response = self._json(window.to_json())
        response.headers["Retry-After"] = str(int(window.retry_after.total_seconds()))
        return response
