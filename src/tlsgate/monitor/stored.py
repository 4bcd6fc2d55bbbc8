"""A ``store`` target: the certificates a tlsgate state directory holds, as chains to judge.

What is watched, and why only that:

- the CA itself (root and intermediate, each judged on its own for dates and key strength):
  when the intermediate expires, every certificate it signed stops verifying at once, so it
  must alert before any leaf does;
- every certificate ``serve`` currently serves (the managed ones, ACME-issued included);
- of the certificates the CA issued that are still valid (not revoked, not expired), only the
  newest per set of names. A certificate that renewal has replaced stays "valid" in the records
  until it runs out, and watching it would raise an expiry alert for something nobody uses.

Every certificate is judged against the store's own root, so nothing has to be configured, and
without a host name (they were issued for the names they carry; there is nothing to mismatch).
The store is only read: a directory without a state database is reported, never created.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from tlsgate.errors import NotInitialized, PKIError
from tlsgate.inspect.trust import Trust
from tlsgate.pki.pem import load_certificate, load_certificates
from tlsgate.pki.serial import format_serial
from tlsgate.store import CertStatus, open_store
from tlsgate.store.sqlite import DB_NAME

__all__ = ["StoredChain", "read_store"]


@dataclass(frozen=True)
class StoredChain:
    target: str  # the target label: "<store name>: <what>"
    chain: tuple[x509.Certificate, ...]


def read_store(
    path: Path | str, name: str, now: datetime
) -> tuple[Trust, list[StoredChain], list[tuple[str, str]]]:
    """The store's trust, the chains to judge, and records that cannot be read (label, why).

    Raises :class:`~tlsgate.errors.TlsgateError` when the store as a whole cannot be read, which
    the round reports as a failed check of this target.
    """
    if isinstance(path, Path) and not (path / DB_NAME).is_file():
        # open_store would create an empty state here; a monitor must never write.
        raise NotInitialized(f"{path} holds no tlsgate state ({DB_NAME} is missing)")
    store = open_store(path)
    where = store.location  # a database URL without its password
    try:
        authority = store.active_authority()
        if authority is None:
            raise NotInitialized(f"no certificate authority in {where}")
        managed = store.list_managed()
        issued = store.list_certificates(
            authority_id=authority.id, status=CertStatus.VALID, not_after_after=now
        )
    finally:
        store.close()
    root = load_certificate(authority.root_pem, source=f"root certificate in {where}")
    intermediate = load_certificate(
        authority.intermediate_pem, source=f"intermediate certificate in {where}"
    )
    trust = Trust(f"the CA in {where}", (root,), None)
    chains = [
        StoredChain(f"{name}: root CA", (root,)),
        StoredChain(f"{name}: intermediate CA", (intermediate,)),
    ]
    problems: list[tuple[str, str]] = []
    served: set[int] = set()
    for cert in sorted(managed, key=lambda m: m.name):
        try:
            chain = load_certificates(cert.fullchain_pem, source=f"certificate of {cert.name}")
        except PKIError as exc:
            problems.append((f"{name}: site {cert.name}", str(exc)))
            continue
        served.add(chain[0].serial_number)
        chains.append(StoredChain(f"{name}: site {cert.name}", tuple(chain)))
    newest: dict[tuple[str, ...], tuple[datetime, int, bytes]] = {}
    for record in issued:
        key = tuple(sorted(record.names))
        if key not in newest or record.not_after > newest[key][0]:
            newest[key] = (record.not_after, record.serial, record.pem)
    for names, (_, serial, pem) in sorted(newest.items()):
        if serial in served:
            continue
        label = f"{name}: issued {', '.join(names) or format_serial(serial)}"
        try:
            leaf = load_certificate(pem, source=f"certificate {format_serial(serial)}")
        except PKIError as exc:
            problems.append((label, str(exc)))
            continue
        chains.append(StoredChain(label, (leaf, intermediate)))
    return trust, chains, problems
