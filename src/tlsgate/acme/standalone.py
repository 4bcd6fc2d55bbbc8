"""Getting a certificate from any ACME CA for a host that is not behind `tlsgate serve`.

What `tlsgate cert obtain` does: answer http-01 on a port of its own for the duration of the
order, write the key and chain atomically (the key 0600), keep the account key in the state so
the next run reuses the account, and run a deploy hook with the new files' location.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from josepy.jwk import JWKEC

from tlsgate.acme.client import AcmeClient
from tlsgate.errors import AlreadyExists, ConfigError, TlsgateError
from tlsgate.pki.keys import (
    DEFAULT_KEY_TYPE,
    KeyType,
    generate_key,
    load_private_key,
    private_key_pem,
)
from tlsgate.store.files import PRIVATE, PUBLIC, atomic_write, ensure_private_dir

__all__ = ["ObtainRequest", "obtain_certificate"]


@dataclass(frozen=True)
class ObtainRequest:
    directory: str
    names: tuple[str, ...]
    out: Path
    state: Path
    http_01_address: str = "0.0.0.0"
    http_01_port: int = 80
    ca_root: Path | None = None
    contact: tuple[str, ...] = ()
    eab: tuple[str, bytes] | None = None
    key_type: KeyType = DEFAULT_KEY_TYPE
    deploy_hook: str | None = None


class _Http01:
    challenge_type = "http-01"

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}

    async def present(self, identifier: str, token: str, key_authorization: str) -> None:
        self.answers[token] = key_authorization

    async def cleanup(self, identifier: str, token: str) -> None:
        self.answers.pop(token, None)

    async def handle(self, request: web.Request) -> web.Response:
        answer = self.answers.get(request.match_info["token"])
        if answer is None:
            return web.Response(status=404, text="no such challenge\n")
        return web.Response(text=answer, content_type="text/plain")


def _account_key(state: Path, directory: str) -> JWKEC:
    """The account key for this directory, created once (one account per CA and machine)."""
    keys = ensure_private_dir(ensure_private_dir(state) / "acme-accounts")
    path = keys / (hashlib.sha256(directory.encode()).hexdigest()[:32] + ".key")
    if not path.exists():
        new = private_key_pem(ec.generate_private_key(ec.SECP256R1()))
        try:
            atomic_write(path, new, mode=PRIVATE, overwrite=False)
        except AlreadyExists:
            pass  # another run created it first: use that one
    key = load_private_key(path.read_bytes(), source=str(path))
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{path}: the account key must be an EC key")
    return JWKEC(key=key)


def _trust(ca_root: Path | None) -> ssl.SSLContext:
    if ca_root is None:
        return ssl.create_default_context()
    if not ca_root.is_file():
        raise ConfigError(f"--ca-root {ca_root} does not exist")
    return ssl.create_default_context(cafile=str(ca_root))


async def _obtain(request: ObtainRequest) -> bytes:
    key = generate_key(request.key_type)
    solver = _Http01()
    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", solver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, request.http_01_address, request.http_01_port).start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"cannot answer http-01 on {request.http_01_address}:{request.http_01_port}: "
            f"{exc.strerror}"
        ) from None
    try:
        async with AcmeClient(
            request.directory,
            _account_key(request.state, request.directory),
            ssl_context=_trust(request.ca_root),
            contact=request.contact,
        ) as client:
            await client.register(eab=request.eab)
            chain = await client.obtain(request.names, key, {"http-01": solver})
    finally:
        await runner.cleanup()
    _write(request.out, chain, private_key_pem(key))
    return chain


def _write(out: Path, chain: bytes, key_pem: bytes) -> None:
    certs = x509.load_pem_x509_certificates(chain)
    out.mkdir(parents=True, exist_ok=True)
    leaf = certs[0].public_bytes(Encoding.PEM)
    rest = b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:])
    atomic_write(out / "key.pem", key_pem, mode=PRIVATE)
    atomic_write(out / "cert.pem", leaf, mode=PUBLIC)
    atomic_write(out / "chain.pem", rest, mode=PUBLIC)
    atomic_write(out / "fullchain.pem", leaf + rest, mode=PUBLIC)


def _deploy(hook: str, request: ObtainRequest) -> None:
    env = {
        **os.environ,
        "TLSGATE_CERT_DIR": str(request.out),
        "TLSGATE_NAMES": " ".join(request.names),
        "RENEWED_LINEAGE": str(request.out),  # certbot's name, for hooks written for it
        "RENEWED_DOMAINS": " ".join(request.names),
    }
    result = subprocess.run(hook, shell=True, env=env, timeout=300, check=False)
    if result.returncode != 0:
        raise TlsgateError(f"deploy hook exited {result.returncode}: {hook}")


def obtain_certificate(request: ObtainRequest) -> Sequence[x509.Certificate]:
    chain = asyncio.run(_obtain(request))
    if request.deploy_hook:
        _deploy(request.deploy_hook, request)
    return x509.load_pem_x509_certificates(chain)
