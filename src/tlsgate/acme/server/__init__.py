"""The ACME server behind `tlsgate ca serve`: the HTTP front end (``app.py``) and its endpoints
by resource (``accounts.py``, ``orders.py``, ``certificates.py``) over ``core.py``; request
authentication (``jws.py``, ``nonces.py``); what may be ordered (``policy.py``); challenge
validation (``validation.py``, ``resolve.py``); the JSON it returns (``resources.py``);
finalize's CSR check (``csr.py``); and ``status.py``, the one place order, authorization and
challenge statuses are derived. ``service.py`` runs it with its own certificate.

The JWS *verifier* lives here, not beside the wire-format modules in ``acme/``: checking an
attacker's envelope (nonces, key strength, EAB) is the server's job; what the client shares with
it (media type, thumbprint, key authorization) is in ``acme/jose.py``.
"""
