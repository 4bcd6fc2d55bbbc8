"""The data plane: TLS termination and HTTP/1.1 reverse proxying in front of plain-HTTP services.

Everything here runs per connection or per request, and is given what it needs as plain values
by :mod:`tlsgate.serve`, the control plane: a routing table, the TLS contexts, settings typed by
:mod:`~tlsgate.proxy.settings` (config's dataclasses satisfy them), callables to report to. It
imports no configuration, store, CA, ACME or renewal (``tests/test_layering.py``), which is what
lets the next step compile it with a pure-Python twin. Pure parts (``headers``, ``routing``,
``phase``) take values and return decisions; the asyncio layer (``protocol`` +
``upstream_side``, ``upstream``, ``relay``, ``acceptor``, ``redirect``) only moves bytes.
"""
