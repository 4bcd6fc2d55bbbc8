"""Authenticating one ACME request (RFC 8555 sections 6.2-6.5, 7.3.4, 7.3.5), sans-IO.

Every ACME POST is a JWS in the flattened JSON serialization; before any handler looks at a
payload, this module has checked, in this order, everything RFC 8555 demands of the envelope:
media type, size, shape (one signature, no unprotected header), algorithm, ``jwk`` xor ``kid``,
the key itself, ``url``, the signature, then the nonce. Each refusal is an :class:`AcmeProblem`
of the type the RFC names, and nothing else escapes: the input is attacker-controlled bytes.

The parsing is strict where leniency would be a hole: duplicate JSON members are refused (two
parsers reading different ``url`` values is a classic JOSE confusion), ``crit``/``b64`` are refused
(RFC 8555 forbids the unencoded payload), and the signature is checked over the base64url text as
received, never a re-encoding. The cryptography is josepy's (``josepy.jwa``) over ``cryptography``;
josepy 2 has no Ed25519: ``okp.py`` registers an ``OKP`` key type and the ``EdDSA`` algorithm
(RFC 8037) with josepy, built from ``cryptography``'s Ed25519 and nothing hand-rolled.

Two ways in: :func:`verify_request` does everything given a nonce store and an account lookup; a
front end whose lookups are async splits it into :func:`parse_request`, its own lookup,
:func:`authenticate` and its own nonce consumption (after the signature, as here, so a forged
request cannot burn a client's nonce).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar, cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519
from josepy import b64, jwa
from josepy.errors import Error as JoseError
from josepy.jwk import JWK, JWKEC, JWKRSA

from tlsgate.acme.jose import CONTENT_TYPE, thumbprint
from tlsgate.acme.okp import JWKOKP, EdDSA
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server.nonces import NonceStore

__all__ = [
    "EAB_ALGORITHMS",
    "JWKOKP",
    "MAX_BODY",
    "SUPPORTED_ALGORITHMS",
    "KeyRule",
    "ParsedRequest",
    "VerifiedRequest",
    "authenticate",
    "check_key",
    "load_jwk",
    "parse_request",
    "verify_external_account_binding",
    "verify_key_change",
    "verify_request",
]

#: Largest body accepted. The biggest honest request is a finalize CSR or a revokeCert
#: certificate (a few KiB); the cap bounds JSON parsing work for everything else.
MAX_BODY = 64 * 1024
#: RSA moduli outside [MIN, MAX] are refused: below is breakable, above is a CPU sink.
RSA_MIN_BITS = 2048
RSA_MAX_BITS = 8192


#: Account-key algorithms, in the order the badSignatureAlgorithm problem lists them.
SUPPORTED_ALGORITHMS: Mapping[str, jwa.JWASignature] = MappingProxyType(
    {"ES256": jwa.ES256, "ES384": jwa.ES384, "RS256": jwa.RS256, "EdDSA": EdDSA}
)
#: MAC algorithms an External Account Binding may use (RFC 8555 section 7.3.4).
EAB_ALGORITHMS: Mapping[str, jwa.JWASignature] = MappingProxyType(
    {"HS256": jwa.HS256, "HS384": jwa.HS384, "HS512": jwa.HS512}
)
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1"}
_PUBLIC_MEMBERS = {"EC": ("crv", "x", "y"), "RSA": ("n", "e"), "OKP": ("crv", "x")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_T = TypeVar("_T")


# --- public types --------------------------------------------------------------------------------


class KeyRule(enum.Enum):
    """Which key reference an endpoint takes (RFC 8555 section 6.2)."""

    #: newAccount, keyChange's inner JWS: the key itself, there is no account yet.
    JWK = "jwk"
    #: Every other endpoint: the account URL.
    KID = "kid"
    #: revokeCert: the account (``kid``) or the certificate's own key (``jwk``).
    EITHER = "either"


@dataclass(frozen=True)
class ParsedRequest:
    """A structurally valid JWS whose signature and nonce are not yet checked.

    ``jwk`` is set (and already checked against ``alg``) when the request embeds its key;
    otherwise ``kid`` is set and the caller must look the account key up.
    """

    alg: str
    protected: Mapping[str, Any]
    jwk: JWK | None
    kid: str | None
    url: str
    nonce: str | None
    payload: bytes
    payload_json: Mapping[str, Any] | None
    signing_input: bytes
    signature: bytes


@dataclass(frozen=True)
class VerifiedRequest:
    """An authenticated request: signed by ``jwk``, for ``url``, with a fresh nonce.

    ``payload`` is empty and ``payload_json`` None for POST-as-GET (RFC 8555 section 6.3);
    otherwise ``payload_json`` is the decoded JSON object. ``kid`` is the account URL for
    account-signed requests and None for ``jwk`` ones.
    """

    payload: bytes
    payload_json: Mapping[str, Any] | None
    jwk: JWK
    kid: str | None
    protected: Mapping[str, Any]
    url: str
    nonce: str | None

    @property
    def is_post_as_get(self) -> bool:
        """True for the empty payload that stands in for GET (RFC 8555 section 6.3)."""
        return self.payload == b""


# --- the one-shot verifier -----------------------------------------------------------------------


def verify_request(
    body: bytes,
    *,
    url: str,
    content_type: str | None,
    rule: KeyRule,
    nonces: NonceStore,
    now: datetime,
    account_key: Callable[[str], JWK],
) -> VerifiedRequest:
    """Authenticate one ACME POST body for the endpoint at ``url``.

    ``url`` is the URL the server computed for this request (scheme, host and path as the
    directory advertises them). ``account_key`` maps a ``kid`` to the account's key and raises an
    :class:`AcmeProblem` (``accountDoesNotExist``, ``unauthorized`` for a deactivated account)
    when it cannot. Raises :class:`AcmeProblem` for every refusal; the caller must answer
    ``badNonce`` with a fresh ``Replay-Nonce``.
    """
    parsed = parse_request(body, content_type=content_type, rule=rule)
    key = parsed.jwk if parsed.jwk is not None else account_key(_require(parsed.kid))
    verified = authenticate(parsed, url=url, key=key)
    if not nonces.consume(_require(parsed.nonce), now):
        raise AcmeProblem.bad_nonce()
    return verified


def parse_request(body: bytes, *, content_type: str | None, rule: KeyRule) -> ParsedRequest:
    """Every check that needs no lookup: media type, size, JWS shape, alg, key, url, nonce.

    The nonce is only checked for presence and encoding here; consuming it is the caller's step
    after :func:`authenticate`.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != CONTENT_TYPE:
        raise AcmeProblem.malformed(
            f"Content-Type must be {CONTENT_TYPE}, not {content_type or 'absent'}", status=415
        )
    if len(body) > MAX_BODY:
        raise AcmeProblem.malformed(f"request body too large (over {MAX_BODY} bytes)", status=413)
    document = _load_json(body, "request body")
    return _parse_flattened(document, rule=rule, nonce=True, algorithms=SUPPORTED_ALGORITHMS)


