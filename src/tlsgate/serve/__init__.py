"""The control plane of ``tlsgate serve``: what runs per configuration change, not per request.

Sites and their TLS contexts, certificates (issuance, renewal wiring, file re-reads, hot swap),
OCSP fetching and the staple cache, store sync, metrics and the admin listener, and the worker
supervisor (fork, parent-death signal, reaping, signals). It hands :mod:`tlsgate.proxy`, the
data plane, plain values (a routing table, the TLS contexts, callables to report events) and
never the configuration, the store or the CA themselves.

Where to look:

- ``server``: :class:`~tlsgate.serve.server.EdgeServer`, the wiring: certificates, renewal, store
  sync, SIGHUP, OCSP and metrics around the workers and their listeners.
- ``supervisor``: worker processes: fork, parent-death signal, reaping, recycling, heap trim.
- ``listeners``: one worker's listeners: sockets, edges, the peeking acceptor, the redirect.
- ``challenges``: answers to the CA's http-01 and tls-alpn-01 validations, from the store.
- ``sites``: each site's TLS context, built, given new certificates, rebuilt on new trust;
  ``contexts``: SNI selection among them.
- ``certificates``: what each site presents (files, store, placeholder) and its renewal.
- ``ocsp`` (fetch and cache) and ``stapling`` (the status callback).
- ``store_sync``: certificates and revocations other nodes stored, picked up.
- ``metrics``: the Prometheus metrics; ``admin``: the admin listener serving them.
- ``client_trust``: what an mTLS site trusts (bundles, the internal CA, CRLs) and its context.
- ``hsts``: each site's Strict-Transport-Security value, handed to the data plane.
- ``responder``: the tiny built-in HTTP servers (the admin listener, the demo app).
- ``preflight``: what ``serve`` checks before it writes anything.
"""
