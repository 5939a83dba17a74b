# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled Xcom codec: the typed twin of ``_codec_py`` with the same API and exceptions.

Frames are parsed from raw byte pointers, never one Python object per byte; the batch
decoders build no Python object per frame and release the GIL while they scan. Every
read is bounds-checked by hand (``boundscheck`` is off), so no input can read outside
its buffer. Frame layout: specification section 3.3; checksum: section 3.4.
"""

import math
import operator

import numpy as np

cimport numpy as cnp
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.number cimport PyNumber_Index
from libc.math cimport NAN
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t
from libc.stdlib cimport free, realloc
from libc.string cimport memchr, memcpy, memmove

from .exceptions import (
    DataChecksumError,
    FrameError,
    HeaderChecksumError,
    LengthError,
    StartByteError,
    TruncatedFrameError,
    ValueFormatError,
)
from .protocol import (
    ADDRESS_DTE,
    ADDRESS_GATEWAY,
    CHECKSUM_SIZE,
    FORMAT_SIZES,
    HEADER_SIZE,
    MAX_DATA_LENGTH,
    MESSAGE_DATA_SIZE,
    MIN_DATA_LENGTH,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_RESPONSE_HEADER_SIZE,
    MULTI_INFO_RESPONSE_ITEM_SIZE,
    SERVICE_HEADER_SIZE,
    START_BYTE,
    STRING_ENCODING,
    Format,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
)
from .records import Frame, FrameBatch, Message, MultiInfo, MultiInfoBatch

cnp.import_array()

IMPLEMENTATION = "c"

#: Largest finite float32; larger finite numbers cannot be sent as FLOAT.
FLOAT32_MAX = 3.4028234663852886e38

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    /* Frame layout constants of section 3.3 as C constants, so that the compiler can
       unroll the fixed-size header work; checked against protocol.py at import. */
    enum {
        XCOM_START = 0xAA,
        XCOM_HEADER = 14,
        XCOM_CHECK = 2,
        XCOM_MIN_LEN = 2,
        XCOM_SERVICE = 10,
        XCOM_MAX_LEN = 1034
    };

    /* Checksum of section 3.4 (A += d; B += A, modulo 256). Short spans (every frame
       header and most frame data) run the specification's loop; long ones a closed form
       per 64-byte block: B gains 64*A plus the block's bytes weighted 64..1, A gains
       their sum. Only the low 8 bits matter, so 16-bit lanes may wrap: the compiler
       vectorises the block loop with plain SSE2. */
    #define XCOM_CK_BLOCK 64
    static inline void xcom_checksum(const uint8_t *p, Py_ssize_t n, uint8_t *out) {
        uint32_t a = 0xFF, b = 0;
        if (n >= XCOM_CK_BLOCK) {
            while (n >= XCOM_CK_BLOCK) {
                uint16_t s = 0, w = 0;
                for (int j = 0; j < XCOM_CK_BLOCK; j++) {
                    s += p[j];
                    w += (uint16_t)(XCOM_CK_BLOCK - j) * p[j];
                }
                b += XCOM_CK_BLOCK * a + w;
                a += s;
                p += XCOM_CK_BLOCK;
                n -= XCOM_CK_BLOCK;
            }
        }
        for (Py_ssize_t j = 0; j < n; j++) {
            a += p[j];
            b += a;
        }
        out[0] = (uint8_t)a;
        out[1] = (uint8_t)b;
    }

    static inline int xcom_checksum_ok(const uint8_t *p, Py_ssize_t n) {
        uint8_t ck[2];
        xcom_checksum(p, n, ck);
        return ck[0] == p[n] && ck[1] == p[n + 1];
    }

    static inline float xcom_f32(uint32_t bits) {
        float f;
        memcpy(&f, &bits, 4);
        return f;
    }

    static inline uint32_t xcom_f32_bits(float f) {
        uint32_t bits;
        memcpy(&bits, &f, 4);
        return bits;
    }

    /* Records hold only ints and bytes, so they can never be part of a reference cycle:
       like CPython does for such plain tuples, they are taken off the garbage
       collector's lists, which keeps collections cheap when millions of frames pass. */
    static PyObject *xcom_untracked(PyObject *record) {
        if (record != NULL && PyObject_GC_IsTracked(record)) PyObject_GC_UnTrack(record);
        return record;
    }

    /* An instance of the tuple subclass `type` (a NamedTuple) holding `items`, through
       tuple.__new__ so that every CPython version initialises it its own way. */
    static PyObject *xcom_record(PyObject *type, PyObject *items) {
        PyObject *args = PyTuple_Pack(1, items);
        PyObject *record;
        if (args == NULL) return NULL;
        record = PyTuple_Type.tp_new((PyTypeObject *)type, args, NULL);
        Py_DECREF(args);
        return xcom_untracked(record);
    }

    static inline uint16_t xcom_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
    static inline uint32_t xcom_rd32(const uint8_t *p) {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    }

    /* 1 once the module's import-time self-check has shown that records allocated
       directly are indistinguishable from those tuple.__new__ makes. */
    static int xcom_direct_records = 0;

    /* The Frame record (fields in records.Frame order) of the valid frame of `size`
       bytes at `p`. A short frame (2..9 bytes of frame data) has no object fields: they
       are 0, and the data is what follows its service id. Allocating the tuple subclass directly skips the two temporary
       tuples of tuple.__new__, a fifth of the cost of a record; since CPython 3.14
       tuples cache their hash, which a fresh allocation must mark as not computed. */
    static PyObject *xcom_frame(PyObject *type, const uint8_t *p, Py_ssize_t size) {
        PyObject *items[9];
        PyObject *record = NULL;
        Py_ssize_t i;
        int full = size >= XCOM_HEADER + XCOM_SERVICE + XCOM_CHECK;
        Py_ssize_t at = XCOM_HEADER + (full ? XCOM_SERVICE : XCOM_MIN_LEN);
        items[0] = PyLong_FromLong(p[1]);
        items[1] = PyLong_FromUnsignedLong(xcom_rd32(p + 2));
        items[2] = PyLong_FromUnsignedLong(xcom_rd32(p + 6));
        items[3] = PyLong_FromLong(p[14]);
        items[4] = PyLong_FromLong(p[15]);
        items[5] = PyLong_FromLong(full ? xcom_rd16(p + 16) : 0);
        items[6] = PyLong_FromUnsignedLong(full ? xcom_rd32(p + 18) : 0);
        items[7] = PyLong_FromLong(full ? xcom_rd16(p + 22) : 0);
        items[8] = PyBytes_FromStringAndSize((const char *)p + at, size - at - XCOM_CHECK);
        for (i = 0; i < 9; i++) {
            if (items[i] == NULL) goto done;
        }
        if (xcom_direct_records) {
            record = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, 9);
            if (record == NULL) goto done;
    #if PY_VERSION_HEX >= 0x030E0000
            ((PyTupleObject *)record)->ob_hash = -1;
    #endif
            for (i = 0; i < 9; i++) {
                PyTuple_SET_ITEM(record, i, items[i]);  /* steals */
                items[i] = NULL;
            }
            return xcom_untracked(record);
        } else {
            PyObject *tuple = PyTuple_New(9);
            if (tuple == NULL) goto done;
            for (i = 0; i < 9; i++) {
                PyTuple_SET_ITEM(tuple, i, items[i]);  /* steals */
                items[i] = NULL;
            }
            record = xcom_record(type, tuple);
            Py_DECREF(tuple);
            return record;
        }
    done:
        for (i = 0; i < 9; i++) Py_XDECREF(items[i]);
        return NULL;
    }
    """
    void xcom_checksum(const uint8_t *p, Py_ssize_t n, uint8_t *out) noexcept nogil
    int xcom_checksum_ok(const uint8_t *p, Py_ssize_t n) noexcept nogil
    float xcom_f32(uint32_t bits) noexcept nogil
    uint32_t xcom_f32_bits(float f) noexcept nogil
    object xcom_record(object type, object items)
    object xcom_frame(object type, const uint8_t *p, Py_ssize_t size)
    int xcom_direct_records
    enum:
        XCOM_START
        XCOM_HEADER
        XCOM_CHECK
        XCOM_MIN_LEN
        XCOM_SERVICE
        XCOM_MAX_LEN

