"""When each group of a site runs: cycles aligned to the wall clock, and missed intervals.

A group with interval I and offset O runs at the ticks O + k*I (wall-clock seconds); 0
means back to back. A cycle that ends after its next tick makes the group run at once
(late, inside the current interval); the ticks skipped over are missed intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .columns import Cycle
from .plan import GroupPlan


@dataclass(eq=False)
class GroupState:
    """A group of a site, when it runs next and its cycle under way."""

    group: GroupPlan
    next_tick: float
    cycle: Cycle | None = None


def _aligned_tick(now: float, interval: float, offset: float) -> float:
    """The last wall-clock tick at or before ``now`` (``offset`` after a multiple of interval)."""
    return math.floor((now - offset) / interval) * interval + offset


def aligned_tick(now: float, interval: float, offset: float) -> float:
    """The last wall-clock tick at or before ``now`` (``offset`` after a multiple of interval)."""
    return math.floor((now - offset) / interval) * interval + offset


def missed_from(group: GroupPlan, slot: float) -> float:
    """The first tick after the cycle that started at ``slot``."""
    return aligned_tick(slot, group.interval, group.offset) + group.interval


def next_tick(group: GroupPlan, slot: float, now: float) -> tuple[float, int]:
    """When ``group`` runs next after its cycle of ``slot`` ended at ``now``, and how many
    of its intervals went by without a cycle (missed)."""
    interval = group.interval
    if interval <= 0:
        return now, 0
    nxt = missed_from(group, slot)
    if now < nxt:
        return nxt, 0
    current = aligned_tick(now, interval, group.offset)
    missed = int(round((current - nxt) / interval))
    return now, max(missed, 0)  # late but inside the current interval: run at once


__all__ = ["GroupState", "aligned_tick", "missed_from", "next_tick"]
