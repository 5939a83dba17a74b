"""Compiled Xcom codec (placeholder: the pure-Python source compiled by Cython).

Both implement exactly the same API and raise the same exceptions; ``xcomlog.codec``
selects one. Frame layout: specification section 3.3; checksum: section 3.4.
"""

from __future__ import annotations

import math
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
    HEADER_SIZE,
    MAX_DATA_LENGTH,
    MESSAGE_DATA_SIZE,
    MIN_DATA_LENGTH,
    MULTI_INFO_MAX_ITEMS,
    MULTI_INFO_OBJECT_ID,
    MULTI_INFO_RESPONSE_HEADER_SIZE,
    MULTI_INFO_RESPONSE_ITEM_SIZE,
    START_BYTE,
    STRING_ENCODING,
    Format,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
)
from .records import Frame, Message, MultiInfo

IMPLEMENTATION = "c"

_HEADER = struct.Struct("<BBIIH")  # start, frame_flags, src, dst, data_length
_SERVICE = struct.Struct("<BBHIH")  # service_flags, service_id, object_type, object_id, property_id
_MULTI_HEADER = struct.Struct("<II")
_MESSAGE = struct.Struct("<iHii")

_MULTI_ITEM_DTYPE = np.dtype([("id", "<u2"), ("agg", "u1")])
_MULTI_VALUE_DTYPE = np.dtype([("id", "<u2"), ("agg", "u1"), ("value", "<f4")])


def checksum(data: bytes) -> bytes:
    """The two checksum bytes (A, B) of ``data`` (section 3.4)."""
    a = 0xFF
    b = 0
    for byte in bytes(data):
        a = (a + byte) & 0xFF
        b = (b + a) & 0xFF
    return bytes((a, b))


def _check_u(value: int, bits: int, name: str) -> None:
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{name} must fit in {bits} unsigned bits, got {value}")


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
    _check_u(frame_flags, 8, "frame_flags")
    _check_u(service_flags, 8, "service_flags")
    _check_u(service_id, 8, "service_id")
    _check_u(object_type, 16, "object_type")
    _check_u(object_id, 32, "object_id")
    _check_u(property_id, 16, "property_id")
    _check_u(src, 32, "src")
    _check_u(dst, 32, "dst")
    data = bytes(data)
    length = MIN_DATA_LENGTH + len(data)
    if length > MAX_DATA_LENGTH:
        raise LengthError(
            f"frame data of {length} bytes exceeds the maximum of {MAX_DATA_LENGTH}"
        )
    header = _HEADER.pack(START_BYTE, frame_flags, src, dst, length)
    frame_data = _SERVICE.pack(service_flags, service_id, object_type, object_id, property_id) + data
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
        _check_u(error_code, 16, "error_code")
        flags |= ServiceFlag.ERROR
        data = struct.pack("<H", error_code)
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


def frame_size(buffer: bytes, offset: int = 0) -> int:
    """Total size of the frame starting at ``offset``, or 0 if its header is incomplete.

    Raises StartByteError, HeaderChecksumError or LengthError for a header that can never
    become a valid frame. The frame itself may still be incomplete in ``buffer``.
    """
    view = memoryview(buffer)
    available = len(view) - offset
    if available < 1:
        return 0
    if view[offset] != START_BYTE:
        raise StartByteError(f"bad start byte 0x{view[offset]:02X}, expected 0x{START_BYTE:02X}")
    if available < HEADER_SIZE:
        return 0
    header = bytes(view[offset + 1 : offset + HEADER_SIZE - CHECKSUM_SIZE])
    if checksum(header) != bytes(view[offset + HEADER_SIZE - 2 : offset + HEADER_SIZE]):
        raise HeaderChecksumError("header checksum mismatch")
    length = header[-2] | (header[-1] << 8)
    if not MIN_DATA_LENGTH <= length <= MAX_DATA_LENGTH:
        raise LengthError(
            f"impossible data_length {length} (must be {MIN_DATA_LENGTH}..{MAX_DATA_LENGTH})"
        )
    return HEADER_SIZE + length + CHECKSUM_SIZE