def authenticate(parsed: ParsedRequest, *, url: str, key: JWK) -> VerifiedRequest:
    """Check the signature with ``key`` and the protected ``url`` against the request's URL.

    ``key`` is the embedded ``jwk`` or the account's key for ``kid``; it is checked against
    ``alg`` again because an account key (from the store) was never seen with this request.
    """
    check_key(key, parsed.alg)
    algorithm = SUPPORTED_ALGORITHMS[parsed.alg]
    if not _signature_ok(algorithm, key.key, parsed):
        raise AcmeProblem.malformed("JWS signature does not verify with the request's key")
    if parsed.url != url:
        raise AcmeProblem.unauthorized(f"JWS url {parsed.url!r} is not this request's URL")
    return VerifiedRequest(
        payload=parsed.payload,
        payload_json=parsed.payload_json,
        jwk=key,
        kid=parsed.kid,
        protected=parsed.protected,
        url=parsed.url,
        nonce=parsed.nonce,
    )


# --- keys ----------------------------------------------------------------------------------------


def load_jwk(obj: object) -> JWK:
    """A public JWK from its JSON object, refusing private parts and unsupported keys.

    Used for the ``jwk`` header, keyChange's ``oldKey`` and the EAB payload; the store can use it
    to read stored account keys back (it knows ``OKP``, which plain josepy 2 does not).
    """
    if not isinstance(obj, Mapping):
        raise AcmeProblem.malformed("a JWK must be a JSON object")
    if _PRIVATE_MEMBERS & obj.keys():
        raise AcmeProblem.malformed("the JWK contains private key material")
    kty, crv = obj.get("kty"), obj.get("crv")
    if kty not in {"EC", "RSA", "OKP"}:
        raise AcmeProblem.bad_public_key(f"unsupported key type {kty!r} (use EC, RSA or OKP)")
    if (kty == "EC" and crv not in {"P-256", "P-384"}) or (kty == "OKP" and crv != "Ed25519"):
        raise AcmeProblem.bad_public_key(f"unsupported {kty} curve {crv!r}")
    missing = [m for m in _PUBLIC_MEMBERS[kty] if not isinstance(obj.get(m), str)]
    if missing:
        raise AcmeProblem.malformed(f"the {kty} JWK lacks string members {missing}")
    try:
        jwk = cast(JWK, JWK.from_json(dict(obj)))  # josepy wants a dict; dispatches by kty
    except (JoseError, KeyError, TypeError, ValueError, UnsupportedAlgorithm) as error:
        raise AcmeProblem.malformed(f"unusable {kty} JWK: {error}") from error
    _check_key_strength(jwk)
    return jwk


