"""Challenge validation (tlsgate.acme.server.validation) against real servers on 127.0.0.1.

Every peer is a real server on an ephemeral port: aiohttp for http-01, a Python ``ssl`` server
for tls-alpn-01, a dnspython-built UDP DNS stub for dns-01 (and for the A-record fallback).
Timeouts are kept short through the config; nothing asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import free_port
from tlsgate.acme.jose import dns01_txt_value
from tlsgate.acme.server.resolve import (
    DnsServer,
    Resolver,
    parse_dns_server,
    parse_resolve_rule,
    parse_resolve_rules,
)
from tlsgate.acme.server.validation import (
    ErrorType,
    UnsupportedChallenge,
    ValidationConfig,
    ValidationResult,
    alpn_challenge_certificate,
    validate,
)
from tlsgate.acme.tls_alpn import (
    ACME_IDENTIFIER_OID,
    ChallengeCertificateError,
    check_challenge_certificate,
    key_authorization_digest,
)
from tlsgate.errors import ConfigError, TlsgateError
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.pem import certificate_pem

T = TypeVar("T")

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
KEY_AUTH = TOKEN + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
PATH = f"/.well-known/acme-challenge/{TOKEN}"

#: Fast enough for tests, still real: one attempt unless a test asks for more.
FAST = ValidationConfig(
    resolve=parse_resolve_rules(["*.example.test=127.0.0.1"]),
    attempts=1,
    retry_pause=0.05,
    attempt_timeout=2.0,
    dns_timeout=1.0,
    timeout=20.0,
)


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


def closed_port() -> int:
    """A port nothing listens on (connecting is refused), nor will while the test runs."""
    return free_port()


# --- servers -------------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def http_server(routes: dict[str, Handler]) -> AsyncIterator[int]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def text(body: str, status: int = 200) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text=body, status=status)

    return handler


@contextlib.asynccontextmanager
async def tcp_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    context: ssl.SSLContext | None = None,
) -> AsyncIterator[int]:
    """A stream server whose connection handlers are all finished (and closed) on exit."""
    tasks: set[asyncio.Task[None]] = set()

    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            async with asyncio.timeout(5):
                await handle(reader, writer)
        except (OSError, TimeoutError, ssl.SSLError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    server = await asyncio.start_server(connected, "127.0.0.1", 0, ssl=context)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def read_to_eof(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(3600)


def tls_context(tmp_path: Path, cert_key: tuple[bytes, bytes], alpn: str) -> ssl.SSLContext:
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert_key[0])
    key_file.write_bytes(cert_key[1])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols([alpn])
    return context


class StubDns(asyncio.DatagramProtocol):
    """Answers from ``records`` ((name, type) -> values); unknown names get NXDOMAIN."""

    def __init__(self, records: dict[tuple[str, str], list[str]], *, silent: bool) -> None:
        self.records = records
        self.silent = silent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.silent or self.transport is None:
            return
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if not any(known == name for known, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif values := self.records.get((name, rdtype)):
            texts = [f'"{v}"' if rdtype == "TXT" else v for v in values]
            response.answer.append(
                dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rdtype, texts)
            )
        self.transport.sendto(response.to_wire(), addr)


@contextlib.asynccontextmanager
async def dns_server(
    records: dict[tuple[str, str], list[str]], *, silent: bool = False
) -> AsyncIterator[DnsServer]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: StubDns(records, silent=silent), local_addr=("127.0.0.1", 0)
    )
    try:
        yield DnsServer("127.0.0.1", transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


def config(**changes: Any) -> ValidationConfig:
    return dataclasses.replace(FAST, **changes)


# --- http-01 -------------------------------------------------------------------------------


async def check_http(
    routes: dict[str, Handler], identifier: str = "a.example.test", **changes: Any
) -> tuple[int, ValidationResult]:
    async with http_server(routes) as port:
        cfg = config(http_01_port=port, **changes)
        result = await validate("http-01", identifier, TOKEN, KEY_AUTH, cfg)
    return port, result


def bounce(location: str, status: int = 302) -> Handler:
    """Redirect to ``location`` formatted with the port the request came in on."""

    async def handler(request: web.Request) -> web.StreamResponse:
        target = location.format(port=request.url.port)
        return web.Response(status=status, headers={"Location": target})

    return handler


def test_http01_correct_body_is_valid() -> None:
    hosts: list[str] = []

    async def serve(request: web.Request) -> web.StreamResponse:
        hosts.append(request.host)
        return web.Response(text=KEY_AUTH + "\r\n")  # trailing whitespace is ignored

    port, result = run(check_http({PATH: serve}))
    assert result.valid and result.status == "valid" and result.problem_type is None
    assert result.detail == f"http://a.example.test:{port}{PATH} answered the key authorization"
    assert hosts == [f"a.example.test:{port}"]


def test_http01_wrong_body_is_incorrect_response() -> None:
    port, result = run(check_http({PATH: text("not it")}))
    assert result.error is ErrorType.INCORRECT_RESPONSE
    assert result.status == "invalid"
    assert result.problem_type == "urn:ietf:params:acme:error:incorrectResponse"
    assert f"http://a.example.test:{port}{PATH} answered 'not it'" in result.detail


def test_http01_404_is_unauthorized_and_says_so() -> None:
    port, result = run(check_http({"/elsewhere": text("x")}))
    assert result.error is ErrorType.UNAUTHORIZED
    assert result.detail == f"http://a.example.test:{port}{PATH} answered 404"


def test_http01_oversize_body_is_refused() -> None:
    _, result = run(check_http({PATH: text(KEY_AUTH + " " * 9000)}))
    assert result.error is ErrorType.INCORRECT_RESPONSE
    assert "more than 8192 bytes" in result.detail


def test_http01_oversize_chunked_body_is_refused_without_reading_it_all() -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"x" * 4096)
        return response

    _, result = run(check_http({PATH: stream}, body_limit=1000))
    assert result.error is ErrorType.INCORRECT_RESPONSE
    assert "more than 1000 bytes" in result.detail


def test_http01_refused_connection() -> None:
    port = closed_port()
    result = run(validate("http-01", "a.example.test", TOKEN, KEY_AUTH, config(http_01_port=port)))
    assert result.error is ErrorType.CONNECTION
    assert result.detail.startswith(f"cannot connect to http://a.example.test:{port}{PATH}")
    assert result.detail.endswith("(127.0.0.1): Connection refused")


def test_http01_server_that_never_answers_times_out() -> None:
    async def main() -> ValidationResult:
        async with tcp_server(never_answer) as port:
            cfg = config(http_01_port=port, attempt_timeout=0.3)
            return await validate("http-01", "a.example.test", TOKEN, KEY_AUTH, cfg)

    result = run(main())
    assert result.error is ErrorType.CONNECTION
    assert "did not answer within 0.3 s" in result.detail


def test_http01_follows_a_redirect_to_an_allowed_target() -> None:
    routes = {PATH: bounce("http://b.example.test:{port}/moved", 301), "/moved": text(KEY_AUTH)}
    port, result = run(check_http(routes))
    assert result.valid, result.detail
    assert result.detail == (
        f"http://b.example.test:{port}/moved (redirected from "
        f"http://a.example.test:{port}{PATH}) answered the key authorization"
    )


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://b.example.test:1/moved", "is not on port 80 or {port}"),
        ("https://b.example.test:{port}/moved", "is not on port 443"),
        ("ftp://b.example.test/moved", "is neither http nor https"),
        ("http://127.0.0.1:{port}/moved", "is an IP address"),
    ],
)
def test_http01_refuses_forbidden_redirects(location: str, reason: str) -> None:
    port, result = run(check_http({PATH: bounce(location), "/moved": text(KEY_AUTH)}))
    assert result.error is ErrorType.UNAUTHORIZED
    assert reason.format(port=port) in result.detail
    assert result.detail.startswith(f"http://a.example.test:{port}{PATH} redirected to")


def test_http01_redirect_loop_stops() -> None:
    _, result = run(check_http({PATH: bounce(PATH)}, max_redirects=3))
    assert result.error is ErrorType.UNAUTHORIZED
    assert "redirected more than 3 times" in result.detail


def test_http01_retries_until_the_response_appears() -> None:
    calls: list[int] = []

    async def late(request: web.Request) -> web.StreamResponse:
        calls.append(1)
        if len(calls) < 3:
            return web.Response(status=404)
        return web.Response(text=KEY_AUTH)

    _, result = run(check_http({PATH: late}, attempts=3))
    assert result.valid and result.attempts == 3


def test_http01_reports_the_last_failure_after_all_attempts() -> None:
    _, result = run(check_http({PATH: text("nope")}, attempts=2))
    assert result.error is ErrorType.INCORRECT_RESPONSE and result.attempts == 2


def test_overall_timeout_ends_retries() -> None:
    async def main() -> ValidationResult:
        async with tcp_server(never_answer) as port:
            cfg = config(http_01_port=port, attempts=50, attempt_timeout=0.2, timeout=0.5)
            return await validate("http-01", "a.example.test", TOKEN, KEY_AUTH, cfg)

    result = run(main())
    assert result.error is ErrorType.CONNECTION
    assert result.attempts < 50


def test_http01_refuses_wildcards_without_retrying() -> None:
    result = run(validate("http-01", "*.example.test", TOKEN, KEY_AUTH, config(attempts=3)))
    assert result.error is ErrorType.UNAUTHORIZED and result.attempts == 1
    assert "use dns-01" in result.detail


def test_http01_ip_identifier() -> None:
    port, result = run(check_http({PATH: text(KEY_AUTH)}, identifier="127.0.0.1"))
    assert result.valid, result.detail
    assert result.detail.startswith(f"http://127.0.0.1:{port}{PATH} answered")


def test_unknown_challenge_type_is_a_caller_bug() -> None:
    with pytest.raises(UnsupportedChallenge) as info:
        run(validate("tls-sni-01", "a.example.test", TOKEN, KEY_AUTH, FAST))
    assert isinstance(info.value, TlsgateError)


# --- tls-alpn-01 ---------------------------------------------------------------------------


def custom_certificate(
    names: list[x509.GeneralName], value: bytes, *, critical: bool
) -> tuple[bytes, bytes]:
    """A challenge certificate built wrong on purpose (the helper only builds right ones)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, value), critical=critical)
        .sign(key, hashes.SHA256())
    )
    return certificate_pem(cert), private_key_pem(key)


