"""Answers into columns: what a cycle gathered, batch-decoded into (time, address, number, value).

Multi-info answers of a cycle are kept as raw frames and decoded in one call of the
compiled codec (``decode_multi``); their items are mapped back to the devices the plan
asked for (``map_items`` when a gateway answered in another order or incompletely).
Single reads become one value each (``single_value``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import codec
from ..exceptions import XcomError
from ..protocol import Format
from .plan import GroupPlan, PlannedRead


@dataclass(eq=False)
class Cycle:
    """One pass of a group through its requests."""

    group: GroupPlan
    slot: float  # the wall-clock tick it belongs to
    index: int = 0
    multi_buf: bytearray = field(default_factory=bytearray)
    multi_times: list[int] = field(default_factory=list)
    multi_reqs: list[PlannedRead] = field(default_factory=list)
    single_t: list[int] = field(default_factory=list)
    single_a: list[int] = field(default_factory=list)
    single_n: list[int] = field(default_factory=list)
    single_v: list[float] = field(default_factory=list)
    params: list[dict] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.index >= len(self.group.requests)

    def add_multi(self, request: PlannedRead, frame: bytes, t_ms: int) -> None:
        """Keep a multi-info answer (raw) for the batch decode at the end of the cycle."""
        self.multi_buf += frame
        self.multi_times.append(t_ms)
        self.multi_reqs.append(request)


def decode_multi(buffer: bytes):
    """(frame index per item, ids, aggregations, values, item count per frame) of the
    multi-info responses concatenated in ``buffer``, via the compiled batch decoder."""
    batch_decode = getattr(codec, "decode_multi_info_batch", None)
    if batch_decode is not None:
        b = batch_decode(buffer)
        return b.frame, b.ids, b.aggregations, b.values, b.item_count
    # Codec without the batch decoder: one decode per frame (same result, slower).
    frames = codec.StreamDecoder().feed(buffer)
    parts = [codec.decode_multi_info(f.data) for f in frames]
    counts = np.array([len(p.ids) for p in parts], dtype=np.int64)
    if not parts:
        empty = np.empty(0)
        return (
            empty.astype(np.int64),
            empty.astype(np.uint16),
            empty.astype(np.uint8),
            empty.astype(np.float32),
            counts,
        )
    return (
        np.repeat(np.arange(len(parts), dtype=np.int64), counts),
        np.concatenate([p.ids for p in parts]),
        np.concatenate([p.aggregations for p in parts]),
        np.concatenate([p.values for p in parts]),
        counts,
    )


def map_items(reqs, times, frame_idx, ids, aggs, values, counts):
    """Addresses of multi-info items answered in another order or incompletely."""
    addresses = np.zeros(len(ids), dtype=np.uint16)
    keep = np.zeros(len(ids), dtype=bool)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if len(counts) else np.empty(0, np.int64)
    for f, req in enumerate(reqs[: len(counts)]):
        lookup = {
            (int(i), int(a)): addr
            for i, a, addr in zip(
                req.ids.tolist(), req.aggregations.tolist(), req.addresses.tolist(), strict=True
            )
        }
        s = int(starts[f])
        for j in range(s, s + int(counts[f])):
            addr = lookup.get((int(ids[j]), int(aggs[j])))
            if addr is not None:
                addresses[j] = addr
                keep[j] = True
    item_times = times[frame_idx] if len(frame_idx) else np.empty(0, np.int64)
    return addresses[keep], ids[keep], values[keep], item_times[keep]


def single_value(fmt: Format | None, data: bytes) -> float:
    """A single read's value as a float (NaN if it cannot be read in its format)."""
    try:
        value = codec.unpack_value(fmt if fmt is not None else Format.FLOAT, data)
    except XcomError:
        return math.nan
    if isinstance(value, (bytes, str)):
        return math.nan
    return float(value)


__all__ = ["Cycle", "decode_multi", "map_items", "single_value"]
