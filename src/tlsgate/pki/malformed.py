"""What part of a certificate cannot be read, in words a person can act on.

``cryptography`` parses a certificate's extensions all at once and, when one is broken, raises
a ``ValueError`` naming an ASN.1 position (``location: [0]``), not the extension. A verdict must
say which one ("the subjectAltName extension is malformed"), so this module walks the DER of the
extension list itself and asks ``cryptography`` about each extension on its own, in a copy of
the certificate that carries only that one. Nothing here trusts or verifies anything: it only
explains a certificate that validation already refused (or that the checks cannot read).
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

__all__ = ["MISSING_OR_MALFORMED", "PARSE_ERRORS", "defect", "extension_name"]

#: What ``cryptography`` raises for a certificate it loaded but cannot fully read.
PARSE_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    x509.DuplicateExtension,
    x509.UnsupportedGeneralNameType,
    UnsupportedAlgorithm,
)

#: An extension that is absent, or that cannot be read: either way there is no value to use.
MISSING_OR_MALFORMED: tuple[type[Exception], ...] = (x509.ExtensionNotFound, *PARSE_ERRORS)

_EXTENSIONS_TAG = 0xA3  # [3] EXPLICIT in TBSCertificate
_SEQUENCE, _OID = 0x30, 0x06


def extension_name(oid: x509.ObjectIdentifier) -> str:
    """``subjectAltName`` for 2.5.29.17; the dotted form for an OID cryptography has no name for."""
    name = oid._name
    return oid.dotted_string if name.startswith("Unknown") else name


def defect(cert: x509.Certificate) -> str | None:
    """What about ``cert`` cannot be read (``None``: every part tlsgate looks at parses).

    The words complete "the certificate's ...": "subjectAltName extension is malformed (...)".
    """
    checks: tuple[tuple[str, Callable[[], object]], ...] = (
        ("subject name", lambda: cert.subject.rfc4514_string()),
        ("issuer name", lambda: cert.issuer.rfc4514_string()),
    )
    for what, read in checks:
        try:
            read()
        except PARSE_ERRORS as exc:
            return f"{what} is malformed ({_short(exc)})"
    try:
        cert.extensions  # noqa: B018 - parsing them is the check
    except x509.DuplicateExtension as exc:
        return f"{extension_name(exc.oid)} extension appears more than once"
    except PARSE_ERRORS as exc:
        return _which_extension(cert, exc)
    try:
        cert.public_key()
    except PARSE_ERRORS as exc:
        return f"public key cannot be used ({_short(exc)})"
    try:
        cert.signature_hash_algorithm  # noqa: B018 - reading it is the check
    except PARSE_ERRORS as exc:
        return f"signature algorithm is not supported ({_short(exc)})"
    return None


def _short(exc: Exception) -> str:
    text = str(exc).removeprefix("error parsing asn1 value: ") or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _which_extension(cert: x509.Certificate, exc: Exception) -> str:
    """Name the extension ``cryptography`` cannot parse, by parsing each one alone."""
    try:
        parts = _split(cert.public_bytes(Encoding.DER))
    except ValueError:
        return f"extensions are malformed ({_short(exc)})"
    head, extensions, alg, sig = parts
    seen: set[bytes] = set()
    for oid_der, tlv in extensions:
        if oid_der in seen:
            return f"{_oid_name(oid_der)} extension appears more than once"
        seen.add(oid_der)
        alone = _encode(
            _SEQUENCE,
            _encode(_SEQUENCE, head + _encode(_EXTENSIONS_TAG, _encode(_SEQUENCE, tlv)))
            + alg
            + sig,
        )
        try:
            x509.load_der_x509_certificate(alone).extensions  # noqa: B018 - parsing is the check
        except PARSE_ERRORS as one:
            return f"{_oid_name(oid_der)} extension is malformed ({_short(one)})"
    return f"extensions are malformed ({_short(exc)})"


def _oid_name(oid_der: bytes) -> str:
    try:
        return extension_name(x509.ObjectIdentifier(_dotted(oid_der)))
    except ValueError:
        return "an unreadable"


def _dotted(content: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's content octets (X.690 8.19)."""
    arcs: list[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or content[-1] & 0x80:
        raise ValueError("truncated OBJECT IDENTIFIER")
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _tlv(data: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, first content octet, end) of the DER element at ``pos``; ValueError if broken."""
    if pos + 2 > end:
        raise ValueError("truncated DER element")
    tag, length = data[pos], data[pos + 1]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used in certificates")
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise ValueError("DER element longer than its container")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """The elements inside ``data[start:end]``: (tag, element start, content start, end).

    Each step consumes at least two octets, so the loop is bounded by the input's length.
    """
    out = []
    pos = start
    while pos < end:
        tag, content, stop = _tlv(data, pos, end)
        out.append((tag, pos, content, stop))
        pos = stop
    return out


def _split(der: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes, bytes]:
    """Certificate DER -> (TBS fields before the extensions, [(OID, extension DER)], signature
    algorithm DER, signature DER)."""
    _, start, end = _tlv(der, 0, len(der))
    outer = _children(der, start, end)
    if len(outer) != 3 or outer[0][0] != _SEQUENCE:
        raise ValueError("not a certificate")
    _, _, tbs_start, tbs_end = outer[0]
    head = b""
    extensions: list[tuple[bytes, bytes]] = []
    for tag, element, content, stop in _children(der, tbs_start, tbs_end):
        if tag != _EXTENSIONS_TAG:
            head += der[element:stop]
            continue
        seq_tag, seq_start, seq_end = _tlv(der, content, stop)
        if seq_tag != _SEQUENCE:
            raise ValueError("extensions are not a SEQUENCE")
        for ext_tag, ext_start, ext_content, ext_end in _children(der, seq_start, seq_end):
            fields = _children(der, ext_content, ext_end) if ext_tag == _SEQUENCE else []
            if not fields or fields[0][0] != _OID:
                raise ValueError("an extension without an OID")
            oid_content = der[fields[0][2] : fields[0][3]]
            extensions.append((oid_content, der[ext_start:ext_end]))
    alg = der[outer[1][1] : outer[1][3]]
    sig = der[outer[2][1] : outer[2][3]]
    return head, extensions, alg, sig


def _encode(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content
