"""Allow lists, path rules and their decisions (tlsgate.mtls.policy)."""

from __future__ import annotations

import string
from datetime import datetime

import pytest
from cryptography import x509
from hypothesis import assume, example, given
from hypothesis import strategies as st

from tlsgate.ca import CertificateAuthority
from tlsgate.mtls.identity import ClientIdentity
from tlsgate.mtls.policy import (
    AllowList,
    Decision,
    PathRule,
    authorize,
    check_path_prefix,
    check_spiffe_pattern,
    match_spiffe,
    normalize_path,
)

from .helpers import forge, identity, subject, usage

WEB = "spiffe://example.org/ns/prod/sa/web"

# ---------------------------------------------------------------------------------------------
# SPIFFE patterns
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "canonical"),
    [
        (WEB, WEB),
        ("spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/*/sa/web"),
        ("spiffe://example.org/**", "spiffe://example.org/**"),
        ("spiffe://example.org/*/**", "spiffe://example.org/*/**"),
        ("spiffe://example.org", "spiffe://example.org"),
        ("SPIFFE://example.org/ns/*", "spiffe://example.org/ns/*"),
    ],
)
def test_valid_spiffe_patterns(pattern: str, canonical: str) -> None:
    assert check_spiffe_pattern(pattern) == canonical


NO_WILD_DOMAIN = "the trust domain cannot be a wildcard; write it out (spiffe://example.org/ns/*)"
WHOLE_SEGMENT = "a wildcard must be a whole path segment: '*' or a final '**'"
LOWER_DOMAIN = "the trust domain must be lower-case letters, digits, '.', '_' or '-'"


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("https://example.org/ns", "a SPIFFE pattern starts with spiffe://"),
        ("example.org/ns", "a SPIFFE pattern starts with spiffe://"),
        ("spiffe://*/ns", NO_WILD_DOMAIN),
        ("spiffe://*.example.org/ns", NO_WILD_DOMAIN),
        ("spiffe://example.org/**/web", "'**' can only be the last segment (like spiffe://example.org/ns/**)"),
        ("spiffe://example.org/ns/web-*", WHOLE_SEGMENT),
        ("spiffe://example.org/ns/***", WHOLE_SEGMENT),
        ("spiffe://example.org//ns", "empty, '.' or '..' path segment"),
        ("spiffe://example.org/ns/../x", "empty, '.' or '..' path segment"),
        ("spiffe://example.org/ns/", "a SPIFFE ID has no trailing slash"),
        ("spiffe://example.org/ns?x=1", "a SPIFFE ID has no query or fragment"),
        ("spiffe://example.org/ns#x", "a SPIFFE ID has no query or fragment"),
        ("spiffe://example.org:443/ns", "a SPIFFE trust domain has no user, password or port"),
        ("spiffe://Example.org/ns", LOWER_DOMAIN),
        ("spiffe:///ns", LOWER_DOMAIN),
        ("spiffe://example.org/n$", "path segments may hold only letters, digits, '.', '_' or '-'"),
        ("spiffe://example.org/a b", "a SPIFFE pattern has no spaces or control characters"),
        ("spiffe://example.org/**\n", "a SPIFFE pattern has no spaces or control characters"),
    ],
)  # fmt: skip
def test_invalid_spiffe_patterns_say_why(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        check_spiffe_pattern(pattern)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    ("pattern", "spiffe_id", "matches"),
    [
        (WEB, WEB, True),
        (WEB, WEB + "/x", False),
        (WEB, "spiffe://example.org/ns/prod/sa", False),
        (WEB, "spiffe://other.org/ns/prod/sa/web", False),  # trust domains match exactly
        ("spiffe://example.org/ns/*/sa/web", WEB, True),
        ("spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/dev/sa/web", True),
        ("spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/a/b/sa/web", False),
        ("spiffe://example.org/ns/*/sa/web", "spiffe://example.org/ns/prod/sa/api", False),
        ("spiffe://example.org/ns/*", "spiffe://example.org/ns", False),  # one, not zero
        ("spiffe://example.org/ns/**", "spiffe://example.org/ns/prod", True),
        ("spiffe://example.org/ns/**", WEB, True),
        ("spiffe://example.org/ns/**", "spiffe://example.org/ns", False),  # at least one
        ("spiffe://example.org/ns/**", "spiffe://example.org/nsx/prod", False),
        ("spiffe://example.org/**", WEB, True),
        ("spiffe://example.org/**", "spiffe://example.org", False),
        ("spiffe://example.org/**", "spiffe://example.org.evil/ns", False),
        ("spiffe://example.org", "spiffe://example.org", True),
        ("spiffe://example.org", WEB, False),
        ("spiffe://example.org/*/**", "spiffe://example.org/ns", False),
        ("spiffe://example.org/*/**", "spiffe://example.org/ns/x", True),
        # Invalid or non-canonical IDs match nothing, wildcards included.
        ("spiffe://example.org/ns/*/web", "spiffe://example.org/ns/../web", False),
        ("spiffe://example.org/**", "spiffe://example.org/ns/", False),
        ("spiffe://example.org/**", "SPIFFE://example.org/ns", False),
        ("spiffe://example.org/**", "https://example.org/ns", False),
    ],
)
def test_match_spiffe(pattern: str, spiffe_id: str, matches: bool) -> None:
    assert match_spiffe(pattern, spiffe_id) is matches


