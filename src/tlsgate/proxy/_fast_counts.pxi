# request_counts.py's RequestCounts, compiled (included by _fast.pyx): a request adds to C
# integers, and only a drain builds Python objects (request_counts.CountsDelta, SiteCounts).

cdef enum:
    _MAX_BOUNDS = 32
    _CLASSES = 10

cdef double _BOUNDS[_MAX_BOUNDS]
cdef int _N_BOUNDS = -1
cdef object _CountsDelta = None
cdef object _SiteCounts = None


cdef int _bind_counts() except -1:
    global _N_BOUNDS, _CountsDelta, _SiteCounts
    from tlsgate.proxy import request_counts

    bounds = request_counts.DURATION_BUCKETS
    if len(bounds) > _MAX_BOUNDS:  # pragma: no cover - a constant of 13 bounds
        raise ValueError("too many duration buckets for the compiled counts")
    for i, bound in enumerate(bounds):
        _BOUNDS[i] = bound
    _CountsDelta = request_counts.CountsDelta
    _SiteCounts = request_counts.SiteCounts
    _N_BOUNDS = len(bounds)
    return 0


cdef class _Tally:
    """One site's counts since the last drain."""

    cdef long long classes[_CLASSES]
    cdef long long buckets[_MAX_BOUNDS + 1]
    cdef double seconds


cdef class RequestCounts:
    """request_counts.py's RequestCounts."""

    cdef dict _sites
    cdef long long _connections
    cdef dict _upstream_errors

    def __init__(self):
        if _N_BOUNDS < 0:
            _bind_counts()
        self._sites = {}
        self._connections = 0
        self._upstream_errors = {}

    cpdef observe(self, str site, long status, double seconds):
        cdef _Tally tally = self._sites.get(site)
        cdef int i = 0
        if tally is None:
            tally = _Tally.__new__(_Tally)  # (zeroed by tp_alloc)
            self._sites[site] = tally
        tally.classes[status // 100 if 0 <= status <= 999 else 0] += 1
        if seconds == seconds:  # NaN is in no bucket, as in the pure counts
            while i < _N_BOUNDS and not seconds <= _BOUNDS[i]:
                i += 1
            tally.buckets[i] += 1
        tally.seconds += seconds

    cpdef connected(self):
        self._connections += 1

    cpdef upstream_failed(self, str upstream, str kind):
        key = (upstream, kind)
        self._upstream_errors[key] = self._upstream_errors.get(key, 0) + 1

    def drain(self):
        """Everything counted since the last drain; the counts start again from zero."""
        cdef _Tally tally
        cdef int i
        sites = {}
        for site, tally in self._sites.items():
            sites[site] = _SiteCounts(
                [tally.classes[i] for i in range(_CLASSES)],
                [tally.buckets[i] for i in range(_N_BOUNDS + 1)],
                tally.seconds,
            )
        delta = _CountsDelta(sites, self._connections, self._upstream_errors)
        self._sites = {}
        self._connections = 0
        self._upstream_errors = {}
        return delta
