"""Differential fuzz of the two codecs: every public decoder and encoder, the same random
input to both, equal results, equal exception types and equal messages (issue 15).

Runs briefly in ``make test``. ``make fuzz`` runs it longer (``XCOMLOG_FUZZ_EXAMPLES``) against
a compiled codec built with AddressSanitizer (``XCOMLOG_FUZZ_EXTENSION``: the path of that
build's ``_codec`` module), so an out-of-bounds read or write aborts the run. The number of
calls compared is appended to ``XCOMLOG_FUZZ_REPORT`` when set.
"""

from __future__ import annotations

import array
import gc
import importlib.util
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from codec_strategies import any_value, damaged_frames, formats, outcome, valid_frames
from conftest import NO_EXTENSIONS, load_codec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import SPEC_FRAMES, spec_checksum

from xcomlog import codec as selected

EXAMPLES = int(os.environ.get("XCOMLOG_FUZZ_EXAMPLES", "40"))
EXTENSION = os.environ.get("XCOMLOG_FUZZ_EXTENSION", "")
REPORT = os.environ.get("XCOMLOG_FUZZ_REPORT", "")
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: Calls compared per function, for the report.
CALLS: Counter = Counter()

#: The codec functions this file compares between the two implementations (read from the
#: calls below, so a public function nobody fuzzes fails the completeness test).
FUZZED = set(re.findall(r'(?:same\(\s*pair,\s*|CALLS\[)"(\w+)"', Path(__file__).read_text()))


def _compiled():
    """The compiled codec under test: the AddressSanitizer build when one is given."""
    if not EXTENSION:
        return load_codec("c")
    spec = importlib.util.spec_from_file_location("xcomlog._codec", EXTENSION)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.IMPLEMENTATION == "c"
    return module


@pytest.fixture(scope="module")
def pair():
    if NO_EXTENSIONS and not EXTENSION:
        pytest.skip("compares the compiled codec, which XCOMLOG_NO_EXTENSIONS=1 disables")
    yield _compiled(), load_codec("py")
    if REPORT:
        with Path(REPORT).open("a") as report:
            for name, count in sorted(CALLS.items()):
                report.write(f"{name} {count}\n")


def same(pair, name: str, *args, **kwargs):
    """Call ``name`` on both codecs with the same arguments; the outcomes must be equal."""
    c, py = pair
    CALLS[name] += 1
    result = outcome(getattr(c, name), *args, **kwargs)
    expected = outcome(getattr(py, name), *args, **kwargs)
    assert result == expected, f"{name}{args!r}{kwargs!r}"
    return result


# --- Hostile arguments ---------------------------------------------------------------------


class BadIndex:
    """An integer-like object whose __index__ raises."""

    def __index__(self):
        raise ArithmeticError("no index")

    def __repr__(self):
        return "BadIndex()"


class BigIndex:
    """An integer-like object far out of every range."""

    def __index__(self):
        return 2**80

    def __repr__(self):
        return "BigIndex()"


class BadLength(list):
    """A list that reports a wrong length."""

    def __len__(self):
        return 2

    def __repr__(self):
        return f"BadLength({list(self)!r})"


integers = st.one_of(
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(-(2**70), 2**70),
    st.sampled_from([-1, 0, 1, 0xFF, 0x100, 0xFFFF, 0x10000, 2**31, 2**32, -(2**31) - 1]),
)
#: Anything a caller might pass where an integer is expected.
int_like = st.one_of(
    integers,
    st.integers(-(2**63), 2**63 - 1).map(np.int64),
    st.integers(0, 2**64 - 1).map(np.uint64),
    st.booleans(),
    st.floats(),
    st.none(),
    st.text(max_size=3),
    st.builds(BadIndex),
    st.builds(BigIndex),
)


def _short_frame(data: bytes) -> bytes:
    head = b"\xaa\x00" + bytes(8) + len(data).to_bytes(2, "little")
    return head + spec_checksum(head[1:]) + data + spec_checksum(data)


