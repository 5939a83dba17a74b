"""The batch read loop: every site's link kept busy, answers decoded in batches, rows queued.

One asyncio task per site. A site sends one request, waits for its answer (or the
timeout) and sends the next at once: no sleep inside a cycle. The groups of a site share
its link; the shortest interval goes first between requests, so an hourly parameter
snapshot never delays the 1 s values. A run of multi-info requests goes out as a
``Burst``: each next request leaves from the callback that received the previous answer,
and anything unusual falls back to the ordinary exchange. Multi-info answers of a cycle
are kept as raw frames and decoded in one call of the compiled codec into columns for
the DatasetWriter, whose own thread does every disk write. Everything that leaves a hole
in the data (missed interval, timeout, device error, link drop, restart) becomes an event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import codec
from ..exceptions import ConfigError, FrameError, LinkError, StorageError, XcomError
from ..protocol import (
    ADDRESS_GATEWAY,
    CHECKSUM_SIZE,
    HEADER_SIZE,
    MESSAGE_DATA_SIZE,
    START_BYTE,
    ErrorCode,
    Family,
    Format,
    FrameFlag,
    MultiInfoFlag,
    ObjectType,
    Property,
    Service,
    ServiceFlag,
    device_name,
    error_name,
)
from .config import STATUS_POINTS, DeviceSpec, LoggerConfig, SiteConfig
from .plan import INFO, MESSAGE, MULTI, PARAM, GroupPlan, Request, SitePlan, compile_plan

log = logging.getLogger("xcomlog.logger")

# frame_flags, src, dst | data_length skipped | service_flags, service_id, object_type, object_id
_PEEK = struct.Struct("<xBII4xBBHI")
_U16 = struct.Struct("<H")

#: Multi-info refusals that mean "this gateway has no multi-info service": use single reads.
_NO_MULTI_INFO = frozenset(
    {
        ErrorCode.SERVICE_NOT_SUPPORTED,
        ErrorCode.TYPE_NOT_SUPPORTED,
        ErrorCode.SCOM_ERROR_OBJECT_NOT_SUPPORTED,
        ErrorCode.OBJECT_ID_NOT_FOUND,
    }
)
# Plain ints: IntFlag arithmetic costs microseconds on the hot path.
_RESPONSE = int(ServiceFlag.RESPONSE)
_ERROR = int(ServiceFlag.ERROR)
_RESTARTED = int(FrameFlag.RESTARTED)
_MESSAGE_PENDING = int(FrameFlag.MESSAGE_PENDING)
_BUSY = int(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
_READ = int(Service.READ)

#: Consecutive unanswered requests after which a link is considered dead and reopened.
SILENT_LIMIT = 5
#: Messages read per notification at most (the gateway keeps hundreds).
MESSAGES_PER_ROUND = 16
#: Decode and queue a long cycle's answers at least every this many frames.
BATCH_FRAMES = 64

# Result kinds of one exchange.
OK, ERROR, TIMEOUT, DAMAGED = 0, 1, 2, 3


def now_ms() -> int:
    """Wall-clock time in integer milliseconds since 1970 (UTC)."""
    return time.time_ns() // 1_000_000


# --- framing ----------------------------------------------------------------------------------


class Framer:
    """Cuts a byte stream into raw, checksum-verified frames (bytes), as the codec's
    StreamDecoder would, but keeps each frame's raw bytes for the batch decoder."""

    __slots__ = ("_buf", "junk_bytes", "bad_frames")

    def __init__(self) -> None:
        self._buf = bytearray()
        self.junk_bytes = 0
        self.bad_frames = 0

    def reset(self) -> None:
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes held back, waiting for the rest of a frame."""
        return len(self._buf)

    @staticmethod
    def is_whole_frame(chunk: bytes) -> bool:
        """True when ``chunk`` is exactly one frame with good checksums (the usual case)."""
        try:
            size = codec.frame_size(chunk) if chunk[0] == START_BYTE else -1
        except (FrameError, IndexError):
            return False
        return (
            size == len(chunk)
            and codec.checksum(chunk[HEADER_SIZE : size - CHECKSUM_SIZE])
            == chunk[size - CHECKSUM_SIZE :]
        )

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf
        if not buf and self.is_whole_frame(chunk):
            return [bytes(chunk)]
        buf += chunk
        out: list[bytes] = []
        frame_size = codec.frame_size
        checksum = codec.checksum
        while buf:
            if buf[0] != START_BYTE:
                nxt = buf.find(START_BYTE)
                drop = len(buf) if nxt < 0 else nxt
                self.junk_bytes += drop
                del buf[:drop]
                continue
            try:
                # the header alone gives the size; a copy keeps ``buf`` resizable
                size = frame_size(bytes(buf[:HEADER_SIZE]))
            except FrameError:
                self.bad_frames += 1
                del buf[:1]
                continue
            if size == 0 or len(buf) < size:
                break
            frame = bytes(buf[:size])
            if checksum(frame[HEADER_SIZE : size - CHECKSUM_SIZE]) != frame[size - CHECKSUM_SIZE :]:
                self.bad_frames += 1
                del buf[:1]
                continue
            del buf[:size]
            out.append(frame)
        return out


def _decode_multi(buffer: bytes):
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


# --- per-site state ---------------------------------------------------------------------------


@dataclass
class SiteStats:
    """Counters and last values of one site, read by the status line and the benchmarks."""

    values: int = 0
    frames: int = 0  # answered requests
    requests: int = 0  # requests sent, retries included
    timeouts: int = 0
    device_errors: int = 0
    missed: int = 0
    link_drops: int = 0
    foreign_frames: int = 0
    stale_frames: int = 0
    damaged_frames: int = 0  # answers that arrived with a bad checksum
    messages: int = 0
    parameters: int = 0
    state: str = "starting"
    last_error: str = ""
    last: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)


@dataclass(eq=False)
class _Cycle:
    """One pass of a group through its requests."""

    group: GroupPlan
    slot: float  # the wall-clock tick it belongs to
    index: int = 0
    multi_buf: bytearray = field(default_factory=bytearray)
    multi_times: list[int] = field(default_factory=list)
    multi_reqs: list[Request] = field(default_factory=list)
    single_t: list[int] = field(default_factory=list)
    single_a: list[int] = field(default_factory=list)
    single_n: list[int] = field(default_factory=list)
    single_v: list[float] = field(default_factory=list)
    params: list[dict] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.index >= len(self.group.requests)


@dataclass(eq=False)
class _GroupState:
    group: GroupPlan
    next_tick: float
    cycle: _Cycle | None = None


def _aligned_tick(now: float, interval: float, offset: float) -> float:
    """The last wall-clock tick at or before ``now`` (``offset`` after a multiple of interval)."""
    return math.floor((now - offset) / interval) * interval + offset


class Burst:
    """A run of multi-info requests of one cycle, each sent from the link's data callback.

    The ordinary exchange (``SiteLogger._exchange``) costs a task switch and two turns of
    the event loop per request. A burst sends the next request straight from the callback
    that receives the previous answer, as long as every answer arrives whole and is exactly
    the one expected. Anything else (an error answer, a foreign, stale, split or damaged
    frame, a link failure, no answer within the timeout) ends the burst with that request
    still in flight, and the ordinary exchange finishes it: matching, retries and events
    keep one implementation.
    """

    __slots__ = ("site", "transport", "cycle", "end", "done", "timer", "sent_at", "in_flight")

    def __init__(self, site: SiteLogger, transport, cycle: _Cycle, end: int) -> None:
        self.site = site
        self.transport = transport
        self.cycle = cycle
        self.end = end  # index after the last request of the burst
        self.done: asyncio.Future[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.sent_at = 0.0  # time.monotonic() of the last send
        self.in_flight = False

    async def run(self) -> float | None:
        """Run the burst; returns when the request left in flight was sent, or None."""
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.transport.chunk_hook = self.on_chunk
        try:
            if not self._send(self.cycle.group.requests[self.cycle.index]):
                return None
            self.timer = loop.call_later(self.site.site.timeout, self._check)
            await self.done
        finally:
            self._release()
        return self.sent_at if self.in_flight else None

    def _send(self, request: Request) -> bool:
        if not self.transport.send_nowait(request.frame):
            return False
        self.site.stats.requests += 1
        self.sent_at = time.monotonic()
        self.in_flight = True
        return True

    def _release(self) -> None:
        if self.transport.chunk_hook == self.on_chunk:
            self.transport.chunk_hook = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _finish(self) -> None:
        self._release()
        done = self.done
        if done is not None and not done.done():
            done.set_result(None)

    def _check(self) -> None:
        """Timer: end the burst once the request in flight has had its whole timeout."""
        left = self.sent_at + self.site.site.timeout - time.monotonic()
        if self.in_flight and left > 1e-3 and self.done is not None:
            self.timer = self.done.get_loop().call_later(left, self._check)
        else:
            self.timer = None
            self._finish()

    def on_chunk(self, chunk: bytes) -> bool:
        """The link's data callback: take a clean answer and send the next request."""
        site = self.site
        cycle = self.cycle
        request = cycle.group.requests[cycle.index]
        if not chunk or site._framer.pending or not Framer.is_whole_frame(chunk):
            self._finish()
            return False
        fflags, fsrc, fdst, sflags, sid, otype, oid = _PEEK.unpack_from(chunk)
        if (
            fdst != site.site.src
            or sflags != _RESPONSE
            or sid != _READ
            or otype != request.object_type
            or oid != request.object_id
            or fsrc != request.dst
        ):
            self._finish()
            return False
        t_ms = time.time_ns() // 1_000_000
        self.in_flight = False
        site._answered(fflags, True)
        site._ok(request, t_ms)
        cycle.multi_buf += chunk
        cycle.multi_times.append(t_ms)
        cycle.multi_reqs.append(request)
        cycle.index += 1
        if cycle.index >= self.end or not self._send(cycle.group.requests[cycle.index]):
            self._finish()
        return True