def check_key(jwk: JWK, alg: str) -> None:
    """Refuse a key that ``alg`` cannot use (badSignatureAlgorithm) or that is weak (badPublicKey).

    RFC 7518 ties each algorithm to one key type (and ES256/ES384 to one curve each); verifying
    ES256 over a P-384 key would "work" and is exactly the confusion the RFC rules out.
    """
    _check_key_strength(jwk)
    if alg in _EC_CURVES:
        ok = isinstance(jwk, JWKEC) and jwk.key.curve.name == _EC_CURVES[alg]
    elif alg == "RS256":
        ok = isinstance(jwk, JWKRSA)
    elif alg == "EdDSA":
        ok = isinstance(jwk.key, ed25519.Ed25519PublicKey)
    else:
        ok = False
    if not ok:
        raise AcmeProblem.bad_signature_algorithm(
            f"alg {alg} does not match the {jwk.typ} key", list(SUPPORTED_ALGORITHMS)
        )


def _check_key_strength(jwk: JWK) -> None:
    if isinstance(jwk, JWKRSA):
        bits = jwk.key.key_size
        if not RSA_MIN_BITS <= bits <= RSA_MAX_BITS:
            raise AcmeProblem.bad_public_key(
                f"RSA keys must have {RSA_MIN_BITS} to {RSA_MAX_BITS} bits, not {bits}"
            )
    elif isinstance(jwk, JWKEC):
        if jwk.key.curve.name not in _EC_CURVES.values():
            raise AcmeProblem.bad_public_key("EC keys must be on P-256 or P-384")
    elif not isinstance(jwk.key, ed25519.Ed25519PublicKey):
        raise AcmeProblem.bad_public_key(f"unsupported public key type {jwk.typ}")


# --- keyChange and External Account Binding ------------------------------------------------------


