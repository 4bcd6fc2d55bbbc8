"""The certificate authority: root, intermediate, issuance, revocation and CRLs over a store."""

from tlsgate.ca.authority import (
    PASSPHRASE_ENV,
    CertificateAuthority,
    IssuedCertificate,
    passphrase_from_env,
)

__all__ = ["PASSPHRASE_ENV", "CertificateAuthority", "IssuedCertificate", "passphrase_from_env"]
