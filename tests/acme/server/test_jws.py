"""Request authentication: real JWS from josepy/acme, every refusal with its RFC 8555 type."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

import pytest
from acme import jws as acme_jws
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from josepy import b64, jwa
from josepy.json_util import decode_b64jose
from josepy.jwk import JWK, JWKEC, JWKRSA

from tlsgate.acme.jose import CONTENT_TYPE, key_authorization, thumbprint
from tlsgate.acme.problems import AcmeProblem
from tlsgate.acme.server.jws import (
    JWKOKP,
    MAX_BODY,
    KeyRule,
    VerifiedRequest,
    load_jwk,
    parse_request,
    verify_external_account_binding,
    verify_key_change,
    verify_request,
)
from tlsgate.acme.server.nonces import NonceBook

T0 = datetime(2026, 1, 1, tzinfo=UTC)
BASE = "https://ca.test/acme"
NEW_ACCOUNT = f"{BASE}/new-account"
ORDER = f"{BASE}/order/7"
KEY_CHANGE = f"{BASE}/key-change"
ACCOUNT = f"{BASE}/acct/1"


@cache
def key(name: str) -> JWK:
    """Private keys by name, generated once per run (RSA generation is slow)."""
    if name in ("p256", "p256b"):
        return JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    if name == "p384":
        return JWKEC(key=ec.generate_private_key(ec.SECP384R1()))
    if name == "p521":
        return JWKEC(key=ec.generate_private_key(ec.SECP521R1()))
    if name == "rsa2048":
        return JWKRSA(key=rsa.generate_private_key(65537, 2048))
    if name == "rsa1024":
        return JWKRSA(key=rsa.generate_private_key(65537, 1024))
    if name == "ed25519":
        return JWKOKP(key=ed25519.Ed25519PrivateKey.generate())
    raise KeyError(name)


def enc(data: bytes) -> str:
    return b64.b64encode(data).decode()


def public_json(name: str) -> dict[str, Any]:
    jobj: dict[str, Any] = key(name).public_key().to_json()
    return jobj


def jws_doc(
    signer: JWK | bytes,
    alg: jwa.JWASignature,
    protected: Mapping[str, Any],
    payload: bytes | str = b"",
) -> dict[str, str]:
    """A flattened JWS built by hand (any header at all), signed with josepy's algorithms."""
    protected_b64 = enc(json.dumps(protected).encode())
    payload_b64 = payload if isinstance(payload, str) else enc(payload)
    signing_key = signer if isinstance(signer, bytes) else signer.key
    signature = alg.sign(signing_key, f"{protected_b64}.{payload_b64}".encode())
    return {"protected": protected_b64, "payload": payload_b64, "signature": enc(signature)}


