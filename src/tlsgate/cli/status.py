"""``tlsgate status``: every certificate ``serve`` manages, and where its renewal stands.

It reads only the store, which the running server's renewal loop updates after each decision
and attempt, so it works from another shell or a monitoring check while ``serve`` runs, and it
says why a certificate is not being renewed without anyone reading logs.

Exit status, so a check can alert on it: 0 all fine; 1 at least one renewal's latest attempt
failed (a ``last_error`` is recorded); 2 at least one certificate has expired (2 wins over 1).
A state that cannot be read is also 2, as for every command, so "non-zero" always means "look";
an unreachable store (PostgreSQL down) is said in those words, since the ``serve`` nodes are then
serving what they hold and renewing nothing until it returns.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.padding import Padding
from rich.text import Text

from tlsgate.cli.output import console, print_json
from tlsgate.cli.state import add_state_options, existing_state
from tlsgate.cli.tables import Column, print_table
from tlsgate.errors import PKIError, StorageError
from tlsgate.pki.info import format_remaining
from tlsgate.pki.pem import load_certificates
from tlsgate.pki.serial import format_serial
from tlsgate.store import is_database_url, open_store
from tlsgate.store.base import ManagedCertificate, RenewalState
from tlsgate.store.roles import RenewalStore

__all__ = ["ALL_FINE", "EXPIRED", "RENEWAL_FAILING", "register"]

ALL_FINE = 0
RENEWAL_FAILING = 1
EXPIRED = 2

#: Less than this left is shown in yellow: renewal should have happened long before.
_SOON = timedelta(days=7)


@dataclass(frozen=True)
class _Row:
    """One site: its served certificate, its renewal state, or both."""

    name: str
    cert: ManagedCertificate | None
    state: RenewalState | None
    #: hex, from the leaf; ``None`` without a certificate or when its PEM cannot be read
    serial: str | None

    @property
    def issuer(self) -> str:
        """The current certificate's issuer; the renewal's when there is no certificate yet."""
        if self.cert is not None:
            return self.cert.issuer
        return self.state.issuer if self.state is not None else ""

    def expired(self, now: datetime) -> bool:
        return self.cert is not None and self.cert.not_after <= now

    @property
    def last_error(self) -> str | None:
        return self.state.last_error if self.state is not None else None


def _serial(cert: ManagedCertificate) -> str | None:
    try:
        leaf = load_certificates(cert.fullchain_pem, source=f"certificate of {cert.name}")[0]
    except PKIError:
        return None  # shown as unreadable rather than failing the whole overview
    return format_serial(leaf.serial_number)


def _rows(store: RenewalStore) -> list[_Row]:
    certs = {c.name: c for c in store.list_managed()}
    states = {s.name: s for s in store.list_renewal_states()}
    rows = []
    for name in sorted(certs.keys() | states.keys()):
        cert = certs.get(name)
        serial = _serial(cert) if cert is not None else None
        rows.append(_Row(name, cert, states.get(name), serial))
    return rows


def _exit_status(rows: Sequence[_Row], now: datetime) -> int:
    if any(r.expired(now) for r in rows):
        return EXPIRED
    if any(r.last_error is not None for r in rows):
        return RENEWAL_FAILING
    return ALL_FINE


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(row: _Row) -> dict[str, Any]:
    state = row.state
    return {
        "name": row.name,
        "issuer": row.issuer,
        "serial": row.serial,
        "not_after": _iso(row.cert.not_after) if row.cert is not None else None,
        "next_renewal": _iso(state.next_attempt) if state is not None else None,
        "reason": state.reason if state is not None else None,
        "failures": state.failures if state is not None else 0,
        "last_error": row.last_error,
        "last_attempt": _iso(state.last_attempt) if state is not None else None,
        "last_success": _iso(state.last_success) if state is not None else None,
    }


def _when(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


def _short_issuer(issuer: str) -> str:
    """``acme:acme-v02.api.letsencrypt.org`` for the table; ``--json`` keeps the whole URL."""
    kind, _, url = issuer.partition(":")
    if kind != "acme" or "://" not in url:
        return issuer
    return f"acme:{url.split('://', 1)[1].removesuffix('/directory')}"


#: Name, serial and expiry identify a row and are always shown; the issuer too (which CA, the
#: question a person brings to this table); the rest only while the terminal has room, "left"
#: first. Piped, every column is printed in full.
_COLUMNS = (
    Column("name", keep=True, fold=True),
    Column("issuer", keep=True, fold=True),
    Column("serial", keep=True),
    # The day is enough beside "left", which counts hours once under two days. --json has
    # the exact time.
    Column("expires", keep=True),
    Column("left", priority=4, justify="right"),
    Column("next renewal (UTC)", priority=3),
    Column("reason", priority=2),
    Column("failures", priority=1, justify="right"),
)


def _table_rows(rows: Sequence[_Row], now: datetime) -> list[list[Text]]:
    out = []
    for row in rows:
        # Text, not markup: names and URLs may contain "[".
        if row.cert is None:
            serial, expires, left = Text("none yet", style="dim"), Text(""), Text("")
        else:
            remaining = row.cert.not_after - now
            style = "red" if remaining <= timedelta(0) else "yellow" if remaining < _SOON else ""
            serial = Text(row.serial) if row.serial else Text("unreadable", style="red")
            expires = Text(f"{row.cert.not_after:%Y-%m-%d}")
            left = Text(format_remaining(remaining), style=style)
        state = row.state
        if state is None:
            next_renewal, reason = Text("-", style="dim"), Text("")
        elif state.next_attempt is None:
            next_renewal, reason = Text("not scheduled", style="yellow"), Text(state.reason)
        else:
            next_renewal, reason = Text(_when(state.next_attempt)), Text(state.reason)
        failures = state.failures if state is not None else 0
        out.append(
            [
                Text(row.name),
                Text(_short_issuer(row.issuer)),
                serial,
                expires,
                left,
                next_renewal,
                reason,
                Text(str(failures), style="red" if failures else "dim"),
            ]
        )
    return out


def _print_errors(rows: Sequence[_Row]) -> None:
    """Below the table rather than in it: a CA's error is often a sentence with a URL, which
    a column squeezed beside a 32-digit serial would cut into a tower of fragments."""
    for row in rows:
        state = row.state
        if state is None or state.last_error is None:
            continue
        when = f" {_when(state.last_attempt)} UTC" if state.last_attempt is not None else ""
        in_a_row = f" ({state.failures} in a row)" if state.failures > 1 else ""
        console.print()
        console.print(Text(f"{row.name}: last attempt{when} failed{in_a_row}:", style="bold"))
        # Text, not markup: CA messages contain "[Errno 111]" and the like.
        console.print(Padding(Text(state.last_error, style="red"), (0, 0, 0, 2), expand=False))


def _shown(location: str) -> str:
    """The store's location for a message: a database URL without its password."""
    if not is_database_url(location):
        return location
    from tlsgate.store.postgres import redact

    return redact(location)


