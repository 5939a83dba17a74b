"""What the MQTT side is told by the logger configuration (``[mqtt]`` or ``--mqtt...``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..exceptions import ConfigError
from ..options import DEFAULT_MQTT_INTERVAL_S, MAX_MQTT_INTERVAL_S, parse_duration
from .broker_url import BrokerAddress, parse_broker_url

DEFAULT_PREFIX = "xcomlog"
DEFAULT_DISCOVERY_PREFIX = "homeassistant"
#: A value is published before its interval is over when it moved by more than this
#: fraction of its last published magnitude (enum and integer values: on any change).
DEFAULT_DEADBAND = 0.05
_TOPIC_WORD = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")


@dataclass(frozen=True)
class MqttSettings:
    """Broker, topic prefixes, rate limit and the parameters Home Assistant may write."""

    broker: BrokerAddress
    prefix: str = DEFAULT_PREFIX
    discovery_prefix: str = DEFAULT_DISCOVERY_PREFIX
    interval: float = DEFAULT_MQTT_INTERVAL_S
    deadband: float = DEFAULT_DEADBAND
    writes: frozenset[int] = frozenset()  # parameter numbers exposed for writing
    flash: frozenset[int] = frozenset()  # of those, the ones written to flash (not RAM)
    discovery: bool = True
    client_id: str | None = None


def _numbers(value: object, where: str) -> frozenset[int]:
    if value is None or value == "":
        return frozenset()
    items: Iterable = value.split(",") if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, (list, tuple, set, frozenset)) and not isinstance(value, str):
        raise ConfigError(f"{where}: expected a list of parameter numbers such as [1138, 1107]")
    out = set()
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise ConfigError(f"{where}: {text!r} is not a parameter number (1..65535)")
        out.add(int(text))
    return frozenset(out)


def _prefix(value: object, where: str) -> str:
    text = str(value).strip().strip("/")
    if not _TOPIC_WORD.match(text):
        raise ConfigError(
            f"{where}: {value!r} is not a topic prefix (letters, digits, '_' and '-', "
            "levels separated by '/')"
        )
    return text


#: The command-line option of each ``[mqtt]`` key (``settings_from_dict(..., options=True)``).
OPTION_NAMES = {
    "url": "--mqtt",
    "interval": "--mqtt-interval",
    "writes": "--mqtt-writes",
    "flash": "--mqtt-flash",
    "prefix": "--mqtt-prefix",
    "discovery_prefix": "--discovery-prefix",
}


def settings_from_dict(
    table: Mapping, where: str = "[mqtt]", *, options: bool = False
) -> MqttSettings:
    """Check an ``[mqtt]`` table (or, with ``options``, the --mqtt options gathered as one:
    messages then name the option, e.g. ``--mqtt-interval: ...``)."""

    def at(key: str) -> str:
        return OPTION_NAMES.get(key, key) if options else f"{where}: {key}"

    allowed = {
        "url",
        "prefix",
        "discovery_prefix",
        "interval",
        "deadband",
        "writes",
        "flash",
        "discovery",
        "client_id",
    }
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )
    if not table.get("url"):
        raise ConfigError(f"{where}: 'url' is missing (mqtt://[user:pass@]HOST[:PORT])")
    broker = parse_broker_url(str(table["url"]))
    interval = parse_duration(
        table.get("interval", DEFAULT_MQTT_INTERVAL_S), at("interval"), maximum=MAX_MQTT_INTERVAL_S
    )
    deadband = table.get("deadband", DEFAULT_DEADBAND)
    if isinstance(deadband, bool) or not isinstance(deadband, (int, float, str)):
        deadband = None
    try:
        deadband = float(deadband)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        deadband = math.nan
    if not 0 <= deadband <= 1:
        raise ConfigError(
            f"{at('deadband')} must be a share from 0 to 1 such as 0.05 (5 %), "
            f"got {table.get('deadband')!r}"
        )
    writes = _numbers(table.get("writes"), at("writes"))
    flash = _numbers(table.get("flash"), at("flash"))
    if not flash <= writes:
        extra = ", ".join(str(n) for n in sorted(flash - writes))
        raise ConfigError(f"{at('flash')} lists {extra}, which {at('writes')} does not list")
    return MqttSettings(
        broker=broker,
        prefix=_prefix(table.get("prefix", DEFAULT_PREFIX), at("prefix")),
        discovery_prefix=_prefix(
            table.get("discovery_prefix", DEFAULT_DISCOVERY_PREFIX), at("discovery_prefix")
        ),
        interval=interval,
        deadband=deadband,
        writes=writes,
        flash=flash,
        discovery=bool(table.get("discovery", True)),
        client_id=str(table["client_id"]) if table.get("client_id") else None,
    )
