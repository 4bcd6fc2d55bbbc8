"""Identity strings -> X.509 names, and name constraints (tlsgate.pki.names)."""

from __future__ import annotations

import ipaddress
import string
from datetime import UTC, datetime

import pytest
from cryptography import x509
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tlsgate.errors import InvalidIdentity, PKIError, PolicyDenied
from tlsgate.pki.keys import generate_key
from tlsgate.pki.names import (
    NameConstraints,
    check_constraints,
    display_name,
    dns_matches,
    parse_dns_name,
    parse_host,
    parse_identities,
    parse_identity,
    parse_network,
    parse_spiffe_id,
)
from tlsgate.pki.profiles import build_intermediate, build_root

NOW = datetime(2025, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

_ALNUM = string.ascii_letters + string.digits
#: [A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])? built directly (much cheaper than from_regex).
_LDH_LABEL = st.one_of(
    st.sampled_from(_ALNUM),
    st.builds(
        lambda first, middle, last: first + middle + last,
        st.sampled_from(_ALNUM),
        st.text(_ALNUM + "-", max_size=61),
        st.sampled_from(_ALNUM),
    ),
)
_TLD = _LDH_LABEL.filter(lambda label: not label.isdigit())


@st.composite
def hostnames(draw: st.DrawFn, min_labels: int = 1, max_labels: int = 4, max_len: int = 253) -> str:
    """A valid LDH host name in mixed case: labels <= 63, total <= max_len, TLD not all-numeric."""
    labels = draw(st.lists(_LDH_LABEL, min_size=min_labels - 1, max_size=max_labels - 1))
    name = ".".join([*labels, draw(_TLD)])
    assume(len(name) <= max_len)
    return name


_IDENTITY_ALPHABET = (
    "abzAZ09-._*@:/[]%?#~+=& \t\n\r\x00\x7f"
    "\u00fc\u00df\u00e9"  # ü ß é: ordinary IDNA letters
    "\u3002\uff0e\uff45\ufb01\u00ad\u200d"  # CJK/full-width dots, full-width e, fi, SHY, ZWJ
)
_PREFIXES = st.sampled_from(
    [
        "",
        "spiffe://",
        "SPIFFE://",
        "spiffe://td/",
        "https://",
        "x://",
        "[",
        "*.",
        "ops@",
        "xn--",
        "::",
        "10.0.0.",
        "fe80::1%",
    ]
)
#: Arbitrary text plus text built from the characters the parser branches on, so the fuzz
#: properties reach the URI, SPIFFE, e-mail, IP and IDNA paths and not only the DNS rejection.
identity_texts = st.one_of(
    st.text(),
    st.builds(lambda p, s: p + s, _PREFIXES, st.text(alphabet=_IDENTITY_ALPHABET, max_size=40)),
)


# ---------------------------------------------------------------------------------------------
# DNS names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("example.com", "example.com"),
        ("WWW.Example.COM", "www.example.com"),
        ("  example.com\t", "example.com"),
        ("example.com.", "example.com"),
        ("localhost", "localhost"),
        ("123.example", "123.example"),
        ("1e100.net", "1e100.net"),
        ("a-b--c.example", "a-b--c.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        ("*.example.com", "*.example.com"),
        ("*.Example.Com.", "*.example.com"),
    ],
)
def test_parse_dns_name_accepts(text: str, expected: str) -> None:
    assert parse_dns_name(text) == expected
    assert parse_identity(text) == x509.DNSName(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty name"),
        ("   ", "empty name"),
        (".", "empty name"),
        ("example..com", "empty label"),
        (".example.com", "empty label"),
        ("example.com..", "empty label"),
        ("-ab.example", "inner hyphens"),
        ("ab-.example", "inner hyphens"),
        ("a_b.example", "inner hyphens"),
        ("exa mple.com", "inner hyphens"),
        ("example.com:443", "inner hyphens"),
        ("a" * 64 + ".com", "at most 63 characters"),
        ("example.123", "last label cannot be all digits"),
        ("1.2.3", "last label cannot be all digits"),
        ("256.1.1.1", "last label cannot be all digits"),
        ("010.0.0.1", "last label cannot be all digits"),
        # "$" in a regex also matches before a trailing newline: these used to be accepted.
        ("example\n.com", "inner hyphens"),
        ("example.com\n.", "inner hyphens"),
    ],
)
def test_parse_dns_name_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        parse_dns_name(text)
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


