"""Settings shared by the command line, the TOML file and Python: defaults, limits, durations.

One source for each default (``xcomlog log --retries``, ``retries =`` in TOML and
``simple_config(retries=...)`` agree; tests/test_option_parity.py checks it) and one
duration syntax everywhere: plain seconds, ``500ms``, ``10s``, ``5min``, ``1h``, ``1d``.
Kept free of heavy imports: every command-line option reads it while the parser is built.
"""

from __future__ import annotations

import math
import re

from .exceptions import ConfigError
from .protocol import RESPONSE_TIMEOUT_S

DEFAULT_INTERVAL_S = 10.0
DEFAULT_FLUSH_INTERVAL_S = 10.0
DEFAULT_ROTATE_INTERVAL_S = 3600.0
DEFAULT_PUBLISH_INTERVAL_S = 60.0  # plain Parquet readers see rows at most this old
DEFAULT_TIMEOUT_S = RESPONSE_TIMEOUT_S  # specification section 3.7
DEFAULT_RETRIES = 2  # extra tries after a timeout, as XcomClient does
MAX_RETRIES = 10
DEFAULT_BACKOFF_S = (1.0, 60.0)  # first and largest reconnect delay
DEFAULT_CONNECT_TIMEOUT_S = 10.0  # open a link; with listen://, wait this long for the Moxa

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0
#: Largest accepted durations, per kind; beyond them a value is a mistake (and timers overflow).
MAX_INTERVAL_S = 7 * DAY_S
MAX_FLUSH_INTERVAL_S = DAY_S
MAX_ROTATE_INTERVAL_S = 7 * DAY_S
MAX_PUBLISH_INTERVAL_S = DAY_S
MAX_TIMEOUT_S = 10 * MINUTE_S
MAX_CONNECT_TIMEOUT_S = DAY_S
MAX_BACKOFF_S = DAY_S
MAX_RUN_S = 3650 * DAY_S  # ``--duration`` of a run: ten years
#: MQTT: each value published at most this often (``--mqtt-interval``, ``[mqtt] interval``).
DEFAULT_MQTT_INTERVAL_S = 10.0
MAX_MQTT_INTERVAL_S = DAY_S
#: Serial speeds accepted in a link (the Xcom-232i speaks 38400 or 115200).
MAX_BAUD = 4_000_000


_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0}
_DURATION_UNITS.update({"h": 3600.0, "d": 86400.0})


def _seconds_text(seconds: float) -> str:
    """A duration bound for messages: ``0``, ``10s``, ``10min``, ``1d``."""
    for unit, size in (("d", DAY_S), ("h", HOUR_S), ("min", MINUTE_S)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s" if seconds else "0"


def parse_duration(
    value: object,
    where: str = "duration",
    *,
    maximum: float = MAX_RUN_S,
    positive: bool = False,
) -> float:
    """Seconds from ``5``, ``0.5``, ``"500ms"``, ``"10s"``, ``"1min"``, ``"1h"`` or ``"1d"``.

    The one duration syntax of the TOML file and the command line. A value must be
    finite, at least 0 (above 0 with ``positive``) and at most ``maximum`` seconds; the
    error names ``where`` and the accepted range.
    """
    accepted = (
        f"a duration {'above' if positive else 'from'} 0 "
        f"{'and up to' if positive else 'to'} {_seconds_text(maximum)} "
        "(plain seconds, or e.g. '500ms', '10s', '5min', '1h')"
    )
    if isinstance(value, bool):
        raise ConfigError(f"{where}: expected {accepted}, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            seconds = float(value)
        except OverflowError:  # an integer too large for a float
            seconds = math.inf
    elif isinstance(value, str):
        match = _DURATION_RE.match(value)
        if not match:
            raise ConfigError(f"{where}: cannot read {value!r}: expected {accepted}")
        unit = match.group(2).lower() if match.group(2) else None
        seconds = float(match.group(1)) * _DURATION_UNITS[unit]
    else:
        raise ConfigError(f"{where}: expected {accepted}, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0 or seconds > maximum:
        raise ConfigError(f"{where}: expected {accepted}, got {value!r}")
    if positive and seconds <= 0:
        raise ConfigError(f"{where}: expected {accepted}, got {value!r}")
    return seconds


__all__ = [
    "DEFAULT_BACKOFF_S",
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_FLUSH_INTERVAL_S",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_MQTT_INTERVAL_S",
    "DEFAULT_PUBLISH_INTERVAL_S",
    "DEFAULT_RETRIES",
    "DEFAULT_ROTATE_INTERVAL_S",
    "DEFAULT_TIMEOUT_S",
    "MAX_BACKOFF_S",
    "MAX_BAUD",
    "MAX_CONNECT_TIMEOUT_S",
    "MAX_FLUSH_INTERVAL_S",
    "MAX_INTERVAL_S",
    "MAX_MQTT_INTERVAL_S",
    "MAX_PUBLISH_INTERVAL_S",
    "MAX_RETRIES",
    "MAX_ROTATE_INTERVAL_S",
    "MAX_RUN_S",
    "MAX_TIMEOUT_S",
    "parse_duration",
]