def test_match_spiffe_refuses_an_unchecked_pattern() -> None:
    with pytest.raises(ValueError, match="trust domain cannot be a wildcard"):
        match_spiffe("spiffe://*/ns", WEB)


_SEGMENT = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_DOMAIN = st.text(string.ascii_lowercase + string.digits + ".-_", min_size=1, max_size=12)


@given(_DOMAIN, st.lists(_SEGMENT, min_size=1, max_size=5), st.data())
def test_wildcards_match_what_they_say(
    domain: str, segments: list[str], data: st.DataObject
) -> None:
    spiffe_id = f"spiffe://{domain}/" + "/".join(segments)
    assert match_spiffe(spiffe_id, spiffe_id)
    star = data.draw(st.integers(0, len(segments) - 1))
    one = [*segments[:star], "*", *segments[star + 1 :]]
    assert match_spiffe(f"spiffe://{domain}/" + "/".join(one), spiffe_id)
    keep = data.draw(st.integers(0, len(segments)))
    rest = f"spiffe://{domain}/" + "/".join([*segments[:keep], "**"])
    assert match_spiffe(rest, spiffe_id) is (keep < len(segments))
    assert not match_spiffe(f"spiffe://{domain}x/" + "/".join(segments), spiffe_id)
    assert not match_spiffe(f"spiffe://{domain}/" + "/".join([*segments, "*"]), spiffe_id)


# ---------------------------------------------------------------------------------------------
# Allow lists
# ---------------------------------------------------------------------------------------------


def test_empty_everywhere_is_empty() -> None:
    assert AllowList().is_empty()
    assert not AllowList(cn=("ops",)).is_empty()
    assert not AllowList(spiffe=("spiffe://example.org/**",)).is_empty()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"spiffe": ("spiffe://*/x",)}, NO_WILD_DOMAIN),
        (
            {"spiffe": ("SPIFFE://example.org/x",)},
            "'SPIFFE://example.org/x': write the SPIFFE pattern as 'spiffe://example.org/x'",
        ),
        (
            {"dns": ("*.com",)},
            "'*.com': a wildcard needs at least two labels after it (like *.example.com)",
        ),
        ({"dns": ("API.internal",)}, "'API.internal': write the DNS pattern as 'api.internal'"),
        ({"cn": ("",)}, "an empty CN or OU matches no certificate"),
        ({"ou": ("",)}, "an empty CN or OU matches no certificate"),
    ],
)  # fmt: skip
def test_a_hand_built_allow_list_is_checked(
    kwargs: dict[str, tuple[str, ...]], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        AllowList(**kwargs)
    assert str(info.value) == message


def _dns_identity(*names: str) -> ClientIdentity:
    return ClientIdentity("0" * 64, "", None, (), names, (), (), 1, datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("api.internal", "api.internal", True),
        ("api.internal", "x.api.internal", False),
        ("*.svc.internal", "billing.svc.internal", True),
        ("*.svc.internal", "svc.internal", False),
        ("*.svc.internal", "a.billing.svc.internal", False),  # one label, like TLS
        ("*.svc.internal", "billingsvc.internal", False),
        ("*.svc.internal", "*.svc.internal", True),  # the same wildcard, written the same
        ("billing.svc.internal", "*.svc.internal", False),  # a wildcard name is not this one
        ("*.svc.internal", "*.a.svc.internal", False),
    ],
)
def test_dns_patterns(pattern: str, name: str, matches: bool) -> None:
    decision = authorize(
        _dns_identity(name), "/", AllowList(dns=(pattern,)), (), certificate_required=True
    )
    assert decision.allowed is matches


