"""Studer SD-card datalogs (``CSVFILES/LOG/LGyymmdd.CSV``): one day file parsed into columns
mapped to (address, number), local minutes, a float32 value matrix and the trailers.

The format, as written by the RCC-02/03 and Xcom-232i/LAN (versions v6.4 ... v7.x seen):

* Latin-1 text, separator ``,`` or ``;`` (the decimal mark is always ``.``).
* Three header lines: (1) the format version, then one ``NAME [unit]`` label per column, given
  on the first column of a group only; (2) the user-info number of each column (``I3090``);
  (3) the device or phase of each column (``L1``, ``L2-2``, ``1``, ``ALL``).
* One row per minute: ``DD.MM.YYYY HH:MM`` on the installation's local clock, then the values;
  a data row carries one more (empty) field than the header. Cells may be empty or ``nan``.
* After the data: parameter lines (``P1107;v1;v2;v3;``), daily counter lines (``I3081;...``)
  and an inventory of the devices (``L1-1:XTH 8000-48 ... Soft:1.5.32 ... FID:39FCAAF2``).

Columns are keyed on number and device, never on the label (labels change between versions).
Address rule (documented in the README):

* ``Lp-k`` -> the k-th Xtender, 100 + k (the inventory names each unit ``Lp-k``: on phase p,
  index k on the bus, the index the RCC displays);
* ``L1``/``L2``/``L3`` -> the phase addresses 191-193 (the specification defines them as the
  value of the master of the phase); with ``phase_columns="auto"`` (default) a file of a
  single Xtender maps ``L1`` to that Xtender's own address 101, so imported days and a live
  logger reading ``xt1`` meet in one series;
* ``1``..``15`` -> that VarioTrack (301..), VarioString (701..), Xtender (101..) or the BSP
  (601); ``ALL`` -> the family's multicast address (100, 300, 600, 700): the aggregate;
* infos that belong to no device family (``DEV SYS``, ``Solar power (ALL)``: I17997-I17999)
  -> the gateway 501.

The family of a column comes from the datapoint catalog (``xcomlog.catalog``); the label
prefix (``XT-``, ``VT-``, ``VS-``, ``BSP-``) breaks ties and covers numbers it does not know.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from .exceptions import ConfigError, DatalogError
from .protocol import (
    ADDRESS_GATEWAY,
    FAMILY_ADDRESSES,
    Family,
    device_name,
    phase,
    vs,
    vt,
    xt,
)

log = logging.getLogger("xcomlog.sdcard")

ENCODING = "latin-1"
TIME_FORMAT = "%d.%m.%Y %H:%M"
HEADER_LINES = 3

#: A line that starts a data row.
_ROW_START = re.compile(rb"\d\d\.\d\d\.\d{4} \d\d:\d\d")
_NAME_RE = re.compile(r"LG(\d{2})(\d{2})(\d{2})", re.IGNORECASE)
_LABEL_RE = re.compile(r"^(.*?)\s*\[(.*)\]\s*$")
_FAMILY_PREFIX_RE = re.compile(r"^(?:DEV\s+)?(XT|VT|VS|BSP|BMS)-", re.IGNORECASE)
_PHASE_RE = re.compile(r"^L([123])$", re.IGNORECASE)
# Numbers are bounded (device indexes, datapoint numbers up to 65535): a damaged line of
# thousands of digits is then an unrecognised line, not an int() conversion error.
_UNIT_RE = re.compile(r"^L([123])-(\d{1,3})$", re.IGNORECASE)
_INVENTORY_RE = re.compile(r"^(L[123]-\d{1,3}|\d{1,3}):(.*)$", re.IGNORECASE)
_TRAILER_RE = r"^([PI])(\d{1,5})\s*"
_NUMERIC_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_ASCII_MASK = bytes(range(128)) + b"?" * 128
_NULL_CELLS = ["", "nan", "NaN", "NAN", "-nan", "-NaN", "+nan"]

_PREFIX_FAMILIES = {
    "XT": Family.XTENDER,
    "VT": Family.VARIOTRACK,
    "VS": Family.VARIOSTRING,
    "BSP": Family.BSP,
    "BMS": Family.XCOM_CAN_BMS,
}

PHASE_COLUMNS = ("auto", "phase")


# --- records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One value column of a datalog and where it goes in the dataset."""

    field: int  # position in a data row (0 is the time)
    number: int  # user-info number (I3090 -> 3090)
    device: str  # device token as written: L1, L2-2, 1, ALL
    label: str  # label of the column's group, unit removed ("XT-Ubat- (MIN)")
    unit: str  # unit with the degree sign normalised ("°C")
    family: Family | None  # None: the gateway (DEV SYS, Solar power)
    address: int
    integer: bool = False  # written without decimals (enum columns)

    @property
    def key(self) -> tuple[int, int]:
        """(address, number): the series this column feeds."""
        return (self.address, self.number)


