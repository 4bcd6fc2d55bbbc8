"""How to check: thresholds, trust, timeouts. One frozen value shared by every target."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tlsgate.inspect.trust import Trust

__all__ = ["CheckOptions"]


@dataclass(frozen=True)
class CheckOptions:
    trust: Trust
    warn_days: float = 21.0  # WARNING when the leaf or any chain certificate expires sooner
    critical_days: float = 7.0  # CRITICAL below this (and when expired)
    timeout: float = 10.0  # per connection attempt: connect + handshake
    http: bool = False  # also fetch https:// for HSTS and http:// for the redirect
    http_port: int = 80  # where the plain-HTTP redirect is expected
    revocation: bool = True  # CRL / OCSP lookups when the certificate names where
    client_cert: Path | None = None  # present this certificate (mTLS endpoints)
    client_key: Path | None = None
    now: datetime | None = None  # fixed "now" for reproducible verdicts; None = the clock
