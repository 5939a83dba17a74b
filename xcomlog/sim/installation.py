"""The virtual installation: which devices the simulator answers for, set in code or a file.

An :class:`Installation` is a small value object: counts of Xtenders (with their phases),
VarioTracks, VarioStrings, a BSP or Xcom-CAN BMS, plus a few physical sizes that drive the
moving values. It loads from TOML or JSON so ``xcomlog sim --config site.toml`` works.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..exceptions import ValidationError
from ..protocol import (
    ADDRESS_BSP,
    ADDRESS_GATEWAY,
    Family,
    vs,
    vt,
    xt,
)

#: Families of the optional battery device at address 601.
BATTERY_DEVICES = {"bsp": Family.BSP, "bms": Family.XCOM_CAN_BMS}

#: Readable model names, as the SD-card datalog trailer lists them.
_MODELS = {
    Family.XTENDER: "XTH 8000-48",
    Family.VARIOTRACK: "VarioTrack",
    Family.VARIOSTRING: "VarioString VS120",
    Family.BSP: "BSP",
    Family.XCOM_CAN_BMS: "Xcom-CAN BMS",
    Family.RCC: "Xcom-232i",
}


@dataclass(frozen=True)
class Device:
    """One simulated device: its bus address, family, 1-based index and (Xtenders) phase."""

    address: int
    family: Family
    index: int
    phase: int | None = None
    model: str = ""
    software: tuple[int, int, int] = (1, 6, 30)
    fid: int = 0

    @property
    def name(self) -> str:
        """Short readable name such as ``xt1``, ``vs2``, ``bsp`` or ``gateway``."""
        from ..protocol import device_name

        return device_name(self.address)


@dataclass(frozen=True)
class Installation:
    """A virtual Studer installation; the default is what ``xcomlog sim`` and the demo use.

    ``phases`` gives the phase (1-3) of each Xtender; when omitted every Xtender is on L1.
    ``battery`` is ``"bsp"``, ``"bms"`` (Xcom-CAN BMS) or ``None``. Sizes are per device.
    ``timezone`` is the zone of the installation's clock: Studer devices keep local wall
    time, so their timestamps are local time written as if it were UTC.
    """

    xtenders: int = 2
    variotracks: int = 1
    variostrings: int = 2
    battery: str | None = "bsp"
    phases: tuple[int, ...] | None = None
    site: str = "sim"
    timezone: str = "UTC"
    battery_ah: float = 400.0
    battery_cells: int = 24
    pv_peak_kw: float = 3.0
    load_kw: float = 1.2
    grid: bool = True
    guid: str | None = None
    sd_card: bool = True
    sd_days: int = 3
    messages: int = 12
    replay: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        def check(name: str, value: int, low: int, high: int) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValidationError(f"installation: {name} must be {low}..{high}, got {value!r}")

        check("xtenders", self.xtenders, 0, 9)
        check("variotracks", self.variotracks, 0, 15)
        check("variostrings", self.variostrings, 0, 15)
        check("battery_cells", self.battery_cells, 1, 64)
        check("sd_days", self.sd_days, 0, 366)
        check("messages", self.messages, 0, 100_000)
        if self.battery is not None and self.battery not in BATTERY_DEVICES:
            raise ValidationError(
                f"installation: battery must be one of {sorted(BATTERY_DEVICES)} or none, "
                f"got {self.battery!r}"
            )
        if self.phases is not None:
            phases = tuple(self.phases)
            if len(phases) != self.xtenders:
                raise ValidationError(
                    f"installation: phases lists {len(phases)} Xtenders, xtenders is {self.xtenders}"
                )
            for p in phases:
                if p not in (1, 2, 3):
                    raise ValidationError(f"installation: a phase must be 1, 2 or 3, got {p!r}")
            object.__setattr__(self, "phases", phases)
        for name in ("battery_ah", "pv_peak_kw", "load_kw"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValidationError(f"installation: {name} must be a number >= 0, got {value!r}")
        if self.guid is not None:
            try:
                raw = bytes.fromhex(self.guid.replace("-", ""))
            except ValueError:
                raw = b""
            if len(raw) != 16:
                raise ValidationError(
                    f"installation: guid must be 32 hex digits, got {self.guid!r}"
                )
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(self.timezone)
        except Exception:
            raise ValidationError(f"installation: unknown timezone {self.timezone!r}") from None

    # --- devices -------------------------------------------------------------------

    @property
    def battery_family(self) -> Family | None:
        """BSP or XCOM_CAN_BMS when a battery device answers at 601, else None."""
        return None if self.battery is None else BATTERY_DEVICES[self.battery]

    def xt_phase(self, index: int) -> int:
        """Phase (1-3) of Xtender ``index`` (1-based)."""
        return self.phases[index - 1] if self.phases else 1

    @property
    def devices(self) -> tuple[Device, ...]:
        """Every device on the bus, gateway last, in address order per family."""
        seed = zlib.crc32(self.site.encode())
        out: list[Device] = []

        def fid(address: int) -> int:
            return (zlib.crc32(address.to_bytes(2, "little"), seed) | 0x01000000) & 0x7FFFFFFF

        for i in range(1, self.xtenders + 1):
            a = xt(i)
            out.append(
                Device(a, Family.XTENDER, i, self.xt_phase(i), _MODELS[Family.XTENDER], fid=fid(a))
            )
        for i in range(1, self.variotracks + 1):
            a = vt(i)
            out.append(
                Device(a, Family.VARIOTRACK, i, None, _MODELS[Family.VARIOTRACK], fid=fid(a))
            )
        for i in range(1, self.variostrings + 1):
            a = vs(i)
            out.append(
                Device(a, Family.VARIOSTRING, i, None, _MODELS[Family.VARIOSTRING], fid=fid(a))
            )
        fam = self.battery_family
        if fam is not None:
            out.append(Device(ADDRESS_BSP, fam, 1, None, _MODELS[fam], fid=fid(ADDRESS_BSP)))
        out.append(
            Device(
                ADDRESS_GATEWAY, Family.RCC, 1, None, _MODELS[Family.RCC], fid=fid(ADDRESS_GATEWAY)
            )
        )
        return tuple(out)

    def guid_bytes(self) -> bytes:
        """The 16 GUID bytes: the configured one, else derived from the site name."""
        if self.guid is not None:
            return bytes.fromhex(self.guid.replace("-", ""))
        a = zlib.crc32(self.site.encode())
        words = [zlib.crc32(bytes([i]), a) for i in range(4)]
        return b"".join(w.to_bytes(4, "little") for w in words)

    # --- files ---------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Installation:
        """Build from a mapping (a parsed file); unknown keys are an error that names them."""
        if "installation" in data and isinstance(data["installation"], Mapping):
            data = data["installation"]
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        aliases = {"xt": "xtenders", "vt": "variotracks", "vs": "variostrings", "bsp": "battery"}
        kwargs: dict[str, Any] = {}
        unknown = []
        for key, value in data.items():
            key = aliases.get(key, key)
            if key not in names:
                unknown.append(key)
                continue
            if key == "battery" and value in (False, "none", "", "no"):
                value = None
            elif key == "battery" and value is True:
                value = "bsp"
            if key == "phases" and value is not None:
                value = tuple(value)
            kwargs[key] = value
        if unknown:
            raise ValidationError(
                f"installation: unknown key(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(names))}"
            )
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValidationError(f"installation: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Installation:
        """Load a ``.toml`` or ``.json`` file (keys at top level or in ``[installation]``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValidationError(f"cannot read installation file {path}: {exc}") from None
        if path.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}: invalid JSON: {exc}") from None
        else:
            try:
                import tomllib
            except ModuleNotFoundError:  # Python 3.10
                try:
                    import tomli as tomllib  # type: ignore[no-redef]
                except ModuleNotFoundError:
                    raise ValidationError(
                        f"{path}: reading TOML needs Python 3.11+ (or tomli); use a .json file"
                    ) from None
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValidationError(f"{path}: invalid TOML: {exc}") from None
        if not isinstance(data, Mapping):
            raise ValidationError(f"{path}: expected a table of settings")
        return cls.from_dict(data)