@dataclass(frozen=True)
class Issue:
    """Something of the file that was not imported, and why."""

    line: int | None  # 1-based line in the file (None: the whole file or a column)
    reason: str
    text: str = ""


@dataclass(frozen=True)
class TrailerValue:
    """One value of a parameter line (``P1107``) or a daily counter line (``I3081``)."""

    kind: str  # "parameter" | "info"
    number: int
    address: int
    value: float
    family: Family | None


@dataclass(frozen=True)
class InventoryDevice:
    """One line of the device inventory at the end of a datalog."""

    token: str  # L1-1, 2
    family: Family | None
    address: int
    device: str  # short name: xt1, vs2, bsp, rcc1
    model: str
    firmware: str | None
    serial: str | None  # the FID
    detail: str  # the rest: phase, Cmd, Pwr, Params versions


@dataclass
class Datalog:
    """A parsed SD-card day file. ``data[i, j]`` is column ``columns[j]`` at ``local_times[i]``
    (NaN for empty and ``nan`` cells)."""

    name: str
    version: str
    separator: str
    columns: list[Column]
    local_times: np.ndarray  # datetime64[m], the file's wall clock
    data: np.ndarray  # float32, shape (rows, columns)
    parameters: list[TrailerValue] = field(default_factory=list)
    counters: list[TrailerValue] = field(default_factory=list)
    devices: list[InventoryDevice] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    truncated: bool = False  # the file ends before its trailer
    custom_text: str | None = None  # the custom datalog field (section 4.7), if any
    header: tuple[str, str, str] = ("", "", "")
    field_count: int = 0  # fields of a data row
    trailer: str = ""  # the trailer text as read (for rendering)

    @property
    def rows(self) -> int:
        """Number of complete data rows kept."""
        return int(self.data.shape[0])

    @property
    def day(self) -> dt.date:
        """The local day of the file: from its name (LGyymmdd), else the date of its rows."""
        day = file_day(self.name, self.local_times)
        if day is None:
            raise DatalogError(f"{self.name}: no day in the file name and no data row")
        return day

    @property
    def key(self) -> str:
        """Deterministic name of this source day: ``LGyymmdd`` (upper case)."""
        return f"LG{self.day:%y%m%d}"

    def labels(self) -> list[tuple[int, int, str, str, str, str]]:
        """(address, number, name, unit, family, kind) of each column, as in the CSV header."""
        return [
            (c.address, c.number, c.label, c.unit, c.family.value if c.family else "", "info")
            for c in self.columns
        ]

    def utc_ms(self, tz: str | dt.tzinfo) -> np.ndarray:
        """UTC times of the rows in ms since the epoch (int64), DST days included."""
        return local_to_utc_ms(self.local_times, tz)

    def trailer_time_ms(self, tz: str | dt.tzinfo, utc: np.ndarray | None = None) -> int:
        """When the trailers hold: the last data row, or the end of the day without rows."""
        if utc is None:
            utc = self.utc_ms(tz)
        if len(utc):
            return int(utc[-1])
        end = np.array([np.datetime64(self.day + dt.timedelta(days=1), "m")])
        return int(local_to_utc_ms(end, tz)[0])

    def to_bytes(self) -> bytes:
        """The file as the datalogger writes it (header, rows, trailer), Latin-1 encoded.

        Values are written with two decimals, enum columns as integers; used to make
        realistic test and benchmark files from real ones.
        """
        return render(self)


def file_day(name: str, local_times: np.ndarray) -> dt.date | None:
    """The local day a datalog holds: from its name (LGyymmdd), else the most common date
    of its rows (a damaged row cannot move the day); None without either."""
    match = _NAME_RE.search(Path(name).name)
    if match:
        yy, mm, dd = (int(g) for g in match.groups())
        try:
            return dt.date(2000 + yy, mm, dd)
        except ValueError:
            pass
    if len(local_times):
        days, counts = np.unique(local_times.astype("datetime64[D]"), return_counts=True)
        return days[int(np.argmax(counts))].astype(dt.date)
    return None


# --- time zones ------------------------------------------------------------------------------


def zone(tz: str | dt.tzinfo) -> dt.tzinfo:
    """A tzinfo from an IANA name (``Europe/Zurich``, ``Etc/GMT-1``, ``UTC``)."""
    if isinstance(tz, dt.tzinfo):
        return tz
    try:
        return _zone(str(tz))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(
            f"unknown time zone {tz!r}: give an IANA name such as Europe/Zurich, or a fixed "
            "offset such as Etc/GMT-1 when the datalogger clock ignores summer time"
        ) from exc


@functools.lru_cache(maxsize=32)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_EPOCH = dt.datetime(1970, 1, 1)


