# cython: language_level=3, embedsignature=True, binding=True
"""The compiled twin of the data plane's per-connection hot path.

Same interface and the same behaviour as the pure modules it mirrors, which stay the reference
and the fallback (``tlsgate.compiled`` picks; ``TLSGATE_PURE=1`` forces them). One extension
module, read in these files:

* ``_fast_log.pxi``: :class:`AccessRecord` and :class:`AccessLog` (``access_log.py``): the JSON
  line is written straight into one C buffer, with ``json.dumps``'s escaping (``ensure_ascii``:
  control characters, ``"``, ``\\``, DEL and non-ASCII as ``\\uXXXX``), its field order and
  its float repr; the time's ``YYYY-MM-DDTHH:MM:SS`` is formatted once per second and only the
  milliseconds per line. Lines stay in that buffer until a batch is written, so a request costs
  no ``bytes``, ``dict`` or ``datetime``.
* ``_fast_headers.pxi``: :func:`forwarded_request_headers`, :func:`request_head`,
  :func:`response_headers`, :func:`response_head` (``headers.py``): hop-by-hop removal,
  X-Forwarded-*/Forwarded/XFCC insertion, and the head serialized in one pass with
  serialize.py's refusals and messages (header injection, empty or invalid names, invalid
  method or target).
* ``_fast_route.pxi``: :class:`UpstreamState` and :class:`Balancer` (``routing.py``): passive
  health, round robin and least connections, with pick/failed/succeeded as C calls for the
  compiled connection.
* ``_fast_counts.pxi``: :class:`RequestCounts` (``request_counts.py``): per-request metrics as
  C integers per site, turned into Python objects only when the control plane drains them.
* ``_fast_conn.pxi`` + ``_fast_client.pxi``: the client connection, :class:`ClientProtocol`
  (``protocol.py`` + ``upstream_side.py``), with ``Exchange``, ``Deadline`` and
  :class:`UpstreamConnection` (``exchange.py``, ``phase.py``'s table, ``deadline.py``,
  ``upstream.py``) as cdef classes: typed fields, internal steps as C methods, the upstream
  connection calling its owner's halves in C. ``_fast_pool.pxi``: :class:`UpstreamPool`
  (``upstream.py``), taken from and released to in C, its lists found by the upstream's identity. Same phases, deadlines, back-pressure,
  pipelining, upgrades, retries, refusals and access records as the pure connection.

``tests/proxy/test_fast_differential.py`` compares the log lines and heads byte for byte with the
pure ones; the rest of ``tests/proxy`` runs on both (``scripts/test.sh``).

Memory safety: every write into the log buffer goes through ``_reserve`` with an upper bound of
what follows (an escaped code point is at most 12 bytes), and the line-end table grows the same
way; a head is sized by ``_block_size`` before it is allocated and filled; ``buffer_updated``
refuses a count larger than the read buffer. No fixed-size buffer but a formatted number or time.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport fabs, isfinite, modf
from libc.math cimport round as c_round
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcmp, memcpy, strlen

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystack_size, const void *needle, size_t needle_size)
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec
from posix.unistd cimport write as c_write

# The compiled events (http/fast_events.pxd): the connection and the heads read their fields as C
# members. When this module is in use so is the compiled http package, whose events.py exports
# these very classes (_fast_conn.pxi's _bind checks it).
from tlsgate.http.fast_events cimport Data as _Dat
from tlsgate.http.fast_events cimport EndOfMessage as _EOM
from tlsgate.http.fast_events cimport Request as _Req
from tlsgate.http.fast_events cimport Response as _Resp
from tlsgate.http.fast_events cimport Upgraded as _Upg

import asyncio
import os
import sys
import time

from tlsgate.http import BodyKind, LocalProtocolError
from tlsgate.http.serialize import REASON_PHRASES

__all__ = [
    "AccessLog",
    "AccessRecord",
    "Balancer",
    "ClientProtocol",
    "RequestCounts",
    "TLSAcceptor",
    "TLSFailure",
    "TLSInfo",
    "TLSTransport",
    "UpstreamConnection",
    "UpstreamPool",
    "UpstreamState",
    "filter_session_callbacks",
    "forwarded_request_headers",
    "install_sni",
    "openssl_version_number",
    "request_head",
    "response_head",
    "response_headers",
]


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct tm:
        int tm_sec
        int tm_min
        int tm_hour
        int tm_mday
        int tm_mon
        int tm_year
    tm *gmtime_r(const time_t *timep, tm *result)

cdef extern from "Python.h":
    int PyUnicode_KIND(object)
    void *PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    unsigned int PyUnicode_READ(int kind, void *data, Py_ssize_t index)
    char *PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int *ptype) except NULL
    double PyOS_string_to_double(const char *s, char **endptr, object overflow_exception) \
        except? -1.0
    int Py_DTSF_ADD_DOT_0


include "_fast_log.pxi"
include "_fast_headers.pxi"
include "_fast_route.pxi"
include "_fast_counts.pxi"
include "_fast_memo.pxi"
include "_fast_conn.pxi"
include "_fast_openssl.pxi"
include "_fast_sessions.pxi"
include "_fast_tickets.pxi"
include "_fast_tls.pxi"
include "_fast_tls_info.pxi"
include "_fast_readiness.pxi"
include "_fast_hello.pxi"
include "_fast_timers.pxi"
include "_fast_accept.pxi"
