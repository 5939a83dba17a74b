"""The Xcom request/response logic, written once, free of I/O.

Every operation is a generator that yields I/O commands (``Send``, ``Receive``,
``Sleep``, ``Reconnect``) and receives their results; ``run_sync`` drives it with a
blocking transport and ``run_async`` with an asyncio one. So the blocking and the
asyncio clients share one implementation of matching, timeouts, retries, GATEWAY_BUSY
waits, reconnects and the polite mode, and it can be tested without any link at all.

Matching (section 4 of the specification): a frame answers the pending request only if
it is a response, to our source address, from the addressed device, with the same
service, object type, object id and property id (file transfers answer with their own
property ids). Everything else (frames of another client on a shared Moxa, late
answers to requests that timed out, junk) is skipped and counted, never taken for ours.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from . import codec
from .exceptions import DeviceError, LinkError, XcomError, XcomTimeout
from .protocol import (
    ADDRESS_BROADCAST,
    ADDRESS_DTE,
    ADDRESS_GATEWAY,
    RESPONSE_TIMEOUT_S,
    ErrorCode,
    FrameFlag,
    ObjectType,
    Service,
    ServiceFlag,
    device_name,
    family_of_address,
    is_multicast,
    is_phase,
)
from .records import Frame

log = logging.getLogger("xcomlog.session")

T = TypeVar("T")


# --- I/O commands -----------------------------------------------------------------------


class Send:
    """Write ``data`` to the link."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class Receive:
    """Return the bytes that arrive within ``timeout`` seconds (``b""`` if none)."""

    __slots__ = ("timeout",)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