GOOD_VALUE = b"\x04\x20" + key_authorization_digest(KEY_AUTH)


def check_tls(
    tmp_path: Path,
    cert_key: tuple[bytes, bytes],
    alpn: str = "acme-tls/1",
    identifier: str = "a.example.test",
) -> tuple[int, ValidationResult]:
    async def main() -> tuple[int, ValidationResult]:
        context = tls_context(tmp_path, cert_key, alpn)
        async with tcp_server(read_to_eof, context) as port:
            cfg = config(tls_alpn_01_port=port)
            return port, await validate("tls-alpn-01", identifier, TOKEN, KEY_AUTH, cfg)

    return run(main())


def test_alpn_challenge_certificate_has_the_rfc_8737_shape() -> None:
    cert_pem, key_pem = alpn_challenge_certificate("a.example.test", KEY_AUTH)
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.DNSName("a.example.test")]
    ext = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert ext.critical
    assert isinstance(ext.value, x509.UnrecognizedExtension) and ext.value.value == GOOD_VALUE
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert b"PRIVATE KEY" in key_pem


def test_tls_alpn01_valid(tmp_path: Path) -> None:
    port, result = check_tls(tmp_path, alpn_challenge_certificate("a.example.test", KEY_AUTH))
    assert result.valid, result.detail
    assert result.detail == (
        f"a.example.test at 127.0.0.1:{port} presented the acme-tls/1 challenge certificate"
    )


