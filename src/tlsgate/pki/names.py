"""Identity strings -> X.509 names, the trustme way: one string says what it is.

``example.com``, ``*.example.com``, ``bücher.example`` (IDNA), ``127.0.0.1``, ``::1``,
``spiffe://prod.example/ns/web/sa/api`` (any ``scheme://`` is a URI) and ``ops@example.com`` all
go through :func:`parse_identity`. Rejections are what a browser or the CA/Browser Forum rules
would reject, so a name we accept is one a client can match.

Name constraints (``--permit-dns``, ``--permit-ip``) use the same parsing and are enforced at
issuance by :func:`check_constraints`, so a CA refuses to sign what a verifier would refuse.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import idna
from cryptography import x509

from tlsgate.errors import InvalidIdentity, PKIError, PolicyDenied

__all__ = [
    "NAME_CONSTRAINT_CHECK_LIMIT",
    "ComparisonBudget",
    "NameConstraints",
    "TooManyNameChecks",
    "check_constraints",
    "display_name",
    "dns_matches",
    "parse_dns_name",
    "parse_host",
    "parse_identities",
    "parse_identity",
    "parse_network",
    "parse_spiffe_id",
    "with_loopback",
]

# \Z, not $: "$" also matches before a trailing newline, which let "example\n.com" through.
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_SPIFFE_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]+\Z")
_SPIFFE_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+\Z")
# RFC 5321 Dot-string: atoms joined by single dots (no leading, trailing or doubled dot).
_EMAIL_LOCAL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z"
)
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _to_ascii_label(label: str, original: str) -> str:
    if label.isascii():
        lower = label.lower()
        if lower.startswith("xn--"):
            # An A-label must decode to a valid U-label (CA/Browser Forum BR 7.1.4.2).
            try:
                idna.decode(lower)
            except (idna.IDNAError, UnicodeError):
                raise InvalidIdentity(
                    f"{original!r}: {label!r} is not a valid IDNA A-label"
                ) from None
        return lower
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidIdentity(f"{original!r}: invalid internationalised name ({exc})") from None


def parse_dns_name(text: str, *, allow_wildcard: bool = True) -> str:
    """Return the canonical (lower-case, A-label) form of a DNS name or wildcard.

    Wildcards follow RFC 6125 as browsers apply it: one ``*`` that is the entire left-most label,
    above at least two more labels (``*.com`` would match half the internet).
    """
    original = text
    name = text.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise InvalidIdentity("empty name")
    labels = name.split(".")
    wildcard = labels[0] == "*"
    if "*" in name and not (allow_wildcard and wildcard and "*" not in ".".join(labels[1:])):
        if not allow_wildcard:
            raise InvalidIdentity(f"{original!r}: wildcards are not allowed here")
        raise InvalidIdentity(
            f"{original!r}: a wildcard must be the whole left-most label, once (like *.example.com)"
        )
    if wildcard and len(labels) < 3:
        raise InvalidIdentity(
            f"{original!r}: a wildcard needs at least two labels after it (like *.example.com)"
        )
    out: list[str] = ["*"] if wildcard else []
    for label in labels[1:] if wildcard else labels:
        if not label:
            raise InvalidIdentity(f"{original!r}: empty label")
        ascii_label = _to_ascii_label(label, original)
        if not _LABEL.match(ascii_label):
            raise InvalidIdentity(
                f"{original!r}: label {label!r} must be letters, digits and inner hyphens, "
                "at most 63 characters"
            )
        out.append(ascii_label)
    if out[-1].isdigit():
        raise InvalidIdentity(f"{original!r}: the last label cannot be all digits")
    result = ".".join(out)
    if len(result) > 253:
        raise InvalidIdentity(f"{original!r}: longer than 253 characters")
    return result


def parse_host(text: str) -> str:
    """A host as a person types it for a connection: an IP literal (canonical form, IPv6
    without brackets) or a DNS name (canonical, no wildcard); raises :class:`InvalidIdentity`."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return parse_dns_name(text, allow_wildcard=False)


