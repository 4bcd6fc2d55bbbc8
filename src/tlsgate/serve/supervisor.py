"""Worker processes of ``tlsgate serve``: fork them, tie them to the master, reap and replace them.

Given a callable that runs one process's event loop (:class:`WorkerLoop`), :class:`Supervisor`
decides which processes run it: with one worker the master itself; with more, ``workers`` forked
children that each bind the listeners (``SO_REUSEPORT``: the kernel spreads connections across
them); with recycling, children forked onto sockets the master holds. It knows nothing of sites,
certificates or listeners' addresses; :mod:`tlsgate.serve.listeners` binds the sockets, and
:mod:`tlsgate.proxy.lifecycle` counts and drains a worker's connections.

Recycling, and why: under connection churn a worker's resident memory creeps up and never comes
back. Measured (bench/churn.py, bench/README.md): Python's objects and the bytes glibc has handed
out stay flat; what grows is memory glibc keeps *free* inside its heap (``malloc_info``),
fragmented by the per-connection TLS and socket buffers so that it cannot be returned. That is the
allocator's doing, not a leak of ours, so it is bounded instead: ``malloc_trim`` now and then
(:func:`trim_heap`), and with ``max_connections_per_worker`` a fresh worker after N connections.

How a worker is replaced without a connection lost: with recycling on, the master binds the
listening sockets (one set per worker slot, ``SO_REUSEPORT`` between slots) and keeps them open;
workers inherit them. A worker that reaches its budget stops accepting, tells the master (a pipe)
and drains as on SIGTERM; the master forks the slot's next worker at once, from its own state
(current certificates, tickets, staples). Connections that arrive in between wait in the socket's
accept queue, which never closes because the master holds it, and the new worker accepts them.
The master also replaces a worker that died: a slot without a worker would hold its share of
connections unanswered.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tlsgate.proxy.lifecycle import ConnectionBudget

__all__ = [
    "REAP_INTERVAL",
    "Recycler",
    "Slot",
    "Supervisor",
    "WorkerLoop",
    "die_with",
    "label_logs",
    "reap_worker",
    "signal_worker",
    "trim_heap",
    "trim_loop",
]

log = logging.getLogger("tlsgate.serve")

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

#: A worker gives glibc's free heap pages back this often if it accepted connections meanwhile.
TRIM_INTERVAL = 10.0
#: A died worker is replaced at most this often per slot (a worker that dies at start must
#: not turn the master into a fork loop).
RESPAWN_DELAY = 1.0
#: How often the master looks for workers that exited (with recycling on).
REAP_INTERVAL = 0.2
#: One message on the recycling pipe: the worker's pid (written at once: atomic below PIPE_BUF).
_MESSAGE = struct.Struct("=q")


class WorkerLoop(Protocol):
    """Runs one process's event loop until it stops; its exit code.

    ``master``: this process runs the control plane (renewal, store watch, admin listener).
    ``listen``: it serves the listeners (a master with forked workers does not). ``slot``: the
    sockets the master holds for this worker (recycling), else it binds its own.
    """

    def __call__(self, *, master: bool, listen: bool, slot: Slot | None) -> int: ...


class Supervisor:
    """The master's workers: forked, told of signals, reaped; replaced when recycling.

    ``run_loop`` is what each process runs (the master's too); ``after_fork`` runs first in
    each fresh worker, for what must not cross ``fork()`` (a database connection, counters).
    """

    def __init__(self, run_loop: WorkerLoop, *, after_fork: Callable[[], None]) -> None:
        self.run_loop = run_loop
        self.after_fork = after_fork
        self.children: list[int] = []  # live workers, retiring ones until reaped
        self.recycler: Recycler | None = None
        self._forked = 0  # workers forked so far

    def run(self, workers: int, *, recycle: Callable[[], list[socket.socket]] | None = None) -> int:
        """Run ``workers`` workers until the master's loop stops. ``recycle``: bind one slot's
        listening sockets; given, the master holds them and replaces spent workers."""
        if recycle is not None:
            return self._run_recycling(workers, recycle)
        if workers == 1:
            return self.run_loop(master=True, listen=True, slot=None)
        for _ in range(workers):
            self.children.append(self._fork(os.getpid(), None))
        return self.run_loop(master=True, listen=False, slot=None)

    def _run_recycling(self, workers: int, bind: Callable[[], list[socket.socket]]) -> int:
        """The master holds every slot's listeners and forks workers onto them, then and
        whenever one is spent or dies."""
        slots = [Slot(bind()) for _ in range(workers)]
        master = os.getpid()
        self.recycler = Recycler(slots, lambda slot: self._fork(master, slot), self.children)
        try:
            self.recycler.start_all()
            return self.run_loop(master=True, listen=False, slot=None)
        finally:
            self.recycler.close()

    def _fork(self, master: int, slot: Slot | None) -> int:
        """Fork a worker (serving ``slot``'s listeners if given); its pid, in the master."""
        self._forked += 1  # a worker's number: a replacement gets a new one
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            # A successor is forked inside the master's running loop: this process starts
            # its own, and never returns to the master's.
            asyncio.events._set_running_loop(None)
            label_logs(f"worker {self._forked} (pid {os.getpid()})")
            die_with(master)
            if self.recycler is not None and slot is not None:
                self.recycler.close_in_worker(slot)
            self.children = []
            self.after_fork()
            code = self.run_loop(master=False, listen=True, slot=slot)
        finally:
            os._exit(code)

    def spent(self) -> None:
        """Worker: ``max_connections_per_worker`` reached; ask the master for a successor."""
        assert self.recycler is not None
        self.recycler.spent()

    def tell(self, sig: int) -> None:
        """Master: send ``sig`` to every worker (SIGHUP: reload; SIGTERM: stop)."""
        for pid in self.children:
            signal_worker(pid, sig)

    def reap_all(self, timeout: float) -> None:
        """Master, stopping: wait for every worker, killing one still there after ``timeout``."""
        for pid in self.children:
            reap_worker(pid, timeout)


@dataclass
class Slot:
    """One worker's place: its listening sockets (held by the master) and its current worker."""

    sockets: list[socket.socket]
    pid: int = 0
    served: int = 0  # workers this slot has had
    last_start: float = field(default=0.0)


class Recycler:
    """The master's side: start each slot's worker, replace it when it is spent or dies.

    ``fork(slot)`` forks a worker for ``slot`` and returns its pid in the master (the child
    never returns from it). ``children`` is the master's list of live workers, retiring ones
    included until they are reaped: SIGHUP and SIGTERM go to all of them.
    """

    def __init__(self, slots: list[Slot], fork: Callable[[Slot], int], children: list[int]):
        self.slots = slots
        self._fork = fork
        self.children = children
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._pending = b""

    def start_all(self) -> None:
        for slot in self.slots:
            self._start(slot)

    def _start(self, slot: Slot) -> None:
        slot.last_start = time.monotonic()
        slot.pid = self._fork(slot)
        slot.served += 1
        self.children.append(slot.pid)

    # -- in a worker -------------------------------------------------------------------------------
    def spent(self) -> None:
        """Worker side: tell the master this worker needs a successor (it drains meanwhile)."""
        try:
            os.write(self.write_fd, _MESSAGE.pack(os.getpid()))
        except OSError as exc:  # the master is gone: the worker stops with it anyway
            log.warning("cannot ask the master for a successor: %s", exc)

    def close_in_worker(self, keep: Slot) -> None:
        """In a fresh worker: drop what belongs to the master and to other slots."""
        os.close(self.read_fd)
        for slot in self.slots:
            if slot is not keep:
                for sock in slot.sockets:
                    sock.close()

    # -- in the master -----------------------------------------------------------------------------
    def on_message(self) -> None:
        """The pipe is readable: replace every worker that said it is spent."""
        try:
            data = os.read(self.read_fd, 64 * _MESSAGE.size)
        except (BlockingIOError, InterruptedError):
            return
        data, self._pending = self._pending + data, b""
        whole = len(data) - len(data) % _MESSAGE.size
        self._pending = data[whole:]
        for (pid,) in _MESSAGE.iter_unpack(data[:whole]):
            for slot in self.slots:
                if slot.pid == pid:  # else: already replaced (it died meanwhile)
                    self._start(slot)
                    log.info(
                        "worker %d reached max_connections_per_worker and drains; "
                        "worker %d takes its listeners",
                        pid,
                        slot.pid,
                    )

    def reap(self, *, replace: bool = True) -> None:
        """Collect workers that exited; start a slot's next worker if its current one died."""
        for pid in list(self.children):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if not done:
                continue
            self.children.remove(pid)
            for slot in self.slots:
                if slot.pid == pid:
                    slot.pid = 0
                    log.error(
                        "worker %d exited unexpectedly (%s); starting another",
                        pid,
                        _describe(status),
                    )
        if not replace:
            return
        now = time.monotonic()
        for slot in self.slots:
            if slot.pid == 0 and now - slot.last_start >= RESPAWN_DELAY:
                self._start(slot)

    async def run(self, interval: float) -> None:
        """Master: a successor for every spent worker at once; a died one replaced."""
        loop = asyncio.get_running_loop()
        loop.add_reader(self.read_fd, self.on_message)
        try:
            while True:
                await asyncio.sleep(interval)
                self.reap()
        finally:
            loop.remove_reader(self.read_fd)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        for slot in self.slots:
            for sock in slot.sockets:
                sock.close()


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


async def trim_loop(budget: ConnectionBudget) -> None:
    """Every ``TRIM_INTERVAL`` seconds in which connections came and went, hand glibc's free
    heap pages back (:func:`trim_heap`)."""
    seen = budget.accepted
    while True:
        await asyncio.sleep(TRIM_INTERVAL)
        if budget.accepted != seen:
            seen = budget.accepted
            trim_heap()


def label_logs(label: str) -> None:
    """Prefix this process's log lines with ``label``. The master and every worker log the same
    events (a new certificate or CRL applied, each in its own process): unlabelled, N workers read
    as the same line N + 1 times, and a worker's own trouble could not be told from the master's."""
    make = logging.getLogRecordFactory()

    def labelled(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.msg = f"{label}: {record.msg}"
        return record

    logging.setLogRecordFactory(labelled)


def die_with(master: int) -> None:
    """Have the kernel stop this worker when the master dies, even by SIGKILL or OOM-kill.

    Without it, workers whose master vanished keep the port (SO_REUSEPORT) and serve on with
    stale certificates that nothing renews any more. Linux only (prctl); elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != master:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def signal_worker(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def reap_worker(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return
        time.sleep(0.05)
    signal_worker(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library: nothing to do)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Give the free pages inside glibc's heap back to the kernel (``malloc_trim(0)``). True if
    any were; False also where there is no glibc."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
