"""Tests of the ACME client (tlsgate.acme.client), most of them against the server in-process."""
