"""One exception tree for the whole project.

Every error tlsgate raises on purpose derives from :class:`TlsgateError`, so a caller (and the CLI,
which turns them into exit code 2 and one line on stderr) can tell "the input or environment is
wrong" from "tlsgate has a bug" with a single ``except``::

    TlsgateError
    ├── ConfigError                 malformed configuration, bad option values
    ├── PKIError                    X.509 and key material
    │   ├── InvalidPEM              not PEM, truncated, wrong block type
    │   ├── InvalidKey              corrupt key, unsupported or weak key type, wrong passphrase
    │   ├── InvalidIdentity         a name that cannot go into a certificate (``*.*.com``)
    │   ├── CSRError                bad signature, unusable request
    │   ├── PolicyDenied            well-formed, but the CA may not issue it (name constraints)
    │   └── VerificationFailed      (in pki.chain) a chain does not verify, with its Reason
    └── StorageError                the state store cannot do what was asked
        ├── NotInitialized          no CA in this state yet
        ├── AlreadyExists           refusing to overwrite (a CA, a file)
        └── NotFound                no such certificate

Messages are written for the person at the terminal: they name the thing that is wrong and, where
there is one, the way out. They never contain private key material.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "CSRError",
    "ConfigError",
    "InvalidIdentity",
    "InvalidKey",
    "InvalidPEM",
    "NotFound",
    "NotInitialized",
    "PKIError",
    "PolicyDenied",
    "StorageError",
    "TlsgateError",
    "authority_exists",
]


class TlsgateError(Exception):
    """Root of every deliberate tlsgate error."""


class ConfigError(TlsgateError):
    """Configuration or command-line values that cannot be used."""


class PKIError(TlsgateError):
    """Something about keys, certificates or requests is wrong."""


class InvalidPEM(PKIError):
    """The bytes are not the PEM object we expected (or are cut short)."""


class InvalidKey(PKIError):
    """A private or public key that cannot be loaded or is not acceptable."""


class InvalidIdentity(PKIError):
    """A name (DNS, IP, URI, e-mail) that a certificate cannot carry."""


class CSRError(PKIError):
    """A certificate signing request that cannot be honoured as sent."""


class PolicyDenied(PKIError):
    """The request is well-formed but the CA's policy forbids it."""


class StorageError(TlsgateError):
    """The state store failed or refused an operation."""


class NotInitialized(StorageError):
    """The state has no certificate authority yet."""


class AlreadyExists(StorageError):
    """Refusing to overwrite something that exists."""


class NotFound(StorageError):
    """The requested record does not exist."""


def authority_exists(location: str) -> AlreadyExists:
    """``ca init`` on a state that has a CA (often the demo's, in the default state): the way out,
    not only the refusal."""
    return AlreadyExists(
        f"a certificate authority already exists in {location} (tlsgate ca info shows it); "
        "for a new one use an empty state: --state DIR, or to try things out "
        "export TLSGATE_STATE=$(mktemp -d); --force replaces this one"
    )
