"""Codec benchmark: compiled vs pure-Python vs the ``xcom-proto`` package, side by side.

Measured in one run, so the ratios compare like with like on the same machine and load:
request encoding, single-frame decoding of float responses, stream decoding, batch
decoding (frames/s) and the checksum (MB/s, against ``numpy.sum`` over the same uint8
buffer). ``xcom-proto`` (``pip install xcom-proto``, benchmark environment only) is the
reference Python implementation; when it is missing a plain ``struct`` decoder stands in
for it and the rows say so. Targets from the issue, as ratios from this run: compiled
batch decoding >= 200x and compiled stream decoding >= 30x xcom-proto's per-frame parse,
compiled checksum >= numpy.sum.
"""

from __future__ import annotations

import io
import struct
import sys

import numpy as np

from benchmarks import best_rate
from xcomlog import _codec_py
from xcomlog.protocol import Format, ObjectType, Property, Service

TARGET_BATCH = 200.0
TARGET_STREAM = 30.0
TARGET_CHECKSUM = 1.0

_FLOAT = struct.Struct("<f")


def _compiled():
    try:
        from xcomlog import _codec
    except ImportError as exc:  # a benchmark of the compiled codec needs it built
        raise RuntimeError(f"the compiled codec is not built ({exc}); run `make build`") from exc
    return _codec


def _xcom_proto():
    try:
        from xcom_proto import protocol
    except ImportError:
        return None
    return protocol


def _responses(count: int) -> list[bytes]:
    """Float user-info responses like a logger receives (30 bytes each)."""
    rng = np.random.default_rng(7)
    values = rng.normal(50.0, 10.0, count).astype(np.float32)
    return [
        _codec_py.encode_response(
            Service.READ,
            ObjectType.USER_INFO,
            3000 + i % 200,
            Property.VALUE,
            _FLOAT.pack(float(v)),
            src=101 + i % 3,
            frame_flags=0x34,
        )
        for i, v in enumerate(values)
    ]


# --- The contestants ------------------------------------------------------------------------


def _struct_decode(raw: bytes) -> float:
    """A plain ``struct`` float-response parser (start byte and lengths checked, no checksums)."""
    start, _, _, _, length = struct.unpack_from("<BBIIH", raw)
    if start != 0xAA or length + 16 != len(raw) or length != 14:
        raise ValueError("not a float response")
    return _FLOAT.unpack_from(raw, 24)[0]


def _proto_decode(protocol, raw: bytes) -> float:
    package = protocol.Package.parseBytes(raw)
    return _FLOAT.unpack(package.frame_data.service_data.property_data)[0]


def _proto_stream(protocol, stream: bytes) -> int:
    """xcom-proto has no stream decoder: parse packages one after the other from a reader."""
    reader = io.BytesIO(stream)
    count = 0
    end = len(stream)
    while reader.tell() < end:
        protocol.Package.parse(reader)
        count += 1
    return count


def _proto_encode(protocol, object_id: int) -> bytes:
    return protocol.Package.genPackage(
        service_id=b"\x01",
        object_id=object_id,
        object_type=b"\x01\x00",
        property_id=b"\x01\x00",
        property_data=b"",
        src_addr=1,
        dst_addr=101,
    ).getBytes()


def _check_contestants(c, protocol, frames: list[bytes]) -> None:
    """Every contestant must read the same values, or the race means nothing."""
    expected = [_codec_py.unpack_value(Format.FLOAT, f[24:28]) for f in frames[:50]]
    assert [c.unpack_value(Format.FLOAT, c.decode_frame(f).data) for f in frames[:50]] == expected
    assert [_struct_decode(f) for f in frames[:50]] == expected
    if protocol is not None:
        assert [_proto_decode(protocol, f) for f in frames[:50]] == expected
        assert _proto_encode(protocol, 3000) == c.encode_request(1, 1, 3000, 1, src=1, dst=101)
    assert c.decode_batch(b"".join(frames[:50])).value.tolist() == expected


# --- Measurements -------------------------------------------------------------------------------


def _row(benchmark: str, impl: str, value: float, unit: str, **extra) -> dict:
    metric = "MB/s" if unit == "MB/s" else "frames/s"
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": value,
        "unit": unit,
        "implementation": impl,
        **extra,
    }


