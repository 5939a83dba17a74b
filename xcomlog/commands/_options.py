"""Argument types shared by every command: one duration syntax, checked numbers.

Each type checks its value where it enters (argparse calls it) and fails with one
sentence naming the option and the accepted range. It raises the base ``XcomError``
on purpose: argparse turns a ValueError into its own vaguer message (and exits), while
an XcomError reaches ``cli.main``, which prints it and returns exit code 1. Durations
use the TOML file's syntax (``options.parse_duration``): plain seconds, ``500ms``,
``10s``, ``5min``, ``1h``, ``1d``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..exceptions import ConfigError, XcomError
from ..options import parse_duration


def duration(option: str, *, maximum: float, positive: bool = True) -> Callable[[str], float]:
    """An argparse type: seconds from ``10``, ``10s``, ``1min``... within (0, ``maximum``]."""

    def parse(text: str) -> float:
        try:
            return parse_duration(text, option, maximum=maximum, positive=positive)
        except ConfigError as exc:
            raise XcomError(str(exc)) from None

    parse.__name__ = "duration"  # argparse names the type in its messages
    return parse


def add_duration_option(
    parser: Any,
    option: str,
    *,
    maximum: float,
    default: float | None,
    help: str,
    positive: bool = True,
) -> None:
    """Declare ``option`` as a ``DURATION`` (see ``duration``) on a parser or argument group."""
    parser.add_argument(
        option,
        type=duration(option, maximum=maximum, positive=positive),
        default=default,
        metavar="DURATION",
        help=help,
    )


def integer(option: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise XcomError(
                f"{option}: expected a whole number from {low} to {high}, got {text!r}"
            ) from None
        if not low <= value <= high:
            raise XcomError(f"{option}: expected {low} to {high}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def number(
    option: str, low: float, high: float, *, low_open: bool = False
) -> Callable[[str], float]:
    """An argparse type: a finite number in [``low``, ``high``] (``(low, high]`` with low_open)."""
    bracket = "(" if low_open else "["

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            raise XcomError(
                f"{option}: expected a number in {bracket}{low:g}, {high:g}], got {text!r}"
            )
        return value

    parse.__name__ = "number"
    return parse


def writable_folder(path: str | Path, option: str) -> Path:
    """Create ``path`` if needed and prove a file can be written there; else one sentence.

    Run before any long work (a download, a demo run) so that nothing is lost to a
    destination that was never usable.
    """
    import tempfile

    from ..exceptions import ValidationError

    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".xcomlog-check-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ValidationError(f"{option} {path}: cannot write there ({reason})") from None
    return folder


__all__ = ["duration", "integer", "number", "writable_folder"]
