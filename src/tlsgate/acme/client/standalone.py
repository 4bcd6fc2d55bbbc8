"""Getting and renewing certificates from any ACME CA for hosts that are not behind `serve`.

What `tlsgate cert obtain` does: answer http-01 on a port of its own for the duration of the
order, write the key and chain atomically (the key 0600), keep the account key in the state so
the next run reuses the account, and run a deploy hook with the new files' location. It also
records the request (a *lineage*, certbot's word) so that `tlsgate cert renew`, run from cron or
a systemd timer, renews each certificate when ``schedule.py`` says so, with ARI's ``replaces``,
and keeps the current files when the CA is down.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from josepy.jwk import JWKEC

from tlsgate.acme.ari import cert_id
from tlsgate.acme.client.hooks import Dns01Hook
from tlsgate.acme.client.schedule import next_attempt
from tlsgate.acme.client.session import AcmeClient, Solver, stored_account_key
from tlsgate.acme.client.solvers import Http01Solver
from tlsgate.errors import ConfigError, TlsgateError
from tlsgate.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    generate_key,
    private_key_pem,
)
from tlsgate.store import open_store
from tlsgate.store.files import PRIVATE, PUBLIC, atomic_write, ensure_private_dir

__all__ = ["ObtainRequest", "RenewalOutcome", "obtain_certificate", "renew_all"]


@dataclass(frozen=True)
class ObtainRequest:
    directory: str
    names: tuple[str, ...]
    out: Path
    state: Path
    http_01_address: str = "0.0.0.0"
    http_01_port: int = 80
    ca_root: Path | None = None
    contact: tuple[str, ...] = ()
    eab: tuple[str, bytes] | None = None
    key_type: KeyType = DEFAULT_KEY_TYPE
    deploy_hook: str | None = None
    #: dns-01 through this command instead of answering http-01 (see hooks.py)
    dns_01_hook: str | None = None
    dns_01_wait: float = 0.0
    #: where the account key lives when that is not ``state``: a database URL shared with
    #: `serve`. The lineage records stay in ``state``: they name this machine's files and hooks.
    store: str | None = None


def _account_key(request: ObtainRequest) -> JWKEC:
    """The account key for this directory, shared with `serve` through the store."""
    store = open_store(request.store or request.state)
    try:
        return stored_account_key(store, request.directory)
    finally:
        store.close()


def _trust(ca_root: Path | None) -> ssl.SSLContext:
    if ca_root is None:
        return ssl.create_default_context()
    if not ca_root.is_file():
        raise ConfigError(f"--ca-root {ca_root} does not exist")
    return ssl.create_default_context(cafile=str(ca_root))


async def _obtain(request: ObtainRequest, *, replaces: str | None = None) -> bytes:
    key = generate_key(request.key_type)
    solvers: dict[str, Solver]
    runner: web.AppRunner | None = None
    if request.dns_01_hook:
        solvers = {"dns-01": Dns01Hook(request.dns_01_hook, wait=request.dns_01_wait)}
    else:
        http01 = Http01Solver()
        solvers = {"http-01": http01}
        runner = web.AppRunner(http01.route(web.Application()), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, request.http_01_address, request.http_01_port).start()
        except OSError as exc:
            from tlsgate.config.listen import listen_error

            await runner.cleanup()
            where = f"{request.http_01_address}:{request.http_01_port}"
            raise ConfigError(f"http-01: {listen_error(where, exc)}") from None
    try:
        async with AcmeClient(
            request.directory,
            _account_key(request),
            ssl_context=_trust(request.ca_root),
            contact=request.contact,
        ) as client:
            await client.register(eab=request.eab)
            chain = await client.obtain(request.names, key, solvers, replaces=replaces)
    finally:
        if runner is not None:
            await runner.cleanup()
    _write(request.out, chain, private_key_pem(key))
    return chain


def _write(out: Path, chain: bytes, key_pem: bytes) -> None:
    certs = x509.load_pem_x509_certificates(chain)
    out.mkdir(parents=True, exist_ok=True)
    leaf = certs[0].public_bytes(Encoding.PEM)
    rest = b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:])
    atomic_write(out / "key.pem", key_pem, mode=PRIVATE)
    atomic_write(out / "cert.pem", leaf, mode=PUBLIC)
    atomic_write(out / "chain.pem", rest, mode=PUBLIC)
    atomic_write(out / "fullchain.pem", leaf + rest, mode=PUBLIC)


def _deploy(hook: str, request: ObtainRequest) -> None:
    env = {
        **os.environ,
        "TLSGATE_CERT_DIR": str(request.out),
        "TLSGATE_NAMES": " ".join(request.names),
        "RENEWED_LINEAGE": str(request.out),  # certbot's name, for hooks written for it
        "RENEWED_DOMAINS": " ".join(request.names),
    }
    result = subprocess.run(hook, shell=True, env=env, timeout=300, check=False)
    if result.returncode != 0:
        raise TlsgateError(f"deploy hook exited {result.returncode}: {hook}")


def obtain_certificate(request: ObtainRequest) -> Sequence[x509.Certificate]:
    chain = asyncio.run(_obtain(request))
    _save_lineage(request, failures=0, last_attempt=None, error=None)
    if request.deploy_hook:
        _deploy(request.deploy_hook, request)
    return x509.load_pem_x509_certificates(chain)


# -- lineages and renewal ----------------------------------------------------------------------
def _lineage_dir(state: Path) -> Path:
    return ensure_private_dir(ensure_private_dir(state) / "acme-certs")


def _lineage_path(state: Path, out: Path) -> Path:
    digest = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:32]
    return _lineage_dir(state) / f"{digest}.json"


def _save_lineage(
    request: ObtainRequest, *, failures: int, last_attempt: datetime | None, error: str | None
) -> None:
    data = {
        "directory": request.directory,
        "names": list(request.names),
        "out": str(request.out.resolve()),
        "http_01_address": request.http_01_address,
        "http_01_port": request.http_01_port,
        "ca_root": str(request.ca_root.resolve()) if request.ca_root else None,
        "contact": list(request.contact),
        "key_type": request.key_type.value,
        "deploy_hook": request.deploy_hook,
        "dns_01_hook": request.dns_01_hook,
        "dns_01_wait": request.dns_01_wait,
        "failures": failures,
        "last_attempt": last_attempt.isoformat() if last_attempt else None,
        "last_error": error,
    }
    path = _lineage_path(request.state, request.out)
    atomic_write(path, json.dumps(data, indent=1).encode(), mode=PRIVATE)


def _load_lineage(
    path: Path, state: Path, store: str | None = None
) -> tuple[ObtainRequest, int, datetime | None]:
    try:
        data = json.loads(path.read_text())
        request = ObtainRequest(
            directory=data["directory"],
            names=tuple(data["names"]),
            out=Path(data["out"]),
            state=state,
            store=store,
            http_01_address=data["http_01_address"],
            http_01_port=int(data["http_01_port"]),
            ca_root=Path(data["ca_root"]) if data["ca_root"] else None,
            contact=tuple(data["contact"]),
            key_type=KeyType(data["key_type"]),
            deploy_hook=data["deploy_hook"],
            dns_01_hook=data.get("dns_01_hook"),
            dns_01_wait=float(data.get("dns_01_wait", 0.0)),
        )
        last = data.get("last_attempt")
        return request, int(data.get("failures", 0)), datetime.fromisoformat(last) if last else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a readable renewal record ({exc})") from None


@dataclass(frozen=True)
class RenewalOutcome:
    names: tuple[str, ...]
    out: Path
    status: str  # "renewed", "not-due", "failed"
    detail: str


def renew_all(
    state: Path,
    *,
    now: datetime,
    force: bool = False,
    pre_hook: str | None = None,
    post_hook: str | None = None,
    store: str | None = None,
) -> list[RenewalOutcome]:
    """Renew every recorded certificate that is due; a failure keeps the current files.

    The records are in ``state``; the account keys in ``store`` when given (see ObtainRequest).
    """
    outcomes: list[RenewalOutcome] = []
    hooks_ran = False
    for path in sorted(_lineage_dir(state).glob("*.json")):
        request, failures, last_attempt = _load_lineage(path, state, store)
        current = _current(request.out)
        # Asked once per certificate: it decides when to renew and whether to send replaces.
        window = asyncio.run(_ari_window(request, current)) if current is not None else None
        if current is not None and not force:
            plan = next_attempt(
                last_attempt if failures and last_attempt else now,
                current.not_valid_before_utc,
                current.not_valid_after_utc,
                failures=failures,
                ari_window=window,
            )
            if plan.at > now:
                detail = f"next {plan.reason} renewal at {plan.at:%Y-%m-%d %H:%M} UTC"
                outcomes.append(RenewalOutcome(request.names, request.out, "not-due", detail))
                continue
        if pre_hook and not hooks_ran:
            _run_hook(pre_hook, "pre")
            hooks_ran = True
        try:
            # The CA speaks ARI: tell it which certificate this order replaces.
            replaces = cert_id(current) if current is not None and window is not None else None
            asyncio.run(_obtain(request, replaces=replaces))
        except TlsgateError as exc:
            _save_lineage(request, failures=failures + 1, last_attempt=now, error=str(exc))
            outcomes.append(RenewalOutcome(request.names, request.out, "failed", str(exc)))
            continue
        _save_lineage(request, failures=0, last_attempt=now, error=None)
        if request.deploy_hook:
            _deploy(request.deploy_hook, request)
        outcomes.append(RenewalOutcome(request.names, request.out, "renewed", "new files written"))
    if post_hook and hooks_ran:
        _run_hook(post_hook, "post")
    return outcomes


async def _ari_window(
    request: ObtainRequest, cert: x509.Certificate
) -> tuple[datetime, datetime] | None:
    """The CA's suggested window for ``cert``, or None (no ARI, or the CA cannot be reached:
    then the lifetime rule decides, which needs no network)."""
    try:
        async with AcmeClient(
            request.directory,
            _account_key(request),
            ssl_context=_trust(request.ca_root),
            timeout=30,
        ) as client:
            return await client.renewal_window(cert)
    except TlsgateError:
        return None


def _current(out: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate((out / "cert.pem").read_bytes())
    except (OSError, ValueError):
        return None  # missing or unreadable: renew now


def _run_hook(hook: str, what: str) -> None:
    result = subprocess.run(hook, shell=True, timeout=300, check=False)
    if result.returncode != 0:
        raise TlsgateError(f"{what}-hook exited {result.returncode}: {hook}")