def run(quick: bool = False) -> list[dict]:
    """All codec rows, then the ratios against the issue's targets."""
    c = _compiled()
    py = _codec_py
    protocol = _xcom_proto()
    seconds, repeats = (0.1, 2) if quick else (0.4, 5)
    count = 2_000 if quick else 20_000
    frames = _responses(count)
    small = frames[:500]
    stream = b"".join(frames)
    _check_contestants(c, protocol, frames)
    reference = "xcom-proto" if protocol is not None else "struct"
    rows: list[dict] = []

    # Request encoding: one read of a user info, fields as Python ints.
    def encoder(encode):
        def go() -> int:
            for i in range(500):
                encode(1, 1, 3000 + i, 1, src=1, dst=101)
            return 500

        return go

    for impl, module in (("c", c), ("py", py)):
        rows.append(
            _row(
                "encode request",
                impl,
                best_rate(encoder(module.encode_request), seconds, repeats),
                "frames/s",
            )
        )
    if protocol is not None:

        def proto_encode() -> int:
            for i in range(500):
                _proto_encode(protocol, 3000 + i)
            return 500

        rows.append(
            _row(
                "encode request",
                "xcom-proto",
                best_rate(proto_encode, seconds, repeats),
                "frames/s",
            )
        )

    # Single-frame decoding of float responses: parse, verify, read the value.
    def decoder(module):
        decode, unpack = module.decode_frame, module.unpack_value

        def go() -> int:
            for raw in small:
                unpack(Format.FLOAT, decode(raw).data)
            return len(small)

        return go

    single: dict[str, float] = {}
    for impl, module in (("c", c), ("py", py)):
        single[impl] = best_rate(decoder(module), seconds, repeats)
    if protocol is not None:

        def proto_decode() -> int:
            for raw in small:
                _proto_decode(protocol, raw)
            return len(small)

        single["xcom-proto"] = best_rate(proto_decode, seconds, repeats)

    def struct_decode() -> int:
        for raw in small:
            _struct_decode(raw)
        return len(small)

    single["struct"] = best_rate(struct_decode, seconds, repeats)
    for impl, value in single.items():
        note = "no checksum verification" if impl == "struct" else ""
        rows.append(_row("decode float response", impl, value, "frames/s", note=note))

    # Stream decoding: the whole capture fed in 4 KiB chunks, every frame as a record.
    chunks = [stream[i : i + 4096] for i in range(0, len(stream), 4096)]
    py_chunks = chunks[: max(1, len(chunks) // 10)]  # the pure decoder is slow: less data

    def streamer(module, parts):
        def go() -> int:
            decoder = module.StreamDecoder()
            return sum(len(decoder.feed(chunk)) for chunk in parts)

        return go

    streaming = {
        "c": best_rate(streamer(c, chunks), seconds, repeats),
        "py": best_rate(streamer(py, py_chunks), seconds, repeats),
    }
    if protocol is not None:
        part = b"".join(frames[: count // 10])
        streaming["xcom-proto"] = best_rate(lambda: _proto_stream(protocol, part), seconds, repeats)
    for impl, value in streaming.items():
        rows.append(_row("stream decode (4 KiB chunks)", impl, value, "frames/s"))

    # Batch decoding: one buffer of frames into column arrays with float values.
    py_stream = b"".join(frames[: count // 10])
    batch = {
        "c": best_rate(lambda: c.decode_batch(stream).count, seconds, repeats),
        "py": best_rate(lambda: py.decode_batch(py_stream).count, seconds, repeats),
    }
    for impl, value in batch.items():
        rows.append(_row("batch decode", impl, value, "frames/s"))

    # Checksum over a large buffer, and numpy.sum over the same uint8 buffer.
    size = (1 if quick else 8) << 20
    blob = np.random.default_rng(3).integers(0, 256, size, dtype=np.uint8)
    raw = blob.tobytes()
    small_blob = raw[: 64 << 10]
    mb = size / 1e6
    checks = {
        "c": best_rate(lambda: (c.checksum(raw), 1)[1], seconds, repeats) * mb,
        "numpy.sum": best_rate(lambda: (blob.sum(), 1)[1], seconds, repeats) * mb,
        "py": best_rate(lambda: (py.checksum(small_blob), 1)[1], seconds, repeats)
        * len(small_blob)
        / 1e6,
    }
    if protocol is not None:
        checks["xcom-proto"] = (
            best_rate(lambda: (protocol.checksum(small_blob), 1)[1], seconds, repeats)
            * len(small_blob)
            / 1e6
        )
    for impl, value in checks.items():
        rows.append(
            _row(
                "checksum",
                impl,
                value,
                "MB/s",
                bytes=size if impl in ("c", "numpy.sum") else len(small_blob),
            )
        )

    # Ratios from this run.
    base = single[reference]
    ratios = [
        (
            "compiled batch decode / reference per-frame parse",
            batch["c"] / base,
            TARGET_BATCH,
            reference,
        ),
        (
            "compiled stream decode / reference per-frame parse",
            streaming["c"] / base,
            TARGET_STREAM,
            reference,
        ),
        (
            "compiled checksum / numpy.sum (MB/s)",
            checks["c"] / checks["numpy.sum"],
            TARGET_CHECKSUM,
            "numpy.sum",
        ),
        ("compiled single-frame decode / reference", single["c"] / base, None, reference),
        ("compiled single-frame decode / pure Python", single["c"] / single["py"], None, "py"),
        ("compiled stream decode / pure Python", streaming["c"] / streaming["py"], None, "py"),
        ("compiled batch decode / pure Python", batch["c"] / batch["py"], None, "py"),
        (
            "compiled batch decode / compiled single-frame decode",
            batch["c"] / single["c"],
            None,
            "c",
        ),
    ]
    for name, value, target, against in ratios:
        row = {
            "benchmark": name,
            "metric": "ratio",
            "value": value,
            "unit": "x",
            "reference": against,
        }
        if target is not None:
            row.update(target=target, meets_target=value >= target)
        rows.append(row)
    return rows


if __name__ == "__main__":  # pragma: no cover
    for r in run(quick="--quick" in sys.argv):
        print(
            f"{r['benchmark']:55s} {r.get('implementation', ''):10s} {r['value']:14,.1f} {r['unit']}"
        )