def body_of(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def alg_of(name: str) -> jwa.JWASignature:
    return jwa.JWASignature.from_json(
        {"p256": "ES256", "p384": "ES384", "rsa2048": "RS256", "ed25519": "EdDSA"}[name]
    )


class Server:
    """The verifier with its nonce book and one account (key ``p256`` at ACCOUNT)."""

    def __init__(self) -> None:
        self.book = NonceBook()
        self.accounts: dict[str, JWK] = {ACCOUNT: key("p256").public_key()}

    def nonce(self) -> str:
        return self.book.issue(T0)

    def lookup(self, kid: str) -> JWK:
        if kid not in self.accounts:
            raise AcmeProblem.account_does_not_exist(f"no account {kid}")
        return self.accounts[kid]

    def verify(
        self,
        body: bytes,
        *,
        url: str = NEW_ACCOUNT,
        rule: KeyRule = KeyRule.JWK,
        content_type: str | None = CONTENT_TYPE,
    ) -> VerifiedRequest:
        return verify_request(
            body,
            url=url,
            content_type=content_type,
            rule=rule,
            nonces=self.book,
            now=T0,
            account_key=self.lookup,
        )

    def jwk_header(self, name: str = "p256", **overrides: Any) -> dict[str, Any]:
        header = {
            "alg": alg_of(name).name,
            "jwk": public_json(name),
            "nonce": self.nonce(),
            "url": NEW_ACCOUNT,
        }
        header.update(overrides)
        return header

    def kid_header(self, name: str = "p256", **overrides: Any) -> dict[str, Any]:
        header = {"alg": alg_of(name).name, "kid": ACCOUNT, "nonce": self.nonce(), "url": ORDER}
        header.update(overrides)
        return header


@pytest.fixture
def server() -> Server:
    return Server()


def refused(code: str, call: Callable[[], object], status: int | None = None) -> AcmeProblem:
    with pytest.raises(AcmeProblem) as caught:
        call()
    assert caught.value.code == code, caught.value
    if status is not None:
        assert caught.value.status == status
    return caught.value


NEW_ACCOUNT_PAYLOAD = json.dumps({"termsOfServiceAgreed": True}).encode()


# --- acceptance ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["p256", "p384", "rsa2048", "ed25519"])
def test_acme_client_jws_accepted_for_each_algorithm(server: Server, name: str) -> None:
    nonce = server.nonce()
    signed = acme_jws.JWS.sign(
        NEW_ACCOUNT_PAYLOAD, key=key(name), alg=alg_of(name), nonce=decode_b64jose(nonce),
        url=NEW_ACCOUNT,
    )  # fmt: skip
    verified = server.verify(signed.json_dumps().encode())
    assert verified.payload_json == {"termsOfServiceAgreed": True}
    assert thumbprint(verified.jwk) == thumbprint(key(name).public_key())
    assert verified.kid is None
    assert verified.url == NEW_ACCOUNT
    assert verified.nonce == nonce
    assert verified.protected["alg"] == alg_of(name).name
    assert not verified.is_post_as_get


def test_kid_request_uses_account_key(server: Server) -> None:
    nonce = server.nonce()
    signed = acme_jws.JWS.sign(
        b'{"identifiers": []}', key=key("p256"), alg=jwa.ES256, nonce=decode_b64jose(nonce),
        url=ORDER, kid=ACCOUNT,
    )  # fmt: skip
    verified = server.verify(signed.json_dumps().encode(), url=ORDER, rule=KeyRule.KID)
    assert verified.kid == ACCOUNT
    assert verified.payload_json == {"identifiers": []}


def test_post_as_get_has_empty_payload(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.kid_header(), b""))
    verified = server.verify(body, url=ORDER, rule=KeyRule.KID)
    assert verified.is_post_as_get
    assert verified.payload == b""
    assert verified.payload_json is None


@pytest.mark.parametrize("by_kid", [True, False])
def test_revoke_cert_accepts_either_reference(server: Server, by_kid: bool) -> None:
    if by_kid:
        header = server.kid_header(url=f"{BASE}/revoke")
    else:
        header = server.jwk_header("ed25519", url=f"{BASE}/revoke")
    signer = key("p256") if by_kid else key("ed25519")
    body = body_of(jws_doc(signer, jwa.JWASignature.from_json(header["alg"]), header, b"{}"))
    verified = server.verify(body, url=f"{BASE}/revoke", rule=KeyRule.EITHER)
    assert (verified.kid is not None) is by_kid


def test_media_type_parameters_are_tolerated(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}"))
    server.verify(body, content_type="Application/JOSE+JSON; charset=utf-8")


# --- refusals: the envelope ----------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "application/json", "text/plain", ""])
def test_wrong_content_type_is_415(server: Server, content_type: str | None) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}"))
    refused("malformed", lambda: server.verify(body, content_type=content_type), status=415)


def test_oversize_body(server: Server) -> None:
    payload = json.dumps({"pad": "x" * MAX_BODY}).encode()
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), payload))
    problem = refused("malformed", lambda: server.verify(body), status=413)
    assert "too large" in problem.detail


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b"\xff\xfe{}", b"[]", b'"jws"', b"NaN", b'{"a": 1, "a": 2}'],
)
def test_garbage_body_is_malformed(server: Server, body: bytes) -> None:
    refused("malformed", lambda: server.verify(body))