def _offsets(zone_: dt.tzinfo, minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTC offsets in minutes of wall-clock ``minutes`` (since the epoch, naive) for fold=0
    and fold=1; computed per hour, and per minute only in hours where the offset changes."""

    def offset(m: int, fold: int) -> int:
        wall = (_EPOCH + dt.timedelta(minutes=int(m))).replace(tzinfo=zone_, fold=fold)
        return int(wall.utcoffset().total_seconds() // 60)

    hours, inverse = np.unique(minutes // 60, return_inverse=True)
    off0 = np.empty(len(hours), dtype=np.int64)
    off1 = np.empty(len(hours), dtype=np.int64)
    mixed = []
    for i, h in enumerate(hours.tolist()):
        start, end = h * 60, h * 60 + 59
        a0, a1, b0, b1 = offset(start, 0), offset(start, 1), offset(end, 0), offset(end, 1)
        off0[i], off1[i] = a0, a1
        if a0 != b0 or a1 != b1:
            mixed.append(i)
    row0, row1 = off0[inverse], off1[inverse]
    for i in mixed:  # a transition inside the hour (zones that switch at :30, say)
        rows = np.nonzero(inverse == i)[0]
        for r in rows.tolist():
            row0[r], row1[r] = offset(minutes[r], 0), offset(minutes[r], 1)
    return row0, row1


def local_to_utc_ms(local: np.ndarray, tz: str | dt.tzinfo) -> np.ndarray:
    """UTC milliseconds (int64) of wall-clock times ``local`` (datetime64) in zone ``tz``.

    The repeated hour of an autumn DST change is resolved by row order: the datalogger writes
    the first pass (summer time) then the second (standard time), so a row whose wall time is
    not after an earlier row's is the second pass. Wall times that do not exist (the spring
    gap) are read with the offset before the change.
    """
    minutes = np.asarray(local).astype("datetime64[m]").astype(np.int64)
    if minutes.size == 0:
        return np.zeros(0, dtype=np.int64)
    off0, off1 = _offsets(zone(tz), minutes)
    offset = off0
    ambiguous = off0 > off1  # fold=0 is the earlier (summer) offset only in a repeated hour
    if ambiguous.any():
        seen = np.maximum.accumulate(minutes)
        previous = np.concatenate(([np.iinfo(np.int64).min], seen[:-1]))
        second_pass = ambiguous & (minutes <= previous)
        offset = np.where(second_pass, off1, off0)
    return (minutes - offset) * 60_000


def nonexistent_times(local: np.ndarray, tz: str | dt.tzinfo) -> int:
    """How many wall-clock times of ``local`` do not exist in zone ``tz`` (the spring gap):
    a datalogger clock that was not switched to summer time writes them."""
    minutes = np.asarray(local).astype("datetime64[m]").astype(np.int64)
    if minutes.size == 0:
        return 0
    off0, off1 = _offsets(zone(tz), minutes)
    return int((off0 < off1).sum())


def local_minutes(day: dt.date, tz: str | dt.tzinfo) -> np.ndarray:
    """The wall-clock minutes (datetime64[m]) a datalogger in zone ``tz`` writes on ``day``:
    1440 usually, 1380 on a spring DST day, 1500 in autumn (the repeated hour twice, in order)."""
    zone_ = zone(tz)

    def utc_of_midnight(d: dt.date) -> dt.datetime:
        aware = dt.datetime(d.year, d.month, d.day, tzinfo=zone_).astimezone(dt.timezone.utc)
        return aware.replace(tzinfo=None)

    start, end = utc_of_midnight(day), utc_of_midnight(day + dt.timedelta(days=1))
    utc = np.datetime64(start, "m") + np.arange(int((end - start).total_seconds() // 60))
    minutes = utc.astype(np.int64)
    offsets = np.empty(len(minutes), dtype=np.int64)

    def offset(m: int) -> int:
        instant = (_EPOCH + dt.timedelta(minutes=int(m))).replace(tzinfo=dt.timezone.utc)
        return int(instant.astimezone(zone_).utcoffset().total_seconds() // 60)

    for h in np.unique(minutes // 60).tolist():  # offsets of instants: per hour, exact
        rows = np.nonzero(minutes // 60 == h)[0]
        first, last = offset(h * 60), offset(h * 60 + 59)
        if first == last:
            offsets[rows] = first
        else:
            offsets[rows] = [offset(m) for m in minutes[rows].tolist()]
    return (minutes + offsets).astype("datetime64[m]")


# --- families and addresses ------------------------------------------------------------------


def _catalog():
    """The datapoint catalog (loaded once by xcomlog.catalog)."""
    from .catalog import load_catalog

    return load_catalog()


def label_family(label: str) -> Family | None:
    """The family named by a column label's prefix (``XT-Uin``, ``DEV VS-locEr``), or None."""
    match = _FAMILY_PREFIX_RE.match(label.strip())
    return _PREFIX_FAMILIES[match.group(1).upper()] if match else None


