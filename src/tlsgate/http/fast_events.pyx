# cython: language_level=3, embedsignature=True, binding=True
"""The compiled twin of ``events.py``'s five events, as cdef classes (``fast_events.pxd``
declares their fields, so the compiled parsers set them and the compiled proxy reads them as C
members instead of attributes).

The same classes to every caller: events.py exports these when the compiled modules are in use,
so both parsers make them and every consumer reads them. Each keeps its dataclass's face: the
same constructor (positional or keyword, the same defaults), equality (equal fields, with its
own class or its dataclass twin, so the differential tests compare parsers across the two),
repr, unhashable (a mutable dataclass's ``__hash__`` is None), ``__match_args__``, and
no attributes beyond its fields. ``fast_events.pxd`` also declares the constructors the parsers
use, which skip ``__init__``.
"""

__all__ = ["Data", "EndOfMessage", "Request", "Response", "Upgraded"]

cdef object _OMITTED = object()
# events.py's dataclasses, found at the first comparison (events.py imports this module): a
# twin equals the other implementation's event with equal fields, as it would its own.
cdef dict _PURE = None


cdef object _pure(str name):
    global _PURE
    if _PURE is None:
        from tlsgate.http import events

        _PURE = {n: getattr(events, "Pure" + n) for n in __all__}
    return _PURE[name]


cdef tuple _values(object event, tuple names):
    return tuple([getattr(event, name) for name in names])


cdef class Request:
    """events.py's Request."""

    __match_args__ = (
        "method", "target", "version", "headers", "body", "content_length", "keep_alive",
        "upgrade", "expect_continue",
    )

    def __init__(
        self, method, target, version, headers, body, content_length, keep_alive, upgrade=None,
        expect_continue=False,
    ):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = body
        self.content_length = content_length
        self.keep_alive = keep_alive
        self.upgrade = upgrade
        self.expect_continue = expect_continue

    cdef tuple _fields(self):
        return (
            self.method, self.target, self.version, self.headers, self.body,
            self.content_length, self.keep_alive, self.upgrade, self.expect_continue,
        )

    def __eq__(self, other):
        if type(other) is Request:
            return self._fields() == (<Request>other)._fields()
        if type(other) is _pure("Request"):
            return self._fields() == _values(other, Request.__match_args__)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return _repr(self, Request.__match_args__, self._fields())


cdef class Response:
    """events.py's Response."""

    __match_args__ = (
        "status", "reason", "version", "headers", "body", "content_length", "keep_alive",
    )

    def __init__(self, status, reason, version, headers, body, content_length, keep_alive):
        self.status = status
        self.reason = reason
        self.version = version
        self.headers = headers
        self.body = body
        self.content_length = content_length
        self.keep_alive = keep_alive

    cdef tuple _fields(self):
        return (
            self.status, self.reason, self.version, self.headers, self.body,
            self.content_length, self.keep_alive,
        )

    def __eq__(self, other):
        if type(other) is Response:
            return self._fields() == (<Response>other)._fields()
        if type(other) is _pure("Response"):
            return self._fields() == _values(other, Response.__match_args__)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return _repr(self, Response.__match_args__, self._fields())


cdef class Data:
    """events.py's Data."""

    __match_args__ = ("data",)

    def __init__(self, data):
        self.data = data

    def __eq__(self, other):
        if type(other) is Data or type(other) is _pure("Data"):
            return self.data == other.data
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"Data(data={self.data!r})"


cdef class EndOfMessage:
    """events.py's EndOfMessage."""

    __match_args__ = ("trailers",)

    def __init__(self, trailers=_OMITTED):
        self.trailers = [] if trailers is _OMITTED else trailers  # (the default_factory)

    def __eq__(self, other):
        if type(other) is EndOfMessage or type(other) is _pure("EndOfMessage"):
            return self.trailers == other.trailers
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"EndOfMessage(trailers={self.trailers!r})"


cdef class Upgraded:
    """events.py's Upgraded."""

    __match_args__ = ("leftover",)

    def __init__(self, leftover):
        self.leftover = leftover

    def __eq__(self, other):
        if type(other) is Upgraded or type(other) is _pure("Upgraded"):
            return self.leftover == other.leftover
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return f"Upgraded(leftover={self.leftover!r})"


cdef str _repr(object event, tuple names, tuple values):
    return type(event).__name__ + "(" + ", ".join(
        [f"{name}={value!r}" for name, value in zip(names, values)]
    ) + ")"


# What the parsers make: no __init__ call, the fields set as C members.
cdef Data make_data(object data):
    cdef Data event = Data.__new__(Data)
    event.data = data
    return event


cdef EndOfMessage make_end(list trailers):
    cdef EndOfMessage event = EndOfMessage.__new__(EndOfMessage)
    event.trailers = trailers
    return event


cdef Request make_request(method, target, version, headers, body, length, keep, upgrade, expect):
    cdef Request event = Request.__new__(Request)
    event.method = method
    event.target = target
    event.version = version
    event.headers = headers
    event.body = body
    event.content_length = length
    event.keep_alive = keep
    event.upgrade = upgrade
    event.expect_continue = expect
    return event


cdef Response make_response(status, reason, version, headers, body, length, keep):
    cdef Response event = Response.__new__(Response)
    event.status = status
    event.reason = reason
    event.version = version
    event.headers = headers
    event.body = body
    event.content_length = length
    event.keep_alive = keep
    return event