# ---------------------------------------------------------------------------------------------
# Decisions, with certificates from the CA
# ---------------------------------------------------------------------------------------------


def test_each_kind_of_entry_says_what_let_the_client_in(
    ca: CertificateAuthority, now: datetime
) -> None:
    web = identity(ca, now, WEB)
    billing = identity(ca, now, "billing.svc.internal")
    ops = ClientIdentity.from_der(
        forge(ca, now, name=subject(cn=["alice"], ou=["ops"]), key_usage=usage())
    )
    allow = AllowList(
        spiffe=("spiffe://example.org/ns/*/sa/web",),
        dns=("*.svc.internal",),
        cn=("billing.svc.internal",),
        ou=("ops",),
    )

    def reason(who: ClientIdentity) -> str:
        decision = authorize(who, "/x", allow, (), certificate_required=True)
        assert decision.allowed
        return decision.reason

    assert reason(web) == "allowed by spiffe pattern spiffe://example.org/ns/*/sa/web"
    assert reason(billing) == "allowed by dns pattern *.svc.internal"  # its CN matches too
    assert reason(ops) == "allowed by ou ops"
    by_cn = AllowList(cn=("billing.svc.internal",))
    assert authorize(billing, "/", by_cn, (), certificate_required=True) == Decision(
        True, "allowed by cn billing.svc.internal"
    )


def test_no_lists_means_any_verified_certificate(ca: CertificateAuthority, now: datetime) -> None:
    who = identity(ca, now, "anything.example")
    assert authorize(who, "/", AllowList(), (), certificate_required=True) == Decision(
        True, "allowed: any verified certificate"
    )


def test_refusals_name_the_client_and_where(ca: CertificateAuthority, now: datetime) -> None:
    allow = AllowList(cn=("ops",))
    rules = (PathRule("/admin", AllowList(spiffe=("spiffe://example.org/ns/ops/**",))),)
    web = identity(ca, now, WEB)
    api = identity(ca, now, "api.internal")
    bare = ClientIdentity.from_der(forge(ca, now, key_usage=usage()))

    def reason(who: ClientIdentity | None, path: str) -> str:
        decision = authorize(who, path, allow, rules, certificate_required=True)
        assert not decision.allowed
        return decision.reason

    assert reason(web, "/admin/users") == f"{WEB} is not allowed on /admin"
    assert reason(web, "/") == f"{WEB} is not allowed on this site"
    assert reason(api, "/admin") == "CN=api.internal is not allowed on /admin"
    assert reason(bare, "/admin") == f"certificate {bare.sha256[:16]} is not allowed on /admin"
    assert reason(None, "/admin") == "no client certificate"


def test_a_spiffe_uri_that_is_no_svid_is_explained(ca: CertificateAuthority, now: datetime) -> None:
    sans = [x509.UniformResourceIdentifier(WEB), x509.UniformResourceIdentifier(WEB + "2")]
    two = ClientIdentity.from_der(forge(ca, now, sans=sans, key_usage=usage()))
    decision = authorize(
        two, "/", AllowList(spiffe=("spiffe://example.org/**",)), (), certificate_required=True
    )
    assert decision == Decision(
        False, f"{WEB} is not allowed on this site (its certificate is not a valid X.509-SVID)"
    )


def test_a_reason_cannot_carry_a_line_break() -> None:
    who = ClientIdentity(
        "0" * 64, "", None, ("urn:a\r\nX-Evil: 1",), (), (), (), 1, datetime(2030, 1, 1)
    )
    decision = authorize(who, "/", AllowList(cn=("ops",)), (), certificate_required=True)
    assert decision.reason == "urn:a\\x0d\\x0aX-Evil: 1 is not allowed on this site"  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Without a certificate (mode = "optional")
# ---------------------------------------------------------------------------------------------

PUBLIC = PathRule("/public", AllowList(), require_certificate=False)
ADMIN = PathRule("/admin", AllowList(cn=("ops",)))
ANY_CERT = PathRule("/api", AllowList())
ANONYMOUS = "allowed without a client certificate"