def _name_of_length(length: int) -> str:
    """``aaa...a.bbb...b.example`` of exactly ``length`` characters, every label <= 63."""
    labels: list[str] = []
    remaining = length - len(".example")
    while remaining > 0:
        size = min(63, remaining)
        if remaining - size == 1:  # avoid a leftover that would need an empty label
            size -= 1
        labels.append("a" * size)
        remaining -= size + 1
    name = ".".join([*labels, "example"])
    assert len(name) == length
    return name


def test_name_length_limit_is_253() -> None:
    longest = _name_of_length(253)
    assert parse_dns_name(longest) == longest
    assert parse_dns_name(longest + ".") == longest  # the root dot does not count
    with pytest.raises(InvalidIdentity, match="longer than 253"):
        parse_dns_name(_name_of_length(254))
    with pytest.raises(InvalidIdentity, match="longer than 253"):
        parse_identity("*." + _name_of_length(252))


# ---------------------------------------------------------------------------------------------
# IDNA
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alabel", "shown"),
    [
        ("bücher.example", "xn--bcher-kva.example", "bücher.example"),
        ("BÜCHER.Example", "xn--bcher-kva.example", "bücher.example"),
        ("*.bücher.example", "*.xn--bcher-kva.example", "*.bücher.example"),
        ("例え.jp", "xn--r8jz45g.jp", "例え.jp"),
        ("straße.de", "xn--strae-oqa.de", "straße.de"),  # IDNA 2008: ß is kept, not "ss"
        ("xn--bcher-kva.example", "xn--bcher-kva.example", "bücher.example"),
        ("\ufb01.example", "fi.example", "fi.example"),  # UTS 46 maps the ligature
    ],
)
def test_idna_names(text: str, alabel: str, shown: str) -> None:
    name = parse_identity(text)
    assert name == x509.DNSName(alabel)
    assert display_name(name) == shown
    assert parse_identity(display_name(name)) == name


@pytest.mark.parametrize(
    "text",
    [
        "\u00ad.example",  # soft hyphen maps to nothing: empty label
        "a\u3002b.example",  # the ideographic full stop becomes a dot inside one label
        "ü" * 60 + ".example",  # the A-label is longer than 63
        "\u0301a.example",  # a label cannot start with a combining mark
    ],
)
def test_invalid_idna_rejected(text: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


def test_display_name_keeps_undecodable_a_labels() -> None:
    for value in ("xn--zz.example", "*.xn--zz.example"):
        assert display_name(x509.DNSName(value)) == value


def test_display_name_other_types() -> None:
    assert display_name(x509.DNSName("example.com")) == "example.com"
    assert display_name(parse_identity("[::1]")) == "::1"
    assert display_name(parse_identity("127.0.0.1")) == "127.0.0.1"
    assert display_name(parse_identity("ops@bücher.example")) == "ops@xn--bcher-kva.example"
    assert display_name(parse_identity("spiffe://td/a")) == "spiffe://td/a"


# ---------------------------------------------------------------------------------------------
# Wildcards
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["*.example.com", "*.a.b.example.com", "*.xn--bcher-kva.example"])
def test_wildcard_accepted(text: str) -> None:
    assert parse_identity(text) == x509.DNSName(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("*", "at least two labels"),
        ("*.com", "at least two labels"),
        ("*.com.", "at least two labels"),
        ("*.*.com", "whole left-most label"),
        ("*.*.example.com", "whole left-most label"),
        ("a.*.com", "whole left-most label"),
        ("f*o.example.com", "whole left-most label"),
        ("*foo.example.com", "whole left-most label"),
        ("foo*.example.com", "whole left-most label"),
        ("**.example.com", "whole left-most label"),
        ("example.*", "whole left-most label"),
    ],
)
def test_wildcard_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        parse_identity(text)


