# The compiled events share events.py's types: the dataclasses there are what mypy checks
# against (tlsgate.http exports one or the other with the same face).
from tlsgate.http.events import Data as Data
from tlsgate.http.events import EndOfMessage as EndOfMessage
from tlsgate.http.events import Request as Request
from tlsgate.http.events import Response as Response
from tlsgate.http.events import Upgraded as Upgraded

__all__ = ["Data", "EndOfMessage", "Request", "Response", "Upgraded"]
