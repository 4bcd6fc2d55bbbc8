"""x-forwarded-client-cert: writing our element, reading others', choosing what goes upstream."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from cryptography import x509
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tlsgate.ca import CertificateAuthority
from tlsgate.errors import TlsgateError
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.mtls.xfcc import FORWARD_MODES, XfccError, element, outgoing, parse

from .helpers import forge, identity, issued, subject, usage

SVID = "spiffe://example.org/ns/prod/sa/web"
BY = "spiffe://example.org/ns/edge/sa/tlsgate"
HASH = "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688"


def _identity(
    subject: str = "CN=web", uris: tuple[str, ...] = (), dns: tuple[str, ...] = ()
) -> ClientIdentity:
    return ClientIdentity(
        HASH, subject, None, uris, dns, (), (), 1, datetime(2030, 1, 1, tzinfo=UTC)
    )


# ---------------------------------------------------------------------------------------------
# Our element
# ---------------------------------------------------------------------------------------------


def test_element_of_an_svid_from_our_ca(ca: CertificateAuthority, now: datetime) -> None:
    der = issued(ca, now, SVID)
    digest = hashlib.sha256(der).hexdigest()
    who = ClientIdentity.from_der(der)
    assert element(who, by=BY) == f'By={BY};Hash={digest};Subject="";URI={SVID}'
    assert element(who) == f'Hash={digest};Subject="";URI={SVID}'


def test_element_keys_in_order_one_pair_per_san(ca: CertificateAuthority, now: datetime) -> None:
    sans: list[x509.GeneralName] = [
        x509.DNSName("api.internal"),
        x509.UniformResourceIdentifier("urn:a"),
        x509.DNSName("api2.internal"),
        x509.UniformResourceIdentifier("urn:b"),
    ]
    name = subject(cn=["api"], ou=["payments"], o=["Acme, Inc."])
    who = ClientIdentity.from_der(forge(ca, now, name=name, sans=sans, key_usage=usage()))
    assert element(who, by=BY) == (
        f'By={BY};Hash={who.sha256};Subject="CN=api,OU=payments,O=Acme\\\\, Inc.";'
        "URI=urn:a;URI=urn:b;DNS=api.internal;DNS=api2.internal"
    )


@pytest.mark.parametrize(
    ("uri", "written"),
    [
        ("urn:plain", "URI=urn:plain"),
        ("https://x/?a=1", 'URI="https://x/?a=1"'),  # "=" quotes
        ("urn:a,b", 'URI="urn:a,b"'),
        ("urn:a;b", 'URI="urn:a;b"'),
        ('urn:a"b', 'URI="urn:a\\"b"'),
        ("urn:a\\b", "URI=urn:a\\b"),  # a backslash alone needs no quotes
        ('urn:a\\"', 'URI="urn:a\\\\\\""'),  # ... but inside quotes it is escaped too
        (" urn:a", 'URI=" urn:a"'),  # blanks at the ends would be stripped by a reader
        ("urn:a\r\nX-Evil: 1", "URI=urn:a%0D%0AX-Evil: 1"),  # never a line break in a header
    ],
)
def test_quoting(uri: str, written: str) -> None:
    assert element(_identity(uris=(uri,))) == f'Hash={HASH};Subject="CN=web";{written}'


def test_a_subject_with_a_quote_and_a_backslash() -> None:
    # RFC 4514 already escaped the quote; both backslash and quote are escaped again inside ours.
    text = element(_identity(subject='CN=a\\"b'))
    assert text == f'Hash={HASH};Subject="CN=a\\\\\\"b"'
    assert parse(text) == [{"Hash": [HASH], "Subject": ['CN=a\\"b']}]


def test_a_subject_control_character_becomes_an_rfc4514_escape() -> None:
    assert element(_identity(subject="CN=a\nb")) == f'Hash={HASH};Subject="CN=a\\\\0Ab"'


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

# Envoy's documented examples.
ENVOY_ONE = (
    f"By=http://frontend.lyft.com;Hash={HASH};"
    'Subject="/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client";URI=http://testclient.lyft.com'
)
ENVOY_TWO = (
    f"By=http://frontend.lyft.com;Hash={HASH};URI=http://testclient.lyft.com,"
    f"By=http://backend.lyft.com;Hash={HASH};URI=http://frontend.lyft.com"
)
ENVOY_DNS = ENVOY_ONE + ";DNS=lyft.com;DNS=www.lyft.com"


def test_envoy_examples() -> None:
    assert parse(ENVOY_ONE) == [
        {
            "By": ["http://frontend.lyft.com"],
            "Hash": [HASH],
            "Subject": ["/C=US/ST=CA/L=San Francisco/OU=Lyft/CN=Test Client"],
            "URI": ["http://testclient.lyft.com"],
        }
    ]
    assert parse(ENVOY_TWO) == [
        {"By": ["http://frontend.lyft.com"], "Hash": [HASH], "URI": ["http://testclient.lyft.com"]},
        {"By": ["http://backend.lyft.com"], "Hash": [HASH], "URI": ["http://frontend.lyft.com"]},
    ]
    assert parse(ENVOY_DNS)[0]["DNS"] == ["lyft.com", "www.lyft.com"]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("", []),
        (" , ,", []),  # empty list elements are ignored (RFC 9110 5.6.1)
        ("a=1,,b=2", [{"a": ["1"]}, {"b": ["2"]}]),
        ("a=1;;b=2;", [{"a": ["1"], "b": ["2"]}]),
        (" a = 1 ; b=2 , c=3", [{"a": ["1"], "b": ["2"]}, {"c": ["3"]}]),
        ("a=", [{"a": [""]}]),
        ('a=""', [{"a": [""]}]),
        ("a=x=y", [{"a": ["x=y"]}]),  # only the first "=" separates
        ('a="x,y;z=\\"q\\""', [{"a": ['x,y;z="q"']}]),
        ('a="\\\\";b=1', [{"a": ["\\"], "b": ["1"]}]),
        ('a=" x " ;b=1', [{"a": [" x "], "b": ["1"]}]),
        ("a=b\\c", [{"a": ["b\\c"]}]),
        ("a=1;a=2", [{"a": ["1", "2"]}]),
    ],
)
def test_parse(value: str, parsed: list[dict[str, list[str]]]) -> None:
    assert parse(value) == parsed


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("Hash", "a pair without '=' (at character 4)"),
        ("a=1;b", "a pair without '=' (at character 5)"),
        ("=1", "no key (at character 0)"),
        ("a b=1", "a key must be a token (letters, digits, -, ...) (at character 3)"),
        ('"a"=1', "a key must be a token (letters, digits, -, ...) (at character 3)"),
        ('a="1', "a quoted value is not closed (at character 4)"),
        ('a="1\\', "a quoted value is not closed (at character 5)"),
        ('a="1\\"', "a quoted value is not closed (at character 6)"),
        ('a="1"x', "text after a quoted value (at character 5)"),
        ('a=1"x"', "a quote inside an unquoted value (at character 3)"),
        ("a=1\r\nb=2", "a control character"),
        ("a=\x00", "a control character"),
        ("a=\x7f", "a control character"),
    ],
)
def test_malformed(value: str, what: str) -> None:
    with pytest.raises(XfccError) as info:
        parse(value)
    assert str(info.value) == f"malformed x-forwarded-client-cert: {what}"
    assert isinstance(info.value, TlsgateError)


#: What needs quoting or escaping (a tab is a control character: it is escaped, see above).
_TRICKY = st.text(alphabet=st.sampled_from(',;="\\ ab=Z\u00e9/:'), max_size=20)
_VALUE = st.one_of(_TRICKY, st.text(max_size=20).filter(str.isprintable))


@given(subject=_VALUE, uris=st.lists(_VALUE, max_size=3), dns=st.lists(_VALUE, max_size=3))
@example(subject='CN=a\\,b\\;c=d\\"e\\\\', uris=['urn:"x"'], dns=["a=b"])
@example(subject="\\", uris=["\\"], dns=[" "])
def test_parse_reads_back_element(subject: str, uris: list[str], dns: list[str]) -> None:
    who = _identity(subject, tuple(uris), tuple(dns))
    expected: dict[str, list[str]] = {"By": [BY], "Hash": [HASH], "Subject": [subject]}
    if uris:
        expected["URI"] = uris
    if dns:
        expected["DNS"] = dns
    assert parse(element(who, by=BY)) == [expected]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cn=_TRICKY.filter(bool), ou=_TRICKY.filter(bool))
def test_real_subjects_read_back(ca: CertificateAuthority, now: datetime, cn: str, ou: str) -> None:
    """What RFC 4514 makes of ``,;="`` in a real certificate survives the header intact."""
    who = ClientIdentity.from_der(forge(ca, now, name=subject(cn=[cn], ou=[ou]), key_usage=usage()))
    assert parse(element(who))[0]["Subject"] == [who.subject]
    assert x509.Name.from_rfc4514_string(who.subject) == subject(cn=[cn], ou=[ou])