def test_tls_alpn01_ip_identifier(tmp_path: Path) -> None:
    cert_key = alpn_challenge_certificate("127.0.0.1", KEY_AUTH)
    _, result = check_tls(tmp_path, cert_key, identifier="127.0.0.1")
    assert result.valid, result.detail


def test_tls_alpn01_wrong_digest(tmp_path: Path) -> None:
    _, result = check_tls(tmp_path, alpn_challenge_certificate("a.example.test", "other.auth"))
    assert result.error is ErrorType.TLS
    assert "acmeIdentifier is" in result.detail and GOOD_VALUE.hex() in result.detail


def test_tls_alpn01_extension_not_critical(tmp_path: Path) -> None:
    cert_key = custom_certificate([x509.DNSName("a.example.test")], GOOD_VALUE, critical=False)
    _, result = check_tls(tmp_path, cert_key)
    assert result.error is ErrorType.TLS
    assert "acmeIdentifier extension is not critical" in result.detail


def test_tls_alpn01_two_sans(tmp_path: Path) -> None:
    names: list[x509.GeneralName] = [
        x509.DNSName("a.example.test"),
        x509.DNSName("b.example.test"),
    ]
    _, result = check_tls(tmp_path, custom_certificate(names, GOOD_VALUE, critical=True))
    assert result.error is ErrorType.TLS
    assert "names [a.example.test, b.example.test]" in result.detail
    assert "exactly one dNSName" in result.detail