def test_general_serialization_is_refused(server: Server) -> None:
    doc = jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}")
    general = {
        "payload": doc["payload"],
        "signatures": [{"protected": doc["protected"], "signature": doc["signature"]}],
    }
    refused("malformed", lambda: server.verify(body_of(general)))


def test_unprotected_header_is_refused(server: Server) -> None:
    doc: dict[str, Any] = jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}")
    doc["header"] = {"kid": ACCOUNT}
    refused("malformed", lambda: server.verify(body_of(doc)))


def test_unknown_member_is_refused(server: Server) -> None:
    doc: dict[str, Any] = jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}")
    doc["extra"] = 1
    refused("malformed", lambda: server.verify(body_of(doc)))


@pytest.mark.parametrize("member", ["protected", "payload", "signature"])
def test_members_must_be_base64url_strings(server: Server, member: str) -> None:
    doc: dict[str, Any] = jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}")
    for bad in ("not base64!", 5, "a"):
        refused("malformed", lambda: server.verify(body_of({**doc, member: bad})))  # noqa: B023


def test_duplicate_protected_member_is_refused(server: Server) -> None:
    header = json.dumps(server.jwk_header())[:-1] + ', "url": "https://evil.test/"}'
    protected_b64 = enc(header.encode())
    payload_b64 = enc(b"{}")
    sig = jwa.ES256.sign(key("p256").key, f"{protected_b64}.{payload_b64}".encode())
    doc = {"protected": protected_b64, "payload": payload_b64, "signature": enc(sig)}
    refused("malformed", lambda: server.verify(body_of(doc)))


def test_crit_is_refused(server: Server) -> None:
    header = server.jwk_header(crit=["b64"], b64=False)
    refused("malformed", lambda: server.verify(body_of(jws_doc(key("p256"), jwa.ES256, header))))


# --- refusals: algorithm and key -----------------------------------------------------------------


def test_alg_none_is_refused(server: Server) -> None:
    header = server.jwk_header(alg="none")
    doc = {"protected": enc(json.dumps(header).encode()), "payload": enc(b"{}"), "signature": ""}
    problem = refused("badSignatureAlgorithm", lambda: server.verify(body_of(doc)))
    assert problem.extra["algorithms"] == ["ES256", "ES384", "RS256", "EdDSA"]


def test_hs256_account_jws_is_refused(server: Server) -> None:
    mac = b"k" * 32
    header = server.kid_header(alg="HS256")
    body = body_of(jws_doc(mac, jwa.HS256, header, b"{}"))
    refused("badSignatureAlgorithm", lambda: server.verify(body, url=ORDER, rule=KeyRule.KID))


@pytest.mark.parametrize("alg", ["RS512", "PS256", "ES512", "HS512", "", None, 256])
def test_other_algorithms_are_refused(server: Server, alg: object) -> None:
    header = server.jwk_header(alg=alg)
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("badSignatureAlgorithm", lambda: server.verify(body))


def test_missing_alg_is_refused(server: Server) -> None:
    header = server.jwk_header()
    del header["alg"]
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("badSignatureAlgorithm", lambda: server.verify(body))


@pytest.mark.parametrize(
    ("alg", "name"), [("ES256", "rsa2048"), ("ES256", "p384"), ("ES384", "p256"),
                      ("RS256", "p256"), ("EdDSA", "p256"), ("ES256", "ed25519")],
)  # fmt: skip
def test_key_type_must_match_alg(server: Server, alg: str, name: str) -> None:
    header = server.jwk_header(name, alg=alg)
    body = body_of(jws_doc(key(name), alg_of(name), header, b"{}"))
    refused("badSignatureAlgorithm", lambda: server.verify(body))


def test_rsa_1024_is_refused(server: Server) -> None:
    header = server.jwk_header("rsa2048", jwk=key("rsa1024").public_key().to_json())
    body = body_of(jws_doc(key("rsa1024"), jwa.RS256, header, b"{}"))
    problem = refused("badPublicKey", lambda: server.verify(body))
    assert "1024" in problem.detail


