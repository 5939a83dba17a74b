"""``mqtt://[user:pass@]HOST[:PORT]`` and ``mqtts://`` broker URLs, checked into one record."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..exceptions import ConfigError

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in (the password is never shown by repr)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None  # mqtts: a CA bundle instead of the system's

    @property
    def url(self) -> str:
        """The URL without the password, for messages."""
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """A BrokerAddress from ``mqtt://[user:pass@]HOST[:PORT]`` or ``mqtts://...?ca=FILE``."""
    text = str(url).strip()
    if "://" not in text:
        text = "mqtt://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(
            f"MQTT broker {url!r}: {exc} (expected mqtt://[user:pass@]HOST[:PORT])"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(
            f"MQTT broker {url!r}: scheme {parts.scheme!r} is not mqtt:// or mqtts://"
        )
    if not parts.hostname:
        raise ConfigError(f"MQTT broker {url!r}: no host (expected mqtt://[user:pass@]HOST[:PORT])")
    ca_file = None
    for item in filter(None, parts.query.split("&")):
        key, _, value = item.partition("=")
        if key == "ca" and scheme == "mqtts":
            ca_file = unquote(value)
        else:
            raise ConfigError(
                f"MQTT broker {url!r}: unknown option {key!r} (mqtts:// takes ?ca=FILE)"
            )
    return BrokerAddress(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        tls=scheme == "mqtts",
        ca_file=ca_file,
    )
