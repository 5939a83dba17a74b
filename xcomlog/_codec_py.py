"""Pure-Python implementation of the Xcom codec; ``_codec.pyx`` is its compiled twin.

Both implement exactly the same API and raise the same exceptions; ``xcomlog.codec``
selects one. Frame layout: specification section 3.3; checksum: section 3.4.
Byte inputs may be any contiguous bytes-like object (bytes, bytearray, memoryview,
numpy array); anything else raises TypeError, in both implementations alike.
"""

from __future__ import annotations

import math
import operator
import struct
from collections.abc import Iterable, Sequence

import numpy as np

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

IMPLEMENTATION = "py"

_HEADER = struct.Struct("<BBIIH")  # start, frame_flags, src, dst, data_length
_SERVICE = struct.Struct("<BBHIH")  # service_flags, service_id, object_type, object_id, property_id
_FRAME_FIELDS = struct.Struct("<xBIIxxxxBBHIH")  # frame_flags .. property_id of a whole frame
_SHORT_FIELDS = struct.Struct("<xBIIxxxxBB")  # frame_flags .. service_id of a short frame
#: Size of the smallest frame with a whole service header; a smaller one is a short frame.
_FULL_FRAME = HEADER_SIZE + SERVICE_HEADER_SIZE + CHECKSUM_SIZE
_MULTI_HEADER = struct.Struct("<II")
_MULTI_ITEM = struct.Struct("<HBf")
_MESSAGE = struct.Struct("<iHii")
_U16 = struct.Struct("<H")
_ERROR_FLAG = int(ServiceFlag.ERROR)
_RESPONSE_FLAG = int(ServiceFlag.RESPONSE)
_MULTI_INFO = int(ObjectType.MULTI_INFO)

_MULTI_ITEM_DTYPE = np.dtype([("id", "<u2"), ("agg", "u1")])
_MULTI_VALUE_DTYPE = np.dtype([("id", "<u2"), ("agg", "u1"), ("value", "<f4")])

#: Largest finite float32; larger finite numbers cannot be sent as FLOAT.
FLOAT32_MAX = 3.4028234663852886e38

# Outcome codes of a header check (shared meaning with the compiled twin).
_NEED_MORE = 0
_BAD_START = -1
_BAD_HEADER_CHECKSUM = -2
_BAD_LENGTH = -3


def _view(data: object) -> memoryview:
    """A flat unsigned-byte view of a contiguous bytes-like object, TypeError otherwise."""
    view = memoryview(data)
    if not view.c_contiguous:
        raise TypeError("expected a contiguous bytes-like object")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view


def _as_bytes(data: object) -> bytes:
    if type(data) is bytes:
        return data
    return bytes(_view(data))


def checksum(data: bytes) -> bytes:
    """The two checksum bytes (A, B) of ``data`` (section 3.4).

    Closed form of the specification's loop (A += d; B += A, both modulo 256):
    A = 0xFF + sum(d), B = 0xFF*n + sum((n - i) * d[i]), which runs the loops in C.
    """
    raw = _as_bytes(data)
    n = len(raw)
    total = sum(raw)
    weighted = sum(map(operator.mul, raw, range(n)))
    return bytes(((0xFF + total) & 0xFF, (0xFF * n + n * total - weighted) & 0xFF))


