"""The compiled and the pure codec give identical results and errors on any input.

These compare the two implementations, so they run in the compiled run only (the
``codec_pair`` fixture skips them under XCOMLOG_NO_EXTENSIONS=1 and fails them loudly
when the compiled module is missing). A separate process hammers the compiled code
with hostile input next to an unreadable page: an out-of-bounds read kills that
process, which fails the test instead of the test run.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from codec_strategies import (
    any_value,
    damaged_frames,
    formats,
    frame_fields,
    join,
    numeric_formats,
    outcome,
    segments,
    split,
    u8,
    u16,
    u32,
    valid_frames,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spec_frames import SPEC_FRAMES

from xcomlog.protocol import Format

PROPERTY = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

#: Byte inputs: random, valid frames, damaged frames, frames with junk around.
byte_inputs = st.one_of(
    st.binary(max_size=64),
    valid_frames,
    damaged_frames(),
    st.tuples(st.binary(max_size=8), valid_frames, st.binary(max_size=8)).map(b"".join),
    st.sampled_from([f.wire for f in SPEC_FRAMES]),
)


@st.composite
def mutated(draw) -> bytes:
    """A spec or random frame with bytes flipped, inserted, deleted or cut."""
    frame = bytearray(draw(st.one_of(valid_frames, st.sampled_from([f.wire for f in SPEC_FRAMES]))))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        where = draw(st.integers(0, len(frame)))
        if action == "flip" and where < len(frame):
            frame[where] ^= draw(st.integers(1, 255))
        elif action == "insert":
            frame[where:where] = draw(st.binary(min_size=1, max_size=4))
        elif action == "delete" and where < len(frame):
            del frame[where]
        elif action == "cut":
            del frame[where:]
    return bytes(frame)


hostile = st.one_of(byte_inputs, mutated())


def both(pair, name, *args, **kwargs):
    c, py = pair
    result = outcome(getattr(c, name), *args, **kwargs)
    assert result == outcome(getattr(py, name), *args, **kwargs)
    return result


@PROPERTY
@given(data=hostile)
def test_decode_frame_identical(codec_pair, data):
    both(codec_pair, "decode_frame", data)
    both(codec_pair, "decode_frame", bytearray(data))
    both(codec_pair, "checksum", data)


@PROPERTY
@given(data=hostile, offset=st.one_of(st.integers(-3, 80), st.just(2**70)))
def test_frame_size_identical(codec_pair, data, offset):
    both(codec_pair, "frame_size", data, offset)


@PROPERTY
@given(data=st.lists(hostile, max_size=6), fmt=st.one_of(numeric_formats, formats), cuts=st.data())
def test_stream_and_batch_identical(codec_pair, data, fmt, cuts):
    stream = b"".join(data)
    chunks = split(stream, cuts.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    c, py = codec_pair
    decoders = c.StreamDecoder(), py.StreamDecoder()
    for chunk in chunks:
        assert outcome(decoders[0].feed, chunk) == outcome(decoders[1].feed, chunk)
        assert decoders[0].stats() == decoders[1].stats()
    both(codec_pair, "decode_batch", stream, fmt)
    both(codec_pair, "decode_multi_info_batch", stream)


@PROPERTY
@given(parts=segments)
def test_clean_streams_identical(codec_pair, parts):
    stream, _ = join(parts)
    both(codec_pair, "decode_batch", stream)
    c, py = codec_pair
    assert outcome(c.StreamDecoder().feed, stream) == outcome(py.StreamDecoder().feed, stream)


int_like = st.one_of(
    u8, u16, u32, st.integers(), st.booleans(), st.floats(), st.none(), st.text(max_size=2)
)


@PROPERTY
@given(
    fields=frame_fields,
    override=st.dictionaries(
        st.sampled_from(
            ["service_id", "object_type", "object_id", "property_id", "src", "dst", "service_flags",
             "frame_flags", "data"]
        ),
        st.one_of(int_like, st.binary(max_size=1030), st.binary(max_size=4).map(bytearray)),
        max_size=3,
    ),
)  # fmt: skip
def test_encode_identical(codec_pair, fields, override):
    fields = {**fields, **override}
    both(codec_pair, "encode_frame", **fields)
    request = {k: v for k, v in fields.items() if k not in ("service_flags", "frame_flags")}
    both(codec_pair, "encode_request", **request)
    both(
        codec_pair,
        "encode_response",
        **request,
        frame_flags=fields["frame_flags"],
        error_code=override.get("service_flags"),
    )


@PROPERTY
@given(fmt=formats, value=any_value)
def test_pack_value_identical(codec_pair, fmt, value):
    both(codec_pair, "pack_value", fmt, value)


@PROPERTY
@given(fmt=formats, data=st.binary(max_size=8))
def test_unpack_value_identical(codec_pair, fmt, data):
    both(codec_pair, "unpack_value", fmt, data)
    both(codec_pair, "unpack_value", fmt, memoryview(data))


@PROPERTY
@given(
    items=st.lists(st.tuples(st.one_of(u16, st.integers(-2, 70000)), st.one_of(u8, int_like)), max_size=80),
    data=st.binary(max_size=240),
)  # fmt: skip
def test_multi_info_request_identical(codec_pair, items, data):
    both(codec_pair, "pack_multi_info_request", items)
    both(codec_pair, "encode_multi_info_request", items, src=1, dst=501)
    both(codec_pair, "unpack_multi_info_request", data)


@PROPERTY
@given(
    head=st.tuples(st.one_of(u32, int_like), st.one_of(u32, int_like)),
    items=st.lists(st.tuples(st.one_of(u16, int_like), st.one_of(u8, int_like), any_value), max_size=78),
    data=st.binary(max_size=80),
)  # fmt: skip
def test_multi_info_response_identical(codec_pair, head, items, data):
    ids = [i for i, _, _ in items]
    aggs = [a for _, a, _ in items]
    values = [v for _, _, v in items]
    both(codec_pair, "pack_multi_info_response", *head, ids, aggs, values)
    both(codec_pair, "decode_multi_info", data)


@PROPERTY
@given(fields=st.tuples(*[st.one_of(st.integers(-(2**31), 2**31 - 1), int_like)] * 4),
       value=st.binary(max_size=6), data=st.binary(max_size=20))  # fmt: skip
def test_messages_identical(codec_pair, fields, value, data):
    both(codec_pair, "pack_message", *fields, value)
    both(codec_pair, "decode_message", data)


# --- The compiled code never crashes the interpreter -------------------------------------------

FUZZ = textwrap.dedent(
    r"""
    import ctypes, mmap, random, sys
    import numpy as np
    from xcomlog import _codec as c
    from xcomlog.exceptions import XcomError
    from xcomlog.protocol import Format

    PAGE = mmap.PAGESIZE
    area = mmap.mmap(-1, 4 * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(area))
    libc = ctypes.CDLL(None, use_errno=True)
    for page in (0, 3):  # unreadable pages around the two middle ones
        if libc.mprotect(ctypes.c_void_p(base + page * PAGE), PAGE, 0) != 0:
            sys.exit("mprotect failed")
    view = memoryview(area)

    def fenced(data):
        # `data` twice: ending right before the upper guard page, starting right after
        # the lower one. Any read past either edge is a segmentation fault.
        n = len(data)
        view[3 * PAGE - n : 3 * PAGE] = data
        view[PAGE : PAGE + n] = data
        return view[3 * PAGE - n : 3 * PAGE], view[PAGE : PAGE + n]

    rng = random.Random(int(sys.argv[1]))
    seeds = [bytes.fromhex(h) for h in sys.argv[2:]]

    def head(length):
        h = bytes([0xAA, rng.randrange(256)]) + rng.randbytes(8) + length.to_bytes(2, "little")
        return h + c.checksum(h[1:])

    def sample():
        kind = rng.randrange(6)
        if kind == 0:
            return rng.randbytes(rng.randrange(0, 200))
        if kind == 1:  # a valid header announcing any length, then too few bytes
            return head(rng.choice([0, 9, 10, 11, 1034, 1035, 0xFFFF, rng.randrange(65536)])) + rng.randbytes(rng.randrange(0, 40))
        frame = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 5)):
            where = rng.randrange(len(frame) + 1)
            action = rng.randrange(4)
            if action == 0 and where < len(frame):
                frame[where] ^= rng.randrange(1, 256)
            elif action == 1:
                frame[where:where] = rng.randbytes(rng.randrange(1, 5))
            elif action == 2:
                del frame[where:]
            else:
                frame += rng.choice(seeds)
        return bytes(frame)

    errors = (XcomError, ValueError, TypeError)
    for _ in range(10000):
        data = sample()
        for buf in fenced(data):
            for call in (
                lambda: c.decode_frame(buf),
                lambda: c.frame_size(buf, rng.randrange(0, len(buf) + 2)),
                lambda: c.checksum(buf),
                lambda: c.decode_batch(buf, rng.choice([1, 2, 3, 4, 5, 6, 10])),
                lambda: c.decode_multi_info_batch(buf),
                lambda: c.decode_multi_info(buf),
                lambda: c.decode_message(buf),
                lambda: c.unpack_multi_info_request(buf),
                lambda: c.unpack_value(rng.choice(list(Format)), buf),
            ):
                try:
                    call()
                except errors:
                    pass
            decoder = c.StreamDecoder()
            pos = 0
            while pos < len(buf):
                step = rng.randrange(1, 40)
                try:
                    decoder.feed(buf[pos : pos + step])
                except errors:
                    pass
                pos += step
    print("ok")
    """
)


@pytest.mark.c_extension
@pytest.mark.timeout(120)
def test_compiled_codec_survives_hostile_input(codec_pair):
    seeds = [f.wire.hex() for f in SPEC_FRAMES]
    c, _ = codec_pair
    multi = c.encode_response(
        1, 0x0A, 1, 1, c.pack_multi_info_response(0, 0, [1, 2], [0, 1], [1.0, 2.0]), src=501
    )
    seeds.append(multi.hex())
    for seed in (1, 2):
        result = subprocess.run(
            [sys.executable, "-c", FUZZ, str(seed), *seeds],
            capture_output=True,
            text=True,
            timeout=110,
        )
        assert result.returncode == 0, (
            f"the compiled codec crashed (exit {result.returncode}) on fuzz seed {seed}:\n"
            f"{result.stderr[-2000:]}"
        )
        assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("fmt", list(Format))
def test_unpack_every_format_of_every_length(codec_pair, fmt):
    for size in range(0, 10):
        both(codec_pair, "unpack_value", fmt, bytes(range(250, 250 - size, -1)))
