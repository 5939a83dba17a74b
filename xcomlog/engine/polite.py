"""Polite mode: leave a link shared with the Studer portal free often enough."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


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
    zone of the quiet windows (the machine's local time if None). ``clock="installation"``:
    the windows are in the installation's own clock (the RCC time {5002}, which the Studer
    portal's upload follows); the engine reads that clock at start and hourly and keeps
    its offset from UTC (``installation_offset``), so DST changes and drift are followed.
    """

    quiet: Sequence[tuple[dt.time, dt.time]] = ((dt.time(23, 50), dt.time(0, 20)),)
    duty_cycle: float = 1.0
    tz: str | None = None
    #: Whose clock the quiet windows are in: "local" (``tz``, else this machine's) or
    #: "installation" (the RCC/Xcom clock {5002}, which the Studer portal follows).
    clock: str = "local"

    def __post_init__(self) -> None:
        if not 0.0 < self.duty_cycle <= 1.0:
            raise ValueError(f"duty cycle must be in (0, 1], got {self.duty_cycle}")
        if self.clock not in CLOCKS:
            raise ValueError(f"quiet clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        if self.clock == "installation" and self.tz:
            raise ValueError("a quiet window is in the installation's clock or in tz, not both")
        #: Installation clock minus UTC, in seconds (None until read): the clock follows
        #: daylight saving time and drifts, so it is read at start and hourly.
        self.installation_offset: float | None = None
        #: time.time() of the last attempt to read the installation clock.
        self.clock_read_at: float | None = None
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
        cls,
        quiet: str | Iterable[str] = (),
        duty_cycle: float = 1.0,
        tz: str | None = None,
        clock: str = "local",
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
        return cls(quiet=tuple(windows), duty_cycle=duty_cycle, tz=tz, clock=clock)

    def quiet_remaining(self, now: dt.datetime | None = None) -> float:
        """Seconds until the current quiet window ends (0 outside every window)."""
        if not self.quiet:
            return 0.0
        if now is None:
            now = self.now()
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

    def now(self) -> dt.datetime:
        """The time the quiet windows are in: the installation's clock once it was read
        (until then this machine's local time), or ``tz``'s, or this machine's."""
        if self.clock == "installation":
            if self.installation_offset is None:
                return dt.datetime.now()
            utc = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            return utc + dt.timedelta(seconds=self.installation_offset)
        return dt.datetime.now(self._zone) if self._zone else dt.datetime.now()

    def clock_due(self, now: float) -> bool:
        """True when the installation clock should be read (``now``: time.time()): at
        start, then every ``CLOCK_READ_INTERVAL_S``, or ``CLOCK_RETRY_S`` after a failure."""
        if self.clock != "installation" or not self.quiet:
            return False
        if self.clock_read_at is None:
            return True
        wait = CLOCK_READ_INTERVAL_S if self.installation_offset is not None else CLOCK_RETRY_S
        return now - self.clock_read_at >= wait

    def set_installation_clock(self, device_seconds: float, utc_seconds: float) -> float:
        """Record a reading of {5002} (local wall time as posix seconds) taken at
        ``utc_seconds``; returns the offset, rounded to the second (the clock counts
        whole seconds: its reading is on average half a second behind)."""
        self.installation_offset = float(round(device_seconds + 0.5 - utc_seconds))
        return self.installation_offset

    def idle_after(self, busy_seconds: float) -> float:
        """Silence owed after an exchange that kept the link busy ``busy_seconds``."""
        if self.duty_cycle >= 1.0:
            return 0.0
        return busy_seconds * (1.0 - self.duty_cycle) / self.duty_cycle


#: Whose clock quiet windows can be in.
CLOCKS = ("local", "installation")
#: The installation clock is read again after this long (it follows DST, it drifts).
CLOCK_READ_INTERVAL_S = 3600.0
#: ... or after this long when the last reading failed.
CLOCK_RETRY_S = 60.0

__all__ = ["CLOCKS", "CLOCK_READ_INTERVAL_S", "PolitePolicy"]