def _check_u(value: object, bits: int, name: str, error: type[Exception] = ValueError) -> int:
    """``value`` as an int that fits in ``bits`` unsigned bits (TypeError if not an integer)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if not 0 <= number < (1 << bits):
        raise error(f"{name} must fit in {bits} unsigned bits, got {number}")
    return number


def _check_s(value: object, bits: int, name: str, error: type[Exception] = ValueError) -> int:
    """``value`` as an int that fits in ``bits`` signed bits (TypeError if not an integer)."""
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if not -(1 << (bits - 1)) <= number < (1 << (bits - 1)):
        raise error(f"{name} must fit in {bits} signed bits, got {number}")
    return number


def encode_frame(
    service_id: int,
    object_type: int,
    object_id: int,
    property_id: int,
    data: bytes = b"",
    *,
    src: int = ADDRESS_DTE,
    dst: int = ADDRESS_GATEWAY,
    service_flags: int = 0,
    frame_flags: int = 0,
) -> bytes:
    """Encode a complete frame: header, service header, property ``data`` and checksums."""
    frame_flags = _check_u(frame_flags, 8, "frame_flags")
    service_flags = _check_u(service_flags, 8, "service_flags")
    service_id = _check_u(service_id, 8, "service_id")
    object_type = _check_u(object_type, 16, "object_type")
    object_id = _check_u(object_id, 32, "object_id")
    property_id = _check_u(property_id, 16, "property_id")
    src = _check_u(src, 32, "src")
    dst = _check_u(dst, 32, "dst")
    data = _as_bytes(data)
    length = SERVICE_HEADER_SIZE + len(data)
    if length > MAX_DATA_LENGTH:
        raise LengthError(f"frame data of {length} bytes exceeds the maximum of {MAX_DATA_LENGTH}")
    header = _HEADER.pack(START_BYTE, frame_flags, src, dst, length)
    frame_data = (
        _SERVICE.pack(service_flags, service_id, object_type, object_id, property_id) + data
    )
    return header + checksum(header[1:]) + frame_data + checksum(frame_data)


def encode_request(
    service_id: int,
    object_type: int,
    object_id: int,
    property_id: int,
    data: bytes = b"",
    *,
    src: int = ADDRESS_DTE,
    dst: int = ADDRESS_GATEWAY,
) -> bytes:
    """Encode a request frame (service flags 0, frame flags 0) as a DTE sends it."""
    return encode_frame(service_id, object_type, object_id, property_id, data, src=src, dst=dst)


def encode_response(
    service_id: int,
    object_type: int,
    object_id: int,
    property_id: int,
    data: bytes = b"",
    *,
    src: int,
    dst: int = ADDRESS_DTE,
    frame_flags: int = 0,
    error_code: int | None = None,
) -> bytes:
    """Encode a response frame; with ``error_code`` the error flag is set and data is the code."""
    flags = ServiceFlag.RESPONSE
    if error_code is not None:
        flags |= ServiceFlag.ERROR
        data = _U16.pack(_check_u(error_code, 16, "error_code"))
    return encode_frame(
        service_id,
        object_type,
        object_id,
        property_id,
        data,
        src=src,
        dst=dst,
        service_flags=int(flags),
        frame_flags=frame_flags,
    )


def _header(buf: bytes, pos: int, end: int) -> int:
    """Size of the frame whose header starts at ``pos``, ``_NEED_MORE`` or a negative defect."""
    if buf[pos] != START_BYTE:
        return _BAD_START
    if end - pos < HEADER_SIZE:
        return _NEED_MORE
    a = 0xFF
    b = 0
    for byte in buf[pos + 1 : pos + HEADER_SIZE - CHECKSUM_SIZE]:
        a = (a + byte) & 0xFF
        b = (b + a) & 0xFF
    if a != buf[pos + HEADER_SIZE - 2] or b != buf[pos + HEADER_SIZE - 1]:
        return _BAD_HEADER_CHECKSUM
    length = buf[pos + 10] | (buf[pos + 11] << 8)
    if not MIN_DATA_LENGTH <= length <= MAX_DATA_LENGTH:
        return _BAD_LENGTH
    return HEADER_SIZE + length + CHECKSUM_SIZE


def _data_ok(buf: bytes, pos: int, size: int) -> bool:
    """True when the data checksum of the frame of ``size`` bytes at ``pos`` matches."""
    end = pos + size - CHECKSUM_SIZE
    return checksum(buf[pos + HEADER_SIZE : end]) == buf[end : end + CHECKSUM_SIZE]


def _raise_header(code: int, buf: bytes, pos: int) -> None:
    if code == _BAD_START:
        raise StartByteError(f"bad start byte 0x{buf[pos]:02X}, expected 0x{START_BYTE:02X}")
    if code == _BAD_HEADER_CHECKSUM:
        raise HeaderChecksumError("header checksum mismatch")
    length = buf[pos + 10] | (buf[pos + 11] << 8)
    raise LengthError(
        f"impossible data_length {length} (must be {MIN_DATA_LENGTH}..{MAX_DATA_LENGTH})"
    )


def frame_size(buffer: bytes, offset: int = 0) -> int:
    """Total size of the frame starting at ``offset``, or 0 if its header is incomplete.

    Raises StartByteError, HeaderChecksumError or LengthError for a header that can never
    become a valid frame. The frame itself may still be incomplete in ``buffer``.
    """
    offset = operator.index(offset)
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    view = _view(buffer)
    end = len(view)
    if offset >= end:
        return 0
    # Only the header is needed: copy at most its 14 bytes, not the whole buffer.
    head = bytes(view[offset : offset + HEADER_SIZE])
    code = _header(head, 0, len(head))
    if code < 0:
        _raise_header(code, head, 0)
    return code


def _frame(buf: bytes, pos: int, size: int) -> Frame:
    """The Frame of the valid frame of ``size`` bytes at ``pos``.

    A short frame (2..9 bytes of frame data) has no object fields: they are 0, and ``data``
    holds the bytes after the service flags and service id (an error code, say).
    """
    end = pos + size - CHECKSUM_SIZE
    if size >= _FULL_FRAME:
        return Frame(*_FRAME_FIELDS.unpack_from(buf, pos), buf[pos + _DATA_AT : end])
    return Frame(*_SHORT_FIELDS.unpack_from(buf, pos), 0, 0, 0, buf[pos + _SHORT_DATA_AT : end])


#: Offset of the property data in a frame, and of the data after a short frame's service id.
_DATA_AT = HEADER_SIZE + SERVICE_HEADER_SIZE
_SHORT_DATA_AT = HEADER_SIZE + MIN_DATA_LENGTH


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one complete frame; every defect raises a specific FrameError."""
    buf = _as_bytes(data)
    n = len(buf)
    if n == 0:
        raise TruncatedFrameError("empty input: no frame")
    size = _header(buf, 0, n)
    if size < 0:
        _raise_header(size, buf, 0)
    if size == 0:
        raise TruncatedFrameError(f"truncated header: {n} of {HEADER_SIZE} bytes")
    if n < size:
        raise TruncatedFrameError(f"truncated frame: {n} of {size} bytes")
    if n > size:
        raise FrameError(f"{n - size} unexpected bytes after a frame of {size} bytes")
    if not _data_ok(buf, 0, size):
        raise DataChecksumError("data checksum mismatch")
    return _frame(buf, 0, size)