# ---------------------------------------------------------------------------------------------
# What goes upstream
# ---------------------------------------------------------------------------------------------

FORGED = b'Hash=0000;Subject="CN=admin";URI=spiffe://example.org/ns/ops/sa/root'


@pytest.mark.parametrize(
    ("mode", "incoming", "with_identity", "expected"),
    [
        ("sanitize", [FORGED], True, None),
        ("sanitize", [FORGED], False, None),
        ("sanitize_set", [FORGED], True, "OURS"),
        ("sanitize_set", [FORGED], False, None),
        ("sanitize_set", [], True, "OURS"),
        ("forward", [FORGED], True, FORGED.decode()),
        ("forward", [FORGED], False, None),  # a client without a certificate forwards nothing
        ("forward", [], True, None),
        ("forward", [b"a=1", b"b=2,c=3"], True, "a=1,b=2,c=3"),
        ("append_forward", [FORGED], True, FORGED.decode() + ",OURS"),
        ("append_forward", [FORGED], False, None),
        ("append_forward", [], True, "OURS"),
        # malformed values are dropped whole, never passed on
        ("forward", [b'a="x', FORGED], True, FORGED.decode()),
        ("forward", [b"a=1;junk"], True, None),
        ("forward", [b"a=\xff"], True, None),  # not UTF-8
        ("append_forward", [b'a="1,2', b"x=1"], True, "x=1,OURS"),
        # what is kept is re-written, not copied
        ("forward", [b' a = 1 ;; b="x" ,'], True, "a=1;b=x"),
        ("forward", [b'Subject=plain;URI="urn:x"'], True, 'Subject="plain";URI=urn:x'),
    ],
)
def test_outgoing(
    ca: CertificateAuthority,
    now: datetime,
    mode: str,
    incoming: list[bytes],
    with_identity: bool,
    expected: str | None,
) -> None:
    who = identity(ca, now, SVID) if with_identity else None
    result = outgoing(mode, incoming, who, by=BY)
    if expected is None:
        assert result is None
    else:
        assert who is not None
        assert result == expected.replace("OURS", element(who, by=BY)).encode()


