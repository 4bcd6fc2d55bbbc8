"""The plaintext part of a TLS 1.2 server flight, parsed for its handshake message types."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tlsgate.inspect.records import CERTIFICATE_REQUEST, handshake_types


def record(kind: int, body: bytes) -> bytes:
    return bytes([kind, 3, 3]) + len(body).to_bytes(2, "big") + body


def message(kind: int, body: bytes) -> bytes:
    return bytes([kind]) + len(body).to_bytes(3, "big") + body


def test_messages_split_across_records_are_joined() -> None:
    flight = message(2, b"hello") + message(11, b"c" * 300) + message(CERTIFICATE_REQUEST, b"r")
    data = record(22, flight[:7]) + record(22, flight[7:200]) + record(22, flight[200:])
    assert handshake_types(data) == [2, 11, CERTIFICATE_REQUEST]


def test_nothing_after_change_cipher_spec_is_read() -> None:
    data = record(22, message(2, b"")) + record(20, b"\x01") + record(22, message(13, b""))
    assert handshake_types(data) == [2]


def test_alerts_are_skipped_and_truncation_is_harmless() -> None:
    data = record(21, b"\x02\x28") + record(22, message(2, b"abc") + message(13, b"xyz"))
    assert handshake_types(data) == [2, 13]
    assert handshake_types(data[:-2]) == [2]


@given(st.binary(max_size=300))
def test_any_bytes_parse_without_error(data: bytes) -> None:
    assert all(0 <= t < 256 for t in handshake_types(data))
