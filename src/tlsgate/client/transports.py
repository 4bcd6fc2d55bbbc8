"""httpx transports that present a client identity and follow its renewals.

``httpx.Client(transport=httpx_transport(identity="spiffe://..."))`` is all a Python service
needs for mutual TLS with a `serve` site: the transport verifies the server like
:func:`~tlsgate.client.context.ssl_context` does, renews the certificate in a background thread
and loads the new one before the next request (its connection pool keeps the context, so new
connections present the new certificate; open ones keep theirs, which the server accepted).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tlsgate.client.context import ReloadingIdentity
from tlsgate.client.identity import DEFAULT_LIFETIME

__all__ = [
    "AsyncIdentityTransport",
    "IdentityTransport",
    "async_httpx_transport",
    "httpx_transport",
]


class IdentityTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport(verify=identity.context)`` that refreshes the identity first."""

    def __init__(self, identity: ReloadingIdentity, *, owned: bool = False, **kwargs: Any) -> None:
        super().__init__(verify=identity.context, **kwargs)
        self.identity = identity
        self._owned = owned

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.identity.refresh()
        return super().handle_request(request)

    def close(self) -> None:
        super().close()
        if self._owned:
            self.identity.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        # httpx.Client's exit calls this, not close(): the renewal thread must stop either way
        super().__exit__(exc_type, exc_value, traceback)
        if self._owned:
            self.identity.close()


class AsyncIdentityTransport(httpx.AsyncHTTPTransport):
    """The same for ``httpx.AsyncClient``; the certificate is loaded on the event loop's thread."""

    def __init__(self, identity: ReloadingIdentity, *, owned: bool = False, **kwargs: Any) -> None:
        super().__init__(verify=identity.context, **kwargs)
        self.identity = identity
        self._owned = owned

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.identity.refresh()
        return await super().handle_async_request(request)

    async def aclose(self) -> None:
        await super().aclose()
        if self._owned:
            self.identity.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        await super().__aexit__(exc_type, exc_value, traceback)
        if self._owned:
            self.identity.close()


def _identity(
    identity: str,
    state: str | Path | None,
    trust: Path | None,
    lifetime: timedelta,
    expect_spiffe: str | None,
    renew: bool,
) -> ReloadingIdentity:
    keeper = ReloadingIdentity(
        identity, state=state, trust=trust, lifetime=lifetime, expect_spiffe=expect_spiffe
    )
    if renew:
        keeper.start()
    return keeper


def httpx_transport(
    *,
    identity: str,
    state: str | Path | None = None,
    trust: Path | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    expect_spiffe: str | None = None,
    renew: bool = True,
    **kwargs: Any,
) -> IdentityTransport:
    """A transport for ``httpx.Client`` presenting ``identity``, renewed while it is open.

    ``kwargs`` go to ``httpx.HTTPTransport`` (``retries``, ``limits``, ...); ``verify`` is ours.
    Closing the client stops the renewal thread.
    """
    keeper = _identity(identity, state, trust, lifetime, expect_spiffe, renew)
    return IdentityTransport(keeper, owned=True, **kwargs)


def async_httpx_transport(
    *,
    identity: str,
    state: str | Path | None = None,
    trust: Path | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
    expect_spiffe: str | None = None,
    renew: bool = True,
    **kwargs: Any,
) -> AsyncIdentityTransport:
    """:func:`httpx_transport` for ``httpx.AsyncClient``."""
    keeper = _identity(identity, state, trust, lifetime, expect_spiffe, renew)
    return AsyncIdentityTransport(keeper, owned=True, **kwargs)