# Protocol numbers come from protocol.py. The frame layout is also needed as C constants
# (see the C block above); refuse to load if the two ever disagree.
if (XCOM_START, XCOM_HEADER, XCOM_CHECK, XCOM_MIN_LEN, XCOM_SERVICE, XCOM_MAX_LEN) != (
    START_BYTE,
    HEADER_SIZE,
    CHECKSUM_SIZE,
    MIN_DATA_LENGTH,
    SERVICE_HEADER_SIZE,
    MAX_DATA_LENGTH,
):
    raise ImportError("xcomlog._codec was built for another frame layout than protocol.py")

cdef enum:
    START = XCOM_START
    HEADER = XCOM_HEADER
    CHECK = XCOM_CHECK
    MIN_LEN = XCOM_MIN_LEN
    SERVICE = XCOM_SERVICE
    MAX_LEN = XCOM_MAX_LEN
cdef Py_ssize_t MULTI_HEAD = MULTI_INFO_RESPONSE_HEADER_SIZE
cdef Py_ssize_t MULTI_ITEM = MULTI_INFO_RESPONSE_ITEM_SIZE
cdef Py_ssize_t MULTI_MAX = MULTI_INFO_MAX_ITEMS
cdef Py_ssize_t MESSAGE_SIZE = MESSAGE_DATA_SIZE
cdef uint8_t FLAG_ERROR = ServiceFlag.ERROR
cdef uint8_t FLAG_RESPONSE = ServiceFlag.RESPONSE
cdef uint16_t OBJECT_MULTI_INFO = ObjectType.MULTI_INFO
# Offset of the property data in a frame (header, then the service header), the bytes of a
# frame that are not property data (also the smallest frame with a whole service header),
# and the offset of the data after a short frame's service flags and id.
cdef enum:
    DATA_AT = XCOM_HEADER + XCOM_SERVICE
    OVERHEAD = XCOM_HEADER + XCOM_SERVICE + XCOM_CHECK
    SHORT_DATA_AT = XCOM_HEADER + XCOM_MIN_LEN

# Outcome codes of a header check (same meaning as in _codec_py).
cdef enum:
    NEED_MORE = 0
    BAD_START = -1
    BAD_HEADER_CHECKSUM = -2
    BAD_LENGTH = -3

# Format codes of protocol.Format, for the typed value readers.
cdef int F_BOOL = Format.BOOL
cdef int F_FORMAT = Format.FORMAT
cdef int F_SHORT_ENUM = Format.SHORT_ENUM
cdef int F_ERROR = Format.ERROR
cdef int F_INT32 = Format.INT32
cdef int F_FLOAT = Format.FLOAT
cdef int F_LONG_ENUM = Format.LONG_ENUM

_FORMAT_BY_VALUE = {int(f): f for f in Format}
_U16_FORMATS = (Format.FORMAT, Format.SHORT_ENUM, Format.ERROR)
_NUMBER_TYPES = (int, float, np.integer, np.floating)


# --- Little-endian field access ---------------------------------------------------------

cdef inline uint16_t rd16(const uint8_t *p) noexcept nogil:
    return <uint16_t>(p[0] | (p[1] << 8))


