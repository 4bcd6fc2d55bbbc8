"""Keeping every certificate ``serve`` presents fresh, from whichever issuer the site names.

``issuers`` turns "a certificate for these names" into one from the internal CA or from any
ACME CA; ``renewer`` decides when (through :mod:`tlsgate.acme.client.schedule`), retries with
backoff, records where each certificate stands in the store (what ``tlsgate status`` shows) and
hands a new certificate to whoever serves it. It sits above ``store``, ``ca`` and ``acme`` and below
``proxy``, which owns the sockets and the swap.
"""