def parse_spiffe_id(text: str) -> str:
    """Validate a SPIFFE ID exactly as the SPIFFE X.509-SVID specification states it."""
    # urlsplit silently drops tabs and newlines and strips leading blanks: refuse them first.
    if any(c.isspace() or not c.isprintable() for c in text):
        raise InvalidIdentity(f"{text!r}: a SPIFFE ID has no spaces or control characters")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise InvalidIdentity(f"{text!r}: not a valid URI ({exc})") from None
    if parts.scheme != "spiffe":
        raise InvalidIdentity(f"{text!r}: a SPIFFE ID starts with spiffe://")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise InvalidIdentity(f"{text!r}: a SPIFFE ID has no query or fragment")
    if parts.username is not None or parts.password is not None or ":" in parts.netloc:
        raise InvalidIdentity(f"{text!r}: a SPIFFE trust domain has no user, password or port")
    if len(text) > 2048:
        raise InvalidIdentity("a SPIFFE ID is at most 2048 bytes long")
    domain = parts.netloc
    if len(domain) > 255:
        raise InvalidIdentity(f"{text!r}: a SPIFFE trust domain is at most 255 characters")
    if not domain or not _SPIFFE_TRUST_DOMAIN.match(domain):
        raise InvalidIdentity(
            f"{text!r}: the trust domain must be lower-case letters, digits, '.', '_' or '-'"
        )
    path = parts.path
    if path:
        if path.endswith("/"):
            raise InvalidIdentity(f"{text!r}: a SPIFFE ID has no trailing slash")
        for segment in path[1:].split("/"):
            if segment in ("", ".", ".."):
                raise InvalidIdentity(f"{text!r}: empty, '.' or '..' path segment")
            if not _SPIFFE_SEGMENT.match(segment):
                raise InvalidIdentity(
                    f"{text!r}: path segments may hold only letters, digits, '.', '_' or '-'"
                )
    return f"spiffe://{domain}{path}"


def _parse_uri(text: str) -> str:
    if text.lower().startswith("spiffe://"):
        return parse_spiffe_id(text)
    if any(c.isspace() or not c.isprintable() for c in text) or not text.isascii():
        raise InvalidIdentity(f"{text!r}: a URI must be ASCII without spaces")
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unbalanced or invalid [IPv6] host
        raise InvalidIdentity(f"{text!r}: not a valid URI ({exc})") from None
    if not parts.netloc and not parts.path:
        raise InvalidIdentity(f"{text!r}: incomplete URI")
    return text


def _parse_email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    if not local or not _EMAIL_LOCAL.match(local) or len(local) > 64:
        raise InvalidIdentity(f"{text!r}: invalid e-mail address")
    return f"{local}@{parse_dns_name(domain, allow_wildcard=False)}"


def parse_identity(text: str) -> x509.GeneralName:
    """One identity string -> the GeneralName a certificate carries for it."""
    value = text.strip()
    if not value:
        raise InvalidIdentity("empty name")
    candidate = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        pass
    else:
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
            # The encoded SAN would silently drop the zone ("fe80::1%eth0" -> fe80::1).
            raise InvalidIdentity(
                f"{text!r}: a certificate cannot carry an IPv6 zone ID (the %... part)"
            )
        return x509.IPAddress(address)
    if _URI_SCHEME.match(value):
        return x509.UniformResourceIdentifier(_parse_uri(value))
    if "@" in value:
        return x509.RFC822Name(_parse_email(value))
    if "/" in value:
        raise InvalidIdentity(f"{text!r}: a network range cannot be a certificate name")
    return x509.DNSName(parse_dns_name(value))


def with_loopback(names: Iterable[str]) -> list[str]:
    """``names``, plus 127.0.0.1 and ::1 when they include ``localhost``: browsers and curl
    reach "localhost" by those spellings too, so a certificate for it should cover them."""
    out = list(names)
    if "localhost" in out:
        out += ["127.0.0.1", "::1"]
    return out


