"""``tlsgate demo``: the seed's TLS termination, running, in one screen."""
