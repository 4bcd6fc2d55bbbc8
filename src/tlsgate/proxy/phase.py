"""An exchange's phase: one enum, the events that move it, and the table of allowed moves.

Shaped like h11's ``_state.py``: the life of one proxied request/response is read from a table
(transitions as data, not as ``if`` chains over half a dozen booleans), and
:meth:`PhaseMachine.process` is the only way to change it; an event the table does not allow raises
:class:`PhaseError`, which is always a bug on our side (the peers' mistakes are parse errors or
aborts, both of which the table allows from every live phase).

The life of an exchange (``protocol.py`` drives it)::

    ROUTING --ANSWER_LOCALLY--> LOCAL --REQUEST_END--> DONE      (404/421/403: body read, answered)
    ROUTING --CONNECT--> CONNECTING --ATTACH--> SENDING_BODY
    SENDING_BODY --REQUEST_END--> AWAITING_RESPONSE --RESPONSE_HEAD--> RESPONDING
    RESPONDING --RESPONSE_END--> DONE                (kept alive, or closed if either side asked)
    SENDING_BODY --RESPONSE_HEAD--> DUPLEX   (the upstream answered before the body ended, e.g. 413)
    DUPLEX --REQUEST_END--> RESPONDING;  DUPLEX --RESPONSE_END--> DONE (the connection then closes)
    AWAITING_RESPONSE --SWITCH--> SWITCHING --UPGRADED--> TUNNEL   (101: the connection is a tunnel)
    CONNECTING/RECONNECTING --CONNECT--> same       (a failed connect retried on another upstream)
    SENDING_BODY --CONNECT--> CONNECTING; AWAITING_RESPONSE --CONNECT--> RECONNECTING
        (a pooled connection the upstream had closed while idle: an idempotent request is retried)
    RECONNECTING --ATTACH--> AWAITING_RESPONSE      (the request was read whole before the retry)
    any live phase --ABORT--> ABORTED               (502/504/408, a malformed body, the client left)

DONE, TUNNEL and ABORTED are terminal: the protocol forgets the exchange there. Keep-alive reuse
and a pipelined next request are not phases of an exchange but the start of the next one: the
client connection holds at most one exchange, and queued client events wait while the exchange's
phase does not read a body (:data:`READS_BODY`).

What is deliberately not here: the connection's deadline kind (a timer's purpose, re-armed on
progress), its pause reasons and ``pause_writing`` state (flow control: back-pressure between two
transports, which changes many times within one phase) and the framing decisions (chunked in/out,
close after): they are values an exchange carries, not steps of its life.
"""

from __future__ import annotations

import enum

__all__ = [
    "ABORT",
    "ABORTED",
    "ANSWER_LOCALLY",
    "ATTACH",
    "AWAITING_RESPONSE",
    "CONNECT",
    "CONNECTING",
    "DONE",
    "DUPLEX",
    "HEAD_SENT",
    "LIVE",
    "LOCAL",
    "READS_BODY",
    "RECONNECTING",
    "REQUEST_END",
    "REQUEST_READ",
    "RESPONDING",
    "RESPONSE_END",
    "RESPONSE_HEAD",
    "ROUTING",
    "SENDING_BODY",
    "SWITCH",
    "SWITCHING",
    "TERMINAL",
    "TRANSITIONS",
    "TUNNEL",
    "UPGRADED",
    "Phase",
    "PhaseError",
    "PhaseEvent",
    "PhaseMachine",
]


# IntEnum, not Enum: the table is looked up once per event in the data plane, and Enum's hash
# is a Python-level function while an int's is not.
class Phase(enum.IntEnum):
    """Where one exchange is in its life."""

    ROUTING = 1  # the request head was read; deciding where it goes
    LOCAL = 2  # the edge answers it itself once the request body is read (and dropped)
    CONNECTING = 3  # an upstream connection is being opened; the body waits in the queue
    RECONNECTING = 4  # as CONNECTING, for a request already read whole (a retry)
    SENDING_BODY = 5  # the head went upstream; the request body streams to it
    AWAITING_RESPONSE = 6  # the request went upstream whole; no response head yet
    DUPLEX = 7  # the response streams to the client while the request body still streams up
    RESPONDING = 8  # the request went whole; the response streams to the client
    SWITCHING = 9  # a 101 was relayed; waiting for the upstream side to become a tunnel
    DONE = 10  # answered completely (by the upstream or locally)
    TUNNEL = 11  # handed over to a raw byte tunnel
    ABORTED = 12  # failed: answered with an error if nothing was sent yet, connection closed


class PhaseEvent(enum.IntEnum):
    """What happens to an exchange."""

    ANSWER_LOCALLY = 1  # no route (404/421) or refused by client-certificate policy (403)
    CONNECT = 2  # start opening an upstream connection (first try, or a retry)
    ATTACH = 3  # an upstream connection (pooled or new) took the request head
    REQUEST_END = 4  # the client's request ended (its EndOfMessage)
    RESPONSE_HEAD = 5  # the upstream's final (>= 200) response head was relayed
    SWITCH = 6  # the upstream's 101 to an upgrade request was relayed
    RESPONSE_END = 7  # the upstream's response ended (its EndOfMessage)
    UPGRADED = 8  # the upstream side switched protocols: its bytes are a tunnel's now
    ABORT = 9  # the exchange failed or the client connection went away


