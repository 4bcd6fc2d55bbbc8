"""Put a certificate in a state directory as if an ACME CA had issued it to ``serve``.

For measuring the tls-alpn-01 listener (which peeks at every ClientHello) with the harness's own
certificate: ``serve --acme ...`` then starts on it instead of on a placeholder, and the renewer
(pointed at a directory nobody answers) plans its renewal months away.

    python bench/seed_managed.py STATE NAME FULLCHAIN KEY DIRECTORY
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from tlsgate.store import open_store
from tlsgate.store.base import ManagedCertificate


def main(state: str, name: str, fullchain: str, key: str, directory: str) -> None:
    chain = Path(fullchain).read_bytes()
    leaf = x509.load_pem_x509_certificate(chain)
    store = open_store(state)
    store.save_managed(
        ManagedCertificate(
            name=name,
            fullchain_pem=chain,
            key_pem=Path(key).read_bytes(),
            not_after=leaf.not_valid_after_utc,
            issuer=f"acme:{directory}",
            updated_at=datetime.now(UTC),
        )
    )
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:6])