def test_wildcard_not_allowed_when_disabled() -> None:
    with pytest.raises(InvalidIdentity, match="not allowed"):
        parse_dns_name("*.example.com", allow_wildcard=False)
    with pytest.raises(InvalidIdentity, match="not allowed"):
        parse_identity("ops@*.example.com")


# ---------------------------------------------------------------------------------------------
# IP addresses and ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        (" 10.1.2.3 ", "10.1.2.3"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("[2001:db8:0:0:0:0:0:1]", "2001:db8::1"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
        ("[192.0.2.1]", "192.0.2.1"),
    ],
)
def test_ip_addresses(text: str, address: str) -> None:
    assert parse_identity(text) == x509.IPAddress(ipaddress.ip_address(address))


@pytest.mark.parametrize("text", ["[::1", "::1]", "[]", "1.2.3.4.5", "::g", "2001:db8:::1"])
def test_malformed_addresses_rejected(text: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


@pytest.mark.parametrize("text", ["fe80::1%eth0", "[fe80::1%25]", "fe80::1%1"])
def test_ipv6_zone_rejected(text: str) -> None:
    # The SAN encoding has no room for a zone: it used to be dropped silently.
    with pytest.raises(InvalidIdentity, match="zone"):
        parse_identity(text)


@pytest.mark.parametrize("text", ["10.0.0.0/8", "192.168.1.1/32", "2001:db8::/32", "::/0"])
def test_cidr_is_not_a_certificate_name(text: str) -> None:
    with pytest.raises(InvalidIdentity, match="network range"):
        parse_identity(text)


def test_parse_network() -> None:
    assert parse_network("10.0.0.0/8") == ipaddress.ip_network("10.0.0.0/8")
    assert parse_network(" 10.0.0.1 ") == ipaddress.ip_network("10.0.0.1/32")
    assert parse_network("2001:db8::/32") == ipaddress.ip_network("2001:db8::/32")
    for bad in ("10.0.0.1/8", "example.com", "10.0.0.0/33", ""):
        with pytest.raises(InvalidIdentity, match="network range"):
            parse_network(bad)


# ---------------------------------------------------------------------------------------------
# E-mail
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ops@example.com", "ops@example.com"),
        ("Ops.Team+alerts@Example.COM", "Ops.Team+alerts@example.com"),
        ("ops@bücher.example", "ops@xn--bcher-kva.example"),
        ("o'brien!#$%&*/=?^_`{|}~-@example.com", "o'brien!#$%&*/=?^_`{|}~-@example.com"),
        ("ops@example.com.", "ops@example.com"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
    ],
)
def test_email_accepted(text: str, expected: str) -> None:
    assert parse_identity(text) == x509.RFC822Name(expected)