class Sleep:
    """Pause for ``seconds``."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class Reconnect:
    """Re-establish a broken link within ``timeout`` seconds."""

    __slots__ = ("timeout",)

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout


Command = Send | Receive | Sleep | Reconnect
#: An operation: yields commands, gets their results back, returns its value.
Operation = Generator[Command, Any, T]


def run_sync(transport: Any, operation: Operation[T]) -> T:
    """Drive ``operation`` with a blocking transport; returns its value."""
    value: Any = None
    error: BaseException | None = None
    receive = transport.receive
    try:
        while True:
            try:
                command = operation.throw(error) if error is not None else operation.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            kind = type(command)
            try:
                if kind is Receive:
                    value = receive(command.timeout)
                elif kind is Send:
                    transport.send(command.data)
                elif kind is Sleep:
                    if command.seconds > 0:
                        time.sleep(command.seconds)
                elif kind is Reconnect:
                    transport.reconnect(command.timeout)
                else:  # pragma: no cover - a programming error
                    raise TypeError(f"unknown I/O command {command!r}")
            except LinkError as exc:
                error = exc
    finally:
        operation.close()


async def run_async(transport: Any, operation: Operation[T]) -> T:
    """Drive ``operation`` with an asyncio transport; returns its value."""
    value: Any = None
    error: BaseException | None = None
    receive = transport.receive
    try:
        while True:
            try:
                command = operation.throw(error) if error is not None else operation.send(value)
            except StopIteration as stop:
                return stop.value
            value = error = None
            kind = type(command)
            try:
                if kind is Receive:
                    value = await receive(command.timeout)
                elif kind is Send:
                    await transport.send(command.data)
                elif kind is Sleep:
                    await asyncio.sleep(command.seconds)
                elif kind is Reconnect:
                    await transport.reconnect(command.timeout)
                else:  # pragma: no cover
                    raise TypeError(f"unknown I/O command {command!r}")
            except LinkError as exc:
                error = exc
    finally:
        operation.close()


# --- Requests ----------------------------------------------------------------------------


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


@dataclass(eq=False)
class Request:
    """One request frame and what its answer must look like."""

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

    def matches(self, frame: Frame) -> bool:
        """True if ``frame`` is the answer to this request."""
        if not frame.service_flags & ServiceFlag.RESPONSE:
            return False
        if (
            frame.service_id != self.service_id
            or frame.object_type != self.object_type
            or frame.object_id != self.object_id
            or frame.dst != self.src
        ):
            return False
        if self.response_properties is None:
            if frame.property_id != self.property_id:
                return False
        elif frame.property_id not in self.response_properties:
            return False
        if frame.src != self.dst and not self._source_ok(frame):
            return False
        if self.check is not None and not frame.service_flags & ServiceFlag.ERROR:
            return self.check(frame)
        return True

    def _source_ok(self, frame: Frame) -> bool:
        dst = self.dst
        if dst == ADDRESS_BROADCAST:
            return True
        if is_multicast(dst) or is_phase(dst):
            family = family_of_address(dst)
            if family is not None and family_of_address(frame.src) == family:
                return True
        # The gateway itself reports some errors (device not found, busy).
        return bool(frame.service_flags & ServiceFlag.ERROR) and frame.src == ADDRESS_GATEWAY


# --- Polite mode ---------------------------------------------------------------------------


def _parse_clock(text: str) -> dt.time:
    try:
        hours, minutes = text.strip().split(":")
        return dt.time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"invalid time {text!r}: use HH:MM") from None


@dataclass
class PolitePolicy:
    """Leave a link shared with the Studer portal free often enough.

    ``quiet``: windows of local time (start, end) during which no request is sent (the
    portal uploads around midnight); a window may cross midnight. ``duty_cycle``: the
    largest fraction of time the link may be busy with our requests (1.0: no limit); after
    an exchange that took t seconds we stay silent t * (1 - d) / d seconds. ``tz``: IANA
    zone of the quiet windows (the machine's local time if None).
    """

    quiet: Sequence[tuple[dt.time, dt.time]] = ((dt.time(23, 50), dt.time(0, 20)),)
    duty_cycle: float = 1.0
    tz: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.duty_cycle <= 1.0:
            raise ValueError(f"duty cycle must be in (0, 1], got {self.duty_cycle}")
        self.quiet = tuple(
            (
                _parse_clock(a) if isinstance(a, str) else a,
                _parse_clock(b) if isinstance(b, str) else b,
            )
            for a, b in self.quiet
        )
        self._zone: Any = None
        if self.tz:
            from zoneinfo import ZoneInfo

            self._zone = ZoneInfo(self.tz)

    @classmethod
    def parse(
        cls, quiet: str | Iterable[str] = (), duty_cycle: float = 1.0, tz: str | None = None
    ) -> PolitePolicy:
        """From text: ``"23:50-00:20"`` (several separated by commas)."""
        if isinstance(quiet, str):
            quiet = [q for q in quiet.split(",") if q.strip()]
        windows = []
        for item in quiet:
            start, sep, end = item.partition("-")
            if not sep:
                raise ValueError(f"invalid quiet window {item!r}: use HH:MM-HH:MM")
            windows.append((_parse_clock(start), _parse_clock(end)))
        return cls(quiet=tuple(windows), duty_cycle=duty_cycle, tz=tz)

    def quiet_remaining(self, now: dt.datetime | None = None) -> float:
        """Seconds until the current quiet window ends (0 outside every window)."""
        if not self.quiet:
            return 0.0
        if now is None:
            now = dt.datetime.now(self._zone) if self._zone else dt.datetime.now()
        today = now.replace(second=0, microsecond=0)
        clock = now.time()
        best = 0.0
        for start, end in self.quiet:
            if start <= end:
                inside = start <= clock < end
                end_at = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
            else:  # crosses midnight
                inside = clock >= start or clock < end
                end_at = today.replace(hour=end.hour, minute=end.minute)
                if clock >= start:
                    end_at += dt.timedelta(days=1)
            if inside:
                best = max(best, (end_at - now).total_seconds())
        return best

    def idle_after(self, busy_seconds: float) -> float:
        """Silence owed after an exchange that kept the link busy ``busy_seconds``."""
        if self.duty_cycle >= 1.0:
            return 0.0
        return busy_seconds * (1.0 - self.duty_cycle) / self.duty_cycle


# --- Statistics ----------------------------------------------------------------------------


@dataclass
class SessionStats:
    """Counters of one link's traffic; ``as_dict()`` adds the frame decoder's."""

    requests: int = 0
    sends: int = 0
    responses: int = 0
    retries: int = 0
    timeouts: int = 0
    damaged_answers: int = 0
    busy: int = 0
    device_errors: int = 0
    link_errors: int = 0
    reconnects: int = 0
    unmatched_frames: int = 0
    stale_frames: int = 0
    polite_wait_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


# --- The session -----------------------------------------------------------------------------

_RETRYABLE_DEVICE_ERRORS = frozenset({ErrorCode.RESPONSE_TIMEOUT})


class Session:
    """Per-link protocol state: decoder, policy, counters and the last frame flags.

    One request is outstanding at a time (the protocol has no pipelining). ``timeout``
    is per attempt (the specification's 2 s); a request is sent at most ``retries`` + 1
    times (timeouts, broken links, the device's RESPONSE_TIMEOUT), with exponential
    backoff from ``backoff`` seconds; GATEWAY_BUSY answers are waited out (``busy_delay``
    between tries, ``busy_timeout`` in all) without using up retries.
    """

    def __init__(
        self,
        *,
        src: int = ADDRESS_DTE,
        timeout: float = RESPONSE_TIMEOUT_S,
        retries: int = 2,
        backoff: float = 0.05,
        backoff_max: float = 2.0,
        busy_delay: float = 0.25,
        busy_timeout: float = 30.0,
        reconnect_timeout: float = 10.0,
        polite: PolitePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.src = src
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.backoff_max = float(backoff_max)
        self.busy_delay = float(busy_delay)
        self.busy_timeout = float(busy_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        #: Retry at once when a damaged frame (bad checksum) arrives instead of the answer.
        self.retry_damaged = True
        self.polite = polite
        self.clock = clock
        self.decoder = codec.StreamDecoder()
        self.stats = SessionStats()
        self.last_frame_flags: FrameFlag | None = None
        #: True/False once known whether the gateway answers multi-info requests.
        self.multi_info_supported: bool | None = None
        #: Sends the last exchange needed (1 when the first try was answered).
        self.last_attempts = 0
        #: Seconds after a timeout during which stray input is discarded before a request.
        self.late_window = max(10.0, 4 * self.timeout)
        self._drain_until = 0.0
        self._broken = False
        self._idle_until = 0.0

    # Frame flags ---------------------------------------------------------------------------
    @property
    def messages_pending(self) -> bool:
        return bool(self.last_frame_flags and self.last_frame_flags & FrameFlag.MESSAGE_PENDING)

    @property
    def restarted(self) -> bool:
        return bool(self.last_frame_flags and self.last_frame_flags & FrameFlag.RESTARTED)

    @property
    def sd_card_present(self) -> bool:
        return bool(self.last_frame_flags and self.last_frame_flags & FrameFlag.SD_CARD_PRESENT)

    def mark_broken(self) -> None:
        """Make the next exchange re-establish the link first."""
        self._broken = True

    def stats_dict(self) -> dict[str, float]:
        out = self.stats.as_dict()
        for key, value in self.decoder.stats().items():
            out[f"decoder_{key}"] = value
        return out

    # Exchange ------------------------------------------------------------------------------
    def exchange(
        self,
        request: Request,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        retry_request: Request | None = None,
    ) -> Operation[Frame]:
        """Send ``request`` and return its matching answer (a successful response).

        Raises XcomTimeout when no answer came after every try, DeviceError for an error
        answer, LinkError when the link cannot be re-established. ``retry_request`` is
        sent instead of ``request`` on the second and later tries.
        """
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        yield from self._polite_wait()
        self.stats.requests += 1
        attempt = 0
        sends = 0
        busy_since: float | None = None
        started = self.clock()
        current = request
        try:
            while True:
                failure: XcomError
                try:
                    if self._broken:
                        yield Reconnect(self.reconnect_timeout)
                        self._broken = False
                        self.decoder.reset()
                        self.stats.reconnects += 1
                    if self._drain_until and self.clock() < self._drain_until:
                        yield from self._drain()
                    sends += 1
                    self.stats.sends += 1
                    yield Send(current.frame)
                    frame = yield from self._wait_for(current, timeout)
                except LinkError as exc:
                    self._broken = True
                    self._drain_until = self.clock() + self.late_window
                    self.stats.link_errors += 1
                    log.debug("link error during %s: %s", current.describe(), exc)
                    failure = exc
                else:
                    if frame is None or frame is False:
                        if frame is None:
                            self.stats.timeouts += 1
                            # Its answer may still come: discard what arrives before the
                            # next requests for a while, so it is never taken for theirs.
                            self._drain_until = self.clock() + self.late_window
                            what = f"no answer to {current.describe()} within {timeout:g} s"
                        else:
                            self.stats.damaged_answers += 1
                            what = f"no valid answer to {current.describe()} (damaged frame)"
                        failure = XcomTimeout(what + (f" ({sends} tries)" if sends > 1 else ""))
                    else:
                        self.last_frame_flags = FrameFlag(frame.frame_flags)
                        if not frame.service_flags & ServiceFlag.ERROR:
                            self.stats.responses += 1
                            return frame
                        code = frame.error_code or 0
                        if code == ErrorCode.SCOM_ERROR_GATEWAY_BUSY:
                            self.stats.busy += 1
                            now = self.clock()
                            if busy_since is None:
                                busy_since = now
                            if now - busy_since < self.busy_timeout:
                                yield Sleep(self.busy_delay)
                                continue
                            self.stats.device_errors += 1
                            raise DeviceError(
                                code,
                                f"{current.describe()}: still busy after {self.busy_timeout:g} s",
                            )
                        if code not in _RETRYABLE_DEVICE_ERRORS or attempt >= retries:
                            self.stats.device_errors += 1
                            raise DeviceError(code, current.describe())
                        failure = DeviceError(code, current.describe())
                if attempt >= retries:
                    raise failure
                attempt += 1
                self.stats.retries += 1
                if retry_request is not None:
                    current = retry_request
                delay = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
                if delay > 0:
                    yield Sleep(delay)
        finally:
            self.last_attempts = sends
            end = self.clock()
            if self.polite is not None:
                self._idle_until = end + self.polite.idle_after(end - started)

    def _damaged(self) -> int:
        decoder = self.decoder
        return decoder.data_errors + decoder.header_errors + decoder.length_errors

    def _wait_for(self, request: Request, timeout: float) -> Operation[Frame | bool | None]:
        """Receive until a frame matches ``request``.

        Returns the frame; None on timeout; False when a damaged frame arrived and
        nothing else is pending (most likely our answer, corrupted on the line: retrying
        at once beats waiting for the timeout, and a repeated request is harmless).
        """
        clock = self.clock
        deadline = clock() + timeout
        decoder = self.decoder
        damaged = self._damaged()
        while True:
            remaining = deadline - clock()
            if remaining <= 0:
                return None
            chunk = yield Receive(remaining)
            if not chunk:
                continue
            found: Frame | None = None
            for frame in decoder.feed(chunk):
                if found is None and request.matches(frame):
                    found = frame
                else:
                    self.stats.unmatched_frames += 1
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("skipped a frame that is not the answer: %s", frame)
            if found is not None:
                return found
            if self.retry_damaged and self._damaged() != damaged and not decoder.pending:
                return False

    def _drain(self) -> Operation[None]:
        """Discard whatever arrived since the last answer (late answers, other clients)."""
        for _ in range(64):
            chunk = yield Receive(0.0)
            if not chunk:
                return
            frames = self.decoder.feed(chunk)
            if frames:
                self.stats.stale_frames += len(frames)
                log.debug("discarded %d frame(s) that arrived between requests", len(frames))

    def _polite_wait(self) -> Operation[None]:
        policy = self.polite
        if policy is None:
            return
        wait = max(0.0, self._idle_until - self.clock())
        quiet = policy.quiet_remaining()
        if quiet > 0:
            log.info("quiet window: pausing %.0f s to leave the link to the portal", quiet)
        wait = max(wait, quiet)
        if wait > 0:
            self.stats.polite_wait_s += wait
            yield Sleep(wait)


__all__ = [
    "Command",
    "Operation",
    "PolitePolicy",
    "Receive",
    "Reconnect",
    "Request",
    "Send",
    "Session",
    "SessionStats",
    "Sleep",
    "run_async",
    "run_sync",
]
