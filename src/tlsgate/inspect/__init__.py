"""See a TLS problem before a browser does: probe an endpoint or a file and explain the verdict.

Layers, as everywhere in tlsgate: :mod:`~tlsgate.inspect.findings` is pure (certificates and
handshake facts in, findings out), :mod:`~tlsgate.inspect.probe` is the only part that touches the
network, :mod:`~tlsgate.inspect.check` holds the entry points that join the two (a target in, a
report out, never an exception for what the target does wrong), and :mod:`~tlsgate.inspect.explain`
only renders.
"""

from __future__ import annotations

from tlsgate.inspect.check import check_certificates, check_endpoint, check_file
from tlsgate.inspect.options import CheckOptions
from tlsgate.inspect.report import Code, Finding, Negotiated, Offer, Report, Severity
from tlsgate.inspect.target import Endpoint, looks_like_file, parse_endpoint
from tlsgate.inspect.trust import Trust, load_trust, system_trust

__all__ = [
    "CheckOptions",
    "Code",
    "Endpoint",
    "Finding",
    "Negotiated",
    "Offer",
    "Report",
    "Severity",
    "Trust",
    "check_certificates",
    "check_endpoint",
    "check_file",
    "load_trust",
    "looks_like_file",
    "parse_endpoint",
    "system_trust",
]