def parse_identities(texts: Iterable[str]) -> list[x509.GeneralName]:
    """Parse, de-duplicate (keeping order) and apply the whole-certificate rules.

    An X.509-SVID carries exactly one URI, so a SPIFFE ID next to another URI is refused here
    rather than producing a certificate that SPIFFE validators reject.
    """
    names: list[x509.GeneralName] = []
    for text in texts:
        name = parse_identity(text)
        if name not in names:
            names.append(name)
    if not names:
        raise InvalidIdentity("no names given: a certificate needs at least one name")
    uris = [n for n in names if isinstance(n, x509.UniformResourceIdentifier)]
    if len(uris) > 1 and any(u.value.startswith("spiffe://") for u in uris):
        raise InvalidIdentity("a SPIFFE certificate carries exactly one URI name")
    return names


def display_name(name: x509.GeneralName) -> str:
    """The identity string again, for output (IDNA names shown in their Unicode form)."""
    if isinstance(name, x509.DNSName) and "xn--" in name.value:
        wildcard = name.value.startswith("*.")
        try:
            return ("*." if wildcard else "") + str(idna.decode(name.value[2 if wildcard else 0 :]))
        except idna.IDNAError:
            return name.value
    return str(name.value)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR range (a bare address means just that address)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise InvalidIdentity(f"{text!r}: not a network range like 10.0.0.0/8 ({exc})") from None


def dns_matches(name: str, suffix: str) -> bool:
    """RFC 5280 dNSName constraint: ``example.com`` covers itself and every name below it.

    A leading dot (``.example.com``, seen in other CAs' certificates) covers only names below.
    """
    if suffix.startswith("."):
        return (name[1:] if name.startswith("*.") else name).endswith(suffix)
    name = name.removeprefix("*.")
    return name == suffix or name.endswith("." + suffix)


@dataclass(frozen=True)
class NameConstraints:
    """The subtrees a CA may issue for; empty means "no constraint of that kind"."""

    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    permitted_ip: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    excluded_ip: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def build(
        cls,
        permit_dns: Sequence[str] = (),
        exclude_dns: Sequence[str] = (),
        permit_ip: Sequence[str] = (),
        exclude_ip: Sequence[str] = (),
    ) -> NameConstraints:
        return cls(
            permitted_dns=tuple(parse_dns_name(s, allow_wildcard=False) for s in permit_dns),
            excluded_dns=tuple(parse_dns_name(s, allow_wildcard=False) for s in exclude_dns),
            permitted_ip=tuple(parse_network(s) for s in permit_ip),
            excluded_ip=tuple(parse_network(s) for s in exclude_ip),
        )

    def __bool__(self) -> bool:
        return bool(
            self.permitted_dns or self.excluded_dns or self.permitted_ip or self.excluded_ip
        )

    def extension(self) -> x509.NameConstraints:
        permitted: list[x509.GeneralName] = [x509.DNSName(d) for d in self.permitted_dns]
        permitted += [x509.IPAddress(n) for n in self.permitted_ip]
        excluded: list[x509.GeneralName] = [x509.DNSName(d) for d in self.excluded_dns]
        excluded += [x509.IPAddress(n) for n in self.excluded_ip]
        return x509.NameConstraints(
            permitted_subtrees=permitted or None, excluded_subtrees=excluded or None
        )

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> NameConstraints:
        try:
            ext = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            return cls()

        def split(
            subtrees: Sequence[x509.GeneralName] | None,
        ) -> tuple[tuple[str, ...], tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]]:
            dns = tuple(n.value for n in subtrees or () if isinstance(n, x509.DNSName))
            ips = tuple(
                n.value
                for n in subtrees or ()
                if isinstance(n, x509.IPAddress)
                and isinstance(n.value, ipaddress.IPv4Network | ipaddress.IPv6Network)
            )
            return dns, ips

        pd, pi = split(ext.permitted_subtrees)
        ed, ei = split(ext.excluded_subtrees)
        return cls(permitted_dns=pd, excluded_dns=ed, permitted_ip=pi, excluded_ip=ei)

    def describe(self) -> list[str]:
        out = [f"permit DNS {d}" for d in self.permitted_dns]
        out += [f"permit IP {n}" for n in self.permitted_ip]
        out += [f"exclude DNS {d}" for d in self.excluded_dns]
        out += [f"exclude IP {n}" for n in self.excluded_ip]
        return out


