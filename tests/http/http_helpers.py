"""Feeding the parsers of tlsgate.http in pieces, shared by its unit and fuzz tests."""

from __future__ import annotations

from tlsgate.http import Event, Limits, RequestParser, ResponseParser, Upgraded


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def make_parser(
    response_to: bytes | None = None, limits: Limits | None = None
) -> RequestParser | ResponseParser:
    """A request parser, or a response parser expecting the answer to method ``response_to``."""
    if response_to is None:
        return RequestParser(limits or Limits())
    parser = ResponseParser(limits or Limits())
    parser.expect(response_to)
    return parser


def feed_pieces(
    parser: RequestParser | ResponseParser, pieces: list[bytes], eof: bool = False
) -> list[Event]:
    """Feed until an upgrade; what follows it is appended to the leftover, like a tunnel would.

    With ``eof``, the parser is told the peer closed after the last piece (unless upgraded).
    """
    events: list[Event] = []
    for index, piece in enumerate(pieces):
        events += parser.feed(piece)
        if events and isinstance(events[-1], Upgraded):
            rest = b"".join(pieces[index + 1 :])
            events[-1] = Upgraded(events[-1].leftover + rest)
            return events
    if eof:
        events += parser.feed_eof()
    return events
