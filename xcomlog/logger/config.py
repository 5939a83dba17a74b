"""Logger configuration: a TOML file (or a few command-line options) turned into checked records.

The file names sites (each one link), what to log (presets, numbers or names, optionally
per device family or address) and how often (groups with an interval aligned to the wall
clock). Everything is checked here, before any link opens, and a mistake is reported with
the file and the key that holds it. Names and numbers are resolved against the catalog
later, when the polling plan is compiled.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from ..exceptions import ConfigError
from ..options import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_FLUSH_INTERVAL_S,
    DEFAULT_INTERVAL_S,
    DEFAULT_PUBLISH_INTERVAL_S,
    DEFAULT_RETRIES,
    DEFAULT_ROTATE_INTERVAL_S,
    DEFAULT_TIMEOUT_S,
    MAX_BACKOFF_S,
    MAX_BAUD,
    MAX_CONNECT_TIMEOUT_S,
    MAX_FLUSH_INTERVAL_S,
    MAX_INTERVAL_S,
    MAX_PUBLISH_INTERVAL_S,
    MAX_RETRIES,
    MAX_ROTATE_INTERVAL_S,
    MAX_TIMEOUT_S,
    parse_duration,
)
from ..protocol import ADDRESS_DTE, Family, Property, parse_device

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    try:
        import tomli as tomllib
    except ImportError:  # pragma: no cover
        tomllib = None

# --- presets ------------------------------------------------------------------------------

#: The user infos most owners want, per family (from the appendix). Numbers a family's
#: catalog does not know are dropped when the plan is compiled.
ESSENTIAL_INFOS: dict[Family, tuple[int, ...]] = {
    Family.XTENDER: (
        3000,  # battery voltage
        3005,  # battery charge current
        3010,  # battery cycle phase
        3011,  # input voltage
        3012,  # input current
        3021,  # output voltage
        3022,  # output current
        3028,  # operating state
        3049,  # state of the inverter
        3078,  # battery discharge of the current day
        3081,  # energy AC-In of the current day
        3083,  # consumers energy of the current day
        3084,  # input frequency
        3085,  # output frequency
        3136,  # output active power
        3137,  # input active power
    ),
    Family.VARIOTRACK: (
        11000,  # battery voltage
        11001,  # battery current
        11002,  # PV voltage
        11003,  # PV current
        11004,  # PV power
        11006,  # production (Ah) of the current day
        11007,  # production (kWh) of the current day
        11016,  # operating mode
        11038,  # battery cycle phase
        11069,  # state of the VarioTrack
    ),
    Family.VARIOSTRING: (
        15000,  # battery voltage
        15001,  # battery current
        15002,  # battery cycle phase
        15004,  # PV voltage
        15007,  # PV current
        15010,  # PV power
        15013,  # PV operating mode
        15017,  # production PV (kWh) of the current day
    ),
    Family.BSP: (
        7000,  # battery voltage
        7001,  # battery current
        7002,  # state of charge
        7003,  # power
        7004,  # remaining autonomy
        7005,  # temperature
        7007,  # Ah charged today
        7008,  # Ah discharged today
    ),
    Family.XCOM_CAN_BMS: (7000, 7001, 7002, 7003, 7007, 7008),
}

#: Daily energy counters: what an owner sums per day.
ENERGY_INFOS: dict[Family, tuple[int, ...]] = {
    Family.XTENDER: (3076, 3078, 3080, 3081, 3082, 3083),
    Family.VARIOTRACK: (11006, 11007),
    Family.VARIOSTRING: (15017, 15018),
    Family.BSP: (7007, 7008, 7009, 7010),
    Family.XCOM_CAN_BMS: (7007, 7008),
}

#: Preset names; ``all-infos`` and ``all-parameters`` take every entry of the catalog.
PRESETS = ("essential", "energy", "all-infos", "all-parameters")

#: Key datapoints shown on the status line when they are logged.
STATUS_POINTS: tuple[tuple[Family, int], ...] = (
    (Family.BSP, 7002),
    (Family.XTENDER, 3000),
    (Family.BSP, 7003),
    (Family.VARIOTRACK, 11004),
    (Family.VARIOSTRING, 15010),
    (Family.XTENDER, 3136),
)

_FAMILY_WORDS: dict[str, Family] = {f.value: f for f in Family}
_FAMILY_WORDS.update({"gateway": Family.RCC, "xcom": Family.RCC})

# --- records ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointSpec:
    """One entry of a group's ``points`` list, parsed but not yet resolved.

    Exactly one of ``preset``, ``number`` and ``name`` is set. ``family`` or ``address``
    restrict it to the devices of one family or to one device.
    """

    text: str
    preset: str | None = None
    number: int | None = None
    name: str | None = None
    family: Family | None = None
    address: int | None = None


@dataclass(frozen=True)
class GroupConfig:
    """Datapoints read together every ``interval`` seconds (0: back to back, no pause)."""

    name: str
    interval: float
    points: tuple[PointSpec, ...]
    offset: float = 0.0  # seconds after the aligned wall-clock tick
    devices: tuple[str, ...] | None = None  # restrict to these devices or families


@dataclass(frozen=True)
class DeviceSpec:
    """A device of a site: its address and family (BSP and BMS share address 601)."""

    address: int
    family: Family

    @property
    def name(self) -> str:
        from ..protocol import device_name

        if self.family is Family.XCOM_CAN_BMS:
            return "bms"
        return device_name(self.address)


@dataclass(frozen=True)
class SiteConfig:
    """One installation behind one link."""

    name: str
    link: str  # transport URL: tcp://, listen://, udp://, serial://
    devices: tuple[DeviceSpec, ...] | None  # None: discover by scanning
    groups: tuple[GroupConfig, ...]
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    src: int = ADDRESS_DTE
    messages: bool = True
    parameter_property: int = int(Property.VALUE_QSP)
    polite: Any = None  # engine.PolitePolicy (quiet windows, duty cycle) or None
    backoff: tuple[float, float] = DEFAULT_BACKOFF_S
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S


@dataclass(frozen=True)
class LoggerConfig:
    """The whole logger: where to write and every site."""

    out: Path | str  # a folder, or a URI (s3://...) kept as text
    sites: tuple[SiteConfig, ...]
    flush_interval: float = DEFAULT_FLUSH_INTERVAL_S
    rotate_interval: float = DEFAULT_ROTATE_INTERVAL_S
    publish_interval: float = DEFAULT_PUBLISH_INTERVAL_S
    source: str = "<options>"  # the file it came from, for messages
    journal: Path | None = None  # local journal/working folder when publishing (fleets)
    layout: str = "home"  # "home" (site=/date= folders) or "fleet" (storage/fleet_layout.py)
    writer_id: str | None = None  # name of this writer in a shared dataset's file names
    mqtt: Any = None  # MQTT: xcomlog.mqtt.MqttSettings or None (the [mqtt] table)


# --- parsing helpers ----------------------------------------------------------------------

# --- hosts, ports and link URLs ---------------------------------------------------------------

_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}\.?$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?$")


def check_host(text: str, where: str) -> str:
    """An IPv4/IPv6 address or a DNS host name, else ConfigError naming ``where``."""
    host = text.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return host
    except ValueError:
        pass
    if ":" in host or not _HOSTNAME_RE.match(host):
        raise ConfigError(
            f"{where}: {text!r} is neither an IP address (192.168.1.50, ::1) nor a host name"
        )
    return host


def check_port(value: object, where: str, *, low: int = 1) -> int:
    """A port number ``low``..65535 (int or digits), else ConfigError naming ``where``."""
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d{1,20}", text):
        raise ConfigError(f"{where}: {value!r} is not a port number ({low}-65535)")
    port = int(text)
    if not low <= port <= 65535:
        raise ConfigError(f"{where}: port {port} is out of range ({low}-65535)")
    return port


def _query_int(query: dict[str, str], key: str, where: str, low: int, high: int) -> None:
    if key not in query:
        return
    text = query[key].strip()
    if not re.fullmatch(r"\d{1,20}", text) or not low <= int(text) <= high:
        raise ConfigError(f"{where}: {key}={query[key]!r} is out of range ({low}-{high})")


def _pyserial_scheme(scheme: str) -> bool:
    """True when pyserial has a URL handler for ``scheme`` (socket, rfc2217, loop...)."""
    if not re.fullmatch(r"[a-z0-9_]+", scheme):
        return False
    try:
        return importlib.util.find_spec(f"serial.urlhandler.protocol_{scheme}") is not None
    except (ImportError, ValueError):
        return False


def check_link_url(url: str, where: str = "link") -> str:
    """Check every part of a transport URL before anything opens; returns it unchanged.

    Hosts are IP addresses or host names, ports 1-65535 (``listen://`` may use 0 for any
    free port), ``reply_port`` 1-65535, ``baud`` 1-4000000, ``allow`` a list of hosts,
    and a pyserial URL must use a scheme pyserial knows.
    """
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep:
        return text  # a bare serial device path
    if scheme == "serial":
        device, qmark, tail = rest.rpartition("?")
        if qmark and tail.startswith(("baud=", "baudrate=")):
            _query_int({"baud": tail.partition("=")[2]}, "baud", where, 1, MAX_BAUD)
        else:
            device = rest
        if "://" in device:
            check_link_url(device, where)
        elif not device:
            raise ConfigError(f"{where}: serial:// needs a device path, got {url!r}")
        return text
    if scheme not in ("tcp", "listen", "udp"):
        if not _pyserial_scheme(scheme):
            raise ConfigError(
                f"{where}: unknown link scheme {scheme!r} in {url!r} (use tcp://, listen://, "
                "udp://, serial:// or a pyserial URL such as socket://, rfc2217://, loop://)"
            )
        return text
    try:
        parts = urlsplit(text)
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=False).items()}
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot read {url!r}: {exc}") from None
    from ..links import split_host_port

    host, port_text = split_host_port(parts.netloc)
    if parts.netloc.startswith("[") and "]" not in parts.netloc:
        raise ConfigError(f"{where}: {url!r} opens an IPv6 address with [ but never closes it")
    if host or scheme != "listen":
        if not host:
            raise ConfigError(f"{where}: {url!r} needs a host")
        check_host(host, where)
    if port_text:
        check_port(port_text, where, low=0 if scheme == "listen" else 1)
    elif scheme == "tcp":
        raise ConfigError(f"{where}: {url!r} needs a port (tcp://HOST:PORT)")
    _query_int(query, "reply_port", where, 1, 65535)
    if query.get("answer_port", "any") != "any":  # UDP: the port answers come from
        _query_int(query, "answer_port", where, 1, 65535)
    for i, allowed in enumerate(filter(None, query.get("allow", "").split(","))):
        check_host(allowed, f"{where} allow[{i}]")
    if "bind" in query and query["bind"]:
        check_host(query["bind"], f"{where} bind")
    return text


def _family_word(word: str) -> Family | None:
    return _FAMILY_WORDS.get(word.strip().lower())


def parse_device_spec(text: str | int, where: str = "device") -> DeviceSpec:
    """``"xt1"``, ``"vs2"``, ``"bsp"``, ``"bms"``, ``"gateway"`` or ``101`` -> a DeviceSpec."""
    from ..protocol import family_of_address, is_multicast, is_phase

    word = str(text).strip().lower()
    if word == "bms":
        from ..protocol import ADDRESS_BSP

        return DeviceSpec(ADDRESS_BSP, Family.XCOM_CAN_BMS)
    try:
        address = parse_device(word)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    family = family_of_address(address)
    if family is None or is_multicast(address) or is_phase(address):
        raise ConfigError(
            f"{where}: {text!r} is not a single device (use xt1-xt9, vt1-vt15, vs1-vs15, bsp, bms or gateway)"
        )
    return DeviceSpec(address, family)


def parse_point(item: object, where: str = "point") -> PointSpec:
    """Parse one ``points`` entry.

    Accepted: a preset (``"essential"``), a number (``3000`` or ``"3000"``), a catalog
    name (``"Battery voltage"``), each optionally prefixed by a family or a device and a
    colon: ``"bsp:7002"``, ``"xt1:3000"``, ``"vs:essential"``, ``"xt:Battery voltage"``.
    """
    if isinstance(item, bool) or not isinstance(item, (int, str)):
        raise ConfigError(f"{where}: expected a number, a name or a preset, got {item!r}")
    if isinstance(item, int):
        return _number_point(str(item), item, where)
    text = item.strip()
    if not text:
        raise ConfigError(f"{where}: empty point")
    family: Family | None = None
    address: int | None = None
    body = text
    if ":" in text:
        head, body = (part.strip() for part in text.split(":", 1))
        family = _family_word(head)
        if family is None or head.lower() == "gateway":
            device = parse_device_spec(head, f"{where} {text!r}")
            family, address = device.family, device.address
        if not body:
            raise ConfigError(f"{where}: nothing after {head!r}: in {text!r}")
    lowered = body.lower()
    if lowered in PRESETS:
        return PointSpec(text, preset=lowered, family=family, address=address)
    if body.isdigit():
        return _number_point(text, int(body), where, family, address)
    return PointSpec(text, name=body, family=family, address=address)


def _number_point(
    text: str, number: int, where: str, family: Family | None = None, address: int | None = None
) -> PointSpec:
    if not 1 <= number <= 0xFFFF:
        raise ConfigError(f"{where}: datapoint number {number} is out of range 1..65535")
    return PointSpec(text, number=number, family=family, address=address)


def link_url(spec: object, where: str = "link") -> str:
    """Normalise a link to a transport URL.

    A string is taken as a URL (``tcp://``, ``listen://``, ``udp://``, ``serial://``); a
    bare ``HOST:PORT`` means TCP and a path starting with ``/`` or ``COM`` a serial port.
    A table takes one of ``tcp``, ``listen``, ``udp``, ``serial`` plus ``baud`` /
    ``reply_port``.
    """
    if isinstance(spec, str):
        text = spec.strip()
        if "://" in text:
            return check_link_url(text, where)
        if text.startswith("/") or text.upper().startswith("COM"):
            return f"serial://{text}"
        if re.match(r"^[^:/\s]+:\d+$", text):
            return check_link_url(f"tcp://{text}", where)
        raise ConfigError(
            f"{where}: cannot read link {text!r} (use tcp://HOST:PORT, listen://HOST:PORT, "
            "udp://HOST:PORT, serial:///dev/ttyUSB0 or a table)"
        )
    if isinstance(spec, Mapping):
        kinds = [k for k in ("tcp", "listen", "udp", "serial") if k in spec]
        if len(kinds) != 1:
            raise ConfigError(
                f"{where}: give exactly one of tcp, listen, udp, serial, got {sorted(spec)}"
            )
        kind = kinds[0]
        unknown = set(spec) - {kind, "baud", "reply_port"}
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        target = str(spec[kind])
        query = []
        if "baud" in spec:
            query.append(f"baud={_int(spec['baud'], f'{where}.baud', 50, 4_000_000)}")
        if "reply_port" in spec:
            query.append(f"reply_port={_int(spec['reply_port'], f'{where}.reply_port', 1, 65535)}")
        url = f"{kind}://{quote(target, safe='/:.[]') if kind == 'serial' else target}"
        return check_link_url(url + ("?" + "&".join(query) if query else ""), where)
    raise ConfigError(f"{where}: expected a URL string or a table, got {spec!r}")


def _int(value: object, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where}: must be {low}..{high}, got {value}")
    return value


def _str_list(value: object, where: str) -> list:
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    raise ConfigError(f"{where}: expected a list, got {value!r}")


def _check_keys(table: Mapping, allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


_GROUP_KEYS = {"name", "interval", "points", "offset", "devices"}
_SITE_KEYS = {
    "name",
    "link",
    "devices",
    "groups",
    "group",
    "timeout",
    "retries",
    "src",
    "messages",
    "parameter_property",
    "polite",
    "backoff",
    "connect_timeout",
}
_TOP_KEYS = {
    "out",
    "flush_interval",
    "rotate_interval",
    "publish_interval",
    "site",
    "group",
    "defaults",
    "journal",
    "layout",
    "writer_id",
    "mqtt",  # MQTT
}
_DEFAULT_KEYS = _SITE_KEYS - {"name", "link", "group", "groups"}


def parse_group(table: Mapping, where: str) -> GroupConfig:
    """Check one ``[[group]]`` table."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    _check_keys(table, _GROUP_KEYS, where)
    name = str(table.get("name", "")).strip()
    if not name:
        raise ConfigError(f"{where}: a group needs a name")
    interval = parse_duration(
        table.get("interval", DEFAULT_INTERVAL_S), f"{where}.interval", maximum=MAX_INTERVAL_S
    )
    offset = parse_duration(table.get("offset", 0), f"{where}.offset", maximum=MAX_INTERVAL_S)
    if interval and offset >= interval:
        raise ConfigError(f"{where}.offset: must be below the interval ({interval:g} s)")
    if "points" not in table:
        raise ConfigError(f'{where}: a group needs points (e.g. points = ["essential"])')
    items = _str_list(table["points"], f"{where}.points")
    if not items:
        raise ConfigError(f"{where}.points: empty list")
    points = tuple(parse_point(p, f"{where}.points[{i}]") for i, p in enumerate(items))
    devices = None
    if "devices" in table:
        devices = tuple(
            str(d).strip().lower() for d in _str_list(table["devices"], f"{where}.devices")
        )
        for i, word in enumerate(devices):
            if _family_word(word) is None:
                parse_device_spec(word, f"{where}.devices[{i}]")
    return GroupConfig(name, interval, points, offset, devices)


def _parse_polite(value: object, where: str):
    """The client's polite mode: ``{ quiet = "23:50-00:20", duty_cycle = 0.5, tz = "Europe/Zurich" }``
    (or ``clock = "installation"`` instead of ``tz``: windows on the installation's clock)."""
    if value in (None, False):
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a table with quiet, duty_cycle and/or tz")
    _check_keys(value, {"quiet", "duty_cycle", "tz", "clock"}, where)
    from ..engine import PolitePolicy

    quiet = value.get("quiet", ())
    if isinstance(quiet, str):
        quiet = [quiet]
    if not isinstance(quiet, Sequence) or not all(isinstance(q, str) for q in quiet):
        raise ConfigError(f'{where}.quiet: expected "HH:MM-HH:MM" or a list of them')
    duty = value.get("duty_cycle", 1.0)
    if isinstance(duty, bool) or not isinstance(duty, (int, float)):
        raise ConfigError(f"{where}.duty_cycle: expected a number in (0, 1]")
    tz = value.get("tz")
    clock = value.get("clock", "local")  # "installation": the RCC clock {5002}
    try:
        return PolitePolicy.parse(list(quiet), duty_cycle=float(duty), tz=tz, clock=clock)
    except (ValueError, KeyError) as exc:  # bad window, duty cycle or unknown zone
        raise ConfigError(f"{where}: {exc}") from None


def _parse_parameter_property(value: object, where: str) -> int:
    words = {"value": Property.VALUE_QSP, "unsaved": Property.UNSAVED_VALUE_QSP}
    if isinstance(value, str) and value.lower() in words:
        return int(words[value.lower()])
    raise ConfigError(f"{where}: use 'value' (saved value_qsp) or 'unsaved' (unsaved_value_qsp)")


def parse_site(
    table: Mapping, where: str, groups: Mapping[str, GroupConfig], defaults: Mapping
) -> SiteConfig:
    """Check one ``[[site]]`` table; top-level groups and defaults fill what it leaves out."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    _check_keys(table, _SITE_KEYS, where)
    merged = {**defaults, **table}
    name = str(merged.get("name", "")).strip()
    if not name:
        raise ConfigError(f"{where}: a site needs a name")
    from ..dataset import check_site

    try:
        check_site(name)
    except ValueError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    if "link" not in merged:
        raise ConfigError(
            f'{where}: site {name!r} needs a link (e.g. link = "tcp://192.168.1.50:4001")'
        )
    link = link_url(merged["link"], f"{where}.link")
    devices: tuple[DeviceSpec, ...] | None = None
    raw_devices = merged.get("devices", "auto")
    if raw_devices != "auto":
        items = _str_list(raw_devices, f"{where}.devices")
        devices = tuple(parse_device_spec(d, f"{where}.devices[{i}]") for i, d in enumerate(items))
        if len(set(devices)) != len(devices):
            raise ConfigError(f"{where}.devices: a device is listed twice")
        if not devices:
            raise ConfigError(f'{where}.devices: empty list (use "auto" to scan)')
    chosen: list[GroupConfig] = []
    if "groups" in table:
        for i, group_name in enumerate(_str_list(table["groups"], f"{where}.groups")):
            if group_name not in groups:
                raise ConfigError(
                    f"{where}.groups[{i}]: no [[group]] named {group_name!r} "
                    f"(known: {', '.join(groups) or 'none'})"
                )
            chosen.append(groups[group_name])
    elif "group" not in table:
        chosen.extend(groups.values())
    for i, group_table in enumerate(_table_list(table.get("group", []), f"{where}.group")):
        chosen.append(parse_group(group_table, f"{where}.group[{i}]"))
    if not chosen:
        raise ConfigError(f"{where}: site {name!r} has nothing to log: add a [[group]]")
    names = [g.name for g in chosen]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: group names must be unique, got {names}")
    timeout = parse_duration(
        merged.get("timeout", DEFAULT_TIMEOUT_S),
        f"{where}.timeout",
        maximum=MAX_TIMEOUT_S,
        positive=True,
    )
    retries = _int(merged.get("retries", DEFAULT_RETRIES), f"{where}.retries", 0, MAX_RETRIES)
    src = _int(merged.get("src", ADDRESS_DTE), f"{where}.src", 1, 99)
    messages = merged.get("messages", True)
    if not isinstance(messages, bool):
        raise ConfigError(f"{where}.messages: expected true or false")
    prop = int(Property.VALUE_QSP)
    if "parameter_property" in merged:
        prop = _parse_parameter_property(
            merged["parameter_property"], f"{where}.parameter_property"
        )
    polite = _parse_polite(merged.get("polite"), f"{where}.polite")
    connect_timeout = parse_duration(
        merged.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT_S),
        f"{where}.connect_timeout",
        maximum=MAX_CONNECT_TIMEOUT_S,
        positive=True,
    )
    backoff = DEFAULT_BACKOFF_S
    if "backoff" in merged:
        pair = _str_list(merged["backoff"], f"{where}.backoff")
        if len(pair) != 2:
            raise ConfigError(f"{where}.backoff: expected [first, largest] reconnect delays")
        first = parse_duration(pair[0], f"{where}.backoff[0]", maximum=MAX_BACKOFF_S)
        largest = parse_duration(pair[1], f"{where}.backoff[1]", maximum=MAX_BACKOFF_S)
        if not 0 < first <= largest:
            raise ConfigError(f"{where}.backoff: need 0 < first <= largest")
        backoff = (first, largest)
    return SiteConfig(
        name=name,
        link=link,
        devices=devices,
        groups=tuple(chosen),
        timeout=timeout,
        retries=retries,
        src=src,
        messages=messages,
        parameter_property=prop,
        polite=polite,
        backoff=backoff,
        connect_timeout=connect_timeout,
    )


def _table_list(value: object, where: str) -> list[Mapping]:
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return value
    raise ConfigError(f"{where}: expected [[...]] tables")


def config_from_dict(
    data: Mapping[str, Any], *, base_dir: Path | None = None, source: str = "<dict>"
) -> LoggerConfig:
    """Check a parsed TOML document; relative ``out`` paths are taken from ``base_dir``."""
    where = source
    try:
        _check_keys(data, _TOP_KEYS, where)
        groups: dict[str, GroupConfig] = {}
        for i, table in enumerate(_table_list(data.get("group", []), f"{where}: group")):
            group = parse_group(table, f"{where}: group[{i}]")
            if group.name in groups:
                raise ConfigError(f"{where}: group[{i}]: duplicate group name {group.name!r}")
            groups[group.name] = group
        defaults = data.get("defaults", {})
        if not isinstance(defaults, Mapping):
            raise ConfigError(f"{where}: [defaults] must be a table")
        _check_keys(defaults, _DEFAULT_KEYS, f"{where}: defaults")
        site_tables = _table_list(data.get("site", []), f"{where}: site")
        if not site_tables:
            raise ConfigError(f"{where}: no [[site]]: name at least one installation and its link")
        sites = tuple(
            parse_site(t, f"{where}: site[{i}]", groups, defaults)
            for i, t in enumerate(site_tables)
        )
        seen: set[str] = set()
        for site in sites:
            if site.name in seen:
                raise ConfigError(f"{where}: two sites are named {site.name!r}")
            seen.add(site.name)
        out, journal, layout, writer_id = _storage_options(data, base_dir, where)
        flush = parse_duration(
            data.get("flush_interval", DEFAULT_FLUSH_INTERVAL_S),
            f"{where}: flush_interval",
            maximum=MAX_FLUSH_INTERVAL_S,
            positive=True,
        )
        rotate = parse_duration(
            data.get("rotate_interval", DEFAULT_ROTATE_INTERVAL_S),
            f"{where}: rotate_interval",
            maximum=MAX_ROTATE_INTERVAL_S,
            positive=True,
        )
        publish = parse_duration(
            data.get("publish_interval", DEFAULT_PUBLISH_INTERVAL_S),
            f"{where}: publish_interval",
            maximum=MAX_PUBLISH_INTERVAL_S,
            positive=True,
        )
        mqtt = None  # MQTT: the optional [mqtt] table
        if data.get("mqtt") is not None:
            from ..mqtt.settings import settings_from_dict

            if not isinstance(data["mqtt"], Mapping):
                raise ConfigError(f"{where}: [mqtt] must be a table")
            mqtt = settings_from_dict(data["mqtt"], f"{where}: mqtt")
    except ConfigError:
        raise
    return LoggerConfig(
        out=out,
        sites=sites,
        flush_interval=flush,
        rotate_interval=rotate,
        publish_interval=publish,
        source=source,
        journal=journal,
        layout=layout,
        writer_id=writer_id,
        mqtt=mqtt,
    )


def _storage_options(
    data: Mapping[str, Any], base_dir: Path | None, where: str
) -> tuple[Path | str, Path | None, str, str | None]:
    """``out`` (a folder relative to ``base_dir``, or a URI such as s3://bucket/prefix kept
    as text), ``journal`` (a local folder), ``layout`` and ``writer_id``."""
    from ..storage.filesystem import is_uri
    from ..storage.fleet_layout import LAYOUTS

    def local(text: str) -> Path:
        path = Path(text).expanduser()
        return base_dir / path if not path.is_absolute() and base_dir is not None else path

    raw_out = data.get("out", "data")
    if not isinstance(raw_out, (str, Path)) or not str(raw_out).strip():
        raise ConfigError(
            f'{where}: out: expected a folder or URI (e.g. out = "data"), got {raw_out!r}'
        )
    text = str(raw_out)
    out: Path | str = text if is_uri(text) else local(text)
    journal = data.get("journal")
    journal = local(str(journal)) if journal is not None else None
    layout = str(data.get("layout", "home"))
    if layout not in LAYOUTS:
        raise ConfigError(f"{where}: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    writer_id = data.get("writer_id")
    if writer_id is not None:
        writer_id = str(writer_id)
        if not writer_id or not all(c.isalnum() or c in "-_" for c in writer_id):
            raise ConfigError(f"{where}: writer_id {writer_id!r}: use letters, digits, '-', '_'")
    return out, journal, layout, writer_id


def load_config(
    path: str | Path,
    *,
    out: str | Path | None = None,
    journal: str | Path | None = None,
    layout: str | None = None,
) -> LoggerConfig:
    """Read and check a TOML configuration file; ``out``, ``journal`` and ``layout`` override
    the file's."""
    path = Path(path)
    if tomllib is None:  # pragma: no cover - Python 3.10 without tomli
        raise ConfigError(
            "reading TOML on Python 3.10 needs the 'tomli' package: pip install tomli"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid TOML: arrays or tables nested too deeply") from None
    if out is not None:
        data["out"] = str(out)
    for key, value in (("journal", journal), ("layout", layout)):
        if value is not None:
            data[key] = str(value)
    return config_from_dict(data, base_dir=path.parent, source=str(path))


def simple_config(
    link: str,
    out: str | Path,
    *,
    site: str = "site",
    interval: float | str = DEFAULT_INTERVAL_S,
    points: Sequence[str | int] = ("essential",),
    devices: Sequence[str] | str = "auto",
    timeout: float | str = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    flush_interval: float | str = DEFAULT_FLUSH_INTERVAL_S,
    messages: bool = True,
    polite: Mapping | None = None,
    connect_timeout: float | str = DEFAULT_CONNECT_TIMEOUT_S,
    journal: str | Path | None = None,
    layout: str = "home",
) -> LoggerConfig:
    """The configuration of ``xcomlog log --tcp HOST:PORT --out DIR`` without a file.

    Same names, defaults and duration syntax (``2``, ``"500ms"``, ``"1min"``) as the TOML
    file and the command line (``xcomlog.options``).
    """
    group = {"name": "main", "interval": interval, "points": list(points)}
    table: dict[str, Any] = {
        "out": str(out),
        "layout": layout,
        **({"journal": str(journal)} if journal is not None else {}),
        "flush_interval": flush_interval,
        "group": [group],
        "site": [
            {
                "name": site,
                "link": link,
                "devices": devices if isinstance(devices, str) else list(devices),
                "timeout": timeout,
                "retries": retries,
                "messages": messages,
                "connect_timeout": connect_timeout,
                **({"polite": dict(polite)} if polite else {}),
            }
        ],
    }
    return config_from_dict(table, source="options")
