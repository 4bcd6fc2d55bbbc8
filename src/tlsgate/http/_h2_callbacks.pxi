# nghttp2's callbacks (included at the end of _h2.pyx): each hands over to its H2Session
# method, and no Python exception goes through C: it is kept (H2Session._failed), the callback
# fails with NGHTTP2_ERR_CALLBACK_FAILURE, and receive() or data_to_send() raises it.

cdef int _on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud) noexcept:
    try:
        return (<H2Session>ud)._begin_headers(frame)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                    void *ud) noexcept:
    try:
        return (<H2Session>ud)._header(frame, name, namelen, value, valuelen)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_invalid_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                            size_t namelen, const uint8_t *value, size_t valuelen,
                            uint8_t flags, void *ud) noexcept:
    # A regular field RFC 9113 8.2.1 forbids (CR, LF or NUL in a value, a space in a name...):
    # nghttp2 would drop it and serve the request; refuse the request (PROTOCOL_ERROR).
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE


cdef int _on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud) noexcept:
    try:
        return (<H2Session>ud)._frame_recv(frame)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                        size_t length, void *ud) noexcept:
    try:
        return (<H2Session>ud)._data_chunk(sid, data, length)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code,
                          void *ud) noexcept:
    try:
        return (<H2Session>ud)._stream_close(sid, error_code)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud) noexcept:
    try:
        return (<H2Session>ud)._frame_send(frame)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)


cdef int _on_extension_chunk(nghttp2_session *s, const nghttp2_frame_hd *hd,
                             const uint8_t *data, size_t length, void *ud) noexcept:
    return 0  # (unknown frames are only counted, in _frame_recv)


cdef int _unpack_extension(nghttp2_session *s, void **payload, const nghttp2_frame_hd *hd,
                           void *ud) noexcept:
    return 0


cdef ssize_t _read_body(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                        uint32_t *data_flags, nghttp2_data_source *source, void *ud) noexcept:
    try:
        return (<H2Session>ud)._read(sid, buf, length, data_flags)
    except BaseException as exc:
        return (<H2Session>ud)._failed(exc)
