"""ACME (RFC 8555), by role: ``server/`` is what `tlsgate ca serve` answers, ``client/`` is what
``serve``, `tlsgate cert` and the renewal loop use to get certificates from any ACME CA.

The modules left here are wire format both ends must agree on byte for byte, so neither role
owns them and neither imports the other to reach them: problem documents (``problems.py``), the
JOSE media type, thumbprints and key authorizations (``jose.py``), Ed25519 JWKs (``okp.py``),
ARI's CertID and window (``ari.py``) and the tls-alpn-01 certificate (``tls_alpn.py``, which the
proxy also serves). ``tests/test_layering.py`` holds the rule: the server and the client import
only these, never each other.
"""
