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