def _scan(
    buf: bytes | bytearray, pos: int, end: int
) -> tuple[list[tuple[int, int]], int, list[int]]:
    """Find the valid frames in ``buf[pos:end]``, the way the stream decoder does.

    Junk before a start byte is skipped. After a bad header checksum, an impossible
    length or a bad data checksum only the start byte is dropped, so a valid frame
    that begins inside the damaged bytes is still found. Returns the (offset, size)
    of each frame, the offset of the first byte not consumed (an incomplete frame)
    and the counts [junk bytes, header errors, length errors, data errors].
    """
    spans: list[tuple[int, int]] = []
    counts = [0, 0, 0, 0]
    while pos < end:
        if buf[pos] != START_BYTE:
            nxt = buf.find(START_BYTE, pos, end)
            if nxt < 0:
                nxt = end
            counts[0] += nxt - pos
            pos = nxt
            continue
        size = _header(buf, pos, end)
        if size == _BAD_HEADER_CHECKSUM:
            counts[1] += 1
            pos += 1
            continue
        if size == _BAD_LENGTH:
            counts[2] += 1
            pos += 1
            continue
        if size == _NEED_MORE or end - pos < size:
            break
        if not _data_ok(buf, pos, size):
            counts[3] += 1
            pos += 1
            continue
        spans.append((pos, size))
        pos += size
    return spans, pos, counts


