"""The one protocol engine: every client and the logger talk Xcom through it.

- ``framing``: a byte stream cut into whole raw frames (``split_frames``, ``Framer``);
- ``requests``: the one ``Request`` type and its answer-matching rule;
- ``session``: ``Session``, one link's exchange (retries, busy waits, damaged answers,
  timeouts, the unanswered-request limit), its ``Outcome`` and the fast path;
- ``polite``: ``PolitePolicy``, quiet windows and the duty cycle;
- ``driving``: the I/O commands operations yield and their blocking / asyncio drivers.

It does no I/O itself, so tests feed it bytes directly (``tests/test_engine.py``).
"""

from __future__ import annotations

from .driving import Command, Operation, Receive, Reconnect, Send, Sleep, run_async, run_sync
from .framing import Framer, is_whole_frame, split_frames
from .polite import PolitePolicy
from .requests import ANSWER, FOREIGN, UNMATCHED, Request, multi_info_aggregation
from .session import (
    DAMAGED,
    ERROR,
    LINK_DOWN,
    OK,
    SILENT_LIMIT,
    TIMEOUT,
    Outcome,
    Session,
    SessionStats,
    describe_error,
)

__all__ = [
    "ANSWER",
    "DAMAGED",
    "ERROR",
    "FOREIGN",
    "LINK_DOWN",
    "OK",
    "SILENT_LIMIT",
    "TIMEOUT",
    "UNMATCHED",
    "Command",
    "Framer",
    "Operation",
    "Outcome",
    "PolitePolicy",
    "Receive",
    "Reconnect",
    "Request",
    "Send",
    "Session",
    "SessionStats",
    "Sleep",
    "describe_error",
    "is_whole_frame",
    "multi_info_aggregation",
    "run_async",
    "run_sync",
    "split_frames",
]