def test_p521_is_refused(server: Server) -> None:
    header = server.jwk_header(alg="ES512", jwk=key("p521").public_key().to_json())
    body = body_of(jws_doc(key("p521"), jwa.ES512, header, b"{}"))
    refused("badSignatureAlgorithm", lambda: server.verify(body))  # ES512 is not offered
    header = server.jwk_header(alg="ES256", jwk=key("p521").public_key().to_json())
    body = body_of(jws_doc(key("p521"), jwa.ES512, header, b"{}"))
    refused("badPublicKey", lambda: server.verify(body))


@pytest.mark.parametrize("name", ["p256", "rsa2048", "ed25519"])
def test_jwk_with_private_parts_is_refused(server: Server, name: str) -> None:
    header = server.jwk_header(name, jwk=key(name).to_json())
    assert "d" in header["jwk"]
    body = body_of(jws_doc(key(name), alg_of(name), header, b"{}"))
    problem = refused("malformed", lambda: server.verify(body))
    assert "private" in problem.detail


@pytest.mark.parametrize(
    ("jwk", "code"),
    [
        ({"kty": "oct", "k": "c2VjcmV0"}, "malformed"),  # a MAC key is private by nature
        ({"kty": "XYZ"}, "badPublicKey"),
        ({"kty": "OKP", "crv": "X25519", "x": enc(b"\x01" * 32)}, "badPublicKey"),
        ({"kty": "EC", "crv": "P-192", "x": "AAAA", "y": "AAAA"}, "badPublicKey"),
        ({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}, "malformed"),
        ({"kty": "RSA", "n": 5}, "malformed"),
        ({"kty": "OKP", "crv": "Ed25519"}, "malformed"),
        ({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}, "malformed"),
        ("not an object", "malformed"),
    ],
)
def test_unusable_jwk_is_refused(server: Server, jwk: object, code: str) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(jwk=jwk), b"{}"))
    refused(code, lambda: server.verify(body))


# --- refusals: jwk / kid -------------------------------------------------------------------------


def test_both_jwk_and_kid_are_refused(server: Server) -> None:
    header = server.jwk_header(kid=ACCOUNT)
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    for rule in KeyRule:
        refused("malformed", lambda: server.verify(body, rule=rule))  # noqa: B023


def test_kid_where_jwk_is_required(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.kid_header(url=NEW_ACCOUNT), b"{}"))
    refused("malformed", lambda: server.verify(body, rule=KeyRule.JWK))


def test_jwk_where_kid_is_required(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(url=ORDER), b"{}"))
    refused("malformed", lambda: server.verify(body, url=ORDER, rule=KeyRule.KID))


def test_neither_jwk_nor_kid(server: Server) -> None:
    header = server.jwk_header()
    del header["jwk"]
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("malformed", lambda: server.verify(body, rule=KeyRule.EITHER))


def test_unknown_account(server: Server) -> None:
    header = server.kid_header(kid=f"{BASE}/acct/404")
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("accountDoesNotExist", lambda: server.verify(body, url=ORDER, rule=KeyRule.KID))


# --- refusals: signature, url, nonce -------------------------------------------------------------


def test_signed_by_other_key_than_jwk(server: Server) -> None:
    body = body_of(jws_doc(key("p256b"), jwa.ES256, server.jwk_header(), b"{}"))
    refused("malformed", lambda: server.verify(body))


def test_signed_by_other_key_than_account(server: Server) -> None:
    body = body_of(jws_doc(key("p256b"), jwa.ES256, server.kid_header(), b"{}"))
    refused("malformed", lambda: server.verify(body, url=ORDER, rule=KeyRule.KID))


def test_tampered_payload(server: Server) -> None:
    doc = jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b'{"a": 1}')
    doc["payload"] = enc(b'{"a": 2}')
    refused("malformed", lambda: server.verify(body_of(doc)))


def test_forged_request_does_not_burn_the_nonce(server: Server) -> None:
    header = server.jwk_header()
    forged = body_of(jws_doc(key("p256b"), jwa.ES256, header, b"{}"))
    refused("malformed", lambda: server.verify(forged))
    server.verify(body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}")))


