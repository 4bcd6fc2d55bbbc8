"""ACME (RFC 8555): the server behind ``tlsgate ca serve``; later the client ``serve`` uses."""
