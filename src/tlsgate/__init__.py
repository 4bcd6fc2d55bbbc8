"""tlsgate: the whole HTTPS system in one tool."""

__version__ = "0.1.0"
