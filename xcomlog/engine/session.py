"""The protocol engine of one link: framing, answer matching, retries, busy waits, timeouts.

``Session`` is sans-I/O. ``run`` is the one exchange: it sends a request, frames what
arrives (``framing``), picks out the answer (``Request.classify``), skips and counts
everything else (another client's frames, late answers to earlier requests, junk),
retries after a timeout or a damaged answer (at once: a repeated read is harmless),
waits out GATEWAY_BUSY, and gives up on a link after ``silent_limit`` requests in a row
went unanswered. It returns an ``Outcome``. ``exchange`` is the client's face of the same
exchange (a decoded Frame, or XcomTimeout / DeviceError / LinkError). ``take_answer`` is
the fast path: a plain call, no generator, that accepts a chunk which is exactly the
successful answer to the request in flight (the logger's burst sends its next request
from the link's data callback with it) and refuses anything else, which then goes
through ``run``.

What differs between the client and the logger is configuration, not code: the client
reconnects and retries after link errors, backs off between tries, waits out a busy
gateway for up to ``busy_timeout`` seconds and discards late input before its next
request; the logger (``Session.for_logger``) leaves link errors to its reconnect loop,
retries at once, counts a busy answer as one try and drops a link that stays silent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .. import codec
from ..exceptions import DeviceError, LinkError, XcomError, XcomTimeout
from ..protocol import (
    ADDRESS_DTE,
    ADDRESS_GATEWAY,
    CHECKSUM_SIZE,
    FLAG_ERROR,
    FLAG_MESSAGE_PENDING,
    FLAG_RESTARTED,
    FLAG_SD_CARD_PRESENT,
    HEADER_SIZE,
    PARAM_DATE,
    RESPONSE_TIMEOUT_S,
    RETRYABLE_ERRORS,
    SERVICE_HEADER_SIZE,
    ErrorCode,
    FrameFlag,
    ObjectType,
    Property,
    Service,
)
from ..records import Frame
from .driving import Operation, Receive, Reconnect, Send, Sleep
from .framing import Framer, is_whole_frame
from .polite import PolitePolicy
from .requests import ANSWER, FOREIGN, UNMATCHED, Request, is_short_frame

log = logging.getLogger("xcomlog.engine")

_BUSY = int(ErrorCode.SCOM_ERROR_GATEWAY_BUSY)
_SERVICE_FLAGS = HEADER_SIZE  # offset of the service flags byte in a frame

#: Outcome kinds.
OK, ERROR, TIMEOUT, DAMAGED, LINK_DOWN = 0, 1, 2, 3, 4


class Outcome(NamedTuple):
    """How one exchange ended.

    ``kind``: OK (``frame`` is the raw answer), ERROR (``code``: the device's error),
    TIMEOUT, DAMAGED (the last try's answer arrived damaged) or LINK_DOWN (``error``).
    ``time_ms``: wall-clock ms (UTC) when the answer arrived. ``sends``: tries made.
    """

    kind: int
    frame: bytes = b""
    time_ms: int = 0
    code: int = 0
    sends: int = 0
    damaged: int = 0
    error: XcomError | None = None


@dataclass
class SessionStats:
    """Counters of one link's traffic; ``as_dict()`` adds the framer's."""

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
    #: frames skipped while waiting for an answer (``foreign_frames`` is the part of
    #: them not addressed to us as responses)
    unmatched_frames: int = 0
    foreign_frames: int = 0
    #: frames discarded between requests (late answers after a timeout)
    stale_frames: int = 0
    polite_wait_s: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


class Session:
    """Per-link protocol state: framer, policy, counters and the last frame flags.

    One request is outstanding at a time (the protocol has no pipelining). ``timeout``
    is per attempt (the specification's 2 s); a request is sent at most ``retries`` + 1
    times (timeouts, damaged answers, broken links, the device's RESPONSE_TIMEOUT), with
    exponential backoff from ``backoff`` seconds. GATEWAY_BUSY answers are waited out
    (``busy_delay`` between tries, ``busy_timeout`` in all) without using up retries;
    with ``busy_timeout`` 0 a busy answer is one more failed try. ``link_retries``:
    a broken link is reopened and the request sent again (else the LinkError goes up).
    ``silent_limit``: after that many requests in a row without any answer the link is
    taken for dead (LinkError); 0 never.
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
        link_retries: bool = True,
        retryable_errors: frozenset[int] = RETRYABLE_ERRORS,
        silent_limit: int = 0,
        late_window: float | None = None,
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
        self.link_retries = link_retries
        self.retryable_errors = retryable_errors
        self.silent_limit = int(silent_limit)
        self.framer = Framer()
        self.stats = SessionStats()
        #: Frame flags of the last answer (a plain int), None before the first.
        self.last_flags: int | None = None
        #: True/False once known whether the gateway answers multi-info requests.
        self.multi_info_supported: bool | None = None
        #: Sends the last exchange needed (1 when the first try was answered).
        self.last_attempts = 0
        #: Seconds after a timeout during which stray input is discarded before a request.
        self.late_window = max(10.0, 4 * self.timeout) if late_window is None else late_window
        #: Requests in a row that went unanswered.
        self.silent = 0
        self._drain_until = 0.0
        self._broken = False
        self._idle_until = 0.0
        self._reading_clock = False
        #: Called with (offset, previous offset) after each reading of the installation clock.
        self.on_installation_clock: Callable[[float, float | None], None] | None = None

    @classmethod
    def for_logger(cls, *, src: int, timeout: float, retries: int) -> Session:
        """The logger's configuration: its own reconnect loop, tries at once, silent limit."""
        return cls(
            src=src,
            timeout=timeout,
            retries=retries,
            backoff=0.0,
            busy_delay=0.0,
            busy_timeout=0.0,
            link_retries=False,
            retryable_errors=frozenset(),
            silent_limit=SILENT_LIMIT,
            late_window=0.0,
        )

    # The installation's clock (polite mode in installation time) ----------------------------
    def read_installation_clock(self) -> Operation[float | None]:
        """Read {5002} and give the polite policy the installation clock's offset from
        UTC; returns it (None when the clock did not answer: tried again in a minute).
        ``on_installation_clock(offset, previous)`` hears of every reading."""
        policy = self.polite
        assert policy is not None
        policy.clock_read_at = time.time()
        # one short read, never held back by a window it is needed to place
        self._reading_clock = True
        try:
            outcome = yield from self.run(clock_request(self.src), quiet=True)
        finally:
            self._reading_clock = False
        if outcome.kind != OK:
            log.warning("could not read the installation clock {5002}: %s", _kind_name(outcome))
            return None
        data = outcome.frame[HEADER_SIZE + SERVICE_HEADER_SIZE : -CHECKSUM_SIZE]
        if len(data) != 4:
            log.warning("the installation clock {5002} answered %d bytes, not 4", len(data))
            return None
        previous = policy.installation_offset
        offset = policy.set_installation_clock(
            int.from_bytes(data, "little", signed=True), outcome.time_ms / 1000.0
        )
        if self.on_installation_clock is not None:
            self.on_installation_clock(offset, previous)
        return offset

    # Frame flags ---------------------------------------------------------------------------
    @property
    def last_frame_flags(self) -> FrameFlag | None:
        return None if self.last_flags is None else FrameFlag(self.last_flags)

    @property
    def messages_pending(self) -> bool:
        return bool(self.last_flags and self.last_flags & FLAG_MESSAGE_PENDING)

    @property
    def restarted(self) -> bool:
        return bool(self.last_flags and self.last_flags & FLAG_RESTARTED)

    @property
    def sd_card_present(self) -> bool:
        return bool(self.last_flags and self.last_flags & FLAG_SD_CARD_PRESENT)

    def mark_broken(self) -> None:
        """Make the next exchange re-establish the link first."""
        self._broken = True

    def link_opened(self) -> None:
        """A fresh connection: forget partial frames and the silent count."""
        self.framer.reset()
        self.silent = 0

    def stats_dict(self) -> dict[str, float]:
        out = self.stats.as_dict()
        for key, value in self.framer.stats().items():
            out[f"decoder_{key}"] = value
        return out

    # The fast path -------------------------------------------------------------------------
    def sent(self) -> None:
        """Count a request sent outside ``run`` (by the logger's burst)."""
        self.stats.requests += 1
        self.stats.sends += 1

    def take_answer(self, request: Request, chunk: bytes) -> bool:
        """True when ``chunk`` is exactly one whole, successful answer to ``request``.

        Then it is booked (flags, counters) and the caller owns it; anything else (an
        error answer, a foreign, late, split or damaged frame, junk) is left untouched
        for ``run`` to deal with.
        """
        if (
            self.framer.pending
            or not is_whole_frame(chunk)
            or request.classify(chunk) != ANSWER
            or chunk[_SERVICE_FLAGS] & FLAG_ERROR
        ):
            return False
        self.framer.frames += 1
        self.stats.responses += 1
        self.last_flags = chunk[1]
        self.silent = 0
        return True

    # The exchange --------------------------------------------------------------------------
    def run(
        self,
        request: Request,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        retry_request: Request | None = None,
        sent_at: float | None = None,
        quiet: bool = False,
    ) -> Operation[Outcome]:
        """Send ``request`` until answered or out of tries; returns the ``Outcome``.

        ``retry_request`` is sent instead on the second and later tries. ``sent_at``
        (this session's clock) says the request already left (the fast path gave up on
        it): the first try only waits. ``quiet``: no answer does not count towards the
        silent limit (a scan probing for devices). Raises LinkError when the link
        breaks and ``link_retries`` is off, or when ``silent_limit`` is reached.
        """
        retries = self.retries if retries is None else retries
        timeout = self.timeout if timeout is None else timeout
        stats = self.stats
        clock = self.clock
        yield from self._polite_wait()
        stats.requests += 1
        attempt = 0
        sends = 0
        damaged_total = 0
        busy_since: float | None = None
        started = clock()
        current = request
        try:
            while True:
                try:
                    if self._broken:
                        yield Reconnect(self.reconnect_timeout)
                        self._broken = False
                        self.framer.reset()
                        stats.reconnects += 1
                    if sent_at is not None and sends == 0:
                        sends += 1
                        deadline = sent_at + timeout
                    else:
                        if self._drain_until and clock() < self._drain_until:
                            yield from self._drain()
                        sends += 1
                        stats.sends += 1
                        yield Send(current.frame)
                        deadline = clock() + timeout
                    answer, t_ms = yield from self._wait_for(current, deadline)
                except LinkError as exc:
                    if not self.link_retries:
                        raise
                    self._broken = True
                    self._drain_until = clock() + self.late_window
                    stats.link_errors += 1
                    log.debug("link error during %s: %s", current.describe(), exc)
                    outcome = Outcome(LINK_DOWN, sends=sends, damaged=damaged_total, error=exc)
                else:
                    if answer is None:
                        stats.timeouts += 1
                        # Its answer may still come: discard what arrives before the
                        # next requests for a while, so it is never taken for theirs.
                        self._drain_until = clock() + self.late_window
                        outcome = Outcome(TIMEOUT, sends=sends, damaged=damaged_total)
                    elif answer is False:
                        stats.damaged_answers += 1
                        damaged_total += 1
                        outcome = Outcome(DAMAGED, sends=sends, damaged=damaged_total)
                    else:
                        self.last_flags = answer[1]
                        self.silent = 0
                        if not answer[_SERVICE_FLAGS] & FLAG_ERROR:
                            stats.responses += 1
                            return Outcome(OK, answer, t_ms, 0, sends, damaged_total)
                        code = codec.decode_frame(answer).error_code or 0
                        outcome = Outcome(ERROR, answer, t_ms, code, sends, damaged_total)
                        if code == _BUSY:
                            stats.busy += 1
                            if self.busy_timeout > 0:
                                now = clock()
                                if busy_since is None:
                                    busy_since = now
                                if now - busy_since < self.busy_timeout:
                                    yield Sleep(self.busy_delay)
                                    continue
                                stats.device_errors += 1
                                return outcome
                        elif code not in self.retryable_errors or attempt >= retries:
                            stats.device_errors += 1
                            return outcome
                if attempt >= retries:
                    if outcome.kind == TIMEOUT and not quiet and self.silent_limit:
                        self.silent += 1
                        if self.silent >= self.silent_limit:
                            self.silent = 0
                            raise LinkError(f"no answer to {self.silent_limit} requests in a row")
                    if outcome.kind == ERROR:
                        stats.device_errors += 1
                    return outcome
                attempt += 1
                stats.retries += 1
                if retry_request is not None:
                    current = retry_request
                delay = min(self.backoff * (2 ** (attempt - 1)), self.backoff_max)
                if delay > 0:
                    yield Sleep(delay)
        finally:
            self.last_attempts = sends
            end = clock()
            if self.polite is not None:
                self._idle_until = end + self.polite.idle_after(end - started)

    def exchange(
        self,
        request: Request,
        *,
        retries: int | None = None,
        timeout: float | None = None,
        retry_request: Request | None = None,
    ) -> Operation[Frame]:
        """``run``, for the client: the answer as a decoded Frame, or an exception.

        Raises XcomTimeout when no answer came after every try, DeviceError for an error
        answer, LinkError when the link cannot be re-established.
        """
        timeout = self.timeout if timeout is None else timeout
        outcome = yield from self.run(
            request, retries=retries, timeout=timeout, retry_request=retry_request
        )
        kind = outcome.kind
        if kind == OK:
            return codec.decode_frame(outcome.frame)
        current = request if outcome.sends <= 1 or retry_request is None else retry_request
        tries = f" ({outcome.sends} tries)" if outcome.sends > 1 else ""
        if kind == ERROR:
            if outcome.code == _BUSY and self.busy_timeout > 0:
                raise DeviceError(
                    outcome.code, f"{current.describe()}: still busy after {self.busy_timeout:g} s"
                )
            raise DeviceError(outcome.code, describe_error(current, outcome))
        if kind == TIMEOUT:
            raise XcomTimeout(f"no answer to {current.describe()} within {timeout:g} s{tries}")
        if kind == DAMAGED:
            raise XcomTimeout(f"no valid answer to {current.describe()} (damaged frame){tries}")
        assert outcome.error is not None
        raise outcome.error

    def _wait_for(
        self, request: Request, deadline: float
    ) -> Operation[tuple[bytes | bool | None, int]]:
        """Receive until a frame answers ``request``; returns (frame, arrival ms).

        The frame is None on timeout, False when a chunk brought a damaged frame and
        nothing else (no other frame, no bytes pending) (most likely our answer, corrupted on the line: retrying at once beats
        waiting for the timeout, and a repeated request is harmless). Bytes already
        waiting when the deadline passes are still read: on a busy machine the rest of an
        answer can be queued while this task was not running.
        """
        clock = self.clock
        framer = self.framer
        stats = self.stats
        damaged = framer.bad_frames
        while True:
            remaining = deadline - clock()
            chunk = yield Receive(remaining if remaining > 0 else 0.0)
            if not chunk:
                if remaining <= 0:
                    return None, 0
                continue
            t_ms = time.time_ns() // 1_000_000
            found: bytes | None = None
            frames = framer.feed(chunk)
            for frame in frames:
                verdict = request.classify(frame) if found is None else UNMATCHED
                if verdict == ANSWER:
                    found = frame
                    continue
                stats.unmatched_frames += 1
                if verdict == FOREIGN:
                    stats.foreign_frames += 1
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("skipped a frame that is not the answer: %s", frame.hex(" "))
            if found is not None:
                return found, t_ms
            if (
                self.retry_damaged
                and not frames
                and framer.bad_frames != damaged
                and not framer.pending
            ):
                return False, t_ms

    def _drain(self) -> Operation[None]:
        """Discard whatever arrived since the last answer (late answers, other clients)."""
        for _ in range(64):
            chunk = yield Receive(0.0)
            if not chunk:
                return
            frames = self.framer.feed(chunk)
            if frames:
                self.stats.stale_frames += len(frames)
                log.debug("discarded %d frame(s) that arrived between requests", len(frames))

    def polite_pause(self) -> Operation[None]:
        """Wait out what polite mode asks before the next request (a quiet window, the
        duty cycle's silence); ``run`` does it before every exchange."""
        yield from self._polite_wait()

    def _polite_wait(self) -> Operation[None]:
        policy = self.polite
        if policy is None or self._reading_clock:
            return
        if policy.clock_due(time.time()):
            yield from self.read_installation_clock()
        wait = max(0.0, self._idle_until - self.clock())
        quiet = policy.quiet_remaining()
        if quiet > 0:
            log.info("quiet window: pausing %.0f s to leave the link to the portal", quiet)
        wait = max(wait, quiet)
        if wait > 0:
            self.stats.polite_wait_s += wait
            yield Sleep(wait)


def clock_request(src: int) -> Request:
    """A read of the installation's clock: {5002} of the gateway (RCC / Xcom-232i)."""
    return Request(
        Service.READ,
        ObjectType.PARAMETER,
        PARAM_DATE,
        Property.VALUE_QSP,
        dst=ADDRESS_GATEWAY,
        src=src,
    )


def describe_error(request: Request, outcome: Outcome) -> str:
    """What an ERROR outcome says, for a DeviceError or an event: the request, and for a
    short answer (2..9 data bytes, issue 10) that it was one and whether it had a code."""
    text = request.describe()
    if outcome.frame and is_short_frame(outcome.frame):
        size = len(outcome.frame) - HEADER_SIZE - CHECKSUM_SIZE
        carried = "its error code" if size >= 4 else "no error code"
        text += f": refused with a short answer ({size} data bytes, {carried})"
    return text


def _kind_name(outcome: Outcome) -> str:
    if outcome.kind == ERROR:
        return f"device error 0x{outcome.code:04X}"
    return {TIMEOUT: "no answer", DAMAGED: "damaged answer"}.get(outcome.kind, "link down")


#: Consecutive unanswered requests after which the logger takes a link for dead.
SILENT_LIMIT = 5

__all__ = [
    "DAMAGED",
    "ERROR",
    "LINK_DOWN",
    "OK",
    "SILENT_LIMIT",
    "TIMEOUT",
    "Outcome",
    "Session",
    "SessionStats",
    "clock_request",
    "describe_error",
]
