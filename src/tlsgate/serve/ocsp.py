"""OCSP responses for stapling: fetch them, cache them, refresh them.

The messages themselves -- which responder, what request, whether an answer can be trusted -- are
:mod:`tlsgate.pki.ocsp`; this module is serve's side: :func:`refresh_time` says when to ask
again (half-way through the validity window, hourly without ``next_update``),
:func:`fetch_response` POSTs the request over plain HTTP (run in a thread), and :class:`OcspCache`
keeps one verified response per site in memory and in ``<state>/ocsp/`` (atomic writes, so a
restart staples at once). A failed refresh keeps the current response until it expires, retrying
with backoff; an expired response is never handed out.

A revoked certificate is not stapled, as nginx and Caddy do: the answer is logged as an error and
any earlier "good" response is dropped at once (stapling it would vouch for a revoked certificate),
while a stapled "revoked" would only make the site fail for the clients that check, without telling
the operator anything more than the log does.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from tlsgate.pki.ocsp import (
    CertificateRevoked,
    OcspError,
    OcspTarget,
    VerifiedResponse,
    check_response,
    ocsp_target,
    request_der,
)
from tlsgate.store.files import atomic_write

__all__ = [
    "OcspCache",
    "cache_directory",
    "fetch_response",
    "refresh_time",
]

log = logging.getLogger("tlsgate.ocsp")

#: How often a response without ``next_update`` is renewed.
NO_NEXT_UPDATE_REFRESH = timedelta(hours=1)
#: Never ask the same responder more often than this, whatever its response says.
MIN_REFRESH = timedelta(minutes=1)
#: Waits after consecutive failed fetches (the certificate renewal table, capped at 6 hours).
BACKOFF = tuple(timedelta(minutes=m) for m in (1, 2, 2, 5, 10, 20, 30, 60, 120, 240, 360))
MAX_RESPONSE = 256 * 1024
FETCH_TIMEOUT = 10.0


def refresh_time(response: VerifiedResponse, now: datetime) -> datetime:
    """Half-way through the validity window (hourly without next_update), never sooner than
    :data:`MIN_REFRESH` from now."""
    if response.next_update is not None:
        due = response.this_update + (response.next_update - response.this_update) / 2
    else:
        due = response.this_update + NO_NEXT_UPDATE_REFRESH
    return max(due, now + MIN_REFRESH)


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch_response(url: str, request: bytes, timeout: float = FETCH_TIMEOUT) -> bytes:
    """POST ``request`` to the responder (blocking: run it in a thread). Proxies are not used,
    as nginx does not: the responder is asked directly."""
    req = urllib.request.Request(
        url,
        data=request,
        method="POST",
        headers={"Content-Type": "application/ocsp-request", "Accept": "application/ocsp-response"},
    )
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        if resp.status != 200:
            raise OcspError(f"responder answered HTTP {resp.status}")
        body: bytes = resp.read(MAX_RESPONSE + 1)
    if len(body) > MAX_RESPONSE:
        raise OcspError("response larger than 256 KiB")
    return body


Fetch = Callable[[str, bytes, float], bytes]


@dataclass
class _Site:
    target: OcspTarget
    response: VerifiedResponse | None = None
    next_fetch: datetime | None = None  # None: at once
    failures: int = 0


class OcspCache:
    """One verified response per site, kept in memory and in ``directory``."""

    def __init__(
        self, directory: Path | None, fetch: Fetch = fetch_response, timeout: float = FETCH_TIMEOUT
    ) -> None:
        self.directory = directory
        self.fetch = fetch
        self.timeout = timeout
        self._sites: dict[str, _Site] = {}

    # -- configuration -------------------------------------------------------------------------
    def configure(self, name: str, chain: Sequence[x509.Certificate] | None) -> bool:
        """Follow the site's current chain (None: stapling off). True when it has a responder."""
        target = ocsp_target(chain) if chain else None
        if target is None:
            self._sites.pop(name, None)
            return False
        current = self._sites.get(name)
        if current is None or current.target.leaf != target.leaf:
            self._sites[name] = _Site(target)
        return True

    def names(self) -> list[str]:
        return list(self._sites)

    def target(self, name: str) -> OcspTarget | None:
        site = self._sites.get(name)
        return site.target if site else None

    def current(self, name: str, now: datetime) -> VerifiedResponse | None:
        """The response to staple now, or None (never an expired one)."""
        site = self._sites.get(name)
        if site is None or site.response is None or not site.response.usable(now):
            return None
        return site.response

    # -- the disk cache ------------------------------------------------------------------------
    def _path(self, target: OcspTarget) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / f"{target.fingerprint}.der"

    def load_cached(self, now: datetime) -> None:
        """Take each site's response from disk, verified again (what workers do on SIGHUP).

        The file is the truth: a missing or unusable file means nothing is stapled.
        """
        for name, site in self._sites.items():
            site.response = None
            path = self._path(site.target)
            if path is None:
                continue
            try:
                der = path.read_bytes()
            except OSError:
                continue
            try:
                site.response = check_response(der, site.target, now)
            except OcspError as exc:
                log.info("site %s: cached OCSP response not used: %s", name, exc)
                continue
            site.next_fetch = refresh_time(site.response, now)

    def _save(self, site: _Site, der: bytes | None) -> None:
        path = self._path(site.target)
        if path is None:
            return
        try:
            if der is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                atomic_write(path, der, mode=0o644)
        except Exception as exc:  # the in-memory response still staples
            log.warning("cannot update the OCSP cache %s: %s", path, exc)

    # -- refreshing ----------------------------------------------------------------------------
    def retry_failed(self) -> None:
        """Forget the backoff: sites whose last fetch failed are fetched at once."""
        for site in self._sites.values():
            if site.failures:
                site.next_fetch = None

    def due(self, now: datetime) -> list[str]:
        return [
            name
            for name, site in self._sites.items()
            if site.next_fetch is None or now >= site.next_fetch
        ]

    def next_due(self, now: datetime) -> datetime:
        dates = [site.next_fetch or now for site in self._sites.values()]
        return min(dates, default=now + timedelta(hours=1))

    def _fetch(self, target: OcspTarget, timeout: float | None = None) -> bytes:
        return self.fetch(target.url, request_der(target), timeout or self.timeout)

    def refresh_blocking(self, now: datetime, timeout: float = 5.0) -> list[str]:
        """Fetch what is due, in threads that are all gone on return (safe before ``fork``).

        The shorter timeout bounds how long a responder that does not answer delays start-up."""
        due = self.due(now)
        if not due:
            return []
        results: dict[str, bytes | BaseException] = {}
        with ThreadPoolExecutor(max_workers=min(8, len(due))) as pool:
            futures = {
                name: pool.submit(self._fetch, self._sites[name].target, timeout) for name in due
            }
        for name, future in futures.items():
            error = future.exception()
            results[name] = error if error is not None else future.result()
        return [name for name in due if self.apply(name, results[name], now)]

    async def refresh(self, now: datetime) -> list[str]:
        due = self.due(now)
        if not due:
            return []
        targets = [self._sites[name].target for name in due]
        outcomes = await asyncio.gather(
            *(asyncio.to_thread(self._fetch, t) for t in targets), return_exceptions=True
        )
        changed = []
        for name, target, outcome in zip(due, targets, outcomes, strict=True):
            site = self._sites.get(name)
            if site is None or site.target.leaf != target.leaf:
                continue  # the certificate changed while the request was out
            if self.apply(name, outcome, datetime.now(now.tzinfo)):
                changed.append(name)
        return changed

    def apply(self, name: str, outcome: bytes | BaseException, now: datetime) -> bool:
        """Take a fetch's outcome; True when what should be stapled for ``name`` changed."""
        site = self._sites[name]
        before = site.response
        try:
            if isinstance(outcome, BaseException):
                raise outcome
            verified = check_response(outcome, site.target, now)
        except CertificateRevoked as exc:
            log.error(
                "site %s: OCSP responder %s says the certificate (serial %X) is revoked: %s; "
                "not stapling; replace the certificate",
                name,
                site.target.url,
                site.target.leaf.serial_number,
                exc,
            )
            site.response = None
            site.failures = 0
            site.next_fetch = now + NO_NEXT_UPDATE_REFRESH
            self._save(site, None)
            return before is not None
        except Exception as exc:
            count = site.failures
            site.failures = count + 1
            site.next_fetch = now + BACKOFF[min(count, len(BACKOFF) - 1)]
            if site.response is not None and not site.response.usable(now):
                site.response = None
            keeping = (
                f"still stapling the response valid until {site.response.expires.isoformat()}"
                if site.response is not None
                else "not stapling"
            )
            log.warning(
                "site %s: OCSP response from %s not usable (%s); %s; next attempt at %s",
                name,
                site.target.url,
                _describe(exc),
                keeping,
                site.next_fetch.isoformat(timespec="seconds"),
            )
            return site.response is not before
        site.response = verified
        site.failures = 0
        site.next_fetch = refresh_time(verified, now)
        self._save(site, verified.der)
        log.info(
            "site %s: stapling OCSP response from %s (good, this_update %s, next_update %s)",
            name,
            site.target.url,
            verified.this_update.isoformat(),
            verified.next_update.isoformat() if verified.next_update else "none",
        )
        return True


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OcspError) else f"{type(exc).__name__}: {text}"


def cache_directory(state_location: str) -> Path | None:
    """``<state>/ocsp`` when the store is a local directory; memory only otherwise."""
    path = Path(state_location)
    return path / "ocsp" if path.is_dir() else None
