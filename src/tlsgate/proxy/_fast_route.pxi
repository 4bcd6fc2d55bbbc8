# routing.py's UpstreamState and Balancer as cdef classes (included by _fast.pyx): the compiled
# connection calls pick/succeeded/failed as C methods. Same choices as the pure ones, statement
# for statement: healthy first, round robin over the states in order or least connections, an
# excluded state skipped, and when every state is cooling down the one that recovers first.

cdef double _BASE_COOLDOWN = 2.0  # routing.BASE_COOLDOWN (tests/proxy/test_routing.py checks)
cdef double _MAX_COOLDOWN = 30.0  # routing.MAX_COOLDOWN


cdef class UpstreamState:
    """routing.py's UpstreamState: one upstream's passive health and active count."""

    cdef public object upstream
    cdef public long active
    cdef public long failures
    cdef public double down_until
    # str(upstream) for the access log, and the object it was made from (upstream is public).
    cdef str _label
    cdef object _label_of

    def __init__(self, upstream, long active=0, long failures=0, double down_until=0.0):
        self.upstream = upstream
        self._label = None
        self._label_of = None
        self.active = active
        self.failures = failures
        self.down_until = down_until

    cdef str label(self):
        if self._label is None or self._label_of is not self.upstream:
            self._label = str(self.upstream)
            self._label_of = self.upstream
        return self._label

    def healthy(self, double now):
        return now >= self.down_until

    def __eq__(self, other):  # the dataclass's: the same class and equal fields
        if type(other) is not UpstreamState:
            return NotImplemented
        cdef UpstreamState o = other
        return (self.upstream, self.active, self.failures, self.down_until) == (
            o.upstream, o.active, o.failures, o.down_until
        )

    __hash__ = None

    def __repr__(self):
        return (
            f"UpstreamState(upstream={self.upstream!r}, active={self.active!r}, "
            f"failures={self.failures!r}, down_until={self.down_until!r})"
        )


cdef class Balancer:
    """routing.py's Balancer: chooses among one site's upstreams, healthy first."""

    cdef public list states
    cdef public bint least_conn
    cdef public Py_ssize_t _next

    def __init__(self, list states, bint least_conn=False, Py_ssize_t _next=0):
        self.states = states
        self.least_conn = least_conn
        self._next = _next

    @classmethod
    def of(cls, upstreams, balance="round_robin"):
        return cls([UpstreamState(u) for u in upstreams], least_conn=balance == "least_conn")

    def pick(self, double now, *, exclude=None):
        return self._pick(now, exclude)

    cdef UpstreamState _pick(self, double now, exclude):
        cdef list states = self.states
        cdef list candidates = []
        cdef UpstreamState s, best
        for s in states:
            if now >= s.down_until and s is not exclude:
                candidates.append(s)
        if not candidates:
            others = [s for s in states if s is not exclude] or states
            best = None
            for s in others:  # min(key=down_until): the first of the smallest
                if best is None or s.down_until < best.down_until:
                    best = s
            if best is None:
                raise ValueError("min() iterable argument is empty")
            return best
        if self.least_conn:
            best = candidates[0]
            for s in candidates:
                if s.active < best.active:
                    best = s
            return best
        if len(candidates) == 1:
            return candidates[0]
        cdef Py_ssize_t n = len(states), i
        for i in range(n):
            s = states[self._next % n]
            self._next += 1
            if s in candidates:
                return s
        return candidates[0]

    @staticmethod
    def failed(UpstreamState state, double now):
        _failed(state, now)

    @staticmethod
    def succeeded(UpstreamState state):
        _succeeded(state)

    def __repr__(self):
        return f"Balancer(states={self.states!r}, least_conn={self.least_conn!r})"


cdef inline int _failed(UpstreamState state, double now) except -1:
    if state is None:
        raise AttributeError("'NoneType' object has no attribute 'failures'")
    state.failures += 1
    state.down_until = now + min(_BASE_COOLDOWN * 2.0 ** (state.failures - 1), _MAX_COOLDOWN)
    return 0


cdef inline int _succeeded(UpstreamState state) except -1:
    if state is None:
        raise AttributeError("'NoneType' object has no attribute 'failures'")
    if state.failures:
        state.failures = 0
        state.down_until = 0.0
    return 0
