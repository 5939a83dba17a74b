"""Small immutable records returned by the codec (the same classes for both implementations)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .protocol import ServiceFlag


class Frame(NamedTuple):
    """One decoded Xcom frame: header fields, service header and raw property data."""

    frame_flags: int
    src: int
    dst: int
    service_flags: int
    service_id: int
    object_type: int
    object_id: int
    property_id: int
    data: bytes

    @property
    def is_response(self) -> bool:
        return bool(self.service_flags & ServiceFlag.RESPONSE)

    @property
    def is_error(self) -> bool:
        return bool(self.service_flags & ServiceFlag.ERROR)

    @property
    def error_code(self) -> int | None:
        """The ERROR code of an error response, None for a success."""
        if not self.is_error:
            return None
        if len(self.data) < 2:
            return 0
        return int.from_bytes(self.data[:2], "little")


class MultiInfo(NamedTuple):
    """Decoded property data of a multi-info response (section 4.9.2)."""

    flags: int
    timestamp: int
    ids: np.ndarray  # uint16
    aggregations: np.ndarray  # uint8
    values: np.ndarray  # float32


class Message(NamedTuple):
    """Decoded property data of a message object (section 4.6.6)."""

    total: int
    message_type: int
    source: int
    timestamp: int
    value: bytes


class FrameBatch(NamedTuple):
    """Column arrays of every valid frame found in one buffer by ``decode_batch``.

    One entry per frame, in buffer order. ``value`` is the property data read in the
    requested format (NaN for an error response or a data size that does not match);
    ``data_offset``/``data_length`` locate the raw property data in the decoded buffer
    (the frame itself starts 24 bytes before ``data_offset``). ``stats`` counts what was
    skipped and why, with the keys of ``StreamDecoder.stats()``; ``pending`` is the size
    of an incomplete frame at the end of the buffer.
    """

    frame_flags: np.ndarray  # uint8
    src: np.ndarray  # uint32
    dst: np.ndarray  # uint32
    service_flags: np.ndarray  # uint8
    service_id: np.ndarray  # uint8
    object_type: np.ndarray  # uint16
    object_id: np.ndarray  # uint32
    property_id: np.ndarray  # uint16
    error_code: np.ndarray  # uint16, 0 unless the error flag is set
    value: np.ndarray  # float64
    data_offset: np.ndarray  # int64
    data_length: np.ndarray  # uint16
    stats: dict[str, int]

    @property
    def count(self) -> int:
        """Number of frames (``len()`` of a NamedTuple counts its fields, not frames)."""
        return int(self.src.shape[0])

    def property_data(self, buffer: bytes, index: int) -> bytes:
        """Raw property data of frame ``index`` from the ``buffer`` that was decoded."""
        start = int(self.data_offset[index])
        return bytes(memoryview(buffer)[start : start + int(self.data_length[index])])


class MultiInfoBatch(NamedTuple):
    """Every multi-info response found in one buffer by ``decode_multi_info_batch``.

    Per-item arrays (``frame``, ``ids``, ``aggregations``, ``values``) concatenate the
    items of all frames; ``frame`` indexes the per-frame arrays, whose ``item_start`` and
    ``item_count`` give each frame's slice of the item arrays. An error response has its
    ``error_code`` set and no items. ``stats`` extends the stream counters with
    ``multi_info_frames``, ``other_frames`` (valid frames that are not multi-info
    responses) and ``malformed`` (multi-info responses whose data length is impossible).
    """

    frame: np.ndarray  # int64, per item
    ids: np.ndarray  # uint16, per item
    aggregations: np.ndarray  # uint8, per item
    values: np.ndarray  # float32, per item
    src: np.ndarray  # uint32, per frame
    dst: np.ndarray  # uint32, per frame
    frame_flags: np.ndarray  # uint8, per frame
    property_id: np.ndarray  # uint16, per frame
    flags: np.ndarray  # uint32, per frame
    timestamp: np.ndarray  # uint32, per frame
    error_code: np.ndarray  # uint16, per frame (0 for a success)
    item_start: np.ndarray  # int64, per frame
    item_count: np.ndarray  # int64, per frame
    stats: dict[str, int]

    @property
    def count(self) -> int:
        """Number of multi-info response frames."""
        return int(self.src.shape[0])