@pytest.mark.parametrize(
    ("allow", "path", "decision"),
    [
        # No list for the site: a client without a certificate passes where no rule needs one.
        (AllowList(), "/", Decision(True, ANONYMOUS)),
        (AllowList(), "/public/x", Decision(True, f"{ANONYMOUS} on /public")),
        (AllowList(), "/admin", Decision(False, "no client certificate")),
        (AllowList(), "/api/v1", Decision(False, "no client certificate")),  # any, but one
        # A site-wide list names who may pass, and no anonymous client is on it.
        (AllowList(cn=("ops",)), "/", Decision(False, "no client certificate")),
        (AllowList(cn=("ops",)), "/public", Decision(True, f"{ANONYMOUS} on /public")),
    ],
)  # fmt: skip
def test_optional_mode(allow: AllowList, path: str, decision: Decision) -> None:
    rules = (PUBLIC, ADMIN, ANY_CERT)
    assert authorize(None, path, allow, rules, certificate_required=False) == decision


def test_mode_require_needs_a_certificate_even_where_a_rule_does_not() -> None:
    decision = authorize(None, "/public", AllowList(), (PUBLIC,), certificate_required=True)
    assert decision == Decision(False, "no client certificate")


def test_a_certificate_is_still_judged_where_none_is_needed(
    ca: CertificateAuthority, now: datetime
) -> None:
    rule = PathRule("/public", AllowList(cn=("ops",)), require_certificate=False)
    who = identity(ca, now, "api.internal")
    assert authorize(None, "/public", AllowList(), (rule,), certificate_required=False).allowed
    assert authorize(who, "/public", AllowList(), (rule,), certificate_required=False) == Decision(
        False, "CN=api.internal is not allowed on /public"
    )


# ---------------------------------------------------------------------------------------------
# Which rule: the longest prefix, on whole segments, after normalising the path
# ---------------------------------------------------------------------------------------------

RULES = (
    PathRule("/", AllowList(cn=("root",))),
    PathRule("/admin", AllowList(cn=("admin",))),
    PathRule("/admin/audit", AllowList(cn=("auditor",))),
    PathRule("/public", AllowList(), require_certificate=False),
)


def _rule_for(path: str) -> str | None:
    """Which CN the rule for ``path`` wants, found by asking as each of them."""
    for cn in ("root", "admin", "auditor"):
        who = ClientIdentity("0" * 64, f"CN={cn}", None, (), (), (cn,), (), 1, datetime(2030, 1, 1))
        if authorize(who, path, AllowList(), RULES, certificate_required=False).allowed:
            if authorize(None, path, AllowList(), RULES, certificate_required=False).allowed:
                return "public"
            return cn
    return None


@pytest.mark.parametrize(
    ("path", "rule"),
    [
        ("/", "root"),
        ("/x", "root"),
        ("/admin", "admin"),
        ("/admin/", "admin"),
        ("/admin/users", "admin"),
        ("/administrator", "root"),  # whole segments: not under /admin
        ("/admin/audit", "auditor"),
        ("/admin/audit/2024", "auditor"),
        ("/admin/auditing", "admin"),
        ("/public/logo.png", "public"),
        ("/admin?next=/public", "admin"),  # the query is not the path
        ("/public?x=/admin", "public"),
        # dot-segments and doubled slashes are resolved first (RFC 3986 5.2.4)
        ("/public/../admin", "admin"),
        ("/public/./../admin/audit", "auditor"),
        ("//admin", "admin"),
        ("/./admin", "admin"),
        ("/public/../../admin", "admin"),  # ".." above the root stays at the root
        ("/admin/../public", "public"),
        # percent-encoding, however a backend decodes it
        ("/%61dmin", "admin"),
        ("/public/%2e%2e/admin", "admin"),
        ("/public/%2E%2E/admin", "admin"),
        ("/public%2F..%2Fadmin", None),  # as "/admin" (nginx) and as one segment (Express)
        ("/public/..%2Fadmin", "admin"),  # the stricter of /public and /admin
        # ;params (Tomcat drops them), backslashes (IIS), case (case-insensitive routers)
        ("/public/..;/admin", "admin"),
        ("/admin;jsessionid=1", None),
        ("/public\\..\\admin", None),
        ("/ADMIN", None),
        ("/Public", "root"),  # / (case kept) is stricter than /public (case ignored)
        # absolute-form targets are judged by their path
        ("http://example.com/admin", "admin"),
        ("https://example.com", "root"),
    ],
)
def test_which_rule_applies(path: str, rule: str | None) -> None:
    """None: the readings land under rules that no one CN passes together."""
    assert _rule_for(path) == rule