def datapoint_family(number: int, kind: str, hint: Family | None) -> Family | None:
    """The family of datapoint ``number`` of ``kind`` ("info" or "parameter").

    The catalog decides; ``hint`` (from the column label) breaks ties and covers numbers the
    catalog does not know. None means "no device family": the value belongs to the gateway.
    """
    families = {dp.family for dp in _catalog().find(number) if dp.kind == kind}
    if hint in families or not families:
        return hint
    if len(families) == 1:
        return families.pop()
    if families <= {Family.BSP, Family.XCOM_CAN_BMS}:
        return Family.BSP  # the same addresses either way
    return hint


def _trailer_family(number: int, kind: str, known: dict[int, Family | None]) -> Family | None:
    """Trailer lines have no label: the family of a data column with that number, else the
    catalog's (None, the gateway, for numbers it does not know such as I9012)."""
    if number in known:
        return known[number]
    return datapoint_family(number, kind, None)


def device_address(family: Family | None, index: int) -> int:
    """Address of device ``index`` (1-based) of ``family``; the gateway for no family."""
    if family is None or family is Family.RCC:
        return ADDRESS_GATEWAY
    if family is Family.XTENDER:
        return xt(index)
    if family is Family.VARIOTRACK:
        return vt(index)
    if family is Family.VARIOSTRING:
        return vs(index)
    _, first, last = FAMILY_ADDRESSES[family]
    if index != 1:
        raise ValueError(f"{family.name} has a single device, not device {index}")
    return first


def column_address(family: Family | None, token: str, *, single_xt: bool = False) -> int:
    """Address of a column from its family and device token (rule in the module docstring)."""
    token = token.strip()
    if family is None or family is Family.RCC:
        return ADDRESS_GATEWAY
    if token.upper() == "ALL":
        multicast = FAMILY_ADDRESSES[family][0]
        return ADDRESS_GATEWAY if multicast is None else multicast
    match = _UNIT_RE.match(token)
    if match:
        if family is not Family.XTENDER:
            raise ValueError(f"device {token!r} names an Xtender, not a {family.name} device")
        return xt(int(match.group(2)))
    match = _PHASE_RE.match(token)
    if match:
        if family is not Family.XTENDER:
            raise ValueError(f"phase {token!r} on a {family.name} column")
        p = int(match.group(1))
        return xt(1) if single_xt and p == 1 else phase(p)
    if token.isdigit():
        return device_address(family, int(token))
    raise ValueError(f"unknown device {token!r}")


def normalize_unit(unit: str) -> str:
    """Unit text with the degree-sign variants (Latin-1 ``°``, ``?``, UTF-8 read as Latin-1,
    the replacement character) written as ``°``."""
    unit = unit.strip()
    for bad in ("Â°", "\ufffd", "?", "º"):
        unit = unit.replace(bad, "°")
    return unit


def split_label(text: str) -> tuple[str, str]:
    """``"BSP-Tbat [°C]"`` -> (``"BSP-Tbat"``, ``"°C"``); no brackets -> (text, "")."""
    match = _LABEL_RE.match(text)
    if not match:
        return text.strip(), ""
    return match.group(1).strip(), normalize_unit(match.group(2))


# --- parsing -----------------------------------------------------------------------------------


def _detect_separator(first_line: str) -> str:
    match = re.match(r"^\s*v?[\d.]*\s*([,;])", first_line)
    if match:
        return match.group(1)
    return ";" if first_line.count(";") > first_line.count(",") else ","


def _split_header(data: bytes, name: str) -> tuple[list[str], int]:
    """The three header lines (decoded, CR stripped) and the offset of the first data byte."""
    lines, pos = [], 0
    for _ in range(HEADER_LINES):
        end = data.find(b"\n", pos)
        if end < 0:
            raise DatalogError(
                f"{name}: the file ends inside its {HEADER_LINES}-line header (truncated?)"
            )
        lines.append(data[pos:end].rstrip(b"\r").decode(ENCODING))
        pos = end + 1
    return lines, pos


def _parse_header(
    lines: list[str], sep: str, name: str, issues: list[Issue]
) -> tuple[str, list[tuple[int, int, str, str, str]]]:
    """Version and, per value column, (field, number, device, label, unit)."""
    rows = [line.split(sep) for line in lines]
    version = rows[0][0].strip()
    width = max(len(r) for r in rows)
    for r in rows:
        r.extend([""] * (width - len(r)))
    found = []
    label, unit = "", ""
    for i in range(1, width):
        text = rows[0][i].strip()
        if text:
            label, unit = split_label(text)
        token = rows[1][i].strip()
        if not token:
            continue
        number_match = re.fullmatch(r"[Ii](\d{1,5})", token)
        if not number_match or int(number_match.group(1)) > 0xFFFF:
            issues.append(Issue(2, f"column {i}: {token!r} is not a user-info number"))
            continue
        found.append((i, int(number_match.group(1)), rows[2][i].strip(), label, unit))
    if not found:
        raise DatalogError(
            f"{name}: not a Studer datalog (no user-info numbers such as I3090 on line 2)"
        )
    return version, found