def test_tls_alpn01_certificate_for_another_name(tmp_path: Path) -> None:
    _, result = check_tls(tmp_path, alpn_challenge_certificate("b.example.test", KEY_AUTH))
    assert result.error is ErrorType.TLS
    assert "is for b.example.test, not a.example.test" in result.detail


def test_tls_alpn01_server_without_acme_tls_alpn(tmp_path: Path) -> None:
    cert_key = alpn_challenge_certificate("a.example.test", KEY_AUTH)
    _, result = check_tls(tmp_path, cert_key, alpn="http/1.1")
    assert result.error is ErrorType.TLS
    assert "not 'acme-tls/1'" in result.detail or "handshake" in result.detail


def test_tls_alpn01_plain_tcp_server() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async def main() -> ValidationResult:
        async with tcp_server(plain) as port:
            cfg = config(tls_alpn_01_port=port)
            return await validate("tls-alpn-01", "a.example.test", TOKEN, KEY_AUTH, cfg)

    result = run(main())
    assert result.error in (ErrorType.TLS, ErrorType.CONNECTION)
    assert "a.example.test at 127.0.0.1" in result.detail


def test_tls_alpn01_refused_connection() -> None:
    cfg = config(tls_alpn_01_port=closed_port())
    result = run(validate("tls-alpn-01", "a.example.test", TOKEN, KEY_AUTH, cfg))
    assert result.error is ErrorType.CONNECTION


def test_check_challenge_certificate_rejects_a_missing_extension() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(x509.Name([]))
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("a.example.test")]), critical=True)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives.serialization import Encoding

    with pytest.raises(ChallengeCertificateError, match="no acmeIdentifier"):
        check_challenge_certificate(cert.public_bytes(Encoding.DER), "a.example.test", KEY_AUTH)


# --- dns-01 --------------------------------------------------------------------------------


def check_dns(
    records: dict[tuple[str, str], list[str]],
    identifier: str = "a.example.test",
    *,
    silent: bool = False,
    challenge: str = "dns-01",
    **changes: Any,
) -> ValidationResult:
    async def main() -> ValidationResult:
        async with dns_server(records, silent=silent) as server:
            cfg = config(dns_resolver=server, **changes)
            return await validate(challenge, identifier, TOKEN, KEY_AUTH, cfg)

    return run(main())


RECORD = "_acme-challenge.a.example.test"


def test_dns01_txt_value_is_unpadded_base64url_sha256() -> None:
    value = dns01_txt_value(KEY_AUTH)
    assert len(value) == 43 and "=" not in value and "+" not in value and "/" not in value


def test_dns01_valid() -> None:
    result = check_dns({(RECORD, "TXT"): ["unrelated", dns01_txt_value(KEY_AUTH)]})
    assert result.valid, result.detail
    assert result.detail == f"TXT {RECORD} holds {dns01_txt_value(KEY_AUTH)}"


def test_dns01_wildcard_uses_the_base_name() -> None:
    records = {("_acme-challenge.example.test", "TXT"): [dns01_txt_value(KEY_AUTH)]}
    assert check_dns(records, "*.example.test").valid


def test_dns01_wrong_txt() -> None:
    result = check_dns({(RECORD, "TXT"): ["wrong-value"]})
    assert result.error is ErrorType.DNS
    assert "'wrong-value'" in result.detail and dns01_txt_value(KEY_AUTH) in result.detail


def test_dns01_no_txt_records() -> None:
    result = check_dns({(RECORD, "A"): ["127.0.0.1"]})
    assert result.error is ErrorType.DNS
    assert result.detail == f"{RECORD} has no TXT records"


def test_dns01_nxdomain() -> None:
    result = check_dns({})
    assert result.error is ErrorType.DNS
    assert f"{RECORD} does not exist (NXDOMAIN from DNS server 127.0.0.1:" in result.detail


def test_dns01_server_that_never_answers() -> None:
    result = check_dns({}, silent=True, dns_timeout=0.3)
    assert result.error is ErrorType.DNS
    assert "did not answer the TXT query" in result.detail and "within 0.3 s" in result.detail


def test_dns01_refuses_ip_identifiers() -> None:
    result = check_dns({}, "127.0.0.1")
    assert result.error is ErrorType.UNAUTHORIZED