class StreamDecoder:
    """Incremental decoder: feed byte chunks of any size, get every complete valid frame.

    Junk before a start byte is skipped. After a bad header checksum, an impossible
    length or a bad data checksum only the start byte is dropped, so a valid frame that
    begins inside the damaged bytes is still found. What was skipped is counted.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.frames = 0
        self.skipped_bytes = 0
        self.junk_bytes = 0
        self.header_errors = 0
        self.length_errors = 0
        self.data_errors = 0

    def feed(self, chunk: bytes) -> list[Frame]:
        """Add ``chunk`` and return the frames completed by it, in stream order."""
        chunk = _view(chunk)
        buffer = self._buffer
        buffer += chunk
        spans, pos, (junk, header, length, data) = _scan(buffer, 0, len(buffer))
        frames: list[Frame] = []
        if spans:
            buf = bytes(buffer)
            frames = [_frame(buf, start, size) for start, size in spans]
        self.frames += len(frames)
        self.junk_bytes += junk
        self.header_errors += header
        self.length_errors += length
        self.data_errors += data
        self.skipped_bytes += junk + header + length + data
        del buffer[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buffer)

    def stats(self) -> dict[str, int]:
        """Counters of what was decoded and what was skipped, and why."""
        return {
            "frames": self.frames,
            "skipped_bytes": self.skipped_bytes,
            "junk_bytes": self.junk_bytes,
            "header_errors": self.header_errors,
            "length_errors": self.length_errors,
            "data_errors": self.data_errors,
            "pending": len(self._buffer),
        }

    def reset(self) -> None:
        """Drop buffered bytes (after reconnecting a link), keeping the counters."""
        self._buffer.clear()


# --- Values (section 4.2.3) -------------------------------------------------------------

_INT_FORMATS = {
    Format.FORMAT: struct.Struct("<H"),
    Format.SHORT_ENUM: struct.Struct("<H"),
    Format.ERROR: struct.Struct("<H"),
    Format.LONG_ENUM: struct.Struct("<I"),
    Format.INT32: struct.Struct("<i"),
}
_FLOAT = struct.Struct("<f")
_NUMBER_TYPES = (int, float, np.integer, np.floating)


def pack_value(fmt: int, value: object) -> bytes:
    """Property bytes of ``value`` in format ``fmt``; ValueFormatError if it does not fit."""
    fmt = _format(fmt)
    if fmt is Format.BOOL:
        if isinstance(value, (bool, np.bool_, *_NUMBER_TYPES)) and value in (0, 1):
            return b"\x01" if value else b"\x00"
        raise ValueFormatError(f"BOOL takes 0/1 or False/True, got {value!r}")
    if fmt in _INT_FORMATS:
        if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        try:
            return _INT_FORMATS[fmt].pack(int(value))
        except struct.error:
            raise ValueFormatError(f"{value!r} is out of range for {fmt.name}") from None
    if fmt is Format.FLOAT:
        if isinstance(value, bool) or not isinstance(value, _NUMBER_TYPES):
            raise ValueFormatError(f"FLOAT takes a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:
            raise ValueFormatError(f"{value!r} is out of range for FLOAT") from None
        if math.isfinite(number) and abs(number) > FLOAT32_MAX:
            raise ValueFormatError(f"{value!r} is out of range for FLOAT")
        return _FLOAT.pack(number)
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


def unpack_value(fmt: int, data: bytes) -> object:
    """Python value of property bytes ``data`` in format ``fmt``.

    BOOL -> bool, the integer formats -> int, FLOAT -> float, STRING -> str,
    BYTE_STREAM -> bytes. A size that does not match the format raises ValueFormatError.
    """
    fmt = _format(fmt)
    data = _as_bytes(data)
    if fmt is Format.BOOL:
        if len(data) != 1:
            raise ValueFormatError(f"BOOL needs 1 byte, got {len(data)}")
        if data[0] > 1:
            raise ValueFormatError(f"invalid BOOL byte 0x{data[0]:02X}")
        return bool(data[0])
    if fmt in _INT_FORMATS:
        packer = _INT_FORMATS[fmt]
        if len(data) != packer.size:
            raise ValueFormatError(f"{fmt.name} needs {packer.size} bytes, got {len(data)}")
        return packer.unpack(data)[0]
    if fmt is Format.FLOAT:
        if len(data) != 4:
            raise ValueFormatError(f"FLOAT needs 4 bytes, got {len(data)}")
        return _FLOAT.unpack(data)[0]
    if fmt is Format.STRING:
        return data.decode(STRING_ENCODING)
    if fmt is Format.BYTE_STREAM:
        return data
    raise ValueFormatError(f"format {fmt.name} cannot be unpacked without knowing the real format")


_FORMAT_BY_VALUE = {int(f): f for f in Format}


def _format(fmt: int) -> Format:
    if type(fmt) is Format:  # the common case, without hashing an enum member
        return fmt
    try:
        return _FORMAT_BY_VALUE[fmt]
    except (KeyError, TypeError):
        raise ValueFormatError(f"unknown format {fmt!r}") from None


def _batch_format(fmt: int) -> Format:
    """The numeric format ``decode_batch`` reads values in; other formats are refused."""
    fmt = _format(fmt)
    if fmt not in FORMAT_SIZES:
        raise ValueFormatError(
            f"decode_batch reads numeric formats only, not {fmt.name}: "
            "use data_offset/data_length for the raw property data"
        )
    return fmt


def _batch_value(fmt: Format, buf: bytes, start: int, length: int) -> float:
    """The property value at ``buf[start:start+length]`` as a float, NaN if it does not fit."""
    if length != FORMAT_SIZES[fmt]:
        return math.nan
    if fmt is Format.FLOAT:
        return _FLOAT.unpack_from(buf, start)[0]
    if fmt is Format.BOOL:
        byte = buf[start]
        return float(byte) if byte <= 1 else math.nan
    return float(_INT_FORMATS[fmt].unpack_from(buf, start)[0])


# --- Batches: many frames from one buffer into column arrays ------------------------------


def _scan_stats(spans: list, pos: int, end: int, counts: list[int]) -> dict[str, int]:
    junk, header, length, data = counts
    return {
        "frames": len(spans),
        "skipped_bytes": junk + header + length + data,
        "junk_bytes": junk,
        "header_errors": header,
        "length_errors": length,
        "data_errors": data,
        "pending": end - pos,
    }


def decode_batch(buffer: bytes, value_format: int = Format.FLOAT) -> FrameBatch:
    """Decode every valid frame in ``buffer`` (concatenated frames, junk allowed) to columns.

    Frames are found exactly as ``StreamDecoder().feed(buffer)`` finds them. ``value`` is
    each frame's property data read in ``value_format`` (a numeric format), NaN for an
    error response, a short frame (no property) or a data size that does not match the
    format. A short frame's object fields are 0 and its data follows its service id.
    """
    fmt = _batch_format(value_format)
    buf = _as_bytes(buffer)
    spans, pos, counts = _scan(buf, 0, len(buf))
    n = len(spans)
    frame_flags = np.empty(n, np.uint8)
    src = np.empty(n, np.uint32)
    dst = np.empty(n, np.uint32)
    service_flags = np.empty(n, np.uint8)
    service_id = np.empty(n, np.uint8)
    object_type = np.empty(n, np.uint16)
    object_id = np.empty(n, np.uint32)
    property_id = np.empty(n, np.uint16)
    error_code = np.zeros(n, np.uint16)
    value = np.empty(n, np.float64)
    data_offset = np.empty(n, np.int64)
    data_length = np.empty(n, np.uint16)
    for i, (start, size) in enumerate(spans):
        short = size < _FULL_FRAME
        if short:  # no object fields: 0, and the data follows the service id
            fields = (*_SHORT_FIELDS.unpack_from(buf, start), 0, 0, 0)
            offset = start + _SHORT_DATA_AT
        else:
            fields = _FRAME_FIELDS.unpack_from(buf, start)
            offset = start + _DATA_AT
        frame_flags[i], src[i], dst[i], service_flags[i], service_id[i] = fields[:5]
        object_type[i], object_id[i], property_id[i] = fields[5:]
        length = start + size - CHECKSUM_SIZE - offset
        data_offset[i] = offset
        data_length[i] = length
        if fields[3] & _ERROR_FLAG:
            if length >= 2:
                error_code[i] = _U16.unpack_from(buf, offset)[0]
            value[i] = math.nan
        elif short:
            value[i] = math.nan
        else:
            value[i] = _batch_value(fmt, buf, offset, length)
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
        _scan_stats(spans, pos, len(buf), counts),
    )


def decode_multi_info_batch(buffer: bytes) -> MultiInfoBatch:
    """Decode every multi-info response in ``buffer`` into concatenated numpy arrays.

    Frames are found as ``decode_batch`` finds them; frames that are not multi-info
    responses (short frames included) are counted (``other_frames``) and left out, as are
    multi-info responses whose data length is impossible (``malformed``). Error responses
    are kept, with their ``error_code`` and no items.
    """
    buf = _as_bytes(buffer)
    spans, pos, counts = _scan(buf, 0, len(buf))
    per_frame: list[tuple[int, ...]] = []
    item_frame: list[int] = []
    item_bytes = bytearray()
    other = malformed = 0
    for start, size in spans:
        if size < _FULL_FRAME:  # a short frame names no object: not a multi-info response
            other += 1
            continue
        _, f_flags, f_src, f_dst, _ = _HEADER.unpack_from(buf, start)
        s_flags, _, o_type, _, p_id = _SERVICE.unpack_from(buf, start + HEADER_SIZE)
        if not s_flags & _RESPONSE_FLAG or o_type != _MULTI_INFO:
            other += 1
            continue
        offset = start + _DATA_AT
        length = size - _FULL_FRAME
        index = len(per_frame)
        if s_flags & _ERROR_FLAG:
            code = _U16.unpack_from(buf, offset)[0] if length >= 2 else 0
            per_frame.append((f_src, f_dst, f_flags, p_id, 0, 0, code, len(item_frame), 0))
            continue
        body = length - MULTI_INFO_RESPONSE_HEADER_SIZE
        if body < 0 or body % MULTI_INFO_RESPONSE_ITEM_SIZE:
            malformed += 1
            continue
        count = body // MULTI_INFO_RESPONSE_ITEM_SIZE
        flags, timestamp = _MULTI_HEADER.unpack_from(buf, offset)
        per_frame.append((f_src, f_dst, f_flags, p_id, flags, timestamp, 0, len(item_frame), count))
        item_frame.extend([index] * count)
        first = offset + MULTI_INFO_RESPONSE_HEADER_SIZE
        item_bytes += buf[first : first + body]
    columns = list(zip(*per_frame, strict=True)) if per_frame else [()] * 9
    items = np.frombuffer(bytes(item_bytes), dtype=_MULTI_VALUE_DTYPE)
    stats = _scan_stats(spans, pos, len(buf), counts)
    stats.update(multi_info_frames=len(per_frame), other_frames=other, malformed=malformed)
    return MultiInfoBatch(
        np.array(item_frame, dtype=np.int64),
        items["id"].astype(np.uint16),
        items["agg"].astype(np.uint8),
        items["value"].astype(np.float32),
        np.array(columns[0], dtype=np.uint32),
        np.array(columns[1], dtype=np.uint32),
        np.array(columns[2], dtype=np.uint8),
        np.array(columns[3], dtype=np.uint16),
        np.array(columns[4], dtype=np.uint32),
        np.array(columns[5], dtype=np.uint32),
        np.array(columns[6], dtype=np.uint16),
        np.array(columns[7], dtype=np.int64),
        np.array(columns[8], dtype=np.int64),
        stats,
    )


# --- Multi infos (section 4.9) ----------------------------------------------------------


def pack_multi_info_request(items: Iterable[tuple[int, int]]) -> bytes:
    """Property data of a multi-info request: 1-76 (info id, aggregation) pairs."""
    items = tuple(items)
    if not 1 <= len(items) <= MULTI_INFO_MAX_ITEMS:
        raise ValueError(
            f"a multi-info request holds 1..{MULTI_INFO_MAX_ITEMS} items, got {len(items)}"
        )
    out = bytearray()
    for item in items:
        pair = tuple(item)
        if len(pair) != 2:
            raise ValueError(
                f"a multi-info item is an (info id, aggregation) pair, got {len(pair)} values"
            )
        info_id, aggregation = pair
        info_id = _check_u(info_id, 16, "info id")
        aggregation = _check_u(aggregation, 8, "aggregation")
        out += struct.pack("<HB", info_id, aggregation)
    return bytes(out)


def encode_multi_info_request(
    items: Iterable[tuple[int, int]],
    *,
    src: int = ADDRESS_DTE,
    dst: int = ADDRESS_GATEWAY,
    property_id: int = Property.VALUE,
) -> bytes:
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


def unpack_multi_info_request(data: bytes) -> list[tuple[int, int]]:
    """The (info id, aggregation) pairs of a multi-info request's property data."""
    data = _as_bytes(data)
    if len(data) % 3 or not 1 <= len(data) // 3 <= MULTI_INFO_MAX_ITEMS:
        raise ValueFormatError(f"invalid multi-info request data length {len(data)}")
    items = np.frombuffer(data, dtype=_MULTI_ITEM_DTYPE)
    return [(int(i), int(a)) for i, a in zip(items["id"], items["agg"], strict=True)]