def test_ambiguous_paths_are_refused_by_the_strictest_reading(
    ca: CertificateAuthority, now: datetime
) -> None:
    rules = (PathRule("/admin", AllowList(cn=("ops",))), PUBLIC)
    for path in ("/public/..;/admin", "/public%2F..%2Fadmin", "/public\\..\\admin", "/ADMIN"):
        decision = authorize(None, path, AllowList(), rules, certificate_required=False)
        assert decision == Decision(False, "no client certificate"), path
    who = identity(ca, now, "api.internal")
    decision = authorize(who, "/Admin/x", AllowList(), rules, certificate_required=False)
    assert decision == Decision(False, "CN=api.internal is not allowed on /admin")


@pytest.mark.parametrize(
    ("target", "normal"),
    [
        ("/public/../admin", "/admin"),
        ("/public/../admin?x=1", "/admin"),
        ("//a///b/./c/", "/a/b/c"),
        ("/a/b/../../..", "/"),
        ("", "/"),
        ("*", "/*"),
        ("/%61dmin", "/admin"),
        ("/a%2Fb", "/a%2Fb"),  # one segment, and shown as one
        ("/a%252Fb", "/a%252Fb"),
        ("http://example.com/x/../y", "/y"),
    ],
)
def test_normalize_path(target: str, normal: str) -> None:
    assert normalize_path(target) == normal


_PIECES = st.sampled_from(
    [
        "admin",
        "ADMIN",
        "public",
        "..",
        ".",
        "",
        "%2e%2e",
        "..;",
        "%2F",
        "\\",
        "x",
        ";a=b",
        "%61dmin",
    ]
)


@given(st.lists(_PIECES, max_size=6), st.sampled_from(["/", "\\", "%2F", "%2f", ""]))
@example(["public", "..;", "admin"], "/")
def test_no_reading_of_a_path_gets_further_than_its_plain_form(
    pieces: list[str], joiner: str
) -> None:
    """Whatever the spelling, a request is never allowed where its normalised path is not."""
    rules = (PathRule("/admin", AllowList(cn=("ops",))), PUBLIC)
    target = "/" + joiner.join(pieces)
    plain = normalize_path(target)
    assume("%" not in plain)  # an encoded "/" is one segment in the plain reading
    for who in (None, _dns_identity("api.internal")):
        if not authorize(who, plain, AllowList(), rules, certificate_required=False).allowed:
            assert not authorize(
                who, target, AllowList(), rules, certificate_required=False
            ).allowed


NEVER = "empty, '.' or '..' segment: paths are normalised before matching, so it would never match"


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("admin", 'a path prefix starts with "/" (like "/admin")'),
        ("", 'a path prefix starts with "/" (like "/admin")'),
        (
            "/admin/",
            "write it without the trailing slash ('/admin' covers itself and everything under it)",
        ),
        ("/a//b", NEVER),
        ("/a/../b", NEVER),
        ("/a/./b", NEVER),
        ("/a?b", "a path prefix has no query or fragment (requests match on the path)"),
        ("/a#b", "a path prefix has no query or fragment (requests match on the path)"),
        ("/%61dmin", "write the prefix without percent-encoding (paths are decoded first)"),
        ("/a\\b", "a path prefix cannot contain a backslash"),
        ("/a b", "a path prefix cannot contain spaces or control characters"),
        ("/a\n", "a path prefix cannot contain spaces or control characters"),
    ],
)
def test_path_prefixes_that_could_never_match(prefix: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        check_path_prefix(prefix)
    assert str(info.value) == reason
    with pytest.raises(ValueError):
        PathRule(prefix, AllowList())


@pytest.mark.parametrize("prefix", ["/", "/admin", "/api/v1", "/caf\u00e9", "/a;b", "/.well-known"])
def test_path_prefixes(prefix: str) -> None:
    assert check_path_prefix(prefix) == prefix


def test_a_non_ascii_prefix_matches_its_utf8_bytes_as_http_sends_them() -> None:
    rules = (PathRule("/caf\u00e9", AllowList(cn=("ops",))),)
    raw = "/caf\u00e9/menu".encode().decode("latin-1")  # what the proxy hands over
    for target in (raw, "/caf%C3%A9/menu"):
        decision = authorize(None, target, AllowList(), rules, certificate_required=False)
        assert decision == Decision(False, "no client certificate"), target
