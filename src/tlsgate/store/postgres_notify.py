"""LISTEN for certificates other nodes store, so every node serves a renewal within a second.

Why a thread with a connection of its own: a listening connection must sit idle outside any
transaction, waiting for the server to push, while the store's own connection runs short
transactions under a lock; and ``serve``'s master runs a uvloop event loop that psycopg's async
API would have to share. The thread blocks in ``Connection.notifies`` with a short timeout (so
:meth:`CertificateListener.close` is honoured within a second) and calls ``changed(name)`` for
each notification.

PostgreSQL forgets what it sent while nobody listened, so after every (re)connection the
listener calls ``changed("")``: "look at everything". A lost connection (a restart, a failover, a
network cut) is retried with growing pauses, never given up; the caller polls as well, so the
listener only makes pick-up quick, it is not what makes it certain.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

__all__ = ["CERTIFICATES_CHANNEL", "CertificateListener"]

log = logging.getLogger("tlsgate.store")

#: The channel ``save_managed`` notifies on, with the certificate's name as the payload.
CERTIFICATES_CHANNEL = "tlsgate_certificates"
#: Pauses between reconnection attempts, in seconds (the last one repeats).
_RECONNECT = (0.5, 1.0, 2.0, 5.0)
_CONNECT_TIMEOUT = 10
#: How long one wait for notifications lasts: the longest :meth:`close` waits for the thread.
_WAIT = 0.5


class CertificateListener:
    """``LISTEN tlsgate_certificates`` in a daemon thread until :meth:`close`."""

    def __init__(self, url: str, where: str, changed: Callable[[str], None]) -> None:
        self._url = url
        self._where = where
        self._changed = changed
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="tlsgate-listen-certificates", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(_WAIT * 4)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._url,
                    autocommit=True,
                    connect_timeout=_CONNECT_TIMEOUT,
                    application_name="tlsgate-listen",
                ) as conn:
                    conn.execute(f"LISTEN {CERTIFICATES_CHANNEL}".encode())
                    if failures:
                        log.debug("listening for certificates at %s again", self._where)
                    failures = 0
                    self._notify("")  # whatever was stored while nobody listened
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=_WAIT):
                            self._notify(note.payload)
            except psycopg.Error as exc:
                # The store's own operations report outages (once, with the reason); here it
                # is only a reason to reconnect, and to tell the caller to look now.
                log.debug("listening for certificates at %s failed: %s", self._where, exc)
                if failures == 0:
                    self._notify("")
                pause = _RECONNECT[min(failures, len(_RECONNECT) - 1)]
                failures += 1
                self._stop.wait(pause)

    def _notify(self, name: str) -> None:
        try:
            self._changed(name)
        except Exception:  # the caller's bug must not end the listening for good
            log.exception("certificate change callback failed")