def _check_float32(value: object, name: str) -> float:
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


def pack_multi_info_response(
    flags: int,
    timestamp: int,
    ids: Sequence[int],
    aggregations: Sequence[int],
    values: Sequence[float],
) -> bytes:
    """Property data of a multi-info response (flags, time, then id/aggregation/float32).

    The three sequences are taken once into tuples (as the compiled twin must, to size its
    buffer safely), so both codecs see the same lengths whatever the objects given.
    """
    ids, aggregations, values = tuple(ids), tuple(aggregations), tuple(values)
    count = len(ids)
    if not (count == len(aggregations) == len(values)):
        raise ValueError("ids, aggregations and values must have the same length")
    if count > MULTI_INFO_MAX_ITEMS:
        raise ValueError(f"at most {MULTI_INFO_MAX_ITEMS} items, got {count}")
    flags = _check_u(flags, 32, "flags")
    timestamp = _check_u(timestamp, 32, "timestamp")
    out = bytearray(_MULTI_HEADER.pack(flags, timestamp))
    for info_id, aggregation, value in zip(ids, aggregations, values, strict=True):
        out += _MULTI_ITEM.pack(
            _check_u(info_id, 16, "info id"),
            _check_u(aggregation, 8, "aggregation"),
            _check_float32(value, "value"),
        )
    return bytes(out)