def _parse(view: memoryview, offset: int, size: int) -> Frame:
    """Verify the data checksum of a frame of known ``size`` and build its record."""
    start = offset + HEADER_SIZE
    end = offset + size - CHECKSUM_SIZE
    frame_data = bytes(view[start:end])
    if checksum(frame_data) != bytes(view[end : end + CHECKSUM_SIZE]):
        raise DataChecksumError("data checksum mismatch")
    _, frame_flags, src, dst, _ = _HEADER.unpack_from(view, offset)
    service_flags, service_id, object_type, object_id, property_id = _SERVICE.unpack_from(
        frame_data
    )
    return Frame(
        frame_flags,
        src,
        dst,
        service_flags,
        service_id,
        object_type,
        object_id,
        property_id,
        frame_data[MIN_DATA_LENGTH:],
    )


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one complete frame; every defect raises a specific FrameError."""
    view = memoryview(bytes(data))
    if len(view) == 0:
        raise TruncatedFrameError("empty input: no frame")
    size = frame_size(view)
    if size == 0:
        raise TruncatedFrameError(f"truncated header: {len(view)} of {HEADER_SIZE} bytes")
    if len(view) < size:
        raise TruncatedFrameError(f"truncated frame: {len(view)} of {size} bytes")
    if len(view) > size:
        raise FrameError(f"{len(view) - size} unexpected bytes after a frame of {size} bytes")
    return _parse(view, 0, size)


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
        buffer = self._buffer
        buffer += chunk
        frames: list[Frame] = []
        pos = 0
        end = len(buffer)
        view = memoryview(buffer)
        try:
            while pos < end:
                if buffer[pos] != START_BYTE:
                    nxt = buffer.find(START_BYTE, pos)
                    if nxt < 0:
                        nxt = end
                    self.junk_bytes += nxt - pos
                    self.skipped_bytes += nxt - pos
                    pos = nxt
                    continue
                try:
                    size = frame_size(view, pos)
                except HeaderChecksumError:
                    self.header_errors += 1
                    self.skipped_bytes += 1
                    pos += 1
                    continue
                except LengthError:
                    self.length_errors += 1
                    self.skipped_bytes += 1
                    pos += 1
                    continue
                if size == 0 or end - pos < size:
                    break
                try:
                    frames.append(_parse(view, pos, size))
                except DataChecksumError:
                    self.data_errors += 1
                    self.skipped_bytes += 1
                    pos += 1
                    continue
                self.frames += 1
                pos += size
        finally:
            view.release()
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


def pack_value(fmt: int, value: object) -> bytes:
    """Property bytes of ``value`` in format ``fmt``; ValueFormatError if it does not fit."""
    fmt = _format(fmt)
    if fmt is Format.BOOL:
        if value not in (0, 1, True, False) or isinstance(value, float) and not value.is_integer():
            raise ValueFormatError(f"BOOL takes 0/1 or False/True, got {value!r}")
        return b"\x01" if value else b"\x00"
    if fmt in _INT_FORMATS:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueFormatError(f"{fmt.name} takes an integer, got {value!r}")
        try:
            return _INT_FORMATS[fmt].pack(int(value))
        except struct.error:
            raise ValueFormatError(f"{value!r} is out of range for {fmt.name}") from None
    if fmt is Format.FLOAT:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueFormatError(f"FLOAT takes a number, got {value!r}")
        number = float(value)
        if math.isfinite(number) and abs(number) > 3.4028234663852886e38:
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
    data = bytes(data)
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


def _format(fmt: int) -> Format:
    try:
        return Format(fmt)
    except ValueError:
        raise ValueFormatError(f"unknown format {fmt!r}") from None


# --- Multi infos (section 4.9) ----------------------------------------------------------


def pack_multi_info_request(items: Iterable[tuple[int, int]]) -> bytes:
    """Property data of a multi-info request: 1-76 (info id, aggregation) pairs."""
    items = list(items)
    if not 1 <= len(items) <= MULTI_INFO_MAX_ITEMS:
        raise ValueError(f"a multi-info request holds 1..{MULTI_INFO_MAX_ITEMS} items, got {len(items)}")
    out = bytearray()
    for info_id, aggregation in items:
        _check_u(info_id, 16, "info id")
        _check_u(aggregation, 8, "aggregation")
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
    if len(data) % 3 or not 1 <= len(data) // 3 <= MULTI_INFO_MAX_ITEMS:
        raise ValueFormatError(f"invalid multi-info request data length {len(data)}")
    items = np.frombuffer(bytes(data), dtype=_MULTI_ITEM_DTYPE)
    return [(int(i), int(a)) for i, a in zip(items["id"], items["agg"])]


def pack_multi_info_response(
    flags: int,
    timestamp: int,
    ids: Sequence[int],
    aggregations: Sequence[int],
    values: Sequence[float],
) -> bytes:
    """Property data of a multi-info response (flags, time, then id/aggregation/float32)."""
    count = len(ids)
    if not (count == len(aggregations) == len(values)):
        raise ValueError("ids, aggregations and values must have the same length")
    if count > MULTI_INFO_MAX_ITEMS:
        raise ValueError(f"at most {MULTI_INFO_MAX_ITEMS} items, got {count}")
    _check_u(flags, 32, "flags")
    _check_u(timestamp, 32, "timestamp")
    records = np.empty(count, dtype=_MULTI_VALUE_DTYPE)
    records["id"] = ids
    records["agg"] = aggregations
    records["value"] = values
    return _MULTI_HEADER.pack(flags, timestamp) + records.tobytes()


def decode_multi_info(data: bytes) -> MultiInfo:
    """Decode the property data of a successful multi-info response into numpy arrays."""
    data = bytes(data)
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


def pack_message(total: int, message_type: int, source: int, timestamp: int, value: bytes = b"\0\0\0\0") -> bytes:
    """Property data of a message object response."""
    if len(value) != 4:
        raise ValueFormatError("a message value has 4 bytes")
    return _MESSAGE.pack(total, message_type, source, timestamp) + bytes(value)


def decode_message(data: bytes) -> Message:
    """Decode the property data of a message object response."""
    data = bytes(data)
    if len(data) != MESSAGE_DATA_SIZE:
        raise ValueFormatError(f"message data must be {MESSAGE_DATA_SIZE} bytes, got {len(data)}")
    total, message_type, source, timestamp = _MESSAGE.unpack_from(data)
    return Message(total, message_type, source, timestamp, data[14:18])
