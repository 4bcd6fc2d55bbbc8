"""A verified client certificate -> ClientIdentity (tlsgate.mtls.identity)."""

from __future__ import annotations

import hashlib
from datetime import datetime

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tlsgate.ca import CertificateAuthority
from tlsgate.errors import TlsgateError
from tlsgate.mtls.identity import ClientIdentity, IdentityError
from tlsgate.pki.info import CertInfo

from .helpers import forge, identity, issued, subject, usage

SVID = "spiffe://example.org/ns/prod/sa/web"


def test_a_spiffe_certificate_from_our_ca(ca: CertificateAuthority, now: datetime) -> None:
    der = issued(ca, now, SVID)
    info = CertInfo.of(x509.load_der_x509_certificate(der))
    assert ClientIdentity.from_der(der) == ClientIdentity(
        sha256=hashlib.sha256(der).hexdigest(),
        subject="",  # an X.509-SVID names its holder in the URI alone
        spiffe_id=SVID,
        uris=(SVID,),
        dns=(),
        common_names=(),
        organizational_units=(),
        serial=info.serial,
        not_after=info.not_after,
    )
    assert info.sha256 == hashlib.sha256(der).hexdigest()


def test_a_dns_certificate_from_our_ca(ca: CertificateAuthority, now: datetime) -> None:
    found = identity(ca, now, "billing.svc.internal", "API.Internal")
    assert (found.subject, found.common_names) == (
        "CN=billing.svc.internal",
        ("billing.svc.internal",),
    )
    assert (found.dns, found.uris, found.spiffe_id) == (
        ("billing.svc.internal", "api.internal"),
        (),
        None,
    )


def test_dns_names_are_lower_cased(ca: CertificateAuthority, now: datetime) -> None:
    der = forge(ca, now, sans=[x509.DNSName("API.Svc.Internal")], key_usage=usage())
    assert ClientIdentity.from_der(der).dns == ("api.svc.internal",)


def test_subject_cn_and_ou(ca: CertificateAuthority, now: datetime) -> None:
    name = subject(cn=["billing"], ou=["payments", "eu"], o=["Acme"])
    found = ClientIdentity.from_der(forge(ca, now, name=name, key_usage=usage()))
    assert found.subject == "CN=billing,OU=eu,OU=payments,O=Acme"
    assert found.common_names == ("billing",)
    assert found.organizational_units == ("payments", "eu")
    assert (found.dns, found.uris, found.spiffe_id) == ((), (), None)


def test_a_subject_cannot_carry_a_line_break_or_control_character(
    ca: CertificateAuthority, now: datetime
) -> None:
    name = subject(cn=["a\nb\r\x7f\u2028c"])
    found = ClientIdentity.from_der(forge(ca, now, name=name, key_usage=usage()))
    # RFC 4514 hex pairs (of the UTF-8 bytes): still a valid string for the same name.
    assert found.subject == "CN=a\\0Ab\\0D\\7F\\E2\\80\\A8c"
    assert found.common_names == ("a\nb\r\x7f\u2028c",)  # the value itself, for exact matching


@pytest.mark.parametrize(
    ("uris", "is_ca", "key_usage", "spiffe_id"),
    [
        ([SVID], False, usage(), SVID),
        ([SVID, "https://example.org/"], False, usage(), None),  # exactly one URI SAN
        (["https://example.org/", SVID], False, usage(), None),
        ([SVID], True, usage(), None),  # a CA is never an SVID leaf
        ([SVID], False, None, None),  # no keyUsage: digitalSignature is missing
        ([SVID], False, usage(sign=False), None),
        ([SVID], False, usage(cert_sign=True), None),
        ([SVID], False, usage(crl_sign=True), None),
        (["spiffe://example.org/ns/"], False, usage(), None),  # not a valid SPIFFE ID
        (["spiffe://Example.org/ns"], False, usage(), None),
        (["SPIFFE://example.org/ns"], False, usage(), None),  # not canonical
        (["spiffe://example.org"], False, usage(), "spiffe://example.org"),
    ],
)
def test_spiffe_id_only_from_a_valid_x509_svid(
    ca: CertificateAuthority,
    now: datetime,
    uris: list[str],
    is_ca: bool,
    key_usage: x509.KeyUsage | None,
    spiffe_id: str | None,
) -> None:
    sans = [x509.UniformResourceIdentifier(u) for u in uris]
    found = ClientIdentity.from_der(forge(ca, now, sans=sans, is_ca=is_ca, key_usage=key_usage))
    assert found.spiffe_id == spiffe_id
    assert found.uris == tuple(uris)  # all of them, whatever the SVID verdict


@pytest.mark.parametrize("der", [b"", b"junk", b"\x30\x03\x02\x01\x01"])
def test_undecodable_der_is_an_identity_error(der: bytes) -> None:
    with pytest.raises(IdentityError, match=r"^cannot read the client certificate: "):
        ClientIdentity.from_der(der)
    assert issubclass(IdentityError, TlsgateError)


def test_a_truncated_certificate_is_an_identity_error(
    ca: CertificateAuthority, now: datetime
) -> None:
    der = issued(ca, now, SVID)
    for cut in (1, len(der) // 2, len(der) - 1):
        with pytest.raises(IdentityError):
            ClientIdentity.from_der(der[:cut])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cn=st.text(min_size=1, max_size=30), ou=st.text(min_size=1, max_size=30))
def test_any_subject_reads_back_printable(
    ca: CertificateAuthority, now: datetime, cn: str, ou: str
) -> None:
    try:
        name = subject(cn=[cn], ou=[ou])
        der = forge(ca, now, name=name, key_usage=usage())
    except ValueError:  # cryptography refuses some strings (lone surrogates): nothing to read
        return
    found = ClientIdentity.from_der(der)
    assert found.subject.isprintable()
    assert (found.common_names, found.organizational_units) == ((cn,), (ou,))