def _parse_inventory(token: str, rest: str) -> InventoryDevice:
    text = rest.strip()
    keys = list(re.finditer(r"(\w+):(\S+)", text))
    model = text[: keys[0].start()].strip() if keys else text
    values = {m.group(1).lower(): m.group(2) for m in keys}
    unit = _UNIT_RE.match(token)
    if unit:
        family: Family | None = Family.XTENDER
        index = int(unit.group(2))
    else:
        index = int(token)
        low = model.lower()
        if low.startswith("xt"):
            family = Family.XTENDER
        elif "variotrack" in low or low.startswith("vt"):
            family = Family.VARIOTRACK
        elif "variostring" in low or low.startswith("vs"):
            family = Family.VARIOSTRING
        elif "bsp" in low:
            family = Family.BSP
        elif "bms" in low or "xcom-can" in low:
            family = Family.XCOM_CAN_BMS
        elif "rcc" in low or "xcom" in low:
            family = Family.RCC
        else:
            family = None
    if family in (None, Family.RCC):
        address, device = ADDRESS_GATEWAY, f"rcc{index}"
    else:
        try:
            address = device_address(family, index)
        except ValueError:
            address = FAMILY_ADDRESSES[family][1]
        device = device_name(address)
    detail = [f"phase=L{unit.group(1)}"] if unit else []
    detail += [m.group(0) for m in keys if m.group(1).lower() not in ("soft", "fid")]
    return InventoryDevice(
        token=token,
        family=family,
        address=address,
        device=device,
        model=model,
        firmware=values.get("soft"),
        serial=values.get("fid"),
        detail=" ".join(detail),
    )


def _parse_trailer(text: str, sep: str, first_line: int, complete_end: bool) -> dict:
    """Parameter, counter and inventory lines, the custom datalog field, and issues.

    A last line without its newline (file cut) is kept only if it is provably whole: a
    parameter or counter line ending with the separator.
    """
    out: dict = {"parameters": [], "counters": [], "devices": [], "issues": [], "custom": None}
    lines = text.split("\n")
    for n, raw in enumerate(lines):
        line_no = first_line + n
        stripped = raw.strip().strip("\x00")
        if not stripped:
            continue
        cut = n == len(lines) - 1 and not complete_end
        match = re.match(_TRAILER_RE + re.escape(sep) + r"(.*)$", stripped)
        if cut and not (match and stripped.endswith(sep)):
            out["issues"].append(
                Issue(line_no, "incomplete line at end of file (file truncated)", stripped[:80])
            )
            continue
        if match:
            kind = "parameter" if match.group(1) == "P" else "info"
            cells = [c.strip() for c in match.group(3).split(sep)]
            if cells and cells[-1] == "":
                cells.pop()
            target = out["parameters"] if kind == "parameter" else out["counters"]
            target.append((line_no, kind, int(match.group(2)), cells))
            continue
        match = _INVENTORY_RE.match(stripped)
        if match:
            out["devices"].append(_parse_inventory(match.group(1).upper(), match.group(2)))
            continue
        if stripped.startswith("#"):
            out["custom"] = stripped
            continue
        out["issues"].append(Issue(line_no, "unrecognised line after the data", stripped[:80]))
    return out


def _data_end(data: bytes, start: int) -> int:
    """End of the data rows: just after the last line that starts with a timestamp.

    Walks back from the end of the file over the trailer (a few dozen lines), so a damaged
    line in the middle of the rows is reported as a bad row instead of ending the data.
    """
    end = len(data)
    while end > start:
        line_start = max(data.rfind(b"\n", start, end - 1) + 1, start)
        if _ROW_START.match(data, line_start):
            return end
        end = line_start
    return start


def _field_count(block: bytes, sep: bytes) -> int:
    """Fields of a data row: the most common count among the first newline-terminated rows
    (0 when there is none: a cut row alone says nothing)."""
    counts: dict[int, int] = {}
    for line in block[:65536].split(b"\n")[:-1][:20]:
        if _ROW_START.match(line):
            c = line.rstrip(b"\r").count(sep) + 1
            counts[c] = counts.get(c, 0) + 1
    return max(counts, key=lambda c: (counts[c], c)) if counts else 0


