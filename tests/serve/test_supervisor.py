"""Worker recycling's parts without processes: the master's handling of "spent" messages and
the periodic heap trim (the connection budget: tests/proxy/test_lifecycle.py)."""

from __future__ import annotations

import asyncio
import os

import pytest

from tlsgate.proxy.lifecycle import ConnectionBudget
from tlsgate.serve import supervisor
from tlsgate.serve.supervisor import Recycler, Slot


def test_the_master_starts_a_successor_for_each_spent_worker_once() -> None:
    pids = iter(range(1000, 2000))
    forked: list[Slot] = []

    def fork(slot: Slot) -> int:
        forked.append(slot)
        return next(pids)

    children: list[int] = []
    slots = [Slot([]), Slot([])]
    recycler = Recycler(slots, fork, children)
    try:
        recycler.start_all()
        assert [s.pid for s in slots] == [1000, 1001] and children == [1000, 1001]
        # The worker writes its own pid; this process plays slot 1's worker.
        slots[1].pid = os.getpid()
        recycler.spent()
        recycler.spent()  # a duplicate (or late) message: the slot has a successor already
        recycler.on_message()
        assert forked == [slots[0], slots[1], slots[1]]
        assert slots[1].pid == 1002 and slots[1].served == 2
        assert children == [1000, 1001, 1002]
        recycler.on_message()  # nothing more to read
        assert len(forked) == 3
    finally:
        recycler.close()


def test_a_message_split_across_reads_is_kept_until_whole() -> None:
    recycler = Recycler([Slot([], pid=os.getpid())], lambda slot: 4242, [])
    try:
        message = supervisor._MESSAGE.pack(os.getpid())
        os.write(recycler.write_fd, message[:3])
        recycler.on_message()
        assert recycler.slots[0].pid == os.getpid()
        os.write(recycler.write_fd, message[3:])
        recycler.on_message()
        assert recycler.slots[0].pid == 4242
    finally:
        recycler.close()


def test_the_heap_is_trimmed_only_after_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker gives free heap pages back periodically, and only when there was churn."""
    trims: list[int] = []
    budget = ConnectionBudget(0, lambda: None)
    monkeypatch.setattr(supervisor, "TRIM_INTERVAL", 0.01)

    def trim() -> bool:
        trims.append(budget.accepted)
        return True

    monkeypatch.setattr(supervisor, "trim_heap", trim)

    async def scenario() -> None:
        task = asyncio.create_task(supervisor.trim_loop(budget))
        await asyncio.sleep(0.1)  # idle: nothing to give back
        assert trims == []
        budget.wrap(lambda: None)()
        for _ in range(200):  # bounded wait for the next period
            if trims:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # and no further trims without new connections
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert trims == [1]


def test_trim_heap_calls_glibc() -> None:
    """On glibc (the platform serve runs on) the trim reaches malloc_trim."""
    assert supervisor._malloc_trim() is not None
    assert isinstance(supervisor.trim_heap(), bool)