def test_wrong_url(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}"))
    refused("unauthorized", lambda: server.verify(body, url=f"{NEW_ACCOUNT}/"), status=403)


@pytest.mark.parametrize("url", [None, 5])
def test_missing_url(server: Server, url: object) -> None:
    header = server.jwk_header(url=url)
    if url is None:
        del header["url"]
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("malformed", lambda: server.verify(body))


def test_replayed_nonce(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), b"{}"))
    server.verify(body)
    refused("badNonce", lambda: server.verify(body), status=400)


def test_unknown_nonce(server: Server) -> None:
    header = server.jwk_header(nonce="bm90LWlzc3VlZA")
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("badNonce", lambda: server.verify(body))


def test_missing_nonce(server: Server) -> None:
    header = server.jwk_header()
    del header["nonce"]
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("badNonce", lambda: server.verify(body))


@pytest.mark.parametrize("nonce", ["not+base64/", 7, "a"])
def test_nonce_not_base64url_is_malformed(server: Server, nonce: object) -> None:
    header = server.jwk_header(nonce=nonce)
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}"))
    refused("malformed", lambda: server.verify(body))


# --- refusals: payload ---------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"[1, 2]", b"42", b'"text"', b"null", b"{bad", b"\xff"])
def test_payload_must_be_json_object(server: Server, payload: bytes) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.jwk_header(), payload))
    refused("malformed", lambda: server.verify(body))


# --- thumbprints and key authorizations ----------------------------------------------------------