def _read_rows(
    block: bytes,
    sep: str,
    width: int,
    fields: list[int],
    first_line: int,
    issues: list[Issue],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Times (datetime64[m]) and float32 columns of the rows of ``block``, vectorised."""
    names = [f"f{i}" for i in range(width)]
    wanted = ["f0"] + [f"f{i}" for i in fields]
    bad_rows: list[Issue] = []

    def invalid(row) -> str:
        line = first_line + row.number - 1 if row.number is not None else None
        bad_rows.append(
            Issue(
                line,
                f"row with {row.actual_columns} fields instead of {row.expected_columns}",
                (row.text or "")[:80],
            )
        )
        return "skip"

    def read(types: dict) -> pa.Table:
        bad_rows.clear()
        return pa_csv.read_csv(
            pa.BufferReader(block),
            # One block for the whole day: a damaged line longer than pyarrow's default 1 MB
            # block would otherwise fail the file ("straddling object").
            read_options=pa_csv.ReadOptions(
                column_names=names,
                use_threads=False,
                block_size=min(max(len(block) + 1, 1 << 20), (1 << 31) - 1),
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=sep, quote_char=False, invalid_row_handler=invalid
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                include_columns=wanted,
                null_values=_NULL_CELLS,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        table = read({n: (pa.string() if n == "f0" else pa.float32()) for n in wanted})
        columns = [table.column(n) for n in wanted[1:]]
    except pa.ArrowInvalid:
        # Some cell is not a number: read as text and blank the unreadable cells only.
        table = read({n: pa.string() for n in wanted})
        columns = []
        for n in wanted[1:]:
            text = table.column(n)
            ok = pc.match_substring_regex(text, _NUMERIC_RE)
            bad = pc.and_(pc.invert(ok), pc.is_valid(text))
            count = pc.sum(bad).as_py() or 0
            if count:
                first = pc.index(bad, True).as_py()
                issues.append(
                    Issue(
                        None,
                        "unreadable cell(s) left empty",
                        f"{count} in field {n[1:]}, first {text[first].as_py()!r}",
                    )
                )
            columns.append(pc.cast(pc.if_else(ok, text, None), pa.float32()))
    issues.extend(bad_rows)
    stamps = pc.strptime(table.column("f0"), format=TIME_FORMAT, unit="s", error_is_null=True)
    times = stamps.to_numpy(zero_copy_only=False).astype("datetime64[m]")
    arrays = [c.to_numpy(zero_copy_only=False).astype(np.float32, copy=False) for c in columns]
    invalid_time = np.isnat(times)
    if invalid_time.any():
        for i in np.nonzero(invalid_time)[0].tolist():
            issues.append(Issue(None, "invalid date or time", str(table.column("f0")[i])))
        keep = ~invalid_time
        times = times[keep]
        arrays = [a[keep] for a in arrays]
    return times, arrays


def _rows_of_the_day(
    name: str, times: np.ndarray, arrays: list[np.ndarray], issues: list[Issue]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Only the rows dated on the file's day: a row of another date (year 0001 or 9999 in a
    damaged copy) has an impossible time; it is left out and reported, never imported."""
    day = file_day(name, times)
    if day is None or not len(times):
        return times, arrays
    on_day = times.astype("datetime64[D]") == np.datetime64(day, "D")
    if on_day.all():
        return times, arrays
    bad = np.nonzero(~on_day)[0]
    issues.append(
        Issue(
            None,
            f"rows dated outside the file's day {day:%d.%m.%Y} left out (impossible times)",
            f"{len(bad)} rows, first {times[bad[0]]}",
        )
    )
    return times[on_day], [a[on_day] for a in arrays]


def parse_datalog(
    data: bytes, name: str = "datalog.csv", *, phase_columns: str = "auto"
) -> Datalog:
    """Parse the bytes of one SD-card day file.

    Keeps every complete row; rows with a wrong field count, the cut last row of a truncated
    file, unreadable trailer lines and cells are listed in ``Datalog.issues``.
    Raises DatalogError when the file is not a datalog at all (empty, header cut, no numbers).
    """
    if phase_columns not in PHASE_COLUMNS:
        raise ValueError(f"phase_columns must be one of {PHASE_COLUMNS}, got {phase_columns!r}")
    issues: list[Issue] = []
    size = len(data)
    data = data.rstrip(b"\x00")  # a card pulled while writing leaves zeroed clusters
    if len(data) < size:
        issues.append(Issue(None, f"{size - len(data)} NUL bytes at the end of the file"))
    if b"\r" in data:  # CRLF, CR-only (old Mac style) or mixed line endings: all read as LF
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not data.strip():
        raise DatalogError(f"{name}: empty file")
    lines, start = _split_header(data, name)
    sep = _detect_separator(lines[0])
    _, found = _parse_header(lines, sep, name, [])  # DatalogError if it is not a datalog

    end = _data_end(data, start)
    block = data[start:end]
    sepb = sep.encode()
    # Data rows carry one more (empty) field than the header line.
    width = _field_count(block, sepb) or (len(lines[0].split(sep)) + 1)
    width = max(width, found[-1][0] + 1)

    # The last row of a file cut while writing: complete only if every field is terminated.
    truncated = not data.endswith(b"\n")
    if end == len(data) and truncated and block:
        cut = block.rfind(b"\n") + 1
        last = block[cut:].rstrip(b"\r")
        fields_ = last.count(sepb) + 1
        if not (fields_ == width and last.endswith(sepb)):
            line_no = HEADER_LINES + block.count(b"\n", 0, cut) + 1
            issues.append(
                Issue(
                    line_no,
                    "incomplete row at end of file (file truncated)",
                    last.decode(ENCODING)[:80],
                )
            )
            block = block[:cut]
        else:
            block = block + b"\n"

    trailer_text = data[end:].decode(ENCODING, "replace")
    trailer_first_line = HEADER_LINES + block.count(b"\n") + 1
    trailer = _parse_trailer(trailer_text, sep, trailer_first_line, not truncated)
    issues.extend(trailer["issues"])
    truncated = truncated or not trailer_text.strip()
    inventory: list[InventoryDevice] = trailer["devices"]

    inventory_xts = frozenset(d.address for d in inventory if d.family is Family.XTENDER)
    version, columns, header_issues = _map_columns(tuple(lines), sep, phase_columns, inventory_xts)
    issues.extend(header_issues)

    if not block.isascii():
        # Rows are ASCII by format; damaged bytes would also break pyarrow's UTF-8 handling
        # of invalid rows. Masking them keeps line numbers and lets the row be reported.
        block = block.translate(_ASCII_MASK)
    if block.strip():
        times, arrays = _read_rows(
            block, sep, width, [c.field for c in columns], HEADER_LINES + 1, issues
        )
    else:
        times, arrays = np.zeros(0, dtype="datetime64[m]"), [np.zeros(0, np.float32)] * len(columns)
    times, arrays = _rows_of_the_day(name, times, arrays, issues)
    matrix = (
        np.column_stack(arrays) if arrays else np.zeros((len(times), 0), dtype=np.float32)
    ).astype(np.float32, copy=False)
    columns = _mark_integer_columns(block, sepb, list(columns))

    known = {c.number: c.family for c in columns}
    present = {d.address for d in inventory} | {
        c.address for c in columns if c.address in _unicast_addresses()
    }
    parameters = _trailer_values(trailer["parameters"], known, present, issues)
    counters = _trailer_values(trailer["counters"], known, present, issues)
    return Datalog(
        name=name,
        version=version,
        separator=sep,
        columns=columns,
        local_times=times,
        data=matrix,
        parameters=parameters,
        counters=counters,
        devices=inventory,
        issues=sorted(issues, key=lambda x: (x.line is None, x.line or 0)),
        truncated=truncated,
        custom_text=trailer["custom"],
        header=(lines[0], lines[1], lines[2]),
        field_count=width,
        trailer=trailer_text,
    )


@functools.lru_cache(maxsize=64)
def _map_columns(
    lines: tuple[str, ...], sep: str, phase_columns: str, inventory_xts: frozenset[int]
) -> tuple[str, tuple[Column, ...], tuple[Issue, ...]]:
    """Version, mapped columns and header issues of a header (cached: every day file of an
    installation has the same header, and the mapping costs a catalog lookup per column)."""
    issues: list[Issue] = []
    version, found = _parse_header(list(lines), sep, "", issues)
    fams = [datapoint_family(num, "info", label_family(label)) for _, num, _, label, _ in found]
    xt_tokens = {
        tok.upper() for (_, _, tok, _, _), f in zip(found, fams, strict=True) if f is Family.XTENDER
    }
    single_xt = (
        phase_columns == "auto"
        and "L1-1" in xt_tokens
        and xt_tokens <= {"L1", "L1-1", "1", "ALL"}
        and inventory_xts <= {xt(1)}
    )
    if single_xt:  # L1 and L1-1 carrying the same number would collide at 101
        on_phase = {num for (_, num, tok, _, _) in found if tok.upper() == "L1"}
        on_unit = {num for (_, num, tok, _, _) in found if tok.upper() in ("L1-1", "1")}
        single_xt = not (on_phase & on_unit)
    columns: list[Column] = []
    seen: dict[tuple[int, int], int] = {}
    for (i, num, tok, label, unit), fam in zip(found, fams, strict=True):
        try:
            address = column_address(fam, tok, single_xt=single_xt)
        except ValueError as exc:
            issues.append(Issue(3, f"column {i} (I{num} {tok!r}) skipped: {exc}"))
            continue
        if (address, num) in seen:
            issues.append(
                Issue(3, f"column {i} (I{num} {tok}) repeats column {seen[(address, num)]}")
            )
            continue
        seen[(address, num)] = i
        columns.append(Column(i, num, tok, label, unit, fam, address))
    return version, tuple(columns), tuple(issues)


def _mark_integer_columns(block: bytes, sep: bytes, columns: list[Column]) -> list[Column]:
    """Columns whose first row is written without a decimal point (enums, counts)."""
    line_end = block.find(b"\n")
    if line_end < 0 or not columns:
        return columns
    cells = block[:line_end].rstrip(b"\r").split(sep)
    out = []
    for c in columns:
        cell = cells[c.field] if c.field < len(cells) else b""
        integer = bool(cell) and b"." not in cell and cell.strip(b"-").isdigit()
        out.append(dataclasses.replace(c, integer=True) if integer else c)
    return out


@functools.lru_cache(maxsize=1)
def _unicast_addresses() -> frozenset[int]:
    """Addresses of single devices (not multicast, phase or gateway)."""
    return frozenset(
        a
        for family, (_, first, last) in FAMILY_ADDRESSES.items()
        if family is not Family.RCC
        for a in range(first, last + 1)
    )


def _trailer_values(
    lines: list[tuple[int, str, int, list[str]]],
    known: dict[int, Family | None],
    present: set[int],
    issues: list[Issue],
) -> list[TrailerValue]:
    """Per-device values of parameter or counter lines: value k is device k of the family.

    The datalogger writes 0 for devices that are absent: a zero is kept only for a device the
    inventory or a data column names; the gateway (RCC family or none) holds the first value.
    """
    out: list[TrailerValue] = []
    for line_no, kind, number, cells in lines:
        family = _trailer_family(number, kind, known)
        gateway = family in (None, Family.RCC)
        for k, cell in enumerate(cells, start=1):
            if cell == "" or cell.lower() == "nan" or (gateway and k > 1):
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):  # nan cells were skipped above
                issues.append(Issue(line_no, f"unreadable value {cell[:20]!r} of {kind} {number}"))
                continue
            try:
                address = device_address(family, k)
            except ValueError:
                if value != 0:
                    issues.append(Issue(line_no, f"{kind} {number}: no device {k} for {cell}"))
                continue
            if value == 0 and not gateway and address not in present:
                continue
            out.append(TrailerValue(kind, number, address, value, family))
    return out