@pytest.mark.parametrize(
    "text",
    [
        "@example.com",
        "ops@",
        "a b@example.com",
        "a@b@example.com",
        "a..b@example.com",
        ".ops@example.com",
        "ops.@example.com",
        "ops\n@example.com",
        '"quoted"@example.com',
        "x" * 65 + "@example.com",
        "ops@example.123",
        "ops@exa_mple.com",
        "ops@[192.0.2.1]",
        "ops@*.example.com",
    ],
)
def test_email_rejected(text: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


# ---------------------------------------------------------------------------------------------
# URIs and SPIFFE IDs
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "https://example.com/",
        "https://example.com/path?q=1#frag",
        "http://[::1]:8080/x",
        "ldap://ldap.example.com/cn=x,dc=example",
        "urn+x://opaque",
    ],
)
def test_generic_uri_kept_verbatim(text: str) -> None:
    assert parse_identity(text) == x509.UniformResourceIdentifier(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x://", "incomplete"),
        ("https://exa mple.com/", "ASCII without spaces"),
        ("https://bücher.example/", "ASCII without spaces"),
        ("https://example.com/\x00", "ASCII without spaces"),
        ("https://example.com/a\tb", "ASCII without spaces"),
        # urlsplit raises ValueError on these: it used to escape as a bare ValueError.
        ("https://[foo/", "not a valid URI"),
        ("https://[abc]/", "not a valid URI"),
    ],
)
def test_generic_uri_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        parse_identity(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spiffe://prod.example/ns/web/sa/api", "spiffe://prod.example/ns/web/sa/api"),
        ("spiffe://example.org", "spiffe://example.org"),
        ("spiffe://td_1.example-2/A.b_C-9", "spiffe://td_1.example-2/A.b_C-9"),
        ("spiffe://td/..a/b..", "spiffe://td/..a/b.."),  # only "." and ".." themselves are bad
        ("SPIFFE://td/Path", "spiffe://td/Path"),  # the scheme is case-insensitive
    ],
)
def test_spiffe_id_accepted(text: str, expected: str) -> None:
    assert parse_spiffe_id(text) == expected
    assert parse_identity(text) == x509.UniformResourceIdentifier(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("spiffe://Prod.example/x", "trust domain must be lower-case"),
        ("spiffe://bücher.example/x", "trust domain must be lower-case"),
        ("spiffe://td!/x", "trust domain must be lower-case"),
        ("spiffe:///x", "trust domain must be lower-case"),
        ("spiffe://td/", "trailing slash"),
        ("spiffe://td/a/", "trailing slash"),
        ("spiffe://td//a", "empty, '.' or '..'"),
        ("spiffe://td/a//b", "empty, '.' or '..'"),
        ("spiffe://td/.", "empty, '.' or '..'"),
        ("spiffe://td/a/./b", "empty, '.' or '..'"),
        ("spiffe://td/a/../b", "empty, '.' or '..'"),
        ("spiffe://td/a%20b", "path segments may hold only"),
        ("spiffe://td/a:b", "path segments may hold only"),
        ("spiffe://td/ü", "path segments may hold only"),
        ("spiffe://td/a?x=1", "no query or fragment"),
        ("spiffe://td/a?", "no query or fragment"),
        ("spiffe://td/a#frag", "no query or fragment"),
        ("spiffe://td#", "no query or fragment"),
        ("spiffe://td:8443/a", "no user, password or port"),
        ("spiffe://td:/a", "no user, password or port"),
        ("spiffe://user@td/a", "no user, password or port"),
        ("spiffe://user:pw@td/a", "no user, password or port"),
        ("spiffe://[::1]/a", "no user, password or port"),
        # urlsplit used to drop the tab / newline silently and return a different ID.
        ("spiffe://td/a\tb", "spaces or control characters"),
        ("spiffe://t\nd/a", "spaces or control characters"),
        ("spiffe://td/a b", "spaces or control characters"),
        ("spiffe://[td/a", "not a valid URI"),
    ],
)
def test_spiffe_id_rejected(text: str, message: str) -> None:
    with pytest.raises(InvalidIdentity, match=message):
        parse_spiffe_id(text)
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


def test_parse_spiffe_id_needs_the_spiffe_scheme() -> None:
    for text in ("https://td/a", "td/a", ""):
        with pytest.raises(InvalidIdentity, match="starts with spiffe://"):
            parse_spiffe_id(text)


# ---------------------------------------------------------------------------------------------
# parse_identities
# ---------------------------------------------------------------------------------------------


