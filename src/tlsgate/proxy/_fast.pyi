"""Types of the compiled data-plane helpers (``_fast.pyx``): the interface of access_log.py and
headers.py."""

from collections.abc import Callable

from tlsgate.http import Headers, Request, Response
from tlsgate.proxy.headers import ClientInfo

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