def test_outgoing_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown x-forwarded-client-cert mode 'forward_only'"):
        outgoing("forward_only", [], None)


def test_forward_modes() -> None:
    assert FORWARD_MODES == ("sanitize", "sanitize_set", "forward", "append_forward")


_HEADER_BYTES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([FORGED, ENVOY_ONE.encode(), ENVOY_TWO.encode(), b""]),
)


@given(incoming=st.lists(_HEADER_BYTES, max_size=4), anonymous=st.booleans())
def test_no_incoming_value_survives_sanitize(incoming: list[bytes], anonymous: bool) -> None:
    who = None if anonymous else _identity(uris=(SVID,))
    assert outgoing("sanitize", incoming, who) is None
    ours = outgoing("sanitize_set", incoming, who, by=BY)
    assert ours == (None if who is None else element(who, by=BY).encode())


@given(incoming=st.lists(_HEADER_BYTES, max_size=4), mode=st.sampled_from(FORWARD_MODES))
def test_whatever_comes_in_what_goes_out_reads_cleanly(incoming: list[bytes], mode: str) -> None:
    result = outgoing(mode, incoming, _identity(uris=(SVID,)))
    if result is not None:
        text = result.decode("utf-8")
        assert text.isprintable()  # no line break, no NUL: a single, valid header value
        parsed = parse(text)
        assert parsed  # and never an empty one
        if mode in ("sanitize_set", "append_forward"):
            assert parsed[-1]["URI"] == [SVID]
