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


__all__ = ["PolitePolicy"]