def test_parse_identities_deduplicates_keeping_order() -> None:
    names = parse_identities(
        [
            "www.example.com",
            "127.0.0.1",
            "WWW.Example.com.",
            "bücher.example",
            "[::1]",
            "xn--bcher-kva.example",
            "::1",
            "0:0:0:0:0:0:0:1",
            "www.example.com",
        ]
    )
    assert names == [
        x509.DNSName("www.example.com"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("xn--bcher-kva.example"),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]


def test_parse_identities_needs_a_name() -> None:
    with pytest.raises(InvalidIdentity, match="no names given"):
        parse_identities([])


def test_parse_identities_propagates_a_bad_name() -> None:
    with pytest.raises(InvalidIdentity, match=r"\*\.com"):
        parse_identities(["example.com", "*.com"])


def test_spiffe_certificate_carries_one_uri() -> None:
    svid = "spiffe://prod.example/ns/web"
    assert parse_identities([svid, "web.example", "10.0.0.1"])[0] == x509.UniformResourceIdentifier(
        svid
    )
    # The same SPIFFE ID twice is one URI after de-duplication.
    assert len(parse_identities([svid, "SPIFFE://prod.example/ns/web"])) == 1
    # Two plain URIs are fine.
    assert len(parse_identities(["https://a.example/", "https://b.example/"])) == 2
    for other in ("https://web.example/", "spiffe://prod.example/ns/api"):
        with pytest.raises(InvalidIdentity, match="exactly one URI"):
            parse_identities([svid, other])
        with pytest.raises(InvalidIdentity, match="exactly one URI"):
            parse_identities([other, svid])


def test_empty_identity() -> None:
    for text in ("", " ", "\t\n"):
        with pytest.raises(InvalidIdentity, match="empty name"):
            parse_identity(text)


# ---------------------------------------------------------------------------------------------
# Properties: parsing
# ---------------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(hostnames())
@example("A" * 63 + ".b")
@example("x")
def test_property_hostname_parses_to_lower_case(host: str) -> None:
    parsed = parse_dns_name(host)
    assert parsed == host.lower()
    assert parse_dns_name(parsed) == parsed
    assert parse_identity(host) == x509.DNSName(parsed)
    assert parse_identity(parsed) == parse_identity(host)
    assert parse_dns_name(host + ".") == parsed


@settings(max_examples=200)
@given(st.ip_addresses())
def test_property_ip_address_parses_to_itself(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    expected = x509.IPAddress(address)
    assert parse_identity(str(address)) == expected
    assert parse_identity(address.exploded) == expected
    assert parse_identity(f" {address} ") == expected
    if isinstance(address, ipaddress.IPv6Address):
        assert parse_identity(f"[{address}]") == expected
        assert parse_identity(str(address).upper()) == expected
    assert parse_identity(display_name(expected)) == expected


_UNICODE_LABEL = st.text(
    st.characters(categories=["Ll", "Lu", "Lo", "Nd", "Mn"]), min_size=1, max_size=12
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_UNICODE_LABEL, min_size=1, max_size=2), st.booleans())
def test_property_idn_display_round_trip(labels: list[str], wildcard: bool) -> None:
    """Whatever IDN name is accepted is shown in a form that parses back to the same A-label."""
    text = ("*." if wildcard else "") + ".".join([*labels, "example"])
    try:
        name = parse_identity(text)
    except InvalidIdentity:
        return
    assert isinstance(name, x509.DNSName)
    assert name.value.isascii()
    assert parse_identity(display_name(name)) == name


@settings(max_examples=150)
@given(hostnames(min_labels=2, max_len=251))
def test_property_wildcard_over_two_labels_accepted(base: str) -> None:
    assert parse_identity("*." + base) == x509.DNSName("*." + base.lower())
    with pytest.raises(InvalidIdentity):
        parse_dns_name("*." + base, allow_wildcard=False)


@settings(max_examples=100)
@given(hostnames(max_labels=1))
def test_property_wildcard_over_one_label_rejected(tld: str) -> None:
    with pytest.raises(InvalidIdentity, match="at least two labels"):
        parse_identity("*." + tld)


@settings(max_examples=500)
@given(identity_texts)
@example("https://[foo/")
@example("spiffe://[td/x")
@example("example\n.com")
@example("a\n@example.com")
@example("spiffe://td/a\tb")
@example("fe80::1%eth0")
@example("https://a\uff03b/")
def test_property_parse_identity_fuzz(text: str) -> None:
    """Any text is either a name a certificate can carry or InvalidIdentity, nothing else."""
    try:
        name = parse_identity(text)
    except InvalidIdentity:
        return
    assert isinstance(
        name, x509.DNSName | x509.IPAddress | x509.RFC822Name | x509.UniformResourceIdentifier
    )
    if not isinstance(name, x509.IPAddress):
        value = name.value
        assert value.isascii() and value.isprintable(), value
        assert not any(c.isspace() for c in value), value
    else:
        assert isinstance(name.value, ipaddress.IPv4Address | ipaddress.IPv6Address)
    # What we print for a name parses back to the same name.
    assert parse_identity(display_name(name)) == name
    assert parse_identities([text, display_name(name)]) == [name]


@settings(max_examples=300)
@given(identity_texts)
def test_property_parse_dns_name_and_spiffe_fuzz(text: str) -> None:
    try:
        dns = parse_dns_name(text)
    except InvalidIdentity:
        pass
    else:
        assert parse_dns_name(dns) == dns
        assert dns.isascii() and len(dns) <= 253
    try:
        spiffe = parse_spiffe_id(text)
    except InvalidIdentity:
        pass
    else:
        assert parse_spiffe_id(spiffe) == spiffe
        assert spiffe.isascii() and spiffe.isprintable() and " " not in spiffe


# ---------------------------------------------------------------------------------------------
# dns_matches / NameConstraints / check_constraints
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "suffix", "expected"),
    [
        ("example.com", "example.com", True),
        ("www.example.com", "example.com", True),
        ("a.b.example.com", "example.com", True),
        ("*.example.com", "example.com", True),
        ("*.www.example.com", "example.com", True),
        ("anything.com", "com", True),
        ("badexample.com", "example.com", False),
        ("example.com", "www.example.com", False),
        ("*.example.com", "www.example.com", False),
        ("example.org", "example.com", False),
        ("com", "example.com", False),
    ],
)
def test_dns_matches(name: str, suffix: str, expected: bool) -> None:
    assert dns_matches(name, suffix) is expected


