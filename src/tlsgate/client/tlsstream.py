"""Client TLS over a plain TCP stream, driven by hand so that each direction ends on its own.

asyncio's TLS transports cannot half-close, and a raw TCP tunnel (`tlsgate tunnel --tcp`) must
pass a client's "I am done sending" through while the answer still flows back; so the tunnel
runs ``ssl.SSLObject`` over asyncio streams itself. Failures become one-line
:class:`TunnelError` messages in the words of the check that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from tlsgate.errors import TlsgateError
from tlsgate.http import LocalProtocolError

__all__ = ["READ_SIZE", "TlsStream", "TunnelError", "describe_failure", "pipe"]

#: The tunnel's log: a pipe's end is part of the tunnel's story.
log = logging.getLogger("tlsgate.tunnel")

READ_SIZE = 65536


class TunnelError(TlsgateError):
    """The target could not be reached or did not pass verification; the text says which."""


def describe_failure(exc: BaseException, where: str) -> str:
    """One line for the local client and the log: what failed, in the words of the check."""
    if isinstance(exc, TunnelError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or exc.reason or str(exc)
        return f"the certificate of {where} was refused: {detail}"
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason.lower().replace("_", " ") if exc.reason else str(exc.strerror or exc)
        if "alert" in reason and ("certificate" in reason or "unknown ca" in reason):
            return f"{where} refused our client certificate ({reason})"
        return f"TLS with {where} failed: {reason}"
    if isinstance(exc, TimeoutError):
        return f"{where} did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


class TlsStream:
    """Client TLS over asyncio streams, driven by hand so that each direction ends on its own.

    Every record that arrives is decrypted at once into :attr:`_plain` (a chunk at most, as
    :meth:`recv` reads only when asked: back-pressure holds). So when :meth:`shutdown_write`
    sends ``close_notify``, OpenSSL has no complete record left unread, which its shutdown
    would otherwise throw away.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        obj: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._obj = obj
        self._in = incoming
        self._out = outgoing
        self._plain = bytearray()
        self._eof = False
        self._shut = False
        self._protocol: str | None = None
        self.where = ""

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        ctx: ssl.SSLContext,
        server_hostname: str,
        *,
        connect_timeout: float,
        handshake_timeout: float,
        where: str = "",
    ) -> TlsStream:
        where = where or f"{host}:{port}"
        try:
            async with asyncio.timeout(connect_timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except TimeoutError:
            raise TunnelError(
                f"{where} did not accept a connection within {connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise TunnelError(describe_failure(exc, where)) from None
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
        stream = cls(reader, writer, obj, incoming, outgoing)
        stream.where = where
        try:
            async with asyncio.timeout(handshake_timeout):
                await stream._handshake()
        except TimeoutError:
            stream.abort()
            raise TunnelError(
                f"the TLS handshake with {where} took longer than {handshake_timeout:g} s"
            ) from None
        except (OSError, TunnelError) as exc:  # ssl.SSLError is an OSError
            stream.abort()
            raise TunnelError(describe_failure(exc, where)) from None
        except BaseException:
            stream.abort()
            raise
        return stream

    async def _handshake(self) -> None:
        while True:
            try:
                self._obj.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self._reader.read(READ_SIZE)
                if not data:
                    raise TunnelError(
                        f"{self.where} closed the connection in the TLS handshake"
                    ) from None
                self._in.write(data)
                continue
            break
        self._protocol = self._obj.version()
        await self._flush()
        self._decrypt()  # a session ticket, even data, may have come with the last flight

    @property
    def peer_certificate(self) -> bytes | None:
        return self._obj.getpeercert(binary_form=True)

    @property
    def protocol(self) -> str | None:
        """The TLS version the handshake settled on ("TLSv1.3"), kept after a failure."""
        return self._protocol

    async def _flush(self) -> None:
        out = self._out.read()
        if out:
            self._writer.write(out)
            await self._writer.drain()

    def _decrypt(self) -> None:
        while not self._eof:
            try:
                piece = self._obj.read(READ_SIZE)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                # close_notify once we sent ours (without, ssl returns b""), or TCP closed
                # without one: an end all the same (framing errors are the parsers' to find)
                self._eof = True
                return
            except ssl.SSLError as exc:
                raise TunnelError(describe_failure(exc, self.where)) from None
            if not piece:  # close_notify
                self._eof = True
                return
            self._plain += piece

    async def recv(self) -> bytes:
        """The next plaintext (at most one read's worth), or b"" once the server has ended."""
        while not self._plain:
            if self._eof:
                return b""
            data = await self._reader.read(READ_SIZE)
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()
            self._decrypt()
            await self._flush()  # what reading produced (a KeyUpdate answer, an alert)
        data = bytes(self._plain)
        self._plain.clear()
        return data

    async def send(self, data: bytes) -> None:
        if self._shut:
            raise LocalProtocolError("send after shutdown_write")
        try:
            self._obj.write(data)
        except ssl.SSLError as exc:
            raise TunnelError(describe_failure(exc, self.where)) from None
        await self._flush()

    async def shutdown_write(self) -> None:
        """Send ``close_notify``: no more data from us; the server may go on sending."""
        if self._shut:
            return
        self._shut = True
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLError):
            self._obj.unwrap()  # sends close_notify, then wants the server's: not waited for
        await self._flush()

    def abort(self) -> None:
        self._writer.transport.abort()

    async def close(self) -> None:
        """Say goodbye (``close_notify``, best effort) and close the connection."""
        if not self._shut and not self._writer.is_closing():
            self._shut = True
            with contextlib.suppress(ssl.SSLError):
                self._obj.unwrap()
            out = self._out.read()
            if out:
                self._writer.write(out)
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(2):
                await self._writer.wait_closed()


async def pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    tls: TlsStream,
    first_up: bytes = b"",
    first_down: bytes = b"",
) -> None:
    """Bytes both ways until both sides have ended; each end is passed on as a half-close."""

    async def up() -> None:
        if first_up:
            await tls.send(first_up)
        while data := await reader.read(READ_SIZE):
            await tls.send(data)
        await tls.shutdown_write()

    async def down() -> None:
        if first_down:
            writer.write(first_down)
            await writer.drain()
        while data := await tls.recv():
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            exc = task.exception()
            if exc is not None:
                log.info(
                    "tunnel: pipe to %s ended: %s", tls.where, describe_failure(exc, tls.where)
                )
                tls.abort()
                writer.transport.abort()
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