def read_datalog(path: str | Path, *, phase_columns: str = "auto") -> Datalog:
    """Read and parse one ``LGyymmdd.CSV`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatalogError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return parse_datalog(data, path.name, phase_columns=phase_columns)


# --- rendering (the inverse of parsing, for tests and benchmarks) ----------------------------


def _format_values(values: np.ndarray, integer: bool) -> pa.Array:
    """Cells as the datalogger writes them: two decimals, or an integer; NaN -> empty."""
    missing = np.isnan(values)
    clean = np.nan_to_num(values).astype(np.float64)
    if integer:
        text = pc.cast(pa.array(np.rint(clean).astype(np.int64)), pa.string())
    else:
        cents = np.rint(clean * 100).astype(np.int64)
        digits = pc.utf8_lpad(pc.cast(pa.array(np.abs(cents)), pa.string()), 3, "0")
        text = pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(digits, 0, -2), pc.utf8_slice_codeunits(digits, -2), "."
        )
        text = pc.if_else(pa.array(cents < 0), pc.binary_join_element_wise("-", text, ""), text)
    return pc.if_else(pa.array(missing), pa.scalar("", pa.string()), text)


def render(log_: Datalog) -> bytes:
    """Serialise a Datalog in the datalogger's format (see Datalog.to_bytes)."""
    sep = log_.separator
    width = log_.field_count or (len(log_.header[0].split(sep)) + 1)
    n = log_.rows
    parts = [line + "\n" for line in log_.header]
    if n:
        empty = pa.scalar("", pa.string())
        fields: list = [empty] * width
        stamps = pa.array(log_.local_times.astype("datetime64[s]"))
        fields[0] = pc.strftime(stamps, format=TIME_FORMAT)
        for integer in (False, True):  # all columns of a kind formatted in one pass
            js = [j for j, c in enumerate(log_.columns) if c.integer is integer]
            if not js:
                continue
            text = _format_values(np.ascontiguousarray(log_.data[:, js].T).ravel(), integer)
            for k, j in enumerate(js):
                fields[log_.columns[j].field] = text.slice(k * n, n)
        rows = pc.binary_join_element_wise(*fields, sep)
        parts.append("\n".join(rows.to_pylist()))
        parts.append("\n")
    parts.append(log_.trailer)
    return "".join(parts).encode(ENCODING, "replace")


def with_rows(log_: Datalog, local_times: np.ndarray, data: np.ndarray, name: str) -> Datalog:
    """A copy of ``log_`` with other rows (same columns and trailer), e.g. another day."""
    if data.shape != (len(local_times), len(log_.columns)):
        raise ValueError(
            f"data shape {data.shape} does not match {len(local_times)} rows x "
            f"{len(log_.columns)} columns"
        )
    return Datalog(
        **{
            **log_.__dict__,
            "name": name,
            "local_times": np.asarray(local_times, dtype="datetime64[m]"),
            "data": np.asarray(data, dtype=np.float32),
            "issues": [],
            "truncated": False,
        }
    )


__all__: Sequence[str] = (
    "Column",
    "Datalog",
    "InventoryDevice",
    "Issue",
    "TrailerValue",
    "column_address",
    "datapoint_family",
    "device_address",
    "label_family",
    "local_minutes",
    "local_to_utc_ms",
    "nonexistent_times",
    "normalize_unit",
    "parse_datalog",
    "read_datalog",
    "render",
    "split_label",
    "with_rows",
    "zone",
)