# Each member again as a module constant, for the data plane, which names them per event: reading
# a member off its Enum class costs ~100 ns in Python 3.11 (a descriptor), a global ~8 ns.
ROUTING = Phase.ROUTING
LOCAL = Phase.LOCAL
CONNECTING = Phase.CONNECTING
RECONNECTING = Phase.RECONNECTING
SENDING_BODY = Phase.SENDING_BODY
AWAITING_RESPONSE = Phase.AWAITING_RESPONSE
DUPLEX = Phase.DUPLEX
RESPONDING = Phase.RESPONDING
SWITCHING = Phase.SWITCHING
DONE = Phase.DONE
TUNNEL = Phase.TUNNEL
ABORTED = Phase.ABORTED
ANSWER_LOCALLY = PhaseEvent.ANSWER_LOCALLY
CONNECT = PhaseEvent.CONNECT
ATTACH = PhaseEvent.ATTACH
REQUEST_END = PhaseEvent.REQUEST_END
RESPONSE_HEAD = PhaseEvent.RESPONSE_HEAD
SWITCH = PhaseEvent.SWITCH
RESPONSE_END = PhaseEvent.RESPONSE_END
UPGRADED = PhaseEvent.UPGRADED
ABORT = PhaseEvent.ABORT


class PhaseError(RuntimeError):
    """An event the phase table does not allow: the protocol's bug, never the peer's."""

    def __init__(self, phase: Phase, event: PhaseEvent) -> None:
        super().__init__(f"exchange cannot handle {event.name} in phase {phase.name}")
        self.phase = phase
        self.event = event


TERMINAL = frozenset({Phase.DONE, Phase.TUNNEL, Phase.ABORTED})
LIVE = frozenset(Phase) - TERMINAL

_P = Phase
_E = PhaseEvent

#: Every allowed move, as data; anything else raises :class:`PhaseError`.
TRANSITIONS: dict[tuple[Phase, PhaseEvent], Phase] = {
    (_P.ROUTING, _E.ANSWER_LOCALLY): _P.LOCAL,
    (_P.ROUTING, _E.CONNECT): _P.CONNECTING,
    (_P.LOCAL, _E.REQUEST_END): _P.DONE,
    (_P.CONNECTING, _E.CONNECT): _P.CONNECTING,
    (_P.CONNECTING, _E.ATTACH): _P.SENDING_BODY,
    (_P.RECONNECTING, _E.CONNECT): _P.RECONNECTING,
    (_P.RECONNECTING, _E.ATTACH): _P.AWAITING_RESPONSE,
    (_P.SENDING_BODY, _E.REQUEST_END): _P.AWAITING_RESPONSE,
    (_P.SENDING_BODY, _E.RESPONSE_HEAD): _P.DUPLEX,
    (_P.SENDING_BODY, _E.CONNECT): _P.CONNECTING,
    (_P.AWAITING_RESPONSE, _E.RESPONSE_HEAD): _P.RESPONDING,
    (_P.AWAITING_RESPONSE, _E.SWITCH): _P.SWITCHING,
    (_P.AWAITING_RESPONSE, _E.CONNECT): _P.RECONNECTING,
    (_P.DUPLEX, _E.REQUEST_END): _P.RESPONDING,
    (_P.DUPLEX, _E.RESPONSE_END): _P.DONE,
    (_P.RESPONDING, _E.RESPONSE_END): _P.DONE,
    # A 101's head is its whole message; the tunnel begins with UPGRADED, not with its end.
    (_P.SWITCHING, _E.RESPONSE_END): _P.SWITCHING,
    (_P.SWITCHING, _E.UPGRADED): _P.TUNNEL,
    **{(phase, _E.ABORT): _P.ABORTED for phase in LIVE},
}

#: Phases in which queued client body events are acted on (forwarded, or dropped for LOCAL).
READS_BODY = frozenset({Phase.LOCAL, Phase.SENDING_BODY, Phase.DUPLEX})
#: Phases in which the client's request was read whole.
REQUEST_READ = frozenset(
    {
        Phase.RECONNECTING,
        Phase.AWAITING_RESPONSE,
        Phase.RESPONDING,
        Phase.SWITCHING,
        Phase.DONE,
        Phase.TUNNEL,
    }
)
#: Phases in which a response head went to the client (an error can no longer be sent instead).
HEAD_SENT = frozenset({Phase.DUPLEX, Phase.RESPONDING, Phase.SWITCHING, Phase.TUNNEL})


class PhaseMachine:
    """Holds one exchange's phase; :class:`~tlsgate.proxy.exchange.Exchange` is one."""

    __slots__ = ("phase",)

    def __init__(self) -> None:
        self.phase = ROUTING

    def process(self, event: PhaseEvent) -> Phase:
        """Move by ``event`` and return the new phase; raise :class:`PhaseError` if not allowed."""
        phase = self.phase
        try:
            new = TRANSITIONS[phase, event]
        except KeyError:
            raise PhaseError(phase, event) from None
        self.phase = new
        return new