def test_http01_falls_back_to_dns_a_records_when_no_rule_matches() -> None:
    async def main() -> tuple[int, ValidationResult]:
        records = {("c.other.test", "A"): ["127.0.0.1"]}
        async with dns_server(records) as server, http_server({PATH: text(KEY_AUTH)}) as port:
            cfg = config(dns_resolver=server, http_01_port=port)
            return port, await validate("http-01", "c.other.test", TOKEN, KEY_AUTH, cfg)

    port, result = run(main())
    assert result.valid, result.detail
    assert result.detail == f"http://c.other.test:{port}{PATH} answered the key authorization"


def test_http01_name_without_addresses_is_a_dns_error() -> None:
    result = check_dns({}, "c.other.test", challenge="http-01")
    assert result.error is ErrorType.DNS
    assert "c.other.test does not exist" in result.detail
    result = check_dns({("c.other.test", "TXT"): ["x"]}, "c.other.test", challenge="http-01")
    assert result.detail.startswith("c.other.test has no A or AAAA records")


def test_names_resolving_to_unusable_addresses_are_refused() -> None:
    records = {("c.other.test", "A"): ["0.0.0.0"]}
    result = check_dns(records, "c.other.test", challenge="tls-alpn-01")
    assert result.error is ErrorType.DNS
    assert "resolves only to addresses nobody can reach (0.0.0.0)" in result.detail


# --- resolve rules -------------------------------------------------------------------------


def test_resolve_rules_parse_and_match_first_wins() -> None:
    rules = parse_resolve_rules(
        ["a.example.test=::1", "*.example.test=127.0.0.1", " *.Other.Test = [::1] ", "*=10.0.0.1"]
    )
    assert [str(r) for r in rules] == [
        "a.example.test=::1",
        "*.example.test=127.0.0.1",
        "*.other.test=::1",
        "*=10.0.0.1",
    ]
    resolver = Resolver(rules)
    assert str(resolver.match("a.example.test")) == "::1"
    assert str(resolver.match("b.example.test")) == "127.0.0.1"
    assert str(resolver.match("x.y.example.test")) == "127.0.0.1"
    assert str(resolver.match("example.test")) == "10.0.0.1"  # the wildcard excludes its base
    assert Resolver(rules[:2]).match("example.test") is None


def test_resolver_addresses_from_rules_and_literals() -> None:
    resolver = Resolver(parse_resolve_rules(["*.example.test=127.0.0.1"]))
    assert run(resolver.addresses("A.Example.Test")) == ("127.0.0.1",)
    assert run(resolver.addresses("::1")) == ("::1",)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("example.test", "expected PATTERN=ADDRESS"),
        ("=127.0.0.1", "expected PATTERN=ADDRESS"),
        ("a.example.test=", "expected PATTERN=ADDRESS"),
        ("a.example.test=localhost", "not an IPv4 or IPv6 address"),
        ("a.example.test=0.0.0.0", "cannot be connected to"),
        ("*.*.example.test=127.0.0.1", "wildcard"),
        ("bad_name.test=127.0.0.1", "label"),
    ],
)
def test_bad_resolve_rules_are_config_errors(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as info:
        parse_resolve_rule(text)
    assert repr(text) in str(info.value)


def test_dns_server_parsing() -> None:
    assert parse_dns_server("127.0.0.1:8053") == DnsServer("127.0.0.1", 8053)
    assert parse_dns_server("[::1]:5353") == DnsServer("::1", 5353)
    assert parse_dns_server("::1") == DnsServer("::1", 53)
    assert str(DnsServer("::1", 5353)) == "[::1]:5353"
    for bad in ("localhost:53", "127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:x", "[::1"):
        with pytest.raises(ConfigError):
            parse_dns_server(bad)


def test_config_from_options() -> None:
    cfg = ValidationConfig.from_options(
        http_01_port=5002,
        tls_alpn_01_port=5001,
        resolve=["*.example.test=127.0.0.1"],
        dns_resolver="127.0.0.1:8053",
    )
    assert cfg.http_01_port == 5002 and cfg.tls_alpn_01_port == 5001
    assert cfg.dns_resolver == DnsServer("127.0.0.1", 8053)
    assert [str(r) for r in cfg.resolve] == ["*.example.test=127.0.0.1"]
    with pytest.raises(ConfigError):
        ValidationConfig.from_options(resolve=["nonsense"])


def test_every_validation_error_is_a_challenge_problem_type() -> None:
    from tlsgate.acme.problems import CHALLENGE_ERRORS

    assert {error.value for error in ErrorType} <= CHALLENGE_ERRORS
