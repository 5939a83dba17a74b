"""Parameter writes asked over MQTT: only the listed parameters, checked against the catalog.

A command arrives on ``<prefix>/<site>/<device>/<number>_<slug>/set``. A parameter that
``writes`` does not list is refused; a listed one is validated by the catalog (format,
options, min and max at the installation's system voltage) and handed to the logger's write callable, to RAM unless ``flash``
lists it. The outcome goes back on ``.../result`` as JSON.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..exceptions import CatalogError, ValidationError, XcomError
from ..protocol import Format

log = logging.getLogger("xcomlog.mqtt")

#: ``await write(site, address, number, value, flash)``: the logger sends it on the site's link.
WriteCallable = Callable[[str, int, int, object, bool], Awaitable[None]]


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one command (published as JSON on the result topic)."""

    ok: bool
    number: int
    device: str
    value: object = None
    label: str | None = None
    flash: bool = False
    error: str = ""

    def payload(self) -> str:
        body: dict = {"ok": self.ok, "number": self.number, "device": self.device}
        if self.ok:
            body.update(value=self.value, flash=self.flash)
            if self.label is not None:
                body["label"] = self.label
        else:
            body["error"] = self.error
        return json.dumps(body, ensure_ascii=False)


def parse_command_topic(topic: str, prefix: str, site: str) -> tuple[str, int] | None:
    """(device, number) of ``<prefix>/<site>/<device>/<number>_<slug>/set``, else None."""
    head = f"{prefix}/{site}/"
    if not topic.startswith(head) or not topic.endswith("/set"):
        return None
    parts = topic[len(head) : -len("/set")].split("/")
    if len(parts) != 2:
        return None
    device, point = parts
    digits = point.split("_", 1)[0]
    if not digits.isdigit():
        return None
    return device, int(digits)


def writable_info(dp) -> dict:
    """min, max, step and the kind of control (signal, bool) of a writable parameter."""
    info: dict = {}
    if dp.is_signal:
        info["signal"] = True
    elif dp.format is Format.BOOL or (
        dp.options and set(dp.options) == {0, 1} and not dp.bit_field and len(dp.options) == 2
    ):
        info["bool"] = True
    elif not dp.options:
        if dp.minimum is not None and dp.maximum is not None and dp.minimum < dp.maximum:
            info["min"], info["max"] = dp.minimum, dp.maximum
        if dp.increment:
            info["step"] = dp.increment
        elif dp.format is Format.FLOAT:
            info["step"] = 0.01
    return info


class WriteGate:
    """Decides and carries out the writes one site's commands ask for."""

    def __init__(
        self,
        writes: frozenset[int],
        flash: frozenset[int],
        catalog,
        write: WriteCallable | None,
        system_voltage: Callable[[str], int | None] | None = None,
    ) -> None:
        self.writes = writes
        self.system_voltage = system_voltage
        self.flash = flash
        self.catalog = catalog
        self.write = write
        self.refused = 0
        self.done = 0

    def datapoint(self, number: int, address: int, family: str | None = None):
        if family:
            return self.catalog.get(number, family)
        return self.catalog.at(number, address)

    async def handle(
        self,
        site: str,
        device: str,
        address: int | None,
        number: int,
        payload: bytes,
        family: str | None = None,
    ) -> WriteOutcome:
        """Check and write one command; never raises."""
        text = payload.decode("utf-8", "replace").strip()
        if number not in self.writes:
            self.refused += 1
            log.warning(
                "MQTT: %s %s %s: refused, parameter not listed for writes", site, device, number
            )
            return WriteOutcome(
                False,
                number,
                device,
                error=f"parameter {number} is not writable over MQTT: list it in --mqtt-writes (or [mqtt] writes)",
            )
        if address is None:
            self.refused += 1
            return WriteOutcome(
                False, number, device, error=f"unknown device {device!r} at site {site}"
            )
        try:
            dp = self.datapoint(number, address, family)
            if dp.kind != "parameter":
                raise ValidationError(f"{dp} is not a parameter")
            volts = self.system_voltage(site) if self.system_voltage is not None else None
            if volts is None and dp.scales_with_system_voltage:
                raise ValidationError(
                    f"{dp}: its limits depend on the system voltage, which the logger has "
                    "not read yet from the installation; try again once it polls"
                )
            value = self.catalog.validate(dp, text, system_voltage=volts)
        except (ValidationError, CatalogError) as exc:
            self.refused += 1
            return WriteOutcome(False, number, device, error=str(exc))
        if self.write is None:
            self.refused += 1
            return WriteOutcome(
                False, number, device, error="this logger has no link to write with"
            )
        flash = number in self.flash
        try:
            await self.write(site, address, number, value, flash)
        except (XcomError, OSError, TimeoutError) as exc:
            self.refused += 1
            return WriteOutcome(False, number, device, error=f"the write failed: {exc}")
        self.done += 1
        log.info(
            "MQTT: %s %s %s = %r written to %s",
            site,
            device,
            number,
            value,
            "flash" if flash else "RAM",
        )
        number_value = int(value) if isinstance(value, bool) else value
        return WriteOutcome(
            True,
            number,
            device,
            value=number_value,
            label=self.catalog.label(dp, value),
            flash=flash,
        )
