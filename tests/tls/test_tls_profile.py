"""Mozilla "intermediate" on every server context: real handshakes in memory with clients that
offer one key-exchange group at a time, the negotiated group read back from OpenSSL."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from tests.tls.tls_helpers import connect, self_signed
from tlsgate.errors import ConfigError
from tlsgate.tls import context, libssl
from tlsgate.tls.context import MOZILLA_INTERMEDIATE_GROUPS, new_server_context

pytestmark = pytest.mark.skipif(
    not libssl.available() and os.environ.get("CI") != "true",
    reason="OpenSSL is not reachable through ctypes here",
)

TLS13 = ssl.TLSVersion.TLSv1_3
TLS12 = ssl.TLSVersion.TLSv1_2


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("profile"))


def server(cert_files: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = new_server_context()
    ctx.load_cert_chain(*cert_files)
    return ctx


def client(cert_files: tuple[Path, Path], version: ssl.TLSVersion, groups: str) -> ssl.SSLContext:
    """A client that offers exactly ``groups`` (OpenSSL's list syntax), in that order."""
    ctx = ssl.create_default_context(cafile=str(cert_files[0]))
    ctx.minimum_version = ctx.maximum_version = version
    assert libssl.set_groups(ctx, groups)
    return ctx


def negotiated(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> str | None:
    return libssl.negotiated_group(connect(server_ctx, client_ctx))


def test_the_profile_groups() -> None:
    assert MOZILLA_INTERMEDIATE_GROUPS == ("X25519", "prime256v1", "secp384r1")


@pytest.mark.parametrize("version", [TLS13, TLS12], ids=["tls1.3", "tls1.2"])
@pytest.mark.parametrize("group", ["X448", "P-521"])
def test_groups_outside_the_profile_are_refused(
    cert_files: tuple[Path, Path], version: ssl.TLSVersion, group: str
) -> None:
    # OpenSSL's default list has both: a client offering only one of them used to get it.
    with pytest.raises(ssl.SSLError):
        connect(server(cert_files), client(cert_files, version, group))


@pytest.mark.parametrize("group", ["X25519", "P-256", "P-384"])
def test_profile_groups_are_accepted_tls13(cert_files: tuple[Path, Path], group: str) -> None:
    assert negotiated(server(cert_files), client(cert_files, TLS13, group)) == group


@pytest.mark.parametrize("first", ["X448", "P-521", "X25519", "P-384"])
def test_tls12_takes_the_clients_first_group_in_the_profile(
    cert_files: tuple[Path, Path], first: str
) -> None:
    # TLS 1.2 clients must list P-256 too: their list also says which curves an ECDSA
    # certificate may use (RFC 8422), and the certificate is P-256.
    got = negotiated(server(cert_files), client(cert_files, TLS12, f"{first}:P-256"))
    assert got == (first if first in ("X25519", "P-384") else "P-256")


def test_without_ctypes_only_p256_is_kept(
    cert_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where OpenSSL cannot be reached through ctypes, ``ssl``'s own set_ecdh_curve keeps the
    server inside the profile (P-256 alone) rather than on OpenSSL's default list."""
    monkeypatch.setattr(libssl, "available", lambda: False)
    srv = server(cert_files)
    monkeypatch.undo()  # the client side still sets its groups through ctypes
    assert negotiated(srv, client(cert_files, TLS13, "P-256")) == "P-256"
    for group in ("X25519", "P-384", "X448", "P-521"):
        with pytest.raises(ssl.SSLError):
            connect(srv, client(cert_files, TLS13, group))


def test_a_refused_group_list_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context, "MOZILLA_INTERMEDIATE_GROUPS", ("X25519", "no-such-group"))
    with pytest.raises(ConfigError, match=r"refused the TLS key-exchange groups X25519:no-such"):
        new_server_context()
