"""Tests of the ACME server (tlsgate.acme.server)."""