def test_thumbprint_rfc7638_example() -> None:
    jwk = load_jwk(
        {
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L"
            "6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65Y"
            "GjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-"
            "bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29",
        }
    )
    assert thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    assert key_authorization("tok", jwk) == "tok.NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_thumbprint_rfc8037_ed25519_example() -> None:
    jwk = load_jwk(
        {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    )
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_parse_request_is_exposed_for_async_front_ends(server: Server) -> None:
    header = server.kid_header()
    parsed = parse_request(
        body_of(jws_doc(key("p256"), jwa.ES256, header, b"{}")),
        content_type=CONTENT_TYPE,
        rule=KeyRule.KID,
    )
    assert parsed.kid == ACCOUNT
    assert parsed.jwk is None
    assert parsed.nonce == header["nonce"]


# --- keyChange (RFC 8555 7.3.5) ------------------------------------------------------------------


def key_change_body(
    server: Server,
    *,
    inner_header: Mapping[str, Any] | None = None,
    inner_payload: Mapping[str, Any] | None = None,
    inner_signer: str = "ed25519",
) -> bytes:
    """Outer JWS by the account key (p256) around an inner JWS by the new key (ed25519)."""
    header = {"alg": "EdDSA", "jwk": public_json("ed25519"), "url": KEY_CHANGE}
    if inner_header is not None:
        header = dict(inner_header)
    change = {"account": ACCOUNT, "oldKey": public_json("p256")}
    if inner_payload is not None:
        change = dict(inner_payload)
    inner = jws_doc(key(inner_signer), alg_of(inner_signer), header, json.dumps(change).encode())
    outer_header = server.kid_header(url=KEY_CHANGE)
    return body_of(jws_doc(key("p256"), jwa.ES256, outer_header, json.dumps(inner).encode()))


def change_key(server: Server, body: bytes, *, old: str = "p256") -> JWK:
    outer = server.verify(body, url=KEY_CHANGE, rule=KeyRule.KID)
    return verify_key_change(outer, KEY_CHANGE, ACCOUNT, key(old).public_key())


def test_key_change_happy_path(server: Server) -> None:
    new = change_key(server, key_change_body(server))
    assert thumbprint(new) == thumbprint(key("ed25519").public_key())


def test_key_change_inner_url_mismatch(server: Server) -> None:
    header = {"alg": "EdDSA", "jwk": public_json("ed25519"), "url": ORDER}
    body = key_change_body(server, inner_header=header)
    refused("unauthorized", lambda: change_key(server, body))


def test_key_change_inner_nonce_forbidden(server: Server) -> None:
    header = {"alg": "EdDSA", "jwk": public_json("ed25519"), "url": KEY_CHANGE, "nonce": "abcd"}
    refused("malformed", lambda: change_key(server, key_change_body(server, inner_header=header)))


def test_key_change_inner_needs_jwk(server: Server) -> None:
    header = {"alg": "EdDSA", "kid": ACCOUNT, "url": KEY_CHANGE}
    refused("malformed", lambda: change_key(server, key_change_body(server, inner_header=header)))


def test_key_change_inner_signed_by_other_key(server: Server) -> None:
    header = {"alg": "ES256", "jwk": public_json("p256b"), "url": KEY_CHANGE}
    body = key_change_body(server, inner_header=header, inner_signer="p256")
    refused("malformed", lambda: change_key(server, body))


def test_key_change_account_mismatch(server: Server) -> None:
    payload = {"account": f"{BASE}/acct/2", "oldKey": public_json("p256")}
    body = key_change_body(server, inner_payload=payload)
    refused("malformed", lambda: change_key(server, body))


def test_key_change_old_key_mismatch(server: Server) -> None:
    payload = {"account": ACCOUNT, "oldKey": public_json("p384")}
    body = key_change_body(server, inner_payload=payload)
    refused("malformed", lambda: change_key(server, body))


def test_key_change_payload_fields_required(server: Server) -> None:
    body = key_change_body(server, inner_payload={"account": ACCOUNT})
    refused("malformed", lambda: change_key(server, body))


def test_key_change_outer_not_by_old_key(server: Server) -> None:
    body = key_change_body(server)
    refused("unauthorized", lambda: change_key(server, body, old="p384"))


def test_key_change_needs_inner_jws(server: Server) -> None:
    body = body_of(jws_doc(key("p256"), jwa.ES256, server.kid_header(url=KEY_CHANGE), b""))
    refused("malformed", lambda: change_key(server, body))


def test_key_change_new_key_must_be_acceptable(server: Server) -> None:
    header = {"alg": "RS256", "jwk": key("rsa1024").public_key().to_json(), "url": KEY_CHANGE}
    body = key_change_body(server, inner_header=header, inner_signer="rsa2048")
    refused("badPublicKey", lambda: change_key(server, body))


# --- External Account Binding (RFC 8555 7.3.4) ---------------------------------------------------

MAC_KEY = b"an external account MAC key, 32B"


def eab_request(
    server: Server, binding: Mapping[str, Any] | None, *, account: str = "p256"
) -> VerifiedRequest:
    payload: dict[str, Any] = {"termsOfServiceAgreed": True}
    if binding is not None:
        payload["externalAccountBinding"] = binding
    header = server.jwk_header(account)
    body = body_of(jws_doc(key(account), alg_of(account), header, json.dumps(payload).encode()))
    return server.verify(body)


def acme_binding(*, mac: bytes = MAC_KEY, url: str = NEW_ACCOUNT, alg: str = "HS256") -> Any:
    """The binding exactly as acme's (certbot's) client builds it."""
    return messages.ExternalAccountBinding.from_data(
        key("p256").public_key(), "eab-1", enc(mac), messages.Directory({"newAccount": url}), alg
    )


def mac_keys(kid: str) -> bytes | None:
    return {"eab-1": MAC_KEY}.get(kid)


def no_keys(kid: str) -> bytes | None:
    return None


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_eab_happy_path(server: Server, alg: str) -> None:
    outer = eab_request(server, acme_binding(alg=alg))
    assert verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys) == "eab-1"


def test_eab_wrong_mac_key(server: Server) -> None:
    outer = eab_request(server, acme_binding(mac=b"x" * 32))
    refused("unauthorized", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys))


def test_eab_unknown_key_id(server: Server) -> None:
    outer = eab_request(server, acme_binding())
    refused("unauthorized", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, no_keys))


def test_eab_wrong_url(server: Server) -> None:
    outer = eab_request(server, acme_binding(url=ORDER))
    refused("unauthorized", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys))