cdef inline uint32_t rd32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline void wr16(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF


cdef inline void wr32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xFF
    p[1] = (v >> 8) & 0xFF
    p[2] = (v >> 16) & 0xFF
    p[3] = (v >> 24) & 0xFF


# --- Byte inputs ------------------------------------------------------------------------


def _view(data):
    """A flat unsigned-byte view of a contiguous bytes-like object, TypeError otherwise."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise TypeError("expected a contiguous bytes-like object")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


cdef object _as_bytes(object data):
    if type(data) is bytes:
        return data
    return bytes(_view(data))


cdef int _acquire(object data, Py_buffer *view) except -1:
    """Borrow the bytes of ``data`` without copying; the same TypeError as ``_view`` otherwise."""
    try:
        PyObject_GetBuffer(data, view, PyBUF_SIMPLE)
        return 0
    except Exception:
        pass
    # Not a flat buffer: _view raises the pure implementation's TypeError, or the
    # exporter refused a simple request and a flat copy serves.
    PyObject_GetBuffer(bytes(_view(data)), view, PyBUF_SIMPLE)
    return 0


# --- Checksum and integer arguments -------------------------------------------------------


def checksum(data):
    """The two checksum bytes (A, B) of ``data`` (section 3.4)."""
    cdef Py_buffer view
    cdef uint8_t out[2]
    _acquire(data, &view)
    try:
        if view.len > 65536:
            with nogil:
                xcom_checksum(<const uint8_t *>view.buf, view.len, out)
        else:
            xcom_checksum(<const uint8_t *>view.buf, view.len, out)
    finally:
        PyBuffer_Release(&view)
    return PyBytes_FromStringAndSize(<char *>out, 2)


cdef object _index(object value, str name):
    if type(value) is int:
        return value
    try:
        return PyNumber_Index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


cdef long long _check_u(object value, int bits, str name, object error=ValueError) except -1:
    """``value`` as an integer that fits in ``bits`` unsigned bits (bits <= 32)."""
    cdef object number = _index(value, name)
    cdef int overflow = 0
    cdef long long result = PyLong_AsLongLongAndOverflow(number, &overflow)
    if overflow or result < 0 or result >= (1LL << bits):
        raise error(f"{name} must fit in {bits} unsigned bits, got {number}")
    return result


cdef long long _check_s(object value, int bits, str name, object error=ValueError) except? -1:
    """``value`` as an integer that fits in ``bits`` signed bits (bits <= 32)."""
    cdef object number = _index(value, name)
    cdef int overflow = 0
    cdef long long result = PyLong_AsLongLongAndOverflow(number, &overflow)
    if overflow or result < -(1LL << (bits - 1)) or result >= (1LL << (bits - 1)):
        raise error(f"{name} must fit in {bits} signed bits, got {number}")
    return result


# --- Encoding -----------------------------------------------------------------------------


cdef bytes _encode(
    object service_id,
    object object_type,
    object object_id,
    object property_id,
    object data,
    object src,
    object dst,
    object service_flags,
    object frame_flags,
):
    cdef uint32_t ff = <uint32_t>_check_u(frame_flags, 8, "frame_flags")
    cdef uint32_t sf = <uint32_t>_check_u(service_flags, 8, "service_flags")
    cdef uint32_t sid = <uint32_t>_check_u(service_id, 8, "service_id")
    cdef uint32_t otype = <uint32_t>_check_u(object_type, 16, "object_type")
    cdef uint32_t oid = <uint32_t>_check_u(object_id, 32, "object_id")
    cdef uint32_t pid = <uint32_t>_check_u(property_id, 16, "property_id")
    cdef uint32_t s = <uint32_t>_check_u(src, 32, "src")
    cdef uint32_t d = <uint32_t>_check_u(dst, 32, "dst")
    cdef Py_buffer view
    cdef Py_ssize_t length
    cdef bytes out
    cdef uint8_t *q
    _acquire(data, &view)
    try:
        length = SERVICE + view.len
        if length > MAX_LEN:
            raise LengthError(
                f"frame data of {length} bytes exceeds the maximum of {MAX_DATA_LENGTH}"
            )
        out = PyBytes_FromStringAndSize(NULL, HEADER + length + CHECK)
        q = <uint8_t *>PyBytes_AS_STRING(out)
        q[0] = START
        q[1] = <uint8_t>ff
        wr32(q + 2, s)
        wr32(q + 6, d)
        wr16(q + 10, <uint32_t>length)
        xcom_checksum(q + 1, HEADER - 1 - CHECK, q + HEADER - CHECK)
        q[14] = <uint8_t>sf
        q[15] = <uint8_t>sid
        wr16(q + 16, otype)
        wr32(q + 18, oid)
        wr16(q + 22, pid)
        if view.len:
            memcpy(q + DATA_AT, view.buf, view.len)
        xcom_checksum(q + HEADER, length, q + HEADER + length)
    finally:
        PyBuffer_Release(&view)
    return out


def encode_frame(
    service_id,
    object_type,
    object_id,
    property_id,
    data=b"",
    *,
    src=ADDRESS_DTE,
    dst=ADDRESS_GATEWAY,
    service_flags=0,
    frame_flags=0,
):
    """Encode a complete frame: header, service header, property ``data`` and checksums."""
    return _encode(
        service_id, object_type, object_id, property_id, data, src, dst, service_flags, frame_flags
    )


def encode_request(
    service_id, object_type, object_id, property_id, data=b"", *, src=ADDRESS_DTE, dst=ADDRESS_GATEWAY
):
    """Encode a request frame (service flags 0, frame flags 0) as a DTE sends it."""
    return _encode(service_id, object_type, object_id, property_id, data, src, dst, 0, 0)


def encode_response(
    service_id,
    object_type,
    object_id,
    property_id,
    data=b"",
    *,
    src,
    dst=ADDRESS_DTE,
    frame_flags=0,
    error_code=None,
):
    """Encode a response frame; with ``error_code`` the error flag is set and data is the code."""
    cdef uint8_t flags = FLAG_RESPONSE
    cdef uint8_t code[2]
    if error_code is not None:
        flags |= FLAG_ERROR
        wr16(code, <uint32_t>_check_u(error_code, 16, "error_code"))
        data = PyBytes_FromStringAndSize(<char *>code, 2)
    return _encode(
        service_id, object_type, object_id, property_id, data, src, dst, flags, frame_flags
    )


# --- Decoding one frame -------------------------------------------------------------------


cdef inline Py_ssize_t _header(const uint8_t *p, Py_ssize_t avail) noexcept nogil:
    """Size of the frame whose header is at ``p`` (``avail`` >= 1 bytes), or a code <= 0."""
    cdef Py_ssize_t length
    if p[0] != START:
        return BAD_START
    if avail < HEADER:
        return NEED_MORE
    if not xcom_checksum_ok(p + 1, HEADER - 1 - CHECK):
        return BAD_HEADER_CHECKSUM
    length = rd16(p + 10)
    if length < MIN_LEN or length > MAX_LEN:
        return BAD_LENGTH
    return HEADER + length + CHECK


cdef int _raise_header(Py_ssize_t code, const uint8_t *p) except -1:
    if code == BAD_START:
        raise StartByteError(f"bad start byte 0x{p[0]:02X}, expected 0x{START_BYTE:02X}")
    if code == BAD_HEADER_CHECKSUM:
        raise HeaderChecksumError("header checksum mismatch")
    raise LengthError(
        f"impossible data_length {rd16(p + 10)} (must be {MIN_DATA_LENGTH}..{MAX_DATA_LENGTH})"
    )


def frame_size(buffer, offset=0):
    """Total size of the frame starting at ``offset``, or 0 if its header is incomplete.

    Raises StartByteError, HeaderChecksumError or LengthError for a header that can never
    become a valid frame. The frame itself may still be incomplete in ``buffer``.
    """
    offset = operator.index(offset)
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    cdef Py_buffer view
    cdef Py_ssize_t start, code
    cdef const uint8_t *p
    _acquire(buffer, &view)
    try:
        if offset >= view.len:
            return 0
        start = offset
        p = <const uint8_t *>view.buf + start
        code = _header(p, view.len - start)
        if code < 0:
            _raise_header(code, p)
        return code
    finally:
        PyBuffer_Release(&view)


cdef inline object _make_frame(const uint8_t *p, Py_ssize_t size):
    """The Frame record of the valid frame of ``size`` bytes at ``p``."""
    return xcom_frame(Frame, p, size)


def _direct_records():
    """True when records are allocated directly (see ``_self_check_direct_records``)."""
    return bool(xcom_direct_records)


def _self_check_direct_records():
    """Turn on direct record allocation if it gives records equal in every respect."""
    global xcom_direct_records
    wire = encode_response(1, 1, 3000, 1, b"\x00\x00\x80\x3f", src=0xFFFFFFFF, frame_flags=0x34)
    fields = (0x34, 0xFFFFFFFF, 1, 2, 1, 1, 3000, 1, b"\x00\x00\x80\x3f")
    xcom_direct_records = 1
    try:
        direct = decode_frame(wire)
        reference = Frame(*fields)
        same = (
            type(direct) is Frame
            and direct == reference
            and tuple(direct) == fields
            and hash(direct) == hash(reference) == hash(fields)
            and repr(direct) == repr(reference)
            and direct.data == fields[8]
        )
    except Exception:  # noqa: BLE001 - any surprise means: keep the safe path
        same = False
    xcom_direct_records = 1 if same else 0


cdef object _decode(const uint8_t *p, Py_ssize_t n):
    if n == 0:
        raise TruncatedFrameError("empty input: no frame")
    cdef Py_ssize_t size = _header(p, n)
    if size < 0:
        _raise_header(size, p)
    if size == 0:
        raise TruncatedFrameError(f"truncated header: {n} of {HEADER_SIZE} bytes")
    if n < size:
        raise TruncatedFrameError(f"truncated frame: {n} of {size} bytes")
    if n > size:
        raise FrameError(f"{n - size} unexpected bytes after a frame of {size} bytes")
    if not xcom_checksum_ok(p + HEADER, size - HEADER - CHECK):
        raise DataChecksumError("data checksum mismatch")
    return _make_frame(p, size)


def decode_frame(data):
    """Decode exactly one complete frame; every defect raises a specific FrameError."""
    cdef Py_buffer view
    if type(data) is bytes:
        return _decode(<const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
    _acquire(data, &view)
    try:
        return _decode(<const uint8_t *>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


# --- Finding frames in a stream -----------------------------------------------------------


cdef struct Counts:
    Py_ssize_t junk
    Py_ssize_t header
    Py_ssize_t length
    Py_ssize_t data


cdef Py_ssize_t _find(
    const uint8_t *p, Py_ssize_t pos, Py_ssize_t end, Py_ssize_t *size, Counts *c
) noexcept nogil:
    """Offset of the next valid frame in ``p[pos:end]`` with its ``size``, as the stream decoder
    finds it; with ``size`` 0 the offset where scanning stopped for want of bytes (or ``end``).

    Junk before a start byte is skipped; after a bad header checksum, an impossible length
    or a bad data checksum only the start byte is dropped, so a valid frame beginning
    inside the damaged bytes is still found.
    """
    cdef const uint8_t *hit
    cdef Py_ssize_t s
    while pos < end:
        if p[pos] != START:
            hit = <const uint8_t *>memchr(p + pos, START, end - pos)
            s = end if hit == NULL else hit - p
            c.junk += s - pos
            pos = s
            continue
        s = _header(p + pos, end - pos)
        if s == BAD_HEADER_CHECKSUM:
            c.header += 1
            pos += 1
            continue
        if s == BAD_LENGTH:
            c.length += 1
            pos += 1
            continue
        if s == NEED_MORE or end - pos < s:
            break
        if not xcom_checksum_ok(p + pos + HEADER, s - HEADER - CHECK):
            c.data += 1
            pos += 1
            continue
        size[0] = s
        return pos
    size[0] = 0
    return pos


cdef class _Spans:
    """A growable C array of the (offset, size) of frames found in a buffer."""

    cdef Py_ssize_t *offset
    cdef Py_ssize_t *size
    cdef Py_ssize_t count
    cdef Py_ssize_t capacity

    def __dealloc__(self):
        free(self.offset)
        free(self.size)

    cdef int grow(self) except -1 nogil:
        cdef Py_ssize_t capacity = self.capacity * 2 if self.capacity else 256
        cdef Py_ssize_t *offset = <Py_ssize_t *>realloc(self.offset, capacity * sizeof(Py_ssize_t))
        if offset == NULL:
            with gil:
                raise MemoryError()
        self.offset = offset
        cdef Py_ssize_t *size = <Py_ssize_t *>realloc(self.size, capacity * sizeof(Py_ssize_t))
        if size == NULL:
            with gil:
                raise MemoryError()
        self.size = size
        self.capacity = capacity
        return 0

    cdef Py_ssize_t scan(self, const uint8_t *p, Py_ssize_t end, Counts *c) except -1 nogil:
        """Record every valid frame of ``p[:end]``; returns the offset where scanning stopped."""
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t size = 0
        while True:
            pos = _find(p, pos, end, &size, c)
            if size == 0:
                return pos
            if self.count == self.capacity:
                self.grow()
            self.offset[self.count] = pos
            self.size[self.count] = size
            self.count += 1
            pos += size


cdef dict _stats(Py_ssize_t frames, Counts *c, Py_ssize_t pending):
    return {
        "frames": frames,
        "skipped_bytes": c.junk + c.header + c.length + c.data,
        "junk_bytes": c.junk,
        "header_errors": c.header,
        "length_errors": c.length,
        "data_errors": c.data,
        "pending": pending,
    }


cdef class StreamDecoder:
    """Incremental decoder: feed byte chunks of any size, get every complete valid frame.

    Junk before a start byte is skipped. After a bad header checksum, an impossible
    length or a bad data checksum only the start byte is dropped, so a valid frame that
    begins inside the damaged bytes is still found. What was skipped is counted.
    """

    cdef uint8_t *_buf
    cdef Py_ssize_t _len
    cdef Py_ssize_t _cap
    cdef bint _busy
    cdef public Py_ssize_t frames
    cdef public Py_ssize_t skipped_bytes
    cdef public Py_ssize_t junk_bytes
    cdef public Py_ssize_t header_errors
    cdef public Py_ssize_t length_errors
    cdef public Py_ssize_t data_errors

    def __dealloc__(self):
        free(self._buf)

    cdef int _keep(self, const uint8_t *p, Py_ssize_t n) except -1:
        """Append ``n`` bytes to the pending buffer."""
        cdef Py_ssize_t need = self._len + n
        cdef Py_ssize_t capacity
        cdef uint8_t *grown
        if need > self._cap:
            capacity = max(need, 2 * self._cap, 2048)
            grown = <uint8_t *>realloc(self._buf, capacity)
            if grown == NULL:
                raise MemoryError()
            self._buf = grown
            self._cap = capacity
        if n:
            memcpy(self._buf + self._len, p, n)
        self._len = need
        return 0

    cdef list _scan(self, const uint8_t *p, Py_ssize_t end, Py_ssize_t *stop):
        cdef list frames = []
        cdef Counts c
        cdef Py_ssize_t pos = 0
        cdef Py_ssize_t size = 0
        c.junk = c.header = c.length = c.data = 0
        try:
            while True:
                pos = _find(p, pos, end, &size, &c)
                if size == 0:
                    break
                frames.append(_make_frame(p + pos, size))
                pos += size
        finally:
            self.frames += len(frames)
            self.junk_bytes += c.junk
            self.header_errors += c.header
            self.length_errors += c.length
            self.data_errors += c.data
            self.skipped_bytes += c.junk + c.header + c.length + c.data
        stop[0] = pos
        return frames

    def feed(self, chunk):
        """Add ``chunk`` and return the frames completed by it, in stream order."""
        cdef Py_buffer view
        cdef Py_ssize_t stop = 0
        cdef list frames
        if self._busy:
            raise RuntimeError("StreamDecoder.feed called again while feeding")
        _acquire(chunk, &view)
        self._busy = True
        try:
            if self._len == 0:
                # Nothing pending: scan the chunk in place, keep only its incomplete tail.
                frames = self._scan(<const uint8_t *>view.buf, view.len, &stop)
                self._keep(<const uint8_t *>view.buf + stop, view.len - stop)
            else:
                self._keep(<const uint8_t *>view.buf, view.len)
                frames = self._scan(self._buf, self._len, &stop)
                if stop:
                    memmove(self._buf, self._buf + stop, self._len - stop)
                    self._len -= stop
        finally:
            self._busy = False
            PyBuffer_Release(&view)
        return frames

    @property
    def pending(self):
        """Bytes held back, waiting for the rest of a frame."""
        return self._len

    def stats(self):
        """Counters of what was decoded and what was skipped, and why."""
        return {
            "frames": self.frames,
            "skipped_bytes": self.skipped_bytes,
            "junk_bytes": self.junk_bytes,
            "header_errors": self.header_errors,
            "length_errors": self.length_errors,
            "data_errors": self.data_errors,
            "pending": self._len,
        }

    def reset(self):
        """Drop buffered bytes (after reconnecting a link), keeping the counters."""
        if self._busy:
            raise RuntimeError("StreamDecoder.reset called while feeding")
        self._len = 0


# --- Values (section 4.2.3) ---------------------------------------------------------------


cdef object _format(object fmt):
    if type(fmt) is Format:  # the common case, without hashing an enum member
        return fmt
    try:
        return _FORMAT_BY_VALUE[fmt]
    except (KeyError, TypeError):
        raise ValueFormatError(f"unknown format {fmt!r}") from None


cdef bytes _pack_int(object fmt, object value, object number):
    """The 2 or 4 little-endian bytes of integer ``number`` in an integer format."""
    cdef int overflow = 0
    cdef long long v = PyLong_AsLongLongAndOverflow(number, &overflow)
    cdef uint8_t out[4]
    cdef int size = 4
    if fmt in _U16_FORMATS:
        size = 2
        if overflow or v < 0 or v > 0xFFFF:
            raise ValueFormatError(f"{value!r} is out of range for {fmt.name}")
    elif fmt is Format.LONG_ENUM:
        if overflow or v < 0 or v > 0xFFFFFFFF:
            raise ValueFormatError(f"{value!r} is out of range for {fmt.name}")
    elif overflow or v < -0x80000000 or v > 0x7FFFFFFF:
        raise ValueFormatError(f"{value!r} is out of range for {fmt.name}")
    wr32(out, <uint32_t>(v & 0xFFFFFFFF))
    return PyBytes_FromStringAndSize(<char *>out, size)


cdef bytes _pack_float(double number):
    cdef uint8_t out[4]
    wr32(out, xcom_f32_bits(<float>number))
    return PyBytes_FromStringAndSize(<char *>out, 4)


def pack_value(fmt, value):
    """Property bytes of ``value`` in format ``fmt``; ValueFormatError if it does not fit."""
    fmt = _format(fmt)
    if fmt is Format.BOOL:
        if isinstance(value, (bool, np.bool_, *_NUMBER_TYPES)) and value in (0, 1):
            return b"\x01" if value else b"\x00"
        raise ValueFormatError(f"BOOL takes 0/1 or False/True, got {value!r}")
    if fmt in _U16_FORMATS or fmt is Format.LONG_ENUM or fmt is Format.INT32:
        if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        return _pack_int(fmt, value, int(value))
    if fmt is Format.FLOAT:
        if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
            raise ValueFormatError(f"FLOAT takes a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ValueFormatError(f"{value!r} is out of range for FLOAT") from None
        if math.isfinite(number) and abs(number) > FLOAT32_MAX:
            raise ValueFormatError(f"{value!r} is out of range for FLOAT")
        return _pack_float(number)
    if fmt is Format.STRING:
        if not isinstance(value, str):
            raise ValueFormatError(f"STRING takes a str, got {value!r}")
        try:
            return value.encode(STRING_ENCODING)
        except UnicodeEncodeError as exc:
            raise ValueFormatError(f"STRING not encodable in ISO-8859-15: {exc}") from None
    if fmt is Format.BYTE_STREAM:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValueFormatError(f"BYTE_STREAM takes bytes, got {value!r}")
        return bytes(value)
    raise ValueFormatError(f"format {fmt.name} cannot be packed without knowing the real format")


cdef object _unpack(object fmt, const uint8_t *p, Py_ssize_t n, object data):
    cdef int code = fmt
    if code == F_FLOAT:
        if n != 4:
            raise ValueFormatError(f"FLOAT needs 4 bytes, got {n}")
        return <double>xcom_f32(rd32(p))
    if code == F_BOOL:
        if n != 1:
            raise ValueFormatError(f"BOOL needs 1 byte, got {n}")
        if p[0] > 1:
            raise ValueFormatError(f"invalid BOOL byte 0x{p[0]:02X}")
        return p[0] == 1
    if code == F_FORMAT or code == F_SHORT_ENUM or code == F_ERROR:
        if n != 2:
            raise ValueFormatError(f"{fmt.name} needs 2 bytes, got {n}")
        return rd16(p)
    if code == F_LONG_ENUM:
        if n != 4:
            raise ValueFormatError(f"{fmt.name} needs 4 bytes, got {n}")
        return rd32(p)
    if code == F_INT32:
        if n != 4:
            raise ValueFormatError(f"{fmt.name} needs 4 bytes, got {n}")
        return <int32_t>rd32(p)
    if fmt is Format.STRING:
        return PyBytes_FromStringAndSize(<const char *>p, n).decode(STRING_ENCODING)
    if fmt is Format.BYTE_STREAM:
        return data if type(data) is bytes else PyBytes_FromStringAndSize(<const char *>p, n)
    raise ValueFormatError(f"format {fmt.name} cannot be unpacked without knowing the real format")


def unpack_value(fmt, data):
    """Python value of property bytes ``data`` in format ``fmt``.

    BOOL -> bool, the integer formats -> int, FLOAT -> float, STRING -> str,
    BYTE_STREAM -> bytes. A size that does not match the format raises ValueFormatError.
    """
    fmt = _format(fmt)
    cdef Py_buffer view
    if type(data) is bytes:
        return _unpack(fmt, <const uint8_t *>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), data)
    _acquire(data, &view)
    try:
        return _unpack(fmt, <const uint8_t *>view.buf, view.len, None)
    finally:
        PyBuffer_Release(&view)


cdef int _batch_format(object value_format) except -1:
    """The numeric format code ``decode_batch`` reads values in; other formats are refused."""
    fmt = _format(value_format)
    if fmt not in FORMAT_SIZES:
        raise ValueFormatError(
            f"decode_batch reads numeric formats only, not {fmt.name}: "
            "use data_offset/data_length for the raw property data"
        )
    return fmt


cdef inline double _batch_value(int code, const uint8_t *p, Py_ssize_t n) noexcept nogil:
    """The property value at ``p`` as a double, NaN when ``n`` does not fit the format."""
    cdef double nan = NAN
    if code == F_FLOAT:
        if n == 4:
            return <double>xcom_f32(rd32(p))
        return nan
    if code == F_INT32:
        if n == 4:
            return <double><int32_t>rd32(p)
        return nan
    if code == F_LONG_ENUM:
        if n == 4:
            return <double>rd32(p)
        return nan
    if code == F_BOOL:
        if n == 1 and p[0] <= 1:
            return <double>p[0]
        return nan
    if n == 2:  # FORMAT, SHORT_ENUM, ERROR
        return <double>rd16(p)
    return nan


# --- Batches: many frames from one buffer into column arrays ------------------------------


cdef inline cnp.ndarray _empty(Py_ssize_t n, int typenum):
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    return cnp.PyArray_EMPTY(1, dims, typenum, 0)


def decode_batch(buffer, value_format=Format.FLOAT):
    """Decode every valid frame in ``buffer`` (concatenated frames, junk allowed) to columns.

    Frames are found exactly as ``StreamDecoder().feed(buffer)`` finds them. ``value`` is
    each frame's property data read in ``value_format`` (a numeric format), NaN for an
    error response, a short frame (no property) or a data size that does not match the
    format. A short frame's object fields are 0 and its data follows its service id.
    """
    cdef int code = _batch_format(value_format)
    cdef Py_buffer view
    cdef _Spans spans = _Spans()
    cdef Counts c
    cdef Py_ssize_t stop, n, i, size, length, at
    cdef const uint8_t *base
    cdef const uint8_t *p
    cdef uint8_t *o_ff
    cdef uint32_t *o_src
    cdef uint32_t *o_dst
    cdef uint8_t *o_sf
    cdef uint8_t *o_sid
    cdef uint16_t *o_ot
    cdef uint32_t *o_oid
    cdef uint16_t *o_pid
    cdef uint16_t *o_err
    cdef double *o_val
    cdef int64_t *o_off
    cdef uint16_t *o_len
    c.junk = c.header = c.length = c.data = 0
    _acquire(buffer, &view)
    try:
        base = <const uint8_t *>view.buf
        with nogil:
            stop = spans.scan(base, view.len, &c)
        n = spans.count
        frame_flags = _empty(n, cnp.NPY_UINT8)
        src = _empty(n, cnp.NPY_UINT32)
        dst = _empty(n, cnp.NPY_UINT32)
        service_flags = _empty(n, cnp.NPY_UINT8)
        service_id = _empty(n, cnp.NPY_UINT8)
        object_type = _empty(n, cnp.NPY_UINT16)
        object_id = _empty(n, cnp.NPY_UINT32)
        property_id = _empty(n, cnp.NPY_UINT16)
        error_code = _empty(n, cnp.NPY_UINT16)
        value = _empty(n, cnp.NPY_FLOAT64)
        data_offset = _empty(n, cnp.NPY_INT64)
        data_length = _empty(n, cnp.NPY_UINT16)
        o_ff = <uint8_t *>cnp.PyArray_DATA(frame_flags)
        o_src = <uint32_t *>cnp.PyArray_DATA(src)
        o_dst = <uint32_t *>cnp.PyArray_DATA(dst)
        o_sf = <uint8_t *>cnp.PyArray_DATA(service_flags)
        o_sid = <uint8_t *>cnp.PyArray_DATA(service_id)
        o_ot = <uint16_t *>cnp.PyArray_DATA(object_type)
        o_oid = <uint32_t *>cnp.PyArray_DATA(object_id)
        o_pid = <uint16_t *>cnp.PyArray_DATA(property_id)
        o_err = <uint16_t *>cnp.PyArray_DATA(error_code)
        o_val = <double *>cnp.PyArray_DATA(value)
        o_off = <int64_t *>cnp.PyArray_DATA(data_offset)
        o_len = <uint16_t *>cnp.PyArray_DATA(data_length)
        with nogil:
            for i in range(n):
                p = base + spans.offset[i]
                size = spans.size[i]
                o_ff[i] = p[1]
                o_src[i] = rd32(p + 2)
                o_dst[i] = rd32(p + 6)
                o_sf[i] = p[14]
                o_sid[i] = p[15]
                if size >= OVERHEAD:
                    at = DATA_AT
                    o_ot[i] = rd16(p + 16)
                    o_oid[i] = rd32(p + 18)
                    o_pid[i] = rd16(p + 22)
                else:  # a short frame: no object fields, data after the service id
                    at = SHORT_DATA_AT
                    o_ot[i] = 0
                    o_oid[i] = 0
                    o_pid[i] = 0
                length = size - at - CHECK
                o_off[i] = spans.offset[i] + at
                o_len[i] = <uint16_t>length
                if p[14] & FLAG_ERROR:
                    o_err[i] = rd16(p + at) if length >= 2 else 0
                    o_val[i] = NAN
                elif size < OVERHEAD:
                    o_err[i] = 0
                    o_val[i] = NAN
                else:
                    o_err[i] = 0
                    o_val[i] = _batch_value(code, p + at, length)
        stats = _stats(n, &c, view.len - stop)
    finally:
        PyBuffer_Release(&view)
    return FrameBatch(
        frame_flags,
        src,
        dst,
        service_flags,
        service_id,
        object_type,
        object_id,
        property_id,
        error_code,
        value,
        data_offset,
        data_length,
        stats,
    )


def decode_multi_info_batch(buffer):
    """Decode every multi-info response in ``buffer`` into concatenated numpy arrays.

    Frames are found as ``decode_batch`` finds them; frames that are not multi-info
    responses (short frames included) are counted (``other_frames``) and left out, as are
    multi-info responses whose data length is impossible (``malformed``). Error responses
    are kept, with their ``error_code`` and no items.
    """
    cdef Py_buffer view
    cdef _Spans spans = _Spans()
    cdef Counts c
    cdef Py_ssize_t stop, i, j, k, length, body, count
    cdef Py_ssize_t frames = 0
    cdef Py_ssize_t items = 0
    cdef Py_ssize_t other = 0
    cdef Py_ssize_t malformed = 0
    cdef const uint8_t *base
    cdef const uint8_t *p
    cdef const uint8_t *q
    cdef int64_t *o_frame
    cdef uint16_t *o_ids
    cdef uint8_t *o_aggs
    cdef float *o_vals
    cdef uint32_t *o_src
    cdef uint32_t *o_dst
    cdef uint8_t *o_ff
    cdef uint16_t *o_pid
    cdef uint32_t *o_flags
    cdef uint32_t *o_ts
    cdef uint16_t *o_err
    cdef int64_t *o_start
    cdef int64_t *o_count
    c.junk = c.header = c.length = c.data = 0
    _acquire(buffer, &view)
    try:
        base = <const uint8_t *>view.buf
        with nogil:
            stop = spans.scan(base, view.len, &c)
            # First pass: classify each frame and count its items. The second pass reads
            # the classification from here, never from the buffer again: with the GIL
            # released another thread may write into a writable buffer meanwhile, and the
            # item arrays are sized by this pass. Size 0: left out; negative: error.
            for i in range(spans.count):
                p = base + spans.offset[i]
                length = spans.size[i] - OVERHEAD
                if length < 0:  # a short frame names no object: not a multi-info response
                    other += 1
                    spans.size[i] = 0
                elif not (p[14] & FLAG_RESPONSE) or rd16(p + 16) != OBJECT_MULTI_INFO:
                    other += 1
                    spans.size[i] = 0
                elif p[14] & FLAG_ERROR:
                    frames += 1
                    spans.size[i] = -spans.size[i]
                else:
                    body = length - MULTI_HEAD
                    if body < 0 or body % MULTI_ITEM:
                        malformed += 1
                        spans.size[i] = 0
                    else:
                        frames += 1
                        items += body // MULTI_ITEM
        frame = _empty(items, cnp.NPY_INT64)
        ids = _empty(items, cnp.NPY_UINT16)
        aggregations = _empty(items, cnp.NPY_UINT8)
        values = _empty(items, cnp.NPY_FLOAT32)
        src = _empty(frames, cnp.NPY_UINT32)
        dst = _empty(frames, cnp.NPY_UINT32)
        frame_flags = _empty(frames, cnp.NPY_UINT8)
        property_id = _empty(frames, cnp.NPY_UINT16)
        flags = _empty(frames, cnp.NPY_UINT32)
        timestamp = _empty(frames, cnp.NPY_UINT32)
        error_code = _empty(frames, cnp.NPY_UINT16)
        item_start = _empty(frames, cnp.NPY_INT64)
        item_count = _empty(frames, cnp.NPY_INT64)
        o_frame = <int64_t *>cnp.PyArray_DATA(frame)
        o_ids = <uint16_t *>cnp.PyArray_DATA(ids)
        o_aggs = <uint8_t *>cnp.PyArray_DATA(aggregations)
        o_vals = <float *>cnp.PyArray_DATA(values)
        o_src = <uint32_t *>cnp.PyArray_DATA(src)
        o_dst = <uint32_t *>cnp.PyArray_DATA(dst)
        o_ff = <uint8_t *>cnp.PyArray_DATA(frame_flags)
        o_pid = <uint16_t *>cnp.PyArray_DATA(property_id)
        o_flags = <uint32_t *>cnp.PyArray_DATA(flags)
        o_ts = <uint32_t *>cnp.PyArray_DATA(timestamp)
        o_err = <uint16_t *>cnp.PyArray_DATA(error_code)
        o_start = <int64_t *>cnp.PyArray_DATA(item_start)
        o_count = <int64_t *>cnp.PyArray_DATA(item_count)
        with nogil:
            j = 0  # frame index
            k = 0  # item index
            for i in range(spans.count):
                if spans.size[i] == 0:
                    continue
                p = base + spans.offset[i]
                length = (spans.size[i] if spans.size[i] > 0 else -spans.size[i]) - OVERHEAD
                q = p + DATA_AT
                o_src[j] = rd32(p + 2)
                o_dst[j] = rd32(p + 6)
                o_ff[j] = p[1]
                o_pid[j] = rd16(p + 22)
                o_start[j] = k
                if spans.size[i] < 0:
                    o_flags[j] = 0
                    o_ts[j] = 0
                    o_err[j] = rd16(q) if length >= 2 else 0
                    o_count[j] = 0
                else:
                    count = (length - MULTI_HEAD) // MULTI_ITEM
                    if k + count > items:  # cannot happen: the first pass counted these
                        count = items - k
                    o_flags[j] = rd32(q)
                    o_ts[j] = rd32(q + 4)
                    o_err[j] = 0
                    o_count[j] = count
                    q += MULTI_HEAD
                    while count:
                        o_frame[k] = j
                        o_ids[k] = rd16(q)
                        o_aggs[k] = q[2]
                        o_vals[k] = xcom_f32(rd32(q + 3))
                        q += MULTI_ITEM
                        k += 1
                        count -= 1
                j += 1
        stats = _stats(spans.count, &c, view.len - stop)
    finally:
        PyBuffer_Release(&view)
    stats.update(multi_info_frames=frames, other_frames=other, malformed=malformed)
    return MultiInfoBatch(
        frame,
        ids,
        aggregations,
        values,
        src,
        dst,
        frame_flags,
        property_id,
        flags,
        timestamp,
        error_code,
        item_start,
        item_count,
        stats,
    )


# --- Multi infos (section 4.9) ------------------------------------------------------------


def pack_multi_info_request(items):
    """Property data of a multi-info request: 1-76 (info id, aggregation) pairs.

    The pairs are taken once into a tuple, which nothing can lengthen: an item whose
    unpacking runs Python code never makes the loop write past the buffer sized here.
    """
    cdef tuple pairs = tuple(items)
    cdef Py_ssize_t n = len(pairs)
    if not 1 <= n <= MULTI_MAX:
        raise ValueError(
            f"a multi-info request holds 1..{MULTI_INFO_MAX_ITEMS} items, got {n}"
        )
    cdef bytearray out = bytearray(3 * n)
    cdef uint8_t *q
    cdef uint32_t info_id, aggregation
    cdef Py_ssize_t i
    for i in range(n):
        info_id, aggregation = _pair(pairs[i])
        # Fetched after the unpacking: Python code there may have resized ``out``.
        if len(out) != 3 * n:
            raise ValueError("the multi-info request buffer changed while packing")
        q = <uint8_t *><char *>out + 3 * i
        wr16(q, info_id)
        q[2] = <uint8_t>aggregation
    return bytes(out)


cdef tuple _pair(object pair):
    cdef tuple items = tuple(pair)
    if len(items) != 2:
        raise ValueError(
            f"a multi-info item is an (info id, aggregation) pair, got {len(items)} values"
        )
    info_id, aggregation = items
    return (
        <uint32_t>_check_u(info_id, 16, "info id"),
        <uint32_t>_check_u(aggregation, 8, "aggregation"),
    )


def encode_multi_info_request(items, *, src=ADDRESS_DTE, dst=ADDRESS_GATEWAY, property_id=Property.VALUE):
    """A complete multi-info request frame for 1-76 (info id, aggregation) pairs."""
    return encode_request(
        Service.READ,
        ObjectType.MULTI_INFO,
        MULTI_INFO_OBJECT_ID,
        property_id,
        pack_multi_info_request(items),
        src=src,
        dst=dst,
    )


def unpack_multi_info_request(data):
    """The (info id, aggregation) pairs of a multi-info request's property data."""
    data = _as_bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if n % 3 or not 1 <= n // 3 <= MULTI_MAX:
        raise ValueFormatError(f"invalid multi-info request data length {n}")
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef list pairs = []
    cdef Py_ssize_t i
    for i in range(0, n, 3):
        pairs.append((rd16(p + i), p[i + 2]))
    return pairs


cdef double _check_float32(object value, str name) except? -1.0:
    """``value`` as a float that a float32 can carry (infinities and NaN pass)."""
    if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
        raise ValueFormatError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueFormatError(f"{name} {value!r} is out of range for float32") from None
    if math.isfinite(number) and abs(number) > FLOAT32_MAX:
        raise ValueFormatError(f"{name} {value!r} is out of range for float32")
    return number


def pack_multi_info_response(flags, timestamp, ids, aggregations, values):
    """Property data of a multi-info response (flags, time, then id/aggregation/float32).

    The three sequences are taken once into tuples, so the lengths checked here are the
    lengths written, whatever the objects given.
    """
    ids, aggregations, values = tuple(ids), tuple(aggregations), tuple(values)
    cdef Py_ssize_t count = len(ids)
    if not (count == len(aggregations) == len(values)):
        raise ValueError("ids, aggregations and values must have the same length")
    if count > MULTI_MAX:
        raise ValueError(f"at most {MULTI_INFO_MAX_ITEMS} items, got {count}")
    cdef uint32_t f = <uint32_t>_check_u(flags, 32, "flags")
    cdef uint32_t t = <uint32_t>_check_u(timestamp, 32, "timestamp")
    cdef bytearray out = bytearray(MULTI_HEAD + MULTI_ITEM * count)
    cdef uint8_t *q
    cdef uint32_t info_id, aggregation
    cdef float value
    cdef Py_ssize_t i
    for i in range(count):
        info_id = <uint32_t>_check_u(ids[i], 16, "info id")
        aggregation = <uint32_t>_check_u(aggregations[i], 8, "aggregation")
        value = <float>_check_float32(values[i], "value")
        q = <uint8_t *><char *>out + MULTI_HEAD + MULTI_ITEM * i
        wr16(q, info_id)
        q[2] = <uint8_t>aggregation
        wr32(q + 3, xcom_f32_bits(value))
    q = <uint8_t *><char *>out
    wr32(q, f)
    wr32(q + 4, t)
    return bytes(out)


def decode_multi_info(data):
    """Decode the property data of a successful multi-info response into numpy arrays."""
    data = _as_bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef Py_ssize_t body = n - MULTI_HEAD
    if body < 0 or body % MULTI_ITEM:
        raise ValueFormatError(f"invalid multi-info response data length {n}")
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    cdef Py_ssize_t count = body // MULTI_ITEM
    cdef Py_ssize_t i
    ids = _empty(count, cnp.NPY_UINT16)
    aggregations = _empty(count, cnp.NPY_UINT8)
    values = _empty(count, cnp.NPY_FLOAT32)
    cdef uint16_t *o_ids = <uint16_t *>cnp.PyArray_DATA(ids)
    cdef uint8_t *o_aggs = <uint8_t *>cnp.PyArray_DATA(aggregations)
    cdef float *o_vals = <float *>cnp.PyArray_DATA(values)
    cdef const uint8_t *q = p + MULTI_HEAD
    for i in range(count):
        o_ids[i] = rd16(q)
        o_aggs[i] = q[2]
        o_vals[i] = xcom_f32(rd32(q + 3))
        q += MULTI_ITEM
    return MultiInfo(rd32(p), rd32(p + 4), ids, aggregations, values)


# --- Messages (section 4.6.6) -------------------------------------------------------------


def pack_message(total, message_type, source, timestamp, value=b"\0\0\0\0"):
    """Property data of a message object response."""
    value = _as_bytes(value)
    if PyBytes_GET_SIZE(value) != 4:
        raise ValueFormatError("a message value has 4 bytes")
    cdef uint8_t out[14]
    wr32(out, <uint32_t>(_check_s(total, 32, "total", ValueFormatError) & 0xFFFFFFFF))
    wr16(out + 4, <uint32_t>_check_u(message_type, 16, "message_type", ValueFormatError))
    wr32(out + 6, <uint32_t>(_check_s(source, 32, "source", ValueFormatError) & 0xFFFFFFFF))
    wr32(out + 10, <uint32_t>(_check_s(timestamp, 32, "timestamp", ValueFormatError) & 0xFFFFFFFF))
    return PyBytes_FromStringAndSize(<char *>out, 14) + value


def decode_message(data):
    """Decode the property data of a message object response."""
    data = _as_bytes(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    if n != MESSAGE_SIZE:
        raise ValueFormatError(f"message data must be {MESSAGE_DATA_SIZE} bytes, got {n}")
    cdef const uint8_t *p = <const uint8_t *>PyBytes_AS_STRING(data)
    return Message(
        <int32_t>rd32(p), rd16(p + 4), <int32_t>rd32(p + 6), <int32_t>rd32(p + 10), data[14:18]
    )


_self_check_direct_records()
