"""ACME error documents (RFC 8555 section 6.7, RFC 7807 problem details).

Every refusal the ACME server makes is an :class:`AcmeProblem`: an exception (so the sans-IO core
can simply raise it from deep inside a check) that also knows how it goes on the wire, its HTTP
status, body and any headers it needs, so the HTTP front end has one ``except AcmeProblem`` and no
per-error knowledge. The error names come from ``acme.messages.ERROR_CODES`` (the table certbot
and its client use), so the server and the client we build on the same library cannot disagree
about a spelling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from acme import messages

from tlsgate.errors import TlsgateError

__all__ = ["CONTENT_TYPE", "ERROR_PREFIX", "AcmeProblem", "Subproblem"]

#: Media type of an error body (RFC 7807 section 3).
CONTENT_TYPE = "application/problem+json"
#: Namespace of the ACME error types (RFC 8555 section 6.7).
ERROR_PREFIX = messages.ERROR_PREFIX

#: Codes a problem may carry: acme's table plus the RFC 8555 type it lacks (userActionRequired).
_CODES = frozenset(messages.ERROR_CODES) | {"userActionRequired"}

#: Default HTTP status per code. RFC 8555 mostly leaves it to the server; these follow the RFC's
#: own examples and Boulder, so clients (certbot, lego, acme.sh) see what they are used to.
_STATUS = {
    "unauthorized": 403,
    "orderNotReady": 403,
    "externalAccountRequired": 403,
    "userActionRequired": 403,
    "caa": 403,
    "rateLimited": 429,
    "serverInternal": 500,
}

#: (identifier, problem) pairs of a compound problem (RFC 8555 section 6.7.1).
Subproblem = tuple[messages.Identifier, "AcmeProblem"]


#: The error types a failed challenge can carry; every outcome of ``server/validation.py`` is one of
#: them (a test holds the two together: a code missing here left challenges stuck once).
CHALLENGE_ERRORS = frozenset(
    {"connection", "dns", "tls", "incorrectResponse", "unknownHost", "unauthorized"}
)


class AcmeProblem(TlsgateError):
    """A refusal in RFC 8555 terms: error type URN, detail, HTTP status, optional extras.

    ``extra`` holds members the RFC adds to specific types (``algorithms`` for
    badSignatureAlgorithm, ``instance`` for userActionRequired); ``headers`` holds the HTTP headers
    that belong to the error itself (``Retry-After`` for rateLimited, a ``Link`` for
    userActionRequired). The front end adds the always-present ones (``Replay-Nonce``, the
    directory ``Link``) on its own.
    """

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        status: int | None = None,
        subproblems: Sequence[Subproblem] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if code not in _CODES:
            raise ValueError(f"not an ACME error code: {code!r}")
        self.code = code
        self.detail = detail if detail is not None else _describe(code)
        self.status = status if status is not None else _STATUS.get(code, 400)
        self.subproblems: tuple[Subproblem, ...] = tuple(subproblems)
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})
        super().__init__(self.detail)

    @property
    def type(self) -> str:
        """The error type URN, ``urn:ietf:params:acme:error:<code>``."""
        return ERROR_PREFIX + self.code

    def to_dict(self) -> dict[str, Any]:
        """The problem document as a JSON-ready dict (subproblems carry their identifier)."""
        document: dict[str, Any] = {**self.extra, "type": self.type, "detail": self.detail}
        document["status"] = self.status
        if self.subproblems:
            document["subproblems"] = [
                {
                    "type": problem.type,
                    "detail": problem.detail,
                    "identifier": identifier.to_json(),
                    **problem.extra,
                }
                for identifier, problem in self.subproblems
            ]
        return document

    def to_json(self) -> bytes:
        """The response body, to be sent with Content-Type :data:`CONTENT_TYPE`."""
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    def to_error(self) -> messages.Error:
        """The same problem as acme's client-side type, for code shared with the client."""
        error: messages.Error = messages.Error.from_json(self.to_dict())
        return error

    def __repr__(self) -> str:
        return f"AcmeProblem({self.code!r}, {self.detail!r}, status={self.status})"

    # One factory per error type the server raises, so call sites read as the RFC does.

    @classmethod
    def bad_nonce(cls, detail: str = "the nonce is unknown, used or expired") -> AcmeProblem:
        """400; the front end must attach a fresh Replay-Nonce (RFC 8555 section 6.5)."""
        return cls("badNonce", detail)

    @classmethod
    def malformed(cls, detail: str, *, status: int = 400) -> AcmeProblem:
        """400, or 413/415 for a too-large body or wrong media type (the RFC mandates 415)."""
        return cls("malformed", detail, status=status)

    @classmethod
    def unauthorized(cls, detail: str) -> AcmeProblem:
        """403: authenticated, but not allowed to do this."""
        return cls("unauthorized", detail)

    @classmethod
    def account_does_not_exist(cls, detail: str = "no account with this key") -> AcmeProblem:
        """400: a ``kid`` or onlyReturnExisting lookup found nothing."""
        return cls("accountDoesNotExist", detail)

    @classmethod
    def rejected_identifier(cls, detail: str) -> AcmeProblem:
        """400: the CA will not issue for this name."""
        return cls("rejectedIdentifier", detail)

    @classmethod
    def unsupported_identifier(cls, detail: str) -> AcmeProblem:
        """400: an identifier type the CA does not handle."""
        return cls("unsupportedIdentifier", detail)

    @classmethod
    def bad_csr(cls, detail: str) -> AcmeProblem:
        """400: the finalize CSR is unacceptable."""
        return cls("badCSR", detail)

    @classmethod
    def order_not_ready(cls, detail: str = "the order is not ready") -> AcmeProblem:
        """403: finalize before every authorization is valid."""
        return cls("orderNotReady", detail)

    @classmethod
    def bad_signature_algorithm(cls, detail: str, algorithms: Sequence[str]) -> AcmeProblem:
        """400 with the ``algorithms`` member the RFC requires (RFC 8555 section 6.2)."""
        return cls("badSignatureAlgorithm", detail, extra={"algorithms": list(algorithms)})

    @classmethod
    def bad_public_key(cls, detail: str) -> AcmeProblem:
        """400: a key type or size the server does not accept."""
        return cls("badPublicKey", detail)

    @classmethod
    def external_account_required(
        cls, detail: str = "this CA requires an external account binding"
    ) -> AcmeProblem:
        """403: newAccount without the externalAccountBinding the CA asks for."""
        return cls("externalAccountRequired", detail)

    @classmethod
    def rate_limited(cls, detail: str, *, retry_after: int | None = None) -> AcmeProblem:
        """429, with Retry-After (seconds) when the server knows when to come back."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls("rateLimited", detail, headers=headers)

    @classmethod
    def server_internal(cls, detail: str = "internal error") -> AcmeProblem:
        """500: our fault; the detail must not leak internals."""
        return cls("serverInternal", detail)

    @classmethod
    def already_revoked(cls, detail: str = "the certificate is already revoked") -> AcmeProblem:
        """400 from revokeCert."""
        return cls("alreadyRevoked", detail)

    @classmethod
    def bad_revocation_reason(cls, detail: str) -> AcmeProblem:
        """400 from revokeCert: a reason code the CA does not allow."""
        return cls("badRevocationReason", detail)

    @classmethod
    def user_action_required(
        cls, detail: str, *, instance: str, terms_of_service: str | None = None
    ) -> AcmeProblem:
        """403 with ``instance`` (a page for the human) and the new terms (RFC 8555 7.3.3)."""
        headers = {}
        if terms_of_service is not None:
            headers["Link"] = f'<{terms_of_service}>;rel="terms-of-service"'
        return cls("userActionRequired", detail, headers=headers, extra={"instance": instance})

    @classmethod
    def challenge_failed(cls, code: str, detail: str) -> AcmeProblem:
        """A failed validation: ``connection``, ``dns``, ``tls``, ``incorrectResponse``, or
        ``unauthorized`` (the answer was refused, e.g. http-01 got a 404, as Boulder says it)."""
        if code not in CHALLENGE_ERRORS:
            raise ValueError(f"not a challenge error code: {code!r}")
        return cls(code, detail)

    @classmethod
    def caa(cls, detail: str) -> AcmeProblem:
        """403: CAA records forbid this CA from issuing for the name."""
        return cls("caa", detail)

    @classmethod
    def compound(cls, detail: str, subproblems: Sequence[Subproblem]) -> AcmeProblem:
        """One problem per identifier; the status is the first subproblem's (RFC 8555 6.7.1)."""
        status = subproblems[0][1].status if subproblems else 400
        return cls("compound", detail, status=status, subproblems=subproblems)


def _describe(code: str) -> str:
    """A default detail for callers that have nothing better to say."""
    if code == "userActionRequired":
        return "Visit the instance URL and take the actions specified there"
    return messages.ERROR_CODES[code]
