"""Certificate serial numbers (tlsgate.pki.serial)."""

from __future__ import annotations

import secrets
import subprocess
from datetime import UTC, datetime
from functools import cache

import pytest
from cryptography import x509
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.conftest import require_tool
from tlsgate.errors import ConfigError
from tlsgate.pki.keys import PrivateKey, generate_key
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile, build_leaf, build_root
from tlsgate.pki.serial import SERIAL_BITS, format_serial, parse_serial, random_serial

NOW = datetime(2025, 1, 1, tzinfo=UTC)

# ---------------------------------------------------------------------------------------------
# random_serial
# ---------------------------------------------------------------------------------------------


def test_random_serial_is_positive_128_bit_and_unique() -> None:
    draws = [random_serial() for _ in range(10_000)]
    assert all(s > 0 for s in draws)
    assert all(s.bit_length() <= SERIAL_BITS for s in draws)
    assert SERIAL_BITS == 128
    assert len(set(draws)) == len(draws)
    # 128 random bits: the top byte is not always zero (i.e. we do use the whole width).
    assert max(draws).bit_length() > 120


def test_random_serial_never_returns_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    values = iter([0, 0, 42])
    monkeypatch.setattr(secrets, "randbits", lambda bits: next(values))
    assert random_serial() == 42


# ---------------------------------------------------------------------------------------------
# format_serial
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "text"),
    [
        (1, "01"),
        (0xF, "0F"),
        (0xFF, "FF"),
        (0x100, "0100"),
        (0x0A1B, "0A1B"),
        (0xABCDEF, "ABCDEF"),
        (2**128 - 1, "FF" * 16),
        (2**159, "80" + "00" * 19),
    ],
)
def test_format_serial(serial: int, text: str) -> None:
    assert format_serial(serial) == text


@settings(max_examples=300)
@given(st.integers(1, 2**160))
def test_property_format_serial_even_length_upper_hex(serial: int) -> None:
    text = format_serial(serial)
    assert len(text) % 2 == 0
    assert set(text) <= set("0123456789ABCDEF")
    assert int(text, 16) == serial
    # Minimal: exactly as many bytes as the magnitude needs (no extra "00" byte).
    assert len(text) // 2 == (serial.bit_length() + 7) // 8


# ---------------------------------------------------------------------------------------------
# parse_serial
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "0A1B",
        "0a1b",
        "A1B",
        "0a:1b",
        "0A:1B",
        "serial=0A1B",
        "SERIAL=0a1b",
        "serial=0A1B\n",  # openssl x509 -serial -noout output, newline included
        "0x0a1b",
        "0X0A1B",
        "  0a 1b  ",
        "00:00:0A:1B",
    ],
)
def test_parse_serial_spellings(text: str) -> None:
    assert parse_serial(text) == 0x0A1B


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected hex digits"),
        ("   ", "expected hex digits"),
        ("serial=", "expected hex digits"),
        ("0x", "expected hex digits"),
        (":", "expected hex digits"),
        ("xyz", "expected hex digits"),
        ("0A1G", "expected hex digits"),
        ("0A\t1B", "expected hex digits"),
        ("12.5", "expected hex digits"),
        ("0x0x0a", "expected hex digits"),
        # int(x, 16) takes these; a serial spelled like this is a typo, not hex.
        ("0A_1B", "expected hex digits"),
        ("+0A", "expected hex digits"),
        ("\u0661\u0662", "expected hex digits"),  # Arabic-Indic digits one, two
        ("\uff10a", "expected hex digits"),  # full-width 0, then a
        ("1" * 43, "expected hex digits"),
        ("0", "positive"),
        ("00", "positive"),
        ("00:00", "positive"),
        ("0x0", "positive"),
        ("-1", "positive"),
        ("-0A", "positive"),
    ],
)
def test_parse_serial_rejects(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_serial(text)


def test_parse_serial_message_quotes_the_input() -> None:
    with pytest.raises(ConfigError, match="'nope'"):
        parse_serial("nope")


def _colons(text: str) -> str:
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


@settings(max_examples=300)
@given(st.integers(1, 2**159))
@example(1)
@example(2**159)
@example(2**128 - 1)
def test_property_parse_serial_round_trips_format_serial(serial: int) -> None:
    text = format_serial(serial)
    assert parse_serial(text) == serial
    assert parse_serial(text.lower()) == serial
    assert parse_serial(_colons(text)) == serial
    assert parse_serial(_colons(text.lower())) == serial
    assert parse_serial(f"serial={text}\n") == serial
    assert parse_serial(f"0x{text.lower()}") == serial
    assert parse_serial(f"{serial:x}") == serial  # odd length, no leading zero
    assert parse_serial(f"{serial:#x}") == serial


@settings(max_examples=300)
@given(st.one_of(st.text(), st.text(alphabet="0123456789abcdefABCDEF:x=- _+\n", max_size=50)))
def test_property_parse_serial_is_positive_or_config_error(text: str) -> None:
    try:
        value = parse_serial(text)
    except ConfigError:
        return
    assert value > 0
    assert parse_serial(format_serial(value)) == value


# ---------------------------------------------------------------------------------------------
# Against openssl
# ---------------------------------------------------------------------------------------------


@cache
def _issuer() -> tuple[PrivateKey, x509.Certificate]:
    key = generate_key()
    return key, build_root(key, "Serial Test Root", now=NOW)


def _openssl_serial(cert: x509.Certificate) -> str:
    result = subprocess.run(
        [require_tool("openssl"), "x509", "-serial", "-noout"],
        input=certificate_pem(cert),
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout.decode()


@pytest.mark.interop
@pytest.mark.parametrize(
    "serial",
    [None, 1, 0x7F, 0x80, 0xFF, 0x0100, 0x0A1B, 2**63, 2**127, 2**128 - 1, 2**159 - 1],
)
def test_parse_serial_reads_openssl_output(serial: int | None) -> None:
    """``openssl x509 -serial`` on a certificate we built parses back to its serial number.

    ``None`` is a random serial (as the CA assigns); 0x80, 2**63, ... need a leading zero byte in
    DER, which openssl does not print.
    """
    key, root = _issuer()
    names = parse_identities(["serial.example"])
    leaf = build_leaf(
        root, key, generate_key().public_key(), names, LeafProfile(), now=NOW, serial=serial
    )
    output = _openssl_serial(leaf)
    assert output.startswith("serial=")
    assert parse_serial(output) == leaf.serial_number
    if serial is not None:
        assert leaf.serial_number == serial
    assert output.strip() == f"serial={format_serial(leaf.serial_number)}"


@pytest.mark.interop
def test_parse_serial_reads_openssl_output_for_a_root() -> None:
    _, root = _issuer()
    assert parse_serial(_openssl_serial(root)) == root.serial_number


def test_serial_longer_than_20_bytes_rejected() -> None:
    assert parse_serial("7F" + "FF" * 19) == (1 << 159) - 1
    with pytest.raises(ConfigError, match="20 bytes"):
        parse_serial("01" + "00" * 20)
