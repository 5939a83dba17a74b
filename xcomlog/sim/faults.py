"""Fault injection: the ways a real Xcom link misbehaves, as seeded probabilities and periods.

A :class:`FaultConfig` says what can go wrong; a :class:`FaultInjector` (one per simulator,
seeded) decides, request by request, what does. Probabilities are per response; periods are
seconds of the link's monotonic clock. Everything is reproducible for a given seed and
request sequence.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..exceptions import ValidationError
from ..protocol import RESPONSE_TIMEOUT_S


@dataclass(frozen=True)
class FaultConfig:
    """What goes wrong, and how often. All zero (the default) means a perfect link.

    delay_s            each response waits a random 0..delay_s (the spec allows up to 2 s)
    slowdown_every_s   period of the datalogger slow-down (the spec's "every 60 seconds")
    slowdown_s         extra delay of responses during a slow-down window
    slowdown_window_s  how long each slow-down lasts
    drop               probability that a response is not sent at all
    corrupt            probability that one byte of a response is flipped
    junk               probability that 1-8 random bytes precede a response
    leading_ff         probability that a 0xFF byte precedes a response
    foreign_frames     probability that a frame meant for another client precedes a response
    busy               probability of a SCOM_ERROR_GATEWAY_BUSY answer instead of the real one
    restart_every_s    period of gateway restarts (restarted flag set, the response lost),
                       counted from the first request served
    disconnect_every_s period after which the link closes (TCP) or goes silent (pty, UDP)
    disconnect_s       how long the link stays down
    """

    delay_s: float = 0.0
    slowdown_every_s: float = 0.0
    slowdown_s: float = 0.0
    slowdown_window_s: float = 2.0
    drop: float = 0.0
    corrupt: float = 0.0
    junk: float = 0.0
    leading_ff: float = 0.0
    foreign_frames: float = 0.0
    busy: float = 0.0
    restart_every_s: float = 0.0
    disconnect_every_s: float = 0.0
    disconnect_s: float = 1.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValidationError(f"fault {f.name} must be a number >= 0, got {value!r}")
            if f.name in _PROBABILITIES and value > 1:
                raise ValidationError(f"fault {f.name} is a probability 0..1, got {value!r}")
        if self.delay_s > RESPONSE_TIMEOUT_S * 5:
            raise ValidationError(f"fault delay_s {self.delay_s} is beyond any client timeout")
        # Computed once: the request path asks for every response.
        active = any(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _NOT_FAULTS
        )
        object.__setattr__(self, "_active", active)

    @property
    def active(self) -> bool:
        """True if any fault can happen."""
        return self._active  # type: ignore[attr-defined, no-any-return]

    @classmethod
    def from_dict(cls, data: dict) -> FaultConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValidationError(
                f"unknown fault(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(names))}"
            )
        return cls(**data)


_PROBABILITIES = {"drop", "corrupt", "junk", "leading_ff", "foreign_frames", "busy"}
_NOT_FAULTS = {"slowdown_window_s", "disconnect_s"}


class FaultInjector:
    """Seeded decisions for one simulator: what happens to each response."""

    def __init__(
        self,
        config: FaultConfig | None = None,
        seed: int | None = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.reconfigure(config, seed)

    def reconfigure(self, config: FaultConfig | None, seed: int | None = 0) -> None:
        """Start over with ``config`` (re-seeded): links holding this injector follow."""
        self.config = config or FaultConfig()
        self.rng = random.Random(seed)
        self.started = self.clock()
        #: When the first request was served: restart periods count from there (a real
        #: gateway's uptime is unrelated to when a simulator object was built, and a client
        #: must see at least one period of normal answers whatever its start-up delay).
        self.first_request: float | None = None
        self._last_restart = 0
        self.counts: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def elapsed(self) -> float:
        return self.clock() - self.started

    def restart_due(self) -> bool:
        """True once per ``restart_every_s`` period: the gateway has just restarted.

        Called for every request served; periods count from the first one.
        """
        period = self.config.restart_every_s
        if not period:
            return False
        now = self.clock()
        if self.first_request is None:
            self.first_request = now
        n = int((now - self.first_request) // period)
        if n > self._last_restart:
            self._last_restart = n
            self._count("restart")
            return True
        return False

    def busy(self) -> bool:
        if self.config.busy and self.rng.random() < self.config.busy:
            self._count("busy")
            return True
        return False

    def delay(self) -> float:
        """Seconds to wait before this response is sent."""
        c = self.config
        wait = 0.0
        if c.delay_s:
            wait += self.rng.uniform(0.0, c.delay_s)
        if c.slowdown_every_s and c.slowdown_s:
            phase = self.elapsed() % c.slowdown_every_s
            if phase >= c.slowdown_every_s - c.slowdown_window_s:
                wait += c.slowdown_s
                self._count("slowdown")
        return wait

    def mangle(self, response: bytes, request_src: int, foreign: bytes | None) -> list[bytes]:
        """The byte chunks actually written for ``response`` (empty when it is dropped)."""
        c = self.config
        rng = self.rng
        if c.drop and rng.random() < c.drop:
            self._count("drop")
            return []
        chunks: list[bytes] = []
        if c.foreign_frames and foreign is not None and rng.random() < c.foreign_frames:
            self._count("foreign")
            chunks.append(foreign)
        if c.leading_ff and rng.random() < c.leading_ff:
            self._count("leading_ff")
            chunks.append(b"\xff")
        if c.junk and rng.random() < c.junk:
            self._count("junk")
            junk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            chunks.append(junk.replace(b"\xaa", b"\x55"))
        if c.corrupt and rng.random() < c.corrupt:
            self._count("corrupt")
            data = bytearray(response)
            pos = rng.randrange(1, len(data))
            data[pos] ^= 1 << rng.randrange(8)
            response = bytes(data)
        chunks.append(response)
        return chunks

    def link_down(self, since: float) -> bool:
        """True while a scheduled disconnection of a link started at ``since`` is under way."""
        c = self.config
        if not c.disconnect_every_s:
            return False
        cycle = c.disconnect_every_s + c.disconnect_s
        phase = (self.clock() - since) % cycle
        return phase >= c.disconnect_every_s
