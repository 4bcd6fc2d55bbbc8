# events.py's compiled events (fast_events.pyx), declared for the compiled parsers, which make
# them, and the compiled proxy, which reads their fields as C struct members.

cdef class Request:
    cdef public object method
    cdef public object target
    cdef public object version
    cdef public object headers
    cdef public object body
    cdef public object content_length
    cdef public object keep_alive
    cdef public object upgrade
    cdef public object expect_continue
    cdef tuple _fields(self)


cdef class Response:
    cdef public object status
    cdef public object reason
    cdef public object version
    cdef public object headers
    cdef public object body
    cdef public object content_length
    cdef public object keep_alive
    cdef tuple _fields(self)


cdef class Data:
    cdef public object data


cdef class EndOfMessage:
    cdef public object trailers


cdef class Upgraded:
    cdef public object leftover


cdef Data make_data(object data)
cdef EndOfMessage make_end(list trailers)
cdef Request make_request(method, target, version, headers, body, length, keep, upgrade, expect)
cdef Response make_response(status, reason, version, headers, body, length, keep)
