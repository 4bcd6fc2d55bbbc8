"""A real TLS server on loopback that asks for client certificates, for the client tests.

It runs in threads of the test process (blocking ``ssl`` sockets, every wait bounded) and says
who the client was: ``http`` mode answers each request with the client's SPIFFE ID and
certificate serial; ``echo`` mode reads until the client half-closes (``close_notify``), then
sends ``echo:`` and everything it read, and closes.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from tlsgate.ca import CertificateAuthority
from tlsgate.pki.keys import private_key_pem
from tlsgate.pki.names import parse_identities
from tlsgate.pki.pem import certificate_pem
from tlsgate.pki.profiles import LeafProfile


@dataclass
class Seen:
    clients: list[x509.Certificate] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    echoed: list[bytes] = field(default_factory=list)


@dataclass
class TlsServer:
    port: int
    seen: Seen
    root: Path  # the CA's root, for clients


def server_context(ca: CertificateAuthority, names: list[str], tmp: Path) -> ssl.SSLContext:
    issued = ca.issue(
        parse_identities(names),
        now=datetime.now(UTC),
        profile=LeafProfile(server=True, lifetime=timedelta(hours=1)),
    )
    assert issued.private_key is not None
    (tmp / "server.pem").write_bytes(issued.fullchain_pem)
    (tmp / "server.key").write_bytes(private_key_pem(issued.private_key))
    (tmp / "root.pem").write_bytes(certificate_pem(ca.root))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp / "server.pem", tmp / "server.key")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(tmp / "root.pem"))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _read_all(conn: ssl.SSLSocket) -> bytes:
    data = b""
    while True:
        try:
            piece = conn.recv(65536)
        except ssl.SSLZeroReturnError:
            return data
        if not piece:
            return data
        data += piece


def _serve_http(conn: ssl.SSLSocket, client: x509.Certificate) -> None:
    uris = [str(u) for u in _uris(client)]
    body = f"{' '.join(uris)} {client.serial_number:X}\n".encode()
    buffered = b""
    while True:
        while b"\r\n\r\n" not in buffered:
            try:
                piece = conn.recv(65536)
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return
            if not piece:
                return
            buffered += piece
        _, _, buffered = buffered.partition(b"\r\n\r\n")
        conn.sendall(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n%s"
            % (len(body), body)
        )


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def _handle(conn: ssl.SSLSocket, mode: str, seen: Seen) -> None:
    try:
        der = conn.getpeercert(binary_form=True)
        assert der is not None  # CERT_REQUIRED
        client = x509.load_der_x509_certificate(der)
        seen.clients.append(client)
        if mode == "echo":
            data = _read_all(conn)
            seen.echoed.append(data)
            conn.sendall(b"echo:" + data)
            with contextlib.suppress(OSError, ValueError):
                conn.unwrap()
        else:
            _serve_http(conn, client)
    except (OSError, ValueError) as exc:
        seen.errors.append(str(exc))
    finally:
        conn.close()


@contextlib.contextmanager
def tls_server(
    ca: CertificateAuthority, names: list[str], mode: str = "http"
) -> Iterator[TlsServer]:
    """A server for ``names`` with a certificate from ``ca``, requiring clients of ``ca``."""
    seen = Seen()
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = server_context(ca, names, Path(tmp))
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        port = listener.getsockname()[1]

        def accept() -> None:
            while not stop.is_set():
                try:
                    raw, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                raw.settimeout(10)
                try:
                    conn = ctx.wrap_socket(raw, server_side=True)
                except (OSError, ValueError) as exc:
                    seen.errors.append(str(exc))
                    raw.close()
                    continue
                threading.Thread(target=_handle, args=(conn, mode, seen), daemon=True).start()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield TlsServer(port, seen, Path(tmp) / "root.pem")
        finally:
            stop.set()
            thread.join(5)
            listener.close()


@contextlib.contextmanager
def plain_echo() -> Iterator[int]:
    """A plain TCP service answering every read with ``echo:`` and the bytes (a tcp site's
    upstream)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    conn.sendall(b"echo:" + data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        listener.close()
