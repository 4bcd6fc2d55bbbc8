"""The connection budget that ends a recycled worker's accepting, without processes."""

from __future__ import annotations

import pytest

from tlsgate.proxy.lifecycle import ConnectionBudget


def test_the_budget_is_spent_once_at_the_limit() -> None:
    calls: list[int] = []
    budget = ConnectionBudget(3, lambda: calls.append(budget.accepted))
    factory = budget.wrap(lambda: "protocol")
    results = [factory() for _ in range(7)]
    assert results == ["protocol"] * 7
    assert calls == [3]  # once, at the third connection; later ones are served, not re-signalled
    assert budget.spent and budget.accepted == 7


def test_a_zero_budget_is_never_spent() -> None:
    budget = ConnectionBudget(0, lambda: pytest.fail("spent with no limit"))
    choose = budget.wrap(lambda hello, *, normal: (hello, normal))
    for i in range(100):
        assert choose(i, normal=1) == (i, 1)
    assert not budget.spent and budget.accepted == 100