@st.composite
def mutated(draw, frames) -> bytes:
    """A frame with bytes flipped, inserted, deleted, cut, or another frame appended."""
    frame = bytearray(draw(frames))
    for _ in range(draw(st.integers(0, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut", "append"]))
        where = draw(st.integers(0, len(frame)))
        if action == "flip" and where < len(frame):
            frame[where] ^= draw(st.integers(1, 255))
        elif action == "insert":
            frame[where:where] = draw(st.binary(min_size=1, max_size=6))
        elif action == "delete" and where < len(frame):
            del frame[where]
        elif action == "cut":
            del frame[where:]
        else:
            frame += draw(frames)
    return bytes(frame)


frames = st.one_of(
    valid_frames,
    damaged_frames(),
    st.binary(min_size=2, max_size=9).map(_short_frame),  # short frames (issue 10)
    st.sampled_from([f.wire for f in SPEC_FRAMES]),
)
raw = st.one_of(
    st.binary(max_size=80),
    mutated(frames),
    st.lists(mutated(frames), max_size=5).map(b"".join),
)


@st.composite
def byte_like(draw, base=raw):
    """The same bytes as bytes, bytearray, memoryview, numpy or array objects, or a non-bytes
    object (every one of which the codecs must accept or refuse alike)."""
    data = draw(base)
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return bytearray(data)
    if kind == 1:
        return memoryview(data)
    if kind == 2:
        return np.frombuffer(data, dtype=np.uint8)
    if kind == 3 and len(data) % 2 == 0:
        return np.frombuffer(data, dtype=np.uint16)  # multi-byte items: cast to bytes
    if kind == 4 and len(data) >= 2:
        return memoryview(data)[::2]  # not contiguous: TypeError in both
    if kind == 5:
        return array.array("B", data)
    if kind == 6:
        return draw(st.one_of(st.none(), st.text(max_size=4), st.integers(), st.floats()))
    return data


# --- The differential properties ---------------------------------------------------------------


def test_every_public_function_is_fuzzed():
    public = {n for n in selected.__all__ if callable(getattr(selected, n))}
    records = {"Frame", "FrameBatch", "Message", "MultiInfo", "MultiInfoBatch"}
    assert public - records == FUZZED


@FUZZ
@given(data=byte_like(), offset=st.one_of(integers, int_like), fmt=formats)
def test_decoders(pair, data, offset, fmt):
    same(pair, "checksum", data)
    same(pair, "decode_frame", data)
    same(pair, "frame_size", data)
    same(pair, "frame_size", data, offset)
    same(pair, "decode_batch", data)
    same(pair, "decode_batch", data, fmt)
    same(pair, "decode_multi_info_batch", data)
    same(pair, "decode_multi_info", data)
    same(pair, "decode_message", data)
    same(pair, "unpack_multi_info_request", data)
    same(pair, "unpack_value", fmt, data)


@FUZZ
@given(
    stream=raw, cuts=st.lists(st.integers(0, 400), max_size=8), resets=st.sets(st.integers(0, 8))
)
def test_stream_decoders(pair, stream, cuts, resets):
    c, py = pair
    points = sorted({min(x, len(stream)) for x in cuts} | {0, len(stream)})
    decoders = c.StreamDecoder(), py.StreamDecoder()
    for i, (a, b) in enumerate(zip(points, points[1:], strict=False)):
        CALLS["StreamDecoder"] += 1
        chunk = stream[a:b]
        assert outcome(decoders[0].feed, chunk) == outcome(decoders[1].feed, chunk)
        assert decoders[0].stats() == decoders[1].stats()
        assert decoders[0].pending == decoders[1].pending
        if i in resets:
            decoders[0].reset()
            decoders[1].reset()
    bad = b"text"[: len(stream) % 5] if stream else None
    assert outcome(decoders[0].feed, bad) == outcome(decoders[1].feed, bad)
    assert decoders[0].stats() == decoders[1].stats()


fields = {
    "service_id": int_like,
    "object_type": int_like,
    "object_id": int_like,
    "property_id": int_like,
    "src": int_like,
    "dst": int_like,
    "service_flags": int_like,
    "frame_flags": int_like,
}


@FUZZ
@given(
    values=st.fixed_dictionaries({k: st.one_of(integers, v) for k, v in fields.items()}),
    data=byte_like(st.one_of(st.binary(max_size=40), st.binary(min_size=1020, max_size=1030))),
    error_code=st.one_of(st.none(), int_like),
)
def test_encoders(pair, values, data, error_code):
    head = [values[k] for k in ("service_id", "object_type", "object_id", "property_id")]
    same(pair, "encode_frame", *head, data, **{k: values[k] for k in list(fields)[4:]})
    same(pair, "encode_request", *head, data, src=values["src"], dst=values["dst"])
    same(
        pair,
        "encode_response",
        *head,
        data,
        src=values["src"],
        dst=values["dst"],
        frame_flags=values["frame_flags"],
        error_code=error_code,
    )


@FUZZ
@given(fmt=formats, value=st.one_of(any_value, int_like, byte_like(st.binary(max_size=8))))
def test_values(pair, fmt, value):
    result = same(pair, "pack_value", fmt, value)
    if result[0] == "ok":
        same(pair, "unpack_value", fmt, result[1][1])


pairs = st.one_of(
    st.tuples(int_like, int_like),
    st.tuples(integers, integers),
    st.lists(integers, max_size=3).map(tuple),
    int_like,
)


@FUZZ
@given(
    items=st.one_of(
        st.lists(pairs, max_size=80),
        st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFF)), min_size=1, max_size=76),
    ),
    container=st.sampled_from([list, tuple, iter, BadLength]),
    src=int_like,
)
def test_multi_info_requests(pair, items, container, src):
    same(pair, "pack_multi_info_request", container(items) if container is not iter else items)
    same(pair, "encode_multi_info_request", list(items), src=src, dst=501)
    packed = same(pair, "pack_multi_info_request", list(items))
    if packed[0] == "ok":
        same(pair, "unpack_multi_info_request", packed[1][1])


