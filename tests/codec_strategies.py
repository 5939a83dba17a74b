"""Hypothesis strategies and helpers shared by the codec tests: frames, junk, damage, outcomes."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from xcomlog import _codec_py as pure
from xcomlog.protocol import Format

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)

#: Property data: mostly short, sometimes up to the largest frame (1024 bytes).
property_data = st.one_of(
    st.binary(max_size=24),
    st.binary(max_size=24).map(lambda b: b"\xaa" + b),
    st.binary(min_size=1000, max_size=1024),
)

frame_fields = st.fixed_dictionaries(
    {
        "service_id": u8,
        "object_type": u16,
        "object_id": u32,
        "property_id": u16,
        "data": property_data,
        "src": u32,
        "dst": u32,
        "service_flags": u8,
        "frame_flags": u8,
    }
)


def encode(fields: dict) -> bytes:
    """Wire bytes of ``fields`` (encode_frame keyword arguments), by the pure codec."""
    return pure.encode_frame(**fields)


def as_tuple(fields: dict) -> tuple:
    """The Frame tuple that decoding ``fields``' frame must give."""
    return (
        fields["frame_flags"],
        fields["src"],
        fields["dst"],
        fields["service_flags"],
        fields["service_id"],
        fields["object_type"],
        fields["object_id"],
        fields["property_id"],
        fields["data"],
    )


valid_frames = frame_fields.map(encode)


@st.composite
def damaged_frames(draw) -> bytes:
    """A valid frame with one byte changed or its tail cut off: never a valid frame."""
    frame = draw(valid_frames)
    if draw(st.booleans()):
        where = draw(st.integers(0, len(frame) - 1))
        delta = draw(st.integers(1, 255))
        damaged = bytearray(frame)
        damaged[where] ^= delta
        return bytes(damaged)
    return frame[: draw(st.integers(1, len(frame) - 1))]


#: Bytes between frames: line noise, the 0xFF run a waking line delivers, stray start bytes.
junk = st.one_of(
    st.binary(max_size=40),
    st.integers(1, 8).map(lambda n: b"\xff" * n),
    st.lists(st.sampled_from([0xAA, 0x00, 0xFF, 0x0A]), max_size=30).map(bytes),
)

#: A stream segment: ("frame", fields) is the only kind the decoder may return.
segments = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), frame_fields),
        st.tuples(st.just("junk"), junk),
        st.tuples(st.just("damaged"), damaged_frames()),
    ),
    max_size=10,
)

#: Appended to a stream so a cut-off frame cannot hold later frames back for want of bytes.
FLUSH = b"\x00" * 1100


def join(parts: list[tuple[str, object]]) -> tuple[bytes, list[tuple]]:
    """Stream bytes of ``parts`` (plus FLUSH) and the frame tuples it must decode to."""
    stream = b"".join(encode(p) if kind == "frame" else p for kind, p in parts) + FLUSH
    return stream, [as_tuple(p) for kind, p in parts if kind == "frame"]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


#: Every format code, plus codes that are not formats.
formats = st.one_of(st.sampled_from(list(Format)), st.integers(-2, 12))
numeric_formats = st.sampled_from(
    [
        Format.BOOL,
        Format.FORMAT,
        Format.SHORT_ENUM,
        Format.ERROR,
        Format.INT32,
        Format.FLOAT,
        Format.LONG_ENUM,
    ]
)

#: Values of every kind a caller might pass, valid or not.
any_value = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(width=32),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.none(),
    st.integers(-(2**31), 2**32).map(np.int64),
    st.floats(width=32).map(np.float32),
)


def normalize(value: object) -> object:
    """A comparable, NaN-safe form of a codec result (records, arrays, floats, dicts)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            return (str(value.dtype), [("nan" if math.isnan(v) else v) for v in value.tolist()])
        return (str(value.dtype), value.tolist())
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, tuple):
        return (type(value).__name__, tuple(normalize(v) for v in value))
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    return (type(value).__name__, value)


def outcome(fn, *args, **kwargs) -> tuple:
    """("ok", normalized result) or ("error", exception type, message) of a call."""
    try:
        return ("ok", normalize(fn(*args, **kwargs)))
    except Exception as exc:  # noqa: BLE001 - the point is to compare any error
        return ("error", type(exc), str(exc))
