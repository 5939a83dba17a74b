"""The read loop: every site's link kept busy through the protocol engine, rows queued.

One asyncio task per site (``SiteLogger``): it opens the link (and reopens it with
backoff), scans the devices when asked, and polls the groups of its plan. A site sends
one request, waits for its answer (or the timeout) and sends the next at once: no sleep
inside a cycle. The groups of a site share its link; the shortest interval goes first
between requests (``scheduling``), so an hourly parameter snapshot never delays the 1 s
values. Every exchange goes through the engine (``xcomlog.engine.Session.run``); a run
of multi-info requests goes out as a ``Burst`` (``burst``), the engine's fast path.
Answers become columns (``columns``) for the DatasetWriter, whose own thread does every
disk write. Everything that leaves a hole in the data (missed interval, timeout, device
error, link drop, restart) becomes an event.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import codec
from ..engine import (
    DAMAGED,
    ERROR,
    OK,
    Outcome,
    Request,
    Session,
    describe_error,
    run_async,
)
from ..engine.requests import is_short_frame
from ..exceptions import ConfigError, LinkError, StorageError, XcomError
from ..protocol import (
    ADDRESS_GATEWAY,
    CHECKSUM_SIZE,
    FLAG_MESSAGE_PENDING,
    FLAG_RESTARTED,
    HEADER_SIZE,
    MESSAGE_DATA_SIZE,
    MULTI_INFO_OBJECT_ID,
    NO_MULTI_INFO_ERRORS,
    Family,
    MultiInfoFlag,
    ObjectType,
    Property,
    Service,
    device_name,
    error_name,
)
from .burst import Burst
from .columns import Cycle, decode_multi, map_items, single_value
from .config import STATUS_POINTS, DeviceSpec, LoggerConfig, SiteConfig
from .device_identity import device_columns, identify_site
from .param_writes import WriteQueue
from .plan import INFO, MESSAGE, MULTI, PARAM, PlannedRead, SitePlan, compile_plan
from .scheduling import GroupState, missed_from, next_tick

log = logging.getLogger("xcomlog.logger")

#: Messages read per notification at most (the gateway keeps hundreds).
MESSAGES_PER_ROUND = 16
#: Decode and queue a long cycle's answers at least every this many frames.
BATCH_FRAMES = 64
#: Seconds a site may take to end by itself after a stop before its work is cancelled.
STOP_GRACE_S = 0.5


def now_ms() -> int:
    """Wall-clock time in integer milliseconds since 1970 (UTC)."""
    return time.time_ns() // 1_000_000


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
        self.config = site
        self.writer = writer
        self._catalog = catalog
        self._factory = transport_factory
        self.open_timeout = site.connect_timeout if open_timeout is None else open_timeout
        self.stats = SiteStats()
        self.plan: SitePlan | None = None
        #: The protocol engine of this site's link (framing, matching, retries).
        self.engine = Session.for_logger(src=site.src, timeout=site.timeout, retries=site.retries)
        # polite mode is the engine's (quiet windows, duty cycle, the installation clock);
        # the logger records what it does as events
        self.engine.polite = site.polite
        self.engine.on_installation_clock = self._installation_clock
        self._failing: dict[Request, tuple[int, int]] = {}  # request -> (since ms, failures)
        self._restart_flag: bool | None = None
        self._messages_due = False
        self._seen_messages: dict[tuple[int, int, int], None] = {}
        self._status_keys: list[tuple[int, int]] = []
        self._concat_cache: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._stop: asyncio.Event | None = None
        #: Parameter writes asked over MQTT, sent between two poll requests.
        self.writes = WriteQueue()
        #: Identify the devices after the scan (model, firmware, serial, system voltage):
        #: on with MQTT, whose HA devices and writes need them.
        self.identify = False
        #: 12, 24 or 48 once the devices are identified (writes are validated for it).
        self.system_voltage: int | None = None

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
        log.info("%s: %s %s", self.config.name, kind, detail)
        self.writer.append_events(self.config.name, [row])

    def _transport(self):
        if self._factory is not None:
            return self._factory(self.config.link)
        from ..links import open_async_transport

        return open_async_transport(self.config.link)

    async def _sleep(self, seconds: float, *, writes: bool = False) -> None:
        """Sleep, waking early when the logger is asked to stop (or, with ``writes``, when
        a parameter write is queued: the poll loop sends it at once)."""
        if seconds <= 0:
            return
        stop = self._stop
        if stop is None:
            await asyncio.sleep(seconds)
            return
        if not writes:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
            except asyncio.TimeoutError:
                pass
            return
        waiters = [asyncio.ensure_future(stop.wait())]
        waiters.append(asyncio.ensure_future(self.writes.arrived.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # -- main loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set; return within about a second of it at any stage.

        Polling notices ``stop`` between requests and ends by itself (its cycles
        flushed); an open, a scan or an exchange still under way ``STOP_GRACE_S`` after
        the stop is cancelled (issue 15: a scan of a silent gateway took minutes).
        Raises StorageError / ConfigError (fatal) only.
        """
        work = asyncio.create_task(self._run(stop), name=f"work-{self.config.name}")
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not work.done():
                await asyncio.wait({work}, timeout=STOP_GRACE_S)
            if not work.done():
                log.debug("%s: stopping during %s", self.config.name, self.stats.state)
                work.cancel()
                await asyncio.wait({work})
            if not work.cancelled():
                work.result()  # StorageError / ConfigError
        finally:
            stopped.cancel()
            if not work.done():
                work.cancel()
            self.stats.state = "stopped"

    async def _run(self, stop: asyncio.Event) -> None:
        """The site's work: open, scan, poll; reopen with backoff.

        A broken link is reopened after a delay doubling from the first to the largest
        backoff (reset once answers flow again). Only the change from up to down is an
        event, so a gateway that stays away does not flood the events table.
        """
        self._stop = stop
        first, largest = self.config.backoff
        delay = first
        transport = self._transport()
        listening = self.config.link.lower().startswith("listen:")
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
                        raise LinkError(f"{self.config.link}: open timed out") from exc
                    opened_once = True
                    self.engine.link_opened()
                    link_up = True
                    self.event("link_up", self.config.link)
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
                        log.debug("%s: still down: %s", self.config.name, exc)
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
    _no_multi_info: int | None = None  # the error code the scan's multi-info probe got
    _single_reads = False  # the fallback to single reads happened (and is an event)
    _clock_reported: float | None = None  # installation clock offset the last event gave

    def check(self) -> None:
        """Compile the plan now when the devices are configured: a wrong datapoint is a
        ConfigError before any link opens (scanned sites are checked after their scan)."""
        if self.plan is None and self.config.devices is not None:
            self.plan = compile_plan(self.config, self.config.devices, self.catalog)

    async def _prepare(self, transport) -> None:
        """Find the devices (unless configured), compile the plan, describe the points."""
        if self.plan is None:
            devices = self.config.devices
            if devices is None:
                devices = await self.discover(transport)
                if not devices:
                    raise LinkError("no device answered the scan")
            self.plan = compile_plan(self.config, devices, self.catalog)
        # MQTT: model, firmware, serial (devices table, HA) and the system voltage for writes
        identities, self.system_voltage = await identify_site(self, transport, self.plan.devices)
        plan = self.plan
        if self._no_multi_info is not None:  # the scan's multi-info probe was refused
            self._use_single_reads(self._no_multi_info)
        self.writer.describe(self.config.name, plan.labels)
        self._prepared = True
        t = now_ms()
        self.writer.append_devices(
            self.config.name,
            [
                {
                    "time_ms": t,
                    "address": d.address,
                    "family": d.family.value,
                    "device": d.name,
                    **device_columns(identities.get(d.address)),
                    "detail": "configured" if self.config.devices is not None else "scanned",
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
        request = _probe_request(3000, ADDRESS_GATEWAY, self.config.src, multi_info=True)
        outcome = await self._exchange(transport, request, quiet=True)
        if outcome.kind == OK:
            data = outcome.frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE]
            if len(data) >= 4:
                flags = int.from_bytes(data[:4], "little")
        elif outcome.kind == ERROR and outcome.code in NO_MULTI_INFO_ERRORS:
            self._no_multi_info = outcome.code  # an older gateway: the plan reads one by one
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
            request = _probe_request(number, address, self.config.src)
            outcome = await self._exchange(transport, request, quiet=True)
            if outcome.kind == OK:
                found.append(DeviceSpec(address, family))
        names = ", ".join(d.name for d in found) or "none"
        self.event("scan", f"devices found: {names}")
        return tuple(found)

    # -- polling -----------------------------------------------------------------------------

    async def _poll(self, transport, stop: asyncio.Event) -> None:
        plan = self.plan
        assert plan is not None
        now = time.time()
        states = [GroupState(g, now) for g in plan.groups]  # first cycle at once
        polite = self.config.polite
        quiet_logged_until = 0.0
        # runs of multi-info requests go out in bursts, unless polite mode paces each one
        burst = polite is None or polite.duty_cycle >= 1.0
        try:
            while not stop.is_set():
                if self.writes:  # asked over MQTT: between two poll requests
                    await self.writes.send(self, transport)
                if self._messages_due and self.config.messages:
                    self._messages_due = False
                    await self._read_messages(transport)
                now = time.time()
                if polite is not None and polite.quiet:
                    if polite.clock_due(now):  # at start and hourly (bursts bypass run)
                        await run_async(transport, self.engine.read_installation_clock())
                    left = polite.quiet_remaining()
                    if left > 0:
                        if now >= quiet_logged_until:
                            quiet_logged_until = now + left
                            where = (
                                " (installation clock)" if polite.clock == "installation" else ""
                            )
                            self.event(
                                "quiet",
                                f"polite mode: quiet window{where}, polling paused {left:.0f} s",
                            )
                        self.stats.state = "quiet"
                        await run_async(transport, self.engine.polite_pause())
                        self.stats.state = "polling"
                        continue
                for st in states:
                    if st.cycle is None and now >= st.next_tick:
                        st.cycle = Cycle(st.group, st.next_tick)
                active = [st for st in states if st.cycle is not None]
                if not active:
                    wake = min(st.next_tick for st in states)
                    await self._sleep(wake - time.time(), writes=True)
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

    def _burst_end(self, transport, cycle: Cycle) -> int:
        """End of the run of multi-info requests a burst may send from ``cycle.index``
        (bounded by the batch size), or ``cycle.index`` when the link has unread bytes."""
        start = cycle.index
        if getattr(transport, "buffered", 1) or self.engine.framer.pending:
            return start
        requests = cycle.group.requests
        limit = min(len(requests), start + BATCH_FRAMES - len(cycle.multi_reqs))
        end = start
        while end < limit and requests[end].kind == MULTI:
            end += 1
        return end

    def _next_tick(self, st: GroupState, cycle: Cycle) -> float:
        """When the group runs next; intervals with no cycle started are missed events."""
        now = time.time()
        nxt, missed = next_tick(st.group, cycle.slot, now)
        if missed:
            interval = st.group.interval
            self.stats.missed += missed
            self.event(
                "missed",
                f"group {st.group.name!r}: {missed} interval(s) of {interval:g} s missed "
                f"(cycle took {now - cycle.slot:.2f} s for {st.group.values} values)",
                time_ms=int(missed_from(st.group, cycle.slot) * 1000),
            )
        return nxt

    async def _run_request(
        self, transport, request: PlannedRead, cycle: Cycle, sent_at: float | None = None
    ) -> None:
        # in polite mode the engine waits before the exchange (quiet window, duty cycle)
        outcome = await self._exchange(transport, request, sent_at=sent_at)
        cycle.index += 1
        kind = outcome.kind
        if kind == OK:
            frame, t_ms = outcome.frame, outcome.time_ms
            self._ok(request, t_ms)
            if request.kind == MULTI:
                cycle.add_multi(request, frame, t_ms)
            elif request.kind == INFO:
                point = request.points[0]
                value = single_value(point.format, frame[HEADER_SIZE + 10 : -CHECKSUM_SIZE])
                cycle.single_t.append(t_ms)
                cycle.single_a.append(point.address)
                cycle.single_n.append(point.number)
                cycle.single_v.append(value)
            elif request.kind == PARAM:
                cycle.params.append(self._param_row(request, frame, t_ms))
            return
        if kind == ERROR:
            code = outcome.code
            if request.kind == MULTI and code in NO_MULTI_INFO_ERRORS:
                self._use_single_reads(code, cycle)
                return
            detail = f"{error_name(code)} (0x{code:04X})"
            if is_short_frame(outcome.frame):  # issue 10: say what the short answer said
                detail = f"{describe_error(request, outcome).partition(': ')[2]}: {detail}"
            self._fail(request, "device_error", detail)
            return
        if kind == DAMAGED:
            self._fail(request, "bad_frame", "the answer arrived damaged (checksum)")
            return
        self._fail(request, "timeout", f"no answer within {self.config.timeout:g} s")

    def _use_single_reads(self, code: int, cycle: Cycle | None = None) -> None:
        """The gateway refused multi-info (firmware before 1.6.74): every group reads its
        user infos one by one from now on; one ``fallback`` event says so."""
        assert self.plan is not None
        if not self._single_reads:
            self._single_reads = True
            self.engine.multi_info_supported = False
            self.event(
                "fallback",
                f"multi-info refused with {error_name(code)}: gateway without the service "
                "(firmware before 1.6.74), reading user infos one by one",
                address=ADDRESS_GATEWAY,
            )
        for group in self.plan.groups:
            group.infos_without_multi()
        self._concat_cache.clear()
        if cycle is not None:
            cycle.index = 0  # re-run this cycle with the single reads
            cycle.multi_buf.clear()
            cycle.multi_times.clear()
            cycle.multi_reqs.clear()

    def _ok(self, request: PlannedRead, t_ms: int) -> None:
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

    def _fail(self, request: PlannedRead, kind: str, detail: str) -> None:
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

    def _param_row(self, request: PlannedRead, frame: bytes, t_ms: int) -> dict:
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

    def _flush_cycle(self, cycle: Cycle) -> None:
        """Decode what a cycle gathered in one batch and queue it for the writer."""
        site = self.config.name
        if cycle.multi_reqs:
            buffer = bytes(cycle.multi_buf)
            reqs = cycle.multi_reqs
            times = np.asarray(cycle.multi_times, dtype=np.int64)
            frame_idx, ids, aggs, values, counts = decode_multi(buffer)
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
                addresses, numbers, values, item_times = map_items(
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
            outcome = await self._exchange(transport, request, notice_messages=False)
            frame, t_ms = outcome.frame, outcome.time_ms
            if outcome.kind != OK:
                if outcome.kind == ERROR:
                    self.event(
                        "device_error",
                        f"message read refused: {error_name(outcome.code)}",
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
            self.writer.append_messages(self.config.name, rows)

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
    ) -> Outcome:
        """One exchange through the engine (``Session.run``): the request sent, its answer
        waited for, retried after a timeout, a damaged answer or a busy gateway.
        ``sent_at`` (time.monotonic()) says a burst already sent it: the first try only
        waits. Raises LinkError (link broken, or SILENT_LIMIT requests unanswered)."""
        engine = self.engine
        es = engine.stats
        before = (es.sends, es.unmatched_frames, es.foreign_frames, es.damaged_answers)
        try:
            outcome = await run_async(transport, engine.run(request, sent_at=sent_at, quiet=quiet))
        finally:
            stats = self.stats
            stats.requests += es.sends - before[0]
            foreign = es.foreign_frames - before[2]
            stats.foreign_frames += foreign
            stats.stale_frames += es.unmatched_frames - before[1] - foreign
            stats.damaged_frames += es.damaged_answers - before[3]
        if outcome.frame:
            self._answered(outcome.frame[1], notice_messages)
        return outcome

    def _installation_clock(self, offset: float, previous: float | None) -> None:
        """A reading of the installation clock {5002}: an event at the first one, and
        when its offset from UTC changed by a minute or more (DST, drift, a reset)."""
        reported = self._clock_reported
        if reported is not None and abs(offset - reported) < 60:
            return
        self._clock_reported = offset
        text = f"installation clock is UTC{_utc_offset(offset)}"
        if reported is not None:
            text += f" (was UTC{_utc_offset(reported)})"
        self.event("clock", f"{text}: quiet windows follow it", address=ADDRESS_GATEWAY)

    def _answered(self, fflags: int, notice_messages: bool) -> None:
        """Book-keeping for an answer to our request: counters and the frame flags."""
        self._flags(fflags, notice_messages)
        self.stats.frames += 1
        self._answered_since_open = True

    def _flags(self, fflags: int, notice_messages: bool) -> None:
        restarted = bool(fflags & FLAG_RESTARTED)
        if restarted and self._restart_flag is not True:
            detail = (
                "gateway restart flag is set (it restarted before this logger started)"
                if self._restart_flag is None
                else "gateway restarted (restart flag set)"
            )
            self.event("restart", detail, address=ADDRESS_GATEWAY)
        self._restart_flag = restarted
        if notice_messages and fflags & FLAG_MESSAGE_PENDING:
            self._messages_due = True


def _utc_offset(seconds: float) -> str:
    """``+02:00``, ``-03:30``, ``+00:00:17`` (drift shows its seconds)."""
    sign = "-" if seconds < 0 else "+"
    minutes, secs = divmod(int(abs(seconds)), 60)
    text = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{text}:{secs:02d}" if secs else text


def _describe(request: PlannedRead) -> str:
    if request.kind == MULTI:
        return f"multi-info of {request.values} values"
    if request.kind == MESSAGE:
        return f"message {request.object_id}"
    point = request.points[0]
    what = "info" if request.kind == INFO else "parameter"
    return f"{what} {point.number} of {device_name(point.address)}"


def _probe_request(number: int, address: int, src: int, *, multi_info: bool = False) -> Request:
    """A one-off read used by the scan (not part of the plan)."""
    if multi_info:
        frame = codec.encode_multi_info_request([(number, 1)], src=src, dst=ADDRESS_GATEWAY)
        return Request(
            Service.READ,
            ObjectType.MULTI_INFO,
            MULTI_INFO_OBJECT_ID,
            Property.VALUE,
            src=src,
            dst=ADDRESS_GATEWAY,
            frame=frame,
        )
    return Request(Service.READ, ObjectType.USER_INFO, number, Property.VALUE, src=src, dst=address)


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
            from ..storage.published_writer import open_dataset_writer

            writer = open_dataset_writer(
                config.out,
                journal=config.journal,
                layout=config.layout,
                writer_id=config.writer_id,
                flush_interval=config.flush_interval,
                rotate_interval=config.rotate_interval,
                publish_interval=config.publish_interval,
            )
        self.mqtt = None  # MQTT: an MqttBridge fed through the writer
        if config.mqtt is not None:
            from ..mqtt import MqttBridge, MqttWriterTee

            self.mqtt = MqttBridge(
                config.mqtt,
                catalog=catalog,
                write=self._mqtt_write,
                system_voltage=lambda name: self._site(name).system_voltage,
            )
            writer = MqttWriterTee(writer, self.mqtt)
        self.writer = writer
        self.sites = [
            SiteLogger(site, writer, catalog, transport_factory=transport_factory)
            for site in config.sites
        ]
        for site in self.sites:  # MQTT: HA devices and writes need model and system voltage
            site.identify = self.mqtt is not None
        self.started = time.time()
        self.error: BaseException | None = None
        self.failed: dict[str, BaseException] = {}

    def _site(self, name: str) -> SiteLogger:
        return next(s for s in self.sites if s.config.name == name)

    async def _mqtt_write(self, site: str, address: int, number: int, value, flash: bool) -> None:
        """MQTT: a validated write goes out on that site's link, between poll requests."""
        from .param_writes import write_request

        logger = self._site(site)
        devices = logger.plan.devices if logger.plan is not None else ()
        family = next((d.family for d in devices if d.address == address), None)
        catalog = logger.catalog
        dp = catalog.get(number, family) if family else catalog.at(number, address)
        request = write_request(dp, value, address=address, src=logger.config.src, flash=flash)
        cfg = logger.config
        await logger.writes.write(request, limit=2 * cfg.timeout * (1 + cfg.retries) + 10.0)

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
            site.event("start", f"xcomlog logger, site link {site.config.link}")
        if self.mqtt is not None:  # MQTT: bad credentials or TLS stop us before polling
            await self.mqtt.check()
        tasks = [
            asyncio.create_task(self._guard(site, stop), name=f"site-{site.config.name}")
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
            log.error("site %s stopped: %s", site.config.name, exc)
            self.failed[site.config.name] = exc
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


__all__ = ["Logger", "SiteLogger", "SiteStats", "run_logger", "now_ms"]
