"""Small builders for pki tests: a root/intermediate pair without any store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from tlsgate.pki.keys import KeyType, PrivateKey, generate_key
from tlsgate.pki.names import NameConstraints, parse_identities
from tlsgate.pki.profiles import LeafProfile, build_intermediate, build_leaf, build_root


@dataclass
class Hierarchy:
    root: x509.Certificate
    root_key: PrivateKey
    intermediate: x509.Certificate
    intermediate_key: PrivateKey

    def leaf(
        self,
        *names: str,
        now: datetime,
        profile: LeafProfile | None = None,
        key: PrivateKey | None = None,
    ) -> x509.Certificate:
        key = key or generate_key()
        return build_leaf(
            self.intermediate,
            self.intermediate_key,
            key.public_key(),
            parse_identities(names),
            profile or LeafProfile(),
            now=now,
        )


def hierarchy(
    now: datetime,
    *,
    key_type: KeyType = KeyType.ECDSA_P256,
    constraints: NameConstraints | None = None,
    name: str = "Test",
    intermediate_lifetime: timedelta = timedelta(days=365),
) -> Hierarchy:
    root_key = generate_key(key_type)
    root = build_root(root_key, f"{name} Root", now=now)
    int_key = generate_key(key_type)
    intermediate = build_intermediate(
        root,
        root_key,
        int_key.public_key(),
        f"{name} Intermediate",
        now=now,
        constraints=constraints,
        lifetime=intermediate_lifetime,
    )
    return Hierarchy(root, root_key, intermediate, int_key)
