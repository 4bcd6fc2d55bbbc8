"""The exchange's phase table, without sockets: every move it allows, every one it refuses."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tlsgate.http import Request, RequestParser
from tlsgate.proxy import phase as phase_module
from tlsgate.proxy.exchange import Exchange
from tlsgate.proxy.phase import (
    HEAD_SENT,
    LIVE,
    READS_BODY,
    REQUEST_READ,
    TERMINAL,
    TRANSITIONS,
    Phase,
    PhaseError,
    PhaseEvent,
    PhaseMachine,
)

P = Phase
E = PhaseEvent

#: The table written out again by hand, so that a change to it is a change to this test too.
EXPECTED = {
    (P.ROUTING, E.ANSWER_LOCALLY): P.LOCAL,
    (P.ROUTING, E.CONNECT): P.CONNECTING,
    (P.LOCAL, E.REQUEST_END): P.DONE,
    (P.CONNECTING, E.CONNECT): P.CONNECTING,
    (P.CONNECTING, E.ATTACH): P.SENDING_BODY,
    (P.RECONNECTING, E.CONNECT): P.RECONNECTING,
    (P.RECONNECTING, E.ATTACH): P.AWAITING_RESPONSE,
    (P.SENDING_BODY, E.REQUEST_END): P.AWAITING_RESPONSE,
    (P.SENDING_BODY, E.RESPONSE_HEAD): P.DUPLEX,
    (P.SENDING_BODY, E.CONNECT): P.CONNECTING,
    (P.AWAITING_RESPONSE, E.RESPONSE_HEAD): P.RESPONDING,
    (P.AWAITING_RESPONSE, E.SWITCH): P.SWITCHING,
    (P.AWAITING_RESPONSE, E.CONNECT): P.RECONNECTING,
    (P.DUPLEX, E.REQUEST_END): P.RESPONDING,
    (P.DUPLEX, E.RESPONSE_END): P.DONE,
    (P.RESPONDING, E.RESPONSE_END): P.DONE,
    (P.SWITCHING, E.RESPONSE_END): P.SWITCHING,
    (P.SWITCHING, E.UPGRADED): P.TUNNEL,
    **{(phase, E.ABORT): P.ABORTED for phase in P if phase not in TERMINAL},
}


def machine_in(phase: Phase) -> PhaseMachine:
    m = PhaseMachine()
    m.phase = phase
    return m


def test_table_is_the_expected_one() -> None:
    assert TRANSITIONS == EXPECTED


@pytest.mark.parametrize(("start", "event"), sorted(EXPECTED))
def test_every_allowed_transition(start: Phase, event: PhaseEvent) -> None:
    m = machine_in(start)
    assert m.process(event) is EXPECTED[start, event]
    assert m.phase is EXPECTED[start, event]


@pytest.mark.parametrize(
    ("start", "event"),
    sorted(set(itertools.product(Phase, PhaseEvent)) - set(EXPECTED)),
)
def test_every_other_transition_raises(start: Phase, event: PhaseEvent) -> None:
    m = machine_in(start)
    with pytest.raises(PhaseError) as info:
        m.process(event)
    assert (info.value.phase, info.value.event) == (start, event)
    assert event.name in str(info.value) and start.name in str(info.value)
    assert m.phase is start  # a refused event changes nothing


def test_table_is_complete() -> None:
    """Every phase is reachable from ROUTING, every live phase can end, terminal ones are ends,
    and every event is used somewhere."""
    assert {phase for phase, _ in TRANSITIONS} == set(LIVE)
    assert {event for _, event in TRANSITIONS} == set(PhaseEvent)
    assert LIVE | TERMINAL == set(Phase) and not LIVE & TERMINAL
    reached = {P.ROUTING}
    frontier = [P.ROUTING]
    while frontier:
        phase = frontier.pop()
        for (start, _), end in TRANSITIONS.items():
            if start is phase and end not in reached:
                reached.add(end)
                frontier.append(end)
    assert reached == set(Phase)
    for phase in LIVE:  # from anywhere alive, an end is one ABORT away
        assert TRANSITIONS[phase, E.ABORT] is P.ABORTED
    for phase in TERMINAL:
        assert not any(start is phase for start, _ in TRANSITIONS)


def test_phase_sets_agree_with_the_table() -> None:
    """The sets ``protocol.py`` guards on follow from the table's edges."""
    # The body is read while its end is awaited (REQUEST_END allowed) and nothing is connecting.
    assert {start for start, event in TRANSITIONS if event is E.REQUEST_END} == set(READS_BODY)
    # Once past REQUEST_END (and not aborted), the request stays read.
    for (start, event), end in TRANSITIONS.items():
        if event is E.REQUEST_END:
            assert end in REQUEST_READ
        if start in REQUEST_READ and end is not P.ABORTED:
            assert end in REQUEST_READ
        if start in HEAD_SENT and end is not P.ABORTED:
            assert end in HEAD_SENT | {P.DONE}
        if event in (E.RESPONSE_HEAD, E.SWITCH):
            assert end in HEAD_SENT
    assert not READS_BODY & REQUEST_READ


def test_the_typical_lives() -> None:
    keep_alive = [E.CONNECT, E.ATTACH, E.REQUEST_END, E.RESPONSE_HEAD, E.RESPONSE_END]
    early_answer = [E.CONNECT, E.ATTACH, E.RESPONSE_HEAD, E.RESPONSE_END]
    retried = [E.CONNECT, E.ATTACH, E.REQUEST_END, E.CONNECT, E.ATTACH, E.RESPONSE_HEAD]
    upgrade = [E.CONNECT, E.ATTACH, E.REQUEST_END, E.SWITCH, E.RESPONSE_END, E.UPGRADED]
    for events, end in [
        (keep_alive, P.DONE),
        (early_answer, P.DONE),
        (retried, P.RESPONDING),
        (upgrade, P.TUNNEL),
        ([E.ANSWER_LOCALLY, E.REQUEST_END], P.DONE),
        ([E.CONNECT, E.CONNECT, E.ABORT], P.ABORTED),
    ]:
        m = PhaseMachine()
        for event in events:
            m.process(event)
        assert m.phase is end


def test_members_as_module_constants() -> None:
    for member in [*Phase, *PhaseEvent]:
        assert getattr(phase_module, member.name) is member
        assert member.name in phase_module.__all__


def test_an_exchange_starts_routing() -> None:
    request = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")[0]
    assert isinstance(request, Request)
    x = Exchange(request, "a", 0.0)
    assert x.phase is P.ROUTING
    assert x.process(E.CONNECT) is P.CONNECTING


@given(st.lists(st.sampled_from(list(PhaseEvent)), max_size=30))
def test_random_event_sequences_follow_the_table(events: list[PhaseEvent]) -> None:
    m = PhaseMachine()
    for event in events:
        before = m.phase
        expected = TRANSITIONS.get((before, event))
        if expected is None:
            with pytest.raises(PhaseError):
                m.process(event)
            assert m.phase is before
        else:
            assert m.process(event) is expected
        if m.phase in TERMINAL:  # nothing moves an ended exchange
            for other in PhaseEvent:
                with pytest.raises(PhaseError):
                    machine_in(m.phase).process(other)
