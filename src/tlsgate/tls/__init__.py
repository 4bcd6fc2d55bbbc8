"""TLS below every plane: what the proxy, the client, ACME, inspect, demo and bench share.

- :mod:`~tlsgate.tls.context`: server contexts with Mozilla's "intermediate" profile (versions,
  suites, key-exchange groups) and PEM bytes loaded into a context;
- :mod:`~tlsgate.tls.libssl`: the OpenSSL calls Python's ``ssl`` lacks, through ctypes;
- :mod:`~tlsgate.tls.tickets`: session-ticket keys derived from a shared secret, rotated by epoch;
- :mod:`~tlsgate.tls.sessions`: the TLS 1.2 session-ID cache shared by forked workers;
- :mod:`~tlsgate.tls.clienthello`: the sans-IO ClientHello reader (server name, ALPN offered).

It imports only :mod:`tlsgate.errors` from tlsgate (``tests/test_layering.py`` holds it to
``errors``, ``pki`` and ``store``): the secret behind the ticket keys is handed in by the caller,
never read from the store here.
"""