def _wildcard_covers(name: str, excluded: str) -> bool:
    """``*.example.com`` also stands for ``foo.example.com``: an exclusion of that name hits it.

    This is how Chrome/BoringSSL apply excluded subtrees to wildcards, so issuing it would make a
    certificate they reject.
    """
    return name.startswith("*.") and excluded.partition(".")[2] == name[2:]


#: The most name-constraint comparisons one chain may cost: cryptography's own verifier (like
#: rustls-webpki and Go) stops at 2**20 (one comparison = one constraint against one name).
NAME_CONSTRAINT_CHECK_LIMIT = 1 << 20


class TooManyNameChecks(PKIError):
    """A chain needs more name-constraint comparisons than any verifier is willing to make."""


class ComparisonBudget:
    """The comparisons left for one chain, shared by every CA in it.

    A server chooses what it presents: a CA with thousands of constraints over a leaf with
    thousands of names is millions of comparisons, so the work is bounded, as in cryptography.
    """

    def __init__(self, limit: int = NAME_CONSTRAINT_CHECK_LIMIT) -> None:
        self.limit = limit
        self.used = 0

    def spend(self) -> None:
        self.used += 1
        if self.used > self.limit:
            raise TooManyNameChecks(
                f"too many name-constraint checks (more than {self.limit} comparisons)"
            )


def check_constraints(
    names: Iterable[x509.GeneralName],
    constraints: NameConstraints,
    budget: ComparisonBudget | None = None,
) -> None:
    """Raise :class:`PolicyDenied` for the first name outside the CA's name constraints.

    With ``budget``, every comparison of a name with a constraint is counted against it and
    :class:`TooManyNameChecks` ends the work when it runs out.
    """
    if not constraints:
        return
    spend = budget.spend if budget is not None else _free

    def dns_hit(value: str, subtrees: Iterable[str], wildcards: bool) -> bool:
        for subtree in subtrees:
            spend()
            if dns_matches(value, subtree) or (wildcards and _wildcard_covers(value, subtree)):
                return True
        return False

    def ip_hit(
        address: object, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> bool:
        for network in networks:
            spend()
            if address in network:
                return True
        return False

    for name in names:
        if isinstance(name, x509.DNSName):
            value = name.value
            if dns_hit(value, constraints.excluded_dns, True):
                raise PolicyDenied(f"{value} is excluded by the CA's name constraints")
            if constraints.permitted_dns and not dns_hit(value, constraints.permitted_dns, False):
                allowed = ", ".join(constraints.permitted_dns)
                raise PolicyDenied(f"{value} is outside the CA's permitted names ({allowed})")
        elif isinstance(name, x509.IPAddress):
            address = name.value
            if ip_hit(address, constraints.excluded_ip):
                raise PolicyDenied(f"{address} is excluded by the CA's name constraints")
            if constraints.permitted_ip and not ip_hit(address, constraints.permitted_ip):
                allowed = ", ".join(str(n) for n in constraints.permitted_ip)
                raise PolicyDenied(f"{address} is outside the CA's permitted addresses ({allowed})")
        elif isinstance(name, x509.RFC822Name) and constraints.permitted_dns:
            # An e-mail's domain is checked against DNS permits so a constrained CA cannot vouch
            # for addresses of domains it was never given.
            domain = name.value.rpartition("@")[2]
            if not dns_hit(domain, constraints.permitted_dns, False):
                raise PolicyDenied(f"{name.value} is outside the CA's permitted names")


def _free() -> None:
    """No budget: issuance checks our own CA's few constraints against a request's names."""