def test_name_constraints_build_canonicalises() -> None:
    nc = NameConstraints.build(
        permit_dns=["Example.COM.", "bücher.example"],
        exclude_dns=["Secret.Example.com"],
        permit_ip=["10.0.0.0/8", "2001:db8::1"],
        exclude_ip=[" 10.9.0.0/16 "],
    )
    assert nc.permitted_dns == ("example.com", "xn--bcher-kva.example")
    assert nc.excluded_dns == ("secret.example.com",)
    assert nc.permitted_ip == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::1/128"),
    )
    assert nc.excluded_ip == (ipaddress.ip_network("10.9.0.0/16"),)
    assert nc.describe() == [
        "permit DNS example.com",
        "permit DNS xn--bcher-kva.example",
        "permit IP 10.0.0.0/8",
        "permit IP 2001:db8::1/128",
        "exclude DNS secret.example.com",
        "exclude IP 10.9.0.0/16",
    ]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"permit_dns": ["*.example.com"]},
        {"exclude_dns": ["example..com"]},
        {"permit_ip": ["10.0.0.1/8"]},
        {"exclude_ip": ["example.com"]},
    ],
)
def test_name_constraints_build_rejects(kwargs: dict[str, list[str]]) -> None:
    with pytest.raises(InvalidIdentity):
        NameConstraints.build(**kwargs)


def test_name_constraints_truthiness() -> None:
    assert not NameConstraints()
    assert not NameConstraints.build()
    assert NameConstraints.build(permit_dns=["example.com"])
    assert NameConstraints.build(exclude_dns=["example.com"])
    assert NameConstraints.build(permit_ip=["10.0.0.0/8"])
    assert NameConstraints.build(exclude_ip=["10.0.0.0/8"])


def test_name_constraints_extension() -> None:
    ext = NameConstraints.build(permit_dns=["example.com"], exclude_ip=["10.0.0.0/8"]).extension()
    assert ext.permitted_subtrees == [x509.DNSName("example.com")]
    assert ext.excluded_subtrees == [x509.IPAddress(ipaddress.ip_network("10.0.0.0/8"))]
    ext = NameConstraints.build(exclude_dns=["example.com"]).extension()
    assert ext.permitted_subtrees is None
    assert ext.excluded_subtrees == [x509.DNSName("example.com")]


def test_name_constraints_from_certificate_round_trip() -> None:
    key = generate_key()
    root = build_root(key, "Test Root", now=NOW)
    assert NameConstraints.from_certificate(root) == NameConstraints()
    constraints = NameConstraints.build(
        permit_dns=["example.com", "example.org"],
        exclude_dns=["secret.example.com"],
        permit_ip=["10.0.0.0/8", "2001:db8::/32"],
        exclude_ip=["10.9.0.0/16"],
    )
    intermediate = build_intermediate(
        root, key, generate_key().public_key(), "Test CA", now=NOW, constraints=constraints
    )
    assert NameConstraints.from_certificate(intermediate) == constraints


