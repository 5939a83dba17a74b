"""Helpers for the logger tests: a simulator that records what it served, and an
in-process asyncio transport over it. (No tests here.)"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xcomlog import codec
from xcomlog.exceptions import LinkError
from xcomlog.links import AsyncTransport
from xcomlog.protocol import (
    ADDRESS_DTE,
    FAMILY_ADDRESSES,
    Family,
    ObjectType,
    Service,
    ServiceFlag,
)


@dataclass
class Served:
    """One request the simulator received and what it answered."""

    t_in: int  # ms, request arrival
    request: object  # decoded request Frame
    chunks: list[bytes]
    answer: object | None = None  # the intact response Frame addressed to the client, if any
    t_out: int = 0  # ms, when the answer left


@dataclass
class Recorder:
    """Wraps ``sim.handle_frame`` to record every request and its (possibly faulty) answer."""

    sim: object
    src: int = ADDRESS_DTE
    served: list[Served] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        original = self.sim.handle_frame

        def handle_frame(frame):
            t_in = time.time_ns() // 1_000_000
            chunks = original(frame)
            answer = None
            for f in codec.StreamDecoder().feed(b"".join(chunks)):
                if (
                    f.dst == frame.src
                    and f.service_flags & ServiceFlag.RESPONSE
                    and f.object_type == frame.object_type
                    and f.object_id == frame.object_id
                    and f.src == frame.dst
                ):
                    answer = f
            with self.lock:
                self.served.append(
                    Served(t_in, frame, list(chunks), answer, time.time_ns() // 1_000_000)
                )
            return chunks

        self.sim.handle_frame = handle_frame

    def snapshot(self) -> list[Served]:
        with self.lock:
            return list(self.served)


def multi_family(catalog, numbers) -> dict[int, Family]:
    """Which family answers each info number in multi-info (BSP before BMS, as the sim)."""
    out: dict[int, Family] = {}
    for number in numbers:
        families = [dp.family for dp in catalog.find(number) if dp.kind == "info"]
        if Family.BSP in families:
            out[number] = Family.BSP
        elif families:
            out[number] = families[0]
    return out


def served_values(served: list[Served], catalog, until_ms: int | None = None):
    """(time_in, time_out, address, number, value) arrays of every intact multi-info or
    user-info answer; time_in is the arrival of the NEXT request (the logger sends it only
    after it got this answer), so a logged time must lie in [t_out, next t_in]."""
    rows = []
    cache: dict[int, Family] = {}
    for k, s in enumerate(served):
        if s.answer is None or s.answer.service_flags & ServiceFlag.ERROR:
            continue
        if until_ms is not None and s.t_out > until_ms:
            continue
        nxt = served[k + 1].t_in if k + 1 < len(served) else 2**62
        a = s.answer
        if a.object_type == ObjectType.MULTI_INFO:
            mi = codec.decode_multi_info(a.data)
            for number, agg, value in zip(
                mi.ids.tolist(), mi.aggregations.tolist(), mi.values.tolist(), strict=True
            ):
                if number not in cache:
                    cache.update(multi_family(catalog, [number]))
                first = FAMILY_ADDRESSES[cache[number]][1]
                rows.append((s.t_out, nxt, first + agg - 1, number, value))
        elif a.object_type == ObjectType.USER_INFO and s.request.service_id == Service.READ:
            family = multi_family(catalog, [a.object_id]).get(a.object_id)
            dp = catalog.get(a.object_id, family=family)
            value = float(codec.unpack_value(dp.format, a.data))
            rows.append((s.t_out, nxt, a.src, a.object_id, value))
    if not rows:
        return np.empty((0, 5))
    return np.array(rows, dtype=np.float64)


class SimTransport:
    """An asyncio transport talking to a Simulator in-process: no sockets, no threads.

    A dropped answer (``handle`` returned nothing) is simply never received, as on a
    real link. ``fail_after`` sends raise LinkError once, to test reconnects.
    """

    def __init__(self, sim, *, fail_every: int = 0) -> None:
        self.sim = sim
        self.buf = bytearray()
        self.is_open = False
        self.opens = 0
        self.sent = 0
        self.fail_every = fail_every
        self._event: asyncio.Event | None = None

    async def open(self, timeout=None) -> None:
        self.is_open = True
        self.opens += 1
        self.buf.clear()

    async def reconnect(self, timeout=None) -> None:
        await self.close()
        await self.open(timeout)

    async def close(self) -> None:
        self.is_open = False

    async def send(self, data: bytes) -> None:
        from xcomlog.exceptions import LinkError

        if not self.is_open:
            raise LinkError("closed")
        self.sent += 1
        if self.fail_every and self.sent % self.fail_every == 0:
            self.is_open = False
            raise LinkError("simulated link drop")
        await asyncio.sleep(0)  # a real link always goes through the event loop
        for chunk in self.sim.handle(data):
            self.buf += chunk

    async def receive(self, timeout: float) -> bytes:
        if not self.buf:
            await asyncio.sleep(timeout)
            return b""
        data = bytes(self.buf)
        self.buf.clear()
        return data


class CallbackSimTransport(AsyncTransport):
    """An AsyncTransport over an in-process Simulator whose answers arrive from event-loop
    callbacks, as a socket's do, so the logger's burst mode runs on it. ``split`` cuts
    every answer in two chunks (the burst must hand those to the ordinary exchange)."""

    scheme = "sim"

    def __init__(self, sim, *, split: bool = False, fail_every: int = 0) -> None:
        super().__init__()
        self.sim = sim
        self.split = split
        self.fail_every = fail_every  # every n-th request the connection drops instead
        self.opens = 0
        self._open = False
        self.sends = 0  # every request
        self.callback_sends = 0  # requests sent from the data callback (burst)
        self._feeding = False

    def _feed(self, data: bytes) -> None:
        self._feeding = True
        try:
            super()._feed(data)
        finally:
            self._feeding = False

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self, timeout=None) -> None:
        self._open = True
        self.opens += 1
        self._reset_buffer()

    async def close(self) -> None:
        self._open = False

    async def send(self, data: bytes) -> None:
        if not self.send_nowait(data):
            raise LinkError("closed")

    def send_nowait(self, data: bytes) -> bool:
        if not self._open:
            return False
        self.sends += 1
        if self._feeding:
            self.callback_sends += 1
        loop = asyncio.get_running_loop()
        self._sent(data)
        if self.fail_every and self.sends % self.fail_every == 0:
            self._open = False  # the request left; the connection dies before the answer
            loop.call_soon(self._fail, LinkError("simulated link drop"))
            return True
        for chunk in self.sim.handle(data):
            if self.split and len(chunk) > 1:
                loop.call_soon(self._feed, chunk[:5])
                loop.call_soon(self._feed, chunk[5:])
            else:
                loop.call_soon(self._feed, chunk)
        return True


def read_table(out: Path, table: str, *, via_xcomlog: bool = False):
    """One table of a dataset as pandas (every site), sorted by time.

    Values are read with pyarrow (fast, independent of xcomlog.read) unless
    ``via_xcomlog``; the other tables with xcomlog.read.
    """
    import xcomlog

    if table == "values" and not via_xcomlog:
        import pyarrow.dataset as ds

        df = (
            ds.dataset(Path(out) / "values", format="parquet", partitioning="hive")
            .to_table()
            .to_pandas()
        )
    elif table == "values":
        df = xcomlog.read(out, wide=False)
    else:
        df = xcomlog.read(out, table=table)
    return df.sort_values("time", kind="stable").reset_index(drop=True)


def run_logger(cfg, sim=None, *, duration: float, transport=None, writer=None, until=None):
    """Run a Logger over an in-process SimTransport for ``duration`` seconds; close it.

    With ``until`` (a predicate on the logger), stop as soon as it holds, ``duration``
    being then only the limit: a test that waits for an event does not depend on how
    fast a loaded machine runs.
    """
    from xcomlog.dataset import DatasetWriter
    from xcomlog.logger.loop import Logger

    writer = writer or DatasetWriter(cfg.out, flush_interval=cfg.flush_interval)
    transport = transport or SimTransport(sim)
    logger = Logger(cfg, writer=writer, transport_factory=lambda url: transport)

    async def main() -> None:
        stop = asyncio.Event()
        if until is None:
            await logger.run(stop, duration=duration)
            return

        async def watch() -> None:
            while not stop.is_set() and not until(logger):
                await asyncio.sleep(0.02)
            stop.set()

        watcher = asyncio.create_task(watch())
        try:
            await logger.run(stop, duration=duration)
        finally:
            watcher.cancel()

    try:
        asyncio.run(main())
    finally:
        writer.close()
    return logger