def decode_multi_info(data: bytes) -> MultiInfo:
    """Decode the property data of a successful multi-info response into numpy arrays."""
    data = _as_bytes(data)
    body = len(data) - MULTI_INFO_RESPONSE_HEADER_SIZE
    if body < 0 or body % MULTI_INFO_RESPONSE_ITEM_SIZE:
        raise ValueFormatError(f"invalid multi-info response data length {len(data)}")
    flags, timestamp = _MULTI_HEADER.unpack_from(data)
    records = np.frombuffer(data, dtype=_MULTI_VALUE_DTYPE, offset=MULTI_INFO_RESPONSE_HEADER_SIZE)
    return MultiInfo(
        flags,
        timestamp,
        records["id"].astype(np.uint16),
        records["agg"].astype(np.uint8),
        records["value"].astype(np.float32),
    )


# --- Messages (section 4.6.6) -----------------------------------------------------------


def pack_message(
    total: int, message_type: int, source: int, timestamp: int, value: bytes = b"\0\0\0\0"
) -> bytes:
    """Property data of a message object response."""
    value = _as_bytes(value)
    if len(value) != 4:
        raise ValueFormatError("a message value has 4 bytes")
    return (
        _MESSAGE.pack(
            _check_s(total, 32, "total", ValueFormatError),
            _check_u(message_type, 16, "message_type", ValueFormatError),
            _check_s(source, 32, "source", ValueFormatError),
            _check_s(timestamp, 32, "timestamp", ValueFormatError),
        )
        + value
    )


def decode_message(data: bytes) -> Message:
    """Decode the property data of a message object response."""
    data = _as_bytes(data)
    if len(data) != MESSAGE_DATA_SIZE:
        raise ValueFormatError(f"message data must be {MESSAGE_DATA_SIZE} bytes, got {len(data)}")
    total, message_type, source, timestamp = _MESSAGE.unpack_from(data)
    return Message(total, message_type, source, timestamp, data[14:18])