class SiteLogger:
    """Polls one site over one link until stopped; reconnects with backoff on link loss."""

    def __init__(
        self,
        site: SiteConfig,
        writer,
        catalog=None,
        *,
        transport_factory: Callable[[str], object] | None = None,
        open_timeout: float | None = None,
    ) -> None:
        self.site = site
        self.writer = writer
        self._catalog = catalog
        self._factory = transport_factory
        self.open_timeout = site.connect_timeout if open_timeout is None else open_timeout
        self.stats = SiteStats()
        self.plan: SitePlan | None = None
        self._framer = Framer()
        self._failing: dict[Request, tuple[int, int]] = {}  # request -> (since ms, failures)
        self._silent = 0
        self._restart_flag: bool | None = None
        self._messages_due = False
        self._seen_messages: dict[tuple[int, int, int], None] = {}
        self._status_keys: list[tuple[int, int]] = []
        self._concat_cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._stop: asyncio.Event | None = None
        self._writes: list[tuple[Request, asyncio.Future, str]] = []  # MQTT: queued writes

    # -- MQTT: parameter writes asked over MQTT go out between two requests of the poll --

    async def write_param(self, address: int, number: int, value, flash: bool) -> None:
        """Write a validated parameter value on this site's link (to RAM unless ``flash``);
        raises DeviceError, or XcomTimeout when the link cannot carry it in time."""
        from ..exceptions import DeviceError, XcomTimeout

        devices = self.plan.devices if self.plan is not None else ()
        family = next((d.family for d in devices if d.address == address), None)
        dp = self.catalog.get(number, family) if family else self.catalog.at(number, address)
        prop = Property.VALUE_QSP if flash else Property.UNSAVED_VALUE_QSP
        data = codec.pack_value(dp.format, value)
        frame = codec.encode_request(
            Service.WRITE, ObjectType.PARAMETER, number, prop, data, src=self.site.src, dst=address
        )
        request = Request(
            PARAM, frame, address, int(ObjectType.PARAMETER), number, int(prop), 0, ()
        )
        what = f"parameter {number} of {device_name(address)} = {value!r} ({'flash' if flash else 'RAM'})"
        future = asyncio.get_running_loop().create_future()
        self._writes.append((request, future, what))
        limit = 2 * self.site.timeout * (1 + self.site.retries) + 10.0
        try:
            kind, code = await asyncio.wait_for(future, limit)
        except asyncio.TimeoutError:
            raise XcomTimeout(
                f"{what}: the link to {self.site.name} did not carry it within {limit:g} s"
            ) from None
        if kind == ERROR:
            raise DeviceError(code, what)
        if kind != OK:
            raise XcomTimeout(f"{what}: no answer")

    async def _run_writes(self, transport) -> None:
        while self._writes:
            request, future, what = self._writes.pop(0)
            if future.done():
                continue  # the asker gave up
            kind, _, code = await self._exchange(
                transport, request, quiet=True, service=int(Service.WRITE)
            )
            if kind == OK:
                self.event(
                    "write", f"{what} over MQTT", address=request.dst, number=request.object_id
                )
            if not future.done():
                future.set_result((kind, code))

    # -- helpers -----------------------------------------------------------------------------

    @property
    def status_keys(self) -> list[tuple[int, int]]:
        """The (address, number) of the key datapoints the status line shows, in order."""
        return self._status_keys

    @property
    def catalog(self):
        if self._catalog is None:
            from ..catalog import load_catalog

            self._catalog = load_catalog()
        return self._catalog

    def event(
        self,
        kind: str,
        detail: str = "",
        address: int | None = None,
        number: int | None = None,
        time_ms: int | None = None,
    ) -> None:
        """Record an event row (queued; the writer thread stores it)."""
        row = {
            "time_ms": now_ms() if time_ms is None else time_ms,
            "kind": kind,
            "address": address,
            "number": number,
            "detail": detail,
        }
        log.info("%s: %s %s", self.site.name, kind, detail)
        self.writer.append_events(self.site.name, [row])

    def _transport(self):
        if self._factory is not None:
            return self._factory(self.site.link)
        from ..transports import open_async_transport

        return open_async_transport(self.site.link)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early when the logger is asked to stop."""
        if seconds <= 0:
            return
        stop = self._stop
        if stop is None:
            await asyncio.sleep(seconds)
            return
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # -- main loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set. Raises StorageError / ConfigError (fatal) only.

        A broken link is reopened after a delay doubling from the first to the largest
        backoff (reset once answers flow again). Only the change from up to down is an
        event, so a gateway that stays away does not flood the events table.
        """
        self._stop = stop
        first, largest = self.site.backoff
        delay = first
        transport = self._transport()
        listening = self.site.link.lower().startswith("listen:")
        link_up = False
        opened_once = False
        try:
            while not stop.is_set():
                self.stats.state = "connecting"
                self._answered_since_open = False
                try:
                    try:
                        if listening and opened_once:
                            await transport.reconnect(self.open_timeout)
                        else:
                            await transport.open(self.open_timeout)
                    except asyncio.TimeoutError as exc:
                        raise LinkError(f"{self.site.link}: open timed out") from exc
                    opened_once = True
                    self._framer.reset()
                    self._silent = 0
                    link_up = True
                    self.event("link_up", self.site.link)
                    if not self._prepared:
                        self.stats.state = "discovering"
                        await self._prepare(transport)
                    self.stats.state = "polling"
                    await self._poll(transport, stop)
                except StorageError:
                    raise  # an OSError too, but the disk's, not the link's: fatal
                except (LinkError, OSError) as exc:
                    self.stats.last_error = str(exc)
                    if link_up or not opened_once and self.stats.link_drops == 0:
                        self.stats.link_drops += 1
                        self.event("link_down", str(exc))
                    else:
                        log.debug("%s: still down: %s", self.site.name, exc)
                    link_up = False
                    if not listening:
                        await _close_quietly(transport)
                if stop.is_set():
                    break
                if self._answered_since_open:
                    delay = first
                self.stats.state = f"reconnecting in {delay:.0f} s"
                await self._sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, largest)
        finally:
            await _close_quietly(transport)
            self.stats.state = "stopped"

    _answered_since_open = False
    _prepared = False  # plan compiled, labels and devices written

    def check(self) -> None:
        """Compile the plan now when the devices are configured: a wrong datapoint is a
        ConfigError before any link opens (scanned sites are checked after their scan)."""
        if self.plan is None and self.site.devices is not None:
            self.plan = compile_plan(self.site, self.site.devices, self.catalog)

    async def _prepare(self, transport) -> None:
        """Find the devices (unless configured), compile the plan, describe the points."""
        if self.plan is None:
            devices = self.site.devices
            if devices is None:
                devices = await self.discover(transport)
                if not devices:
                    raise LinkError("no device answered the scan")
            self.plan = compile_plan(self.site, devices, self.catalog)
        plan = self.plan
        self.writer.describe(self.site.name, plan.labels)
        self._prepared = True
        t = now_ms()
        self.writer.append_devices(
            self.site.name,
            [
                {
                    "time_ms": t,
                    "address": d.address,
                    "family": d.family.value,
                    "device": d.name,
                    "detail": "configured" if self.site.devices is not None else "scanned",
                }
                for d in plan.devices
            ],
        )
        # the status line shows the key datapoints in STATUS_POINTS order, first device each
        keys: list[tuple[int, int]] = []
        for family, number in STATUS_POINTS:
            for key in sorted(plan.points):
                point = plan.points[key]
                if point.family is family and point.number == number:
                    keys.append(key)
                    break
        self._status_keys = keys

    async def discover(self, transport) -> tuple[DeviceSpec, ...]:
        """Scan the bus: which Xtenders, VarioTracks, VarioStrings and BSP answer."""
        probes: list[tuple[Family, int, int]] = []
        flags = None
        request = _single_info_request(3000, ADDRESS_GATEWAY, self.site.src, multi_probe=True)
        kind, frame, _ = await self._exchange(transport, request, quiet=True)
        if kind == OK:
            data = frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE]
            if len(data) >= 4:
                flags = int.from_bytes(data[:4], "little")
        present = {
            Family.XTENDER: flags is None or bool(flags & MultiInfoFlag.XT_PRESENT),
            Family.VARIOTRACK: flags is None or bool(flags & MultiInfoFlag.VT_PRESENT),
            Family.VARIOSTRING: flags is None or bool(flags & MultiInfoFlag.VS_PRESENT),
            Family.BSP: flags is None or bool(flags & MultiInfoFlag.BSP_PRESENT),
        }
        from ..protocol import FAMILY_ADDRESSES

        probe_number = {
            Family.XTENDER: 3000,
            Family.VARIOTRACK: 11000,
            Family.VARIOSTRING: 15000,
            Family.BSP: 7000,
        }
        for family, number in probe_number.items():
            if not present[family]:
                continue
            _, first, last = FAMILY_ADDRESSES[family]
            for address in range(first, last + 1):
                probes.append((family, address, number))
        found: list[DeviceSpec] = []
        for family, address, number in probes:
            request = _single_info_request(number, address, self.site.src)
            kind, frame, _ = await self._exchange(transport, request, quiet=True)
            if kind == OK:
                found.append(DeviceSpec(address, family))
        names = ", ".join(d.name for d in found) or "none"
        self.event("scan", f"devices found: {names}")
        return tuple(found)

    # -- polling -----------------------------------------------------------------------------

    async def _poll(self, transport, stop: asyncio.Event) -> None:
        plan = self.plan
        assert plan is not None
        now = time.time()
        states = [_GroupState(g, now) for g in plan.groups]  # first cycle at once
        polite = self.site.polite
        quiet_logged_until = 0.0
        # runs of multi-info requests go out in bursts, unless polite mode paces each one
        burst = polite is None or polite.duty_cycle >= 1.0
        try:
            while not stop.is_set():
                if self._writes:  # MQTT
                    await self._run_writes(transport)
                if self._messages_due and self.site.messages:
                    self._messages_due = False
                    await self._read_messages(transport)
                now = time.time()
                if polite is not None and polite.quiet:
                    left = polite.quiet_remaining()
                    if left > 0:
                        if now >= quiet_logged_until:
                            quiet_logged_until = now + left
                            self.event(
                                "quiet", f"polite mode: quiet window, polling paused {left:.0f} s"
                            )
                        self.stats.state = "quiet"
                        await self._sleep(min(left, 60.0))
                        self.stats.state = "polling"
                        continue
                for st in states:
                    if st.cycle is None and now >= st.next_tick:
                        st.cycle = _Cycle(st.group, st.next_tick)
                active = [st for st in states if st.cycle is not None]
                if not active:
                    wake = min(st.next_tick for st in states)
                    await self._sleep(wake - time.time())
                    continue
                # shortest interval first; a group polled back to back (0) yields to all
                st = min(active, key=lambda s: s.group.interval or math.inf)
                cycle = st.cycle
                assert cycle is not None
                start = cycle.index
                requests = cycle.group.requests
                end = self._burst_end(transport, cycle) if burst else start
                if end > start + 1:
                    sent_at = await Burst(self, transport, cycle, end).run()
                    if sent_at is not None:  # the burst left a request for the slow path
                        await self._run_request(transport, requests[cycle.index], cycle, sent_at)
                    elif cycle.index == start:  # the burst could not send at all
                        await self._run_request(transport, requests[start], cycle)
                else:
                    await self._run_request(transport, requests[start], cycle)
                if cycle.done or len(cycle.multi_reqs) >= BATCH_FRAMES:
                    self._flush_cycle(cycle)
                if cycle.done:
                    st.cycle = None
                    st.next_tick = self._next_tick(st, cycle)
        finally:
            for st in states:
                if st.cycle is not None:
                    self._flush_cycle(st.cycle)

    def _burst_end(self, transport, cycle: _Cycle) -> int:
        """End of the run of multi-info requests a burst may send from ``cycle.index``
        (bounded by the batch size), or ``cycle.index`` when the link has unread bytes."""
        start = cycle.index
        if getattr(transport, "buffered", 1) or self._framer.pending:
            return start
        requests = cycle.group.requests
        limit = min(len(requests), start + BATCH_FRAMES - len(cycle.multi_reqs))
        end = start
        while end < limit and requests[end].kind == MULTI:
            end += 1
        return end

    def _next_tick(self, st: _GroupState, cycle: _Cycle) -> float:
        """When the group runs next; intervals with no cycle started are missed events."""
        interval = st.group.interval
        now = time.time()
        if interval <= 0:
            return now
        nxt = _aligned_tick(cycle.slot, interval, st.group.offset) + interval
        if now < nxt:
            return nxt
        current = _aligned_tick(now, interval, st.group.offset)
        missed = int(round((current - nxt) / interval))
        if missed > 0:
            self.stats.missed += missed
            self.event(
                "missed",
                f"group {st.group.name!r}: {missed} interval(s) of {interval:g} s missed "
                f"(cycle took {now - cycle.slot:.2f} s for {st.group.values} values)",
                time_ms=int(nxt * 1000),
            )
        return now  # late but inside the current interval: run at once

    async def _run_request(
        self, transport, request: Request, cycle: _Cycle, sent_at: float | None = None
    ) -> None:
        polite = self.site.polite
        if polite is not None and polite.duty_cycle < 1.0:
            started = time.monotonic()
            kind, frame, t_ms = await self._exchange(transport, request)
            # leave the link free for the portal: silence in proportion to our use
            await self._sleep(polite.idle_after(time.monotonic() - started))
        else:
            kind, frame, t_ms = await self._exchange(transport, request, sent_at=sent_at)
        cycle.index += 1
        if kind == OK:
            self._ok(request, t_ms)
            if request.kind == MULTI:
                cycle.multi_buf += frame
                cycle.multi_times.append(t_ms)
                cycle.multi_reqs.append(request)
            elif request.kind == INFO:
                point = request.points[0]
                value = _number(point.format, frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE])
                cycle.single_t.append(t_ms)
                cycle.single_a.append(point.address)
                cycle.single_n.append(point.number)
                cycle.single_v.append(value)
            elif request.kind == PARAM:
                cycle.params.append(self._param_row(request, frame, t_ms))
            return
        if kind == ERROR:
            code = t_ms  # for errors the third item is the code
            if request.kind == MULTI and code in _NO_MULTI_INFO:
                self._use_single_reads(code, cycle)
                return
            self._fail(request, "device_error", f"{error_name(code)} (0x{code:04X})")
            return
        if kind == DAMAGED:
            self._fail(request, "bad_frame", "the answer arrived damaged (checksum)")
            return
        self._fail(request, "timeout", f"no answer within {self.site.timeout:g} s")

    def _use_single_reads(self, code: int, cycle: _Cycle) -> None:
        assert self.plan is not None
        self.event(
            "device_error",
            f"multi-info refused with {error_name(code)}: gateway without the service, "
            "reading user infos one by one",
            address=ADDRESS_GATEWAY,
        )
        for group in self.plan.groups:
            group.infos_without_multi()
        cycle.index = 0  # re-run this cycle with the single reads
        cycle.multi_buf.clear()
        cycle.multi_times.clear()
        cycle.multi_reqs.clear()
        self._concat_cache.clear()

    def _ok(self, request: Request, t_ms: int) -> None:
        failing = self._failing.pop(request, None)
        if failing is not None:
            since, count = failing
            point = request.points[0] if request.values == 1 else None
            self.event(
                "resumed",
                f"{_describe(request)} answered again after {count} failed attempt(s) "
                f"over {(t_ms - since) / 1000:.1f} s",
                address=point.address if point else request.dst,
                number=point.number if point else None,
                time_ms=t_ms,
            )

    def _fail(self, request: Request, kind: str, detail: str) -> None:
        """Record the first failure of a request; repeated failures only count."""
        if kind == "timeout":
            self.stats.timeouts += 1
        elif kind == "device_error":
            self.stats.device_errors += 1
        self.stats.last_error = f"{_describe(request)}: {detail}"
        t = now_ms()
        failing = self._failing.get(request)
        if failing is not None:
            self._failing[request] = (failing[0], failing[1] + 1)
            return
        self._failing[request] = (t, 1)
        point = request.points[0] if request.values == 1 else None
        self.event(
            kind,
            f"{_describe(request)}: {detail}",
            address=point.address if point else request.dst,
            number=point.number if point else None,
            time_ms=t,
        )

    def _param_row(self, request: Request, frame: bytes, t_ms: int) -> dict:
        point = request.points[0]
        data = frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE]
        value: float | None = None
        text: str | None = None
        try:
            raw = codec.unpack_value(point.format, data)
        except XcomError as exc:
            text = f"undecodable: {exc}"
        else:
            if isinstance(raw, str):
                text = raw
            elif isinstance(raw, bytes):
                text = raw.hex()
            else:
                value = float(raw)
                text = self._label(point, raw)
        self.stats.parameters += 1
        return {
            "time_ms": t_ms,
            "address": point.address,
            "number": point.number,
            "value": value,
            "text": text,
        }

    def _label(self, point, raw) -> str | None:
        try:
            dp = self.catalog.get(point.number, family=point.family)
            return self.catalog.label(dp, raw)
        except Exception:  # noqa: BLE001 - a label is a nicety
            return None

    def _flush_cycle(self, cycle: _Cycle) -> None:
        """Decode what a cycle gathered in one batch and queue it for the writer."""
        site = self.site.name
        if cycle.multi_reqs:
            buffer = bytes(cycle.multi_buf)
            reqs = cycle.multi_reqs
            times = np.asarray(cycle.multi_times, dtype=np.int64)
            frame_idx, ids, aggs, values, counts = _decode_multi(buffer)
            key = tuple(id(r) for r in reqs)
            cached = self._concat_cache.get(key)
            if cached is None:
                exp_ids = np.concatenate([r.ids for r in reqs])
                exp_addr = np.concatenate([r.addresses for r in reqs])
                # where the status line's datapoints sit in these columns, found once
                spots = [
                    (k, int(hit[-1]))
                    for k in self._status_keys
                    if (hit := np.flatnonzero((exp_addr == k[0]) & (exp_ids == k[1]))).size
                ]
                cached = (
                    exp_ids,
                    np.concatenate([r.aggregations for r in reqs]),
                    exp_addr,
                    spots,
                )
                if len(self._concat_cache) > 64:
                    self._concat_cache.clear()
                self._concat_cache[key] = cached
            exp_ids, exp_aggs, exp_addr, spots = cached
            if (
                len(counts) == len(reqs)
                and ids.shape == exp_ids.shape
                and np.array_equal(ids, exp_ids)
                and np.array_equal(aggs, exp_aggs)
            ):
                addresses = exp_addr
                numbers = exp_ids
                item_times = np.repeat(times, counts)
                last = self.stats.last
                for k, i in spots:
                    last[k] = (int(item_times[i]), float(values[i]))
            else:
                addresses, numbers, values, item_times = _map_items(
                    reqs, times, frame_idx, ids, aggs, values, counts
                )
                if self._status_keys:
                    self._remember(item_times, addresses, numbers, values)
            if len(values):
                self.writer.append_values(site, item_times, addresses, numbers, values)
                self.stats.values += len(values)
            cycle.multi_buf = bytearray()
            cycle.multi_times = []
            cycle.multi_reqs = []
        if cycle.single_t:
            t = np.asarray(cycle.single_t, dtype=np.int64)
            a = np.asarray(cycle.single_a, dtype=np.uint16)
            n = np.asarray(cycle.single_n, dtype=np.uint16)
            v = np.asarray(cycle.single_v, dtype=np.float32)
            self.writer.append_values(site, t, a, n, v)
            self.stats.values += len(v)
            if self._status_keys:
                self._remember(t, a, n, v)
            cycle.single_t, cycle.single_a, cycle.single_n, cycle.single_v = [], [], [], []
        if cycle.params:
            self.writer.append_parameters(site, cycle.params)
            cycle.params = []

    def _remember(self, t, a, n, v) -> None:
        """Keep the newest value of each status-line datapoint among these columns."""
        last = self.stats.last
        for address, number in self._status_keys:
            hit = np.flatnonzero((a == address) & (n == number))
            if hit.size:
                i = hit[-1]
                last[(address, number)] = (int(t[i]), float(v[i]))

    # -- messages ----------------------------------------------------------------------------

    async def _read_messages(self, transport) -> None:
        """Read the newest messages, newest first, until one already seen (section 4.6).

        Index 0 is the newest and sets the gateway's pointer; index i is then the i-th
        before it; ``total`` in the answer to index 0 counts those still older.
        """
        assert self.plan is not None
        rows = []
        index = 0
        for _ in range(MESSAGES_PER_ROUND):
            request = self.plan.message_request(index)
            kind, frame, t_ms = await self._exchange(transport, request, notice_messages=False)
            if kind != OK:
                if kind == ERROR:
                    self.event(
                        "device_error",
                        f"message read refused: {error_name(t_ms)}",
                        address=ADDRESS_GATEWAY,
                    )
                break
            data = frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE]
            if len(data) != MESSAGE_DATA_SIZE:
                break
            msg = codec.decode_message(data)
            key = (msg.source, msg.timestamp, msg.message_type)
            if key in self._seen_messages:
                break
            self._seen_messages[key] = None
            if len(self._seen_messages) > 4096:
                for old in list(self._seen_messages)[:1024]:
                    del self._seen_messages[old]
            info = self.catalog.messages.get(msg.message_type) if self._has_messages() else None
            rows.append(
                {
                    "time_ms": int(msg.timestamp) * 1000,
                    "logged_ms": t_ms,
                    "address": msg.source & 0xFFFF,
                    "number": msg.message_type,
                    "text": info.text if info else f"message {msg.message_type}",
                    "severity": info.severity if info else None,
                    "total": msg.total,
                }
            )
            if msg.total <= 0:
                break  # no older message is stored
            # reading index 0 set the gateway's pointer; index i is the i-th message before it
            index += 1
        if rows:
            self.stats.messages += len(rows)
            self.writer.append_messages(self.site.name, rows)

    def _has_messages(self) -> bool:
        try:
            return bool(self.catalog.messages)
        except Exception:  # noqa: BLE001
            return False

    # -- one exchange ------------------------------------------------------------------------

    async def _exchange(
        self,
        transport,
        request: Request,
        *,
        quiet: bool = False,
        notice_messages: bool = True,
        sent_at: float | None = None,
        service: int = _READ,  # MQTT: writes wait for a WRITE answer
    ):
        """Send ``request`` and wait for its answer: (OK, frame, t_ms), (ERROR, None, code)
        (TIMEOUT, None, 0) or (DAMAGED, None, 0). Retries after a timeout, a damaged answer
        (at once, without waiting for the timeout) or a busy gateway. ``sent_at``
        (time.monotonic()) says a burst already sent it: the first attempt only waits."""
        monotonic = time.monotonic  # not the loop's clock: asking for the loop costs a syscall
        src = self.site.src
        timeout = self.site.timeout
        framer = self._framer
        stats = self.stats
        want_type = request.object_type
        want_id = request.object_id
        want_src = request.dst
        busy = damaged = False
        receive = transport.receive
        for attempt in range(1 + self.site.retries):
            busy = damaged = False
            if attempt == 0 and sent_at is not None:
                deadline = sent_at + timeout
            else:
                await transport.send(request.frame)
                stats.requests += 1
                deadline = monotonic() + timeout
            bad_before = framer.bad_frames
            remaining = deadline - monotonic()
            # bytes already waiting are read before a timeout is declared: on a busy
            # machine the rest of an answer can be queued while this task was not running
            while remaining > 0 or getattr(transport, "buffered", 0):
                chunk = await receive(max(remaining, 0.0))
                if not chunk:
                    remaining = deadline - monotonic()
                    continue
                t_ms = time.time_ns() // 1_000_000
                frames = framer.feed(chunk)
                if not frames and framer.bad_frames != bad_before and not framer.pending:
                    # a damaged frame came instead of the answer: no need to wait
                    damaged = True
                    stats.damaged_frames += 1
                    break
                for frame in frames:
                    fflags, fsrc, fdst, sflags, sid, otype, oid = _PEEK.unpack_from(frame)
                    if fdst != src or not sflags & _RESPONSE:
                        stats.foreign_frames += 1
                        continue
                    if otype != want_type or oid != want_id or fsrc != want_src or sid != service:
                        stats.stale_frames += 1
                        continue
                    self._answered(fflags, notice_messages)
                    if sflags & _ERROR:
                        code = (
                            _U16.unpack_from(frame, HEADER_SIZE + 10)[0]
                            if len(frame) >= HEADER_SIZE + 12 + CHECKSUM_SIZE
                            else 0
                        )
                        if code == _BUSY:
                            busy = True
                            break
                        return ERROR, None, code
                    return OK, frame, t_ms
                remaining = deadline - monotonic()
                if busy:
                    break  # resend at once (the gateway saves its datalog)
        if busy:
            return ERROR, None, int(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
        if damaged:
            return DAMAGED, None, 0
        if not quiet:
            self._silent += 1
            if self._silent >= SILENT_LIMIT:
                self._silent = 0
                raise LinkError(f"no answer to {SILENT_LIMIT} requests in a row")
        return TIMEOUT, None, 0

    def _answered(self, fflags: int, notice_messages: bool) -> None:
        """Book-keeping for an answer to our request: counters and the frame flags."""
        self._flags(fflags, notice_messages)
        self.stats.frames += 1
        self._silent = 0
        self._answered_since_open = True

    def _flags(self, fflags: int, notice_messages: bool) -> None:
        restarted = bool(fflags & _RESTARTED)
        if restarted and self._restart_flag is not True:
            detail = (
                "gateway restart flag is set (it restarted before this logger started)"
                if self._restart_flag is None
                else "gateway restarted (restart flag set)"
            )
            self.event("restart", detail, address=ADDRESS_GATEWAY)
        self._restart_flag = restarted
        if notice_messages and fflags & _MESSAGE_PENDING:
            self._messages_due = True


def _map_items(reqs, times, frame_idx, ids, aggs, values, counts):
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


def _number(fmt: Format | None, data: bytes) -> float:
    """A single read's value as a float (NaN if it cannot be read in its format)."""
    try:
        value = codec.unpack_value(fmt if fmt is not None else Format.FLOAT, data)
    except XcomError:
        return math.nan
    if isinstance(value, (bytes, str)):
        return math.nan
    return float(value)


def _describe(request: Request) -> str:
    if request.kind == MULTI:
        return f"multi-info of {request.values} values"
    if request.kind == MESSAGE:
        return f"message {request.object_id}"
    point = request.points[0]
    what = "info" if request.kind == INFO else "parameter"
    return f"{what} {point.number} of {device_name(point.address)}"


def _single_info_request(
    number: int, address: int, src: int, *, multi_probe: bool = False
) -> Request:
    """A one-off request used by the scan (not part of the plan)."""
    if multi_probe:
        frame = codec.encode_multi_info_request([(number, 1)], src=src, dst=ADDRESS_GATEWAY)
        from ..protocol import MULTI_INFO_OBJECT_ID

        return Request(
            MULTI,
            frame,
            ADDRESS_GATEWAY,
            int(ObjectType.MULTI_INFO),
            MULTI_INFO_OBJECT_ID,
            int(Property.VALUE),
            0,
            (),
        )
    frame = codec.encode_request(
        Service.READ, ObjectType.USER_INFO, number, Property.VALUE, src=src, dst=address
    )
    return Request(
        INFO, frame, address, int(ObjectType.USER_INFO), number, int(Property.VALUE), 0, ()
    )


# --- the whole logger -------------------------------------------------------------------------


class Logger:
    """Every site of a configuration, concurrently, into one DatasetWriter."""

    def __init__(
        self,
        config: LoggerConfig,
        *,
        writer=None,
        catalog=None,
        transport_factory: Callable[[str], object] | None = None,
    ) -> None:
        self.config = config
        self._own_writer = writer is None
        if writer is None:
            from ..dataset import DatasetWriter

            writer = DatasetWriter(
                config.out,
                flush_interval=config.flush_interval,
                rotate_interval=config.rotate_interval,
                publish_interval=config.publish_interval,
            )
        self.mqtt = None  # MQTT: an MqttBridge fed through the writer
        if config.mqtt is not None:
            from ..mqtt.bridge import MqttBridge
            from ..mqtt.writer_tee import MqttWriterTee

            self.mqtt = MqttBridge(config.mqtt, catalog=catalog, write=self._mqtt_write)
            writer = MqttWriterTee(writer, self.mqtt)
        self.writer = writer
        self.sites = [
            SiteLogger(site, writer, catalog, transport_factory=transport_factory)
            for site in config.sites
        ]
        self.started = time.time()
        self.error: BaseException | None = None
        self.failed: dict[str, BaseException] = {}

    async def _mqtt_write(self, site: str, address: int, number: int, value, flash: bool) -> None:
        """MQTT: a write asked over MQTT goes out on that site's link."""
        await next(s for s in self.sites if s.site.name == site).write_param(
            address, number, value, flash
        )

    def totals(self) -> dict[str, float]:
        """Sums of the site counters, plus the run time."""
        out: dict[str, float] = {"elapsed": time.time() - self.started}
        for name in (
            "values",
            "frames",
            "requests",
            "timeouts",
            "device_errors",
            "damaged_frames",
            "missed",
            "link_drops",
            "messages",
            "parameters",
        ):
            out[name] = sum(getattr(s.stats, name) for s in self.sites)
        return out

    async def run(
        self, stop: asyncio.Event | None = None, *, duration: float | None = None
    ) -> None:
        """Run every site until ``stop`` is set (or ``duration`` seconds passed).

        Raises ConfigError before polling when a site's configured devices and points do
        not compile; StorageError (the disk refuses rows) after stopping every site
        cleanly; a ConfigError found after a scan when no site is left running.
        """
        stop = stop or asyncio.Event()
        for site in self.sites:
            site.check()  # configuration mistakes stop everything before any link opens
        self.started = time.time()
        self.failed: dict[str, BaseException] = {}
        for site in self.sites:
            site.event("start", f"xcomlog logger, site link {site.site.link}")
        if self.mqtt is not None:  # MQTT: bad credentials or TLS stop us before polling
            await self.mqtt.check()
        tasks = [
            asyncio.create_task(self._guard(site, stop), name=f"site-{site.site.name}")
            for site in self.sites
        ]
        mqtt_task, mqtt_stop = None, asyncio.Event()  # MQTT: stops after the sites' last rows
        if self.mqtt is not None:
            mqtt_task = asyncio.create_task(self.mqtt.run(mqtt_stop), name="mqtt")
        timer = None
        if duration is not None:
            timer = asyncio.get_running_loop().call_later(duration, stop.set)
        watcher = asyncio.create_task(self._watch_writer(stop))
        try:
            await asyncio.gather(*tasks)
        finally:
            watcher.cancel()
            if timer is not None:
                timer.cancel()
            for task in tasks:
                if not task.done():
                    task.cancel()
            if mqtt_task is not None:  # MQTT: publishes the last rows, says offline, disconnects
                mqtt_stop.set()
                await mqtt_task
            for site in self.sites:
                try:
                    site.event(
                        "stop",
                        "logger stopped" if self.error is None else f"logger stopped: {self.error}",
                    )
                except StorageError:
                    pass
        if self.error is not None:
            raise self.error

    async def _watch_writer(self, stop: asyncio.Event, period: float = 0.5) -> None:
        """A writer whose thread died stops the logger with its error, even while no
        site appends a row (a long interval, a link down)."""
        while not stop.is_set():
            try:
                self.writer.raise_if_failed()
            except StorageError as exc:
                if self.error is None:
                    self.error = exc
                stop.set()
                return
            try:
                await asyncio.wait_for(stop.wait(), period)
            except asyncio.TimeoutError:
                pass

    async def _guard(self, site: SiteLogger, stop: asyncio.Event) -> None:
        """Run one site. A full or unwritable disk stops every site; a site whose scanned
        devices match nothing it should log stops alone (the others go on), unless it
        was the last one running."""
        try:
            await site.run(stop)
        except StorageError as exc:
            if self.error is None:
                self.error = exc
            stop.set()
        except ConfigError as exc:
            site.stats.state = "stopped: configuration"
            site.stats.last_error = str(exc)
            log.error("site %s stopped: %s", site.site.name, exc)
            self.failed[site.site.name] = exc
            site.event("config_error", f"site stopped: {exc}")
            if len(self.failed) == len(self.sites):
                if self.error is None:
                    self.error = exc
                stop.set()

    def close(self) -> None:
        """Flush and compact the dataset (when this logger created the writer)."""
        if self._own_writer:
            self.writer.close()


def run_logger(
    config: LoggerConfig, *, duration: float | None = None, status: Callable | None = None, **kwargs
) -> Logger:
    """Run a configuration in a fresh event loop until Ctrl-C, SIGTERM or ``duration``."""
    import signal

    logger = Logger(config, **kwargs)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / Windows
                pass
        ticker = None
        if status is not None:
            ticker = asyncio.create_task(_status_task(logger, status, stop))
        try:
            await logger.run(stop, duration=duration)
        finally:
            stop.set()
            if ticker is not None:
                await ticker

    try:
        asyncio.run(main())
    finally:
        logger.close()
    return logger


async def _status_task(
    logger: Logger, callback: Callable, stop: asyncio.Event, period: float = 1.0
) -> None:
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), period)
        except asyncio.TimeoutError:
            pass
        callback(logger)


async def _close_quietly(transport) -> None:
    try:
        await transport.close()
    except Exception:  # noqa: BLE001 - closing a broken link may fail too
        pass


__all__ = ["Framer", "Logger", "SiteLogger", "SiteStats", "run_logger", "now_ms"]
