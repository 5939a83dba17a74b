"""The live status line of ``xcomlog log``: rates, errors and the last key values."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..formatting import format_quantity
from ..protocol import device_name


class StatusLine:
    """Renders a one-line summary of a running Logger, redrawn in place on a terminal.

    Rates are computed between two calls, so the line shows what happens now rather
    than an average since start. Off a terminal (a service journal) a full line is
    printed every ``every`` seconds instead.
    """

    def __init__(self, stream: TextIO | None = None, *, every: float = 30.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every = every
        self._last: tuple[float, float, float] | None = None  # time, values, frames
        self._printed = 0.0
        self._width = 0

    def render(self, logger) -> str:
        """The status text for the logger's current counters."""
        totals = logger.totals()
        now = time.monotonic()
        values, frames = totals["values"], totals["frames"]
        if self._last is None:
            elapsed = max(totals["elapsed"], 1e-9)
            vps, fps = values / elapsed, frames / elapsed
        else:
            dt = max(now - self._last[0], 1e-9)
            vps, fps = (values - self._last[1]) / dt, (frames - self._last[2]) / dt
        self._last = (now, values, frames)
        errors = int(totals["timeouts"] + totals["device_errors"] + totals["damaged_frames"])
        parts = [
            f"{vps:,.0f} values/s",
            f"{fps:,.1f} frames/s",
            f"{int(values):,} values",
            f"{errors} errors",
        ]
        if totals["missed"]:
            parts.append(f"{int(totals['missed'])} missed")
        if totals["link_drops"]:
            parts.append(f"{int(totals['link_drops'])} link drops")
        for site in logger.sites:
            parts.append(_site_text(site, len(logger.sites) > 1))
        return " | ".join(parts)

    def __call__(self, logger) -> None:
        """Redraw (terminal) or print every ``every`` seconds (log file)."""
        text = self.render(logger)
        if self.tty:
            pad = max(self._width - len(text), 0)
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
            return
        now = time.monotonic()
        if now - self._printed >= self.every:
            self._printed = now
            self.stream.write(text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the in-place line so later output starts on a fresh line."""
        if self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()


def _site_text(site, with_name: bool) -> str:
    stats = site.stats
    plan = site.plan
    items = []
    for key in site.status_keys:
        point = plan.points.get(key) if plan is not None else None
        if point is None or key not in stats.last:
            continue
        value = stats.last[key][1]
        short = point.short or point.name[:12]
        items.append(f"{device_name(point.address)} {short} {format_quantity(value, point.unit)}")
        if len(items) >= 4:
            break
    text = ", ".join(items) if items else stats.state
    if stats.state not in ("polling",) and items:
        text = f"{stats.state}: {text}"
    return f"{site.config.name}: {text}" if with_name else text
