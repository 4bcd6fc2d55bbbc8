"""The control plane of ``tlsgate serve``: what runs per configuration change, not per request.

Sites and their TLS contexts, certificates (issuance, renewal wiring, file re-reads, hot swap),
OCSP fetching and the staple cache, store sync, metrics and the admin listener, and the worker
supervisor (fork, parent-death signal, reaping, signals). It hands :mod:`tlsgate.proxy`, the
data plane, plain values (a routing table, the TLS contexts, callables to report events) and
never the configuration, the store or the CA themselves.
"""
