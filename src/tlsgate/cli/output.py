"""Terminal and machine output: rich for people, JSON for scripts, one line for errors.

Every command returns data; this module decides how it looks. Keeping rendering here keeps the
command modules about *what* happens and makes ``--json`` a property of the whole CLI.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from tlsgate.cli.tables import Column
from tlsgate.pki.info import CertInfo, format_remaining
from tlsgate.pki.serial import format_serial
from tlsgate.store.base import CertificateRecord, CertStatus

__all__ = [
    "RECORD_COLUMNS",
    "cert_table",
    "console",
    "print_json",
    "record_json",
    "record_status",
    "records_rows",
]

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def record_status(record: CertificateRecord, now: datetime) -> str:
    """``revoked`` beats ``expired``: a revoked certificate stays revoked after it expires."""
    if record.status is CertStatus.REVOKED:
        return "revoked"
    if record.not_after <= now:
        return "expired"
    return "valid"


def record_json(record: CertificateRecord, now: datetime) -> dict[str, Any]:
    data: dict[str, Any] = {
        "serial": format_serial(record.serial),
        "names": list(record.names),
        "usages": list(record.usages),
        "status": record_status(record, now),
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "expires_in_seconds": int((record.not_after - now).total_seconds()),
        "issued_at": record.issued_at.isoformat(),
        "requester": record.requester,
    }
    if record.order_id is not None:
        data["acme_order"] = record.order_id
    if record.revoked_at is not None:
        data["revoked_at"] = record.revoked_at.isoformat()
        data["revocation_reason"] = record.revocation_reason
        data["revoked_by"] = record.revoked_by
    return data


_STATUS_STYLE = {"valid": "green", "expired": "red", "revoked": "magenta"}

#: Serial, names and expiry identify a certificate and are always shown (the names fold); then,
#: while the terminal has room, status, time left and usage. Piped, all of them in full.
RECORD_COLUMNS = (
    Column("serial", keep=True),
    Column("names", keep=True, fold=True),
    Column("usage", priority=1),
    Column("expires (UTC)", keep=True),
    Column("left", priority=2, justify="right"),
    Column("status", priority=3),
)


def records_rows(records: Sequence[CertificateRecord], now: datetime) -> list[list[Text]]:
    """The cells of ``RECORD_COLUMNS`` (Text, not markup: a name may contain "[")."""
    rows = []
    for r in records:
        status = record_status(r, now)
        rows.append(
            [
                Text(format_serial(r.serial)),
                Text(", ".join(r.names)),
                Text("+".join(r.usages)),
                Text(f"{r.not_after:%Y-%m-%d %H:%M}"),
                Text(format_remaining(r.not_after - now)),
                Text(status, style=_STATUS_STYLE[status]),
            ]
        )
    return rows


def cert_table(info: CertInfo, now: datetime, extra: Sequence[tuple[str, str]] = ()) -> Table:
    """A two-column view of one certificate, in the order a person checks them."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    left = info.remaining(now)
    rows: list[tuple[str, str]] = [
        ("subject", info.subject or "(empty)"),
        ("names", ", ".join(info.names) or "(none)"),
        ("issuer", info.issuer),
        ("serial", info.serial_hex),
        ("key", info.key_description),
        ("usage", "+".join(info.usages) or ("CA" if info.is_ca else "(any)")),
        ("valid from", f"{info.not_before:%Y-%m-%d %H:%M} UTC"),
        (
            "valid until",
            f"{info.not_after:%Y-%m-%d %H:%M} UTC ({format_remaining(left)}"
            + (" left)" if left.total_seconds() > 0 else ")"),
        ),
        ("sha256", info.sha256),
        *extra,
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table