@FUZZ
@given(
    head=st.tuples(st.one_of(integers, int_like), st.one_of(integers, int_like)),
    items=st.lists(
        st.tuples(st.one_of(integers, int_like), st.one_of(integers, int_like), any_value),
        max_size=78,
    ),
    lengths=st.tuples(*[st.integers(-1, 1)] * 3),
    container=st.sampled_from([list, tuple, np.array, BadLength]),
)
def test_multi_info_responses(pair, head, items, lengths, container):
    columns = [[item[k] for item in items] for k in range(3)]
    for column, extra in zip(columns, lengths, strict=True):
        if extra < 0 and column:
            column.pop()
        elif extra > 0:
            column.append(0)
    if container is np.array:
        try:
            columns = [np.array(column) for column in columns]
        except (ValueError, TypeError, OverflowError):
            pass
    elif container is not list:
        columns = [container(column) for column in columns]
    packed = same(pair, "pack_multi_info_response", *head, *columns)
    if packed[0] == "ok":
        same(pair, "decode_multi_info", packed[1][1])


@FUZZ
@given(
    numbers=st.tuples(*[st.one_of(integers, int_like)] * 4),
    value=byte_like(st.binary(max_size=6)),
)
def test_messages(pair, numbers, value):
    packed = same(pair, "pack_message", *numbers, value)
    if packed[0] == "ok":
        same(pair, "decode_message", packed[1][1])


class Growing:
    """A pair whose unpacking lengthens every list holding it (found through the garbage
    collector): the caller's and any copy an encoder made (issue 15 item 10)."""

    def __iter__(self):
        for holder in gc.get_referrers(self):
            if type(holder) is list:
                holder.extend([(1, 0)] * 100)
        return iter((3000, 1))


class LongerIndex:
    """An integer whose __index__ lengthens the list it sits in."""

    def __init__(self, holder: list):
        self.holder = holder

    def __index__(self):
        self.holder.extend([1] * 100)
        return 7


@pytest.mark.parametrize("size", [1, 3, 76])
def test_encoders_given_objects_that_run_code(pair, size):
    """Under AddressSanitizer (``make fuzz``) a write past an encoder's buffer aborts."""
    results = []
    for codec in pair:
        CALLS["pack_multi_info_request"] += 1
        items = [Growing() for _ in range(size)]
        results.append(outcome(codec.pack_multi_info_request, items))
        ids: list = []
        ids += [LongerIndex(ids) for _ in range(size)]
        CALLS["pack_multi_info_response"] += 1
        results.append(outcome(codec.pack_multi_info_response, 0, 0, ids, [0] * size, [1.0] * size))
    assert results[:2] == results[2:]
    assert results[0] == ("ok", ("bytes", bytes.fromhex("B80B01") * size))
    assert results[1][0] == "ok"