def _denied(names: list[x509.GeneralName], constraints: NameConstraints) -> bool:
    try:
        check_constraints(names, constraints)
    except PolicyDenied:
        return True
    return False


PERMIT_EXAMPLE = NameConstraints.build(permit_dns=["example.com"])
EXCLUDE_SECRET = NameConstraints.build(exclude_dns=["secret.example.com"])
PERMIT_TEN = NameConstraints.build(permit_ip=["10.0.0.0/8"])
EXCLUDE_TEN_NINE = NameConstraints.build(exclude_ip=["10.9.0.0/16"])


@pytest.mark.parametrize(
    ("constraints", "text", "denied"),
    [
        (PERMIT_EXAMPLE, "example.com", False),
        (PERMIT_EXAMPLE, "www.example.com", False),
        (PERMIT_EXAMPLE, "*.example.com", False),
        (PERMIT_EXAMPLE, "badexample.com", True),
        (PERMIT_EXAMPLE, "example.org", True),
        (PERMIT_EXAMPLE, "ops@example.com", False),
        (PERMIT_EXAMPLE, "ops@mail.example.com", False),
        (PERMIT_EXAMPLE, "ops@evil.example", True),
        (PERMIT_EXAMPLE, "10.0.0.1", False),  # no IP constraint: IPs are unconstrained
        (PERMIT_EXAMPLE, "spiffe://elsewhere/x", False),  # URIs are a different name type
        (EXCLUDE_SECRET, "secret.example.com", True),
        (EXCLUDE_SECRET, "a.secret.example.com", True),
        (EXCLUDE_SECRET, "*.secret.example.com", True),
        (EXCLUDE_SECRET, "www.example.com", False),
        (EXCLUDE_SECRET, "ops@secret.example.com", False),  # exclusions apply to DNS names
        # *.example.com also stands for secret.example.com; Chrome rejects it under this CA.
        (EXCLUDE_SECRET, "*.example.com", True),
        (EXCLUDE_SECRET, "*.other.example.com", False),
        (PERMIT_TEN, "10.1.2.3", False),
        (PERMIT_TEN, "192.168.0.1", True),
        (PERMIT_TEN, "::ffff:10.0.0.1", True),
        (PERMIT_TEN, "::1", True),
        (PERMIT_TEN, "example.com", False),
        (EXCLUDE_TEN_NINE, "10.9.255.255", True),
        (EXCLUDE_TEN_NINE, "10.10.0.1", False),
        (NameConstraints(), "*.anything.example", False),
    ],
)
def test_check_constraints(constraints: NameConstraints, text: str, denied: bool) -> None:
    assert _denied([parse_identity(text)], constraints) is denied


def test_check_constraints_messages() -> None:
    with pytest.raises(PolicyDenied, match=r"example\.org is outside .*\(example\.com\)"):
        check_constraints([parse_identity("example.org")], PERMIT_EXAMPLE)
    with pytest.raises(PolicyDenied, match=r"secret\.example\.com is excluded"):
        check_constraints([parse_identity("secret.example.com")], EXCLUDE_SECRET)
    with pytest.raises(PolicyDenied, match=r"192\.168\.0\.1 is outside .*10\.0\.0\.0/8"):
        check_constraints([parse_identity("192.168.0.1")], PERMIT_TEN)
    with pytest.raises(PolicyDenied, match=r"10\.9\.0\.1 is excluded"):
        check_constraints([parse_identity("10.9.0.1")], EXCLUDE_TEN_NINE)
    # The first offending name is reported, after good ones.
    with pytest.raises(PolicyDenied, match=r"example\.net"):
        check_constraints(parse_identities(["a.example.com", "example.net"]), PERMIT_EXAMPLE)
    assert issubclass(PolicyDenied, PKIError)


# ---------------------------------------------------------------------------------------------
# Properties: constraints
# ---------------------------------------------------------------------------------------------


