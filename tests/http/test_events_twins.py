"""events.py's dataclasses and their compiled twins (fast_events.pyx) have one face: the same
constructor and defaults, equality, repr, ``__match_args__``, unhashability and fields only."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.http import events
from tlsgate.http.events import BodyKind

fast = pytest.importorskip("tlsgate.http.fast_events", reason="the compiled events are not built")

NAMES = ["Request", "Response", "Data", "EndOfMessage", "Upgraded"]
VALUE = st.one_of(
    st.binary(max_size=8),
    st.none(),
    st.booleans(),
    st.integers(-5, 600),
    st.sampled_from(list(BodyKind)),
    st.lists(st.tuples(st.binary(max_size=4), st.binary(max_size=4)), max_size=2),
)


def pair(name: str) -> tuple[Any, Any]:
    return getattr(events, "Pure" + name), getattr(fast, name)


@pytest.mark.parametrize("name", NAMES)
def test_same_fields_and_match_args(name: str) -> None:
    pure, compiled = pair(name)
    assert compiled.__match_args__ == pure.__match_args__
    assert compiled.__name__ == pure.__name__


@pytest.mark.parametrize("name", NAMES)
@given(data=st.data())
def test_same_construction_equality_and_repr(name: str, data: st.DataObject) -> None:
    pure, compiled = pair(name)
    fields = pure.__match_args__
    # Every field positionally, or only the required ones by keyword (defaults for the rest).
    values = [data.draw(VALUE) for _ in fields]
    p, c = pure(*values), compiled(*values)
    assert repr(c) == repr(p)
    assert [getattr(c, f) for f in fields] == [getattr(p, f) for f in fields]
    assert c == compiled(*values) and not (c != compiled(*values))
    assert c == p and p == c  # twins: equal fields are equal events, either way round
    required = {
        "Request": 7,
        "Response": 7,
        "Data": 1,
        "EndOfMessage": 0,
        "Upgraded": 1,
    }[name]
    kwargs = dict(zip(fields[:required], values[:required], strict=True))
    assert repr(compiled(**kwargs)) == repr(pure(**kwargs))
    if required < len(fields):
        changed = list(values)
        changed[-1] = object()
        assert compiled(*changed) != c


@pytest.mark.parametrize("name", NAMES)
def test_unhashable_and_closed(name: str) -> None:
    pure, compiled = pair(name)
    args = [b""] * len(pure.__match_args__)
    for cls in (pure, compiled):
        obj = cls(*args)
        with pytest.raises(TypeError):
            hash(obj)
        with pytest.raises(AttributeError):
            obj.not_a_field = 1


def test_end_of_message_defaults_to_its_own_empty_list() -> None:
    a, b = fast.EndOfMessage(), fast.EndOfMessage()
    assert a.trailers == [] and a.trailers is not b.trailers
