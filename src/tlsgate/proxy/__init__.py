"""The edge: TLS termination and HTTP/1.1 reverse proxying in front of plain-HTTP services.

Pure parts (``http``, ``headers``, ``routing``) take bytes and values and return decisions; the
asyncio layer (``protocol``, ``upstream``, ``relay``) only moves bytes between sockets. What runs
per configuration change (sites, certificates, workers) is :mod:`tlsgate.serve`, the control plane.
"""
