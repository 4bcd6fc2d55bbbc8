"""AcmeProblem: RFC 8555 error URNs, statuses and the problem+json body."""

from __future__ import annotations

import json

import pytest
from acme import messages

from tlsgate.acme.problems import CONTENT_TYPE, AcmeProblem
from tlsgate.errors import TlsgateError


@pytest.mark.parametrize(
    ("problem", "code", "status"),
    [
        (AcmeProblem.bad_nonce(), "badNonce", 400),
        (AcmeProblem.malformed("x"), "malformed", 400),
        (AcmeProblem.malformed("x", status=415), "malformed", 415),
        (AcmeProblem.unauthorized("x"), "unauthorized", 403),
        (AcmeProblem.account_does_not_exist(), "accountDoesNotExist", 400),
        (AcmeProblem.rejected_identifier("x"), "rejectedIdentifier", 400),
        (AcmeProblem.unsupported_identifier("x"), "unsupportedIdentifier", 400),
        (AcmeProblem.bad_csr("x"), "badCSR", 400),
        (AcmeProblem.order_not_ready(), "orderNotReady", 403),
        (AcmeProblem.bad_signature_algorithm("x", ["ES256"]), "badSignatureAlgorithm", 400),
        (AcmeProblem.bad_public_key("x"), "badPublicKey", 400),
        (AcmeProblem.external_account_required(), "externalAccountRequired", 403),
        (AcmeProblem.rate_limited("x"), "rateLimited", 429),
        (AcmeProblem.server_internal(), "serverInternal", 500),
        (AcmeProblem.already_revoked(), "alreadyRevoked", 400),
        (AcmeProblem.bad_revocation_reason("x"), "badRevocationReason", 400),
        (
            AcmeProblem.user_action_required("x", instance="https://ca/tos"),
            "userActionRequired",
            403,
        ),
        (AcmeProblem.challenge_failed("connection", "x"), "connection", 400),
        (AcmeProblem.challenge_failed("dns", "x"), "dns", 400),
        (AcmeProblem.challenge_failed("tls", "x"), "tls", 400),
        (AcmeProblem.challenge_failed("incorrectResponse", "x"), "incorrectResponse", 400),
        (AcmeProblem.challenge_failed("unauthorized", "x"), "unauthorized", 403),
        (AcmeProblem.caa("x"), "caa", 403),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_factories_name_rfc_type_and_status(problem: AcmeProblem, code: str, status: int) -> None:
    assert isinstance(problem, TlsgateError)
    assert problem.type == f"urn:ietf:params:acme:error:{code}"
    assert problem.status == status
    body = json.loads(problem.to_json())
    assert body["type"] == problem.type
    assert body["status"] == status
    assert body["detail"] == problem.detail == str(problem)


def test_content_type_is_problem_json() -> None:
    assert CONTENT_TYPE == "application/problem+json"


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not an ACME error code"):
        AcmeProblem("noSuchThing")
    with pytest.raises(ValueError, match="not a challenge error code"):
        AcmeProblem.challenge_failed("malformed", "x")


def test_default_detail_comes_from_acme_table() -> None:
    assert AcmeProblem("dnssec").detail == messages.ERROR_CODES["dnssec"]


def test_rate_limited_carries_retry_after() -> None:
    problem = AcmeProblem.rate_limited("slow down", retry_after=30)
    assert problem.headers == {"Retry-After": "30"}
    assert AcmeProblem.rate_limited("slow down").headers == {}


def test_bad_signature_algorithm_lists_algorithms() -> None:
    problem = AcmeProblem.bad_signature_algorithm("no", ["ES256", "RS256"])
    assert json.loads(problem.to_json())["algorithms"] == ["ES256", "RS256"]


def test_user_action_required_has_instance_and_tos_link() -> None:
    problem = AcmeProblem.user_action_required(
        "agree", instance="https://ca/agree", terms_of_service="https://ca/tos"
    )
    assert json.loads(problem.to_json())["instance"] == "https://ca/agree"
    assert problem.headers["Link"] == '<https://ca/tos>;rel="terms-of-service"'


def test_compound_lists_subproblems_with_identifiers() -> None:
    ident = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="bad.example")
    problem = AcmeProblem.compound(
        "some names refused", [(ident, AcmeProblem.rejected_identifier("outside policy"))]
    )
    body = json.loads(problem.to_json())
    assert body["type"] == "urn:ietf:params:acme:error:compound"
    assert body["status"] == 400
    assert body["subproblems"] == [
        {
            "type": "urn:ietf:params:acme:error:rejectedIdentifier",
            "detail": "outside policy",
            "identifier": {"type": "dns", "value": "bad.example"},
        }
    ]


def test_to_error_round_trips_through_acme_client_type() -> None:
    ident = messages.Identifier(typ=messages.IDENTIFIER_FQDN, value="a.example")
    problem = AcmeProblem.compound("x", [(ident, AcmeProblem.caa("CAA forbids"))])
    error = problem.to_error()
    assert error.code == "compound"
    assert error.detail == "x"
    assert error.subproblems is not None
    assert error.subproblems[0].code == "caa"
    assert messages.is_acme_error(error)