@pytest.mark.parametrize("alg", ["ES256", "none", "RS256"])
def test_eab_wrong_alg(server: Server, alg: str) -> None:
    header = {"alg": alg, "kid": "eab-1", "url": NEW_ACCOUNT}
    if alg == "ES256":
        binding = jws_doc(key("p256"), jwa.ES256, header, json.dumps(public_json("p256")))
    else:
        binding = {"protected": enc(json.dumps(header).encode()), "payload": "", "signature": ""}
    outer = eab_request(server, binding)
    problem = refused(
        "badSignatureAlgorithm",
        lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys),
    )
    assert problem.extra["algorithms"] == ["HS256", "HS384", "HS512"]


def test_eab_binds_other_key(server: Server) -> None:
    outer = eab_request(server, acme_binding(), account="ed25519")
    refused("unauthorized", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys))


def test_eab_missing(server: Server) -> None:
    outer = eab_request(server, None)
    refused(
        "externalAccountRequired",
        lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys),
        status=403,
    )


def test_eab_nonce_forbidden(server: Server) -> None:
    header = {"alg": "HS256", "kid": "eab-1", "url": NEW_ACCOUNT, "nonce": "abcd"}
    binding = jws_doc(MAC_KEY, jwa.HS256, header, json.dumps(public_json("p256")).encode())
    outer = eab_request(server, binding)
    refused("malformed", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys))


def test_eab_not_an_object(server: Server) -> None:
    outer = eab_request(server, {"protected": 1})
    refused("malformed", lambda: verify_external_account_binding(outer, NEW_ACCOUNT, mac_keys))


# --- fuzz: nothing but AcmeProblem escapes -------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
B64 = st.binary(max_size=64).map(enc)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from(["ES256", "ES384", "RS256", "EdDSA", "HS256", "none"]) | JSON,
        "jwk": st.sampled_from(["p256", "p384", "rsa2048", "ed25519"]).map(public_json) | JSON,
        "kid": st.just(ACCOUNT) | JSON,
        "nonce": B64 | JSON,
        "url": st.just(NEW_ACCOUNT) | JSON,
        "crit": JSON,
    },
)
JWS_SHAPED = st.fixed_dictionaries(
    {
        "protected": HEADERS.map(lambda h: enc(json.dumps(h).encode())) | st.text(),
        "payload": B64 | st.just("") | JSON.map(lambda v: enc(json.dumps(v).encode())),
        "signature": B64 | JSON,
    },
    optional={"header": JSON, "signatures": JSON},
).map(lambda d: json.dumps(d).encode())


def inner_checks(outer: VerifiedRequest, url: str) -> None:
    """keyChange and EAB on an authenticated request: refusals must be AcmeProblems too."""
    try:
        verify_key_change(outer, url, ACCOUNT, key("p256").public_key())
    except AcmeProblem:
        pass
    try:
        verify_external_account_binding(outer, url, mac_keys)
    except AcmeProblem:
        pass


def only_problems(body: bytes) -> None:
    server = Server()
    for rule in KeyRule:
        try:
            outer = server.verify(body, url=NEW_ACCOUNT, rule=rule)
        except AcmeProblem:
            continue
        inner_checks(outer, NEW_ACCOUNT)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512) | JSON.map(lambda v: json.dumps(v).encode()) | JWS_SHAPED)
def test_fuzz_bodies_raise_only_acme_problems(body: bytes) -> None:
    only_problems(body)


@settings(max_examples=200, deadline=None)
@given(JSON, st.dictionaries(st.text(max_size=3), JSON, max_size=3))
def test_fuzz_inner_jws_raise_only_acme_problems(binding: Any, extra: dict[str, Any]) -> None:
    server = Server()
    payload = {"externalAccountBinding": binding, "account": ACCOUNT, **extra}
    header = server.kid_header(url=KEY_CHANGE)
    body = body_of(jws_doc(key("p256"), jwa.ES256, header, json.dumps(payload).encode()))
    inner_checks(server.verify(body, url=KEY_CHANGE, rule=KeyRule.KID), KEY_CHANGE)