@st.composite
def names_and_suffixes(draw: st.DrawFn) -> tuple[str, str, bool | None, bool]:
    """(name, suffix, is the name inside the suffix's subtree, does a wildcard cover the suffix).

    The name is built relative to the suffix so both outcomes are common; ``None`` means the
    relation is not known by construction.
    """
    suffix = draw(hostnames(max_labels=3, max_len=120))
    prefix = draw(st.lists(_LDH_LABEL, max_size=2))
    kind = draw(st.sampled_from(["below", "lookalike", "unrelated", "wildcard", "sibling"]))
    inside: bool | None
    covers = False
    if kind == "below":
        name, inside = ".".join([*prefix, suffix]), True
    elif kind == "lookalike":
        name, inside = draw(_LDH_LABEL) + suffix, False
    elif kind == "unrelated":
        name, inside = draw(hostnames()), None
    elif kind == "wildcard":
        name, inside = "*." + ".".join([*prefix, suffix]), True
    else:
        # *.example.com next to the suffix foo.example.com: outside it, but it covers it.
        parent = suffix.partition(".")[2]
        name, inside, covers = "*." + parent, False, True
    try:
        name = parse_dns_name(name)
        suffix = parse_dns_name(suffix, allow_wildcard=False)
    except InvalidIdentity:
        assume(False)
    return name, suffix, inside, covers


@settings(max_examples=300)
@given(names_and_suffixes())
def test_property_check_constraints_consistent_with_dns_matches(
    case: tuple[str, str, bool | None, bool],
) -> None:
    name, suffix, inside, covers = case
    matches = dns_matches(name, suffix)
    if inside is not None:
        assert matches is inside
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    assert _denied(names, NameConstraints(permitted_dns=(suffix,))) is not matches
    wildcard_covers = name.startswith("*.") and name[2:] == suffix.partition(".")[2]
    assert wildcard_covers or not covers
    assert _denied(names, NameConstraints(excluded_dns=(suffix,))) is (matches or wildcard_covers)
    # Two suffixes: permitted if either matches, excluded if either matches.
    other = "unrelated-" + suffix
    assert _denied(names, NameConstraints(permitted_dns=(other, suffix))) is (
        not (matches or dns_matches(name, other))
    )


@settings(max_examples=200)
@given(st.ip_addresses(), st.ip_addresses(), st.integers(0, 128))
def test_property_ip_constraints_follow_network_membership(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    base: ipaddress.IPv4Address | ipaddress.IPv6Address,
    prefix: int,
) -> None:
    network = ipaddress.ip_network(f"{base}/{min(prefix, base.max_prefixlen)}", strict=False)
    if prefix % 2:  # half the time, put the address inside the network
        address = network[min(prefix, network.num_addresses - 1)]
    names: list[x509.GeneralName] = [x509.IPAddress(address)]
    inside = address in network
    assert _denied(names, NameConstraints(permitted_ip=(network,))) is not inside
    assert _denied(names, NameConstraints(excluded_ip=(network,))) is inside


@pytest.mark.parametrize("text", ["xn--zz.example", "a.xn--.example"])
def test_invalid_a_labels_rejected(text: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_identity(text)


def test_leading_dot_constraint_covers_only_subdomains() -> None:
    assert dns_matches("a.example.com", ".example.com")
    assert dns_matches("*.example.com", ".example.com")
    assert not dns_matches("example.com", ".example.com")
    assert not dns_matches("badexample.com", ".example.com")


def test_spiffe_length_limits() -> None:
    with pytest.raises(InvalidIdentity, match="255"):
        parse_spiffe_id("spiffe://" + "a" * 256 + "/x")
    with pytest.raises(InvalidIdentity, match="2048"):
        parse_spiffe_id("spiffe://td/" + "/".join(["seg"] * 600))


def test_localhost_certificates_cover_the_loopback_addresses() -> None:
    from tlsgate.pki.names import with_loopback

    assert with_loopback(["localhost", "app.test"]) == ["localhost", "app.test", "127.0.0.1", "::1"]
    assert with_loopback(["app.test"]) == ["app.test"]


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("Example.COM.", "example.com"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_parse_host(text: str, host: str) -> None:
    assert parse_host(text) == host


@pytest.mark.parametrize("text", ["*.example.com", "", "exa mple.com", "[::1]"])
def test_parse_host_refuses(text: str) -> None:
    with pytest.raises(InvalidIdentity):
        parse_host(text)
