"""Types of the compiled data plane (``_fast.pyx``): the interface of access_log.py, headers.py,
protocol.py and upstream.py."""

import asyncio
import socket
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from tlsgate.http import Headers, Request, Response
from tlsgate.proxy.edge import Edge
from tlsgate.proxy.headers import ClientInfo
from tlsgate.proxy.settings import UpstreamAddress
from tlsgate.tls.clienthello import ClientHello
from tlsgate.tls.tickets import TicketKeys

class UpstreamState:
    upstream: UpstreamAddress
    active: int
    failures: int
    down_until: float
    def __init__(
        self, upstream: UpstreamAddress, active: int = 0, failures: int = 0, down_until: float = 0.0
    ) -> None: ...
    def healthy(self, now: float) -> bool: ...

class Balancer:
    states: list[UpstreamState]
    least_conn: bool
    def __init__(self, states: list[UpstreamState], least_conn: bool = False) -> None: ...
    @classmethod
    def of(cls, upstreams: Sequence[UpstreamAddress], balance: str = "round_robin") -> Balancer: ...
    def pick(self, now: float, *, exclude: UpstreamState | None = None) -> UpstreamState: ...
    @staticmethod
    def failed(state: UpstreamState, now: float) -> None: ...
    @staticmethod
    def succeeded(state: UpstreamState) -> None: ...

class AccessRecord:
    client: str
    method: str | None
    target: str | None
    host: str
    status: int
    bytes_sent: int
    upstream: str
    duration: float
    error: str
    site: str
    def __init__(
        self,
        client: str,
        method: str | None,
        target: str | None,
        host: str,
        status: int,
        bytes_sent: int,
        upstream: str,
        duration: float,
        error: str = "",
        site: str = "",
    ) -> None: ...

class AccessLog:
    fd: int | None
    def __init__(self, target: str, *, clock: Callable[[], float] | None = None) -> None: ...
    def __call__(self, record: AccessRecord) -> None: ...
    def add_request(
        self,
        client: str,
        method: bytes,
        target: bytes,
        host: str,
        status: int,
        bytes_sent: int,
        upstream: str,
        duration: float,
        error: str = "",
    ) -> None: ...
    def flush(self) -> None: ...

def forwarded_request_headers(
    headers: Headers,
    client: ClientInfo,
    *,
    host: bytes,
    trusted: bool,
    upgrade: bytes | None = None,
    via: bool = False,
    client_cert: bytes | None = None,
) -> Headers: ...
def request_head(
    request: Request,
    client: ClientInfo,
    *,
    host: bytes,
    trusted: bool,
    via: bool = False,
    client_cert: bytes | None = None,
    chunked: bool = False,
) -> bytes: ...
def response_headers(
    headers: Headers,
    *,
    hsts: bytes | None,
    via: bool = False,
    upgrade: bytes | None = None,
) -> Headers: ...
def response_head(
    response: Response,
    request: Request,
    *,
    hsts: bytes | None,
    via: bool = False,
    close: bool = False,
) -> tuple[bytes, bool, bool]: ...

class UpstreamConnection(asyncio.Protocol):
    upstream: UpstreamAddress
    reused: bool
    closed: bool
    write_paused: bool
    read_paused: bool
    idle_since: float
    def __init__(self, upstream: UpstreamAddress) -> None: ...
    def write(self, data: bytes) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def close(self) -> None: ...

class UpstreamPool:
    loop: asyncio.AbstractEventLoop
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def take(self, upstream: UpstreamAddress) -> UpstreamConnection | None: ...
    def connect(
        self, upstream: UpstreamAddress, timeout: float
    ) -> Coroutine[Any, Any, UpstreamConnection]: ...
    def release(self, conn: UpstreamConnection) -> None: ...
    def close(self) -> None: ...

class ClientProtocol(asyncio.BufferedProtocol):
    edge: Edge
    busy: bool
    closed: bool
    tunnel: UpstreamConnection | None
    def __init__(self, edge: Edge) -> None: ...
    def close(self) -> None: ...

# -- OpenSSL on the socket (_fast_tls.pxi; the interface socket_tls.py documents) -------------

class TLSFailure(ConnectionError):
    reason: str
    def __init__(self, message: str, reason: str = "") -> None: ...

class TLSInfo:
    @property
    def tlsgate_sni(self) -> str | None: ...
    @property
    def server_hostname(self) -> str | None: ...
    @property
    def server_side(self) -> bool: ...
    @property
    def context(self) -> ssl.SSLContext: ...
    @property
    def session_reused(self) -> bool: ...
    def version(self) -> str | None: ...
    def selected_alpn_protocol(self) -> str | None: ...
    def cipher(self) -> tuple[str, str, int] | None: ...
    def getpeercert(self, binary_form: bool = False) -> bytes | None: ...

MEMO_MAX: int

class _EdgeMemo:
    def sizes(self) -> dict[str, int]: ...

class TLSTransport(asyncio.Transport):
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.BaseProtocol | None,
        ctx: ssl.SSLContext,
        lookup: Callable[[str], ssl.SSLContext | None] | None,
        fd: int,
        peername: Any,
        timers: object,  # the listener's handshake deadlines (_fast_timers.pxi)
        poll: object,  # the listener's epoll set (_fast_readiness.pxi)
        choose: Callable[..., Any] | None = None,
    ) -> None: ...

class TLSAcceptor:
    sock: socket.socket
    def __init__(
        self,
        sock: socket.socket,
        ctx: ssl.SSLContext,
        factory: Callable[[], asyncio.BaseProtocol] | None,
        lookup: Callable[[str], ssl.SSLContext | None] | None,
        handshake_timeout: float,
        choose: Callable[[ClientHello], tuple[ssl.SSLContext, Callable[[], asyncio.BaseProtocol]]]
        | None = None,
    ) -> None: ...
    def stop_accepting(self) -> None: ...
    def close(self) -> None: ...

def openssl_version_number() -> int: ...
def install_sni(ctx: ssl.SSLContext, checked_pointer: int) -> None: ...
def install_choice(ctx: ssl.SSLContext, checked_pointer: int) -> None: ...

class TicketRing:
    def __init__(self, keys: TicketKeys) -> None: ...
    def counts(self) -> tuple[int, int, int, int]: ...

def compile_ticket_keys(ctx: ssl.SSLContext, checked_pointer: int, ring: TicketRing) -> None: ...
def filter_session_callbacks(
    ctx: ssl.SSLContext, checked_pointer: int, new_session: int, info: int
) -> None: ...
