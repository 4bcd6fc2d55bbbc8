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

from tlsgate.pki.info import CertInfo, format_remaining
from tlsgate.pki.serial import format_serial
from tlsgate.store.base import CertificateRecord, CertStatus

__all__ = ["cert_table", "console", "print_json", "record_json", "record_status", "records_table"]

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


def records_table(records: Sequence[CertificateRecord], now: datetime) -> Table:
    table = Table(show_edge=False, header_style="bold")
    table.add_column("serial", no_wrap=True)
    table.add_column("names")
    table.add_column("usage")
    table.add_column("expires (UTC)", no_wrap=True)
    table.add_column("left", no_wrap=True, justify="right")
    table.add_column("status")
    for r in records:
        status = record_status(r, now)
        table.add_row(
            format_serial(r.serial),
            ", ".join(r.names),
            "+".join(r.usages),
            f"{r.not_after:%Y-%m-%d %H:%M}",
            format_remaining(r.not_after - now),
            f"[{_STATUS_STYLE[status]}]{status}[/]",
        )
    return table


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