def cmd_status(args: argparse.Namespace) -> int:
    location = existing_state(args)  # a mistyped --state is refused, not created empty
    try:
        store = open_store(location)
        location = store.location
        try:
            rows = _rows(store)
        finally:
            store.close()
    except StorageError as exc:
        if " is unreachable: " not in str(exc):
            raise  # refused, damaged, too new: the CLI reports it as it is
        detail = str(exc).split(" is unreachable: ", 1)[1]
        message = f"the store at {_shown(location)} is unreachable: {detail}"
        if args.json:  # stdout stays JSON-only (empty); the reason goes to stderr
            print(f"tlsgate status: {message}", file=sys.stderr)
        else:
            console.print(Text(message, style="red"))
        return EXPIRED
    now = datetime.now(UTC)
    if args.json:
        print_json([_json(r) for r in rows])
    elif not rows:
        console.print(
            f"No managed certificates in {location} (tlsgate serve creates them).", markup=False
        )
    else:
        print_table(console, _COLUMNS, _table_rows(rows, now))
        _print_errors(rows)
    return _exit_status(rows, now)


def register(commands: Any) -> None:
    p = commands.add_parser(
        "status", help="certificates serve manages and their renewal (exit 1: failing, 2: expired)"
    )
    add_state_options(p)
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=cmd_status)
