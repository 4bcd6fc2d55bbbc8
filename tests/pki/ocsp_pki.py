"""A small PKI for OCSP tests: a root, a leaf naming a responder, and responder certificates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str,
    key: Key,
    issuer: x509.Certificate | None,
    issuer_key: Key,
    now: datetime,
    *,
    ca: bool = False,
    extensions: tuple[x509.ExtensionType, ...] = (),
    serial: int | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    for ext in extensions:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class Pki:
    root_key: Key
    root: x509.Certificate
    leaf_key: Key
    leaf: x509.Certificate
    responder_key: Key  # delegated: issued by the root with id-kp-OCSPSigning
    responder: x509.Certificate

    def write(self, directory: Path) -> dict[str, Path]:
        """PEM files: root.pem, fullchain.pem (leaf + root), key.pem, responder.pem/.key."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {
            "root": (self.root.public_bytes(serialization.Encoding.PEM)),
            "root.key": _key_pem(self.root_key),
            "fullchain": self.leaf.public_bytes(serialization.Encoding.PEM)
            + self.root.public_bytes(serialization.Encoding.PEM),
            "key": _key_pem(self.leaf_key),
            "responder": self.responder.public_bytes(serialization.Encoding.PEM),
            "responder.key": _key_pem(self.responder_key),
        }
        paths = {}
        for name, data in files.items():
            path = directory / f"{name}.pem"
            path.write_bytes(data)
            paths[name] = path
        return paths

    def index_txt(self, *, revoked_at: datetime | None = None) -> str:
        """An ``openssl ca`` index with the leaf, valid or revoked."""
        expiry = self.leaf.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        serial = f"{self.leaf.serial_number:X}"
        if len(serial) % 2:
            serial = "0" + serial
        subject = "/CN=localhost"
        if revoked_at is None:
            return f"V\t{expiry}\t\t{serial}\tunknown\t{subject}\n"
        when = revoked_at.strftime("%y%m%d%H%M%SZ")
        return f"R\t{expiry}\t{when},keyCompromise\t{serial}\tunknown\t{subject}\n"


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def make_pki(ocsp_url: str | None, now: datetime) -> Pki:
    root_key = new_key()
    root = _cert("Test OCSP Root", root_key, None, root_key, now, ca=True)
    leaf_key = new_key()
    extensions: list[x509.ExtensionType] = [
        x509.SubjectAlternativeName([x509.DNSName("localhost")]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ]
    if ocsp_url is not None:
        extensions.append(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
                    )
                ]
            )
        )
    leaf = _cert("localhost", leaf_key, root, root_key, now, extensions=tuple(extensions))
    responder_key = new_key()
    responder = _cert(
        "Test OCSP Responder",
        responder_key,
        root,
        root_key,
        now,
        extensions=(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),),
    )
    return Pki(root_key, root, leaf_key, leaf, responder_key, responder)


def other_cert(
    pki: Pki, now: datetime, *, ocsp_signing: bool, self_signed: bool = False
) -> tuple[Key, x509.Certificate]:
    """A would-be responder: issued by the root without the EKU, or a stranger with it."""
    key = new_key()
    ext: tuple[x509.ExtensionType, ...] = (
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]),) if ocsp_signing else ()
    )
    if self_signed:
        return key, _cert("Stranger", key, None, key, now, extensions=ext)
    return key, _cert("Undelegated", key, pki.root, pki.root_key, now, extensions=ext)


def build_response(
    pki: Pki,
    now: datetime,
    *,
    status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD,
    signer: tuple[Key, x509.Certificate] | None = None,
    include_signer: bool = True,
    this_update: datetime | None = None,
    next_update: datetime | bool | None = True,
    cert: x509.Certificate | None = None,
    by_hash: bool = False,
) -> bytes:
    """A signed response about ``cert`` (the leaf), by the root unless ``signer`` says otherwise."""
    key, signer_cert = signer or (pki.root_key, pki.root)
    this = this_update or now - timedelta(minutes=10)
    nxt = this + timedelta(days=1) if next_update is True else next_update or None
    revoked = status == ocsp.OCSPCertStatus.REVOKED
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert or pki.leaf,
            issuer=pki.root,
            algorithm=hashes.SHA1(),
            cert_status=status,
            this_update=this,
            next_update=nxt,
            revocation_time=now - timedelta(hours=2) if revoked else None,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
        )
        .responder_id(
            ocsp.OCSPResponderEncoding.HASH if by_hash else ocsp.OCSPResponderEncoding.NAME,
            signer_cert,
        )
    )
    if include_signer and signer is not None:
        builder = builder.certificates([signer_cert])
    response = builder.sign(key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)
