"""Pure X.509 logic over ``cryptography``: no files, no sockets, no clock (``now`` is a parameter).

Everything above this package (store, CA, ACME, proxy) gets its keys, names, certificates, CSRs,
chains and CRLs from here, so each rule lives in exactly one place.
"""

from tlsgate.pki.chain import Reason, Usage, VerificationFailed, VerifiedChain, verify_chain
from tlsgate.pki.csr import CheckedCSR, build_csr, check_csr, load_and_check_csr
from tlsgate.pki.info import CertInfo
from tlsgate.pki.keys import DEFAULT_KEY_TYPE, KeyType, PrivateKey, PublicKey, generate_key
from tlsgate.pki.names import NameConstraints, parse_identities, parse_identity
from tlsgate.pki.profiles import LeafProfile, build_intermediate, build_leaf, build_root
from tlsgate.pki.revocation import RevokedEntry, build_crl, parse_reason
from tlsgate.pki.serial import format_serial, parse_serial, random_serial

__all__ = [
    "DEFAULT_KEY_TYPE",
    "CertInfo",
    "CheckedCSR",
    "KeyType",
    "LeafProfile",
    "NameConstraints",
    "PrivateKey",
    "PublicKey",
    "Reason",
    "RevokedEntry",
    "Usage",
    "VerificationFailed",
    "VerifiedChain",
    "build_crl",
    "build_csr",
    "build_intermediate",
    "build_leaf",
    "build_root",
    "check_csr",
    "format_serial",
    "generate_key",
    "load_and_check_csr",
    "parse_identities",
    "parse_identity",
    "parse_reason",
    "parse_serial",
    "random_serial",
    "verify_chain",
]
