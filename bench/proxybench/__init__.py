"""bench/proxy.py's modules: a TLS-terminating proxy under test beside nginx and Caddy."""
