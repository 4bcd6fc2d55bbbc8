"""Whether the store answers, as ``serve`` tells operators: one log line per change, not per try.

A long-running process keeps working through a store outage (it serves the certificates it
holds; renewals wait), so an outage is a state to report, not an error to raise: a line when it
starts (with the reason), a line when it ends (with how long it lasted), and a value for the
``tlsgate_store_up`` gauge in between. Every retry in between is silent, so a ten-minute outage
with retries every second is two lines in the log, not six hundred.

Several threads report here (the renewal loop in the event loop, the certificate watcher in its
own thread), hence the lock.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["StoreHealth"]

log = logging.getLogger("tlsgate.store")


class StoreHealth:
    def __init__(self, location: str) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self.error: str | None = None

    @property
    def up(self) -> bool:
        return self._down_since is None

    def failed(self, error: BaseException | str) -> None:
        """An operation failed because the store is unreachable (a StorageError)."""
        with self._lock:
            self.error = str(error)
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        # PostgreSQL's errors name the database again ("PostgreSQL at h:p/db is unreachable:
        # ..."); the line says where once.
        detail = str(error).split(" is unreachable: ", 1)[-1]
        log.error(
            "the store at %s is unreachable; serving the certificates held, renewals wait: %s",
            self.location,
            detail,
        )

    def ok(self) -> None:
        """An operation on the store succeeded."""
        with self._lock:
            since = self._down_since
            if since is None:
                return
            self._down_since = None
            self.error = None
        log.warning(
            "the store at %s is reachable again (after %.0f s)",
            self.location,
            time.monotonic() - since,
        )
