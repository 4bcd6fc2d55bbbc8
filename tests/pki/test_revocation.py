from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from cryptography import x509

from tlsgate.errors import ConfigError
from tlsgate.pki.revocation import REASONS, RevokedEntry, build_crl, parse_reason

from .helpers import hierarchy


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("keyCompromise", x509.ReasonFlags.key_compromise),
        ("key-compromise", x509.ReasonFlags.key_compromise),
        ("KEY_COMPROMISE", x509.ReasonFlags.key_compromise),
        ("1", x509.ReasonFlags.key_compromise),
        ("superseded", x509.ReasonFlags.superseded),
        ("cessationOfOperation", x509.ReasonFlags.cessation_of_operation),
        ("0", x509.ReasonFlags.unspecified),
    ],
)
def test_parse_reason(text: str, flag: x509.ReasonFlags) -> None:
    assert parse_reason(text) is flag


@pytest.mark.parametrize("text", ["", "bogus", "7", "removeFromCRL"])
def test_parse_reason_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="unknown revocation reason"):
        parse_reason(text)


def test_crl_contents(now: datetime) -> None:
    h = hierarchy(now)
    entries = [
        RevokedEntry(5, now - timedelta(hours=1), REASONS["key-compromise"]),
        RevokedEntry(3, now - timedelta(hours=2)),
    ]
    crl = build_crl(h.intermediate, h.intermediate_key, entries, number=7, now=now)
    assert crl.issuer == h.intermediate.subject
    assert crl.is_signature_valid(h.intermediate.public_key())  # type: ignore[arg-type]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 7
    assert crl.next_update_utc is not None and crl.next_update_utc > now
    assert [r.serial_number for r in crl] == [3, 5]
    entry = crl.get_revoked_certificate_by_serial_number(5)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    # RFC 5280: "unspecified" is expressed by leaving the reason out.
    plain = crl.get_revoked_certificate_by_serial_number(3)
    assert plain is not None and len(plain.extensions) == 0
