"""The one ``Request`` type: a request frame and the rule that recognises its answer.

Matching (section 4 of the specification): a frame answers a request only if it is a
response, to the request's source address, from the addressed device (or, for a
multicast or phase address, from a device of that family; the gateway itself for some
errors), with the same service, object type, object id and property id (file transfers
answer with their own property ids). ``classify`` applies the rule to a raw frame's
header without decoding it, so the logger's fast path and the client's waits decide the
same way for the same bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import codec
from ..exceptions import ValidationError
from ..protocol import (
    ADDRESS_BROADCAST,
    ADDRESS_DTE,
    ADDRESS_GATEWAY,
    AGGREGATION_DEVICE_MAX,
    CHECKSUM_SIZE,
    FLAG_ERROR,
    FLAG_RESPONSE,
    HEADER_SIZE,
    SERVICE_HEADER_SIZE,
    Aggregation,
    ObjectType,
    Service,
    ServiceFlag,
    device_index,
    device_name,
    family_of_address,
    is_multicast,
    is_phase,
)
from ..records import Frame

#: frame_flags, src, dst | data_length, header checksum | service_flags, service_id,
#: object_type, object_id, property_id
HEAD = struct.Struct("<xBII4xBBHIH")

#: Size of the smallest frame with a whole service header (shorter ones are short frames).
_FULL_FRAME = HEADER_SIZE + SERVICE_HEADER_SIZE + CHECKSUM_SIZE

#: What a received frame is to the request in flight.
ANSWER = 0  # its answer (success or error)
FOREIGN = 1  # not a response addressed to us (another client's traffic, an echo)
UNMATCHED = 2  # a response to us, but not to this request (late, or another request's)

_OBJECT_NAMES = {
    ObjectType.USER_INFO: "user info",
    ObjectType.PARAMETER: "parameter",
    ObjectType.MESSAGE: "message",
    ObjectType.GUID: "GUID",
    ObjectType.CUSTOM_DATALOG_FIELD: "datalog field",
    ObjectType.MULTI_INFO: "multi-info",
    ObjectType.SCREEN: "screen",
    ObjectType.DATALOG_TRANSFER: "file transfer",
}


def is_short_frame(raw: bytes) -> bool:
    """True for a frame whose data is shorter than the 10-byte service header (2..9 bytes)."""
    return len(raw) < _FULL_FRAME


def _frame_fields(frame: Frame) -> tuple[int, int, int, int, int, int, int]:
    """The fields matching compares, in ``Request._decide``'s order."""
    return (
        frame.src,
        frame.dst,
        frame.service_flags,
        frame.service_id,
        frame.object_type,
        frame.object_id,
        frame.property_id,
    )


def multi_info_aggregation(address: int) -> int:
    """Multi-info aggregation that selects ``address``: its device index, master for multicast.

    Raises ValidationError for addresses a multi-info item cannot select (a phase, the
    gateway, an address of no family, a device index above 15).
    """
    if is_multicast(address):
        return Aggregation.MASTER
    if is_phase(address):
        raise ValidationError(f"multi-info cannot address a phase ({device_name(address)})")
    if address == ADDRESS_GATEWAY or family_of_address(address) is None:
        raise ValidationError(f"multi-info cannot read infos of address {address}")
    index = device_index(address)
    if index > AGGREGATION_DEVICE_MAX:
        raise ValidationError(f"address {address} has no multi-info aggregation")
    return index


@dataclass(eq=False)
class Request:
    """One request frame (encoded once) and what its answer must look like."""

    service_id: int
    object_type: int
    object_id: int
    property_id: int
    data: bytes = b""
    dst: int = ADDRESS_GATEWAY
    src: int = ADDRESS_DTE
    #: Property ids an answer may carry (None: the request's own).
    response_properties: frozenset[int] | None = None
    #: Extra test of a successful answer's data (for example the multi-info item list).
    check: Callable[[Frame], bool] | None = None
    frame: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        if not self.frame:
            self.frame = codec.encode_request(
                self.service_id,
                self.object_type,
                self.object_id,
                self.property_id,
                self.data,
                src=self.src,
                dst=self.dst,
            )

    @classmethod
    def from_frame(cls, frame: bytes) -> Request:
        """A request for already-encoded bytes (the raw ``request()`` API)."""
        decoded = codec.decode_frame(frame)
        if decoded.service_flags & ServiceFlag.RESPONSE:
            raise ValueError("request(): the frame is a response, not a request")
        return cls(
            decoded.service_id,
            decoded.object_type,
            decoded.object_id,
            decoded.property_id,
            decoded.data,
            dst=decoded.dst,
            src=decoded.src,
            frame=bytes(frame),
        )

    def describe(self) -> str:
        verb = {Service.READ: "read", Service.WRITE: "write"}.get(self.service_id, "service")
        what = _OBJECT_NAMES.get(self.object_type, f"object type 0x{self.object_type:04X}")
        return f"{verb} {what} {self.object_id} (property 0x{self.property_id:02X}) at {device_name(self.dst)}"

    def classify(self, raw: bytes) -> int:
        """ANSWER, FOREIGN or UNMATCHED for a raw, checksum-verified frame.

        A short frame (2..9 data bytes, issue 10) names no object: an error response to
        us, of our service, from the device we asked (or the gateway) answers this
        request (the device refused it, with or without a code); a short success names
        nothing we asked for and is UNMATCHED.
        """
        if len(raw) < _FULL_FRAME:  # a short frame: its object fields are absent (0)
            frame = codec.decode_frame(raw)
            if (
                frame.dst == self.src
                and frame.service_flags & FLAG_RESPONSE
                and frame.service_flags & FLAG_ERROR
                and frame.service_id == self.service_id
                and (frame.src == self.dst or self._source_ok(frame.src, frame.service_flags))
            ):
                return ANSWER
            return self._decide(*_frame_fields(frame), frame)
        _, src, dst, sflags, service, otype, oid, prop = HEAD.unpack_from(raw)
        return self._decide(src, dst, sflags, service, otype, oid, prop, raw)

    def matches(self, frame: Frame) -> bool:
        """True if the decoded ``frame`` is the answer to this request."""
        return self._decide(*_frame_fields(frame), frame) == ANSWER

    def _decide(
        self,
        src: int,
        dst: int,
        sflags: int,
        service: int,
        otype: int,
        oid: int,
        prop: int,
        frame: bytes | Frame,
    ) -> int:
        if dst != self.src or not sflags & FLAG_RESPONSE:
            return FOREIGN
        if service != self.service_id or otype != self.object_type or oid != self.object_id:
            return UNMATCHED
        props = self.response_properties
        if prop != self.property_id if props is None else prop not in props:
            return UNMATCHED
        if src != self.dst and not self._source_ok(src, sflags):
            return UNMATCHED
        if self.check is not None and not sflags & FLAG_ERROR:
            decoded = frame if isinstance(frame, Frame) else codec.decode_frame(frame)
            return ANSWER if self.check(decoded) else UNMATCHED
        return ANSWER

    def _source_ok(self, src: int, service_flags: int) -> bool:
        dst = self.dst
        if dst == ADDRESS_BROADCAST:
            return True
        if is_multicast(dst) or is_phase(dst):
            family = family_of_address(dst)
            if family is not None and family_of_address(src) == family:
                return True
        # The gateway itself reports some errors (device not found, busy).
        return bool(service_flags & FLAG_ERROR) and src == ADDRESS_GATEWAY


__all__ = [
    "ANSWER",
    "FOREIGN",
    "HEAD",
    "UNMATCHED",
    "Request",
    "is_short_frame",
    "multi_info_aggregation",
]