def verify_key_change(outer: VerifiedRequest, url: str, account_url: str, old_jwk: JWK) -> JWK:
    """Check keyChange's inner JWS (RFC 8555 section 7.3.5) and return the new key.

    ``outer`` is the verified keyChange request (signed by the old key, ``kid`` = account URL),
    ``url`` the keyChange URL, ``account_url``/``old_jwk`` the account and its current key. That
    no other account already has the new key (409) is the store's check, not this one.
    """
    if outer.kid != account_url or thumbprint(outer.jwk) != thumbprint(old_jwk):
        raise AcmeProblem.unauthorized("keyChange must be signed by the account's current key")
    if outer.payload_json is None:
        raise AcmeProblem.malformed("keyChange needs an inner JWS as its payload")
    inner = _parse_flattened(
        dict(outer.payload_json), rule=KeyRule.JWK, nonce=False, algorithms=SUPPORTED_ALGORITHMS
    )
    new_jwk = _require(inner.jwk)
    if not _signature_ok(SUPPORTED_ALGORITHMS[inner.alg], new_jwk.key, inner):
        raise AcmeProblem.malformed("keyChange inner JWS does not verify with its jwk")
    if inner.url != url or outer.url != url:
        raise AcmeProblem.unauthorized("keyChange inner url differs from the request URL")
    change = inner.payload_json
    if change is None or "account" not in change or "oldKey" not in change:
        raise AcmeProblem.malformed("keyChange payload needs account and oldKey")
    if change["account"] != account_url:
        raise AcmeProblem.malformed("keyChange account is not the signing account")
    if thumbprint(load_jwk(change["oldKey"])) != thumbprint(old_jwk):
        raise AcmeProblem.malformed("keyChange oldKey is not the account's current key")
    return new_jwk


def verify_external_account_binding(
    outer: VerifiedRequest, url: str, mac_key: Callable[[str], bytes | None]
) -> str:
    """Check newAccount's ``externalAccountBinding`` (RFC 8555 section 7.3.4); return its kid.

    ``mac_key`` maps the EAB key id the CA handed out to the MAC key (raw bytes), None if
    unknown. Call it when the CA requires a binding (absence is externalAccountRequired) or when
    one is present. Whether a key id may bind a second account is the caller's policy.
    """
    payload = outer.payload_json or {}
    binding = payload.get("externalAccountBinding")
    if binding is None:
        raise AcmeProblem.external_account_required()
    inner = _parse_flattened(binding, rule=KeyRule.KID, nonce=False, algorithms=EAB_ALGORITHMS)
    key_id = _require(inner.kid)
    secret = mac_key(key_id)
    if secret is None:
        raise AcmeProblem.unauthorized(f"unknown external account key id {key_id!r}")
    if not _signature_ok(EAB_ALGORITHMS[inner.alg], secret, inner):
        raise AcmeProblem.unauthorized("external account binding MAC does not verify")
    if inner.url != url or outer.url != url:
        raise AcmeProblem.unauthorized("external account binding url is not the newAccount URL")
    if outer.kid is not None or inner.payload_json is None:
        raise AcmeProblem.malformed("external account binding must bind the request's jwk")
    if thumbprint(load_jwk(inner.payload_json)) != thumbprint(outer.jwk):
        raise AcmeProblem.unauthorized("external account binding is for a different key")
    return key_id


# --- the JWS envelope ----------------------------------------------------------------------------


def _parse_flattened(
    document: object,
    *,
    rule: KeyRule,
    nonce: bool,
    algorithms: Mapping[str, jwa.JWASignature],
) -> ParsedRequest:
    """Shape, header and payload checks shared by requests, keyChange and EAB inner JWSs.

    ``nonce`` True: a request (nonce required, badNonce when absent); False: an inner JWS
    (nonce forbidden).
    """
    if not isinstance(document, dict):
        raise AcmeProblem.malformed("a JWS must be a JSON object")
    if "signatures" in document:
        raise AcmeProblem.malformed("only the flattened JWS serialization is accepted")
    if "header" in document:
        raise AcmeProblem.malformed("a JWS unprotected header is not allowed")
    if set(document) != {"protected", "payload", "signature"}:
        extra = sorted(set(document) - {"protected", "payload", "signature"})
        raise AcmeProblem.malformed(
            f"a JWS has exactly protected, payload and signature (extra: {extra})"
        )
    protected_b64 = _string(document["protected"], "protected")
    payload_b64 = _string(document["payload"], "payload")
    signature = _b64decode(_string(document["signature"], "signature"), "signature")
    header = _load_json(_b64decode(protected_b64, "protected"), "protected header")
    if not isinstance(header, dict):
        raise AcmeProblem.malformed("the protected header must be a JSON object")

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise AcmeProblem.bad_signature_algorithm(
            f"unsupported JWS algorithm {alg!r}", list(algorithms)
        )
    if "crit" in header or "b64" in header:
        raise AcmeProblem.malformed("JWS extensions (crit, b64) are not supported")

    has_jwk, has_kid = "jwk" in header, "kid" in header
    if has_jwk and has_kid:
        raise AcmeProblem.malformed("the protected header has both jwk and kid")
    if rule is KeyRule.JWK and not has_jwk:
        raise AcmeProblem.malformed("this request must carry its key in a jwk header")
    if rule is KeyRule.KID and not has_kid:
        raise AcmeProblem.malformed("this request must name its account in a kid header")
    if not (has_jwk or has_kid):
        raise AcmeProblem.malformed("the protected header needs jwk or kid")
    kid = _string(header["kid"], "kid") if has_kid else None
    jwk = None
    if has_jwk:
        jwk = load_jwk(header["jwk"])
        check_key(jwk, alg)

    url = header.get("url")
    if not isinstance(url, str):
        raise AcmeProblem.malformed("the protected header needs a url string")
    request_nonce = header.get("nonce")
    if nonce and request_nonce is None:
        raise AcmeProblem.bad_nonce("the protected header has no nonce")
    if not nonce and request_nonce is not None:
        raise AcmeProblem.malformed("an inner JWS must not carry a nonce")
    if request_nonce is not None:
        # RFC 8555 6.5.2: a nonce that is not base64url is malformed, not merely stale.
        _b64decode(_string(request_nonce, "nonce"), "nonce")
        if not request_nonce:
            raise AcmeProblem.bad_nonce("the nonce is empty")

    payload = _b64decode(payload_b64, "payload")
    payload_json: Mapping[str, Any] | None = None
    if payload:
        decoded = _load_json(payload, "payload")
        if not isinstance(decoded, dict):
            raise AcmeProblem.malformed("the payload must be a JSON object (or empty)")
        payload_json = MappingProxyType(decoded)

    return ParsedRequest(
        alg=alg,
        protected=MappingProxyType(header),
        jwk=jwk,
        kid=kid,
        url=url,
        nonce=request_nonce,
        payload=payload,
        payload_json=payload_json,
        signing_input=f"{protected_b64}.{payload_b64}".encode("ascii"),
        signature=signature,
    )


def _signature_ok(algorithm: jwa.JWASignature, key: Any, parsed: ParsedRequest) -> bool:
    """josepy's verification over the signing input exactly as received (RFC 7515 5.2)."""
    try:
        return bool(algorithm.verify(key=key, msg=parsed.signing_input, sig=parsed.signature))
    except (ValueError, TypeError, InvalidSignature, JoseError):
        return False


def _load_json(data: bytes, what: str) -> object:
    """Strict JSON: UTF-8, no duplicate members, no NaN/Infinity; malformed otherwise."""
    try:
        return json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError) as error:
        raise AcmeProblem.malformed(f"{what} is not valid JSON: {error}") from None


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member names")
    return result


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise AcmeProblem.malformed(f"JWS {what} must be a string")
    return value


def _b64decode(text: str, what: str) -> bytes:
    """base64url without padding, strictly: josepy would skip stray characters."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise AcmeProblem.malformed(f"JWS {what} is not base64url")
    return b64.b64decode(text)


def _b64s(data: bytes) -> str:
    return b64.b64encode(data).decode("ascii")


def _require(value: _T | None) -> _T:
    """Narrow an Optional that the parse step guarantees is set."""
    if value is None:  # pragma: no cover - parse_request guarantees it
        raise AcmeProblem.server_internal()
    return value
